"""Bybit v5 public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §2, citing bybit-exchange/docs v5
[BY-GUIDE], [BY-TIME], [BY-STATUS], [BY-TICKERS], [BY-OB], [BY-ERR], [BY-RL]):

- Envelope ``{"retCode", "retMsg", "result", "retExtInfo", "time"}`` (``time`` = server ms);
  errors come with HTTP 200 and ``retCode != 0`` [BY-GUIDE, CCXT-BY handle_errors].
- ``10006`` "Too many visits" (API rate limit, per UID/endpoint per second); ``10018`` IP rate
  limit (deprecated); HTTP 403 "access too frequent" is the IP limit of 600 requests per 5 s,
  after which all sessions must stop for at least 10 minutes [BY-RL, BY-ERR].
- ``10002`` request time outside recv window; ``10003/10004/10005/10010`` key, signature,
  permission, IP whitelist; ``10000/10016`` server timeout/error; retCode ``429`` "high server
  load" (busy, by its message); HTTP 429 "System level frequency protection" (a rate limit)
  [BY-ERR]. An error body without ``retCode`` is recognised by its documented message
  (:data:`MESSAGE_RULES`).
- Server time: ``/v5/market/time`` → ``result.timeNano`` (ns, string) [BY-TIME]; the order book
  carries ``ts`` (data generation, ms) [BY-OB].
- Status: ``/v5/system/status`` → any ``result.list[].state == "ongoing"`` is maintenance
  [BY-STATUS, CCXT-BY fetch_status]. Items carry ``begin``/``end`` (ms strings) and ``state``
  ∈ scheduled, ongoing, completed, canceled [BY-STATUS, BY-ENUM]: the scheduled and ongoing
  ones are the announced maintenance (``announces_maintenance``).
- Ticker ``/v5/market/tickers`` → ``result.list[0]``: ``bid1Price``, ``ask1Price``,
  ``lastPrice`` and ``volume24h`` (base units) [BY-TICKERS].
- Usage headers ``X-Bapi-Limit`` (limit), ``X-Bapi-Limit-Status`` (remaining) and
  ``X-Bapi-Limit-Reset-Timestamp`` (ms) [BY-RL].
- No dedicated ping endpoint (UNVERIFIED absence in the facts file).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from exporter.profiles.base import (
    EndpointSpec,
    ErrorKind,
    LimitRule,
    MessageRule,
    Profile,
    RateLimitReading,
    Result,
    Verdict,
    as_float,
    dig,
    match_message,
    parse_retry_after,
    split_market,
    status_verdict,
)
from exporter.profiles.optional_fields import announced_window, quote_of

ANNOUNCED_STATES: frozenset[str] = frozenset({"scheduled", "ongoing"})
"""System-status states of maintenance that is not over [BY-STATUS]."""

ERROR_CODES: dict[str, ErrorKind] = {
    # retCodes of bybit-exchange/docs docs/v5/error.mdx [BY-ERR] unless marked otherwise.
    "10000": ErrorKind.BUSY,  # Server Timeout
    "10001": ErrorKind.REQUEST,  # parameter error
    "10002": ErrorKind.TIMESTAMP,  # request time exceeds the time window range
    "10003": ErrorKind.AUTH,  # API key is invalid
    "10004": ErrorKind.AUTH,  # error sign
    "10005": ErrorKind.AUTH,  # permission denied
    "10006": ErrorKind.RATE_LIMIT,  # too many visits (API rate limit) [BY-ERR, BY-RL]
    "10009": ErrorKind.AUTH,  # service restricted (region)
    "10010": ErrorKind.AUTH,  # unmatched IP
    "10016": ErrorKind.INTERNAL,  # server error
    "10018": ErrorKind.RATE_LIMIT,  # exceeded the IP rate limit (deprecated)
    "33004": ErrorKind.AUTH,  # api key expired (derivatives)
    "-2015": ErrorKind.AUTH,  # api key expired (spot)
    # retCode 429 "The trading service is experiencing a high server load" (busy) is left out:
    # the receiver's code table (receiver/diagnosis/codes.py) has no entry for it, so it is
    # exported as ``other``; :data:`MESSAGE_RULES` still reads its message as busy.
}

MESSAGE_RULES: tuple[MessageRule, ...] = (
    # retMsg texts of [BY-ERR]/[BY-RL], for an error body that carries no retCode.
    MessageRule("access too frequent", ErrorKind.BAN, None, "[BY-RL] IP limit (HTTP 403)"),
    MessageRule("too many visits", ErrorKind.RATE_LIMIT, "10006", "[BY-ERR, BY-RL] 10006"),
    MessageRule("exceeded the ip rate limit", ErrorKind.RATE_LIMIT, "10018", "[BY-ERR] 10018"),
    MessageRule("request time exceeds the time window", ErrorKind.TIMESTAMP, "10002",
                "[BY-ERR] 10002"),
    MessageRule("server timeout", ErrorKind.BUSY, "10000", "[BY-ERR] 10000"),
    MessageRule("server error", ErrorKind.INTERNAL, "10016", "[BY-ERR] 10016"),
    MessageRule("high server load", ErrorKind.BUSY, None, "[BY-ERR] retCode 429"),
)  # fmt: skip
"""Documented retMsg texts → meaning, for error bodies without a ``retCode``."""


class BybitProfile(Profile):
    """Bybit v5 (``https://api.bybit.com``), spot category; symbol style ``BTCUSDT``."""

    name: ClassVar[str] = "bybit"
    default_symbol: ClassVar[str] = "BTCUSDT"
    default_market: ClassVar[str | None] = "BTC/USDT"
    default_endpoints: ClassVar[tuple[str, ...]] = ("time", "status", "ticker", "orderbook")
    # HTTP 403 is Bybit's IP-limit answer ("access too frequent"), a ban of ≥ 10 minutes.
    ban_statuses: ClassVar[frozenset[int]] = frozenset({403, 418})
    error_codes: ClassVar[Mapping[str, ErrorKind]] = ERROR_CODES
    message_rules: ClassVar[tuple[MessageRule, ...]] = MESSAGE_RULES
    announces_maintenance: ClassVar[bool] = True
    limits: ClassVar[tuple[LimitRule, ...]] = (
        LimitRule("requests per IP", 5.0, 600, None, "[BY-RL]"),
    )
    backoff_seconds: ClassVar[Mapping[Result, float]] = {
        Result.RATE_LIMITED: 1.0,  # 10006 is a rolling per-second limit [BY-RL]
        Result.BANNED: 600.0,  # 403: "wait for at least 10 minutes" [BY-RL]
    }

    @classmethod
    def rest_symbol(cls, market: str) -> str:
        """Bybit spells spot symbols ``BTCUSDT`` [BY-TICKERS].

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        base, quote = split_market(market)
        return base + quote

    def endpoint_specs(self, symbol: str) -> dict[str, EndpointSpec]:
        """Return time, status, ticker and orderbook (spot category, depth 1)."""
        spot = {"category": "spot", "symbol": symbol}
        return {
            "time": EndpointSpec("time", "/v5/market/time"),
            "status": EndpointSpec("status", "/v5/system/status"),
            "ticker": EndpointSpec("ticker", "/v5/market/tickers", spot),
            "orderbook": EndpointSpec("orderbook", "/v5/market/orderbook", {**spot, "limit": "1"}),
        }

    def check_envelope(self, endpoint: str, status: int, body: Any) -> Verdict | None:
        """Map ``retCode != 0`` to a verdict [BY-ERR]."""
        if not isinstance(body, dict) or "retCode" not in body:
            return None
        code = str(body["retCode"])
        if code == "0":
            return None
        message = str(body.get("retMsg", ""))
        if code not in self.error_codes:
            # A code outside the table whose documented message says what it is (retCode 429
            # "high server load" [BY-ERR]): that meaning, the code still exported as ``other``.
            rule = match_message(self.message_rules, message)
            if rule is not None and rule.code is None:
                return Verdict(rule.kind.result, code, message[:200], error_kind=rule.kind)
        return self.verdict_for_code(code, message)

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate each endpoint's ``result`` fields [BY-TIME, BY-STATUS, BY-TICKERS, BY-OB]; a
        ticker's verdict carries its quote, a status verdict the next announced window not yet
        over (entries in :data:`ANNOUNCED_STATES`, ``begin``/``end`` in ms)."""
        if not isinstance(body, dict) or "retCode" not in body:
            return Verdict(Result.BAD_RESPONSE, message="missing retCode")
        if endpoint == "time":
            nanos = as_float(dig(body, "result", "timeNano"), "result.timeNano")
            return Verdict(Result.OK, server_time=nanos / 1e9, server_time_resolution=1e-6)
        if endpoint == "status":
            items = dig(body, "result", "list")
            ongoing = [i for i in items if isinstance(i, dict) and i.get("state") == "ongoing"]
            # A correct answer either way: an ``ongoing`` record is maintenance, a state (not
            # a failure) [BY-STATUS].
            if ongoing:
                verdict = status_verdict(True, str(ongoing[0].get("title", "")))
            else:
                verdict = status_verdict(False)
            verdict.scheduled_maintenance = announced_window(items, ANNOUNCED_STATES)
            return verdict
        if endpoint == "ticker":
            last = dig(body, "result", "list", 0, "lastPrice")
            as_float(last, "lastPrice")
            ticker = body["result"]["list"][0]
            # The quote's extras are optional: a missing or malformed one is None [BY-TICKERS].
            quote = quote_of(
                ticker.get("bid1Price"), ticker.get("ask1Price"), last, ticker.get("volume24h")
            )
            return Verdict(Result.OK, quote=quote)
        if endpoint == "orderbook":
            dig(body, "result", "a")
            dig(body, "result", "b")
            generated_ms = as_float(dig(body, "result", "ts"), "result.ts")
            return Verdict(Result.OK, data_time=generated_ms / 1000.0)
        return Verdict(Result.OK)

    def rate_limits(self, headers: Mapping[str, str]) -> list[RateLimitReading]:
        """Read ``X-Bapi-Limit`` and ``X-Bapi-Limit-Status`` (remaining) [BY-RL]."""
        limit_raw = headers.get("x-bapi-limit")
        remaining_raw = headers.get("x-bapi-limit-status")
        if limit_raw is None or remaining_raw is None:
            return []
        try:
            limit = float(limit_raw)
            remaining = float(remaining_raw)
        except ValueError:
            return []
        return [RateLimitReading("1s", max(limit - remaining, 0.0), limit)]

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        """``Retry-After``, else the wait until ``X-Bapi-Limit-Reset-Timestamp`` (ms) when the
        remaining count is 0 [BY-RL]."""
        explicit = parse_retry_after(headers)
        if explicit is not None:
            return explicit
        if headers.get("x-bapi-limit-status") != "0":
            return None
        try:
            reset_ms = float(headers.get("x-bapi-limit-reset-timestamp", ""))
        except ValueError:
            return None
        return max(reset_ms / 1000.0 - time.time(), 0.0)
