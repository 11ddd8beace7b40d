"""Figure 4 of the WebSocket benchmark: the memory the streams add to the exporter.

The exporter runs the shipped demo schedule (``deploy/exporter.demo.yml``: all five exchanges'
REST probes) against the simulator twice, with ``markets`` set to BTC, ETH and SOL against each
exchange's quote: once without and once with a ``websocket:`` block per exchange (all three
channels, every market, the simulator's documented paths). RSS is sampled once per second after
every stream is connected and every channel has delivered, and after a settling time (books
filled, first scrapes done).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import median, python, rss_bytes, start, stop
from benchmarks.probe_runs import ExporterProcess, parse_metrics
from deploy.stack import DEMO_EXPORTER_CONFIG, free_port, wait_for_http

WANTED_BASES: tuple[str, ...] = ("BTC", "ETH", "SOL")
QUOTES: dict[str, str] = {
    "binance": "USDT",
    "bybit": "USDT",
    "okx": "USDT",
    "coinbase": "USD",
    "kraken": "USD",
}
"""Each exchange's quote currency for the markets (as the simulator lists them)."""

WS_PATHS: dict[str, str] = {"coinbase": "/coinbase/ws"}
"""Stream URLs that are not ``/<exchange>`` on the simulator: Coinbase's feed is documented at
the host root, which the simulator serves at ``/coinbase/ws`` (the other dialects append their
documented path themselves)."""

READY_TIMEOUT = 90.0
SETTLE_SECONDS = 20.0
SAMPLE_SECONDS = 10.0


def markets_for(venue: str, listed: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(markets to use, wanted but not listed)`` for ``venue``: BTC, ETH and SOL against its
    quote, as far as the simulator lists them (``listed``)."""
    quote = QUOTES[venue]
    wanted = [f"{base}/{quote}" for base in WANTED_BASES]
    return [m for m in wanted if m in listed], [m for m in wanted if m not in listed]


def simulator_markets() -> dict[str, tuple[str, ...]]:
    """The markets the simulator lists per exchange (``Market.markets``)."""
    from simulator.market import Market

    market = Market()
    return {venue: market.markets(venue) for venue in QUOTES}


def config(
    simulator: str, markets: dict[str, list[str]], streams: bool, demo: Path = DEMO_EXPORTER_CONFIG
) -> dict[str, Any]:
    """The demo config pointed at ``simulator`` (``http://127.0.0.1:PORT``) with ``markets``;
    with ``streams`` every exchange gets a ``websocket:`` block on the simulator (the demo
    config's own block where it has one, with the URL and markets replaced), without it none."""
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(demo.read_text(encoding="utf-8")))
    data.pop("location", None)  # one exporter, one place: no location label
    ws_base = simulator.replace("http://", "ws://", 1)
    for exchange in data["exchanges"]:
        name = exchange["name"]
        exchange["base_url"] = f"{simulator}/{name}"
        exchange["markets"] = markets[name]
        exchange.pop("api_keys", None)  # key checks are not what this measures
        shipped = exchange.pop("websocket", None)
        if streams:
            # The shipped block's settings, on this simulator, subscribing every market.
            block = {k: v for k, v in (shipped or {}).items() if k not in ("url", "markets")}
            block["url"] = ws_base + WS_PATHS.get(name, f"/{name}")
            block["enabled"] = True
            exchange["websocket"] = block
    return data


def streams_flowing(samples: dict[str, list[tuple[dict[str, str], float]]], count: int) -> bool:
    """Whether ``count`` exchanges are connected and every channel series has messages."""
    connected = [v for _, v in samples.get("exchange_ws_connected", []) if v == 1]
    messages = samples.get("exchange_ws_messages_total", [])
    return len(connected) >= count and bool(messages) and all(v > 0 for _, v in messages)


def probes_running(samples: dict[str, list[tuple[dict[str, str], float]]], count: int) -> bool:
    """Whether ``count`` exchanges have finished a REST probe."""
    done = {labels.get("exchange") for labels, v in samples.get("exchange_api_requests_total", [])}
    return len(done - {None}) >= count


@dataclass
class MemoryRun:
    """One exporter's memory (MiB) and what it ran.

    Attributes:
        rss_mib: median VmRSS of the samples.
        peak_mib: VmHWM at the end.
        connected: streams connected when sampling ended.
        channels: channel series with messages.
    """

    rss_mib: float
    peak_mib: float
    connected: int
    channels: int


def measure(data: dict[str, Any], cpus: Sequence[int], streams: bool) -> MemoryRun:
    """Run the exporter on ``data`` and sample its RSS (see the module docstring).

    Raises:
        TimeoutError: the streams (or probes) did not start within :data:`READY_TIMEOUT`.
    """
    count = len(data["exchanges"])
    with ExporterProcess(data, list(cpus)) as exporter:
        assert exporter.child is not None
        ready = streams_flowing if streams else probes_running
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready(parse_metrics(exporter.scrape()[0]), count):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"exporter {'streams' if streams else 'probes'} not running within "
                    f"{READY_TIMEOUT:g} s"
                )
            time.sleep(1.0)
        time.sleep(SETTLE_SECONDS)
        samples = []
        end = time.monotonic() + SAMPLE_SECONDS
        while time.monotonic() < end:
            samples.append(rss_bytes(exporter.child.pid)[0])
            time.sleep(1.0)
        metrics = parse_metrics(exporter.scrape()[0])
        peak = rss_bytes(exporter.child.pid)[1]
    connected = sum(1 for _, v in metrics.get("exchange_ws_connected", []) if v == 1)
    channels = sum(1 for _, v in metrics.get("exchange_ws_messages_total", []) if v > 0)
    return MemoryRun(median(samples) / 2**20, peak / 2**20, connected, channels)


def memory_run(sut: Sequence[int], load: Sequence[int], directory: Path) -> dict[str, Any]:
    """One run of figure 4: the simulator on ``load``, the exporter on ``sut`` without and
    with streams; RSS of each and the difference (MiB)."""
    listed = simulator_markets()
    chosen = {venue: markets_for(venue, listed.get(venue, ()))[0] for venue in QUOTES}
    missing = [
        f"{venue} {m}" for venue in QUOTES for m in markets_for(venue, listed.get(venue, ()))[1]
    ]
    port = free_port()
    simulator = f"http://127.0.0.1:{port}"
    log = directory / "simulator.log"
    child = start(
        [python(), "-m", "simulator", "--listen", f"127.0.0.1:{port}"],
        "simulator",
        cpus=load,
        log=log,
    )
    try:
        wait_for_http(f"{simulator}/_control/health", timeout=30, process=child.process)
        without = measure(config(simulator, chosen, streams=False), sut, streams=False)
        with_streams = measure(config(simulator, chosen, streams=True), sut, streams=True)
    finally:
        stop([child])
    return {
        "rss_without_mib": without.rss_mib,
        "rss_with_mib": with_streams.rss_mib,
        "added_mib": with_streams.rss_mib - without.rss_mib,
        "peak_without_mib": without.peak_mib,
        "peak_with_mib": with_streams.peak_mib,
        "added_peak_mib": with_streams.peak_mib - without.peak_mib,
        "connected": with_streams.connected,
        "channels_flowing": with_streams.channels,
        "subscriptions": sum(len(m) for m in chosen.values()) * 3,
        "markets": {venue: chosen[venue] for venue in QUOTES},
        "missing_markets": missing,
    }
