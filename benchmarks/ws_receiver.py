"""The WebSocket benchmark's receiving side, run as its own process pinned to the measured core.

Modes:

- ``exporter``: the exporter's own stream code path: an :class:`~exporter.config.ExporterConfig`
  with ``websocket:`` blocks for OKX and Binance pointed at the sender, the per-exchange
  :class:`~exporter.state.ExchangeState`, :class:`~exporter.metrics.ExporterMetrics` and a
  :class:`~exporter.streams.manager.StreamManager` with the real HTTP client (Binance's REST
  snapshot goes through the probe gate to the sender), exactly as the scheduler builds them.
  Lag histograms, book integrity (OKX ``prevSeqId``/``seqId`` + CRC32, Binance snapshot + ``U``/
  ``u``), ``/status`` records and a ``/metrics`` rendering every 5 s (as Prometheus scrapes) all
  run. The window's messages come from the streams' own counters.
- ``bare``: a ``websockets`` client per exchange that subscribes with the same frames and then
  only ``await recv()`` in a loop, counting frames: the floor the library sets.
- ``lag``: ``exporter`` with two read-only wrappers installed in this process (the exporter's
  code is untouched): the lag histogram children's ``observe`` records every lag value, and
  ``websockets``' ``Connection.process_event`` (called synchronously from ``data_received`` when
  the event loop hands the socket's bytes to the protocol) records the wall time each data frame
  arrived, with the frame. Runs until ``--count`` data messages were observed.

Writes one JSON object to ``--out``: ``messages``, ``seconds``, ``cpu_seconds``, integrity
counts, and for ``lag`` the per-exchange ``arrivals`` ([ns, frame event time ms]) and ``lags``
(seconds).

    python benchmarks/ws_receiver.py --mode exporter --url ws://127.0.0.1:PORT --out F
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import generate_latest

from benchmarks.ws_feed import MARKETS
from exporter import __version__
from exporter.config import ExporterConfig, parse_config
from exporter.http11 import ProbeClient
from exporter.metrics import ExporterMetrics
from exporter.state import ExchangeState
from exporter.streams.dialects import get_dialect
from exporter.streams.events import CHANNELS, Subscription
from exporter.streams.manager import StreamManager

EXCHANGES: tuple[str, ...] = ("okx", "binance")
SCRAPE_SECONDS = 5.0
READY_TIMEOUT = 60.0
_TS = re.compile(rb'"(?:ts":"|E":)(\d+)')


def config_for(url: str) -> ExporterConfig:
    """OKX and Binance with ``websocket:`` blocks (every channel, :data:`MARKETS`) on the
    sender at ``url`` (``ws://127.0.0.1:PORT``); REST (Binance's book snapshot) on the same
    port."""
    rest = url.replace("ws://", "http://", 1)
    data = {
        "exchanges": [
            {
                "name": name,
                "profile": name,
                "base_url": rest,
                "endpoints": ["time"],  # no REST prober runs here; a valid schedule only
                "markets": list(MARKETS),
                "websocket": {"url": url},
            }
            for name in EXCHANGES
        ]
    }
    return parse_config(data, "<bench_ws receiver>")


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


class ExporterSide:
    """The exporter's streams on one event loop (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.config = config_for(url)
        self.metrics = ExporterMetrics()
        self.states = {e.name: ExchangeState.for_config(e) for e in self.config.exchanges}
        self.client = ProbeClient(f"exchange-watch/{__version__} bench")
        self.manager = StreamManager(self.metrics, self.states, self.client)

    def start(self) -> None:
        """Start every stream (call on the loop)."""
        self.manager.apply(self.config)

    def messages(self) -> int:
        """Messages received so far over every stream and channel."""
        return sum(
            channel.messages
            for status in self.manager.statuses.values()
            for channel in status.channels.values()
        )

    def flowing(self) -> bool:
        """Every stream connected, every channel received, every book in sync."""
        for name, status in self.manager.statuses.items():
            if not status.connected:
                return False
            if any(c.messages == 0 for c in status.channels.values()):
                return False
            # The session's book keeper is internal: read it where it is, never fail on it.
            connection = self.manager.connection(name)
            session = connection.session if connection is not None else None
            books = getattr(getattr(session, "_books", None), "books", None)
            if isinstance(books, dict) and any(
                getattr(book, "needs_snapshot", False) for book in books.values()
            ):
                return False
        return True

    def integrity(self) -> dict[str, int]:
        """Counts that must stay 0 on the sender's consistent feed."""
        out = {"gaps": 0, "checksum_mismatches": 0, "resyncs": 0, "crossed": 0, "reconnects": 0}
        for status in self.manager.statuses.values():
            out["gaps"] += sum(c.gaps for c in status.channels.values())
            out["checksum_mismatches"] += sum(
                c.checksum_mismatches for c in status.channels.values()
            )
            out["resyncs"] += status.book_resyncs
            out["crossed"] += status.book_crossed
            out["reconnects"] += sum(status.reconnects.values())
        return out

    async def stop(self) -> None:
        """Stop the streams."""
        await self.manager.stop()


async def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g} s")
        await asyncio.sleep(0.05)


async def run_exporter(url: str, warmup: float, window: float) -> dict[str, Any]:
    """Throughput and CPU of the exporter's streams over ``window`` seconds."""
    side = ExporterSide(url)
    side.start()
    try:
        await _wait(side.flowing, READY_TIMEOUT, "streams connected, books in sync")
        await asyncio.sleep(warmup)
        m0, c0, t0 = side.messages(), _cpu(), time.monotonic()
        next_scrape = t0 + SCRAPE_SECONDS
        end = t0 + window
        while (now := time.monotonic()) < end:
            await asyncio.sleep(min(end, next_scrape) - now)
            if time.monotonic() >= next_scrape:
                generate_latest(side.metrics.registry)
                next_scrape += SCRAPE_SECONDS
        m1, c1, t1 = side.messages(), _cpu(), time.monotonic()
        return {
            "messages": m1 - m0,
            "seconds": t1 - t0,
            "cpu_seconds": c1 - c0,
            **side.integrity(),
        }
    finally:
        await side.stop()


async def run_bare(url: str, warmup: float, window: float) -> dict[str, Any]:
    """Throughput and CPU of a do-nothing ``websockets`` receive loop on the same feed."""
    from websockets.asyncio.client import connect

    count = [0]
    stop = asyncio.Event()

    async def one(name: str) -> None:
        dialect = get_dialect(name)()
        subscriptions = [Subscription(c, m) for c in CHANNELS for m in MARKETS]
        target = dialect.connect_url(url, subscriptions)
        async with connect(target, ping_interval=None, max_size=2**24, proxy=None) as ws:
            for frame in dialect.subscribe_messages(subscriptions):
                await ws.send(frame)
            recv = ws.recv
            while not stop.is_set():
                await recv()
                count[0] += 1

    tasks = [asyncio.create_task(one(name)) for name in EXCHANGES]
    try:
        await _wait(lambda: count[0] > 1000, READY_TIMEOUT, "frames flowing")
        await asyncio.sleep(warmup)
        m0, c0, t0 = count[0], _cpu(), time.monotonic()
        await asyncio.sleep(window)
        m1, c1, t1 = count[0], _cpu(), time.monotonic()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise RuntimeError(f"bare receiver failed: {task.exception()!r}")
    return {"messages": m1 - m0, "seconds": t1 - t0, "cpu_seconds": c1 - c0}


class LagRecorder:
    """The read-only wrappers of ``lag`` mode (see the module docstring)."""

    def __init__(self) -> None:
        # Flat arrays, not lists of tuples: no objects for the garbage collector to walk, so
        # the recording adds no collection pauses of its own to the delays it measures.
        self.arrival_ns: dict[str, array[int]] = {n: array("q") for n in EXCHANGES}
        self.frame_ms: dict[str, array[int]] = {n: array("q") for n in EXCHANGES}
        self.lags: dict[str, array[float]] = {n: array("d") for n in EXCHANGES}

    def observed(self) -> int:
        """Lag values recorded so far."""
        return sum(len(values) for values in self.lags.values())

    def document(self) -> dict[str, Any]:
        """``{"arrivals": {exchange: [[ns, ms]…]}, "lags": {exchange: [s…]}}``."""
        return {
            "arrivals": {
                n: [list(pair) for pair in zip(self.arrival_ns[n], self.frame_ms[n], strict=True)]
                for n in EXCHANGES
            },
            "lags": {n: list(values) for n, values in self.lags.items()},
        }

    def install(self, metrics: ExporterMetrics) -> None:
        """Wrap the lag children's ``observe`` and ``Connection.process_event``."""
        from websockets.asyncio.connection import Connection
        from websockets.frames import Opcode

        for name in EXCHANGES:
            sink = self.lags[name]
            for channel in CHANNELS:
                child = metrics.streams.lag.labels(name, channel.value)
                original = child.observe

                def observe(
                    value: float, *args: Any, _o: Any = original, _s: Any = sink, **kw: Any
                ) -> None:
                    _s.append(value)
                    _o(value, *args, **kw)

                setattr(child, "observe", observe)  # noqa: B010 (a method, wrapped on purpose)
        arrival_ns, frame_ms = self.arrival_ns, self.frame_ms
        process_event = Connection.process_event

        def recording(conn: Any, event: Any) -> None:
            if event.opcode is Opcode.TEXT:
                data = bytes(event.data)
                name = "okx" if data.startswith(b'{"arg"') else "binance"
                if data.startswith((b'{"arg"', b'{"stream"')):
                    found = _TS.search(data)
                    if found:
                        arrival_ns[name].append(time.time_ns())
                        frame_ms[name].append(int(found.group(1)))
            process_event(conn, event)

        setattr(Connection, "process_event", recording)  # noqa: B010 (wrapped on purpose)


async def run_lag(url: str, count: int, timeout: float) -> dict[str, Any]:
    """Lag values and frame arrival times of ``count`` data messages."""
    side = ExporterSide(url)
    recorder = LagRecorder()
    recorder.install(side.metrics)
    side.start()
    try:
        await _wait(lambda: recorder.observed() >= count, timeout, f"{count} lag values")
        await asyncio.sleep(0.2)
    finally:
        await side.stop()
    return {**recorder.document(), **side.integrity()}


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=("exporter", "bare", "lag"), required=True)
    parser.add_argument("--url", required=True, help="the sender, ws://HOST:PORT")
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=0, help="lag mode: data messages")
    parser.add_argument("--timeout", type=float, default=120.0, help="lag mode: seconds")
    args = parser.parse_args(argv)
    if args.mode == "exporter":
        result = asyncio.run(run_exporter(args.url, args.warmup, args.window))
    elif args.mode == "bare":
        result = asyncio.run(run_bare(args.url, args.warmup, args.window))
    else:
        result = asyncio.run(run_lag(args.url, args.count, args.timeout))
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
