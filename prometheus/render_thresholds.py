"""Render prometheus/thresholds.yml into the recording rules the alerts read.

    python prometheus/render_thresholds.py          # rewrite rules/exchange-thresholds.yml
    python prometheus/render_thresholds.py --check  # exit 1 if that file is out of date

Every key of ``thresholds.yml`` becomes one recording rule ``exchange:threshold:<key>`` with one
series per probed exchange (the exchanges that have ``exchange_api_up``): the exchange's override
where ``exchanges.<name>.<key>`` sets one, the default otherwise. Alerts join on ``exchange``::

    metric > on (exchange) exchange:threshold:<key>

so an exchange added to the exporter gets the defaults without touching any rule. Errors name the
file, the key and the value, one line per problem, and exit with status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROM_DIR = Path(__file__).resolve().parent
THRESHOLDS_FILE = PROM_DIR / "thresholds.yml"
OUTPUT_FILE = PROM_DIR / "rules" / "exchange-thresholds.yml"
EXPORTER_JOB = "exchange-exporter"
RECORD_PREFIX = "exchange:threshold:"
EXCHANGE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # the exporter's rule for exchange names


@dataclass(frozen=True)
class Key:
    """One threshold: what it is for and which values are valid."""

    alert: str
    check: Callable[[float], bool]
    expected: str


def _positive(v: float) -> bool:
    return v > 0


KEYS: dict[str, Key] = {
    "latency_p99_seconds": Key("ExchangeApiLatencyHigh", _positive, "a number > 0"),
    "latency_degraded_ratio": Key("ExchangeApiLatencyDegraded", lambda v: v > 1, "a number > 1"),
    "latency_degraded_min_seconds": Key("ExchangeApiLatencyDegraded", _positive, "a number > 0"),
    "error_ratio": Key("ExchangeApiErrorRateHigh", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "rate_limit_warning_ratio": Key(
        "ExchangeRateLimitNearExhaustion", lambda v: 0 < v <= 1, "a number in (0, 1]"
    ),
    "rate_limit_critical_ratio": Key(
        "ExchangeRateLimitNearExhaustion", lambda v: 0 < v <= 1, "a number in (0, 1]"
    ),
    "clock_skew_warning_seconds": Key("ExchangeClockSkewHigh", _positive, "a number > 0"),
    "clock_skew_critical_seconds": Key("ExchangeClockSkewHigh", _positive, "a number > 0"),
    "market_data_age_seconds": Key("ExchangeMarketDataStale", _positive, "a number > 0"),
    "availability_objective": Key(
        "ExchangeApiAvailabilityBudgetBurn", lambda v: 0 < v < 1, "a number in (0, 1)"
    ),
}

ORDERED = [
    ("rate_limit_warning_ratio", "rate_limit_critical_ratio"),
    ("clock_skew_warning_seconds", "clock_skew_critical_seconds"),
]
"""(warning, critical) pairs: the warning threshold must be the lower one."""


class ThresholdsError(ValueError):
    """thresholds.yml is invalid; ``str(err)`` has one ``file: key: problem`` line per error."""


def load(path: Path = THRESHOLDS_FILE) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Read and validate thresholds.yml; return (defaults, overrides by exchange)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ThresholdsError(f"{path}: {exc}") from exc
    errors: list[str] = []
    if not isinstance(data, dict):
        raise ThresholdsError(f"{path}: expected a mapping with `defaults` and `exchanges`")
    for extra in sorted(set(data) - {"defaults", "exchanges"}):
        errors.append(f"{extra}: unknown section (expected `defaults` and `exchanges`)")
    raw_defaults = data.get("defaults")
    defaults = _values("defaults", raw_defaults, errors)
    for key in KEYS:
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
    if errors:
        raise ThresholdsError("\n".join(f"{path}: {e}" for e in errors))
    return defaults, overrides


def _values(scope: str, raw: Any, errors: list[str]) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(f"{scope}: expected a mapping of threshold keys to numbers, got {raw!r}")
        return {}
    values: dict[str, float] = {}
    for key, value in raw.items():
        spec = KEYS.get(key)
        if spec is None:
            errors.append(f"{scope}.{key}: unknown threshold (known: {', '.join(KEYS)})")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not spec.check(value):
            errors.append(f"{scope}.{key}: expected {spec.expected}, got {value!r}")
        else:
            values[key] = value
    return values


def _number(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _matcher(op: str, names: list[str]) -> str:
    alternatives = "|".join(names)  # exchange names have no regex metacharacters
    return f', exchange{op}"{alternatives}"'


def _selector(matcher: str) -> str:
    return f'exchange_api_up{{job="{EXPORTER_JOB}"{matcher}}}'


def render(defaults: dict[str, float], overrides: dict[str, dict[str, float]]) -> str:
    """The content of prometheus/rules/exchange-thresholds.yml."""
    lines = [
        "# GENERATED by prometheus/render_thresholds.py from prometheus/thresholds.yml.",
        "# DO NOT EDIT: edit prometheus/thresholds.yml and run `make rules` (tests/test_rules.py",
        "# fails while this file is out of date).",
        "#",
        "# One series per probed exchange and threshold: the exchange's override, else the",
        "# default. Alerts join them with `on (exchange)`.",
        "groups:",
        "  - name: exchange-thresholds",
        "    rules:",
    ]
    for key, spec in KEYS.items():
        by_value: dict[str, list[str]] = {}
        for name in sorted(overrides):
            if key in overrides[name]:
                by_value.setdefault(_number(overrides[name][key]), []).append(name)
        terms = [
            f"{value} * group by (exchange) ({_selector(_matcher('=~', names))})"
            for value, names in by_value.items()
        ]
        overridden = sorted(n for names in by_value.values() for n in names)
        default_matcher = _matcher("!~", overridden) if overridden else ""
        terms.append(
            f"{_number(defaults[key])} * group by (exchange) ({_selector(default_matcher)})"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the output is stale")
    parser.add_argument("--thresholds", type=Path, default=THRESHOLDS_FILE)
    parser.add_argument("--output", type=Path, default=OUTPUT_FILE)
    args = parser.parse_args(argv)
    try:
        text = render(*load(args.thresholds))
    except ThresholdsError as exc:
        print(exc, file=sys.stderr)
        return 2
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is out of date: run `make rules`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
