"""Render prometheus/thresholds.yml, the monitoring config, into the rules, their unit tests and
the dashboards.

    python prometheus/render_thresholds.py          # render (what `make rules` runs)
    python prometheus/render_thresholds.py --check  # exit 1 if anything rendered is out of date

``defaults`` and ``exchanges`` (the thresholds): every key becomes one recording rule
``exchange:threshold:<key>`` in the generated rules/exchange-thresholds.yml, with one series per
probed exchange (the exchanges that have ``exchange_api_up``): the exchange's override where
``exchanges.<name>.<key>`` sets one, the default otherwise. Alerts join on ``exchange``::

    metric > on (exchange) exchange:threshold:<key>

so an exchange added to the exporter gets the defaults without touching any rule. Which keys
exist and which values each accepts: prometheus/threshold_keys.py.

``defaults.api_key_invalid_for`` (DURATION_KEYS) is a Prometheus duration, not a number: a
rule's ``for``, written into the ``for:`` line marked ``# thresholds.yml <key>`` and the
THRESHOLDS table row marked ``(for: <key>)`` of the rule files. One rule has one ``for``, so it
has no per-exchange overrides.

``config`` (in the spirit of a monitoring mixin's ``_config``, without jsonnet):

- ``exporter_selector``, e.g. ``job="exchange-exporter"``: the label matchers that select the
  exporter's series. Rules, promtool tests and dashboards write it first in the braces of every
  exporter series (``exchange_api_up{job="exchange-exporter", exchange="okx"}``). The generated
  file records the selector it was rendered with; when the config names another one, every
  ``{<recorded selector>`` in prometheus/rules/, prometheus/tests/ and grafana/dashboards/
  becomes ``{<new selector>``.
- ``runbook_url``: the pattern of every alert's ``runbook_url`` annotation, and of the
  annotation the promtool tests expect (``{alertname}``, or ``{anchor}`` for its lower-case
  form, is filled in); ``runbook_index_url``: the dashboards' "Alert runbooks" link.

The shipped rules, tests and dashboards stay the source, edited by hand (or exported from
Grafana): rendering rewrites only the selector and the runbook links in them, and changes
nothing when they are up to date. Errors name the file, the key and the value, one line per
problem, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

# A sibling module: the script's directory is on sys.path when it runs as a script.
from threshold_keys import DURATION, DURATION_KEYS, KEYS, ORDERED

PROM_DIR = Path(__file__).resolve().parent
REPO = PROM_DIR.parent
THRESHOLDS_FILE = PROM_DIR / "thresholds.yml"
OUTPUT_FILE = PROM_DIR / "rules" / "exchange-thresholds.yml"
RULES_DIR = PROM_DIR / "rules"
UNIT_TESTS_DIR = PROM_DIR / "tests"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
RECORD_PREFIX = "exchange:threshold:"
EXCHANGE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # the exporter's rule for exchange names
SECTIONS = ("config", "defaults", "exchanges")
RUNBOOK_LINK_TITLE = "Alert runbooks"
"""The dashboards' link to the runbook index (``config.runbook_index_url``)."""


# A label matcher of the exporter selector. Equality only: the promtool tests' input series carry
# the selector as their labels. No quotes, backslashes or braces in values, so that the selector
# reads the same in PromQL, in YAML strings and in JSON.
_MATCHER = re.compile(r'\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"(?P<value>[^"\'\\{}\s]*)"\s*')
_RUNBOOK_FIELDS = {"alertname", "anchor"}
_URL_FORBIDDEN = re.compile(r"[\s\"'\\<>]")


class ThresholdsError(ValueError):
    """thresholds.yml is invalid; ``str(err)`` has one ``file: key: problem`` line per error."""


@dataclass(frozen=True)
class Config:
    """The ``config`` section: how the rules and dashboards find the exporter and the runbooks.

    Attributes:
        exporter_selector: normalised label matchers, e.g. ``job="exchange-exporter"``.
        runbook_url: pattern with ``{alertname}`` and/or ``{anchor}``.
        runbook_index_url: the page that lists every runbook.
    """

    exporter_selector: str
    runbook_url: str
    runbook_index_url: str

    def runbook(self, alertname: str) -> str:
        """The runbook URL of one alert."""
        return self.runbook_url.format(alertname=alertname, anchor=alertname.lower())


@dataclass(frozen=True)
class Thresholds:
    """Everything thresholds.yml holds, validated."""

    config: Config
    defaults: dict[str, float]
    overrides: dict[str, dict[str, float]]
    durations: dict[str, str] = field(default_factory=dict)
    """DURATION_KEYS → their Prometheus duration (``1m``)."""


def load(path: Path = THRESHOLDS_FILE) -> Thresholds:
    """Read and validate thresholds.yml."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ThresholdsError(f"{path}: {exc}") from exc
    errors: list[str] = []
    if not isinstance(data, dict):
        raise ThresholdsError(f"{path}: expected a mapping with {', '.join(SECTIONS)}")
    for extra in sorted(set(data) - set(SECTIONS)):
        errors.append(f"{extra}: unknown section (expected {', '.join(SECTIONS)})")
    config = _config(data.get("config"), errors)
    raw_defaults = data.get("defaults")
    defaults = _values("defaults", raw_defaults, errors)
    durations = _durations(raw_defaults, errors)
    for key in [*KEYS, *DURATION_KEYS]:
        if not isinstance(raw_defaults, dict) or key not in raw_defaults:
            errors.append(f"defaults.{key}: missing (every threshold needs a default)")
    raw_exchanges = data.get("exchanges") or {}
    overrides: dict[str, dict[str, float]] = {}
    if not isinstance(raw_exchanges, dict):
        errors.append(
            f"exchanges: expected a mapping of exchange name to overrides, got {raw_exchanges!r}"
        )
        raw_exchanges = {}
    for name, values in raw_exchanges.items():
        if not isinstance(name, str) or not EXCHANGE_NAME.fullmatch(name):
            errors.append(f"exchanges.{name}: not an exchange name ([a-z][a-z0-9_-]*, ≤ 32 chars)")
            continue
        overrides[name] = _values(f"exchanges.{name}", values, errors)
    for scope, values in [
        ("defaults", defaults),
        *((f"exchanges.{n}", v) for n, v in overrides.items()),
    ]:
        effective = {**defaults, **values}
        for low, high in ORDERED:
            if (
                (low in values or high in values)
                and {low, high} <= effective.keys()
                and effective[low] >= effective[high]
            ):
                errors.append(
                    f"{scope}: {low} ({effective[low]:g}) must be below {high} "
                    f"({effective[high]:g})"
                )
    if errors or config is None:
        raise ThresholdsError("\n".join(f"{path}: {e}" for e in errors))
    return Thresholds(config, defaults, overrides, durations)


def _config(raw: Any, errors: list[str]) -> Config | None:
    if not isinstance(raw, dict):
        errors.append(
            "config: expected a mapping with exporter_selector, runbook_url and "
            f"runbook_index_url, got {raw!r}"
        )
        return None
    fields = ("exporter_selector", "runbook_url", "runbook_index_url")
    for extra in sorted(set(raw) - set(fields), key=str):
        errors.append(f"config.{extra}: unknown key (known: {', '.join(fields)})")
    before = len(errors)
    selector = _selector_config(raw.get("exporter_selector"), errors)
    runbook_url = _url_config("runbook_url", raw.get("runbook_url"), _RUNBOOK_FIELDS, errors)
    index_url = _url_config("runbook_index_url", raw.get("runbook_index_url"), set(), errors)
    if len(errors) > before:
        return None
    return Config(selector, runbook_url, index_url)


def _selector_config(raw: Any, errors: list[str]) -> str:
    expected = "label matchers such as 'job=\"exchange-exporter\"' (=, comma-separated)"
    parts = raw.split(",") if isinstance(raw, str) else []
    matchers = [_MATCHER.fullmatch(part) for part in parts]
    names = [m["name"] for m in matchers if m]
    if not parts or not all(matchers) or len(names) != len(set(names)):
        errors.append(f"config.exporter_selector: expected {expected}, got {raw!r}")
        return ""
    return ", ".join(f'{m["name"]}="{m["value"]}"' for m in matchers if m)


def _url_config(key: str, raw: Any, fields: set[str], errors: list[str]) -> str:
    if fields:
        wanted = f"a URL with {' or '.join('{' + f + '}' for f in sorted(fields))}"
    else:
        wanted = "a URL without {placeholders}"
    problem = None
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(raw) if f is not None}
    except (TypeError, ValueError):  # not a string, or unbalanced braces
        used = {"?"}
    if not isinstance(raw, str) or _URL_FORBIDDEN.search(raw):
        problem = "an http(s) URL without quotes, spaces, backslashes or angle brackets"
    elif used - fields or (fields and not used):
        problem = wanted
    else:
        try:
            parts = urlsplit(raw.format(**dict.fromkeys(fields, "X")))
            ok = parts.scheme in ("http", "https") and bool(parts.netloc)
        except ValueError:  # e.g. a malformed IPv6 host
            ok = False
        if not ok:
            problem = "an http(s) URL"
    if problem:
        errors.append(f"config.{key}: expected {problem}, got {raw!r}")
        return ""
    return str(raw)


def _values(scope: str, raw: Any, errors: list[str]) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(f"{scope}: expected a mapping of threshold keys to numbers, got {raw!r}")
        return {}
    values: dict[str, float] = {}
    for key, value in raw.items():
        spec = KEYS.get(key)
        if key in DURATION_KEYS:
            if scope != "defaults":
                errors.append(
                    f"{scope}.{key}: a rule's `for` is the same for every exchange: set it "
                    "under defaults only"
                )
        elif spec is None:
            known = ", ".join([*KEYS, *DURATION_KEYS])
            errors.append(f"{scope}.{key}: unknown threshold (known: {known})")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not spec.check(value):
            errors.append(f"{scope}.{key}: expected {spec.expected}, got {value!r}")
        else:
            values[key] = value
    return values


def _durations(raw: Any, errors: list[str]) -> dict[str, str]:
    """The DURATION_KEYS of ``defaults``, validated as Prometheus durations above zero."""
    durations: dict[str, str] = {}
    if not isinstance(raw, dict):
        return durations
    for key in DURATION_KEYS:
        value = raw.get(key)
        if key not in raw:
            continue
        if (
            not isinstance(value, str)
            or not DURATION.fullmatch(value)
            or not re.search(r"[1-9]", value)
        ):
            errors.append(
                f"defaults.{key}: expected a Prometheus duration above 0 such as 1m or 90s, "
                f"got {value!r}"
            )
        else:
            durations[key] = value
    return durations


# --------------------------------------------------------------------------------------------
# the generated threshold rules


def _number(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _matcher(op: str, names: list[str]) -> str:
    alternatives = "|".join(names)  # exchange names have no regex metacharacters
    return f', exchange{op}"{alternatives}"'


def _series(selector: str, matcher: str) -> str:
    return f"exchange_api_up{{{selector}{matcher}}}"


_RECORDED_SELECTOR = re.compile(r"^# Rendered with exporter_selector: (?P<selector>.+)$", re.M)


def render(thresholds: Thresholds) -> str:
    """The content of prometheus/rules/exchange-thresholds.yml."""
    selector = thresholds.config.exporter_selector
    lines = [
        "# GENERATED by prometheus/render_thresholds.py from prometheus/thresholds.yml.",
        "# DO NOT EDIT: edit prometheus/thresholds.yml and run `make rules`",
        "# (tests/monitoring/test_thresholds.py fails while this file is out of date).",
        "#",
        "# One series per probed exchange and threshold: the exchange's override, else the",
        "# default. Alerts join them with `on (exchange)`.",
        "#",
        f"# Rendered with exporter_selector: {selector}",
        "groups:",
        "  - name: exchange-thresholds",
        "    rules:",
    ]
    for key, spec in KEYS.items():
        by_value: dict[str, list[str]] = {}
        for name in sorted(thresholds.overrides):
            if key in thresholds.overrides[name]:
                by_value.setdefault(_number(thresholds.overrides[name][key]), []).append(name)
        terms = [
            f"{value} * group by (exchange) ({_series(selector, _matcher('=~', names))})"
            for value, names in by_value.items()
        ]
        overridden = sorted(n for names in by_value.values() for n in names)
        default_matcher = _matcher("!~", overridden) if overridden else ""
        terms.append(
            f"{_number(thresholds.defaults[key])} * group by (exchange) "
            f"({_series(selector, default_matcher)})"
        )
        lines.append(f"      # {key}, used by {spec.alert}")
        lines.append(f"      - record: {RECORD_PREFIX}{key}")
        if len(terms) == 1:
            lines.append(f"        expr: {terms[0]}")
        else:
            lines.append("        expr: |")
            lines.append(f"          {terms[0]}")
            for term in terms[1:]:
                lines.append("          or")
                lines.append(f"          {term}")
    return "\n".join(lines) + "\n"


def recorded_selector(generated: str | None) -> str | None:
    """The exporter selector a generated threshold rules file was rendered with, if it says."""
    match = _RECORDED_SELECTOR.search(generated or "")
    return match["selector"].strip() if match else None


# --------------------------------------------------------------------------------------------
# the selector and the runbook links in the shipped rules, promtool tests and dashboards

# The alert a runbook_url belongs to: `- alert: X` in a rule file, `alertname: X` in a test.
_RUNBOOK_OR_ALERT = re.compile(
    r'(?P<runbook>runbook_url:[ \t]*)"[^"\n]*"'
    r"|(?:^[ \t]*-[ \t]*alert|\balertname):[ \t]*(?P<alert>[A-Za-z_][A-Za-z0-9_]*)",
    re.M,
)


# A rule's `for:` marked with the thresholds.yml key it comes from, and its THRESHOLDS table row.
_FOR_LINE = re.compile(
    r"^(?P<head>[ \t]*for:[ \t]*)(?P<value>\S+)"
    r"(?P<tail>[ \t]+#[ \t]*thresholds\.yml[ \t]+(?P<key>\w+)[ \t]*)$",
    re.M,
)
_FOR_CELL = re.compile(
    r"^(?P<head>#[ \t]*\|[^\n]*\(for:[ \t]*(?P<key>\w+)\)[^|\n]*\|[ \t]*)(?P<value>\S+)"
    r"(?P<pad>[ \t]*)(?P<end>\|[ \t]*)$",
    re.M,
)


def render_durations(text: str, durations: dict[str, str], where: str) -> str:
    """Write thresholds.yml's DURATION_KEYS into the ``for:`` lines and THRESHOLDS table cells
    that name them.

    Raises:
        ThresholdsError: a marker naming a key that thresholds.yml does not define.
    """

    def value_of(match: re.Match[str]) -> str:
        if match["key"] not in durations:
            line = text.count("\n", 0, match.start()) + 1
            raise ThresholdsError(
                f"{where}:{line}: `for` from thresholds.yml {match['key']!r}, which is not a "
                f"duration key (known: {', '.join(DURATION_KEYS)})"
            )
        return durations[match["key"]]

    def line(match: re.Match[str]) -> str:
        return f"{match['head']}{value_of(match)}{match['tail']}"

    def cell(match: re.Match[str]) -> str:
        width = len(match["value"]) + len(match["pad"])
        value = value_of(match)
        return f"{match['head']}{value.ljust(max(width, len(value) + 1))}{match['end']}"

    return _FOR_CELL.sub(cell, _FOR_LINE.sub(line, text))


def replace_selector(text: str, old: str, new: str) -> str:
    """Replace the exporter selector ``old`` by ``new`` where it opens a selector's braces."""
    if old == new:
        return text
    return re.sub(r"\{" + re.escape(old) + r"(?=\s*[,}])", lambda _: "{" + new, text)


def _label_pairs(selector: str) -> str:
    """The selector as YAML flow-mapping pairs, the way promtool tests expect labels."""
    pairs = []
    for m in (_MATCHER.fullmatch(part) for part in selector.split(",")):
        if m:
            value = m["value"]
            plain = re.fullmatch(r"[A-Za-z0-9_./-]+", value) and not value.startswith("-")
            pairs.append(f"{m['name']}: {value if plain else json.dumps(value)}")
    return ", ".join(pairs)


def replace_label_pairs(text: str, old: str, new: str) -> str:
    """Replace the exporter selector's labels in YAML flow mappings (``exp_labels``)."""
    if old == new:
        return text
    pattern = r"(?P<before>[{,][ \t]*)" + re.escape(_label_pairs(old)) + r"(?=[ \t]*[,}])"
    return re.sub(pattern, lambda m: m["before"] + _label_pairs(new), text)


def render_rule_text(
    text: str,
    config: Config,
    old_selector: str,
    where: str,
    durations: dict[str, str] | None = None,
) -> str:
    """A rule or promtool test file with the exporter selector (in series selectors, and as the
    expected labels of promtool tests), the runbook links and the ``for`` durations of
    thresholds.yml (``durations``, see DURATION_KEYS) rendered.

    Raises:
        ThresholdsError: a ``runbook_url`` that follows no alert name, or a ``for`` marker that
            names no duration key.
    """
    alert: str | None = None

    def substitute(match: re.Match[str]) -> str:
        nonlocal alert
        if match["alert"]:
            alert = match["alert"]
            return match[0]
        if alert is None:
            line = text.count("\n", 0, match.start()) + 1
            raise ThresholdsError(f"{where}:{line}: runbook_url before any alert name")
        return f'{match["runbook"]}"{config.runbook(alert)}"'

    text = _RUNBOOK_OR_ALERT.sub(substitute, text)
    if durations is not None:
        text = render_durations(text, durations, where)
    text = replace_label_pairs(text, old_selector, config.exporter_selector)
    return replace_selector(text, old_selector, config.exporter_selector)


def render_dashboard_text(text: str, config: Config, old_selector: str) -> str:
    """A dashboard's JSON with the exporter selector and the runbook index link rendered."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, str):
            return replace_selector(node, old_selector, config.exporter_selector)
        return node

    dashboard = walk(json.loads(text))
    for link in dashboard.get("links", []):
        if link.get("title") == RUNBOOK_LINK_TITLE:
            link["url"] = config.runbook_index_url
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def render_all(thresholds: Thresholds, output: Path = OUTPUT_FILE) -> dict[Path, str]:
    """Every rendered file by path: the generated threshold rules, the other rule files, the
    promtool tests and the dashboards (those three with their current selector replaced)."""
    current = output.read_text(encoding="utf-8") if output.exists() else None
    new = thresholds.config.exporter_selector
    old = recorded_selector(current) or new
    rendered = {output: render(thresholds)}
    for path in sorted(RULES_DIR.glob("*.yml")) + sorted(UNIT_TESTS_DIR.glob("*_test.yml")):
        if path != output:
            text = path.read_text(encoding="utf-8")
            durations = thresholds.durations if path.parent == RULES_DIR else None
            rendered[path] = render_rule_text(text, thresholds.config, old, _rel(path), durations)
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        rendered[path] = render_dashboard_text(text, thresholds.config, old)
    return rendered


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main(argv: list[str] | None = None) -> int:
    """``make rules``: render, or with ``--check`` report what is stale (exit 1)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the output is stale")
    parser.add_argument("--thresholds", type=Path, default=THRESHOLDS_FILE)
    parser.add_argument(
        "--output",
        type=Path,
        help="write only the generated threshold rules, to this file (to try a thresholds "
        "file without touching the shipped rules, tests and dashboards)",
    )
    args = parser.parse_args(argv)
    try:
        thresholds = load(args.thresholds)
        if args.output is None:
            rendered = render_all(thresholds)
        else:
            rendered = {args.output: render(thresholds)}
    except ThresholdsError as exc:
        print(exc, file=sys.stderr)
        return 2
    stale = [
        path
        for path, text in rendered.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    if args.check:
        for path in stale:
            print(f"{_rel(path)} is out of date: run `make rules`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(rendered[path], encoding="utf-8")
        print(f"wrote {_rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
