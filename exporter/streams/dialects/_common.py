"""Helpers the five dialects share: market spelling, time fields, numbers, JSON decoding, sample
capping.

Nothing here is exchange-specific; every exchange fact lives in its own dialect module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from exporter.streams.dialect import StreamDialect
from exporter.streams.events import Malformed, Subscription

SAMPLE_CHARS = 200
"""Characters of an unexpected message kept in :class:`Malformed` samples and error texts."""

_MARKET = re.compile(r"^([A-Z0-9]{1,15})/([A-Z0-9]{1,15})$")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_SECONDS: dict[str, float] = {}
_DAY_CACHE_MAX = 64
_INFINITY = float("inf")


def split_market(market: str) -> tuple[str, str]:
    """``"BTC/USDT"`` → ``("BTC", "USDT")``: a unified market as ccxt spells it.

    Raises:
        ValueError: ``market`` is not ``BASE/QUOTE`` in upper-case letters and digits.
    """
    match = _MARKET.match(market)
    if match is None:
        raise ValueError(f"market {market!r} is not a unified BASE/QUOTE name such as 'BTC/USDT'")
    return match.group(1), match.group(2)


def cap(text: str, limit: int = SAMPLE_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with ``…`` when cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def malformed(reason: str, text: str) -> Malformed:
    """A :class:`Malformed` event with a capped sample of the frame."""
    return Malformed(reason=reason, sample=cap(text))


def loads(text: str) -> Any:
    """``json.loads`` (stdlib: fastest available here). Raises ValueError on bad JSON."""
    return json.loads(text)


def loads_decimal(text: str) -> Any:
    """JSON with every non-integer number kept as its exact source string (``0.00100000`` stays
    ``"0.00100000"``), for feeds whose checksums use full-precision numbers (Kraken v2).
    Raises ValueError on bad JSON."""
    return json.loads(text, parse_float=str)


def ms_time(value: object) -> float | None:
    """Epoch milliseconds (int, float or decimal string) → Unix seconds; None when absent or
    not a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value / 1000.0
    if isinstance(value, str):
        try:
            return int(value) / 1000.0
        except ValueError:
            try:
                return float(value) / 1000.0
            except ValueError:
                return None
    return None


def number(value: object) -> float | None:
    """A price or size as the exchanges write it (decimal string, JSON int or float) → float;
    None when absent, not a number, not finite, or not above 0 (an empty book side, ``""``,
    ``"0"``). Cheap: one type check and one ``float()``."""
    if type(value) is str:
        try:
            result = float(value)
        except ValueError:
            return None
    elif type(value) is float or type(value) is int:
        result = float(value)
    else:
        return None
    return result if 0.0 < result < _INFINITY else None  # NaN fails both comparisons


def trade_totals(
    trades: Iterable[object], price_key: str, size_key: str
) -> tuple[float | None, float]:
    """``(last, volume)`` of a batch of trade objects: the price of the last trade (in the
    message's order) with a valid price, and the sum of the valid sizes (:func:`number`); a
    trade whose size is missing or malformed adds nothing, a non-object is skipped."""
    last: float | None = None
    volume = 0.0
    for trade in trades:
        if type(trade) is not dict:
            continue
        price = number(trade.get(price_key))
        if price is not None:
            last = price
        size = number(trade.get(size_key))
        if size is not None:
            volume += size
    return last, volume


def _day_seconds(day: str) -> float:
    seconds = _DAY_SECONDS.get(day)
    if seconds is None:
        seconds = (date.fromisoformat(day).toordinal() - _EPOCH_ORDINAL) * 86400.0
        if len(_DAY_SECONDS) >= _DAY_CACHE_MAX:
            _DAY_SECONDS.clear()
        _DAY_SECONDS[day] = seconds
    return seconds


def rfc3339_time(value: object) -> float | None:
    """An RFC3339 UTC time with any number of fraction digits (``2023-10-06T17:35:55.440295Z``,
    nanoseconds, ``+00:00`` or another offset) → Unix seconds; None when absent or not
    RFC3339. Fast path: the date part is cached, the rest is sliced."""
    if not isinstance(value, str) or len(value) < 20:
        return None
    try:
        if value[10] not in "Tt " or value[13] != ":" or value[16] != ":":
            return None
        seconds = (
            _day_seconds(value[:10])
            + int(value[11:13]) * 3600
            + int(value[14:16]) * 60
            + int(value[17:19])
        )
        end = 19
        if value[19] == ".":
            end = 20
            while end < len(value) and value[end].isdigit():
                end += 1
            seconds += float(value[19:end])
        zone = value[end:]
        if zone in ("Z", "z", "+00:00", "-00:00"):
            return seconds
        if len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
            offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
            return seconds - offset if zone[0] == "+" else seconds + offset
        return None
    except (ValueError, IndexError):
        return None


class BaseDialect(StreamDialect):
    """Per-connection state every dialect keeps: the exchange spelling → unified market map
    (filled by :meth:`remember` when a dialect spells a market for a URL, a subscription or a
    book) and a request-id counter."""

    def __init__(self) -> None:
        self._spellings: dict[str, str] = {}
        self._request_id = 0

    def remember(self, market: str) -> str:
        """The exchange spelling of ``market`` (:meth:`symbol`), remembered for parsing.

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        symbol = self.symbol(market)
        self._spellings[symbol] = market
        return symbol

    def market_of(self, symbol: object) -> str | None:
        """The unified market an exchange symbol stands for, None when never remembered."""
        return self._spellings.get(symbol) if isinstance(symbol, str) else None

    def next_request_id(self) -> int:
        """A fresh request id for this connection (1, 2, …)."""
        self._request_id += 1
        return self._request_id


PENDING_MAX = 256
"""Unanswered requests remembered per connection (a bound: answers that never come must not
grow memory over a long connection's resyncs)."""


class PendingRequests:
    """Subscribe requests sent and not yet answered, by request id (insertion ordered), so an
    acknowledgement or an error that names only the request maps back to its subscriptions."""

    __slots__ = ("_requests",)

    def __init__(self) -> None:
        self._requests: dict[str, list[Subscription]] = {}

    def add(self, request_id: object, subscriptions: list[Subscription]) -> None:
        """Remember a request and the subscriptions it asks for (the oldest is forgotten
        beyond :data:`PENDING_MAX` unanswered requests)."""
        requests = self._requests
        requests[str(request_id)] = list(subscriptions)
        if len(requests) > PENDING_MAX:
            del requests[next(iter(requests))]

    def pop(self, request_id: object, oldest: bool = False) -> list[Subscription] | None:
        """The subscriptions of request ``request_id`` (forgotten now); with ``oldest`` and an
        unknown or absent id, the oldest pending request's (answers arrive in order); None
        when nothing matches."""
        if request_id is not None and not isinstance(request_id, bool):
            found = self._requests.pop(str(request_id), None)
            if found is not None or not oldest:
                return found
        if oldest and self._requests:
            key = next(iter(self._requests))
            return self._requests.pop(key)
        return None

    def get(self, request_id: object) -> list[Subscription] | None:
        """The subscriptions of request ``request_id`` without forgetting it."""
        if request_id is None or isinstance(request_id, bool):
            return None
        return self._requests.get(str(request_id))

    def pop_containing(self, subscription: Subscription) -> list[Subscription] | None:
        """Forget the (oldest) request that asks for ``subscription``; its subscriptions."""
        for key, subs in self._requests.items():
            if subscription in subs:
                return self._requests.pop(key)
        return None

    def discard(self, subscription: Subscription) -> None:
        """Forget one subscription wherever it is pending (answered on its own)."""
        for key, subs in list(self._requests.items()):
            if subscription in subs:
                subs.remove(subscription)
                if not subs:
                    del self._requests[key]


def join_url(url: str, path: str, *already: str) -> str:
    """``url`` (the configured host base) with ``path`` appended, unless the URL's path already
    ends with ``path`` or one of ``already`` (a user who configured the full URL)."""
    base = url.split("?", 1)[0].rstrip("/")
    for suffix in (path, *already):
        if base.endswith(suffix):
            return url
    return url.rstrip("/") + path


def dumps(value: object) -> str:
    """Compact JSON (no spaces), as the exchanges' documented request examples are written."""
    return json.dumps(value, separators=(",", ":"))
