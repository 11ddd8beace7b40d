"""Benchmark 5's expected bounds: the time to notify a scenario should take, read from the
shipped configs (the exporter's probe schedule, Prometheus' scrape and rule-group intervals, the
alert's ``for`` and thresholds, and Alertmanager's route timings). ``bench_notify`` compares
what it measures with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.stack import (
    ALERTMANAGER_CONFIG,
    DEMO_EXPORTER_CONFIG,
    PROMETHEUS_CONFIG,
    ROOT,
)
from exporter.config import load_config
from exporter.durations import parse_duration

RULES_DIR = ROOT / "prometheus" / "rules"
THRESHOLDS = ROOT / "prometheus" / "thresholds.yml"


@dataclass(frozen=True)
class Scenario:
    """One incident to measure.

    Attributes:
        key: identifier (``hard_outage``, ...).
        title: the row's name; the target uses it too.
        alertname: the alert whose firing notification is awaited.
        exchange: the exchange the fault is injected into (the alert's ``exchange`` label).
        fault: the ``POST /_control/faults`` body.
        fault_text: what the fault does, for the notes.
        detection: how the exporter's view turns bad, for the expected bound:
            ``sweep`` (the next probe fails and the exporter re-probes every other endpoint
            of the exchange at once: up to the fastest interval),
            ``all_endpoints`` (every endpoint must fail once: up to the slowest interval),
            ``first_probe`` (the first failed probe is enough: up to the fastest interval),
            ``median_window`` (the median over ``window`` must turn: about half the window).
        notify_timeout: seconds to wait for the firing message.
        resolve_timeout: seconds to wait for the resolved message after the fault is cleared.
        window: the rule's quantile window in seconds (``median_window`` only).
        min_gap: seconds between clearing one run's fault and injecting the next.
        warmup: seconds of healthy history needed before the first injection.
    """

    key: str
    title: str
    alertname: str
    exchange: str
    fault: Mapping[str, Any]
    fault_text: str
    detection: str
    notify_timeout: float
    resolve_timeout: float
    window: float = 0.0
    min_gap: float = 0.0
    warmup: float = 0.0


@dataclass(frozen=True)
class Timing:
    """The shipped intervals on one scenario's path (seconds).

    Attributes:
        scrape: the exporter job's ``scrape_interval``.
        evaluation: the alert's rule group ``interval`` (else ``evaluation_interval``).
        rule_for: the alert's ``for``.
        severity: the alert's ``severity`` label (selects the Alertmanager route).
        group_wait: the route's ``group_wait`` (a new Alertmanager group).
        group_interval: the route's ``group_interval`` (an alert added to a live group).
        probe_min: the exchange's shortest endpoint probe interval.
        probe_max: its longest.
        endpoints: how many endpoints of the exchange are probed.
        consecutive: failures in a row ExchangeApiDown waits for
            (``api_down_consecutive_failures`` in prometheus/thresholds.yml; 1 without it).
    """

    scrape: float
    evaluation: float
    rule_for: float
    severity: str
    group_wait: float
    group_interval: float
    probe_min: float
    probe_max: float
    endpoints: int
    consecutive: int = 1


@dataclass(frozen=True)
class Bounds:
    """Expected time to notify (seconds) and how it is made up.

    Attributes:
        low: best phase, new Alertmanager group.
        high: worst phase, new Alertmanager group.
        refire_low: best phase when the alert re-fires into a group that is still alive.
        refire_high: worst phase in that case.
        terms: the sum, in words.
    """

    low: float
    high: float
    refire_low: float
    refire_high: float
    terms: str

    @property
    def midpoint(self) -> float:
        """The middle of the new-group range (every phase term uniform)."""
        return (self.low + self.high) / 2


def _find_rule(alertname: str, rules_dir: Path = RULES_DIR) -> dict[str, Any]:
    """The alert rule ``alertname``, with its group's ``interval`` (if set) as ``_interval``."""
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("alert") == alertname:
                    return {**rule, "_interval": group.get("interval")}
    raise KeyError(f"no alert rule {alertname} in {rules_dir}")


def _exporter_scrape_interval(config: Mapping[str, Any]) -> str:
    """The exporter job's ``scrape_interval`` (its own, else the global one, else 1m)."""
    default = config.get("global", {}).get("scrape_interval", "1m")
    for job in config.get("scrape_configs", []) or []:
        if job.get("job_name") == "exchange-exporter":
            return str(job.get("scrape_interval", default))
    return str(default)


def _route_timing(
    config: Mapping[str, Any], severity: str, alertname: str = ""
) -> tuple[float, float]:
    """(group_wait, group_interval) of the first child route whose equality matchers all hold
    for an alert with ``alertname`` and ``severity`` (as Alertmanager picks it), inherited from
    the root route; Alertmanager's defaults (30s, 5m) where nothing sets them."""
    root = config.get("route", {})
    wait, interval = root.get("group_wait", "30s"), root.get("group_interval", "5m")
    labels = {f'severity="{severity}"', f'alertname="{alertname}"'}
    for child in root.get("routes", []) or []:
        matchers = {str(m).replace(" ", "") for m in child.get("matchers", []) or []}
        if matchers and matchers <= labels:
            wait = child.get("group_wait", wait)
            interval = child.get("group_interval", interval)
            break
    return parse_duration(wait), parse_duration(interval)


def shipped_timing(scenario: Scenario) -> Timing:
    """Read the intervals on ``scenario``'s path from the shipped config files."""
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    thresholds = (yaml.safe_load(THRESHOLDS.read_text()) or {}).get("defaults", {})
    global_block = prometheus.get("global", {})
    rule = _find_rule(scenario.alertname)
    severity = str(rule.get("labels", {}).get("severity", ""))
    group_wait, group_interval = _route_timing(
        yaml.safe_load(ALERTMANAGER_CONFIG.read_text()), severity, scenario.alertname
    )
    exchange = next(
        e for e in load_config(DEMO_EXPORTER_CONFIG).exchanges if e.name == scenario.exchange
    )
    intervals = [plan.interval for plan in exchange.endpoint_plan()]
    return Timing(
        scrape=parse_duration(_exporter_scrape_interval(prometheus)),
        evaluation=parse_duration(
            rule.get("_interval") or global_block.get("evaluation_interval", "1m")
        ),
        rule_for=parse_duration(rule.get("for", 0)),
        severity=severity,
        group_wait=group_wait,
        group_interval=group_interval,
        probe_min=min(intervals),
        probe_max=max(intervals),
        endpoints=len(intervals),
        consecutive=int(thresholds.get("api_down_consecutive_failures", 1)),
    )


def expected_bounds(scenario: Scenario, timing: Timing) -> Bounds:
    """The time to notify that the shipped intervals allow for ``scenario``.

    Every phase term (when the next probe, scrape and evaluation come) lies between 0 and its
    interval; ``for`` and ``group_wait`` are fixed. The receiver's own time (diagnosis, Slack
    call, at most one message per second per webhook) is left out: tens of milliseconds.
    """
    t = timing
    if scenario.detection == "all_endpoints":
        det_low, det_high = 0.0, t.probe_max
        det_text = (
            f"all {t.endpoints} endpoints fail within one probe interval (≤{t.probe_max:g} s)"
        )
        extra = 0.0
    elif scenario.detection == "sweep":
        # ExchangeApiDown counts consecutive failures: after the first, each further one comes
        # one (jittered, x0.8-1.2) transport-backoff interval later.
        more = max(t.consecutive - 1, 0)
        det_low, det_high = more * t.probe_min * 0.8, t.probe_min + more * t.probe_min * 1.2
        det_text = (
            f"the next probe fails (≤{t.probe_min:g} s), the exporter re-probes the other "
            f"{t.endpoints - 1} endpoints at once, and {more} more failure(s) in a row follow "
            f"(~{t.probe_min:g} s each)"
        )
        extra = 0.0
    elif scenario.detection == "first_probe":
        det_low, det_high = 0.0, t.probe_min
        det_text = f"the next probe gets the ban (≤{t.probe_min:g} s)"
        extra = 0.0
    elif scenario.detection == "median_window":
        half = scenario.window / 2
        det_low, det_high = half, half + t.probe_min
        det_text = (
            f"the {scenario.window:g} s median turns once half its window is slow "
            f"(~{half:g} s, +≤{t.probe_min:g} s to the first slow probe)"
        )
        extra = t.evaluation  # the recorded median is evaluated in its own group first
    else:
        raise ValueError(f"unknown detection {scenario.detection!r}")
    pipeline = t.scrape + t.evaluation + extra
    low = det_low + t.rule_for + t.group_wait
    high = det_high + pipeline + t.rule_for + t.group_wait
    evals = f"rule evaluation (≤{t.evaluation:g} s)"
    if extra:
        evals = f"recording + alert rule evaluation (≤{t.evaluation + extra:g} s)"
    terms = (
        f"{det_text} + scrape (≤{t.scrape:g} s) + {evals} + for {t.rule_for:g} s + "
        f"Alertmanager group_wait {t.group_wait:g} s ({t.severity} route)"
    )
    return Bounds(
        low=low,
        high=high,
        refire_low=det_low + t.rule_for,
        refire_high=high - t.group_wait + t.group_interval,
        terms=terms,
    )
