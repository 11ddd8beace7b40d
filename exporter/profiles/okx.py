"""OKX v5 public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §3, citing okx.com docs-v5 [OKX-MD],
[OKX-ERR], [OKX-STATUS], [OKX-TIME] and ccxt [CCXT-OKX]):

- Envelope ``{"code": "0", "msg": "", "data": [...]}``; ``code`` is a string, ``"0"`` success.
- ``50011`` rate limit (HTTP 200 or 429); ``50013`` system busy (429); ``50001`` service
  temporarily unavailable (503; ccxt OnMaintenance) [OKX-ERR, CCXT-OKX].
- Server time ``/api/v5/public/time`` → ``data[0].ts`` (ms, string) [OKX-TIME].
- Status ``/api/v5/system/status`` → any ``data[].state == "ongoing"`` is maintenance [OKX-STATUS].
- No rate-limit usage headers documented; no ping endpoint (both UNVERIFIED absences).
"""

from __future__ import annotations

from typing import Any, ClassVar

from exporter.profiles.base import EndpointSpec, Profile, Result, Verdict, as_float, dig

_RATE_LIMIT_CODES = frozenset({"50011", "50061"})
_MAINTENANCE_CODES = frozenset({"50001"})


class OkxProfile(Profile):
    """OKX v5 (``https://www.okx.com``); instrument style ``BTC-USDT``."""

    name: ClassVar[str] = "okx"
    default_symbol: ClassVar[str] = "BTC-USDT"
    default_endpoints: ClassVar[tuple[str, ...]] = ("time", "status", "ticker", "orderbook")

    def endpoint_specs(self, symbol: str) -> dict[str, EndpointSpec]:
        """Return time, status, ticker and orderbook (``sz=1``)."""
        return {
            "time": EndpointSpec("time", "/api/v5/public/time"),
            "status": EndpointSpec("status", "/api/v5/system/status"),
            "ticker": EndpointSpec("ticker", "/api/v5/market/ticker", {"instId": symbol}),
            "orderbook": EndpointSpec(
                "orderbook", "/api/v5/market/books", {"instId": symbol, "sz": "1"}
            ),
        }

    def check_envelope(self, endpoint: str, status: int, body: Any) -> Verdict | None:
        """Map ``code != "0"`` to a verdict [OKX-ERR]."""
        if not isinstance(body, dict) or "code" not in body:
            return None
        code = str(body["code"])
        if code == "0":
            return None
        message = str(body.get("msg", ""))[:200]
        if code in _RATE_LIMIT_CODES:
            return Verdict(Result.RATE_LIMITED, code, message)
        if code in _MAINTENANCE_CODES:
            return Verdict(Result.MAINTENANCE, code, message)
        return Verdict(Result.API_ERROR, code, message)

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate each endpoint's ``data`` fields [OKX-TIME, OKX-STATUS, OKX-MD]."""
        if endpoint == "time":
            server_ms = as_float(dig(body, "data", 0, "ts"), "data[0].ts")
            return Verdict(Result.OK, server_time=server_ms / 1000.0)
        if endpoint == "status":
            items = dig(body, "data")
            ongoing = [i for i in items if isinstance(i, dict) and i.get("state") == "ongoing"]
            if ongoing:
                title = str(ongoing[0].get("title", ""))[:200]
                return Verdict(Result.MAINTENANCE, message=title, maintenance=True)
            return Verdict(Result.OK, maintenance=False)
        if endpoint == "ticker":
            as_float(dig(body, "data", 0, "last"), "data[0].last")
            return Verdict(Result.OK)
        if endpoint == "orderbook":
            dig(body, "data", 0, "asks")
            dig(body, "data", 0, "bids")
            return Verdict(Result.OK)
        return Verdict(Result.OK)
