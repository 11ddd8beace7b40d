"""What one exchange's stream remembers for ``/status``: connection, counts per channel, lag.

The connection updates these plain fields on its hot path next to the metrics (which carry the
same facts for Prometheus); :meth:`StreamStatus.document` renders them as JSON.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from exporter.streams.events import Channel, ReconnectReason

LAG_SAMPLES = 1024
"""Most recent lag samples kept per channel for the ``/status`` percentiles."""


class LagRing:
    """The last :data:`LAG_SAMPLES` lag values of a channel (seconds), a flat float array."""

    __slots__ = ("_count", "_next", "_values")

    def __init__(self, capacity: int = LAG_SAMPLES) -> None:
        self._values = array("d", bytes(8 * capacity))
        self._next = 0
        self._count = 0

    def add(self, seconds: float) -> None:
        """Remember one lag."""
        index = self._next
        self._values[index] = seconds
        index += 1
        self._next = 0 if index == len(self._values) else index
        if self._count < len(self._values):
            self._count += 1

    def percentiles(self) -> dict[str, float | int | None]:
        """``{"p50", "p99", "count"}`` in seconds over the kept samples (None when empty)."""
        if self._count == 0:
            return {"p50": None, "p99": None, "count": 0}
        values = np.frombuffer(self._values, dtype=float)[: self._count]
        p50, p99 = np.percentile(values, [50, 99])
        return {"p50": float(p50), "p99": float(p99), "count": self._count}


class ChannelStatus:
    """One subscribed channel of a stream.

    Attributes:
        stale_after: seconds of silence before the channel counts as stale.
        up: whether the channel is up (connected, fresh).
        messages: messages received (all connections).
        last_message_at: Unix time of the last message, 0 before the first.
        lag: recent lag samples.
        gaps / checksum_mismatches / subscription_errors: counts (all connections).
    """

    __slots__ = (
        "checksum_mismatches",
        "gaps",
        "lag",
        "last_message_at",
        "messages",
        "stale_after",
        "subscription_errors",
        "up",
    )

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.up = False
        self.messages = 0
        self.last_message_at = 0.0
        self.lag = LagRing()
        self.gaps = 0
        self.checksum_mismatches = 0
        self.subscription_errors = 0

    def document(self) -> dict[str, Any]:
        """This channel's part of ``/status``."""
        return {
            "up": self.up,
            "messages": self.messages,
            "last_message_at": self.last_message_at or None,
            "stale_after_seconds": self.stale_after,
            "lag_seconds": self.lag.percentiles(),
            "sequence_gaps": self.gaps,
            "checksum_mismatches": self.checksum_mismatches,
            "subscription_errors": self.subscription_errors,
        }


class StreamStatus:
    """One exchange's stream as ``/status`` shows it (kept across reconnects and reloads).

    Attributes:
        url: the configured URL without secrets.
        connected: open and at least one subscription acknowledged.
        since: Unix time the current connection was subscribed, or None.
        reconnects: count per :class:`ReconnectReason` value.
        ping_rtt: last keep-alive round trip in seconds, or None.
        channels: per subscribed channel.
        book_resyncs / book_crossed: counts.
        last_error: the last error (connect failure, close, refusal, malformed message), or "".
        last_error_at: Unix time of it, or 0.
        maintenance: the stream reported maintenance (a ``Notice(MAINTENANCE)``).
        maintenance_message: what it said.
        waiting: why no connection is open right now ("" when connected or connecting).
    """

    def __init__(self, url: str, stale_after: dict[Channel, float]) -> None:
        self.url = url
        self.connected = False
        self.since: float | None = None
        self.reconnects: dict[str, int] = {reason.value: 0 for reason in ReconnectReason}
        self.ping_rtt: float | None = None
        self.channels: dict[Channel, ChannelStatus] = {}
        self.book_resyncs = 0
        self.book_crossed = 0
        self.last_error = ""
        self.last_error_at = 0.0
        self.maintenance = False
        self.maintenance_message = ""
        self.waiting = ""
        self.configure(url, stale_after)

    def configure(self, url: str, stale_after: dict[Channel, float]) -> None:
        """Take a (re)loaded plan's URL and channels; kept channels keep their counts."""
        self.url = url
        self.channels = {
            channel: self.channels.get(channel) or ChannelStatus(seconds)
            for channel, seconds in stale_after.items()
        }
        for channel, seconds in stale_after.items():
            self.channels[channel].stale_after = seconds

    def error(self, text: str, at: float) -> None:
        """Remember the last error (capped at 300 characters)."""
        self.last_error = text[:300]
        self.last_error_at = at

    def document(self) -> dict[str, Any]:
        """The ``streams`` entry of the exchange in ``/status``."""
        return {
            "url": self.url,
            "connected": self.connected,
            "since": self.since,
            "waiting": self.waiting,
            "reconnects": dict(self.reconnects),
            "ping_rtt_seconds": self.ping_rtt,
            "channels": {ch.value: st.document() for ch, st in self.channels.items()},
            "sequence_gaps": sum(st.gaps for st in self.channels.values()),
            "checksum_mismatches": sum(st.checksum_mismatches for st in self.channels.values()),
            "book_resyncs": self.book_resyncs,
            "book_crossed": self.book_crossed,
            "subscription_errors": sum(st.subscription_errors for st in self.channels.values()),
            "maintenance": self.maintenance,
            "maintenance_message": self.maintenance_message,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at or None,
        }
