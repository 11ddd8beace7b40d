"""Binance spot public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §1, citing binance-spot-api-docs
``rest-api.md`` [BN-REST], ``errors.md`` [BN-ERR], ``enums.md`` [BN-ENUM], ``CHANGELOG.md``
[BN-CL] and ccxt ``fetch_status`` [CCXT-BN]):

- Endpoints and request weights: ``/api/v3/ping`` 1, ``/api/v3/time`` 1,
  ``/sapi/v1/system/status`` 1, ``/api/v3/ticker/24hr?symbol=`` 2 (single symbol),
  ``/api/v3/depth?limit=5`` 5 (limit 1–100) [BN-REST §Market data endpoints, BN-CL 2023-10-19].
- Limit: REQUEST_WEIGHT 6000 per minute per IP, shared by every process on the IP
  [BN-REST §IP Limits, BN-ENUM §Rate limiters, BN-CL 2023-08-25].
- Errors: JSON ``{"code": <negative int>, "msg": ...}`` [BN-ERR]; HTTP 429 rate limit, 418 IP
  ban, both with ``Retry-After`` seconds; bans scale from 2 minutes to 3 days; 403 WAF
  ("rate-limit or security block": which one is not told, so ``http_error``); 5XX
  "execution status UNKNOWN" [BN-REST §HTTP Return Codes]. A body with ``msg`` but no ``code``
  is recognised by its documented message template (:data:`MESSAGE_RULES`).
- Server time: ``serverTime`` in epoch milliseconds [BN-REST §Check server time]; the 24hr
  ticker's ``closeTime`` (ms) dates the market data.
- 24hr ticker (FULL): ``bidPrice``, ``askPrice``, ``lastPrice`` (quote units) and ``volume``
  (base units, rolling 24 h) [BN-REST].
- Status: ``{"status": 0|1, "msg": "normal"|"system_maintenance"}`` [CCXT-BN fetch_status]:
  maintenance now or not, nothing about maintenance ahead, so the profile does not set
  ``announces_maintenance``.
- Usage header: ``X-MBX-USED-WEIGHT-1M`` [BN-REST §IP Limits].
"""

from __future__ import annotations

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
    split_market,
    status_verdict,
)
from exporter.profiles.optional_fields import quote_of

REQUEST_WEIGHT_PER_MINUTE = 6000
"""Binance REQUEST_WEIGHT limit per IP per minute [BN-ENUM §Rate limiters]."""

ERROR_CODES: dict[str, ErrorKind] = {
    # Codes and names from binance-spot-api-docs errors.md [BN-ERR] unless marked otherwise.
    "-1000": ErrorKind.INTERNAL,  # UNKNOWN
    "-1001": ErrorKind.INTERNAL,  # DISCONNECTED: "Internal error; unable to process ..."
    "-1002": ErrorKind.AUTH,  # UNAUTHORIZED
    "-1003": ErrorKind.RATE_LIMIT,  # TOO_MANY_REQUESTS (msg says "IP banned until" on a ban)
    "-1007": ErrorKind.BUSY,  # TIMEOUT: backend timeout, execution status unknown
    "-1008": ErrorKind.BUSY,  # SERVER_BUSY
    "-1015": ErrorKind.RATE_LIMIT,  # TOO_MANY_ORDERS
    # SERVICE_SHUTTING_DOWN "This service is no longer available.": the service (endpoint) is
    # gone, not under maintenance; probing it again cannot succeed, so a request error.
    "-1016": ErrorKind.REQUEST,
    "-1021": ErrorKind.TIMESTAMP,  # INVALID_TIMESTAMP: outside recvWindow / ahead of server
    "-1022": ErrorKind.AUTH,  # INVALID_SIGNATURE
    "-1100": ErrorKind.REQUEST,  # ILLEGAL_CHARS
    "-1102": ErrorKind.REQUEST,  # MANDATORY_PARAM_EMPTY_OR_MALFORMED
    "-1121": ErrorKind.REQUEST,  # BAD_SYMBOL "Invalid symbol."
    # BAD_RECV_WINDOW "recvWindow must be less than 60000" [BN-CL]: a parameter out of range,
    # whatever the clocks say; not a timestamp (clock) error.
    "-1131": ErrorKind.REQUEST,
    "-2014": ErrorKind.AUTH,  # BAD_API_KEY_FMT
    "-2015": ErrorKind.AUTH,  # REJECTED_MBX_KEY: invalid key, IP or permissions
}

MESSAGE_RULES: tuple[MessageRule, ...] = (
    # The message templates of errors.md [BN-ERR] (and [BN-CL] for -1131), for an error body
    # that carries ``msg`` without ``code``. The ban template goes before the rate-limit one.
    MessageRule("ip banned until", ErrorKind.BAN, "-1003", "[BN-ERR] -1003"),
    MessageRule("too much request weight used", ErrorKind.RATE_LIMIT, "-1003", "[BN-ERR] -1003"),
    MessageRule("too many new orders", ErrorKind.RATE_LIMIT, "-1015", "[BN-ERR] -1015"),
    MessageRule("outside of the recvwindow", ErrorKind.TIMESTAMP, "-1021", "[BN-ERR] -1021"),
    MessageRule("ahead of the server's time", ErrorKind.TIMESTAMP, "-1021", "[BN-ERR] -1021"),
    MessageRule("recvwindow must be less than", ErrorKind.REQUEST, "-1131", "[BN-CL] -1131"),
    MessageRule("server is currently overloaded", ErrorKind.BUSY, "-1008", "[BN-ERR] -1008"),
    MessageRule("timeout waiting for response from backend", ErrorKind.BUSY, "-1007",
                "[BN-ERR] -1007"),
    MessageRule("internal error; unable to process", ErrorKind.INTERNAL, "-1001",
                "[BN-ERR] -1001"),
    MessageRule("service is no longer available", ErrorKind.REQUEST, "-1016", "[BN-ERR] -1016"),
    MessageRule("signature for this request is not valid", ErrorKind.AUTH, "-1022",
                "[BN-ERR] -1022"),
    MessageRule("api-key format invalid", ErrorKind.AUTH, "-2014", "[BN-ERR] -2014"),
    MessageRule("invalid api-key, ip, or permissions", ErrorKind.AUTH, "-2015", "[BN-ERR] -2015"),
    MessageRule("not authorized to execute this request", ErrorKind.AUTH, "-1002",
                "[BN-ERR] -1002"),
)  # fmt: skip
"""Documented message templates → meaning, for error bodies without a ``code``."""


class BinanceProfile(Profile):
    """Binance spot (``https://api.binance.com``); symbol style ``BTCUSDT``."""

    name: ClassVar[str] = "binance"
    default_symbol: ClassVar[str] = "BTCUSDT"
    default_market: ClassVar[str | None] = "BTC/USDT"
    default_endpoints: ClassVar[tuple[str, ...]] = ("ping", "time", "status", "ticker", "orderbook")
    error_codes: ClassVar[Mapping[str, ErrorKind]] = ERROR_CODES
    message_rules: ClassVar[tuple[MessageRule, ...]] = MESSAGE_RULES
    limits: ClassVar[tuple[LimitRule, ...]] = (
        LimitRule("REQUEST_WEIGHT per IP", 60.0, REQUEST_WEIGHT_PER_MINUTE, None,
                  "[BN-ENUM §Rate limiters]"),
    )  # fmt: skip
    backoff_seconds: ClassVar[Mapping[Result, float]] = {
        # 429 without Retry-After: the weight window is one minute [BN-REST §IP Limits].
        Result.RATE_LIMITED: 60.0,
        # 418 without Retry-After: bans start at 2 minutes [BN-REST §IP Limits].
        Result.BANNED: 120.0,
    }

    @classmethod
    def rest_symbol(cls, market: str) -> str:
        """Binance spells markets ``BTCUSDT`` [BN-REST §Market data endpoints].

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        base, quote = split_market(market)
        return base + quote

    def endpoint_specs(self, symbol: str) -> dict[str, EndpointSpec]:
        """Return ping, time, status, ticker (24hr, weight 2) and orderbook (depth 5, weight 5)."""
        return {
            "ping": EndpointSpec("ping", "/api/v3/ping", weight=1),
            "time": EndpointSpec("time", "/api/v3/time", weight=1),
            "status": EndpointSpec("status", "/sapi/v1/system/status", weight=1),
            "ticker": EndpointSpec("ticker", "/api/v3/ticker/24hr", {"symbol": symbol}, weight=2),
            "orderbook": EndpointSpec(
                "orderbook", "/api/v3/depth", {"symbol": symbol, "limit": "5"}, weight=5
            ),
        }

    def check_envelope(self, endpoint: str, status: int, body: Any) -> Verdict | None:
        """Map a ``{"code", "msg"}`` error body to a verdict [BN-ERR] (``msg`` may be missing:
        the code alone decides). ``-1003`` whose message says "IP banned until" is a ban
        [BN-ERR]. A body with ``msg`` but no ``code`` is left to :attr:`message_rules` (error
        statuses only: the status endpoint's success body has a ``msg`` too)."""
        if not isinstance(body, dict) or "code" not in body:
            return None
        code = str(body["code"])
        message = str(body.get("msg", ""))
        if code == "-1003" and "banned" in message[:200].lower():
            return Verdict(Result.BANNED, code, message[:200], error_kind=ErrorKind.BAN)
        return self.verdict_for_code(code, message)

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate the documented fields of each endpoint's body [BN-REST]; a ticker's verdict
        carries its quote (bid, ask, last, 24 h base volume)."""
        if endpoint == "ping":
            if body != {}:
                return Verdict(Result.BAD_RESPONSE, message="ping body is not {}")
            return Verdict(Result.OK)
        if endpoint == "time":
            server_ms = as_float(dig(body, "serverTime"), "serverTime")
            return Verdict(Result.OK, server_time=server_ms / 1000.0)
        if endpoint == "status":
            # A correct answer either way: ``status: 1`` is maintenance, a state (not a
            # failure) [CCXT-BN fetch_status].
            if dig(body, "status") == 1:
                return status_verdict(True, str(body.get("msg", "")))
            return status_verdict(False)
        if endpoint == "ticker":
            last = dig(body, "lastPrice")
            as_float(last, "lastPrice")
            close_ms = as_float(dig(body, "closeTime"), "closeTime")
            # The quote's extras are optional: a missing or malformed one is None [BN-REST].
            quote = quote_of(body.get("bidPrice"), body.get("askPrice"), last, body.get("volume"))
            return Verdict(Result.OK, data_time=close_ms / 1000.0, quote=quote)
        if endpoint == "orderbook":
            if not isinstance(dig(body, "bids"), list) or not isinstance(dig(body, "asks"), list):
                return Verdict(Result.BAD_RESPONSE, message="bids/asks are not lists")
            return Verdict(Result.OK)
        return Verdict(Result.OK)

    def rate_limits(self, headers: Mapping[str, str]) -> list[RateLimitReading]:
        """Read ``X-MBX-USED-WEIGHT-1M`` against 6000 per minute [BN-REST §IP Limits]."""
        raw = headers.get("x-mbx-used-weight-1m")
        if raw is None:
            return []
        try:
            used = float(raw)
        except ValueError:
            return []
        return [RateLimitReading("1m", used, REQUEST_WEIGHT_PER_MINUTE)]
