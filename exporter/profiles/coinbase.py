"""Coinbase Exchange public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §4, citing docs.cdp.coinbase.com
[CB-TICKER], [CB-EX-RL] and client-library copies of the documented examples [CB-TIME-EX],
[CB-TICKER-EX], [COINCISE-CB]):

- Plain HTTP status signalling; error body ``{"message": ...}``; 400 bad request, 401 invalid
  key, 403 forbidden, 404, 500; 429 on rate limit [COINCISE-CB network_connectivity.md].
  Advanced Trade / App error ids ``rate_limit_exceeded``/``resource_exhausted`` (429),
  ``internal_server_error`` (500), ``authentication_error`` with "request timestamp expired"
  [CCXT-CB, CB-APP-RL]. No maintenance or IP-ban answer is documented (UNVERIFIED), so a
  Coinbase REST answer is never ``maintenance``.
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
    MessageRule,
    Profile,
    Result,
    Verdict,
    as_float,
    dig,
    match_message,
    split_market,
)
from exporter.profiles.optional_fields import quote_of

ERROR_CODES: dict[str, ErrorKind] = {
    # Coinbase Exchange has no error codes of its own: the HTTP status is the code
    # [COINCISE-CB network_connectivity.md, rate_limits.md].
    "400": ErrorKind.REQUEST,
    "401": ErrorKind.AUTH,
    "403": ErrorKind.AUTH,
    "404": ErrorKind.REQUEST,
    "429": ErrorKind.RATE_LIMIT,
    "500": ErrorKind.INTERNAL,
    "503": ErrorKind.BUSY,  # not in the documented list (UNVERIFIED); kept as busy
}

ERROR_IDS: dict[str, ErrorKind] = {
    # Advanced Trade / Coinbase App error ids [CCXT-CB, CB-APP-RL].
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT,  # 429
    "resource_exhausted": ErrorKind.RATE_LIMIT,  # 429
    "internal_server_error": ErrorKind.INTERNAL,  # 500
    "authentication_error": ErrorKind.AUTH,
    "unauthorized": ErrorKind.AUTH,
    "invalid_scope": ErrorKind.AUTH,  # 403
}
"""Documented error ids → meaning (``{"errors": [{"id": ...}]}`` or ``{"error": ...}``)."""

MESSAGE_RULES: tuple[MessageRule, ...] = (
    # Errors Coinbase identifies by message text. The timestamp one goes first: it comes with
    # the id ``authentication_error`` [CCXT-CB].
    MessageRule("request timestamp expired", ErrorKind.TIMESTAMP, None, "[CCXT-CB]"),
    MessageRule("too many requests", ErrorKind.RATE_LIMIT, None, "[COINCISE-CB, CB-APP-RL]"),
)
"""Documented error messages → meaning; they decide before the error id and the HTTP status.

No Coinbase maintenance, cancel-only, post-only or limit-only REST error message is documented
in the sources used ([COINCISE-CB], [CCXT-CB], [CB-APP-RL]; no maintenance or IP-ban answer:
UNVERIFIED), so none is listed: such an answer stays a request error by its HTTP status."""


class CoinbaseProfile(Profile):
    """Coinbase Exchange (``https://api.exchange.coinbase.com``); product style ``BTC-USD``."""

    name: ClassVar[str] = "coinbase"
    default_symbol: ClassVar[str] = "BTC-USD"
    default_market: ClassVar[str | None] = "BTC/USD"
    default_endpoints: ClassVar[tuple[str, ...]] = ("time", "ticker", "orderbook")
    error_codes: ClassVar[Mapping[str, ErrorKind]] = ERROR_CODES
    message_rules: ClassVar[tuple[MessageRule, ...]] = MESSAGE_RULES
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
        """Classify an error body on an error status, the HTTP status as code
        [COINCISE-CB network_connectivity.md]: Exchange ``{"message": ...}``, Advanced Trade
        ``{"errors": [{"id", "message"}]}`` or ``{"error", "error_details", "message"}``
        [CCXT-CB, CB-APP-RL]. The meaning comes from a documented message
        (:data:`MESSAGE_RULES`), else the error id (:data:`ERROR_IDS`), else the status."""
        if status < 400 or not isinstance(body, dict):
            return None
        error_id, message = _error_of(body)
        if message is None and (error_id is None or error_id not in ERROR_IDS):
            return None  # neither a message nor a documented id: nothing more than the status
        text = message or error_id or ""
        code = str(status)
        rule = match_message(self.message_rules, text)
        kind = rule.kind if rule is not None else ERROR_IDS.get(error_id or "")
        if kind is None:
            return self.verdict_for_code(code, text)
        return Verdict(kind.result, code, text[:200], error_kind=kind)

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


def _error_of(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(error id, message)`` of a Coinbase error body, either None where absent."""
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        error_id, message = first.get("id"), first.get("message")
    else:
        error_id, message = body.get("error"), body.get("message")
    return (
        None if error_id is None else str(error_id)[:80],
        None if message is None else str(message)[:200],
    )


def parse_iso8601(value: Any) -> float:
    """Parse Coinbase's ISO 8601 UTC time (``2020-03-20T00:22:57.833897Z``) to epoch seconds.

    Raises:
        MalformedBodyError: not such a timestamp.
    """
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise MalformedBodyError(f"time is not ISO 8601: {str(value)[:40]!r}") from exc
