"""Rate limits a stream obeys: documented connection attempts per IP, and client messages per
connection.

- :class:`ConnectLimiter` keeps a sliding log of attempts per documented limit
  (:class:`exporter.streams.dialect.ConnectLimit`) and admits an attempt only while fewer than
  ``max(1, floor(weight_budget × attempts))`` were made in the last ``window_seconds``: the
  exporter's share of a per-IP limit it shares with the trading bots, and never above the limit
  itself.
- :class:`MessagePacer` spaces the frames we send on one connection so that no second holds
  more than the exchange's documented inbound limit allows (Binance: 5 per second, counting
  pings and pongs [BN-WS §WebSocket Limits]; we keep one per second free for the library's
  pongs to server pings).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence

from exporter.streams.dialect import ConnectLimit

_EPSILON = 1e-9


class ConnectLimiter:
    """Connection attempts of one exchange, held under its documented limits.

    Args:
        limits: the dialect's documented connection-attempt limits.
        weight_budget: the exporter's share (0–1] of each limit.
        monotonic: clock, seconds (injectable for tests).
    """

    def __init__(
        self,
        limits: Sequence[ConnectLimit],
        weight_budget: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._logs: list[tuple[ConnectLimit, int, deque[float]]] = []
        self.configure(limits, weight_budget)

    def configure(self, limits: Sequence[ConnectLimit], weight_budget: float) -> None:
        """Take new limits or budget; attempts already made keep counting."""
        # Every log records every attempt; the longest window's log has forgotten the least.
        attempts = max((list(log) for _, _, log in self._logs), key=len, default=[])
        self._logs = []
        for limit in limits:
            allowed = max(1, math.floor(weight_budget * limit.attempts + _EPSILON))
            allowed = min(allowed, limit.attempts)
            self._logs.append((limit, allowed, deque(attempts)))

    def allowed(self) -> list[tuple[ConnectLimit, int]]:
        """Each limit with the attempts per window the exporter may make."""
        return [(limit, allowed) for limit, allowed, _ in self._logs]

    def wait(self) -> float:
        """Seconds until an attempt is allowed (0: now)."""
        now = self._monotonic()
        wait = 0.0
        for limit, allowed, log in self._logs:
            cutoff = now - limit.window_seconds
            while log and log[0] <= cutoff:
                log.popleft()
            if len(log) >= allowed:
                wait = max(wait, log[len(log) - allowed] + limit.window_seconds - now)
        return max(wait, 0.0)

    def record(self) -> None:
        """Count one attempt made now."""
        now = self._monotonic()
        for _, _, log in self._logs:
            log.append(now)

    def attempts_in_window(self) -> list[int]:
        """Attempts currently counted in each limit's window (for tests and /status)."""
        now = self._monotonic()
        return [
            sum(1 for at in log if at > now - limit.window_seconds) for limit, _, log in self._logs
        ]


class MessagePacer:
    """Spaces our frames on one connection to at most ``per_second`` (None: unpaced).

    Args:
        per_second: the documented inbound limit per connection, or None.
        reserve: frames per second kept free (for pongs the library sends on its own).
        monotonic: clock, seconds.
    """

    def __init__(
        self,
        per_second: float | None,
        reserve: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        if per_second is None:
            self.spacing = 0.0
        else:
            usable = max(per_second - reserve, per_second / 2.0)
            self.spacing = 1.0 / usable
        self._next = -math.inf

    def delay(self) -> float:
        """Reserve the next slot; return seconds to wait before sending in it."""
        if self.spacing <= 0:
            return 0.0
        now = self._monotonic()
        slot = max(now, self._next)
        self._next = slot + self.spacing
        return slot - now

    async def pace(self) -> None:
        """Wait for the next slot (call right before each send)."""
        delay = self.delay()
        if delay > 0:
            await asyncio.sleep(delay)
