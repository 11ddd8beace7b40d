"""Benchmark 2: latency measurement error against injected latency, at 200 and 1,000 probes/s.

The simulator (its own process, on the load core, request limits off) holds every Binance
request for 50 ms ± 10 ms (``latency`` fault) and reports in ``X-Simulator-Latency-Ms`` how long
it actually held each one. The exporter's scheduler and prober run in this process, pinned to
the measured core, exactly as in ``exchange-exporter`` (same config model, same transport); a
thin hook pairs each probe's measured latency with that header. Error = measured − held: what
the exporter adds on top of the exchange's own delay (loopback round trip, the simulator's
parsing and writing, and any wait of the exporter's event loop).

    python benchmarks/bench_accuracy.py --runs 3
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.common import (
    cores,
    median,
    percentile,
    python,
    running,
    section,
    start,
    target,
)
from benchmarks.common import (
    main as common_main,
)
from benchmarks.static_target import ENDPOINTS
from deploy.stack import free_port, wait_for_http
from exporter import scheduler as scheduler_module
from exporter.config import parse_config
from exporter.metrics import ExporterMetrics
from exporter.prober import Prober, ProbeTarget
from exporter.profiles import Verdict
from exporter.scheduler import ProbeScheduler

RATES = (200, 1000)
LATENCY_MS, JITTER_MS = 50.0, 10.0
WARMUP_SECONDS, WINDOW_SECONDS = 3.0, 10.0
HEADER = "x-simulator-latency-ms"


def _config(simulator: str, endpoints: int) -> dict[str, Any]:
    exchanges = []
    for index in range(endpoints // len(ENDPOINTS)):
        exchanges.append(
            {
                "name": f"bench{index:04d}",
                "profile": "generic",
                "base_url": f"{simulator}/binance",
                "interval": "1s",
                "timeout": "1s",
                "endpoints": [{"name": n, "path": p} for n, p in ENDPOINTS.items()],
            }
        )
    # 1,000 probes/s × ~60 ms held = ~60 probes in flight; the default cap (64) would queue.
    return {"max_concurrency": 512, "exchanges": exchanges}


class _PairingProber(Prober):
    """The real prober; also pairs each measured latency with the simulator's held time."""

    pairs: ClassVar[list[tuple[float, float]]] = []
    measuring = False

    def _record_response(
        self,
        target: ProbeTarget,
        headers: Mapping[str, str],
        verdict: Verdict,
        duration: float,
        wall_start: float,
    ) -> None:
        super()._record_response(target, headers, verdict, duration, wall_start)
        held = headers.get(HEADER)
        if self.measuring and held is not None:
            self.pairs.append((duration, float(held) / 1000.0))


@contextlib.contextmanager
def _pairing() -> Iterator[type[_PairingProber]]:
    """Make the scheduler build :class:`_PairingProber` instead of the plain prober."""
    _PairingProber.pairs, _PairingProber.measuring = [], False
    with mock.patch.object(scheduler_module, "Prober", _PairingProber):
        yield _PairingProber


async def _measure(simulator: str, rate: int) -> dict[str, Any]:
    scheduler = ProbeScheduler(parse_config(_config(simulator, rate)), ExporterMetrics())
    stop = asyncio.Event()
    with _pairing() as pairing:
        task = asyncio.create_task(scheduler.run(stop))
        await asyncio.sleep(WARMUP_SECONDS)
        pairing.measuring = True
        began = time.monotonic()
        await asyncio.sleep(WINDOW_SECONDS)
        pairing.measuring = False
        elapsed = time.monotonic() - began
        stop.set()
        await task
        pairs = pairing.pairs
    errors = [(measured - held) * 1000 for measured, held in pairs]
    held_ms = [held * 1000 for _, held in pairs]
    return {
        "rate": rate,
        "probes_per_s": len(pairs) / elapsed,
        "held_p50_ms": percentile(held_ms, 50),
        "error_p50_ms": percentile(errors, 50),
        "error_p99_ms": percentile(errors, 99),
        "error_max_ms": max(errors) if errors else float("nan"),
    }


def run(runs: int) -> dict[str, Any]:
    """Measure ``runs`` times at each rate; return the ``accuracy`` section (medians)."""
    sut, load = cores()
    port = free_port()
    simulator = f"http://127.0.0.1:{port}"
    argv = [python(), "-m", "simulator.cli", "--listen", f"127.0.0.1:{port}", "--no-limits"]
    with running(start(argv, "simulator", cpus=load)):
        wait_for_http(f"{simulator}/_control/health", timeout=20)
        fault: dict[str, str | float] = {"exchange": "binance", "fault": "latency"}
        fault |= {"latency_ms": LATENCY_MS, "jitter_ms": JITTER_MS}
        httpx.post(f"{simulator}/_control/faults", json=fault, timeout=5).raise_for_status()
        os.sched_setaffinity(0, sut)
        try:
            results = {
                rate: [asyncio.run(_measure(simulator, rate)) for _ in range(runs)]
                for rate in RATES
            }
        finally:
            os.sched_setaffinity(0, sut + load)
    rows = []
    for rate in RATES:
        measured = results[rate]
        row: dict[str, Any] = {"rate": rate}
        for key in measured[0]:
            if key != "rate":
                row[key] = median([m[key] for m in measured])
        rows.append(row)
    at_1000 = next(r for r in rows if r["rate"] == 1000)
    targets = [
        target("latency error p99 at 1,000 probes/s", at_1000["error_p99_ms"], "<=", 5.0, "ms"),
    ]
    notes = [
        f"injected: latency fault {LATENCY_MS:g} ms ± {JITTER_MS:g} ms (uniform) on every Binance "
        "endpoint; held = what the simulator reports it held each request",
        "error = exporter's measured latency − held; includes the loopback round trip and the "
        "simulator's own request handling (~0.2–0.5 ms), so it is an upper bound of the "
        "exporter's error",
    ]
    return section(
        "accuracy",
        "Latency measurement error vs injected latency (simulator, 50 ms ± 10 ms)",
        rows,
        targets,
        notes,
    )


def main() -> int:
    """Run standalone (``--runs``, ``--json``) and print the table."""
    return common_main(run, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
