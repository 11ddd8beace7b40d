"""The monitoring contract shared by the tests of tests/monitoring: where the Prometheus and
Alertmanager files are, the rules and alerts they define, the metrics the exporter publishes, the
receivers, and helpers to run the real tools (promtool, amtool) and read PromQL. Not a test
module: test_rules.py (rule files), test_thresholds.py (thresholds.yml and its rendering),
test_alertmanager_config.py (routing, inhibition, timing), test_dashboards.py and the others
import from here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.metrics import ExporterMetrics
from tests.monitoring.market_contract import MARKET_METRICS

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
UNIT_TEST_FILES = sorted((PROM_DIR / "tests").glob("*_test.yml"))
ROUTING_CASES_FILE = PROM_DIR / "tests" / "alertmanager-routing.yml"
THRESHOLDS_FILE = PROM_DIR / "thresholds.yml"
THRESHOLD_RULES_FILE = PROM_DIR / "rules" / "exchange-thresholds.yml"
RENDER_THRESHOLDS = PROM_DIR / "render_thresholds.py"
AM_CONFIG = REPO / "deploy" / "alertmanager.yml"
ALERTS_DOC = REPO / "docs" / "alerts.md"

# The mixin's config (prometheus/thresholds.yml `config`): rendered into the rules, their tests
# and the dashboards by `make rules`.
MIXIN_CONFIG = yaml.safe_load(THRESHOLDS_FILE.read_text(encoding="utf-8"))["config"]
EXPORTER_SELECTOR: str = MIXIN_CONFIG["exporter_selector"]
# The scrape job the selector names (prometheus/prometheus.yml must have it).
EXPORTER_JOB = dict(re.findall(r'(\w+)="([^"]*)"', EXPORTER_SELECTOR)).get("job", "")


def runbook_url(alertname: str) -> str:
    """The runbook_url an alert must carry: thresholds.yml `config.runbook_url`, filled in."""
    return str(MIXIN_CONFIG["runbook_url"]).format(alertname=alertname, anchor=alertname.lower())


def _exporter_metric_names() -> set[str]:
    """Series names the exporter publishes, read from its own registry (the contract)."""
    names = set()
    for family in ExporterMetrics().registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}{s}" for s in ("_bucket", "_sum", "_count")}
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:
            names.add(family.name)
    return names


# The WebSocket stream series of issue 13, exactly as the exporter must publish them (names and
# labels); the stream rules, tests and dashboards are written against this contract, and
# test_exporter_publishes_the_stream_metrics checks it against the exporter's registry.
STREAM_METRICS: dict[str, tuple[str, ...]] = {
    "exchange_ws_connected": ("exchange",),
    "exchange_ws_up": ("exchange", "channel"),
    "exchange_ws_messages_total": ("exchange", "channel"),
    "exchange_ws_last_message_timestamp_seconds": ("exchange", "channel"),
    "exchange_ws_message_lag_seconds_bucket": ("exchange", "channel", "le"),
    "exchange_ws_message_lag_seconds_sum": ("exchange", "channel"),
    "exchange_ws_message_lag_seconds_count": ("exchange", "channel"),
    "exchange_ws_reconnects_total": ("exchange", "reason"),
    "exchange_ws_sequence_gaps_total": ("exchange", "channel"),
    "exchange_ws_checksum_mismatches_total": ("exchange", "channel"),
    "exchange_ws_book_resyncs_total": ("exchange",),
    "exchange_ws_book_crossed_total": ("exchange",),
    "exchange_ws_subscription_errors_total": ("exchange", "channel"),
    "exchange_ws_ping_rtt_seconds": ("exchange",),
}
STREAM_RECONNECT_REASONS = frozenset(
    {"closed_by_server", "ping_timeout", "stale", "error", "resync", "scheduled", "maintenance"}
)

# The API-key health series of issue 14 (exporter/keys/metrics.py), names and labels; the key
# rules (exchange-key-alerts.yml), their tests and the dashboards' "API keys" rows are written
# against this contract, and test_exporter_publishes_the_key_metrics checks it against the
# exporter's registry.
KEY_METRICS: dict[str, tuple[str, ...]] = {
    "exchange_api_key_up": ("exchange", "key"),
    "exchange_api_key_checks_total": ("exchange", "key", "result"),
    "exchange_api_key_expiry_timestamp_seconds": ("exchange", "key"),
    "exchange_api_key_permission": ("exchange", "key", "permission"),
    "exchange_api_key_ip_restricted": ("exchange", "key"),
}
# exporter.keys.model.KeyResult and Permission: the `result` and `permission` label values.
KEY_RESULTS = frozenset(
    {
        "ok",
        "invalid_key",
        "invalid_signature",
        "timestamp",
        "ip_not_allowed",
        "expired",
        "permission_denied",
        "rate_limited",
        "other",
    }
)
KEY_PERMISSIONS = frozenset({"read", "trade", "withdraw", "transfer"})
# The results that are the key's own fault: ExchangeApiKeyInvalid fires on these and only these.
KEY_AUTH_RESULTS = frozenset(
    {"invalid_key", "invalid_signature", "ip_not_allowed", "expired", "permission_denied"}
)

EXPORTER_METRICS = (
    _exporter_metric_names() | set(STREAM_METRICS) | set(KEY_METRICS) | set(MARKET_METRICS)
)
# Series Prometheus itself writes that rules may use: `up` of the exporter's scrape job, and
# ALERTS (error-rate and budget alerts stay quiet for windows holding an incident already
# reported by another alert).
RULE_BUILTINS = {"up", "ALERTS"}
# Series Prometheus itself writes, usable in dashboards.
PROMETHEUS_BUILTINS = {"up", "ALERTS", "ALERTS_FOR_STATE"}

# Alerts about the monitoring itself: they carry no `exchange` label (documented in
# prometheus/rules/exchange-alerts.yml and docs/alerts.md). Every other alert must have one.
GLOBAL_ALERTS = {
    "ExchangeExporterDown",
    "ExchangeMonitorNetworkDown",
    "ExchangeMonitorDnsFailing",
    "Watchdog",
}
# Global alerts nothing may mute. ExchangeMonitorDnsFailing (our resolver) is muted by the
# canary's ExchangeMonitorNetworkDown only, the wider statement (test_inhibition_hierarchy).
NEVER_MUTED = GLOBAL_ALERTS - {"ExchangeMonitorDnsFailing"}
# The always-firing dead man's switch has no "must not fire" case.
ALWAYS_FIRING = {"Watchdog"}

SEVERITY_RECEIVERS = {
    "critical": "exchange-watch-critical",
    "warning": "exchange-watch-warning",
    "info": "exchange-watch-info",
}
SEVERITIES = {*SEVERITY_RECEIVERS, "none"}
ROOT_RECEIVER = "exchange-watch-receiver"
HEARTBEAT_RECEIVER = "exchange-watch-heartbeat"
RECEIVER_URLS = {
    ROOT_RECEIVER: "http://receiver:8080/alerts",
    "exchange-watch-critical": "http://receiver:8080/alerts/critical",
    "exchange-watch-warning": "http://receiver:8080/alerts/warning",
    "exchange-watch-info": "http://receiver:8080/alerts/info",
    HEARTBEAT_RECEIVER: "http://receiver:8080/heartbeat",
}
# Numbers an alert expression may contain: comparisons with 0/1 (up, maintenance, circuit,
# boolean gauges), `1 - objective`, and the SRE-workbook burn-rate factors, which are part of
# the alert's definition; 86400, seconds per day (thresholds in days compared with Unix
# seconds); 10000, basis points per unit (thresholds in bps compared with log returns); and 3,
# the number of exchanges from which a median can tell an outlier (ExchangePriceDeviation: with
# two, nobody can tell who is wrong). Every other number comes from prometheus/thresholds.yml.
ALLOWED_ALERT_NUMBERS = {0.0, 1.0, 3.0, 14.4, 6.0, 10000.0, 86400.0}
# Generous: promtool runs hours of 5 s evaluations in some unit tests, on shared, loaded hosts.
TOOL_TIMEOUT_S = 180


# --------------------------------------------------------------------------------------------
# helpers


def _tool(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.fail(
        f"{' or '.join(repr(n) for n in names)} is not on PATH. These tests need the real "
        "Prometheus tools: `apt-get install prometheus prometheus-alertmanager` (Debian) or the "
        "upstream release binaries (promtool, amtool, alertmanager).",
        pytrace=False,
    )


def _run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


def _assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"`{' '.join(proc.args)}` exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _rules(kind: str) -> list[tuple[Path, dict[str, Any]]]:
    """All rules of one kind ("alert" or "record") as (file, rule)."""
    return [
        (path, rule)
        for path in RULE_FILES
        for group in _load_yaml(path)["groups"]
        for rule in group["rules"]
        if kind in rule
    ]


def _alert_id(rule: dict[str, Any]) -> str:
    return f"{rule['alert']}[{rule.get('labels', {}).get('severity')}]"


ALERT_RULES = _rules("alert")
RECORDING_RULES = _rules("record")
ALERT_NAMES = sorted({rule["alert"] for _, rule in ALERT_RULES})
ALERT_IDS = [_alert_id(rule) for _, rule in ALERT_RULES]
RULE_GROUPS = [group["name"] for path in RULE_FILES for group in _load_yaml(path)["groups"]]
RECORDING_GROUPS = [
    group["name"]
    for path in RULE_FILES
    for group in _load_yaml(path)["groups"]
    if all("record" in rule for rule in group["rules"])
]


# Every alert_rule_test entry of every promtool unit test file, as (file, entry).
ALERT_TESTS = [
    (path, entry)
    for path in UNIT_TEST_FILES
    for test in _load_yaml(path)["tests"]
    for entry in test.get("alert_rule_test", [])
]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$(?:\{[^}]*\}|\w+)")
_MODIFIER = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*")
_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (enough PromQL for rules and dashboards)."""
    expr = _STRING.sub('""', expr)
    expr = _GRAFANA_VAR.sub("", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = _MODIFIER.sub(" ", expr)  # label lists of aggregations and vector matching
    names = set()
    for match in _IDENT.finditer(expr):
        if expr[match.end() :].lstrip().startswith("("):
            continue  # function or aggregation operator
        if match.group().lower() not in _PROMQL_WORDS:
            names.add(match.group())
    return names


def promql_numbers(expr: str) -> set[float]:
    """Number literals in a PromQL expression (outside strings, ranges and metric names)."""
    expr = _STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    return {
        float(m.group())
        for m in re.finditer(r"(?<![\w:.])\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w:])", expr, re.I)
    }


RECORDED_METRICS = {rule["record"] for _, rule in RECORDING_RULES}
# Everything a rule may select: the exporter's series and the recording rules' outputs.
KNOWN_METRICS = EXPORTER_METRICS | RECORDED_METRICS


def _exporter_label_names() -> dict[str, set[str]]:
    """Series name -> label names, from the exporter's registry (families without children
    are described by their documented label names)."""
    labels: dict[str, set[str]] = {}
    for family in ExporterMetrics().registry.collect():
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def selects_exporter(name: str, expr: str) -> bool:
    """Every selector of series ``name`` in ``expr`` starts with the exporter selector."""
    braces = re.findall(rf"(?<![\w:]){re.escape(name)}(\{{[^}}]*\}})?", expr)
    return bool(braces) and all(
        re.match(rf"\{{{re.escape(EXPORTER_SELECTOR)}\s*[,}}]", b) for b in braces
    )
