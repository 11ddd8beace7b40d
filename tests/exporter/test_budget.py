"""The shipped schedule against the simulator's real limits: within budget, never a 429; and
when another process on the IP spends Binance's weight, the exporter backs off and resumes."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import httpx
import pytest

from exporter.config import load_config
from exporter.metrics import ExporterMetrics
from exporter.profiles import get_profile
from exporter.scheduler import ProbeScheduler

pytestmark = pytest.mark.e2e  # probes a simulator process (simulator_url)

ROOT = Path(__file__).resolve().parents[2]


def shipped_config(monkeypatch: pytest.MonkeyPatch, simulator_url: str):
    monkeypatch.setenv("SIMULATOR_URL", simulator_url)
    return load_config(ROOT / "deploy" / "exporter.demo.yml")


async def run_for(scheduler: ProbeScheduler, seconds: float, until=None) -> float:
    """Run the scheduler for ``seconds`` or until ``until()`` is true; return elapsed s."""
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if until is not None and until():
            break
        await asyncio.sleep(0.25)
    stop.set()
    await task
    return time.monotonic() - started


def test_shipped_schedule_stays_within_budget(
    clean_faults: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = shipped_config(monkeypatch, clean_faults)
    httpx.delete(f"{clean_faults}/_control/stats")
    elapsed = asyncio.run(run_for(ProbeScheduler(config, ExporterMetrics()), 12.0))
    stats = httpx.get(f"{clean_faults}/_control/stats").json()
    assert all(not any(v.values()) for v in stats["limit_responses"].values()), stats
    for exchange in config.exchanges:
        profile = get_profile(exchange.profile)
        specs = profile.endpoint_specs(exchange.effective_symbol())
        received = stats["requests"].get(exchange.name, {})
        for plan in exchange.endpoint_plan():
            # Never more than one probe per interval (plus the first one at its offset).
            assert received.get(plan.name, 0) <= math.ceil(elapsed / plan.interval) + 1
        for rule in profile.limits:
            covered = [p for p in exchange.endpoint_plan() if rule.applies_to(p.name)]
            worst = sum(
                specs[p.name].weight * (math.ceil(rule.window_seconds / p.interval) + 1)
                for p in covered
            )
            # Even counting a probe at both ends of every window, the schedule is far below
            # the documented limit.
            assert worst <= max(rule.limit * exchange.weight_budget * 2, len(covered) * 2)


def test_backs_off_when_another_process_spends_the_weight_and_resumes(
    clean_faults: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = shipped_config(monkeypatch, clean_faults)
    config = config.model_copy(update={"exchanges": [config.exchanges[0]]})  # binance only
    metrics = ExporterMetrics()
    scheduler = ProbeScheduler(config, metrics)
    sample = metrics.registry.get_sample_value
    httpx.post(f"{clean_faults}/_control/consume", json={"exchange": "binance", "weight": 6000})
    consumed = time.time()

    def resumed() -> bool:
        until = sample(
            "exchange_rate_limit_backoff_until_timestamp_seconds", {"exchange": "binance"}
        )
        return (
            bool(until)
            and time.time() > until
            and sample("exchange_api_up", {"exchange": "binance", "endpoint": "time"}) == 1
        )

    asyncio.run(run_for(scheduler, 80.0, until=resumed))
    until = sample("exchange_rate_limit_backoff_until_timestamp_seconds", {"exchange": "binance"})
    # It paused until the weight window rolled over (Retry-After: the next UTC minute) ...
    assert until > consumed and until <= math.floor(consumed / 60) * 60 + 61
    limited = sum(
        sample(
            "exchange_api_requests_total",
            {"exchange": "binance", "endpoint": e.name, "result": "rate_limited"},
        )
        or 0
        for e in config.exchanges[0].endpoint_plan()
    )
    assert 1 <= limited <= 5  # at most the probes already in flight
    # ... then resumed by itself, and was never banned.
    assert resumed()
    stats = httpx.get(f"{clean_faults}/_control/stats").json()
    assert stats["limit_responses"]["binance"]["418"] == 0
