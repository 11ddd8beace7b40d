"""The ``Retry-After`` HTTP header (RFC 9110 §10.2.3), one parser for every component."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(
    value: str | None, *, http_date: bool = True, now: datetime | None = None
) -> float | None:
    """Parse a ``Retry-After`` value into seconds to wait.

    RFC 9110 §10.2.3 allows ``delay-seconds`` or an ``HTTP-date``. A number is taken as is
    (fractions accepted), a date as the time left until it (``now`` defaults to the current
    time). Negative delays and dates in the past mean "now" and give ``0.0``.

    Args:
        value: the header value, or ``None`` when the header is absent.
        http_date: also accept the ``HTTP-date`` form (``False``: delay-seconds only).
        now: the current time for the ``HTTP-date`` form (tests).

    Returns:
        Seconds (≥ 0), or ``None`` for a missing, unreadable or non-finite value.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        if not http_date:
            return None
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
