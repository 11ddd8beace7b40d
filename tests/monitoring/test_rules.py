"""Checks for the monitoring configuration: Prometheus rules and thresholds, Alertmanager routing
and inhibition, and the alert documentation.

Uses the real tools (Debian packages `prometheus` and `prometheus-alertmanager`): promtool,
amtool and prometheus-alertmanager (upstream: alertmanager) must be on PATH. Nothing is
skipped; a missing tool fails with a message saying what to install. Grafana dashboards are
checked in tests/monitoring/test_dashboards.py.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.metrics import ExporterMetrics
from tests.monitoring.market_contract import MARKET_ALERTS, MARKET_METRICS

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


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _tool("amtool")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    # Debian renames the upstream `alertmanager` binary.
    return _tool("prometheus-alertmanager", "alertmanager")


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


# --------------------------------------------------------------------------------------------
# Prometheus


@pytest.mark.e2e
def test_prometheus_config_is_valid(promtool: str) -> None:
    # Run from the config's directory too: rule_files must not depend on the working directory.
    _assert_ok(_run(promtool, "check", "config", PROM_CONFIG.name, cwd=PROM_DIR))
    _assert_ok(_run(promtool, "check", "config", _rel(PROM_CONFIG)))


def test_prometheus_config_contract() -> None:
    """What the stack and the native runner rely on (it rewrites static targets per job)."""
    config = _load_yaml(PROM_CONFIG)
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["evaluation_interval"] == "5s"
    assert config["rule_files"] == ["rules/*.yml"]

    [alertmanagers] = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"] == [{"targets": ["alertmanager:9093"]}]

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"]), "duplicate job_name"
    assert EXPORTER_JOB in jobs, (
        f"thresholds.yml config.exporter_selector ({EXPORTER_SELECTOR}) names no scrape job of "
        f"{_rel(PROM_CONFIG)}"
    )
    assert jobs[EXPORTER_JOB]["static_configs"] == [{"targets": ["exporter:9101"]}]
    # The fast path (issue 18): the exporter every second, per job; the rest at the global 5 s.
    assert (jobs[EXPORTER_JOB]["scrape_interval"], jobs[EXPORTER_JOB]["scrape_timeout"]) == (
        "1s",
        "1s",
    )
    for name, job in jobs.items():
        if name != EXPORTER_JOB:
            assert "scrape_interval" not in job, f"job {name}: the global 5 s interval"
    for name, job in jobs.items():
        [static] = job["static_configs"]
        assert len(static["targets"]) == 1, f"job {name}: one target per component"


def _exporter_label_names() -> dict[str, set[str]]:
    """Series name -> label names, from the exporter's registry (families without children
    are described by their documented label names)."""
    labels: dict[str, set[str]] = {}
    for family in ExporterMetrics().registry.collect():
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def test_exporter_publishes_the_stream_metrics() -> None:
    """The exporter's registry has every stream series the rules and dashboards use (issue 13).
    Labels are checked where the registry already holds a child (label names of a family without
    children are not exposed by prometheus_client)."""
    missing = set(STREAM_METRICS) - _exporter_metric_names()
    assert not missing, (
        f"the exporter does not publish {sorted(missing)}: prometheus/rules/"
        "exchange-stream-*.yml and the dashboards' WebSocket rows use them"
    )
    labels = _exporter_label_names()
    for name, expected in STREAM_METRICS.items():
        if labels.get(name):
            assert labels[name] == set(expected), f"{name}: labels {sorted(labels[name])}"


def test_stream_rules_use_the_documented_reconnect_reasons() -> None:
    """`reason` values in the stream rules are the exporter's (exporter.streams.events)."""
    from exporter.streams.events import ReconnectReason

    assert {r.value for r in ReconnectReason} == STREAM_RECONNECT_REASONS
    for path, rule in ALERT_RULES + RECORDING_RULES:
        for value in re.findall(r'reason(?:!=|=)"([^"]*)"', rule["expr"]):
            assert value in STREAM_RECONNECT_REASONS, f"{_rel(path)}: reason {value!r}"


def test_exporter_publishes_the_key_metrics() -> None:
    """The exporter's registry has every API-key series the key rules and dashboards use
    (issue 14), with the documented labels where the registry already holds a child."""
    missing = set(KEY_METRICS) - _exporter_metric_names()
    assert not missing, (
        f"the exporter does not publish {sorted(missing)}: prometheus/rules/"
        "exchange-key-alerts.yml and the dashboards' API keys rows use them"
    )
    labels = _exporter_label_names()
    for name, expected in KEY_METRICS.items():
        if labels.get(name):
            assert labels[name] == set(expected), f"{name}: labels {sorted(labels[name])}"


def test_key_label_values_are_the_exporters() -> None:
    """`result` and `permission` values in the key rules are exporter.keys.model's."""
    from exporter.keys.model import KeyResult, Permission

    assert {r.value for r in KeyResult} == KEY_RESULTS
    assert {p.value for p in Permission} == KEY_PERMISSIONS
    key_rules = [(p, r) for p, r in ALERT_RULES if "exchange_api_key_" in r["expr"]]
    assert key_rules, "no API-key alert rules"
    for path, rule in key_rules:
        for values in re.findall(r'result(?:!~|=~|!=|=)"([^"]*)"', rule["expr"]):
            assert set(values.split("|")) <= KEY_RESULTS, f"{_rel(path)}: result {values!r}"
        for values in re.findall(r'permission(?:!~|=~|!=|=)"([^"]*)"', rule["expr"]):
            assert set(values.split("|")) <= KEY_PERMISSIONS, f"{_rel(path)}: {values!r}"


def test_probe_results_in_rules_are_the_exporters() -> None:
    """`result` values that rules and their annotations read from exchange_api_requests_total
    are exporter.profiles.base.Result's (the key rules' `result` is KeyResult, checked above)."""
    from exporter.profiles.base import Result

    results = {r.value for r in Result}
    assert {"dns_error", "tls_error", "connect_error"} <= results
    for path, rule in ALERT_RULES + RECORDING_RULES:
        text = rule["expr"] + " ".join(rule.get("annotations", {}).values())
        if "exchange_api_requests_total" not in text:
            continue
        for values in re.findall(r'result(?:!~|=~|!=|=)"([^"]*)"', text):
            unknown = set(values.split("|")) - results
            assert not unknown, f"{_rel(path)}: {rule.get('alert') or rule['record']}: {unknown}"


def test_only_auth_class_results_make_a_key_invalid() -> None:
    """ExchangeApiKeyInvalid reads exactly the results that are the key's own fault: never
    timestamp (our clock), rate_limited or other (the exchange or the network)."""
    [rule] = [r for _, r in ALERT_RULES if r["alert"] == "ExchangeApiKeyInvalid"]
    [values] = re.findall(r'result=~"([^"]*)"', rule["expr"])
    assert set(values.split("|")) == KEY_AUTH_RESULTS
    assert "exchange_api_key_up" in rule["expr"], "it must also require the key to be down"


@pytest.mark.e2e
@pytest.mark.parametrize("path", RULE_FILES, ids=_rel)
def test_rule_file_is_valid(promtool: str, path: Path) -> None:
    _assert_ok(_run(promtool, "check", "rules", path))


def test_rule_files_are_all_loaded() -> None:
    """prometheus.yml loads rules/*.yml: a rule file with another extension would be ignored."""
    stray = [p for p in (PROM_DIR / "rules").iterdir() if p.suffix != ".yml"]
    assert not stray, f"not matched by rule_files (rules/*.yml): {stray}"
    assert RULE_FILES, "no rule files found"


@pytest.mark.e2e
@pytest.mark.parametrize("path", UNIT_TEST_FILES, ids=_rel)
def test_promtool_unit_tests(promtool: str, path: Path) -> None:
    _assert_ok(_run(promtool, "test", "rules", path))


def test_every_file_in_prometheus_tests_is_run() -> None:
    run = {*UNIT_TEST_FILES, ROUTING_CASES_FILE}
    stray = [p for p in (PROM_DIR / "tests").iterdir() if p.is_file() and p not in run]
    assert not stray, f"never run: {stray} (promtool tests must be named *_test.yml)"
    assert UNIT_TEST_FILES, "no promtool unit tests found"


@pytest.mark.parametrize("path", UNIT_TEST_FILES, ids=_rel)
def test_unit_tests_evaluate_groups_in_a_fixed_order(path: Path) -> None:
    """promtool evaluates rule groups in random order unless told: list every group, the
    recording groups first, so that alerts always see this step's recorded values."""
    order = _load_yaml(path).get("group_eval_order")
    assert order, f"{_rel(path)}: no group_eval_order"
    assert sorted(order) == sorted(RULE_GROUPS), f"{_rel(path)}: group_eval_order != rule groups"
    assert set(order[: len(RECORDING_GROUPS)]) == set(RECORDING_GROUPS), (
        f"{_rel(path)}: recording groups must come first"
    )
    assert order[0] == "exchange-thresholds", f"{_rel(path)}: thresholds first"


def test_alerts_are_unique_by_name_and_severity() -> None:
    """An alert name may have two rules only for two levels (warning, critical) of one alert."""
    duplicates = {i for i in ALERT_IDS if ALERT_IDS.count(i) > 1}
    assert not duplicates, f"alert defined more than once: {sorted(duplicates)}"


@pytest.mark.parametrize(("path", "rule"), ALERT_RULES, ids=ALERT_IDS)
def test_every_alert_has_a_firing_unit_test(path: Path, rule: dict[str, Any]) -> None:
    severity = rule["labels"]["severity"]
    firing = [
        alert
        for _, entry in ALERT_TESTS
        if entry["alertname"] == rule["alert"]
        for alert in entry.get("exp_alerts") or []
        if alert.get("exp_labels", {}).get("severity") == severity
    ]
    assert firing, f"no promtool test in prometheus/tests expects {_alert_id(rule)} to fire"


@pytest.mark.parametrize("alertname", sorted(set(ALERT_NAMES) - ALWAYS_FIRING))
def test_every_alert_has_a_quiet_unit_test(alertname: str) -> None:
    """A boundary case: some evaluation where the alert must not fire."""
    quiet = [e for _, e in ALERT_TESTS if e["alertname"] == alertname and not e.get("exp_alerts")]
    assert quiet, f"no promtool test in prometheus/tests expects {alertname} to stay quiet"


def test_unit_tests_only_name_existing_alerts() -> None:
    """promtool passes an empty expectation for an alert that does not exist: catch typos."""
    unknown = {
        (_rel(path), entry["alertname"])
        for path, entry in ALERT_TESTS
        if entry["alertname"] not in ALERT_NAMES
    }
    assert not unknown, f"tests name alerts that no rule defines: {sorted(unknown)}"


@pytest.mark.parametrize(("path", "rule"), ALERT_RULES, ids=ALERT_IDS)
def test_alert_metadata(path: Path, rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity label"
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{name}: missing annotation {key}"
    if name not in GLOBAL_ALERTS:
        assert "$labels.exchange" in annotations["description"], f"{name}: description"
        assert "$labels.exchange" in annotations["summary"], f"{name}: summary names exchange"
    assert annotations["runbook_url"] == runbook_url(name)


@pytest.mark.parametrize(("path", "rule"), ALERT_RULES, ids=ALERT_IDS)
def test_alert_fires_with_exchange_and_severity(path: Path, rule: dict[str, Any]) -> None:
    """Every expected firing alert in the unit tests carries the rule's severity, and
    `exchange` unless it is one of the documented global alerts (which must not have it)."""
    name = rule["alert"]
    severity = rule["labels"]["severity"]
    for test_path, entry in ALERT_TESTS:
        if entry["alertname"] != name:
            continue
        for alert in entry.get("exp_alerts") or []:
            labels = alert.get("exp_labels", {})
            if labels.get("severity") != severity:
                continue
            if name in GLOBAL_ALERTS:
                assert "exchange" not in labels, f"{_rel(test_path)}: global {name} has exchange"
            else:
                assert labels.get("exchange"), f"{_rel(test_path)}: {name} without exchange"
            for key, value in rule["labels"].items():
                assert labels.get(key) == value, f"{_rel(test_path)}: {name} label {key}"


def test_thresholds_table_lists_every_alert() -> None:
    """The alerts file documents its alerts in a table: | alert | severity | threshold | for |."""
    for path in RULE_FILES:
        alerts = {_alert_id(rule): rule for p, rule in ALERT_RULES if p == path}
        if not alerts:
            continue
        text = path.read_text(encoding="utf-8")
        assert "# THRESHOLDS" in text, f"{_rel(path)}: no THRESHOLDS section"
        table = {
            f"{m['alert']}[{m['severity']}]": m["for"]
            for m in re.finditer(
                r"^#\s*\|\s*(?P<alert>[A-Z]\w+)\s*\|\s*(?P<severity>\w+)\s*\|[^|]*\|"
                r"\s*(?P<for>\S+)\s*\|",
                text,
                re.M,
            )
        }
        for alert_id, rule in alerts.items():
            assert alert_id in table, f"{_rel(path)}: {alert_id} missing from the THRESHOLDS table"
            assert table[alert_id] == rule.get("for", "0s"), f"{alert_id}: `for` differs"


@pytest.mark.parametrize(("path", "rule"), ALERT_RULES, ids=ALERT_IDS)
def test_alerts_take_thresholds_from_thresholds_yml(path: Path, rule: dict[str, Any]) -> None:
    """No threshold is hard-coded in an alert: numbers come from exchange:threshold:* series."""
    numbers = promql_numbers(rule["expr"]) - ALLOWED_ALERT_NUMBERS
    assert not numbers, (
        f"{_alert_id(rule)} compares with {sorted(numbers)}: put the number in "
        "prometheus/thresholds.yml and join exchange:threshold:<key> on (exchange)"
    )


@pytest.mark.parametrize(
    ("path", "rule"),
    ALERT_RULES + RECORDING_RULES,
    ids=ALERT_IDS + [rule["record"] for _, rule in RECORDING_RULES],
)
def test_rule_expressions_use_known_metrics(path: Path, rule: dict[str, Any]) -> None:
    names = promql_metric_names(rule["expr"])
    unknown = names - KNOWN_METRICS - RULE_BUILTINS
    assert not unknown, f"{_rel(path)}: unknown metric names {sorted(unknown)}"
    # Raw series are selected with the exporter's selector, first in the braces (where
    # `make rules` finds it when the selector changes).
    for name in names - RECORDED_METRICS - {"ALERTS"}:
        assert selects_exporter(name, rule["expr"]), (
            f"{_rel(path)}: select {name} with {{{EXPORTER_SELECTOR}, ...}}"
        )


def selects_exporter(name: str, expr: str) -> bool:
    """Every selector of series ``name`` in ``expr`` starts with the exporter selector."""
    braces = re.findall(rf"(?<![\w:]){re.escape(name)}(\{{[^}}]*\}})?", expr)
    return bool(braces) and all(
        re.match(rf"\{{{re.escape(EXPORTER_SELECTOR)}\s*[,}}]", b) for b in braces
    )


@pytest.mark.parametrize(
    ("path", "rule"), RECORDING_RULES, ids=[rule["record"] for _, rule in RECORDING_RULES]
)
def test_recording_rule_names_follow_convention(path: Path, rule: dict[str, Any]) -> None:
    """level:metric:operations, https://prometheus.io/docs/practices/rules/."""
    assert re.fullmatch(r"[a-z_]+:[a-z][a-z0-9_]*:[a-z0-9_]+", rule["record"]), rule["record"]


def test_recording_rules_are_unique() -> None:
    names = [rule["record"] for _, rule in RECORDING_RULES]
    assert len(names) == len(set(names)), "a recording rule name is defined twice"


def test_promql_metric_name_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (exchange, le) (rate(a_bucket{le!="1", x=~"$v"}'
        "[$__rate_interval]))) > 1 unless on (exchange) max without (job) (b) == bool 0"
        ' or label_replace(c offset 5m, "d", "$1", "e", "(.*)") * 1e3'
    )
    assert promql_metric_names(expr) == {"a_bucket", "b", "c"}
    assert promql_numbers(expr) == {0.99, 1.0, 0.0, 1000.0}
    assert promql_numbers('x:y:p99_5m{a="0.5"}[5m] > 14.4') == {14.4}


# --------------------------------------------------------------------------------------------
# Thresholds (prometheus/thresholds.yml -> rules/exchange-thresholds.yml)


def _render(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, RENDER_THRESHOLDS, *args)


@pytest.mark.e2e
def test_threshold_rules_are_up_to_date() -> None:
    """Everything rendered from thresholds.yml must match it: the generated threshold rules,
    and the exporter selector and runbook links of the rules, the promtool tests and the
    dashboards. Run `make rules` after editing."""
    proc = _render("--check")
    assert proc.returncode == 0, (
        f"rendered files are out of date with {_rel(THRESHOLDS_FILE)}: run "
        f"`make rules` (python {_rel(RENDER_THRESHOLDS)})\n{proc.stderr}"
    )


def test_every_threshold_is_used_and_every_used_threshold_exists() -> None:
    # Durations (a rule's `for`, e.g. api_key_invalid_for) are rendered into the rules, not
    # into series: see test_for_durations_from_thresholds_are_rendered_into_their_rules.
    defaults = _load_yaml(THRESHOLDS_FILE)["defaults"]
    keys = {k for k, v in defaults.items() if not isinstance(v, str)}
    generated = {r["record"] for p, r in RECORDING_RULES if p == THRESHOLD_RULES_FILE}
    assert generated == {f"exchange:threshold:{k}" for k in keys}
    used = {
        name
        for p, rule in ALERT_RULES + RECORDING_RULES
        if p != THRESHOLD_RULES_FILE
        for name in promql_metric_names(rule["expr"]) | _template_queries(rule)
        if name.startswith("exchange:threshold:")
    }
    assert used == generated, f"unused thresholds: {sorted(generated - used)}"


_FOR_MARKER = re.compile(r"^\s*for:\s*(\S+)\s+#\s*thresholds\.yml\s+(\w+)\s*$", re.M)


def test_for_durations_from_thresholds_are_rendered_into_their_rules() -> None:
    """Every duration of thresholds.yml `defaults` (a rule's `for`) is the `for` of the rule
    line marked `# thresholds.yml <key>`, and every marker names one."""
    defaults = _load_yaml(THRESHOLDS_FILE)["defaults"]
    durations = {k: v for k, v in defaults.items() if isinstance(v, str)}
    assert durations == {"api_key_invalid_for": "1m"}, "shipped durations (promtool tests use 1m)"
    marked = {
        key: value
        for path in RULE_FILES
        for value, key in _FOR_MARKER.findall(path.read_text(encoding="utf-8"))
    }
    assert marked == durations
    [rule] = [r for _, r in ALERT_RULES if r["alert"] == "ExchangeApiKeyInvalid"]
    assert rule["for"] == durations["api_key_invalid_for"]


@pytest.mark.e2e
def test_a_changed_for_duration_reaches_its_rule_and_table(tmp_path: Path, promtool: str) -> None:
    """`make rules` writes thresholds.yml's api_key_invalid_for into the rule's `for:` and its
    THRESHOLDS row, and the result is a valid rule file; the shipped files stay untouched."""
    for part in ("prometheus", "grafana"):
        shutil.copytree(REPO / part, tmp_path / part)
    thresholds = tmp_path / "prometheus" / "thresholds.yml"
    text = thresholds.read_text(encoding="utf-8")
    assert "\n  api_key_invalid_for: 1m\n" in text
    thresholds.write_text(text.replace("api_key_invalid_for: 1m", "api_key_invalid_for: 90s"))
    script = tmp_path / "prometheus" / "render_thresholds.py"
    _assert_ok(_run(sys.executable, script))
    rules = tmp_path / "prometheus" / "rules" / "exchange-key-alerts.yml"
    [rule] = [
        r
        for g in _load_yaml(rules)["groups"]
        for r in g["rules"]
        if r.get("alert") == "ExchangeApiKeyInvalid"
    ]
    assert rule["for"] == "90s"
    assert re.search(r"^# \| ExchangeApiKeyInvalid .*\| 90s \|$", rules.read_text(), re.M)
    _assert_ok(_run(promtool, "check", "rules", rules))
    _assert_ok(_run(sys.executable, script, "--check"))
    _assert_ok(_render("--check"))


def _template_queries(rule: dict[str, Any]) -> set[str]:
    text = " ".join(rule.get("annotations", {}).values())
    return set(re.findall(r"exchange:threshold:\w+", text))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("defaults: {latency_p99_seconds: fast}", "defaults.latency_p99_seconds: expected"),
        ("defaults: {}", "defaults.error_ratio: missing"),
        ("exchanges: {Kraken: {}}", "exchanges.Kraken: not an exchange name"),
        ("exchanges: {kraken: {latency_p99: 2}}", "exchanges.kraken.latency_p99: unknown"),
        ("exchanges: {kraken: {error_ratio: 5}}", "exchanges.kraken.error_ratio: expected"),
        (
            "exchanges: {okx: {ws_reconnects: 2.5}}",
            "exchanges.okx.ws_reconnects: expected a whole number >= 1, got 2.5",
        ),
        ("defaults: {ws_sequence_gaps: 0}", "defaults.ws_sequence_gaps: expected a whole number"),
        (
            "exchanges: {okx: {clock_skew_warning_seconds: 2}}",
            "exchanges.okx: clock_skew_warning_seconds (2) must be below",
        ),
        (
            "exchanges: {okx: {price_deviation_bps: 300}}",
            "exchanges.okx: price_deviation_bps (300) must be below price_deviation_critical_bps",
        ),
        ("defaults: {volume_spike_ratio: 1}", "defaults.volume_spike_ratio: expected a number > 1"),
        ("thresholds: {}", "thresholds: unknown section"),
        (
            "exchanges: {okx: {api_key_invalid_for: 2m}}",
            "exchanges.okx.api_key_invalid_for: a rule's `for` is the same for every exchange",
        ),
        (
            "defaults: {api_key_invalid_for: 60}",
            "defaults.api_key_invalid_for: expected a Prometheus duration above 0",
        ),
        (
            "defaults: {api_key_invalid_for: 0m}",
            "defaults.api_key_invalid_for: expected a Prometheus duration above 0",
        ),
        ("defaults: {}", "defaults.api_key_invalid_for: missing"),
        ("config: {}", "config.exporter_selector: expected label matchers"),
        (
            """config: {exporter_selector: 'job=~"a|b"', runbook_url: 'http://x/{alertname}',
                        runbook_index_url: 'http://x/'}""",
            "config.exporter_selector: expected label matchers",
        ),
        (
            """config: {exporter_selector: 'job="a", job="b"', runbook_url: 'http://x/{alertname}',
                        runbook_index_url: 'http://x/'}""",
            "config.exporter_selector: expected label matchers",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'http://x/runbooks',
                        runbook_index_url: 'http://x/'}""",
            "config.runbook_url: expected a URL with {alertname} or {anchor}",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'http://x/{name}',
                        runbook_index_url: 'http://x/'}""",
            "config.runbook_url: expected a URL with {alertname} or {anchor}",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'file:///{alertname}',
                        runbook_index_url: 'http://x/'}""",
            "config.runbook_url: expected an http(s) URL",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'http://x/{alertname}',
                        runbook_index_url: 'http://x/{alertname}'}""",
            "config.runbook_index_url: expected a URL without {placeholders}",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'http://x/{alertname}',
                        runbook_index_url: 'http://x/', runbook: 'http://y'}""",
            "config.runbook: unknown key",
        ),
    ],
)
@pytest.mark.e2e
def test_render_thresholds_reports_errors(tmp_path: Path, content: str, message: str) -> None:
    shipped = _load_yaml(THRESHOLDS_FILE)
    data = yaml.safe_load(content)
    for section in ("config", "defaults"):
        if section not in data:
            data[section] = shipped[section]
    bad = tmp_path / "thresholds.yml"
    bad.write_text(yaml.safe_dump(data))
    proc = _render("--thresholds", bad, "--output", tmp_path / "out.yml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{bad}: {message}" in proc.stderr, proc.stderr
    assert not (tmp_path / "out.yml").exists()


@pytest.mark.e2e
def test_threshold_overrides_apply_per_exchange(promtool: str, tmp_path: Path) -> None:
    """Render a thresholds file with overrides and check the series Prometheus computes:
    the override for the listed exchanges (two sharing a value), the default for the rest,
    including an exchange the file never mentions."""
    data = _load_yaml(THRESHOLDS_FILE)
    data["exchanges"] = {
        "binance": {"latency_p99_seconds": 2.5},
        "bybit": {"latency_p99_seconds": 2.5, "error_ratio": 0.2},
        "okx": {"error_ratio": 0.01},
    }
    thresholds = tmp_path / "thresholds.yml"
    thresholds.write_text(yaml.safe_dump(data))
    rules = tmp_path / "thresholds-rules.yml"
    _assert_ok(_render("--thresholds", thresholds, "--output", rules))
    _assert_ok(_run(promtool, "check", "rules", rules))
    series = [
        {
            "series": f'exchange_api_up{{{EXPORTER_SELECTOR}, exchange="{x}", endpoint="time"}}',
            "values": "1x5",
        }
        for x in ("binance", "bybit", "okx", "gate")
    ]
    default_p99 = data["defaults"]["latency_p99_seconds"]
    default_errors = data["defaults"]["error_ratio"]
    unit_test = {
        "rule_files": [rules.name],
        "evaluation_interval": "5s",
        "tests": [
            {
                "interval": "5s",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "exchange:threshold:latency_p99_seconds",
                        "eval_time": "10s",
                        "exp_samples": [
                            {"labels": f'exchange:threshold:latency_p99_seconds{{exchange="{x}"}}',
                             "value": v}
                            for x, v in (
                                ("binance", 2.5), ("bybit", 2.5),
                                ("okx", default_p99), ("gate", default_p99),
                            )
                        ],
                    },
                    {
                        "expr": "exchange:threshold:error_ratio",
                        "eval_time": "10s",
                        "exp_samples": [
                            {"labels": f'exchange:threshold:error_ratio{{exchange="{x}"}}',
                             "value": v}
                            for x, v in (
                                ("binance", default_errors), ("bybit", 0.2),
                                ("okx", 0.01), ("gate", default_errors),
                            )
                        ],
                    },
                ],
            }
        ],
    }  # fmt: skip
    test_file = tmp_path / "thresholds_test.yml"
    test_file.write_text(yaml.safe_dump(unit_test))
    _assert_ok(_run(promtool, "test", "rules", test_file.name, cwd=tmp_path))


# --------------------------------------------------------------------------------------------
# Documentation


def _doc_anchors() -> set[str]:
    """GitHub-style anchors of the headings of docs/alerts.md."""
    anchors = set()
    for line in ALERTS_DOC.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^#{1,6}\s+(.*?)\s*$", line):
            text = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            anchors.add(text)
    return anchors


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_runbook_section_exists(alertname: str) -> None:
    assert alertname.lower() in _doc_anchors(), f"docs/alerts.md has no `## {alertname}`"


def test_alerts_doc_describes_every_section() -> None:
    """Each alert section says what it means, its causes and what to do."""
    text = ALERTS_DOC.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    by_name = {s.split("\n", 1)[0].strip(): s for s in sections}
    for name in ALERT_NAMES:
        section = by_name.get(name, "")
        for heading in ("**Meaning**", "**Likely causes", "**What to do**"):
            assert heading in section, f"docs/alerts.md ## {name}: no {heading}"


def test_no_stale_runbook_links() -> None:
    assert not (REPO / "docs" / "runbooks.md").exists(), "runbooks.md was folded into alerts.md"
    for path in [*RULE_FILES, AM_CONFIG, *(REPO / "grafana" / "dashboards").glob("*.json")]:
        assert "runbooks.md" not in path.read_text(encoding="utf-8"), _rel(path)


# --------------------------------------------------------------------------------------------
# Alertmanager


ROUTING = _load_yaml(ROUTING_CASES_FILE)
AM = _load_yaml(AM_CONFIG)


@pytest.mark.e2e
def test_alertmanager_config_is_valid(amtool: str) -> None:
    _assert_ok(_run(amtool, "check-config", AM_CONFIG))


def test_alertmanager_config_contract() -> None:
    route = AM["route"]
    assert route["receiver"] == ROOT_RECEIVER
    assert route["group_by"] == ["alertname", "exchange"]
    # Alerts of no known severity: a short batch (the severity routes set their own).
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "5s",
        "1m",
        "4h",
    )
    routes = route["routes"]
    # Watchdog first and final, to the heartbeat, re-sent every minute.
    assert routes[0]["matchers"] == ['alertname="Watchdog"']
    assert routes[0]["receiver"] == HEARTBEAT_RECEIVER
    assert routes[0]["continue"] is False
    assert routes[0]["repeat_interval"] == "1m"
    assert routes[0]["group_wait"] == "0s"
    # The stale-stream route: before the severity routes, same receiver as critical, no
    # group_wait (its <= 30 s notification budget, see prometheus/thresholds.yml).
    stream = routes[1]
    assert stream["matchers"] == ['alertname="ExchangeWebSocketStale"', 'severity="critical"']
    assert stream["receiver"] == SEVERITY_RECEIVERS["critical"]
    assert (stream["group_wait"], stream["group_interval"]) == ("0s", "5s")
    # The maintenance route (an announcement, or a maintenance in progress): before the
    # severity routes, same receiver as info, a short group_wait (an announcement may come
    # minutes before the window; a maintenance mutes the exchange's pages: <= 60 s, issue 18).
    scheduled = routes[2]
    assert scheduled["matchers"] == [
        'alertname=~"ExchangeMaintenance|ExchangeMaintenanceScheduled"',
        'severity="info"',
    ]
    assert scheduled["receiver"] == SEVERITY_RECEIVERS["info"]
    assert scheduled["group_wait"] == "5s"
    severities = {r["matchers"][0]: r["receiver"] for r in routes[3:]}
    assert severities == {f'severity="{s}"': r for s, r in SEVERITY_RECEIVERS.items()}
    # Pages leave at once (issue 18); warnings wait 30 s, long enough for a critical of the
    # same alert to mute them (test_two_level_alerts_send_only_the_critical_on_a_jump).
    by_severity = {r["matchers"][0]: r for r in routes[3:]}
    assert by_severity['severity="critical"']["group_wait"] == "0s"
    assert by_severity['severity="critical"']["group_interval"] == "5s"
    assert by_severity['severity="warning"']["group_wait"] == "30s"
    assert not any(r.get("continue") for r in routes), "one receiver per alert"

    receivers = {r["name"]: r for r in AM["receivers"]}
    assert set(receivers) == set(RECEIVER_URLS)
    for name, receiver in receivers.items():
        [webhook] = receiver["webhook_configs"]
        # The native runner only rewrites URLs that start with http://receiver:8080.
        assert webhook["url"] == RECEIVER_URLS[name]
        assert webhook["max_alerts"] == 0, name
        # Heartbeats never resolve; everything else reports its resolution.
        assert webhook["send_resolved"] is (name != HEARTBEAT_RECEIVER), name


def _routes_test(amtool: str, labels: dict[str, str]) -> list[str]:
    proc = _run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    _assert_ok(proc)
    return [r.strip() for r in proc.stdout.strip().split(",")]


@pytest.mark.e2e
@pytest.mark.parametrize("case", ROUTING["routes"], ids=lambda c: c["name"])
def test_alertmanager_routes(amtool: str, case: dict[str, Any]) -> None:
    assert _routes_test(amtool, case["labels"]) == case["receivers"]


@pytest.mark.e2e
@pytest.mark.parametrize(("path", "rule"), ALERT_RULES, ids=ALERT_IDS)
def test_every_alert_reaches_its_severity_route(
    amtool: str, path: Path, rule: dict[str, Any]
) -> None:
    labels = _alert_labels(rule)
    if rule["alert"] == "Watchdog":
        expected = HEARTBEAT_RECEIVER
    else:
        expected = SEVERITY_RECEIVERS.get(rule["labels"]["severity"], ROOT_RECEIVER)
    assert _routes_test(amtool, labels) == [expected]


def _route_for(labels: dict[str, str]) -> dict[str, Any]:
    """The child route Alertmanager picks for ``labels`` (first match; no route continues),
    with the root's timings filled in where the child does not set them."""
    root = AM["route"]
    for route in root["routes"]:
        if _matches(route.get("matchers", []), labels):
            return {**{k: v for k, v in root.items() if k != "routes"}, **route}
    return root


def _exporter_scrape_interval() -> float:
    """Seconds between two scrapes of the exporter job (its own setting, else the global)."""
    from exporter.durations import parse_duration

    config = _load_yaml(PROM_CONFIG)
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == EXPORTER_JOB]
    return parse_duration(job.get("scrape_interval", config["global"]["scrape_interval"]))


def _group_interval(alertname: str) -> float:
    """Seconds between two evaluations of the group holding ``alertname``."""
    from exporter.durations import parse_duration

    default = parse_duration(_load_yaml(PROM_CONFIG)["global"]["evaluation_interval"])
    for path in RULE_FILES:
        for group in _load_yaml(path)["groups"]:
            if any(rule.get("alert") == alertname for rule in group["rules"]):
                return parse_duration(group["interval"]) if "interval" in group else default
    raise AssertionError(f"no rule group holds {alertname}")


def test_stale_stream_route_meets_its_notification_budget() -> None:
    """ExchangeWebSocketStale is notified <= 15 s after a stalled stream's last message with
    shipped defaults (issue 18): stale_after (5 s for the first channels to go stale, 10 s at
    most) + scrape + evaluation + `for` + group_wait of its route, leaving time for the
    receiver (the arithmetic in prometheus/thresholds.yml)."""
    from exporter.durations import parse_duration

    [rule] = [r for _, r in ALERT_RULES if r["alert"] == "ExchangeWebSocketStale"]
    route = _route_for(_alert_labels(rule) | {"channel": "book"})
    path = (
        1.0  # the exporter's staleness timer
        + _exporter_scrape_interval()
        + _group_interval("ExchangeWebSocketStale")
        + parse_duration(rule["for"])
        + parse_duration(route["group_wait"])
    )
    assert route["receiver"] == SEVERITY_RECEIVERS["critical"]
    stall = 5.0 + path  # a whole-stream stall: the 5 s channels (every book) go stale first
    assert stall <= 11.0, f"{stall:g} s before the receiver: no time left within 15 s"
    assert 10.0 + path <= 16.0  # a lone 10 s (trade-driven) channel
    thresholds_text = THRESHOLDS_FILE.read_text(encoding="utf-8")
    assert "= 11 s worst case" in thresholds_text, "the arithmetic in thresholds.yml is stale"


def test_hard_outage_path_fits_the_page_budget() -> None:
    """Issue 18: a hard outage (TCP reset) is notified <= 10 s after it starts. Worst case before
    the receiver: the fast endpoint's first failure (its interval, 1 s) + the further failures
    ExchangeApiDown counts (each up to 1.2 × the interval: the exporter's backoff jitter) +
    scrape + evaluation + `for` + the critical route's group_wait; the receiver has what is
    left (it waits at most 2 s for an LLM on the critical route)."""
    from exporter.durations import parse_duration

    defaults = yaml.safe_load(THRESHOLDS_FILE.read_text(encoding="utf-8"))["defaults"]
    in_a_row = defaults["api_down_consecutive_failures"]
    rules = {_alert_id(r): r for _, r in ALERT_RULES}
    down = rules["ExchangeApiDown[critical]"]
    route = _route_for(_alert_labels(down))
    fast_interval = 1.0  # deploy/exporter.yml: ping/time every second (binance, bybit)
    path = (
        fast_interval
        + (in_a_row - 1) * 1.2 * fast_interval
        + _exporter_scrape_interval()
        + _group_interval("ExchangeApiDown")
        + parse_duration(down.get("for", "0s"))
        + parse_duration(route["group_wait"])
    )
    assert route["receiver"] == SEVERITY_RECEIVERS["critical"]
    assert path <= 5.0, f"{path:g} s before the receiver leaves too little of the 10 s"
    # The IP ban and the rate limit take the same path without the second failure.
    for name in ("ExchangeIpBanned[critical]", "ExchangeRateLimited[critical]"):
        assert _group_interval(name.split("[")[0]) == 1.0, name
        assert parse_duration(rules[name].get("for", "0s")) == 0.0, name


def test_two_level_alerts_send_only_the_critical_on_a_jump() -> None:
    """Issue 18 (a clock skew paged warning, then critical, 16 s apart): for a two-level alert
    whose critical level comes with its warning level (both levels share `for` and the
    compared series), the critical reaches Alertmanager before the warning's group_wait ends,
    so the inhibit rule "critical mutes the warning of the same alert" drops the warning. The
    lag between the two firings is at most one evaluation of their group."""
    from exporter.durations import parse_duration

    inhibit = {
        (tuple(r["source_matchers"]), tuple(r["target_matchers"])): r.get("equal", [])
        for r in AM["inhibit_rules"]
    }
    assert inhibit[(('severity="critical"',), ('severity="warning"',))] == [
        "alertname",
        "exchange",
        "location",
    ]
    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for _, rule in ALERT_RULES:
        by_name.setdefault(rule["alert"], {})[rule["labels"]["severity"]] = rule
    # The levels of one measurement (ExchangeApiAvailabilityBudgetBurn's levels are two windows,
    # each its own statement; ExchangePriceDeviation's critical is a different size of move).
    two_level = {
        n: by_name[n] for n in ("ExchangeClockSkewHigh", "ExchangeRateLimitNearExhaustion")
    }
    for name, levels in two_level.items():
        warning, critical = levels["warning"], levels["critical"]
        assert warning.get("for") == critical.get("for"), f"{name}: both levels share `for`"
        warning_route = _route_for(_alert_labels(warning))
        critical_route = _route_for(_alert_labels(critical))
        lag = _group_interval(name)  # the critical can be one evaluation behind
        assert parse_duration(critical_route["group_wait"]) + lag < parse_duration(
            warning_route["group_wait"]
        ), name
    # Clock skew: both levels compare the same 30s median, which a step moves past both.
    skew = two_level["ExchangeClockSkewHigh"]
    for rule in skew.values():
        assert "exchange:exchange_clock_skew_seconds:median_over_time_30s" in rule["expr"]


# --- inhibition: the static graph


def _alert_labels(rule: dict[str, Any], exchange: str = "binance") -> dict[str, str]:
    labels = {"alertname": rule["alert"], **rule.get("labels", {})}
    if rule["alert"] not in GLOBAL_ALERTS:
        labels["exchange"] = exchange
    return labels


_MATCHER = re.compile(r'^\s*(?P<name>\w+)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>.*)"\s*$')


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Alertmanager matcher semantics: regexes are fully anchored, a missing label is ""."""
    for matcher in matchers:
        m = _MATCHER.match(matcher)
        assert m, f"unsupported matcher syntax in deploy/alertmanager.yml: {matcher!r}"
        value = labels.get(m["name"], "")
        if m["op"] in ("=~", "!~"):
            hit = re.fullmatch(m["value"], value) is not None
        else:
            hit = value == m["value"]
        if hit == m["op"].startswith("!"):
            return False
    return True


def _inhibition_edges() -> list[tuple[int, str, str]]:
    """(rule index, source alert id, target alert id) for every pair of alert rules where the
    source can mute the target: both match the rule and can agree on its `equal` labels (two
    per-exchange alerts on the same exchange, or two alerts without the label)."""
    edges = []
    for index, inhibit in enumerate(AM["inhibit_rules"]):
        for (_, src), (_, dst) in itertools.product(ALERT_RULES, repeat=2):
            src_labels, dst_labels = _alert_labels(src), _alert_labels(dst)
            if not (
                _matches(inhibit.get("source_matchers", []), src_labels)
                and _matches(inhibit.get("target_matchers", []), dst_labels)
            ):
                continue
            if all(
                src_labels.get(k, "") == dst_labels.get(k, "") for k in inhibit.get("equal", [])
            ):
                edges.append((index, _alert_id(src), _alert_id(dst)))
    return edges


INHIBITION_EDGES = _inhibition_edges()


def test_inhibit_rules_use_only_known_alerts() -> None:
    """Every alertname an inhibit rule names exists, so a renamed alert cannot silently
    escape inhibition."""
    for inhibit in AM["inhibit_rules"]:
        for matcher in inhibit.get("source_matchers", []) + inhibit.get("target_matchers", []):
            m = _MATCHER.match(matcher)
            assert m, matcher
            if m["name"] == "alertname":
                names = m["value"].split("|") if m["op"] == "=~" else [m["value"]]
                assert set(names) <= set(ALERT_NAMES), f"unknown alert in {matcher!r}"


def test_no_alerts_inhibit_each_other() -> None:
    """Alertmanager mutes every alert that a firing source matches, even if the source is
    muted itself: alerts that inhibit each other (directly or through a chain) would all be
    muted. The inhibition graph over all alert rules must have no cycle and no self-loop."""
    graph: dict[str, set[str]] = {}
    for _, src, dst in INHIBITION_EDGES:
        assert src != dst, f"{src} can inhibit other instances of itself"
        graph.setdefault(src, set()).add(dst)

    def cycle_from(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                return [*path[path.index(nxt) :], nxt]
            if found := cycle_from(nxt, [*path, nxt]):
                return found
        return None

    for start in sorted(graph):
        cycle = cycle_from(start, [start])
        assert cycle is None, f"inhibition cycle: {' -> '.join(cycle)}"


def test_inhibition_hierarchy() -> None:
    """The documented intent of the inhibit rules (deploy/alertmanager.yml)."""
    edges = {(src.split("[")[0], dst.split("[")[0]) for _, src, dst in INHIBITION_EDGES}
    symptoms = {
        "ExchangeEndpointDown",
        "ExchangeApiErrorRateHigh",
        "ExchangeApiAvailabilityBudgetBurn",
        "ExchangeApiLatencyHigh",
        "ExchangeApiLatencyDegraded",
        "ExchangeCircuitOpen",
        "ExchangeMarketDataStale",
    }
    streams = {
        "ExchangeWebSocketDown",
        "ExchangeWebSocketStale",
        "ExchangeWebSocketLagHigh",
        "ExchangeWebSocketSequenceGaps",
        "ExchangeWebSocketChecksumMismatch",
        "ExchangeWebSocketReconnecting",
    }
    stream_outage = {
        "ExchangeWebSocketDown",
        "ExchangeWebSocketStale",
        "ExchangeWebSocketLagHigh",
        "ExchangeWebSocketReconnecting",
    }
    integrity = {"ExchangeWebSocketSequenceGaps", "ExchangeWebSocketChecksumMismatch"}
    per_exchange = set(ALERT_NAMES) - GLOBAL_ALERTS
    expected = (
        {("ExchangeApiDown", s) for s in symptoms | {"ExchangeClockSkewHigh"} | stream_outage}
        | {("ExchangeMaintenance", s) for s in streams}
        | {("ExchangeIpBanned", s) for s in stream_outage - {"ExchangeWebSocketLagHigh"}}
        | {("ExchangeWebSocketDown", s) for s in stream_outage - {"ExchangeWebSocketDown"}}
        | {("ExchangeWebSocketStale", "ExchangeWebSocketReconnecting")}
        | {("ExchangeMaintenance", s) for s in symptoms | {"ExchangeApiDown"}}
        | {("ExchangeRateLimited", s) for s in symptoms | {"ExchangeApiDown"}}
        | {("ExchangeIpBanned", s) for s in symptoms | {"ExchangeApiDown", "ExchangeRateLimited"}}
        | {("ExchangeMonitorNetworkDown", a) for a in per_exchange}
        | {("ExchangeMonitorDnsFailing", a) for a in per_exchange}
        | {("ExchangeMonitorNetworkDown", "ExchangeMonitorDnsFailing")}
    )
    # Several locations (issue 16): the quorum page, maintenance, a ban or a rate limit explain
    # one location failing; that location's failure explains its own open circuit (the
    # `location` in `equal` is checked by the routing cases in a real Alertmanager).
    from_location = "ExchangeApiDownFromLocation"
    expected |= {
        (source, from_location)
        for source in ("ExchangeApiDown", "ExchangeMaintenance", "ExchangeIpBanned")
    } | {("ExchangeRateLimited", from_location), (from_location, "ExchangeCircuitOpen")}
    keys = {
        "ExchangeApiKeyInvalid",
        "ExchangeApiKeyExpiringSoon",
        "ExchangeApiKeyWithdrawEnabled",
        "ExchangeApiKeyNoIpRestriction",
        "ExchangeApiKeyTimestampRejected",
    }
    expected |= {
        ("ExchangeClockSkewHigh", "ExchangeApiKeyTimestampRejected"),
        ("ExchangeApiKeyInvalid", "ExchangeApiKeyExpiringSoon"),
    }
    market = {
        "ExchangePriceDeviation",
        "ExchangePriceSpike",
        "ExchangeVolumeSpike",
        "ExchangeBookCrossed",
    }
    forecast = "ExchangeRateLimitExhaustionPredicted"
    expected |= (
        {("ExchangeMaintenance", s) for s in market | {forecast}}
        | {("ExchangeApiDown", s) for s in market}
        | {("ExchangeRateLimited", forecast), ("ExchangeIpBanned", forecast)}
    )
    missing = expected - edges
    assert not missing, f"inhibitions missing: {sorted(missing)}"
    # Our side (the canary, our resolver) mutes every per-exchange alert.
    ours = {"ExchangeMonitorNetworkDown", "ExchangeMonitorDnsFailing"}
    # Market integrity: only maintenance, an outage, a hit limit or ban (for the forecast), our
    # network and the critical level of the same alert mute a market alert; a market alert
    # mutes nothing else, and the maintenance announcement is muted by our network only.
    market_edges = {e for e in edges if e[1] in MARKET_ALERTS and e[0] not in {*ours, e[1]}}
    assert market_edges == {e for e in expected if e[1] in MARKET_ALERTS and e[0] not in ours}, (
        sorted(market_edges)
    )
    assert not [e for e in edges if e[0] in MARKET_ALERTS and e[1] != e[0]]
    # API keys: only our network, the measured clock skew (for timestamp rejections) and a
    # rejected key (for its expiry warning) mute a key alert; an exchange outage never does,
    # and a key alert mutes no other kind of alert.
    key_edges = {e for e in edges if e[1] in keys and e[0] not in ours}
    assert key_edges == {
        ("ExchangeClockSkewHigh", "ExchangeApiKeyTimestampRejected"),
        ("ExchangeApiKeyInvalid", "ExchangeApiKeyExpiringSoon"),
    }, sorted(key_edges)
    assert not [e for e in edges if e[0] in keys and e[1] not in keys]
    # Data-integrity events stand on their own: only maintenance and our network mute them.
    integrity_sources = {src for src, dst in edges if dst in integrity}
    assert integrity_sources == {"ExchangeMaintenance", *ours}
    # Nothing about a stream mutes a REST alert.
    assert not [e for e in edges if e[0] in streams and e[1] not in streams]
    for name in NEVER_MUTED:
        assert not [e for e in edges if e[1] == name], f"{name} must never be muted"
    assert {e for e in edges if e[1] == "ExchangeMonitorDnsFailing"} == {
        ("ExchangeMonitorNetworkDown", "ExchangeMonitorDnsFailing")
    }
    assert not [e for e in edges if e[0] in {"ExchangeExporterDown", "Watchdog"}]
    # The one-location warning mutes nothing exchange-wide: only its location's circuit.
    assert {e[1] for e in edges if e[0] == from_location} == {"ExchangeCircuitOpen"}


# --- inhibition: a real Alertmanager


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


@contextmanager
def _alertmanager(binary: str, workdir: Path) -> Iterator[str]:
    """A throw-away single-node Alertmanager running deploy/alertmanager.yml; yields its URL."""
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "alertmanager.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={AM_CONFIG}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("Alertmanager did not start:\n" + log_path.read_text())
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def alertmanager_url(alertmanager_bin: str, tmp_path: Path) -> Iterator[str]:
    with _alertmanager(alertmanager_bin, tmp_path) as url:
        yield url


def _inhibited(url: str) -> dict[tuple[tuple[str, str], ...], bool]:
    """Every alert Alertmanager holds: sorted label items -> muted by an inhibit rule."""
    return {
        tuple(sorted(a["labels"].items())): bool(a["status"]["inhibitedBy"])
        for a in _http("GET", f"{url}/api/v2/alerts")
    }


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


@pytest.mark.e2e
@pytest.mark.parametrize("case", ROUTING["inhibitions"], ids=lambda c: c["name"])
def test_alertmanager_inhibitions(alertmanager_url: str, case: dict[str, Any]) -> None:
    _http("POST", f"{alertmanager_url}/api/v2/alerts", [{"labels": case["source"]}])
    _http("POST", f"{alertmanager_url}/api/v2/alerts", [{"labels": case["target"]}])

    # The inhibitor learns about the source asynchronously, within milliseconds: wait up to 3 s
    # for an expected inhibition, and watch for an unexpected one for 0.5 s.
    deadline = time.monotonic() + (3.0 if case["inhibited"] else 0.5)
    while not (inhibited := _inhibited(alertmanager_url)[_key(case["target"])]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert inhibited == case["inhibited"]
    if case["inhibited"]:
        # ... and not the other way round (both would be muted).
        assert not _inhibited(alertmanager_url)[_key(case["source"])]


@pytest.mark.parametrize(
    "rule_index",
    range(len(AM["inhibit_rules"])),
    ids=[str(r["source_matchers"][0]) for r in AM["inhibit_rules"]],
)
@pytest.mark.e2e
def test_every_inhibition_pair_in_a_real_alertmanager(
    alertmanager_bin: str, tmp_path: Path, rule_index: int
) -> None:
    """Every (source, target) pair this inhibit rule allows, both firing in a real
    Alertmanager: the target is muted, the source is not. Each pair gets an exchange of its
    own, so that pairs cannot affect each other (except through a rule without `equal`, which
    is checked alone in its own Alertmanager)."""
    rules = {_alert_id(rule): rule for _, rule in ALERT_RULES}
    pairs = [(src, dst) for i, src, dst in INHIBITION_EDGES if i == rule_index]
    assert pairs, f"inhibit rule {rule_index} matches no pair of alert rules"
    posted = []
    for n, (src, dst) in enumerate(pairs):
        source = _alert_labels(rules[src], exchange=f"pair{n}")
        target = _alert_labels(rules[dst], exchange=f"pair{n}")
        if "exchange" not in AM["inhibit_rules"][rule_index].get("equal", []):
            target["exchange"] = f"other{n}"  # no `equal`: any exchange
        posted.append((src, dst, source, target))
    with _alertmanager(alertmanager_bin, tmp_path) as url:
        alerts = [{"labels": labels} for _, _, s, t in posted for labels in (s, t)]
        _http("POST", f"{url}/api/v2/alerts", alerts)
        deadline = time.monotonic() + 5
        while True:
            state = _inhibited(url)
            wrong = [
                f"{src} -> {dst}: target muted={state.get(_key(t))}, "
                f"source muted={state.get(_key(s))}"
                for src, dst, s, t in posted
                if not (state.get(_key(t)) is True and state.get(_key(s)) is False)
            ]
            if not wrong or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert not wrong, "\n".join(wrong)
