"""Grafana dashboards: structure, uids, datasource references, metric names, and every panel's
PromQL run against the real Prometheus of the end-to-end stack.

The static checks need nothing but the JSON (and promtool to parse the queries); the live check
(marked e2e) uses the session's `stack` fixture, with the template variables filled in the way
Grafana would (`$exchange` → binance, `$__rate_interval` → 1m, ...).

The API keys rows (issue 14) query the `exchange_api_key_*` series, which exist only for
exchanges with `api_keys:` in the exporter config the stack runs; the live check requires their
data only then (an expiry only where a key expires, never in the shipped demo: its keys are
IP-bound).

The "Market integrity" rows (issue 15) query the market series, which exist for every exchange
with `markets:` in the exporter config (all of them in the demo). Two kinds are not required in
the live check, only parsed: the scheduled maintenance (absent while no exchange announces
one), and the series that need minutes of history (the 1-minute return and its z-score, the
volume ratio against the hour before), more than the check waits on a fresh stack; their inputs
(the fresh mid, the 5m volume rate) are required.

The WebSocket rows (issue 13) query the `exchange_ws_*` series, which exist only for exchanges
whose exporter config has a `websocket:` block. The live check reads the exporter config the
stack runs (deploy/exporter.demo.yml): while no exchange there streams, the stream queries must
only be accepted by Prometheus; once binance streams (the detail dashboard is checked with
`$exchange` = binance), they must return series like every other panel:

    .venv/bin/pytest tests/monitoring/test_dashboards.py -m e2e -k every_panel_query
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deploy.stack import Stack
from receiver.metrics import ReceiverMetrics
from tests.monitoring.market_panels import check_market_row, market_query_required
from tests.monitoring.probe_panels import (
    check_probe_depth_panels,
    tls_exchanges,
    tls_query_required,
)
from tests.monitoring.rules_contract import (
    EXPORTER_METRICS,
    EXPORTER_SELECTOR,
    KEY_METRICS,
    KNOWN_METRICS,
    MIXIN_CONFIG,
    PROMETHEUS_BUILTINS,
    RECORDED_METRICS,
    selects_exporter,
)
from tests.monitoring.rules_contract import promql_metric_names as metric_names

REPO = Path(__file__).resolve().parents[2]
GRAFANA_DIR = REPO / "grafana"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
OVERVIEW = GRAFANA_DIR / "dashboards" / "exchange-overview.json"
DETAIL = GRAFANA_DIR / "dashboards" / "exchange-detail.json"

_GRAFANA_VAR = re.compile(r"\$(?:\{[^}]*\}|\w+)")
# Grafana's template variables, filled in as a dashboard would be on a running stack.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$__range": "1h",
    "${__range}": "1h",
    "$exchange": "binance",
    "${exchange}": "binance",
}
LIVE_TIMEOUT_S = 120.0


def _receiver_metric_names() -> set[str]:
    names = set()
    for family in ReceiverMetrics().registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


# What a dashboard may select: exporter series, recording rules, Prometheus' own series and the
# receiver's metrics (job alert-receiver).
ALLOWED_METRICS = KNOWN_METRICS | PROMETHEUS_BUILTINS | _receiver_metric_names()


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows


def _panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target."""
    return [
        (f"panel {panel.get('title')!r} {target.get('refId')}", target["expr"])
        for panel in _panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def _annotation_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"annotation {a['name']!r}", a["expr"])
        for a in dashboard.get("annotations", {}).get("list", [])
        if "expr" in a
    ]


def _fill(expr: str) -> str:
    for var, value in SUBSTITUTIONS.items():
        expr = expr.replace(var, value)
    assert not _GRAFANA_VAR.search(expr), f"unknown template variable in {expr!r}"
    return expr


def _is_stream_query(expr: str) -> bool:
    """The query reads the WebSocket stream series (raw or recorded)."""
    return any("exchange_ws_" in name for name in metric_names(expr))


def streaming_exchanges(exporter_config: Path) -> set[str]:
    """Exchanges with an enabled `websocket:` block in an exporter config (an empty block means
    the defaults; `enabled: false` turns it off)."""
    config = yaml.safe_load(exporter_config.read_text(encoding="utf-8")) or {}
    names = set()
    for exchange in config.get("exchanges") or []:
        if not isinstance(exchange, dict) or "websocket" not in exchange:
            continue
        block = exchange["websocket"]
        enabled = block.get("enabled", True) if isinstance(block, dict) else block is not False
        if enabled:
            names.add(str(exchange.get("name")))
    return names


def _key_metric_names(expr: str) -> set[str]:
    """The API-key series (issue 14) a query reads."""
    return metric_names(expr) & set(KEY_METRICS)


# API-key series that exist only for some keys: an expiry only where something expires (an
# IP-bound key usually has none), IP restriction only where the exchange tells (not Coinbase).
KEY_EXPIRY_METRIC = "exchange_api_key_expiry_timestamp_seconds"
KEY_IP_METRIC = "exchange_api_key_ip_restricted"
EXCHANGES_WITHOUT_IP_RESTRICTION = {"coinbase"}


def keyed_exchanges(exporter_config: Path) -> set[str]:
    """Exchanges with at least one entry under `api_keys:` in an exporter config."""
    config = yaml.safe_load(exporter_config.read_text(encoding="utf-8")) or {}
    return {
        str(exchange.get("name"))
        for exchange in config.get("exchanges") or []
        if isinstance(exchange, dict) and exchange.get("api_keys")
    }


def key_query_required(expr: str, keyed: set[str]) -> bool:
    """Whether a panel query must return data on a stack whose checked keys belong to
    ``keyed`` (the exchanges in view): key series need a key, an expiry needs a key that
    expires (never required), IP restriction an exchange that tells it."""
    names = _key_metric_names(expr)
    if not names:
        return True
    if KEY_EXPIRY_METRIC in names:
        return False
    if KEY_IP_METRIC in names:
        return bool(keyed - EXCHANGES_WITHOUT_IP_RESTRICTION)
    return bool(keyed)


def _datasource_uid() -> str:
    [datasource] = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    return datasource["uid"]


# --------------------------------------------------------------------------------------------
# static


def test_grafana_provisioning() -> None:
    assert _datasource_uid() == "prometheus"
    [provider] = yaml.safe_load(DASHBOARD_PROVIDERS_FILE.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert {OVERVIEW, DETAIL} <= set(DASHBOARD_FILES)


def test_dashboard_uids_and_titles_are_unique() -> None:
    dashboards = [_load(p) for p in DASHBOARD_FILES]
    uids = [d["uid"] for d in dashboards]
    titles = [d["title"] for d in dashboards]
    assert len(set(uids)) == len(uids), f"duplicate dashboard uid: {uids}"
    assert len(set(titles)) == len(titles), f"duplicate dashboard title: {titles}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_rel)
def test_dashboard_structure(path: Path) -> None:
    dashboard = _load(path)
    uid = _datasource_uid()
    assert dashboard["schemaVersion"] == 39
    assert dashboard["id"] is None, "provisioned dashboards carry no database id"
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), dashboard["uid"]
    assert dashboard["title"] and dashboard["description"]

    panels = list(_panels(dashboard["panels"]))
    assert panels, "dashboard has no panels"
    titles = [panel["title"] for panel in panels]
    assert len(titles) == len(set(titles)), "duplicate panel titles"
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["h"] > 0, f"panel {title!r}: gridPos"
        assert grid["x"] + grid["w"] <= 24, f"panel {title!r}: wider than the grid"
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"panel {title!r}: no description"
        assert panel.get("datasource", {}).get("uid") == uid, f"panel {title!r}: datasource uid"
        assert panel.get("targets"), f"panel {title!r}: no queries"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"panel {title!r}: duplicate refId"
        for target in panel["targets"]:
            assert target.get("datasource", {}).get("uid") == uid, f"panel {title!r}: target"
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("datasource", {}).get("type") == "prometheus":
            assert annotation["datasource"]["uid"] == uid, f"annotation {annotation['name']!r}"
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == uid, f"variable {variable['name']}"


def test_panels_do_not_overlap() -> None:
    for path in DASHBOARD_FILES:
        cells: dict[tuple[int, int], str] = {}
        for panel in _panels(_load(path)["panels"]):
            g = panel["gridPos"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    other = cells.setdefault((x, y), f"{panel['id']} {panel['title']!r}")
                    assert other.startswith(f"{panel['id']} "), (
                        f"{_rel(path)}: panel {panel['id']} {panel['title']!r} overlaps {other}"
                    )


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_rel)
def test_dashboard_queries_use_known_metrics(path: Path) -> None:
    dashboard = _load(path)
    for where, expr in _panel_queries(dashboard) + _annotation_queries(dashboard):
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        unknown = names - ALLOWED_METRICS
        assert not unknown, f"{where}: unknown metric names {sorted(unknown)}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_rel)
def test_dashboard_queries_select_the_exporter_with_the_configured_selector(path: Path) -> None:
    """Exporter series (and its `up`) are selected with thresholds.yml's exporter_selector,
    first in the braces: that is where `make rules` rewrites it when the config changes."""
    dashboard = _load(path)
    for where, expr in _panel_queries(dashboard) + _annotation_queries(dashboard):
        for name in metric_names(expr) & (EXPORTER_METRICS | {"up"}):
            assert selects_exporter(name, expr), (
                f"{where}: select {name} with {{{EXPORTER_SELECTOR}, ...}}: {expr!r}"
            )


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_rel)
def test_dashboard_runbook_link_is_the_configured_index(path: Path) -> None:
    """The "Alert runbooks" link is thresholds.yml's runbook_index_url (rendered by
    `make rules`; tests/monitoring/test_rules.py fails while a dashboard is out of date)."""
    [link] = [link for link in _load(path)["links"] if link["title"] == "Alert runbooks"]
    assert link["url"] == MIXIN_CONFIG["runbook_index_url"]


@pytest.mark.e2e
@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_rel)
def test_dashboard_promql_parses(path: Path, tmp_path: Path) -> None:
    """Let promtool parse every dashboard query, as recording rules with variables filled in."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH: apt-get install prometheus", pytrace=False)
    dashboard = _load(path)
    rules = [
        {"record": f"dashboard:query:{i}", "expr": _fill(expr), "labels": {"where": where}}
        for i, (where, expr) in enumerate(
            _panel_queries(dashboard) + _annotation_queries(dashboard)
        )
    ]
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": path.stem, "rules": rules}]}))
    proc = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_streaming_exchanges_reads_the_websocket_blocks(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(
        "exchanges:\n"
        "  - {name: binance, profile: binance, websocket: {}}\n"
        "  - {name: bybit, profile: bybit, websocket: {channels: [book]}}\n"
        "  - {name: okx, profile: okx, websocket: {enabled: false}}\n"
        "  - {name: kraken, profile: kraken}\n"
        "  - {name: coinbase, profile: coinbase, websocket:}\n"
    )
    assert streaming_exchanges(config) == {"binance", "bybit", "coinbase"}
    shipped = streaming_exchanges(REPO / "deploy" / "exporter.demo.yml")
    assert shipped <= {"binance", "bybit", "okx", "coinbase", "kraken"}


def test_keyed_exchanges_reads_the_api_keys_blocks(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(
        "exchanges:\n"
        "  - {name: binance, profile: binance, api_keys: [{name: monitor, key_env: K, "
        "secret_env: S}]}\n"
        "  - {name: bybit, profile: bybit, api_keys: []}\n"
        "  - {name: coinbase, profile: coinbase, api_keys: [{name: m, key_env: K, "
        "private_key_file: /x}]}\n"
        "  - {name: kraken, profile: kraken}\n"
    )
    assert keyed_exchanges(config) == {"binance", "coinbase"}
    ip = f"max(exchange_api_key_ip_restricted{{{EXPORTER_SELECTOR}}})"
    expiry = f"min(exchange_api_key_expiry_timestamp_seconds{{{EXPORTER_SELECTOR}}}) - time()"
    up = f"max(exchange_api_key_up{{{EXPORTER_SELECTOR}}})"
    assert key_query_required(up, {"coinbase"}) and not key_query_required(up, set())
    assert not key_query_required(ip, {"coinbase"}) and key_query_required(ip, {"binance"})
    assert not key_query_required(expiry, {"binance"})
    assert key_query_required(f"max(exchange_api_up{{{EXPORTER_SELECTOR}}})", set())


def test_tls_exchanges_reads_the_base_urls(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(
        "exchanges:\n"
        "  - {name: binance, profile: binance, base_url: 'https://api.binance.com'}\n"
        "  - {name: bybit, profile: bybit, base_url: '${SIM:-http://127.0.0.1:8000}/bybit'}\n"
        "  - {name: okx, profile: okx, base_url: '${SIM:-https://x.test}/okx'}\n"
        "  - {name: kraken, profile: kraken}\n"
    )
    assert tls_exchanges(config) == {"binance", "okx"}
    assert tls_exchanges(REPO / "deploy" / "exporter.demo.yml") == set()
    expiry = f"min(exchange_tls_cert_expiry_timestamp_seconds{{{EXPORTER_SELECTOR}}}) - time()"
    assert not tls_query_required(expiry, set()) and tls_query_required(expiry, {"binance"})
    assert tls_query_required(f"max(exchange_api_up{{{EXPORTER_SELECTOR}}})", set())


def test_overview_lists_every_probe_result() -> None:
    """A description that lists the probe results lists all of them (exporter Result)."""
    from exporter.profiles.base import Result

    results = {r.value for r in Result}
    listed = [
        p
        for path in DASHBOARD_FILES
        for p in _panels(_load(path)["panels"])
        if "connect_error" in p.get("description", "")
    ]
    assert listed, "no panel lists the probe results"
    for panel in listed:
        missing = {r for r in results if r not in panel["description"]}
        assert not missing, f"{panel['title']}: results not listed: {sorted(missing)}"


def _check_api_keys_row(dashboard: dict[str, Any]) -> None:
    """The "API keys" row (issue 14): every key series, state per key, the expiry countdown in
    seconds, a permissions matrix with withdraw highlighted, and the IP restriction."""
    top = [p for p in dashboard["panels"]]
    [row_index] = [i for i, p in enumerate(top) if p["type"] == "row" and p["title"] == "API keys"]
    following = top[row_index + 1 :]
    end = next((i for i, p in enumerate(following) if p["type"] == "row"), len(following))
    row = {p["title"]: p for p in following[:end]}
    used = set().union(*(metric_names(t["expr"]) for p in row.values() for t in p["targets"]))
    missing = set(KEY_METRICS) - used
    assert not missing, f"API keys row: metrics without a panel: {sorted(missing)}"
    for panel in row.values():
        assert panel["description"], panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        for target in panel["targets"]:
            assert "key" in target["expr"] and _key_metric_names(target["expr"]), target["expr"]
    state = row["API key state"]
    assert state["fieldConfig"]["defaults"]["mappings"][0]["options"]["0"]["color"] == "red"
    assert row["API key expiry countdown"]["fieldConfig"]["defaults"]["unit"] == "s"
    perms = row["API key permissions"]
    [matrix] = [t for t in perms["transformations"] if t["id"] == "groupingToMatrix"]
    assert matrix["options"]["columnField"] == "permission"
    [withdraw] = [
        o for o in perms["fieldConfig"]["overrides"] if o["matcher"]["options"] == "withdraw"
    ]
    [mappings] = [p["value"] for p in withdraw["properties"] if p["id"] == "mappings"]
    assert mappings[0]["options"]["1"]["color"] == "red", "withdraw allowed must stand out"
    assert "API key IP restriction" in row


def test_overview_dashboard_content() -> None:
    dashboard = _load(OVERVIEW)
    assert dashboard["uid"] == "exchange-overview"
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "exchange"]
    assert variable["query"] == "label_values(exchange_api_up, exchange)"
    assert variable["multi"] and variable["includeAll"]

    queries = _panel_queries(dashboard)
    used = set().union(*(metric_names(e) for _, e in queries))
    required = {
        "exchange_api_up",
        "exchange_api_requests_total",
        "exchange_clock_skew_seconds",
        "exchange_circuit_state",
        "exchange_market_data_age_seconds",
        "exchange_maintenance",
        "exchange_window:exchange_rate_limit_used:ratio",
        "exchange:exchange_api_requests:error_ratio_rate5m",
        "exchange:exchange_api_requests:error_budget_remaining_30d",
        "exchange:exchange_api_requests:availability_rate30d",
        "ALERTS",
    }
    quantiles = {n for n in RECORDED_METRICS if n.startswith("exchange:") and n.endswith("_5m")}
    quantiles = {n for n in quantiles if re.search(r":p(50|95|99)_5m$", n)}
    assert len(quantiles) == 3
    missing = (required | quantiles) - used
    assert not missing, f"metrics without a panel: {sorted(missing)}"

    stream_metrics = {
        "exchange_ws_connected",
        "exchange_ws_up",
        "exchange_channel:exchange_ws_messages:rate1m",
        "exchange:exchange_ws_message_lag_seconds:p99_1m",
        "exchange_ws_reconnects_total",
        "exchange_ws_sequence_gaps_total",
        "exchange_ws_checksum_mismatches_total",
    }
    missing = stream_metrics - used
    assert not missing, f"WebSocket row: metrics without a panel: {sorted(missing)}"

    panels = {p["title"]: p for p in _panels(dashboard["panels"])}
    health_map = panels["Health map: exchange × endpoint"]
    assert health_map["type"] == "table"
    [matrix] = [t for t in health_map["transformations"] if t["id"] == "groupingToMatrix"]
    assert (matrix["options"]["rowField"], matrix["options"]["columnField"]) == (
        "exchange",
        "endpoint",
    )
    _check_api_keys_row(dashboard)
    check_market_row(dashboard)
    # Firing-alert counts are 0, not "No data", when nothing fires.
    for target in panels["Firing alerts by severity"]["targets"]:
        assert target["expr"].endswith("or on () vector(0)"), target["expr"]


def test_detail_dashboard_is_templated_on_exchange() -> None:
    dashboard = _load(DETAIL)
    assert dashboard["uid"] == "exchange-detail"
    [variable] = dashboard["templating"]["list"]
    assert variable["name"] == "exchange"
    assert variable["query"] == "label_values(exchange_api_up, exchange)"
    assert not variable["multi"] and not variable["includeAll"], "one exchange at a time"
    for where, expr in _panel_queries(dashboard) + _annotation_queries(dashboard):
        assert 'exchange="$exchange"' in expr, f"{where}: not filtered on $exchange: {expr!r}"
    # The WebSocket row: every stream series, per channel where it has one, and the lag
    # quantiles the alert uses with its threshold.
    queries = _panel_queries(dashboard)
    used = set().union(*(metric_names(e) for _, e in queries))
    stream_raw = {n for n in EXPORTER_METRICS if n.startswith("exchange_ws_")}
    stream_raw -= {
        "exchange_ws_messages_total",  # through its recorded 1m rate
        "exchange_ws_message_lag_seconds_bucket",  # through the recorded quantiles
        "exchange_ws_message_lag_seconds_sum",
        "exchange_ws_message_lag_seconds_count",
    }
    stream_recorded = {
        "exchange_channel:exchange_ws_messages:rate1m",
        "exchange_channel:exchange_ws_message_lag_seconds:p50_1m",
        "exchange_channel:exchange_ws_message_lag_seconds:p90_1m",
        "exchange_channel:exchange_ws_message_lag_seconds:p99_1m",
        "exchange:threshold:ws_lag_p90_seconds",
    }
    missing = (stream_raw | stream_recorded) - used
    assert not missing, f"WebSocket row: metrics without a panel: {sorted(missing)}"
    for where, expr in queries:
        if "channel" in expr or not _is_stream_query(expr):
            continue
        names = metric_names(expr)
        per_channel = {"exchange_ws_up", "exchange_ws_sequence_gaps_total"}
        assert not names & per_channel, f"{where}: shown per channel: {expr!r}"

    _check_api_keys_row(dashboard)
    check_market_row(dashboard)
    check_probe_depth_panels(dashboard)

    # Links both ways between the two dashboards.
    overview_links = [link["url"] for link in _load(OVERVIEW)["links"]]
    assert any("/d/exchange-detail/" in url for url in overview_links)
    assert any("/d/exchange-overview/" in link["url"] for link in dashboard["links"])


# --------------------------------------------------------------------------------------------
# live: every panel query against the end-to-end stack's Prometheus


def _query(client: httpx.Client, prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = client.get(f"{prometheus}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (
        f"Prometheus rejected {expr!r}: {body.get('error', response.text)}"
    )
    return body["data"]["result"]


@pytest.mark.e2e
def test_every_panel_query_returns_data(stack: Stack, timings: dict[str, float]) -> None:
    """Every panel query of every dashboard parses in the real Prometheus and returns data on a
    healthy stack (recording rules included: the 30-day SLO group runs once a minute, so this
    may wait for its first evaluation)."""
    queries = [
        (f"{path.stem}: {where}", _fill(expr))
        for path in DASHBOARD_FILES
        for where, expr in _panel_queries(_load(path))
    ]
    annotations = [
        (f"{path.stem}: {where}", _fill(expr))
        for path in DASHBOARD_FILES
        for where, expr in _annotation_queries(_load(path))
    ]
    # Stream panels need streams: on the overview any exchange, on the detail dashboard binance.
    streaming = streaming_exchanges(stack.options.exporter_config)
    streams_required = {
        "exchange-overview": bool(streaming),
        "exchange-detail": SUBSTITUTIONS["$exchange"] in streaming,
    }
    # Key panels need checked keys: on the overview any exchange's, on the detail dashboard
    # binance's (see key_query_required for the series only some keys have).
    keyed = keyed_exchanges(stack.options.exporter_config)
    keyed_in_view = {
        "exchange-overview": keyed,
        "exchange-detail": keyed & {SUBSTITUTIONS["$exchange"]},
    }
    # The TLS certificate needs an exchange probed over https (the simulator is plain HTTP).
    tls = tls_exchanges(stack.options.exporter_config)
    tls_in_view = {
        "exchange-overview": tls,
        "exchange-detail": tls & {SUBSTITUTIONS["$exchange"]},
    }
    parse_only = [
        (where, expr)
        for where, expr in queries
        if (_is_stream_query(expr) and not streams_required.get(where.split(":", 1)[0], True))
        or not key_query_required(expr, keyed_in_view.get(where.split(":", 1)[0], keyed))
        or not market_query_required(expr)
        or not tls_query_required(expr, tls_in_view.get(where.split(":", 1)[0], tls))
    ]
    queries = [q for q in queries if q not in parse_only]
    prometheus = stack.urls["prometheus"]
    started = time.monotonic()
    with httpx.Client(timeout=10, trust_env=False) as client:
        for _, expr in annotations + parse_only:  # parse only: no alert needs to fire
            _query(client, prometheus, expr)
        pending = dict(queries)
        deadline = started + LIVE_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            pending = {w: e for w, e in pending.items() if not _query(client, prometheus, e)}
            if pending:
                time.sleep(2)
    timings["dashboards: every panel query returns data"] = time.monotonic() - started
    if parse_only:
        without = sorted(name for name, required in streams_required.items() if not required)
        print(
            f"\n{len(parse_only)} panel queries only parsed (streams or keys not in view: "
            f"{without}; announced maintenance and market history)"
        )
    assert not pending, f"no data after {LIVE_TIMEOUT_S:g}s:\n" + "\n".join(
        f"  {w}: {e}" for w, e in pending.items()
    )
