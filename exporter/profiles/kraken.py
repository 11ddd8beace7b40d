"""Kraken spot public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §5, citing docs.kraken.com [KR-TIME],
[KR-STATUS], [KR-REST-INTRO], [KR-ERRORS], [KR-SUPPORT-RL], [KR-SPEC] and ccxt [CCXT-KR]):

- Envelope ``{"error": [], "result": {...}}``; HTTP status is "generally not used" — errors are
  strings ``<E|W><category>:<message>`` in ``error``, possibly with detail after another colon
  (``EGeneral:Invalid arguments:ordertype``); a non-200 means the request did not reach
  Kraken's servers (``http_error``) [KR-REST-INTRO, KR-SUPPORT-ERR].
- ``EAPI:Rate limit exceeded`` / ``EGeneral:Too many requests`` rate limit;
  ``EGeneral:Temporary lockout`` a temporary ban ("typically a few minutes");
  ``EService:Unavailable``/``Busy``; ``cancel_only``/``post_only`` market modes [KR-ERRORS,
  CCXT-KR].
- Limit: public calls are limited by IP; "1 per second (or less)" stays within limits
  [KR-SUPPORT-RL].
- Server time ``/0/public/Time`` → ``result.unixtime`` (whole seconds) [KR-TIME]; order-book
  levels carry a timestamp in seconds [KR-SPEC depth.yaml].
- Status ``/0/public/SystemStatus`` → ``result.status`` ∈ online, maintenance, cancel_only,
  post_only (anything but ``online`` is reported as maintenance) [KR-STATUS, KR-WS-STATUS].
  ``result.upcoming_maintenance`` (additive, may be absent) lists scheduled events within
  72 h [KR-STATUS]: the announced maintenance (``announces_maintenance``); its item shape is
  UNVERIFIED (see :func:`upcoming_window`).
- Ticker ``/0/public/Ticker`` → per pair ``b[0]`` bid, ``a[0]`` ask, ``c[0]`` last trade and
  ``v[1]`` volume over the last 24 h (base units) [KR-TICKER, KR-SPEC].
- No dedicated ping endpoint (UNVERIFIED absence).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from exporter.profiles.base import (
    PUBLIC_ENDPOINTS,
    EndpointSpec,
    ErrorKind,
    LimitRule,
    Profile,
    Result,
    Verdict,
    as_float,
    dig,
    split_market,
    status_verdict,
)
from exporter.profiles.optional_fields import (
    Window,
    epoch_any,
    first_of,
    item,
    next_window,
    quote_of,
)

START_KEYS: tuple[str, ...] = (
    "expected_start_utc",
    "start",
    "start_time",
    "starts_at",
    "scheduled_for",
    "begin",
    "start_timestamp",
)
"""Keys read, in order, for an ``upcoming_maintenance`` item's start (shape UNVERIFIED)."""

END_KEYS: tuple[str, ...] = (
    "expected_end_utc",
    "end",
    "end_time",
    "ends_at",
    "scheduled_until",
    "end_timestamp",
)
"""Keys read, in order, for an ``upcoming_maintenance`` item's end (shape UNVERIFIED)."""

ERROR_CODES: dict[str, ErrorKind] = {
    # Error strings of [KR-ERRORS] (docs.kraken.com/exchange/guides/general/errors),
    # [KR-SUPPORT-ERR] and ccxt's exception map [CCXT-KR].
    "EAPI:Rate limit exceeded": ErrorKind.RATE_LIMIT,  # [CCXT-KR, KR-ERRORS]
    "EGeneral:Too many requests": ErrorKind.RATE_LIMIT,  # [CCXT-KR, KR-ERRORS]
    "EOrder:Rate limit exceeded": ErrorKind.RATE_LIMIT,  # trading [CCXT-KR, KR-ERRORS]
    "EGeneral:Temporary lockout": ErrorKind.BAN,  # "typically a few minutes" [KR-ERRORS]
    "EAPI:Invalid nonce": ErrorKind.TIMESTAMP,  # the nonce is Kraken's timestamp analogue
    "EAPI:Invalid key": ErrorKind.AUTH,  # [KR-ERRORS]
    "EAPI:Invalid signature": ErrorKind.AUTH,  # [KR-ERRORS]
    "EGeneral:Permission denied": ErrorKind.AUTH,  # [CCXT-KR]
    "EService:Unavailable": ErrorKind.BUSY,  # ccxt ExchangeNotAvailable [CCXT-KR]
    "EService:Busy": ErrorKind.BUSY,  # [CCXT-KR]
    "EService:Market in cancel_only mode": ErrorKind.MAINTENANCE,  # [CCXT-KR]
    "EService:Market in post_only mode": ErrorKind.MAINTENANCE,  # [CCXT-KR]
    "EQuery:Unknown asset pair": ErrorKind.REQUEST,  # [KR-SUPPORT-ERR]
    "EGeneral:Invalid arguments": ErrorKind.REQUEST,  # [KR-REST-INTRO, KR-SUPPORT-ERR]
    "EGeneral:Unknown method": ErrorKind.REQUEST,
}


def documented_error(entry: str) -> str:
    """The documented ``<E|W><category>:<message>`` part of an error string, without the extra
    detail Kraken may append after another colon (``EGeneral:Invalid arguments:ordertype`` →
    ``EGeneral:Invalid arguments`` [KR-REST-INTRO, KR-SUPPORT-ERR])."""
    category, sep, rest = entry.partition(":")
    if not sep:
        return entry
    message, _, _ = rest.partition(":")
    return f"{category}:{message}"


_KRAKEN_ASSETS: dict[str, str] = {"BTC": "XBT"}
"""Unified asset codes Kraken's REST pairs spell differently (``XBTUSD``) [KR-TICKER]."""


class KrakenProfile(Profile):
    """Kraken spot (``https://api.kraken.com``); pair style ``XBTUSD``."""

    name: ClassVar[str] = "kraken"
    default_symbol: ClassVar[str] = "XBTUSD"
    default_market: ClassVar[str | None] = "BTC/USD"
    default_endpoints: ClassVar[tuple[str, ...]] = ("time", "status", "ticker", "orderbook")
    error_codes: ClassVar[Mapping[str, ErrorKind]] = ERROR_CODES
    announces_maintenance: ClassVar[bool] = True
    limits: ClassVar[tuple[LimitRule, ...]] = (
        LimitRule("public requests per IP", 1.0, 1, PUBLIC_ENDPOINTS, "[KR-SUPPORT-RL]"),
    )
    backoff_seconds: ClassVar[Mapping[Result, float]] = {
        # "restricted for a few seconds (or possibly longer)" [KR-SUPPORT-RL]
        Result.RATE_LIMITED: 15.0,
        # temporary lockout: "typically a few minutes" [KR-ERRORS]
        Result.BANNED: 300.0,
    }

    @classmethod
    def rest_symbol(cls, market: str) -> str:
        """Kraken's REST pairs use its own asset codes, ``XBT`` for bitcoin: ``XBTUSD`` [KR-TICKER].

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        base, quote = split_market(market)
        return _KRAKEN_ASSETS.get(base, base) + _KRAKEN_ASSETS.get(quote, quote)

    def endpoint_specs(self, symbol: str) -> dict[str, EndpointSpec]:
        """Return time, status, ticker and orderbook (``count=10``: the newest of 20 levels
        dates the book; level timestamps are when each level last changed [KR-SPEC])."""
        return {
            "time": EndpointSpec("time", "/0/public/Time"),
            "status": EndpointSpec("status", "/0/public/SystemStatus"),
            "ticker": EndpointSpec("ticker", "/0/public/Ticker", {"pair": symbol}),
            "orderbook": EndpointSpec(
                "orderbook", "/0/public/Depth", {"pair": symbol, "count": "10"}
            ),
        }

    def check_envelope(self, endpoint: str, status: int, body: Any) -> Verdict | None:
        """Map the first error (severity ``E``) of the ``error`` array to a verdict; entries of
        severity ``W`` are warnings, not failures [KR-REST-INTRO]. The code is the documented
        ``<E><category>:<message>`` (:func:`documented_error`), the message the whole entry."""
        if not isinstance(body, dict):
            return None
        errors = body.get("error")
        if not errors or not isinstance(errors, list):
            return None
        for entry in errors:
            text = str(entry)[:200]
            if text.startswith("W"):
                continue
            return self.verdict_for_code(documented_error(text), text)
        return None

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate each endpoint's ``result`` fields [KR-TIME, KR-STATUS, KR-SPEC]; a ticker's
        verdict carries its quote, a status verdict the next announced window
        (:func:`upcoming_window`)."""
        if not isinstance(dig(body, "error"), list):
            return Verdict(Result.BAD_RESPONSE, message="error is not a list")
        if endpoint == "time":
            unixtime = as_float(dig(body, "result", "unixtime"), "result.unixtime")
            # Whole seconds: the true server time lies in [unixtime, unixtime + 1).
            return Verdict(Result.OK, server_time=unixtime + 0.5, server_time_resolution=1.0)
        if endpoint == "status":
            # A correct answer either way: anything but ``online`` is maintenance, a state
            # (not a failure) [KR-STATUS].
            state = str(dig(body, "result", "status"))
            if state != "online":
                verdict = status_verdict(True, f"status {state}")
            else:
                verdict = status_verdict(False)
            verdict.scheduled_maintenance = upcoming_window(body["result"])
            return verdict
        result = dig(body, "result")
        if not isinstance(result, dict) or not result:
            return Verdict(Result.BAD_RESPONSE, message="result has no pair")
        pair = next(iter(result.values()))
        if endpoint == "ticker":
            last = dig(pair, "c", 0)
            as_float(last, "c[0]")
            # The quote's extras are optional: a missing or malformed one is None [KR-TICKER].
            quote = quote_of(
                item(pair.get("b"), 0), item(pair.get("a"), 0), last, item(pair.get("v"), 1)
            )
            return Verdict(Result.OK, quote=quote)
        if endpoint == "orderbook":
            levels = list(dig(pair, "asks")) + list(dig(pair, "bids"))
            stamps = [as_float(dig(level, 2), "level timestamp") for level in levels]
            return Verdict(Result.OK, data_time=max(stamps) if stamps else None)
        return Verdict(Result.OK)


def upcoming_window(result: Any, now: float | None = None) -> Window | None:
    """The next announced maintenance window not yet over, ``(start, end)`` Unix seconds, from
    a SystemStatus ``result``'s ``upcoming_maintenance`` array.

    Documented [KR-STATUS]: the array is additive (absent or empty when nothing is announced),
    carries scheduled events within 72 hours, and drops an event once its window starts (the
    engine's ``status`` then says maintenance). UNVERIFIED: the item shape. The most plausible
    documented reading is the event shape of Kraken's ``MaintenanceSchedule`` endpoint
    (``title``, ``expected_start_utc``, ``expected_end_utc`` as RFC 3339 UTC strings; outside
    the reference facts, see docs/maintenance-sources.md [KR-MAINT-SCHED]); the parser is
    tolerant: a start from the first of :data:`START_KEYS` and an end from the first of
    :data:`END_KEYS` present, each an RFC 3339 string or an epoch number in seconds or
    milliseconds. An item without a readable start is skipped; one without a readable end is
    taken as ending when it starts (the notice is about the start). Anything unreadable gives
    None, never a failed probe.

    Args:
        result: the body's ``result`` object.
        now: Unix seconds; the wall clock when None.
    """
    items = result.get("upcoming_maintenance") if isinstance(result, dict) else None
    if not isinstance(items, list):
        return None
    windows: list[Window] = []
    for entry in items:
        start = epoch_any(first_of(entry, START_KEYS))
        if start is None:
            continue
        end = epoch_any(first_of(entry, END_KEYS))
        windows.append((start, end if end is not None and end >= start else start))
    return next_window(windows, now)
