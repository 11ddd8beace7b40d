"""The probe path's time sources, injectable so the scheduler can run on a fake clock in tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Where the probe path reads the time.

    ``monotonic()`` (seconds, any origin) must advance with the event loop's ``loop.time()``;
    ``time()`` is Unix time in seconds (exported timestamps, rate-limit pauses).
    """

    def monotonic(self) -> float:
        """Monotonic seconds."""
        ...

    def time(self) -> float:
        """Unix time in seconds."""
        ...


@dataclass(frozen=True, slots=True)
class SystemClock:
    """The real clocks: :func:`time.monotonic` (asyncio's own) and :func:`time.time`."""

    def monotonic(self) -> float:
        """Monotonic seconds (``time.monotonic``)."""
        return time.monotonic()

    def time(self) -> float:
        """Unix time in seconds (``time.time``)."""
        return time.time()


SYSTEM_CLOCK = SystemClock()
"""The clock the exporter runs on outside tests."""
