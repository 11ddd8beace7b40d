"""Issue 11's partial outage against the real simulator: one endpoint of every exchange failing
persistently — each failure kind in turn — under normal latency jitter, the shipped schedule, and
the exporter's request count per exchange stays within its schedule; no limit answer is drawn.

Every kind runs at once, each on its own in-thread simulator (their limits and counters are
separate), for :data:`SECONDS` of real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.admission import CONFIRMATION_PROBES
from exporter.config import ExporterConfig, load_config
from exporter.metrics import ExporterMetrics
from exporter.scheduler import ProbeScheduler
from simulator import simulator_in_thread
from simulator.failure_kinds import FAILURE_KINDS, endpoint_fault

pytestmark = pytest.mark.e2e  # probes an in-thread simulator

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 20.0
JITTER = {"fault": "latency", "latency_ms": 30, "jitter_ms": 20}
"""Normal latency jitter on every exchange (an exchange-wide fault; the endpoint's own fault
replaces it on the failing endpoint)."""

KINDS = ("healthy", *FAILURE_KINDS)


def faults_for(kind: str, config: ExporterConfig) -> list[dict[str, Any]]:
    """The control-API faults of one run: jitter everywhere, and ``kind`` on the last endpoint
    of each exchange that documents it (:func:`simulator.failure_kinds.endpoint_fault`)."""
    faults: list[dict[str, Any] | None] = []
    for exchange in config.exchanges:
        faults.append({"exchange": exchange.name, **JITTER})
        if kind != "healthy":
            faults.append(endpoint_fault(kind, exchange.name, exchange.endpoint_names()[-1]))
    return [fault for fault in faults if fault is not None]


async def play(kind: str, url: str) -> tuple[ExporterConfig, dict[str, Any], float]:
    """Run the shipped schedule against the simulator at ``url`` with ``kind`` injected."""
    os.environ["SIMULATOR_URL"] = url
    config = load_config(ROOT / "deploy" / "exporter.demo.yml")
    async with httpx.AsyncClient(base_url=url, timeout=10) as control:
        for fault in faults_for(kind, config):
            reply = await control.post("/_control/faults", json=fault)
            assert reply.status_code == 200, reply.text
        await control.delete("/_control/stats")
        loop = asyncio.get_running_loop()
        started = loop.time()
        stop = asyncio.Event()
        loop.call_later(SECONDS, stop.set)
        # REST probes and key checks only: the streams' book snapshots share the failing depth
        # endpoint, and their retries are bounded by the resync backoff and the weight budget
        # (tests/exporter/test_ws_integrity.py), not by the probe schedule checked here.
        await ProbeScheduler(config, ExporterMetrics(), streams=False).run(stop)
        elapsed = loop.time() - started
        stats = (await control.get("/_control/stats")).json()
    return config, stats, elapsed


def test_one_failing_endpoint_never_multiplies_the_request_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIMULATOR_URL", "")
    with contextlib.ExitStack() as stack:
        urls = {kind: stack.enter_context(simulator_in_thread()).url for kind in KINDS}

        async def main() -> list[tuple[ExporterConfig, dict[str, Any], float]]:
            return await asyncio.gather(*(play(kind, url) for kind, url in urls.items()))

        results = dict(zip(KINDS, asyncio.run(main()), strict=True))
    problems = []
    for kind, (config, stats, elapsed) in results.items():
        for exchange in config.exchanges:
            received = stats["requests"].get(exchange.name, {})
            total = sum(received.values())
            # Each endpoint: its interval's worth, plus the first probe and one confirmation
            # (the key checks, `api_key`, at their combined interval: within the same bound).
            bound = sum(
                elapsed / interval + 1 + CONFIRMATION_PROBES
                for interval, _ in exchange.budget_schedule().values()
            )
            if total > bound:
                problems.append(
                    f"{kind}: {exchange.name} sent {total} requests in {elapsed:.1f}s "
                    f"(schedule allows {bound:.0f}): {received}"
                )
            limited = stats["limit_responses"].get(exchange.name, {})
            if any(limited.values()):
                problems.append(f"{kind}: {exchange.name} drew limit answers {limited}")
        healthy = results["healthy"][1]["requests"]
    assert not problems, "\n".join(problems)
    assert all(sum(healthy.get(e.name, {}).values()) > 0 for e in results["healthy"][0].exchanges)
