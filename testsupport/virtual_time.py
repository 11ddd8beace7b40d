"""An asyncio event loop on a fake clock: sleeps, timeouts and ``call_later`` happen at once.

Whenever every task waits for a timer (no I/O is ready), the clock jumps to the next timer, so a
scheduler can run for hours of loop time in a fraction of a second and every timestamp it takes
is exact. The loop still does real I/O; tests that use it should not (their answers come from
fakes), or the fake clock would jump past a socket's real latency.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualClock:
    """The fake time: ``monotonic()`` is the loop's time (starting at 0), ``time()`` is
    ``epoch`` + that (a :class:`exporter.clock.Clock`)."""

    def __init__(self, epoch: float = 1_800_000_000.0) -> None:
        self.now = 0.0
        self.epoch = epoch

    def monotonic(self) -> float:
        """Seconds since the loop started."""
        return self.now

    def time(self) -> float:
        """Unix time in seconds."""
        return self.epoch + self.now


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:
            raise RuntimeError("virtual-time loop: every task waits and no timer is set")
        self._clock.now += timeout
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is :class:`VirtualClock` time."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_JumpingSelector(clock))
        self.clock = clock

    def time(self) -> float:
        """The fake monotonic time."""
        return self.clock.now


def run_virtual(main: Coroutine[Any, Any, T], clock: VirtualClock) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop` of ``clock``."""
    loop = VirtualTimeLoop(clock)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()
