"""Coinbase Exchange public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §4, citing docs.cdp.coinbase.com
[CB-TICKER], [CB-EX-RL] and client-library copies of the documented examples [CB-TIME-EX]):

- Plain HTTP status signalling; error body ``{"message": ...}``; 429 on rate limit
  [COINCISE-CB network_connectivity.md, rate_limits.md].
- Server time ``GET /time`` → ``epoch`` (decimal seconds) [CB-TIME-EX].
- Ticker ``GET /products/{id}/ticker`` → ``price``; book ``GET /products/{id}/book?level=2``.
- No ping and no status API (status page only, UNVERIFIED), so no ``status`` endpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

from exporter.profiles.base import EndpointSpec, Profile, Result, Verdict, as_float, dig


class CoinbaseProfile(Profile):
    """Coinbase Exchange (``https://api.exchange.coinbase.com``); product style ``BTC-USD``."""

    name: ClassVar[str] = "coinbase"
    default_symbol: ClassVar[str] = "BTC-USD"
    default_endpoints: ClassVar[tuple[str, ...]] = ("time", "ticker", "orderbook")

    def endpoint_specs(self, symbol: str) -> dict[str, EndpointSpec]:
        """Return time, ticker and orderbook (level 1: best bid/ask)."""
        return {
            "time": EndpointSpec("time", "/time"),
            "ticker": EndpointSpec("ticker", f"/products/{symbol}/ticker"),
            "orderbook": EndpointSpec("orderbook", f"/products/{symbol}/book", {"level": "1"}),
        }

    def check_envelope(self, endpoint: str, status: int, body: Any) -> Verdict | None:
        """Report ``{"message": ...}`` on an error status as ``api_error`` [CB-TICKER]."""
        if status >= 400 and isinstance(body, dict) and "message" in body:
            return Verdict(Result.API_ERROR, str(status), str(body["message"])[:200])
        return None

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate each endpoint's documented fields [CB-TIME-EX, CB-TICKER-EX]."""
        if endpoint == "time":
            epoch = as_float(dig(body, "epoch"), "epoch")
            return Verdict(Result.OK, server_time=epoch)
        if endpoint == "ticker":
            as_float(dig(body, "price"), "price")
            return Verdict(Result.OK)
        if endpoint == "orderbook":
            dig(body, "bids")
            dig(body, "asks")
            return Verdict(Result.OK)
        return Verdict(Result.OK)
