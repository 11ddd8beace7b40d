"""Binance spot public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §1, citing binance-spot-api-docs
``rest-api.md`` [BN-REST], ``errors.md`` [BN-ERR], ccxt ``fetch_status`` [CCXT-BN]):

- Endpoints and request weights: ``/api/v3/ping`` 1, ``/api/v3/time`` 1,
  ``/sapi/v1/system/status`` 1, ``/api/v3/ticker/24hr?symbol=`` 2 (single symbol),
  ``/api/v3/depth?limit=`` 5 for limit 1–100 [BN-REST §General endpoints, Market data].
- Errors: JSON ``{"code": <negative int>, "msg": ...}`` [BN-ERR]; HTTP 429 rate limit, 418 IP
  ban, both with ``Retry-After`` seconds; 403 WAF; 5XX "execution status UNKNOWN"
  [BN-REST §HTTP Return Codes]. ``-1003`` TOO_MANY_REQUESTS (msg says "IP banned until" for a ban).
- Server time: ``serverTime`` in epoch milliseconds [BN-REST §Check server time].
- Status: ``{"status": 0|1, "msg": "normal"|"system_maintenance"}`` [CCXT-BN fetch_status].
- Usage header: ``X-MBX-USED-WEIGHT-1M`` against REQUEST_WEIGHT 6000 per minute
  [BN-REST §IP Limits, BN-ENUM §Rate limiters, BN-CL 2023-08-25].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from exporter.profiles.base import (
    EndpointSpec,
    Profile,
    RateLimitReading,
    Result,
    Verdict,
    as_float,
    dig,
)

REQUEST_WEIGHT_PER_MINUTE = 6000
"""Binance REQUEST_WEIGHT limit per IP per minute [BN-ENUM §Rate limiters]."""

_RATE_LIMIT_CODES = frozenset({"-1003", "-1015"})
_MAINTENANCE_CODES = frozenset({"-1016"})


class BinanceProfile(Profile):
    """Binance spot (``https://api.binance.com``); symbol style ``BTCUSDT``."""

    name: ClassVar[str] = "binance"
    default_symbol: ClassVar[str] = "BTCUSDT"
    default_endpoints: ClassVar[tuple[str, ...]] = ("ping", "time", "status", "ticker", "orderbook")

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
        """Map a ``{"code", "msg"}`` error body to a verdict [BN-ERR]."""
        if not isinstance(body, dict) or "code" not in body or "msg" not in body:
            return None
        code = str(body["code"])
        message = str(body["msg"])[:200]
        if code in _RATE_LIMIT_CODES:
            banned = "banned" in message.lower()
            return Verdict(Result.BANNED if banned else Result.RATE_LIMITED, code, message)
        if code in _MAINTENANCE_CODES:
            return Verdict(Result.MAINTENANCE, code, message)
        return Verdict(Result.API_ERROR, code, message)

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate the documented fields of each endpoint's body [BN-REST]."""
        if endpoint == "ping":
            if body != {}:
                return Verdict(Result.BAD_RESPONSE, message="ping body is not {}")
            return Verdict(Result.OK)
        if endpoint == "time":
            server_ms = as_float(dig(body, "serverTime"), "serverTime")
            return Verdict(Result.OK, server_time=server_ms / 1000.0)
        if endpoint == "status":
            state = dig(body, "status")
            if state == 1:
                return Verdict(
                    Result.MAINTENANCE, message=str(body.get("msg", ""))[:200], maintenance=True
                )
            return Verdict(Result.OK, maintenance=False)
        if endpoint == "ticker":
            as_float(dig(body, "lastPrice"), "lastPrice")
            return Verdict(Result.OK)
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
