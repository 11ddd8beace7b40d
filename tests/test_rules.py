"""Checks for the monitoring configuration: Prometheus rules, Alertmanager routing, Grafana.

Uses the real tools (Debian packages `prometheus` and `prometheus-alertmanager`): promtool,
amtool and prometheus-alertmanager (upstream: alertmanager) must be on PATH. Nothing is
skipped; a missing tool fails with a message saying what to install.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROM_DIR = REPO / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
UNIT_TEST_FILES = sorted((PROM_DIR / "tests").glob("*_test.yml"))
ROUTING_CASES_FILE = PROM_DIR / "tests" / "alertmanager-routing.yml"
AM_CONFIG = REPO / "deploy" / "alertmanager.yml"
GRAFANA_DIR = REPO / "grafana"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))

EXPORTER_JOB = "exchange-exporter"
# Metric names published by the exporter (fixed by the exporter's contract).
EXPORTER_METRICS = {
    "exchange_api_requests_total",
    "exchange_api_up",
    "exchange_api_consecutive_failures",
    "exchange_rate_limit_used",
    "exchange_rate_limit_limit",
    "exchange_clock_skew_seconds",
}
EXPORTER_HISTOGRAMS = {"exchange_api_request_duration_seconds"}
# Series Prometheus itself writes, usable in dashboards.
PROMETHEUS_BUILTINS = {"ALERTS", "ALERTS_FOR_STATE"}
SEVERITY_RECEIVERS = {"critical": "exchange-watch-critical", "warning": "exchange-watch-warning"}
SEVERITIES = {*SEVERITY_RECEIVERS, "info"}
RUNBOOK_BASE = "https://github.com/exchange-watch/exchange-watch/blob/main/docs/runbooks.md"
RECEIVER_URL_PREFIX = "http://receiver:8080/alerts"
TOOL_TIMEOUT_S = 30


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


ALERT_RULES = _rules("alert")
RECORDING_RULES = _rules("record")
ALERT_NAMES = [rule["alert"] for _, rule in ALERT_RULES]


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


RECORDED_METRICS = {rule["record"] for _, rule in RECORDING_RULES}
# Everything a rule may select: the exporter's series and the recording rules' outputs.
KNOWN_METRICS = (
    EXPORTER_METRICS
    | {f"{h}{suffix}" for h in EXPORTER_HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | RECORDED_METRICS
)


def _dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _dashboard_panels(panel.get("panels", []))  # collapsed rows


# --------------------------------------------------------------------------------------------
# Prometheus


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
    assert jobs[EXPORTER_JOB]["static_configs"] == [{"targets": ["exporter:9101"]}]
    for name, job in jobs.items():
        [static] = job["static_configs"]
        assert len(static["targets"]) == 1, f"job {name}: one target per component"


@pytest.mark.parametrize("path", RULE_FILES, ids=_rel)
def test_rule_file_is_valid(promtool: str, path: Path) -> None:
    _assert_ok(_run(promtool, "check", "rules", path))


def test_rule_files_are_all_loaded() -> None:
    """prometheus.yml loads rules/*.yml: a rule file with another extension would be ignored."""
    stray = [p for p in (PROM_DIR / "rules").iterdir() if p.suffix != ".yml"]
    assert not stray, f"not matched by rule_files (rules/*.yml): {stray}"
    assert RULE_FILES, "no rule files found"


@pytest.mark.parametrize("path", UNIT_TEST_FILES, ids=_rel)
def test_promtool_unit_tests(promtool: str, path: Path) -> None:
    _assert_ok(_run(promtool, "test", "rules", path))


def test_every_file_in_prometheus_tests_is_run() -> None:
    run = {*UNIT_TEST_FILES, ROUTING_CASES_FILE}
    stray = [p for p in (PROM_DIR / "tests").iterdir() if p.is_file() and p not in run]
    assert not stray, f"never run: {stray} (promtool tests must be named *_test.yml)"
    assert UNIT_TEST_FILES, "no promtool unit tests found"


def test_alert_names_are_unique() -> None:
    duplicates = {name for name in ALERT_NAMES if ALERT_NAMES.count(name) > 1}
    assert not duplicates, f"alert defined more than once: {sorted(duplicates)}"


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_has_a_firing_unit_test(alertname: str) -> None:
    firing = [
        entry
        for _, entry in ALERT_TESTS
        if entry["alertname"] == alertname and entry.get("exp_alerts")
    ]
    assert firing, f"no promtool test in prometheus/tests expects {alertname} to fire"


def test_unit_tests_only_name_existing_alerts() -> None:
    """promtool passes an empty expectation for an alert that does not exist: catch typos."""
    unknown = {
        (_rel(path), entry["alertname"])
        for path, entry in ALERT_TESTS
        if entry["alertname"] not in ALERT_NAMES
    }
    assert not unknown, f"tests name alerts that no rule defines: {sorted(unknown)}"


@pytest.mark.parametrize(("path", "rule"), ALERT_RULES, ids=ALERT_NAMES)
def test_alert_metadata(path: Path, rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity label"
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{name}: missing annotation {key}"
    assert "$labels.exchange" in annotations["description"], f"{name}: description names exchange"
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{name.lower()}"


@pytest.mark.parametrize(("path", "rule"), ALERT_RULES, ids=ALERT_NAMES)
def test_alert_fires_with_exchange_and_severity(path: Path, rule: dict[str, Any]) -> None:
    """Every expected firing alert in the unit tests carries exchange and the rule's severity."""
    name = rule["alert"]
    for test_path, entry in ALERT_TESTS:
        if entry["alertname"] != name:
            continue
        for alert in entry.get("exp_alerts") or []:
            labels = alert.get("exp_labels", {})
            assert labels.get("exchange"), f"{_rel(test_path)}: {name} without exchange label"
            assert labels.get("severity") == rule["labels"]["severity"], _rel(test_path)


def test_thresholds_table_lists_every_alert() -> None:
    """Each alerts file documents its alerts in a THRESHOLDS table: | alert | threshold | for |."""
    for path in RULE_FILES:
        alerts = {rule["alert"]: rule for p, rule in ALERT_RULES if p == path}
        if not alerts:
            continue
        text = path.read_text(encoding="utf-8")
        assert "# THRESHOLDS" in text, f"{_rel(path)}: no THRESHOLDS section"
        table = {
            m["alert"]: m["for"]
            for m in re.finditer(
                r"^#\s*\|\s*(?P<alert>[A-Z]\w+)\s*\|[^|]*\|\s*(?P<for>\S+)\s*\|", text, re.M
            )
        }
        for name, rule in alerts.items():
            assert name in table, f"{_rel(path)}: {name} missing from the THRESHOLDS table"
            assert table[name] == rule.get("for", "0s"), f"{name}: `for` differs from the table"


@pytest.mark.parametrize(
    ("path", "rule"),
    ALERT_RULES + RECORDING_RULES,
    ids=ALERT_NAMES + [rule["record"] for _, rule in RECORDING_RULES],
)
def test_rule_expressions_use_known_metrics(path: Path, rule: dict[str, Any]) -> None:
    unknown = promql_metric_names(rule["expr"]) - KNOWN_METRICS
    assert not unknown, f"{_rel(path)}: unknown metric names {sorted(unknown)}"
    # Raw exporter series are selected from the exporter's job only.
    for name in promql_metric_names(rule["expr"]) - RECORDED_METRICS:
        assert re.search(rf'{re.escape(name)}\{{[^}}]*job="{EXPORTER_JOB}"', rule["expr"]), (
            f'{_rel(path)}: select {name} with job="{EXPORTER_JOB}"'
        )


@pytest.mark.parametrize(
    ("path", "rule"), RECORDING_RULES, ids=[rule["record"] for _, rule in RECORDING_RULES]
)
def test_recording_rule_names_follow_convention(path: Path, rule: dict[str, Any]) -> None:
    """level:metric:operations, https://prometheus.io/docs/practices/rules/."""
    assert re.fullmatch(r"[a-z_]+:[a-z][a-z0-9_]*:[a-z0-9_]+", rule["record"]), rule["record"]


def test_promql_metric_name_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (exchange, le) (rate(a_bucket{le!="1", x=~"$v"}'
        "[$__rate_interval]))) > 1 unless on (exchange) max without (job) (b) == bool 0"
        ' or label_replace(c offset 5m, "d", "$1", "e", "(.*)") * 1e3'
    )
    assert promql_metric_names(expr) == {"a_bucket", "b", "c"}


# --------------------------------------------------------------------------------------------
# Alertmanager


ROUTING = _load_yaml(ROUTING_CASES_FILE)


def test_alertmanager_config_is_valid(amtool: str) -> None:
    _assert_ok(_run(amtool, "check-config", AM_CONFIG))


def test_alertmanager_config_contract() -> None:
    config = _load_yaml(AM_CONFIG)
    route = config["route"]
    assert route["receiver"] == "exchange-watch-receiver"
    assert route["group_by"] == ["alertname", "exchange"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "5s",
        "1m",
        "4h",
    )
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["exchange-watch-receiver"]["webhook_configs"][0]["url"] == RECEIVER_URL_PREFIX
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            # The native runner only rewrites URLs that start with http://receiver:8080.
            assert webhook["url"].startswith(RECEIVER_URL_PREFIX), receiver["name"]
            assert webhook["send_resolved"] is True, receiver["name"]
            assert webhook["max_alerts"] == 0, receiver["name"]


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


@pytest.mark.parametrize("case", ROUTING["routes"], ids=lambda c: c["name"])
def test_alertmanager_routes(amtool: str, case: dict[str, Any]) -> None:
    assert _routes_test(amtool, case["labels"]) == case["receivers"]


@pytest.mark.parametrize(("path", "rule"), ALERT_RULES, ids=ALERT_NAMES)
def test_every_alert_reaches_its_severity_route(
    amtool: str, path: Path, rule: dict[str, Any]
) -> None:
    severity = rule["labels"]["severity"]
    labels = {"alertname": rule["alert"], "severity": severity, "exchange": "binance"}
    expected = SEVERITY_RECEIVERS.get(severity, "exchange-watch-receiver")
    assert _routes_test(amtool, labels) == [expected]


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


@pytest.fixture
def alertmanager_url(alertmanager_bin: str, tmp_path: Path) -> Iterator[str]:
    """A throw-away single-node Alertmanager running deploy/alertmanager.yml."""
    port = _free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            alertmanager_bin,
            f"--config.file={AM_CONFIG}",
            f"--storage.path={tmp_path / 'data'}",
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
                    pytest.fail(
                        "Alertmanager did not start:\n"
                        + (tmp_path / "alertmanager.log").read_text()
                    )
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


@pytest.mark.parametrize("case", ROUTING["inhibitions"], ids=lambda c: c["name"])
def test_alertmanager_inhibitions(alertmanager_url: str, case: dict[str, Any]) -> None:
    _http("POST", f"{alertmanager_url}/api/v2/alerts", [{"labels": case["source"]}])
    _http("POST", f"{alertmanager_url}/api/v2/alerts", [{"labels": case["target"]}])

    def target_inhibited() -> bool:
        alerts = _http("GET", f"{alertmanager_url}/api/v2/alerts")
        [target] = [a for a in alerts if a["labels"] == case["target"]]
        return bool(target["status"]["inhibitedBy"])

    # The inhibitor learns about the source asynchronously, within milliseconds: wait up to 3 s
    # for an expected inhibition, and watch for an unexpected one for 0.5 s.
    deadline = time.monotonic() + (3.0 if case["inhibited"] else 0.5)
    while not (inhibited := target_inhibited()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inhibited == case["inhibited"]


# --------------------------------------------------------------------------------------------
# Grafana


def _datasource_uid() -> str:
    [datasource] = _load_yaml(DATASOURCES_FILE)["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    return datasource["uid"]


def test_grafana_provisioning() -> None:
    assert _datasource_uid() == "prometheus"
    [provider] = _load_yaml(DASHBOARD_PROVIDERS_FILE)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert DASHBOARD_FILES, "no dashboards in grafana/dashboards"


def _dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and annotation query."""
    queries = [
        (f"panel {panel.get('title')!r}", target["expr"])
        for panel in _dashboard_panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    queries += [
        (f"annotation {a['name']!r}", a["expr"])
        for a in dashboard.get("annotations", {}).get("list", [])
        if "expr" in a
    ]
    return queries


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_rel)
def test_dashboard(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    uid = _datasource_uid()
    assert dashboard["schemaVersion"] == 39
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), dashboard["uid"]

    panels = list(_dashboard_panels(dashboard["panels"]))
    assert panels, "dashboard has no panels"
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        title = panel.get("title")
        if panel["type"] == "row":
            continue
        assert panel.get("datasource", {}).get("uid") == uid, f"panel {title!r}: datasource uid"
        assert panel.get("targets"), f"panel {title!r}: no queries"
        for target in panel["targets"]:
            assert target.get("datasource", {}).get("uid") == uid, f"panel {title!r}: target"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {title!r}: wider than the grid"
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("datasource", {}).get("type") == "prometheus":
            assert annotation["datasource"]["uid"] == uid, f"annotation {annotation['name']!r}"

    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == uid, f"variable {variable['name']}"

    allowed = KNOWN_METRICS | PROMETHEUS_BUILTINS
    for where, expr in _dashboard_queries(dashboard):
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= allowed, f"{where}: unknown metric names {sorted(names - allowed)}"


def test_exchange_overview_dashboard_content() -> None:
    dashboard = json.loads(
        (GRAFANA_DIR / "dashboards" / "exchange-overview.json").read_text(encoding="utf-8")
    )
    assert dashboard["uid"] == "exchange-overview"
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "exchange"]
    query = variable["query"]
    query = query["query"] if isinstance(query, dict) else query
    assert query == "label_values(exchange_api_up, exchange)"

    used = set().union(*(promql_metric_names(e) for _, e in _dashboard_queries(dashboard)))
    required = EXPORTER_METRICS | {"ALERTS"}
    assert required <= used, f"metrics without a panel: {sorted(required - used)}"
    quantiles = {n for n in RECORDED_METRICS if n.endswith(("p50_5m", "p95_5m", "p99_5m"))}
    assert quantiles <= used, f"latency quantiles without a panel: {sorted(quantiles - used)}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_rel)
def test_dashboard_promql_parses(promtool: str, path: Path, tmp_path: Path) -> None:
    """Let promtool parse every dashboard query, as recording rules with variables filled in."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    rules = []
    for i, (where, expr) in enumerate(_dashboard_queries(dashboard)):
        expr = re.sub(r"\$\{?__(?:rate_)?interval\}?", "1m", expr)
        expr = _GRAFANA_VAR.sub(".*", expr)
        rules.append({"record": f"dashboard:query:{i}", "expr": expr, "labels": {"where": where}})
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": path.stem, "rules": rules}]}))
    _assert_ok(_run(promtool, "check", "rules", rule_file))
