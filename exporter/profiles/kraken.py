"""Kraken spot public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §5, citing docs.kraken.com [KR-TIME],
[KR-STATUS], [KR-REST-INTRO], [KR-ERRORS] and ccxt [CCXT-KR]):

- Envelope ``{"error": [], "result": {...}}``; HTTP status is "generally not used" — errors are
  strings ``<E|W><category>:<message>`` in ``error`` [KR-REST-INTRO].
- ``EAPI:Rate limit exceeded`` / ``EGeneral:Too many requests`` rate limit;
  ``EGeneral:Temporary lockout`` a temporary ban; ``EService:Market in cancel_only mode`` /
  ``post_only`` degraded trading [KR-ERRORS, CCXT-KR].
- Server time ``/0/public/Time`` → ``result.unixtime`` (whole seconds) [KR-TIME].
- Status ``/0/public/SystemStatus`` → ``result.status`` ∈ online, maintenance, cancel_only,
  post_only (anything but ``online`` is reported as maintenance) [KR-STATUS, KR-WS-STATUS].
- No dedicated ping endpoint (UNVERIFIED absence).
"""

from __future__ import annotations

from typing import Any, ClassVar

from exporter.profiles.base import EndpointSpec, Profile, Result, Verdict, as_float, dig

_RATE_LIMIT_ERRORS = ("EAPI:Rate limit exceeded", "EGeneral:Too many requests")
_BAN_ERRORS = ("EGeneral:Temporary lockout",)
_MAINTENANCE_ERRORS = ("EService:Market in cancel_only mode", "EService:Market in post_only mode")


class KrakenProfile(Profile):
    """Kraken spot (``https://api.kraken.com``); pair style ``XBTUSD``."""

    name: ClassVar[str] = "kraken"
    default_symbol: ClassVar[str] = "XBTUSD"
    default_endpoints: ClassVar[tuple[str, ...]] = ("time", "status", "ticker", "orderbook")

    def endpoint_specs(self, symbol: str) -> dict[str, EndpointSpec]:
        """Return time, status, ticker and orderbook (``count=1``)."""
        return {
            "time": EndpointSpec("time", "/0/public/Time"),
            "status": EndpointSpec("status", "/0/public/SystemStatus"),
            "ticker": EndpointSpec("ticker", "/0/public/Ticker", {"pair": symbol}),
            "orderbook": EndpointSpec(
                "orderbook", "/0/public/Depth", {"pair": symbol, "count": "1"}
            ),
        }

    def check_envelope(self, endpoint: str, status: int, body: Any) -> Verdict | None:
        """Map a non-empty ``error`` array to a verdict [KR-ERRORS]."""
        if not isinstance(body, dict):
            return None
        errors = body.get("error")
        if not errors or not isinstance(errors, list):
            return None
        first = str(errors[0])[:200]
        if first.startswith(_RATE_LIMIT_ERRORS):
            return Verdict(Result.RATE_LIMITED, first, first)
        if first.startswith(_BAN_ERRORS):
            return Verdict(Result.BANNED, first, first)
        if first.startswith(_MAINTENANCE_ERRORS):
            return Verdict(Result.MAINTENANCE, first, first)
        return Verdict(Result.API_ERROR, first, first)

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate each endpoint's ``result`` fields [KR-TIME, KR-STATUS, KR-SPEC]."""
        if not isinstance(dig(body, "error"), list):
            return Verdict(Result.BAD_RESPONSE, message="error is not a list")
        if endpoint == "time":
            unixtime = as_float(dig(body, "result", "unixtime"), "result.unixtime")
            # Whole seconds: the true server time lies in [unixtime, unixtime + 1).
            return Verdict(Result.OK, server_time=unixtime + 0.5, server_time_resolution=1.0)
        if endpoint == "status":
            state = str(dig(body, "result", "status"))
            if state != "online":
                return Verdict(
                    Result.MAINTENANCE, message=f"status {state}"[:200], maintenance=True
                )
            return Verdict(Result.OK, maintenance=False)
        if endpoint in ("ticker", "orderbook"):
            result = dig(body, "result")
            if not isinstance(result, dict) or not result:
                return Verdict(Result.BAD_RESPONSE, message="result has no pair")
            pair = next(iter(result.values()))
            if endpoint == "ticker":
                as_float(dig(pair, "c", 0), "c[0]")
            else:
                dig(pair, "asks")
                dig(pair, "bids")
            return Verdict(Result.OK)
        return Verdict(Result.OK)
