"""The high-availability topology of ``make ha`` (deploy/ha_stack.py), end to end on loopback:
simulator, two exporters as two locations, PostgreSQL, VictoriaMetrics, two receivers on the
one database, two clustered Alertmanagers, two Prometheus replicas (1 s scrape and evaluation
intervals, as the e2e stack).

Checked: both receivers ready and exactly one of them the dead man's switch leader; both get
Alertmanager's heartbeats (each Alertmanager sends every webhook to both); the Alertmanagers
form one cluster; VictoriaMetrics holds the exporters' series with ``location`` and without
``replica``, one series per (exchange, endpoint, location), deduplicated to about one sample
per scrape interval; every Grafana dashboard query, every alerting rule's expression and the
receiver's context queries run on VictoriaMetrics' Prometheus API. One stack for the module
(about a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

import tests.monitoring.test_dashboards as dashboards
from deploy.ha_configs import ALERTMANAGER_HA_CONFIG, PROMETHEUS_HA_CONFIG
from deploy.ha_stack import HAOptions, HAStack
from receiver.diagnosis.context import ContextBuilder
from receiver.models import Alert

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
EXCHANGES = {"binance", "bybit", "okx", "coinbase", "kraken"}
WAIT_S = 90.0
"""Upper bound for each condition to hold on a slow, loaded machine (typically seconds)."""

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HAStack]:
    options = HAOptions(
        run_dir=tmp_path_factory.mktemp("ha"),
        prometheus_global={"scrape_interval": "1s", "evaluation_interval": "1s"},
        alertmanager_timing={"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"},
        vm_latency_offset="2s",
        # The first Watchdog is sent before Prometheus has discovered the Alertmanagers and is
        # re-sent after the resend delay (1m by default); the cluster settles for up to 1m.
        prometheus_args=("--rules.alert.resend-delay=2s",),
        alertmanager_args=("--cluster.settle-timeout=5s", "--cluster.pushpull-interval=2s"),
        ports={},  # any free ports: never collide with a `make ha` running on this machine
    )
    with HAStack(options) as stack:
        yield stack


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1.0)
    pytest.fail(f"{what}: not within {timeout:g}s (last: {last!r})")


def query(client: httpx.Client, base: str, expr: str) -> list[dict[str, Any]]:
    """Instant query on a Prometheus query API; fails when it is rejected."""
    response = client.get(f"{base}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body.get("status") == "success", (
        f"{base} rejected {expr!r}: {body.get('error', response.text)}"
    )
    return list(body["data"]["result"])


# --- the topology -----------------------------------------------------------------------------


def test_every_component_runs_with_the_shipped_ha_configs(ha: HAStack) -> None:
    assert all(ha.running().values()), ha.running()
    assert set(ha.running()) >= {"postgres", "victoria-metrics", "receiver-a", "receiver-b"}
    assert ha.locations == {"exporter-a": "loc-a", "exporter-b": "loc-b"}
    with httpx.Client(timeout=10, trust_env=False) as client:
        for name, location in ha.locations.items():
            # The exporter's own label (its config's `location:`), not only the target label.
            assert f'location="{location}"' in client.get(f"{ha.urls[name]}/metrics").text
    rendered = yaml.safe_load((ha.run_dir / "prometheus.yml").read_text())
    shipped = yaml.safe_load(PROMETHEUS_HA_CONFIG.read_text())
    assert rendered["global"]["external_labels"] == shipped["global"]["external_labels"]
    am = yaml.safe_load((ha.run_dir / "alertmanager.yml").read_text())
    shipped_am = yaml.safe_load(ALERTMANAGER_HA_CONFIG.read_text())
    assert am["route"]["routes"][0]["matchers"] == shipped_am["route"]["routes"][0]["matchers"]
    receivers = ("receiver-a", "receiver-b")
    for receiver in am["receivers"]:
        urls = [hook["url"] for hook in receiver["webhook_configs"]]
        reached = {n for n in receivers for url in urls if url.startswith(ha.urls[n] + "/")}
        assert len(urls) == 2 and reached == set(receivers), (receiver["name"], urls)
    assert ha.database_url.startswith("postgresql://")
    for name in ("receiver-a", "receiver-b"):
        assert "RECEIVER_DATABASE_URL" in ha.components[name].env
        assert ha.components[name].env["PROMETHEUS_URL"] == ha.urls["victoria-metrics"]


def test_both_receivers_ready_and_exactly_one_leads_the_dead_mans_switch(
    ha: HAStack, client: httpx.Client
) -> None:
    for name in ("receiver-a", "receiver-b"):
        response = client.get(f"{ha.urls[name]}/readyz")
        assert response.status_code == 200, (name, response.text)

    def leaders() -> list[str] | None:
        found = []
        for name in ("receiver-a", "receiver-b"):
            deadman = client.get(f"{ha.urls[name]}/heartbeat").json().get("deadman", {})
            if "leader" not in deadman:
                pytest.skip("GET /heartbeat has no deadman.leader yet (lead's work in progress)")
            if deadman["leader"]:
                found.append(name)
        return found if len(found) == 1 else None

    assert len(wait_until(leaders, "exactly one dead man's switch leader")) == 1


def test_both_receivers_get_the_heartbeats_of_the_alertmanager_cluster(
    ha: HAStack, client: httpx.Client
) -> None:
    for name in ("receiver-a", "receiver-b"):
        wait_until(
            lambda name=name: client.get(f"{ha.urls[name]}/heartbeat").json()["last_heartbeat"],
            f"{name} receives the Watchdog heartbeat",
        )


def test_the_alertmanagers_form_one_cluster(ha: HAStack, client: httpx.Client) -> None:
    def peers(name: str) -> int:
        cluster = client.get(f"{ha.urls[name]}/api/v2/status").json()["cluster"]
        return len(cluster.get("peers") or []) if cluster.get("status") == "ready" else 0

    for name in ("alertmanager-a", "alertmanager-b"):
        assert wait_until(lambda name=name: peers(name) == 2, f"{name} sees both peers")


# --- the global view --------------------------------------------------------------------------


def test_victoria_metrics_holds_one_copy_per_location_without_replica(
    ha: HAStack, client: httpx.Client
) -> None:
    vm, prometheus = ha.urls["victoria-metrics"], ha.urls["prometheus-a"]
    by = "count by (exchange, endpoint, location) (exchange_api_up)"

    def every_location_of_every_exchange() -> set[tuple[str, str]] | None:
        seen = {
            (r["metric"]["exchange"], r["metric"].get("location", ""))
            for r in query(client, vm, by)
        }
        wanted = {(e, loc) for e in EXCHANGES for loc in ha.locations.values()}
        return seen if seen >= wanted else None

    wait_until(every_location_of_every_exchange, "VictoriaMetrics has every exchange per location")
    # One series per (exchange, endpoint, location): the replicas' copies were merged.
    assert query(client, vm, f"{by} > 1") == []
    assert query(client, vm, 'count(exchange_api_up{replica!=""})') == []
    series = query(client, vm, "exchange_api_up")
    assert all(s["metric"].get("cluster") == "exchange-watch" for s in series), series[:2]
    assert all("replica" not in s["metric"] for s in series)
    # The same (exchange, endpoint, location) combinations as one replica scrapes (polled:
    # VictoriaMetrics answers a couple of seconds behind, and endpoints appear as first probed).
    key = ("exchange", "endpoint", "location")

    def same_series() -> bool:
        local = {
            tuple(s["metric"][k] for k in key) for s in query(client, prometheus, "exchange_api_up")
        }
        merged = {tuple(s["metric"][k] for k in key) for s in query(client, vm, "exchange_api_up")}
        return local == merged

    wait_until(same_series, "VictoriaMetrics has exactly the series one replica scrapes")
    # Each replica's alerts reach Alertmanager without `replica` (alert_relabel_configs), and
    # its recorded series reach VictoriaMetrics (remote write carries rule results too).
    assert wait_until(
        lambda: query(client, vm, 'count(ALERTS{alertname="Watchdog"})'),
        "ALERTS in VictoriaMetrics",
    )


def test_victoria_metrics_deduplicates_the_two_replicas_samples(
    ha: HAStack, client: httpx.Client
) -> None:
    """Both replicas scrape every second; VictoriaMetrics keeps about one sample per second
    (-dedup.minScrapeInterval), not two."""
    vm, prometheus = ha.urls["victoria-metrics"], ha.urls["prometheus-a"]
    selector = 'exchange_api_up{exchange="binance", endpoint="ping", location="loc-a"}'
    expr = f"count_over_time({selector}[20s])"

    def samples(base: str) -> float:
        result = query(client, base, expr)
        return float(result[0]["value"][1]) if result else 0.0

    wait_until(lambda: samples(prometheus) >= 15, "20 s of samples in Prometheus")
    wait_until(lambda: samples(vm) >= 10, "samples in VictoriaMetrics")
    one_replica = samples(prometheus)
    merged = samples(vm)
    # Two undeduplicated replicas would give about twice one replica's count.
    assert merged <= one_replica * 1.3 + 2, (merged, one_replica)


def test_every_dashboard_query_runs_on_victoria_metrics(ha: HAStack, client: httpx.Client) -> None:
    """Grafana's datasource may point at VictoriaMetrics (grafana/provisioning-ha/): every
    panel and annotation query of every dashboard must be accepted (results may be empty)."""
    queries = [
        (f"{path.stem}: {where}", dashboards._fill(expr))
        for path in dashboards.DASHBOARD_FILES
        for where, expr in (
            dashboards._panel_queries(dashboards._load(path))
            + dashboards._annotation_queries(dashboards._load(path))
        )
    ]
    assert len(queries) > 20
    vm, prometheus = ha.urls["victoria-metrics"], ha.urls["prometheus-a"]
    wait_until(lambda: query(client, vm, "exchange_api_up"), "data in VictoriaMetrics")
    vm_only, both = [], []
    for where, expr in queries:
        error = _rejection(client, vm, expr)
        if error:
            # Rejected by Prometheus as well: the query breaks with two locations, not on VM.
            (both if _rejection(client, prometheus, expr) else vm_only).append(
                f"{where}: {expr!r}: {error}"
            )
    assert not vm_only, "VictoriaMetrics rejected (Prometheus accepts):\n" + "\n".join(vm_only)
    assert not both, (
        "rejected by VictoriaMetrics and Prometheus with two locations (the query must keep "
        "`location` apart, e.g. in on(...)/by(...)):\n" + "\n".join(both)
    )


def _rejection(client: httpx.Client, base: str, expr: str) -> str:
    """The error a Prometheus query API gives for ``expr`` ("" when accepted)."""
    response = client.get(f"{base}/api/v1/query", params={"query": expr})
    with contextlib.suppress(ValueError):
        body = response.json()
        if response.status_code == 200 and body.get("status") == "success":
            return ""
        return str(body.get("error", ""))[:400]
    return response.text[:400]


def test_the_receivers_queries_run_on_victoria_metrics(ha: HAStack, client: httpx.Client) -> None:
    """PROMETHEUS_URL points at VictoriaMetrics: the diagnosis context (instant and range
    queries) and each alerting rule's expression (the receiver queries the alert's own
    expression from its generatorURL) are accepted."""
    vm = ha.urls["victoria-metrics"]
    exprs = [
        (rule["alert"], rule["expr"])
        for path in RULES
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", [])
        for rule in group.get("rules", [])
        if "alert" in rule
    ]
    assert exprs
    wait_until(lambda: query(client, vm, "exchange_api_up"), "data in VictoriaMetrics")
    rejected = [f"{name}: {err}" for name, expr in exprs if (err := _rejection(client, vm, expr))]
    assert not rejected, "VictoriaMetrics rejected alert expressions:\n" + "\n".join(rejected)

    api_down = next(expr for name, expr in exprs if name == "ExchangeApiDown")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30))
    alert = Alert.model_validate(
        {
            "status": "firing",
            "labels": {
                "alertname": "ExchangeApiDown",
                "exchange": "binance",
                "severity": "critical",
            },
            "startsAt": started,
            "generatorURL": f"{ha.urls['prometheus-a']}/graph?g0.expr={quote(api_down)}",
        }
    )

    async def fetch() -> str:
        async with httpx.AsyncClient(trust_env=False) as http:
            _, outcome = await ContextBuilder(http, vm, deadline=10.0).fetch(alert)
        return outcome

    assert asyncio.run(fetch()) == "ok"
