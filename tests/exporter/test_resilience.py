"""Rate-limit gate, transport backoff and circuit breaker, with injected clocks."""

from __future__ import annotations

import random

import pytest

from exporter.resilience import (
    TRANSPORT_BACKOFF_CAP_SECONDS,
    CircuitBreaker,
    CircuitState,
    RateLimitGate,
    transport_backoff,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_gate_blocks_until_and_never_shortens() -> None:
    clock = FakeClock()
    gate = RateLimitGate(now=clock)
    assert gate.remaining() == 0
    assert gate.block(120) == 1120
    clock.now += 30
    assert gate.remaining() == pytest.approx(90)
    gate.block(10)  # a shorter wait never shortens a ban
    assert gate.until == 1120
    clock.now = 1121
    assert gate.remaining() == 0


def test_transport_backoff_grows_with_jitter_and_cap() -> None:
    rng = random.Random(1)
    assert transport_backoff(5.0, 0, rng) == 5.0
    delays = [transport_backoff(5.0, n, rng) for n in range(1, 12)]
    assert all(d >= 5.0 for d in delays)
    assert delays[2] >= 5.0 * 4 * 0.8  # third failure: 20 s ± 20 %
    assert max(delays) <= TRANSPORT_BACKOFF_CAP_SECONDS * 1.2
    jittered = {round(transport_backoff(5.0, 3, rng), 6) for _ in range(20)}
    assert len(jittered) > 1  # jitter spreads probes


def test_circuit_opens_slows_trials_and_closes() -> None:
    clock = FakeClock()
    circuit = CircuitBreaker(failure_threshold=3, open_seconds=30, slow_factor=4, monotonic=clock)
    for _ in range(2):
        assert circuit.allow()
        circuit.record(False)
    assert circuit.state is CircuitState.CLOSED
    assert circuit.interval(5) == 5
    circuit.record(False)
    assert circuit.state is CircuitState.OPEN
    assert circuit.interval(5) == 20  # slowed, still probing: exchange_api_up stays truthful
    assert circuit.allow()
    clock.now += 31
    assert circuit.allow()  # the one half-open trial
    assert circuit.state is CircuitState.HALF_OPEN
    assert not circuit.allow()  # nobody else while the trial runs
    circuit.record(False)
    assert circuit.state is CircuitState.OPEN  # trial failed: open again
    clock.now += 31
    assert circuit.allow()
    circuit.record(True)
    assert circuit.state is CircuitState.CLOSED
    assert circuit.interval(5) == 5


def test_success_while_open_closes() -> None:
    circuit = CircuitBreaker(failure_threshold=1, monotonic=FakeClock())
    circuit.record(False)
    assert circuit.state is CircuitState.OPEN
    circuit.record(True)
    assert circuit.state is CircuitState.CLOSED
