"""Clock and timestamp formatting helpers shared by all simulated venues.

All functions take a wall-clock instant ``t`` in **seconds** since the Unix epoch (float) and
return the textual forms the exchanges use. Nothing here reads the clock except
:func:`http_date_now`, which caches the HTTP ``Date`` header value per second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import formatdate

__all__ = [
    "http_date_now",
    "iso_ms",
    "iso_s",
    "iso_us",
    "kraken_rfc1123",
]

_date_cache: tuple[int, bytes] = (-1, b"")


def http_date_now() -> bytes:
    """Return the current time as an RFC 7231 ``Date`` header value (bytes, cached per second).

    Example: ``b"Thu, 06 Jul 2023 18:50:48 GMT"``. The Date header always carries the *real*
    time, even under a ``clock_skew`` fault (only body/server-time fields are skewed).
    """
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def iso_us(t: float) -> str:
    """Format ``t`` (epoch seconds) as ISO-8601 UTC with microseconds, e.g.
    ``"2020-03-20T00:22:57.833897Z"`` (Coinbase Exchange style [COINCISE-CB response_formats.md]).
    """
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_ms(t: float) -> str:
    """Format ``t`` (epoch seconds) as ISO-8601 UTC with milliseconds, e.g.
    ``"2015-01-07T23:47:25.201Z"`` (Coinbase ``GET /time`` ``iso`` field [CB-TIME-EX]).
    """
    ms = round(t * 1000)
    secs, rem = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rem:03d}Z"


def iso_s(t: float) -> str:
    """Format ``t`` (epoch seconds) as ISO-8601 UTC with second precision, e.g.
    ``"2023-07-06T18:52:00Z"`` (Kraken ``SystemStatus.timestamp`` [KR-STATUS]).
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def kraken_rfc1123(t: float) -> str:
    """Format ``t`` (epoch seconds) the way Kraken's ``/0/public/Time`` ``rfc1123`` field does,
    with a two-digit year: ``"Thu, 06 Jul 23 18:50:48 +0000"`` [KR-TIME].
    """
    return time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(int(t)))
