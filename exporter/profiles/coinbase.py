"""Coinbase Exchange public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §4, citing docs.cdp.coinbase.com
[CB-TICKER], [CB-EX-RL] and client-library copies of the documented examples [CB-TIME-EX],
[CB-TICKER-EX], [COINCISE-CB]):

- Plain HTTP status signalling; error body ``{"message": ...}``; 400 bad request, 401 invalid
  key, 403 forbidden, 404, 500; 429 on rate limit [COINCISE-CB network_connectivity.md].
- Limit: public endpoints 10 requests/s per IP, bursts up to 15 [CB-EX-RL].
- Server time ``GET /time`` → ``epoch`` (decimal seconds) [CB-TIME-EX]; the ticker's ``time``
  (ISO 8601) is the last trade's time [CB-TICKER-EX].
- Ticker ``/products/{id}/ticker`` → ``bid``, ``ask``, ``price`` (last trade) and ``volume``
  (base units, 24 h) [CB-TICKER-EX].
- No ping and no status API (status page only, UNVERIFIED), so no ``status`` endpoint and no
  announced maintenance (docs/maintenance-sources.md says how a desk could read the status
  page).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from exporter.profiles.base import (
    PUBLIC_ENDPOINTS,
    EndpointSpec,
    ErrorKind,
    LimitRule,
    MalformedBodyError,
    Profile,
    Result,
    Verdict,
    as_float,
    dig,
    split_market,
)
from exporter.profiles.optional_fields import quote_of

ERROR_CODES: dict[str, ErrorKind] = {
    # Coinbase Exchange has no error codes of its own: the HTTP status is the code.
    "400": ErrorKind.REQUEST,
    "401": ErrorKind.AUTH,
    "403": ErrorKind.AUTH,
    "404": ErrorKind.REQUEST,
    "429": ErrorKind.RATE_LIMIT,
    "500": ErrorKind.INTERNAL,
    "503": ErrorKind.BUSY,
}


class CoinbaseProfile(Profile):
    """Coinbase Exchange (``https://api.exchange.coinbase.com``); product style ``BTC-USD``."""

    name: ClassVar[str] = "coinbase"
    default_symbol: ClassVar[str] = "BTC-USD"
    default_market: ClassVar[str | None] = "BTC/USD"
    default_endpoints: ClassVar[tuple[str, ...]] = ("time", "ticker", "orderbook")
    error_codes: ClassVar[Mapping[str, ErrorKind]] = ERROR_CODES
    limits: ClassVar[tuple[LimitRule, ...]] = (
        LimitRule("public requests per IP", 1.0, 10, PUBLIC_ENDPOINTS, "[CB-EX-RL]"),
    )
    backoff_seconds: ClassVar[Mapping[Result, float]] = {
        Result.RATE_LIMITED: 5.0,  # a lazy-fill token bucket refilling every second [CB-EX-RL]
        Result.BANNED: 120.0,  # no IP ban documented (UNVERIFIED); be conservative
    }

    @classmethod
    def rest_symbol(cls, market: str) -> str:
        """Coinbase spells products ``BTC-USD`` [CB-TICKER].

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        base, quote = split_market(market)
        return f"{base}-{quote}"

    def endpoint_specs(self, symbol: str) -> dict[str, EndpointSpec]:
        """Return time, ticker and orderbook (level 1: best bid/ask)."""
        return {
            "time": EndpointSpec("time", "/time"),
            "ticker": EndpointSpec("ticker", f"/products/{symbol}/ticker"),
            "orderbook": EndpointSpec("orderbook", f"/products/{symbol}/book", {"level": "1"}),
        }

    def check_envelope(self, endpoint: str, status: int, body: Any) -> Verdict | None:
        """Report ``{"message": ...}`` on an error status as ``api_error`` with the HTTP status
        as code [COINCISE-CB network_connectivity.md]."""
        if status >= 400 and isinstance(body, dict) and "message" in body:
            return self.verdict_for_code(str(status), str(body["message"]))
        return None

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate each endpoint's documented fields [CB-TIME-EX, CB-TICKER-EX]; a ticker's
        verdict carries its quote (bid, ask, last trade price, 24 h base volume)."""
        if endpoint == "time":
            epoch = as_float(dig(body, "epoch"), "epoch")
            return Verdict(Result.OK, server_time=epoch)
        if endpoint == "ticker":
            last = dig(body, "price")
            as_float(last, "price")
            # The quote's extras are optional: a missing or malformed one is None [CB-TICKER-EX].
            quote = quote_of(body.get("bid"), body.get("ask"), last, body.get("volume"))
            return Verdict(Result.OK, data_time=parse_iso8601(dig(body, "time")), quote=quote)
        if endpoint == "orderbook":
            dig(body, "bids")
            dig(body, "asks")
            return Verdict(Result.OK)
        return Verdict(Result.OK)


def parse_iso8601(value: Any) -> float:
    """Parse Coinbase's ISO 8601 UTC time (``2020-03-20T00:22:57.833897Z``) to epoch seconds.

    Raises:
        MalformedBodyError: not such a timestamp.
    """
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise MalformedBodyError(f"time is not ISO 8601: {str(value)[:40]!r}") from exc
