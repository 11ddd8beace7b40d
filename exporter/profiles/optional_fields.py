"""Tolerant readers of optional body fields: ticker prices and announced maintenance windows.

A probe fails only on the fields that prove the endpoint answered as documented (a ticker's last
price, a status body's shape). The market data a ticker also carries (best bid and ask, 24 h
volume) and the maintenance windows a status body announces are extras: a missing or malformed
value becomes None, or the entry is skipped, and never turns a good answer into
``bad_response``. Everything here is pure and cheap (one call per probe, not per message).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from exporter.profiles.base import TickerQuote

Window = tuple[float, float]
"""A maintenance window ``(start, end)`` in Unix seconds."""

_MS_THRESHOLD = 1e11
"""Epoch numbers above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973)."""


def optional_number(value: Any) -> float | None:
    """A JSON number or numeric string as a finite, non-negative float; None for anything else
    (missing, ``""``, ``"NaN"``, negative, booleans, lists)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def item(values: Any, index: int) -> Any:
    """``values[index]`` when ``values`` is a list or tuple long enough, else None (Kraken's
    ticker keeps prices in arrays: ``"b": ["3537.4", "16", "16.000"]``)."""
    if isinstance(values, Sequence) and not isinstance(values, str) and len(values) > index:
        return values[index]
    return None


def quote_of(bid: Any, ask: Any, last: Any, volume_24h: Any) -> TickerQuote:
    """A :class:`TickerQuote` from raw body values, each read with :func:`optional_number`."""
    return TickerQuote(
        optional_number(bid),
        optional_number(ask),
        optional_number(last),
        optional_number(volume_24h),
    )


def epoch_ms(value: Any) -> float | None:
    """Unix seconds from epoch milliseconds (JSON number or numeric string, as OKX and Bybit
    send ``begin``/``end``); None when unreadable or empty."""
    number = optional_number(value)
    return None if number is None or number == 0 else number / 1000.0


def epoch_any(value: Any) -> float | None:
    """Unix seconds from a timestamp of unknown form: an ISO 8601 / RFC 3339 string (``Z`` or an
    offset; no offset is taken as UTC), or an epoch number in seconds or milliseconds (above
    1e11 it is milliseconds). None when unreadable."""
    if isinstance(value, str) and not _looks_numeric(value):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    number = optional_number(value)
    if number is None or number == 0:
        return None
    return number / 1000.0 if number > _MS_THRESHOLD else number


def _looks_numeric(text: str) -> bool:
    return text.strip().replace(".", "", 1).isdigit()


def first_of(entry: Any, keys: Iterable[str]) -> Any:
    """The value of the first of ``keys`` that ``entry`` (a dict) has and is not empty/None;
    None when ``entry`` is not a dict or has none of them."""
    if not isinstance(entry, dict):
        return None
    for key in keys:
        value = entry.get(key)
        if value not in (None, ""):
            return value
    return None


def next_window(windows: Iterable[Window], now: float | None = None) -> Window | None:
    """The announced window that is not over yet and starts first (an ongoing one before a later
    one); ties go to the earlier end. Windows that end before they start are ignored.

    Args:
        windows: ``(start, end)`` pairs in Unix seconds.
        now: Unix seconds; the wall clock (``time.time()``) when None.

    Returns:
        The window, or None when every window is over (or there is none).
    """
    current = time.time() if now is None else now
    open_windows = [w for w in windows if w[1] > current and w[1] >= w[0]]
    return min(open_windows) if open_windows else None


def announced_window(
    items: Any, states: Collection[str], now: float | None = None
) -> Window | None:
    """The next window not yet over among status entries shaped like OKX's and Bybit's: dicts
    with ``state`` and ``begin``/``end`` in epoch ms (``{"state": "scheduled", "begin":
    "1672823400000", "end": "1672823520000", ...}``) [OKX-STATUS, BY-STATUS].

    Args:
        items: the status body's list of entries (anything else gives None).
        states: the ``state`` values of maintenance that is not over.
        now: Unix seconds; the wall clock when None.

    Returns:
        ``(start, end)`` in Unix seconds (:func:`next_window`); entries in other states or
        without readable times (e.g. an empty ``end``) are skipped; None when none is left.
    """
    if not isinstance(items, list):
        return None
    windows: list[Window] = []
    for entry in items:
        if not isinstance(entry, dict) or entry.get("state") not in states:
            continue
        start, end = epoch_ms(entry.get("begin")), epoch_ms(entry.get("end"))
        if start is not None and end is not None:
            windows.append((start, end))
    return next_window(windows, now)
