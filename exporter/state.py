"""What the exporter remembers between probes, per exchange and per endpoint.

Feeds the resilience decisions (backoff, circuit) and the ``/status`` JSON; metrics are the
exported view of the same facts.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from exporter.admission import ProbeAdmission
from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.config import ExchangeConfig
from exporter.resilience import CircuitBreaker, RateLimitGate
from exporter.streams.status import StreamStatus

RECENT_WINDOW_SECONDS = 300.0
"""Window of the latency percentiles in ``/status``."""

SWEEP_MIN_SECONDS = 60.0
"""Least time between two confirmation sweeps of one exchange (:meth:`ExchangeState.sweep`)."""

RECENT_SAMPLES = 2048
"""Most samples kept per endpoint for those percentiles."""


class LatencyWindow:
    """Ring buffer of (monotonic time, latency seconds), two flat float arrays (16 bytes per
    sample, no per-sample objects: 1,000 endpoints probed every second keep ~5 MB).

    Args:
        capacity: samples kept (the oldest are overwritten).
    """

    __slots__ = ("_count", "_next", "_times", "_values")

    def __init__(self, capacity: int = RECENT_SAMPLES) -> None:
        self._times = array("d", bytes(8 * capacity))
        self._values = array("d", bytes(8 * capacity))
        self._next = 0
        self._count = 0

    @property
    def capacity(self) -> int:
        """Samples kept at most."""
        return len(self._times)

    def __len__(self) -> int:
        return self._count

    def add(self, at: float, seconds: float) -> None:
        """Remember one latency observed at monotonic time ``at``."""
        index = self._next
        self._times[index] = at
        self._values[index] = seconds
        self._next = (index + 1) % len(self._times)
        if self._count < len(self._times):
            self._count += 1

    def since(self, cutoff: float) -> np.ndarray:
        """Latencies (seconds) observed at or after monotonic time ``cutoff``, unordered."""
        count = self._count
        times = np.frombuffer(self._times, dtype=float)[:count]
        values = np.frombuffer(self._values, dtype=float)[:count]
        return values[times >= cutoff].copy()

    def resized(self, capacity: int) -> LatencyWindow:
        """A window of ``capacity`` holding the most recent samples of this one."""
        window = LatencyWindow(capacity)
        count, size = self._count, len(self._times)
        for offset in range(max(count - capacity, 0), count):
            index = (self._next - count + offset) % size
            window.add(self._times[index], self._values[index])
        return window


def window_capacity(interval: float) -> int:
    """Samples needed to cover :data:`RECENT_WINDOW_SECONDS` at ``interval`` seconds, with
    margin, capped at :data:`RECENT_SAMPLES`."""
    return max(16, min(RECENT_SAMPLES, int(RECENT_WINDOW_SECONDS / max(interval, 1e-3)) + 16))


@dataclass
class EndpointState:
    """The recent history of one (exchange, endpoint).

    Attributes:
        last_result: result of the last finished probe, or None before the first.
        last_error: error text of the last failed probe ("" after a success).
        last_probe_at: Unix time the last probe finished (0 before the first).
        last_success_at: Unix time of the last successful probe (0 if none).
        consecutive_failures: failed probes in a row.
        transport_failures: transport-level failures (timeout, connect) in a row.
        maintenance: whether the last probe of this endpoint reported maintenance.
        maintenance_message: what the exchange said of it (capped by the profile), or "".
        samples: recent response latencies (:class:`LatencyWindow`).
        phases: ``{phase: seconds}`` of the last answered probe (resolve, connect, tls,
            processing, transfer), empty before the first.
    """

    last_result: str | None = None
    last_error: str = ""
    last_probe_at: float = 0.0
    last_success_at: float = 0.0
    consecutive_failures: int = 0
    transport_failures: int = 0
    maintenance: bool = False
    maintenance_message: str = ""
    samples: LatencyWindow = field(default_factory=LatencyWindow)
    phases: dict[str, float] = field(default_factory=dict)

    def add_latency(self, seconds: float) -> None:
        """Remember one response latency."""
        self.samples.add(time.monotonic(), seconds)

    def percentiles(self, window: float = RECENT_WINDOW_SECONDS) -> dict[str, float | None]:
        """Return ``{"p50", "p95", "p99", "count"}`` in seconds over the last ``window`` s."""
        cutoff = time.monotonic() - window
        values = self.samples.since(cutoff)
        if values.size == 0:
            return {"p50": None, "p95": None, "p99": None, "count": 0}
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "count": values.size}


class Wake(StrEnum):
    """Why the probe loops of an exchange were woken ahead of their schedule."""

    SWEEP = "sweep"
    """A healthy exchange failed at transport level: healthy endpoints confirm it now."""
    RECOVERY = "recovery"
    """A probe succeeded after the circuit had opened: failing endpoints re-probe now."""


WAKE_MIN_SECONDS: dict[Wake, float] = {Wake.SWEEP: SWEEP_MIN_SECONDS, Wake.RECOVERY: 30.0}
"""Least time between two wake-ups of one kind for one exchange; wake-ups asked for sooner
are coalesced into the last one (dropped)."""


class WakeUp:
    """Wakes an exchange's sleeping probe loops at once (a sweep or a recovery).

    A probe loop sleeps between probes on :meth:`sleep`, which costs one future and one timer
    and ends without cancelling anything: ``asyncio.timeout`` around ``Event.wait()`` (what it
    replaces) cancels the waiting task at every ordinary timeout and raises through it, which
    at 1,000 probes/s was a tenth of the exporter's CPU.
    """

    __slots__ = ("_sleepers",)

    def __init__(self) -> None:
        # Insertion-ordered (a dict, not a set): loops wake in the order they slept, as with
        # asyncio.Event, so which endpoint takes a half-open circuit's probe stays predictable.
        self._sleepers: dict[asyncio.Future[bool], None] = {}

    async def sleep(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless :meth:`set` is called first; True when woken by it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_at(loop.time() + seconds, _resolve, future)
        self._sleepers[future] = None
        try:
            return await future
        finally:
            timer.cancel()
            self._sleepers.pop(future, None)

    def set(self) -> None:
        """Wake every loop sleeping now (later sleeps are not affected)."""
        sleepers, self._sleepers = self._sleepers, {}
        for future in sleepers:
            if not future.done():
                future.set_result(True)


def _resolve(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


@dataclass
class ExchangeState:
    """Per-exchange state shared by its endpoints' probe loops.

    Attributes:
        gate: rate-limit/ban backoff.
        circuit: circuit breaker.
        admission: the gate every request of the exchange passes (schedule, budget, pauses).
        clock: the time source (monotonic seconds for wake-ups).
        clock_skew: last measured server-minus-local time in seconds, or None.
        wakeup: wakes the exchange's sleeping probe loops; :attr:`wake` says why, and
            :meth:`woken` which endpoints act on it.
        wake: the kind of the last wake-up, or None before the first.
        woken_at: monotonic time of the last wake-up of each kind.
        rate_limits: window → (used, limit or None) from the last response headers.
        endpoints: per-endpoint state by endpoint name.
        streams: the exchange's WebSocket stream record, or None without a stream.
    """

    gate: RateLimitGate
    circuit: CircuitBreaker
    admission: ProbeAdmission
    clock: Clock = SYSTEM_CLOCK
    wakeup: WakeUp = field(default_factory=WakeUp)
    wake: Wake | None = None
    woken_at: dict[Wake, float] = field(default_factory=dict)
    clock_skew: float | None = None
    rate_limits: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    endpoints: dict[str, EndpointState] = field(default_factory=dict)
    streams: StreamStatus | None = None

    @classmethod
    def for_config(cls, config: ExchangeConfig, clock: Clock = SYSTEM_CLOCK) -> ExchangeState:
        """A fresh state with the exchange's circuit settings, schedule and budget."""
        circuit = CircuitBreaker(
            config.circuit.failure_threshold,
            config.circuit.open_seconds,
            config.circuit.slow_factor,
            monotonic=clock.monotonic,
        )
        gate = RateLimitGate(now=clock.time)
        admission = ProbeAdmission(gate, clock.monotonic)
        state = cls(gate=gate, circuit=circuit, admission=admission, clock=clock)
        state.configure(config)
        return state

    def configure(self, config: ExchangeConfig) -> None:
        """Take the circuit settings, schedule and budget of ``config`` (on start and reload)."""
        self.circuit.failure_threshold = config.circuit.failure_threshold
        self.circuit.open_seconds = config.circuit.open_seconds
        self.circuit.slow_factor = config.circuit.slow_factor
        self.admission.configure(config.schedule(), config.budget_windows())

    def recover(self) -> bool:
        """A probe succeeded after the exchange's circuit had opened: wake the loops of failing
        endpoints (waiting out backoffs) to re-probe now, at most once per
        ``WAKE_MIN_SECONDS[Wake.RECOVERY]``.

        Returns:
            Whether the loops were woken.
        """
        return self._wake(Wake.RECOVERY)

    @property
    def recovered_at(self) -> float:
        """Monotonic time of the last recovery wake-up (loops whose probe was in flight then
        re-probe when it fails); -inf before the first."""
        return self.woken_at.get(Wake.RECOVERY, -math.inf)

    def sweep(self) -> bool:
        """A healthy exchange just failed at transport level (refused, reset, timed out): wake
        the loops of the healthy endpoints so they confirm it now instead of at their next
        slot — ExchangeApiDown needs every endpoint down, and waiting for the schedule cost up
        to one interval of the time to notify. At most once per
        ``WAKE_MIN_SECONDS[Wake.SWEEP]``, so a flapping endpoint cannot multiply the request
        rate.

        Returns:
            Whether the loops were woken.
        """
        return self._wake(Wake.SWEEP)

    def woken(self, endpoint: EndpointState) -> bool:
        """Whether the last wake-up asks ``endpoint``'s loop to probe now: a sweep the healthy
        endpoints, a recovery the failing ones."""
        if self.wake is Wake.SWEEP:
            return endpoint.consecutive_failures == 0
        return self.wake is Wake.RECOVERY and endpoint.consecutive_failures > 0

    def _wake(self, kind: Wake) -> bool:
        now = self.clock.monotonic()
        if now - self.woken_at.get(kind, -math.inf) < WAKE_MIN_SECONDS[kind]:
            return False
        self.woken_at[kind] = now
        self.wake = kind
        self.wakeup.set()
        return True

    def in_maintenance(self) -> bool:
        """Whether any endpoint's last probe, or the stream, reported maintenance."""
        if self.streams is not None and self.streams.maintenance:
            return True
        return any(e.maintenance for e in self.endpoints.values())

    def maintenance_message(self) -> str:
        """What the exchange said of its maintenance (the first endpoint that said anything),
        or "" when none is reported."""
        message = next(
            (e.maintenance_message for e in self.endpoints.values() if e.maintenance_message), ""
        )
        if not message and self.streams is not None and self.streams.maintenance:
            return self.streams.maintenance_message or "maintenance notice on the stream"
        return message
