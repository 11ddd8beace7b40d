"""Probing that never makes things worse: rate-limit backoff, transport backoff, circuit breaker.

- :class:`RateLimitGate` (per exchange): after a rate-limit or ban answer (HTTP 429, 418,
  Bybit's 403, or the exchange's own rate-limit code) no probe of that exchange is sent until
  ``Retry-After`` — or, without one, the profile's documented ban length — has passed. The limit
  is per IP and shared with the trading bots: probing on would deepen their ban.
- :func:`transport_backoff`: after consecutive transport failures (timeout, connect error) an
  endpoint's next probe waits exponentially longer, with jitter, capped.
- :class:`CircuitBreaker` (per exchange): closed → open after ``failure_threshold`` consecutive
  failed probes of the exchange; while open, probes run ``slow_factor`` times less often (every
  probe still updates ``exchange_api_up``, so it stays truthful); after ``open_seconds`` one
  trial probe runs (half-open): success closes the circuit, failure re-opens it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import IntEnum

TRANSPORT_BACKOFF_CAP_SECONDS = 60.0
"""Longest wait between probes of an endpoint that keeps failing at transport level."""


class CircuitState(IntEnum):
    """Values of ``exchange_circuit_state``: 0 closed (normal), 1 open (probing slowed after
    repeated failures), 2 half-open (one trial probe decides)."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class RateLimitGate:
    """Stops an exchange's probes until a rate-limit or ban wait has passed.

    Times are wall-clock Unix seconds (they are exported as timestamps). ``until`` is the end of
    the pause in force (0 before any); ``ban_until`` the end of the latest pause that began with
    an IP-ban answer (0 if none), so a later rate-limit pause is never reported as a ban.
    """

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self.until = 0.0
        self.ban_until = 0.0

    def block(self, seconds: float, ban: bool = False) -> float:
        """Block for ``seconds`` from now (never shortening a longer block); return the end.
        ``ban`` marks a pause that began with an IP-ban answer."""
        end = self._now() + max(seconds, 0.0)
        self.until = max(self.until, end)
        if ban:
            self.ban_until = max(self.ban_until, end)
        return self.until

    def remaining(self) -> float:
        """Seconds until probing may resume (0 when not blocked)."""
        return max(self.until - self._now(), 0.0)

    def banned(self) -> bool:
        """Whether a pause that began with an IP-ban answer is in force."""
        return self.ban_until > self._now()


def transport_backoff(interval: float, failures: int, rng: random.Random | None = None) -> float:
    """Return the delay before the next probe of an endpoint.

    Args:
        interval: the endpoint's normal interval (seconds).
        failures: consecutive transport failures so far (0 = healthy).
        rng: random source for jitter (tests pass a seeded one).

    Returns:
        ``interval`` when ``failures`` is 0; otherwise ``interval × 2^(failures-1)`` capped at
        ``max(interval, 60 s)``, times a jitter factor in [0.8, 1.2] — but never below
        ``interval``.
    """
    if failures <= 0:
        return interval
    cap = max(interval, TRANSPORT_BACKOFF_CAP_SECONDS)
    base = min(interval * 2.0 ** min(failures - 1, 16), cap)
    jitter = (rng or random).uniform(0.8, 1.2)
    return max(interval, base * jitter)


class CircuitBreaker:
    """Closed / open / half-open state of one exchange.

    Args:
        failure_threshold: consecutive failures that open the circuit.
        open_seconds: how long it stays open before a trial.
        slow_factor: interval multiplier while open or half-open.
        monotonic: monotonic clock (seconds), injectable for tests.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        slow_factor: float = 4.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.slow_factor = slow_factor
        self._monotonic = monotonic
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    def allow(self) -> bool:
        """Whether a probe may run now. While open, it may (slowed by :meth:`interval`); once
        ``open_seconds`` have passed the next caller gets the single half-open trial."""
        if self.state is CircuitState.OPEN:
            if self._monotonic() - self._opened_at >= self.open_seconds:
                self.state = CircuitState.HALF_OPEN
                self._trial_in_flight = True
                return True
            return True
        if self.state is CircuitState.HALF_OPEN:
            if self._trial_in_flight:
                return False
            self._trial_in_flight = True
        return True

    def interval(self, interval: float) -> float:
        """The probe interval to use in the current state."""
        return interval if self.state is CircuitState.CLOSED else interval * self.slow_factor

    def record(self, success: bool) -> CircuitState:
        """Record a probe outcome; return the new state."""
        if success:
            self.failures = 0
            self.state = CircuitState.CLOSED
            self._trial_in_flight = False
            return self.state
        self.failures += 1
        if self.state is CircuitState.HALF_OPEN or (
            self.state is CircuitState.CLOSED and self.failures >= self.failure_threshold
        ):
            self.state = CircuitState.OPEN
            self._opened_at = self._monotonic()
            self._trial_in_flight = False
        return self.state
