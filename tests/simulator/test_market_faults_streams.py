"""Market faults against the real exporter's WebSocket streams: prices shifted, frozen and
crossed on all five exchanges, set and cleared while the books are live, never break a stream's
book (no sequence gap, checksum mismatch, resync or reconnect), and a crossed book is seen as one
on every exchange."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from exporter.config import load_config
from exporter.metrics import ExporterMetrics
from exporter.scheduler import ProbeScheduler
from simulator import simulator_in_thread

pytestmark = pytest.mark.e2e  # in-thread simulator probed by the exporter

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "exporter.demo.yml"
EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")
BROKEN = ("sequence_gaps", "checksum_mismatches", "book_resyncs", "reconnects")
PHASE_S = 5.0


def totals(metrics: ExporterMetrics, name: str) -> dict[str, float]:
    """``exchange_ws_<name>_total`` summed per exchange."""
    out: dict[str, float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == f"exchange_ws_{name}_total":
                ex = sample.labels["exchange"]
                out[ex] = out.get(ex, 0.0) + sample.value
    return out


def test_market_faults_keep_stream_books_consistent(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = ExporterMetrics()
    with simulator_in_thread() as server:
        monkeypatch.setenv("SIMULATOR_URL", server.url)
        config = load_config(DEMO_CONFIG)

        async def play() -> dict[str, float]:
            stop = asyncio.Event()
            task = asyncio.create_task(ProbeScheduler(config, metrics).run(stop))
            async with httpx.AsyncClient(base_url=server.url, trust_env=False) as c:

                async def each(**fault: object) -> None:
                    for ex in EXCHANGES:
                        r = await c.post("/_control/faults", json={"exchange": ex, **fault})
                        assert r.status_code == 200, r.text

                try:
                    await asyncio.sleep(2 * PHASE_S)  # streams up, books synced
                    await each(fault="price_offset", bps=150)
                    await asyncio.sleep(PHASE_S)
                    await each(fault="price_freeze")
                    await each(fault="volume_spike", ratio=3)
                    await asyncio.sleep(PHASE_S)
                    await c.delete("/_control/faults")
                    await asyncio.sleep(PHASE_S)
                    healthy = {n: sum(totals(metrics, n).values()) for n in BROKEN}
                    await each(fault="book_crossed")
                    await asyncio.sleep(PHASE_S)
                finally:
                    stop.set()
                    await task
            return healthy

        healthy = asyncio.run(play())
    assert healthy == dict.fromkeys(BROKEN, 0.0)
    crossed = totals(metrics, "book_crossed")
    assert all(crossed.get(ex, 0) >= 1 for ex in EXCHANGES), crossed
