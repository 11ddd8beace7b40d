"""Checks of the Prometheus configuration and rule files: promtool validity and unit tests (every
alert fires and stays quiet in one), metadata, the metrics and thresholds the expressions use,
recording-rule names, and the alert documentation (docs/alerts.md).

Uses the real tools (Debian packages `prometheus` and `prometheus-alertmanager`); a missing tool
fails with what to install. Thresholds: test_thresholds.py; Alertmanager:
test_alertmanager_config.py; Grafana dashboards: test_dashboards.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.rules_contract import (
    ALERT_IDS,
    ALERT_NAMES,
    ALERT_RULES,
    ALERT_TESTS,
    ALERTS_DOC,
    ALLOWED_ALERT_NUMBERS,
    ALWAYS_FIRING,
    AM_CONFIG,
    EXPORTER_JOB,
    EXPORTER_SELECTOR,
    GLOBAL_ALERTS,
    KEY_AUTH_RESULTS,
    KEY_METRICS,
    KEY_PERMISSIONS,
    KEY_RESULTS,
    KNOWN_METRICS,
    PROM_CONFIG,
    PROM_DIR,
    RECORDED_METRICS,
    RECORDING_GROUPS,
    RECORDING_RULES,
    REPO,
    ROUTING_CASES_FILE,
    RULE_BUILTINS,
    RULE_FILES,
    RULE_GROUPS,
    SEVERITIES,
    STREAM_METRICS,
    STREAM_RECONNECT_REASONS,
    UNIT_TEST_FILES,
    _alert_id,
    _assert_ok,
    _exporter_label_names,
    _exporter_metric_names,
    _load_yaml,
    _rel,
    _run,
    promql_metric_names,
    promql_numbers,
    runbook_url,
    selects_exporter,
)

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
