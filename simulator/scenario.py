"""Timeline scenarios: the YAML format, loading and validation (running: :mod:`.scenario_runner`).

A scenario is a named list of steps, each applied at an offset from the start::

    name: binance-outage
    description: Binance drops every connection for 60 s, then recovers.
    steps:
      - at: 0s
        fault: {exchange: binance, fault: down}
      - at: 60s
        clear: {exchange: binance}          # or: clear: all

Top-level fields: ``name`` (required; letters, digits, ``.``, ``_``, ``-``), ``description``
(optional string), ``steps`` (required, 1–1000 items). Each step has ``at`` (a Prometheus-style
duration string such as ``500ms``, ``5s``, ``1m``, ``1m30s``; units y w d h m s ms, integers
only; offsets must not decrease from one step to the next) and exactly one action:

* ``fault:`` the JSON body of ``POST /_control/faults`` (same validation, ``duration_s`` allowed);
* ``clear:`` ``all`` (every fault) or ``{exchange: X}`` / ``{exchange: X, endpoint: E}``;
* ``consume:`` the body of ``POST /_control/consume`` (with ``hold_s`` the usage is re-spent in
  every window starting within that many seconds: a limit incident that does not depend on
  where in a window the step lands);
* ``limits:`` the body of ``POST /_control/limits``.

A scenario may say what it should page as, for the detection benchmark and the demo tour::

    expect:
      alertname: ExchangeApiDown   # the alert the incident should be notified under
      exchange: binance            # its exchange label (omit for a global alert)
      category: outage             # the diagnosis' root_cause_category
      within: 10s                  # the detection budget from the first step to the page

Everything is validated at load time; a :class:`ScenarioError` names the file, the step index,
the field and the value, e.g. ``"bad.yml: steps[1].fault.latency_ms: must be a number between 0
and 600000, got -5"``. Shipped scenarios live in ``simulator/scenarios/<name>.yml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulator.faults import FaultRegistry
from simulator.limits import LimitRegistry
from simulator.specs import SpecError

__all__ = [
    "ACTIONS",
    "SCENARIO_DIR",
    "Expectation",
    "Scenario",
    "ScenarioError",
    "Step",
    "find_scenario",
    "load_scenario",
    "load_scenario_file",
    "parse_duration",
    "shipped_scenarios",
]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""Directory of the shipped scenario files (``<name>.yml``)."""

ACTIONS: tuple[str, ...] = ("fault", "clear", "consume", "limits")

_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_UNIT_S = (365 * 86_400, 7 * 86_400, 86_400, 3600, 60, 1, 0.001)
_MAX_AT_S = 7 * 86_400
_MAX_STEPS = 1000
_FIELD_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*: ")


class ScenarioError(SpecError):
    """A scenario is invalid or cannot be found; the message names file, step, field, value."""


@dataclass(frozen=True, slots=True)
class Step:
    """One validated step.

    Attributes:
        index: position in ``steps`` (0-based).
        at: the offset as written (``"1m30s"``); ``at_s``: the same in seconds.
        action: one of :data:`ACTIONS`.
        spec: the action's body (``"all"`` or a dict for ``clear``).
    """

    index: int
    at: str
    at_s: float
    action: str
    spec: Any

    def to_json(self) -> dict[str, Any]:
        """``{"index", "at", "<action>": spec}``."""
        return {"index": self.index, "at": self.at, self.action: self.spec}


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a scenario should be notified as (its ``expect:`` block).

    Attributes:
        alertname: the alert the incident should page under.
        exchange: that alert's ``exchange`` label, or None for a global alert.
        category: the diagnosis' expected ``root_cause_category``.
        within: the budget as written (``"10s"``); ``within_s``: in seconds, from the
            scenario's start to the first notification of ``alertname``.
    """

    alertname: str
    exchange: str | None
    category: str
    within: str
    within_s: float

    def to_json(self) -> dict[str, Any]:
        """``{"alertname", "exchange", "category", "within"}``."""
        return {
            "alertname": self.alertname,
            "exchange": self.exchange,
            "category": self.category,
            "within": self.within,
        }


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario: ``name``, ``description``, ``steps`` (sorted by ``at``), the
    ``source`` it came from (file name or ``"<inline>"``) and its ``expect`` block (None when
    it has none)."""

    name: str
    description: str
    steps: tuple[Step, ...]
    source: str
    expect: Expectation | None = None


def parse_duration(value: Any) -> float:
    """Parse a Prometheus-style duration (``"500ms"``, ``"5s"``, ``"1m30s"``, ``"0s"``) into
    seconds.

    Raises:
        ValueError: not a string in that format, or longer than 7 days.
    """
    match = _DURATION.fullmatch(value) if isinstance(value, str) and value else None
    if match is None:
        raise ValueError(
            f"expected a duration such as 500ms, 5s, 1m or 1m30s (units y w d h m s ms), "
            f"got {value!r}"
        )
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_S, strict=True) if n)
    if seconds > _MAX_AT_S:
        raise ValueError(f"must be at most 7d, got {value!r}")
    return float(seconds)


def load_scenario(
    data: Any, source: str, *, faults: FaultRegistry, limits: LimitRegistry
) -> Scenario:
    """Validate decoded YAML/JSON ``data`` into a :class:`Scenario`.

    Args:
        source: name for messages (the file name, or ``"<inline>"``).
        faults / limits: the registries whose validation the ``fault``/``clear`` and
            ``consume``/``limits`` steps reuse (nothing is applied).

    Raises:
        ScenarioError: ``"<source>: <field path>: <problem and value>"``.
    """

    def fail(path: str, msg: str) -> ScenarioError:
        return _error(source, path, msg)

    if not isinstance(data, dict):
        raise fail("scenario", f"expected a mapping with name and steps, got {data!r:.80}")
    for key in data:
        if key not in ("name", "description", "steps", "expect"):
            raise fail(str(key), "unexpected field (fields: description, expect, name, steps)")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise fail("name", f"required, letters/digits/._- only (1-100), got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", f"must be a string, got {description!r}")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not 1 <= len(raw_steps) <= _MAX_STEPS:
        raise fail("steps", f"required, a list of 1-{_MAX_STEPS} steps, got {raw_steps!r:.80}")
    steps: list[Step] = []
    for index, raw in enumerate(raw_steps):
        step = _load_step(index, raw, source, faults, limits)
        if steps and step.at_s < steps[-1].at_s:
            raise fail(
                f"steps[{index}].at",
                f"offsets must not decrease ({step.at!r} comes after {steps[-1].at!r})",
            )
        steps.append(step)
    expect = _load_expect(data["expect"], source) if "expect" in data else None
    return Scenario(name, description, tuple(steps), source, expect)


_ALERTNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
_TOKEN = re.compile(r"[a-z][a-z0-9_]{0,63}")
_EXPECT_FIELDS = ("alertname", "category", "exchange", "within")


def _load_expect(raw: Any, source: str) -> Expectation:
    """Validate an ``expect:`` block (see the module docstring)."""
    if not isinstance(raw, dict):
        raise _error(source, "expect", f"expected a mapping, got {raw!r:.80}")
    for key in raw:
        if key not in _EXPECT_FIELDS:
            raise _error(
                source, f"expect.{key}", f"unexpected field (fields: {', '.join(_EXPECT_FIELDS)})"
            )
    alertname = raw.get("alertname")
    if not isinstance(alertname, str) or not _ALERTNAME.fullmatch(alertname):
        raise _error(source, "expect.alertname", f"required, an alert name, got {alertname!r}")
    exchange = raw.get("exchange")
    if exchange is not None and (not isinstance(exchange, str) or not _TOKEN.fullmatch(exchange)):
        raise _error(source, "expect.exchange", f"must be an exchange name, got {exchange!r}")
    category = raw.get("category")
    if not isinstance(category, str) or not _TOKEN.fullmatch(category):
        raise _error(
            source, "expect.category", f"required, a root cause category, got {category!r}"
        )
    within = raw.get("within")
    try:
        within_s = parse_duration(within)
    except ValueError as exc:
        raise _error(source, "expect.within", f"required, {exc}") from None
    if within_s <= 0:
        raise _error(source, "expect.within", f"must be longer than 0s, got {within!r}")
    return Expectation(alertname, exchange, category, str(within), within_s)


def _error(source: str, path: str, msg: str) -> ScenarioError:
    """``"<source>: <path>: <msg>"``, or ``"<source>: <path>.<field>: ..."`` when ``msg``
    itself starts with a field name (errors of the fault/limits validation)."""
    if _FIELD_PREFIX.match(msg):
        return ScenarioError(f"{source}: {path}.{msg}")
    return ScenarioError(f"{source}: {path}: {msg}")


def _load_step(
    index: int, raw: Any, source: str, faults: FaultRegistry, limits: LimitRegistry
) -> Step:
    """Validate one step (see :func:`load_scenario`)."""
    where = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise _error(source, where, f"expected a mapping with 'at' and one action, got {raw!r:.80}")
    for key in raw:
        if key != "at" and key not in ACTIONS:
            raise _error(
                source, f"{where}.{key}", f"unexpected field (fields: at, {', '.join(ACTIONS)})"
            )
    actions = [a for a in ACTIONS if a in raw]
    if len(actions) != 1:
        raise _error(
            source, where, f"needs exactly one of {', '.join(ACTIONS)}, got {actions or 'none'}"
        )
    if "at" not in raw:
        raise _error(source, f"{where}.at", "required")
    try:
        at_s = parse_duration(raw["at"])
    except ValueError as exc:
        raise _error(source, f"{where}.at", str(exc)) from None
    action = actions[0]
    spec = raw[action]
    try:
        if action == "clear":
            spec = _check_clear(spec, faults)
        elif not isinstance(spec, dict):
            raise SpecError(f"expected a mapping, got {spec!r:.80}")
        elif action == "fault":
            faults.validate(spec)
        elif action == "consume":
            limits.validate_consume(spec)
        else:
            limits.validate_config(spec)
    except SpecError as exc:
        raise _error(source, f"{where}.{action}", str(exc)) from None
    return Step(index, raw["at"], at_s, action, spec)


def _check_clear(spec: Any, faults: FaultRegistry) -> Any:
    """``clear``: ``"all"`` or ``{exchange, endpoint?}``, checked like ``fault: none``."""
    if spec == "all":
        return spec
    if not isinstance(spec, dict):
        raise SpecError(f"expected 'all' or a mapping with exchange (and endpoint), got {spec!r}")
    for key in spec:
        if key not in ("exchange", "endpoint"):
            raise SpecError(f"{key}: unexpected field for clear (its fields: endpoint, exchange)")
    faults.validate({**spec, "fault": "none"})
    return dict(spec)


def shipped_scenarios() -> list[str]:
    """Names of the scenarios shipped in :data:`SCENARIO_DIR`, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yml"))


def find_scenario(name_or_path: str) -> Path:
    """Resolve a shipped scenario name (``"binance-outage"``) or a path to a YAML file.

    Raises:
        ScenarioError: no such scenario/file (the message lists the shipped names).
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yml", ".yaml") or "/" in name_or_path:
        if candidate.is_file():
            return candidate
        raise ScenarioError(f"scenario: no such file {name_or_path!r}")
    if _NAME.fullmatch(name_or_path):
        path = SCENARIO_DIR / f"{name_or_path}.yml"
        if path.is_file():
            return path
    shipped = ", ".join(shipped_scenarios())
    raise ScenarioError(f"name: unknown scenario {name_or_path!r} (shipped: {shipped})")


def load_scenario_file(
    name_or_path: str, *, faults: FaultRegistry, limits: LimitRegistry
) -> Scenario:
    """:func:`find_scenario` + YAML parsing + :func:`load_scenario` (source = file name).

    Raises:
        ScenarioError: unknown name, unreadable file, invalid YAML or invalid content.
    """
    path = find_scenario(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path.name}: cannot read scenario ({exc})") from None
    return load_scenario(data, path.name, faults=faults, limits=limits)
