"""Bybit v5 public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §2, citing bybit-exchange/docs v5
[BY-GUIDE], [BY-TIME], [BY-STATUS], [BY-TICKERS], [BY-OB], [BY-ERR], [BY-RL]):

- Envelope ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``; errors come with HTTP 200
  and ``retCode != 0`` [BY-GUIDE, CCXT-BY handle_errors].
- ``10006`` "Too many visits" (API rate limit); ``10018`` IP rate limit (deprecated); HTTP 403
  "access too frequent" is the IP rate limit (ban ≥ 10 minutes) [BY-RL, BY-ERR].
- Server time: ``/v5/market/time`` → ``result.timeNano`` (ns, string) [BY-TIME].
- Status: ``/v5/system/status`` → any ``result.list[].state == "ongoing"`` is maintenance
  [BY-STATUS, CCXT-BY fetch_status].
- Usage headers ``X-Bapi-Limit`` (limit) and ``X-Bapi-Limit-Status`` (remaining) per rolling
  second [BY-RL].
- No dedicated ping endpoint (UNVERIFIED absence in the facts file).
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

_RATE_LIMIT_CODES = frozenset({"10006", "10018"})


class BybitProfile(Profile):
    """Bybit v5 (``https://api.bybit.com``), spot category; symbol style ``BTCUSDT``."""

    name: ClassVar[str] = "bybit"
    default_symbol: ClassVar[str] = "BTCUSDT"
    default_endpoints: ClassVar[tuple[str, ...]] = ("time", "status", "ticker", "orderbook")
    rate_limit_statuses: ClassVar[frozenset[int]] = frozenset({403, 429})

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
        message = str(body.get("retMsg", ""))[:200]
        if code in _RATE_LIMIT_CODES:
            return Verdict(Result.RATE_LIMITED, code, message)
        return Verdict(Result.API_ERROR, code, message)

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate each endpoint's ``result`` fields [BY-TIME, BY-STATUS, BY-TICKERS, BY-OB]."""
        if not isinstance(body, dict) or "retCode" not in body:
            return Verdict(Result.BAD_RESPONSE, message="missing retCode")
        if endpoint == "time":
            nanos = as_float(dig(body, "result", "timeNano"), "result.timeNano")
            return Verdict(Result.OK, server_time=nanos / 1e9, server_time_resolution=1e-6)
        if endpoint == "status":
            items = dig(body, "result", "list")
            ongoing = [i for i in items if isinstance(i, dict) and i.get("state") == "ongoing"]
            if ongoing:
                title = str(ongoing[0].get("title", ""))[:200]
                return Verdict(Result.MAINTENANCE, message=title, maintenance=True)
            return Verdict(Result.OK, maintenance=False)
        if endpoint == "ticker":
            as_float(dig(body, "result", "list", 0, "lastPrice"), "lastPrice")
            return Verdict(Result.OK)
        if endpoint == "orderbook":
            dig(body, "result", "a")
            dig(body, "result", "b")
            return Verdict(Result.OK)
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
