"""Reconnect pacing of one stream: exponential backoff with full jitter.

After a connection ends, the next attempt waits ``uniform(0, min(cap, base × 2^(n-1)))`` seconds,
``n`` the connections in a row that ended without having been healthy for
:data:`HEALTHY_RESET_SECONDS` ("full jitter": spreads the reconnects of many exporters after an
exchange-wide drop); the first attempt after a healthy connection goes at once. The documented
connection-attempt limits are enforced separately (:mod:`exporter.streams.limits`).
"""

from __future__ import annotations

import random

BACKOFF_BASE_SECONDS = 1.0
"""Upper bound of the first backoff delay."""

BACKOFF_CAP_SECONDS = 60.0
"""Largest upper bound of a backoff delay."""

HEALTHY_RESET_SECONDS = 60.0
"""A connection subscribed and receiving for this long resets the backoff."""


class Backoff:
    """Consecutive-failure count and the jittered delay it implies.

    Args:
        base: upper bound of the first delay, seconds.
        cap: largest upper bound, seconds.
        rng: random source (tests pass a seeded one).
    """

    def __init__(
        self,
        base: float = BACKOFF_BASE_SECONDS,
        cap: float = BACKOFF_CAP_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def bound(self) -> float:
        """The upper bound of the next delay (0 when the last connection was healthy)."""
        if self.failures <= 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(self.failures - 1, 32))

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt: uniform in ``[0, bound()]``."""
        bound = self.bound()
        return self._rng.uniform(0.0, bound) if bound > 0 else 0.0

    def ended(self, healthy_seconds: float) -> float:
        """Record the end of a connection (or a failed attempt) that had been healthy for
        ``healthy_seconds`` (0 if never), and return the delay before the next attempt."""
        if healthy_seconds >= HEALTHY_RESET_SECONDS:
            self.failures = 0
        else:
            self.failures += 1
        return self.next_delay()
