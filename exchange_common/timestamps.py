"""RFC 3339 / ISO-8601 UTC timestamps with millisecond precision and a ``Z`` suffix."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso_utc(ts: float) -> str:
    """Unix seconds as ISO-8601 UTC with millisecond precision and a ``Z`` suffix
    (``2026-11-21T07:22:00.568Z``)."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def utc_now_iso() -> str:
    """The current time as :func:`iso_utc` formats it."""
    return iso_utc(time.time())
