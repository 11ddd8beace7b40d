"""OKX v5 public REST API profile.

Facts (``shared/reference/exchange-api-facts.md`` §3, citing okx.com docs-v5 [OKX-MD],
[OKX-ERR], [OKX-STATUS], [OKX-TIME] and ccxt [CCXT-OKX]):

- Envelope ``{"code": "0", "msg": "", "data": [...]}``; ``code`` is a string, ``"0"`` success.
- ``50011`` rate limit (HTTP 200 or 429); ``50013`` system busy (429, yet busy rather than
  rate-limited: :attr:`OkxProfile.codes_over_status`); ``50001`` service temporarily
  unavailable (503; ccxt OnMaintenance); ``50004`` endpoint timeout; ``50026`` system error;
  ``50102``/``50112`` timestamp; ``5010x``/``5011x`` auth [OKX-ERR, CCXT-OKX]. An error body
  without ``code`` is recognised by its documented message (:data:`MESSAGE_RULES`).
- Limits per endpoint and IP: time 10 requests / 2 s, status 1 / 5 s, ticker 20 / 2 s,
  books 40 / 2 s [OKX-TIME, OKX-STATUS, OKX-MD].
- Server time ``/api/v5/public/time`` → ``data[0].ts`` (ms, string) [OKX-TIME]; ticker and book
  carry ``ts`` (data generation, ms string) [OKX-MD].
- Status ``/api/v5/system/status`` → any ``data[].state == "ongoing"`` is maintenance [OKX-STATUS].
  Without a ``state`` filter it lists the ``scheduled``, ``ongoing`` and ``pre_open`` entries,
  each with ``begin``/``end`` (ms strings) [OKX-STATUS, CCXT-OKX]: the announced maintenance
  (``announces_maintenance``).
- Ticker ``/api/v5/market/ticker`` → ``data[0]``: ``bidPx``, ``askPx``, ``last`` and
  ``vol24h`` [OKX-MD] (for SPOT, base-currency units; the facts give no unit: UNVERIFIED).
- No rate-limit usage headers documented; no ping endpoint (both UNVERIFIED absences).
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
    Result,
    Verdict,
    as_float,
    dig,
    split_market,
    status_verdict,
)
from exporter.profiles.optional_fields import announced_window, quote_of

ANNOUNCED_STATES: frozenset[str] = frozenset({"scheduled", "ongoing", "pre_open"})
"""System-status states of maintenance that is not over [OKX-STATUS]."""

ERROR_CODES: dict[str, ErrorKind] = {
    # Codes and HTTP statuses of docs-v5 #error-code-rest-api-public [OKX-ERR]; ccxt's
    # exception mapping [CCXT-OKX] where noted.
    "50001": ErrorKind.MAINTENANCE,  # 503 service temporarily unavailable (ccxt OnMaintenance)
    "50004": ErrorKind.BUSY,  # 400 endpoint request timeout
    "50011": ErrorKind.RATE_LIMIT,  # 200 or 429 rate limit reached
    "50013": ErrorKind.BUSY,  # 429 systems are busy (ccxt ExchangeNotAvailable)
    "50014": ErrorKind.REQUEST,  # parameter can't be empty
    "50026": ErrorKind.INTERNAL,  # 500 system error
    "50030": ErrorKind.AUTH,  # no permission for this endpoint
    "50061": ErrorKind.RATE_LIMIT,  # sub-account order rate limit
    "50100": ErrorKind.AUTH,  # API frozen
    "50101": ErrorKind.AUTH,  # key does not match environment
    "50102": ErrorKind.TIMESTAMP,  # 401 timestamp request expired
    "50105": ErrorKind.AUTH,  # passphrase incorrect
    "50110": ErrorKind.AUTH,  # IP not in whitelist
    "50111": ErrorKind.AUTH,  # invalid OK-ACCESS-KEY
    "50112": ErrorKind.TIMESTAMP,  # 401 invalid OK-ACCESS-TIMESTAMP
    "50113": ErrorKind.AUTH,  # invalid signature
    "50120": ErrorKind.AUTH,  # key lacks permission
    "51001": ErrorKind.REQUEST,  # instrument ID does not exist
}

MESSAGE_RULES: tuple[MessageRule, ...] = (
    # Messages of [OKX-ERR], for an error body that carries ``msg`` without ``code``.
    MessageRule("rate limit reached", ErrorKind.RATE_LIMIT, "50011", "[OKX-ERR] 50011"),
    MessageRule("too many requests", ErrorKind.RATE_LIMIT, "50011", "[OKX-ERR] 50011"),
    MessageRule("maximum order rate limit", ErrorKind.RATE_LIMIT, "50061", "[OKX-ERR] 50061"),
    MessageRule("systems are busy", ErrorKind.BUSY, "50013", "[OKX-ERR] 50013"),
    MessageRule("service temporarily unavailable", ErrorKind.MAINTENANCE, "50001",
                "[OKX-ERR] 50001"),
    MessageRule("api endpoint request timeout", ErrorKind.BUSY, "50004", "[OKX-ERR] 50004"),
    MessageRule("system error", ErrorKind.INTERNAL, "50026", "[OKX-ERR] 50026"),
    MessageRule("timestamp request expired", ErrorKind.TIMESTAMP, "50102", "[OKX-ERR] 50102"),
    MessageRule("invalid ok-access-timestamp", ErrorKind.TIMESTAMP, "50112", "[OKX-ERR] 50112"),
)  # fmt: skip
"""Documented messages → meaning, for error bodies without a ``code``."""


class OkxProfile(Profile):
    """OKX v5 (``https://www.okx.com``); instrument style ``BTC-USDT``."""

    name: ClassVar[str] = "okx"
    default_symbol: ClassVar[str] = "BTC-USDT"
    default_market: ClassVar[str | None] = "BTC/USDT"
    default_endpoints: ClassVar[tuple[str, ...]] = ("time", "status", "ticker", "orderbook")
    error_codes: ClassVar[Mapping[str, ErrorKind]] = ERROR_CODES
    message_rules: ClassVar[tuple[MessageRule, ...]] = MESSAGE_RULES
    # 50013 "Systems are busy" comes with HTTP 429 but is the exchange's load, not our rate
    # [OKX-ERR, CCXT-OKX ExchangeNotAvailable].
    codes_over_status: ClassVar[frozenset[str]] = frozenset({"50013"})
    announces_maintenance: ClassVar[bool] = True
    limits: ClassVar[tuple[LimitRule, ...]] = (
        LimitRule("GET /api/v5/public/time per IP", 2.0, 10, frozenset({"time"}), "[OKX-TIME]"),
        LimitRule("GET /api/v5/system/status", 5.0, 1, frozenset({"status"}), "[OKX-STATUS]"),
        LimitRule("GET /api/v5/market/ticker per IP", 2.0, 20, frozenset({"ticker"}),
                  "[OKX-MD]"),
        LimitRule("GET /api/v5/market/books per IP", 2.0, 40, frozenset({"orderbook"}),
                  "[OKX-MD]"),
    )  # fmt: skip
    backoff_seconds: ClassVar[Mapping[Result, float]] = {
        Result.RATE_LIMITED: 10.0,  # limits are per 2 s or 5 s windows [OKX-MD, OKX-STATUS]
        Result.BANNED: 120.0,  # no IP ban documented (UNVERIFIED); be conservative
    }

    @classmethod
    def rest_symbol(cls, market: str) -> str:
        """OKX spells instruments ``BTC-USDT`` [OKX-MD].

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        base, quote = split_market(market)
        return f"{base}-{quote}"

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
        return self.verdict_for_code(code, str(body.get("msg", "")))

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate each endpoint's ``data`` fields [OKX-TIME, OKX-STATUS, OKX-MD]; a ticker's
        verdict carries its quote, a status verdict the next announced window not yet over
        (entries in :data:`ANNOUNCED_STATES`, ``begin``/``end`` in ms)."""
        if endpoint == "time":
            server_ms = as_float(dig(body, "data", 0, "ts"), "data[0].ts")
            return Verdict(Result.OK, server_time=server_ms / 1000.0)
        if endpoint == "status":
            items = dig(body, "data")
            ongoing = [i for i in items if isinstance(i, dict) and i.get("state") == "ongoing"]
            # A correct answer either way: an ``ongoing`` record is maintenance, a state (not
            # a failure) [OKX-STATUS]. Market data failing meanwhile (503 ``50001``) stays
            # ``maintenance`` via the code table.
            if ongoing:
                verdict = status_verdict(True, str(ongoing[0].get("title", "")))
            else:
                verdict = status_verdict(False)
            verdict.scheduled_maintenance = announced_window(items, ANNOUNCED_STATES)
            return verdict
        if endpoint == "ticker":
            last = dig(body, "data", 0, "last")
            as_float(last, "data[0].last")
            generated_ms = as_float(dig(body, "data", 0, "ts"), "data[0].ts")
            ticker = body["data"][0]
            # The quote's extras are optional: a missing or malformed one is None [OKX-MD].
            quote = quote_of(ticker.get("bidPx"), ticker.get("askPx"), last, ticker.get("vol24h"))
            return Verdict(Result.OK, data_time=generated_ms / 1000.0, quote=quote)
        if endpoint == "orderbook":
            dig(body, "data", 0, "asks")
            dig(body, "data", 0, "bids")
            generated_ms = as_float(dig(body, "data", 0, "ts"), "data[0].ts")
            return Verdict(Result.OK, data_time=generated_ms / 1000.0)
        return Verdict(Result.OK)
