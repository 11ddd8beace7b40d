"""Per-notifier pacing: sends (and updates) to one notifier instance keep its minimum spacing.

Platforms document a pace per destination (Slack about one message per second per channel,
Telegram one per second per chat and 20 per minute per group, Discord per-route buckets): each
notifier declares it as ``min_send_interval``, and the worker's configuration may override it
per instance name or channel type. Calls to one notifier then run one at a time, each at least
that long after the previous one ended; notifiers without spacing run concurrently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from receiver.notifiers.base import Notifier

T = TypeVar("T")


class Pacer:
    """Runs calls to notifiers, spaced per notifier instance.

    Args:
        min_send_interval: ``{notifier name or channel: seconds}`` overriding the notifier's
            own ``min_send_interval``.
        sleep: sleep function (tests may replace it).
    """

    def __init__(
        self,
        min_send_interval: dict[str, float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._min_interval = dict(min_send_interval or {})
        self._sleep = sleep
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}

    def interval(self, name: str, notifier: Notifier) -> float:
        """Seconds to leave between two calls to the notifier instance ``name``."""
        for key in (name, notifier.channel):
            if key in self._min_interval:
                return self._min_interval[key]
        return float(notifier.min_send_interval)

    async def run(self, name: str, notifier: Notifier, call: Callable[[], Awaitable[T]]) -> T:
        """``await call()`` (a send or an update to ``notifier``), paced per instance."""
        interval = self.interval(name, notifier)
        if interval <= 0:
            return await call()
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            last = self._last.get(name)
            if last is not None:
                wait = last + interval - time.monotonic()
                if wait > 0:
                    await self._sleep(wait)
            try:
                return await call()
            finally:
                self._last[name] = time.monotonic()
