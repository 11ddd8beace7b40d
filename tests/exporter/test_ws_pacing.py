"""Reconnect pacing, pure and on fake clocks: backoff with full jitter, the connection-attempt
limiter, the outgoing message pacer, and the probe gate's extra-weight admission."""

from __future__ import annotations

import random

import pytest

from exporter.admission import BudgetWindow, HoldReason, ProbeAdmission
from exporter.profiles.base import LimitRule
from exporter.resilience import RateLimitGate
from exporter.streams.backoff import HEALTHY_RESET_SECONDS, Backoff
from exporter.streams.dialect import ConnectLimit
from exporter.streams.limits import ConnectLimiter, MessagePacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_exponentially_within_full_jitter_bounds() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(7))
    bounds = []
    for _ in range(10):
        delay = backoff.ended(healthy_seconds=0.0)
        bounds.append(backoff.bound())
        assert 0.0 <= delay <= backoff.bound()
    assert bounds == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    delays = [Backoff(rng=random.Random(seed)).ended(0.0) for seed in range(200)]
    assert min(delays) < 0.1 and max(delays) > 0.9  # spread over [0, 1]: full jitter


def test_backoff_resets_after_a_healthy_minute_only() -> None:
    backoff = Backoff(rng=random.Random(1))
    for _ in range(5):
        backoff.ended(0.0)
    backoff.ended(HEALTHY_RESET_SECONDS - 1)
    assert backoff.failures == 6
    assert backoff.ended(HEALTHY_RESET_SECONDS) == 0.0  # straight back after a healthy run
    assert backoff.failures == 0


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0.0)


@pytest.mark.parametrize(
    ("limit", "budget", "allowed"),
    [
        (ConnectLimit(300, 300.0, "[BN-WS §WebSocket Limits]"), 0.1, 30),
        (ConnectLimit(150, 600.0, "[KR-V2HOME]"), 0.2, 30),
        (ConnectLimit(3, 1.0, "[OKX-OV §Connect]"), 0.1, 1),  # at least one per window
        (ConnectLimit(3, 1.0, "[OKX-OV §Connect]"), 1.0, 3),
    ],
)
def test_connect_limiter_never_exceeds_its_window(
    limit: ConnectLimit, budget: float, allowed: int
) -> None:
    clock = FakeClock()
    limiter = ConnectLimiter([limit], budget, clock)
    assert limiter.allowed() == [(limit, allowed)]
    attempts: list[float] = []
    rng = random.Random(3)
    for _ in range(2000):  # a client trying as fast as the limiter lets it
        wait = limiter.wait()
        if wait > 0:
            clock.now += wait
            continue
        limiter.record()
        attempts.append(clock.now)
        clock.now += rng.uniform(0, limit.window_seconds / allowed / 3)
    assert len(attempts) > allowed
    for i, start in enumerate(attempts):
        in_window = [a for a in attempts[i:] if a < start + limit.window_seconds]
        assert len(in_window) <= allowed <= limit.attempts


def test_connect_limiter_keeps_history_across_reconfigure() -> None:
    clock = FakeClock()
    limit = ConnectLimit(10, 60.0, "[TEST]")
    limiter = ConnectLimiter([limit], 0.2, clock)  # 2 per minute
    limiter.record()
    limiter.record()
    assert limiter.wait() == pytest.approx(60.0)
    limiter.configure([limit], 0.2)  # a reload must not buy extra attempts
    assert limiter.wait() == pytest.approx(60.0)
    clock.now += 60.0
    assert limiter.wait() == 0.0


def test_message_pacer_spaces_frames_below_the_documented_rate() -> None:
    clock = FakeClock()
    pacer = MessagePacer(5.0, reserve=1.0, monotonic=clock)  # Binance: 5/s, pongs included
    sent = []
    for _ in range(40):
        clock.now += pacer.delay()
        sent.append(clock.now)
    for i, start in enumerate(sent):
        assert len([t for t in sent[i:] if t < start + 1.0]) <= 4
    assert MessagePacer(None).delay() == 0.0


def _admission(clock: FakeClock, pause: RateLimitGate | None = None) -> ProbeAdmission:
    admission = ProbeAdmission(pause or RateLimitGate(now=clock), clock)
    rule = LimitRule("REQUEST_WEIGHT", 60.0, 6000, None, "[BN-ENUM]")
    window = BudgetWindow.of(rule, 0.1, 10)  # cap 600 per minute
    admission.configure({"orderbook": (5.0, 5.0)}, [window])
    return admission


def test_extra_weight_counts_in_the_probe_budget() -> None:
    clock = FakeClock()
    admission = _admission(clock)
    assert admission.try_admit_weight("orderbook", 250) == (0.0, None)
    assert admission.try_admit_weight("orderbook", 250) == (0.0, None)
    wait, reason = admission.try_admit_weight("orderbook", 250)
    assert reason is HoldReason.BUDGET and wait == pytest.approx(60.0)
    ((_, used),) = admission.usage()
    assert used == 500
    clock.now += 60.0
    assert admission.try_admit_weight("orderbook", 250) == (0.0, None)


def test_extra_weight_is_held_by_a_pause_and_refused_when_it_can_never_fit() -> None:
    clock = FakeClock()
    gate = RateLimitGate(now=clock)
    admission = _admission(clock, gate)
    gate.block(30.0, ban=True)
    wait, reason = admission.try_admit_weight("orderbook", 5)
    assert reason is HoldReason.PAUSED and wait == pytest.approx(30.0)
    with pytest.raises(ValueError, match="exceeds the budget"):
        admission.try_admit_weight("orderbook", 601)
