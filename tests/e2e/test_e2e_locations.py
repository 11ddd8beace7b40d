"""Probing from several locations, end to end (issue 16): one location failing is a warning that
names it; every location failing is the page.

Two simulators stand for the exchange as seen from two places (two egress IPs, two routes); two
exporters (``location: loc-a`` and ``loc-b``, each a small config with two exchanges) probe one
simulator each; one real Prometheus (scrape and evaluation every second) scrapes both as
targets of the shipped exporter job and evaluates every shipped rule unchanged
(deploy/stack.py renders the shipped prometheus.yml and rules).

1. A hard outage (``down``: every request reset) of Binance on loc-a's simulator only:
   ``ExchangeApiDownFromLocation{exchange="binance", location="loc-a"}`` fires, and
   ``ExchangeApiDown`` for Binance never shows up in ``ALERTS`` (not even pending), for longer
   than its ``for``.
2. The same outage on loc-b's simulator too: ``ExchangeApiDown{exchange="binance"}`` fires.

The alerts are read from Prometheus' ``ALERTS`` series (``/api/v1/query``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from deploy.stack import (
    PROMETHEUS_CONFIG,
    find_binary,
    free_port,
    localise_runbook_links,
    render_prometheus_config,
)
from testsupport.e2e import poll, prometheus_query
from testsupport.ha import start_process, stop_process

pytestmark = pytest.mark.e2e  # two simulators, two exporters and Prometheus as processes

T = TypeVar("T")
LOCATIONS = ("loc-a", "loc-b")
EXCHANGE = "binance"
OTHER = "coinbase"
API_DOWN_FOR = 15.0
"""ExchangeApiDown's ``for`` (prometheus/rules/exchange-alerts.yml)."""

EXPORTER_CONFIG = """\
location: {location}
max_concurrency: 8
exchanges:
  - name: binance
    profile: binance
    base_url: ${{SIMULATOR_URL}}/binance
    interval: 2s
    timeout: 1s
    endpoints: [ping, time, ticker]
  - name: coinbase
    profile: coinbase
    base_url: ${{SIMULATOR_URL}}/coinbase
    interval: 3s
    timeout: 1s
    endpoints: [time, ticker]
"""


class Locations:
    """The running processes and their URLs."""

    def __init__(self) -> None:
        self.simulators: dict[str, str] = {}
        self.exporters: dict[str, str] = {}
        self.prometheus = ""
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def log_tails(self) -> str:
        parts = []
        for log in self.logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"--- {log.name}\n" + "\n".join(text.splitlines()[-10:]))
        return "\n".join(parts)


@pytest.fixture
def locations(tmp_path: Path) -> Iterator[Locations]:
    prometheus_bin = find_binary("prometheus")
    running = Locations()
    python = sys.executable
    try:
        for location in LOCATIONS:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log = tmp_path / f"simulator-{location}.log"
            running.logs.append(log)
            running.procs.append(
                start_process(
                    [python, "-m", "simulator.cli", "--listen", f"127.0.0.1:{port}"],
                    log,
                    f"{url}/_control/health",
                )
            )
            running.simulators[location] = url
        for location in LOCATIONS:
            config = tmp_path / f"exporter-{location}.yml"
            config.write_text(EXPORTER_CONFIG.format(location=location), encoding="utf-8")
            listen = f"127.0.0.1:{free_port()}"
            log = tmp_path / f"exporter-{location}.log"
            running.logs.append(log)
            running.procs.append(
                start_process(
                    [python, "-m", "exporter.cli", "--config", str(config), "--listen", listen],
                    log,
                    f"http://{listen}/metrics",
                    env={"SIMULATOR_URL": running.simulators[location]},
                )
            )
            running.exporters[location] = listen
        port = free_port()
        running.prometheus = f"http://127.0.0.1:{port}"
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(
            yaml.safe_dump(prometheus_config(tmp_path, running), sort_keys=False),
            encoding="utf-8",
        )
        log = tmp_path / "prometheus.log"
        running.logs.append(log)
        running.procs.append(
            start_process(
                [
                    prometheus_bin,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                log,
                f"{running.prometheus}/-/ready",
            )
        )
        yield running
    finally:
        for proc in reversed(running.procs):
            stop_process(proc)


def prometheus_config(tmp_path: Path, running: Locations) -> dict[str, Any]:
    """The shipped prometheus.yml with both exporters as the exporter job's targets, scrape and
    evaluation every second, the shipped rules, and no Alertmanager."""
    first = running.exporters[LOCATIONS[0]]
    config = render_prometheus_config(
        PROMETHEUS_CONFIG,
        {"exporter": first},
        {"scrape_interval": "1s", "evaluation_interval": "1s"},
    )
    config.pop("alerting", None)
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            if first in static.get("targets", []):
                static["targets"] = list(running.exporters.values())
    config["rule_files"] = localise_runbook_links(
        config["rule_files"], tmp_path / "rules", "http://127.0.0.1:8080"
    )
    return config


def alerts(running: Locations, alertname: str) -> list[dict[str, str]]:
    """Label sets of ``ALERTS`` for ``alertname`` on the faulted exchange (pending or firing)."""
    selector = f'ALERTS{{alertname="{alertname}", exchange="{EXCHANGE}"}}'
    return [series["metric"] for series in prometheus_query(running.prometheus, selector)]


def inject_outage(running: Locations, location: str) -> None:
    httpx.post(
        f"{running.simulators[location]}/_control/faults",
        json={"exchange": EXCHANGE, "fault": "down"},
        timeout=10,
    ).raise_for_status()


def test_one_location_failing_warns_with_its_name_both_failing_pages(
    locations: Locations,
) -> None:
    started = time.monotonic()

    def healthy_everywhere() -> bool:
        series = prometheus_query(
            locations.prometheus, f'exchange_api_up{{exchange="{EXCHANGE}"}} == 1'
        )
        return {s["metric"].get("location") for s in series} >= set(LOCATIONS)

    poll(healthy_everywhere, 60, "binance probed up from both locations", locations.log_tails)

    # 1. loc-a only: the warning naming loc-a, never the page.
    inject_outage(locations, "loc-a")
    injected = time.monotonic()
    seen_api_down: list[dict[str, str]] = []

    def from_location_firing() -> list[dict[str, str]]:
        seen_api_down.extend(alerts(locations, "ExchangeApiDown"))
        return [
            a
            for a in alerts(locations, "ExchangeApiDownFromLocation")
            if a.get("alertstate") == "firing"
        ]

    firing = poll(
        from_location_firing, 90, "ExchangeApiDownFromLocation firing", locations.log_tails
    )
    assert {a.get("location") for a in firing} == {"loc-a"}, firing
    # Keep watching until ExchangeApiDown would have fired had it counted one location.
    while time.monotonic() < injected + API_DOWN_FOR + 10:
        seen_api_down.extend(alerts(locations, "ExchangeApiDown"))
        time.sleep(0.5)
    one_location_seconds = time.monotonic() - injected
    assert not seen_api_down, f"ExchangeApiDown with one location failing: {seen_api_down}"
    other = prometheus_query(
        locations.prometheus, f'ALERTS{{alertname="ExchangeApiDown", exchange="{OTHER}"}}'
    )
    assert not other, "the healthy exchange raised nothing"

    # 2. loc-b too: the page.
    inject_outage(locations, "loc-b")
    both = time.monotonic()

    def api_down_firing() -> list[dict[str, str]]:
        return [a for a in alerts(locations, "ExchangeApiDown") if a["alertstate"] == "firing"]

    poll(
        api_down_firing, 90, "ExchangeApiDown firing with both locations down", locations.log_tails
    )
    print(
        f"\nlocations: ExchangeApiDownFromLocation fired {firing[0].get('location')}; "
        f"watched {one_location_seconds:.0f} s without ExchangeApiDown; ExchangeApiDown fired "
        f"{time.monotonic() - both:.0f} s after the second outage; "
        f"{time.monotonic() - started:.0f} s in all"
    )
