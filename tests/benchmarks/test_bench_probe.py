"""The probe benchmark's proxy variant: the exporter config it writes, the figures and note it
derives, and (e2e) a short run through a real tinyproxy to a loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks import bench_probe, proxy_runs
from benchmarks.probe_runs import exporter_config
from exporter.config import ExporterConfig


def _row(prober: str, rate: object, cpu_s_per_1000: float) -> dict[str, Any]:
    return {"prober": prober, "rate": rate, "cpu_s_per_1000": cpu_s_per_1000}


def test_exporter_config_routes_every_exchange_through_the_proxy() -> None:
    config = exporter_config("http://127.0.0.1:8080", 12, 1.0, proxy_url="http://127.0.0.1:3128")
    assert len(config["exchanges"]) == 3
    assert {e["proxy_url"] for e in config["exchanges"]} == {"http://127.0.0.1:3128"}
    assert all("proxy_url" not in e for e in exporter_config("http://h", 5, 1.0)["exchanges"])


def test_proxied_exporter_config_is_a_valid_exporter_config() -> None:
    config = exporter_config("http://127.0.0.1:8080", 5, 1.0, proxy_url="http://127.0.0.1:3128")
    parsed = ExporterConfig.model_validate(config)
    route = parsed.exchanges[0].route
    assert route.proxy_url is not None
    assert route.proxy_url.get_secret_value() == "http://127.0.0.1:3128"


def test_proxy_figures_from_the_median_rows() -> None:
    rows = [
        _row("exchange-watch", 1000, 0.190),
        _row("blackbox_exporter", 1000, 0.700),
        _row(bench_probe.PROXIED, 1000, 0.215),
    ]
    twins = [0.199, 0.200, 0.260]  # the direct twin beside the proxied run: its median counts
    fresh = [
        {
            "direct_cpu_us": 300.0,
            "proxied_cpu_us": 420.0,
            "direct_connect_ms": 0.1,
            "proxied_connect_ms": 0.4,
            "direct_elapsed_ms": 0.3,
            "proxied_elapsed_ms": 0.6,
        }
    ]
    figures = bench_probe.proxy_figures(rows, twins, fresh)
    assert figures["per_probe_cpu_us"] == pytest.approx(15.0)
    assert figures["new_proxied_cpu_us"] - figures["new_direct_cpu_us"] == pytest.approx(120.0)
    note = bench_probe._proxy_note(figures)
    assert "+15 µs per probe" in note and "+120 µs" in note and "+0.300 ms" in note


def test_without_tinyproxy_the_note_says_not_measured() -> None:
    figures = bench_probe.proxy_figures([_row("exchange-watch", 1000, 0.2)], [], [])
    assert math.isnan(figures["per_probe_cpu_us"])
    assert "not measured" in bench_probe._proxy_note(figures)


def test_tinyproxy_config_allows_connect_to_every_port() -> None:
    text = proxy_runs.TINYPROXY_CONFIG.format(port=3128, directory="/tmp/x")
    assert "ConnectPort" not in text  # no line: every port (the stock config: 443, 563)
    assert "Listen 127.0.0.1" in text and "Allow 127.0.0.1" in text


@contextlib.contextmanager
def _loopback_http() -> Iterator[str]:
    """A keep-alive HTTP/1.1 server on loopback answering every request ``200 {}``."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    url: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        writer.close()

    stop: asyncio.Future[None] = loop.create_future()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/ping")
        ready.set()
        async with server:
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)
        loop.close()


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("tinyproxy") is None, reason="tinyproxy not installed")
def test_new_connection_cost_through_a_real_tinyproxy() -> None:
    import os

    cpus = sorted(os.sched_getaffinity(0))
    with _loopback_http() as url, proxy_runs.tinyproxy() as proxy_url:
        direct, proxied = proxy_runs.new_connection_cost(url, proxy_url, cpus[-1:], count=40)
    assert sorted(os.sched_getaffinity(0)) == cpus  # affinity restored
    for cost in (direct, proxied):
        assert cost.cpu_us > 0 and cost.connect_ms > 0 and cost.elapsed_ms >= cost.connect_ms


def test_warm_up_scrapes_from_the_start_as_prometheus_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first scrape (the renderer's one-time label cache fill) falls in the warm-up, and
    later ones every ``scrape_every`` seconds, never beyond the warm-up."""
    from benchmarks import probe_runs

    now = [0.0]
    scrapes: list[float] = []
    monkeypatch.setattr(probe_runs.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(probe_runs.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    process = probe_runs.ExporterProcess.__new__(probe_runs.ExporterProcess)
    monkeypatch.setattr(process, "scrape", lambda: (scrapes.append(now[0]), ("", 0.0))[1])
    process.warm_up(12.0, scrape_every=5.0)
    assert scrapes == [0.0, 5.0, 10.0]
    assert now[0] == 12.0
