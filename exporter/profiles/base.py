"""The interface every exchange profile implements, and the shared classification flow.

A profile knows one exchange's public REST API: which paths the probe endpoints map to, what
each request costs in request weight, how success and errors are signalled (HTTP status and the
exchange's own error envelope), where server time lives and in what unit, and how the status
endpoint reports maintenance. The prober (``exporter.prober``) does the transport; a profile only
reads a finished HTTP response and returns a :class:`Verdict`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urlencode

from exchange_common.retry_after import parse_retry_after as parse_retry_after_value


class Result(StrEnum):
    """The closed set of probe outcomes, the ``result`` label of ``exchange_api_requests_total``.

    Exactly one is assigned to every probe:

    - ``ok``: transport, HTTP and body all fine.
    - ``timeout``: no complete answer within the endpoint's timeout.
    - ``dns_error``: the exchange's host (or the egress proxy's) did not resolve.
    - ``tls_error``: the TLS handshake failed (untrusted, expired or misnamed certificate, a
      peer that does not speak TLS, a reset mid-handshake — a TLS-inspecting middlebox).
    - ``connect_error``: any other transport failure (refused, unreachable, reset, a proxy
      that refused ``CONNECT``, an answer that is not HTTP or closed mid-response).
    - ``http_error``: an HTTP error status with nothing more specific in the body.
    - ``rate_limited``: the exchange says we (our IP) are over its limit (e.g. HTTP 429).
    - ``banned``: the exchange has banned our IP (Binance HTTP 418, Kraken lockout).
    - ``api_error``: the exchange's own error envelope reports a failure.
    - ``bad_response``: the body is not what the endpoint documents (not JSON, fields missing).
    - ``maintenance``: the endpoint failed with the exchange's maintenance answer (e.g. OKX
      ``50001`` on market data, Kraken ``EService:Market in cancel_only mode``). A status
      endpoint that correctly reports maintenance is ``ok`` with :attr:`Verdict.maintenance`
      True: it answered as documented, and maintenance is a state of the exchange (the
      ``exchange_maintenance`` gauge), not a failed probe.
    """

    OK = "ok"
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    DNS_ERROR = "dns_error"
    TLS_ERROR = "tls_error"
    HTTP_ERROR = "http_error"
    RATE_LIMITED = "rate_limited"
    BANNED = "banned"
    API_ERROR = "api_error"
    BAD_RESPONSE = "bad_response"
    MAINTENANCE = "maintenance"


ENDPOINT_NAMES: tuple[str, ...] = ("ping", "time", "status", "ticker", "orderbook")
"""Probe endpoint names shared by profiles, metrics, rules and the simulator's fault API."""

PUBLIC_ENDPOINTS: frozenset[str] = frozenset(ENDPOINT_NAMES)
"""The public endpoints, for a :class:`LimitRule` that covers public calls only (key checks,
``api_key``, go to private endpoints with limits of their own)."""


class ErrorKind(StrEnum):
    """What an exchange's documented error code means, as a profile's code table records it.

    ``rate_limit`` → result ``rate_limited``; ``ban`` → ``banned``; ``maintenance`` →
    ``maintenance``; every other kind → ``api_error``.
    """

    RATE_LIMIT = "rate_limit"
    BAN = "ban"
    TIMESTAMP = "timestamp"
    AUTH = "auth"
    BUSY = "busy"
    MAINTENANCE = "maintenance"
    REQUEST = "request"
    INTERNAL = "internal"

    @property
    def result(self) -> Result:
        """The probe result this kind of error produces."""
        return _KIND_RESULT.get(self, Result.API_ERROR)


_KIND_RESULT = {
    ErrorKind.RATE_LIMIT: Result.RATE_LIMITED,
    ErrorKind.BAN: Result.BANNED,
    ErrorKind.MAINTENANCE: Result.MAINTENANCE,
}


@dataclass(frozen=True, slots=True)
class MessageRule:
    """A documented error message that identifies an error when the body carries no code.

    Attributes:
        needle: a lowercase fragment of the documented message text, matched as a substring
            of the (capped, lowercased) message.
        kind: what the message means.
        code: the code the documentation pairs with the message (reported as the verdict's
            ``error_code``), or None when the exchange identifies the error by text alone.
        source: the exchange documentation the message comes from.
    """

    needle: str
    kind: ErrorKind
    code: str | None = None
    source: str = ""


def match_message(rules: tuple[MessageRule, ...], message: str) -> MessageRule | None:
    """The first rule whose needle occurs in ``message`` (first 200 characters, lowercased).

    Rules are ordered: a more specific needle (a ban) goes before a more general one (a rate
    limit). The scan is a handful of substring tests on at most 200 characters.
    """
    if not rules or not message:
        return None
    text = message[:200].lower()
    for rule in rules:
        if rule.needle in text:
            return rule
    return None


@dataclass(frozen=True, slots=True)
class LimitRule:
    """A documented request limit that probes count against.

    Attributes:
        name: the exchange's name for the limit (e.g. ``REQUEST_WEIGHT``).
        window_seconds: the limit's window.
        limit: weight (or requests, where every request costs 1) allowed per window.
        endpoints: the endpoints that share this limit; None means all of the profile's.
        source: where the fact comes from (a tag of shared/reference/exchange-api-facts.md).
    """

    name: str
    window_seconds: float
    limit: float
    endpoints: frozenset[str] | None = None
    source: str = ""

    def applies_to(self, endpoint: str) -> bool:
        """Whether probes of ``endpoint`` count against this limit."""
        return self.endpoints is None or endpoint in self.endpoints


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One probe endpoint of a profile.

    Attributes:
        name: one of :data:`ENDPOINT_NAMES`.
        path: the exchange's real path, appended to the configured ``base_url``.
        params: query parameters, already in the exchange's spelling.
        weight: request weight this call costs against the exchange's limit (1 where the
            exchange counts requests rather than weight).
    """

    name: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    weight: int = 1

    def url(self, base_url: str) -> str:
        """Return the full URL: ``base_url`` without trailing slash + path + query string."""
        query = f"?{urlencode(dict(self.params))}" if self.params else ""
        return f"{base_url.rstrip('/')}{self.path}{query}"


@dataclass(frozen=True, slots=True)
class RateLimitReading:
    """A rate-limit usage reading from response headers.

    Attributes:
        window: the limit's window in Prometheus duration style (``"1m"``, ``"1s"``).
        used: weight or requests used in the current window.
        limit: the limit for that window, or None when the headers don't carry it.
    """

    window: str
    used: float
    limit: float | None


@dataclass(frozen=True, slots=True)
class TickerQuote:
    """Market data a REST ticker body carries, in quote-currency units (volume in base units).

    Attributes:
        bid / ask / last: best bid, best ask and last trade price, None where the body has none.
        volume_24h: rolling 24 h traded base volume, None where the body has none.
    """

    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    volume_24h: float | None = None


@dataclass(slots=True)
class Verdict:
    """What a profile concluded from one HTTP response.

    Attributes:
        result: the probe outcome.
        error_code: the exchange's own error code as a string (Binance ``code``, Bybit
            ``retCode``, OKX ``code``, Kraken error string), or None.
        message: a short human-readable reason (exchange message, capped), or "".
        server_time: exchange server time in Unix epoch seconds, when the body carries it.
        server_time_resolution: the resolution of ``server_time`` in seconds (0.001 for ms).
        maintenance: True/False when the status endpoint reported it, None otherwise.
            A status answer reporting maintenance is result ``ok`` with True, its
            reason (e.g. the announcement title) in ``message``.
        retry_after: seconds the exchange asks us to wait (``Retry-After``, or a reset
            timestamp header), or None.
        data_time: epoch seconds of the market data in a ticker/order-book body (last update
            or generation time), when the exchange gives one.
        error_kind: what ``error_code`` means per the profile's code table, or None.
        quote: a ticker body's prices and 24 h volume (:class:`TickerQuote`), or None.
        scheduled_maintenance: from a status body that announces maintenance: the next
            window not yet over as ``(start, end)`` Unix seconds; None when the body announces
            none or the endpoint cannot tell. The prober publishes it only from status
            endpoints whose profile sets :attr:`Profile.announces_maintenance`.
    """

    result: Result
    error_code: str | None = None
    message: str = ""
    server_time: float | None = None
    server_time_resolution: float = 0.001
    maintenance: bool | None = None
    retry_after: float | None = None
    data_time: float | None = None
    error_kind: ErrorKind | None = None
    quote: TickerQuote | None = None
    scheduled_maintenance: tuple[float, float] | None = None


class MalformedBodyError(Exception):
    """Raised inside a profile when a body lacks a documented field; becomes ``bad_response``."""


def split_market(market: str) -> tuple[str, str]:
    """Split a unified ``BASE/QUOTE`` market into ``(BASE, QUOTE)``.

    Raises:
        ValueError: ``market`` is not two non-empty parts joined by one ``/``.
    """
    base, sep, quote = market.partition("/")
    if not sep or not base or not quote or "/" in quote:
        raise ValueError(f"market {market!r} is not BASE/QUOTE (e.g. BTC/USDT)")
    return base, quote


def dig(body: Any, *keys: str | int) -> Any:
    """Return ``body[k1][k2]...``; raise :class:`MalformedBodyError` naming the missing path."""
    current = body
    for key in keys:
        try:
            current = current[key]
        except (KeyError, IndexError, TypeError) as exc:
            path = ".".join(str(k) for k in keys)
            raise MalformedBodyError(f"missing {path}") from exc
    return current


def as_float(value: Any, what: str) -> float:
    """Convert a JSON number or numeric string to float, else :class:`MalformedBodyError`."""
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise MalformedBodyError(f"{what} is not a number: {str(value)[:40]!r}") from exc


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Read ``Retry-After`` as delay seconds (RFC 9110 §10.2.3 delay-seconds form), or None.

    Exchanges send only the delay-seconds form; a negative or unreadable value is ``None``.
    """
    raw = headers.get("retry-after")
    if raw is None or raw.strip().startswith("-"):
        return None
    return parse_retry_after_value(raw, http_date=False)


def status_verdict(maintenance: bool, message: str = "") -> Verdict:
    """The verdict of a status endpoint that answered as documented.

    Always ``ok``: the endpoint works, whatever state it reports. Maintenance is carried by
    ``maintenance`` (the prober sets the ``exchange_maintenance`` gauge from it) and its reason,
    capped at 200 characters, by ``message``; failing answers with a maintenance code stay
    ``maintenance`` (:attr:`ErrorKind.MAINTENANCE`).
    """
    return Verdict(Result.OK, message=message[:200] if maintenance else "", maintenance=maintenance)


class Profile(ABC):
    """One exchange's public REST API, as the prober needs to know it.

    Subclasses set the class attributes and implement :meth:`endpoint_specs`,
    :meth:`check_envelope` and :meth:`read_endpoint`. :meth:`classify` is the shared flow:

    1. HTTP 418 → ``banned``; 429 → ``rate_limited`` (plus profile-specific statuses from
       :attr:`rate_limit_statuses`), with ``Retry-After`` captured; unless the body's code is
       one of :attr:`codes_over_status`, which goes on to step 3.
    2. The body must be JSON, else ``bad_response`` (or ``http_error`` on an error status:
       gateways answer 5xx with HTML).
    3. :meth:`check_envelope` reads the exchange's error envelope and may return a verdict.
    4. An HTTP error status whose body carries a documented message but no code →
       :meth:`verdict_for_message`; any other HTTP error status → ``http_error``.
    5. :meth:`read_endpoint` validates the endpoint's documented fields and extracts server
       time and the maintenance flag (a status endpoint reporting maintenance is ``ok``, see
       :func:`status_verdict`).
    """

    name: ClassVar[str]
    default_symbol: ClassVar[str]
    default_market: ClassVar[str | None] = None
    """The default market as a unified ``BASE/QUOTE`` name (ccxt spelling); None where the
    profile cannot map unified markets (generic)."""
    default_endpoints: ClassVar[tuple[str, ...]]
    rate_limit_statuses: ClassVar[frozenset[int]] = frozenset({429})
    ban_statuses: ClassVar[frozenset[int]] = frozenset({418})
    error_codes: ClassVar[Mapping[str, ErrorKind]] = {}
    """Documented error codes → meaning; codes outside it are exported as ``other``."""
    message_rules: ClassVar[tuple[MessageRule, ...]] = ()
    """Documented error messages, for error answers (HTTP status ≥ 400) whose body carries a
    message but no code (``{"msg": ...}``, ``{"message": ...}``); see
    :meth:`verdict_for_message`."""
    codes_over_status: ClassVar[frozenset[str]] = frozenset()
    """Documented codes whose meaning overrides a rate-limit HTTP status: the exchange sends
    them with 429 but documents them as something else (OKX ``50013`` "Systems are busy")."""
    limits: ClassVar[tuple[LimitRule, ...]] = ()
    """The documented limits the exporter's own request budget is checked against."""
    announces_maintenance: ClassVar[bool] = False
    """Whether the status endpoint's answer lists scheduled maintenance in a machine-readable
    form (OKX, Bybit, Kraken): a status verdict without :attr:`Verdict.scheduled_maintenance`
    then means nothing is announced."""
    backoff_seconds: ClassVar[Mapping[Result, float]] = {
        Result.RATE_LIMITED: 60.0,
        Result.BANNED: 120.0,
    }
    """How long to stop probing the exchange after a rate-limit or ban answer that carries no
    ``Retry-After``; profiles set the documented lengths."""

    def fingerprint(self, endpoint: str) -> object:
        """What identifies this profile's handling of ``endpoint`` (a reload restarts the probe
        loop when it changes)."""
        return self.name

    @classmethod
    def rest_symbol(cls, market: str) -> str:
        """The exchange's REST spelling of a unified ``BASE/QUOTE`` market (``BTC/USDT`` →
        ``BTCUSDT`` on Binance); the default has no mapping.

        Raises:
            ValueError: the profile has no symbol mapping (generic), or ``market`` is not
                ``BASE/QUOTE``.
        """
        raise ValueError(
            f"profile {cls.name!r} has no symbol mapping for unified markets; "
            "write the symbol into the endpoints' paths instead of using markets"
        )

    def error_label(self, code: str | None) -> str | None:
        """Return the ``code`` label for ``exchange_api_errors_total``: the code itself when
        the profile documents it, ``other`` otherwise, None when there is no code."""
        if code is None:
            return None
        return code if code in self.error_codes else "other"

    def verdict_for_code(self, code: str, message: str) -> Verdict:
        """Build the verdict of an error envelope from the profile's code table."""
        kind = self.error_codes.get(code)
        result = kind.result if kind is not None else Result.API_ERROR
        return Verdict(result, code, message[:200], error_kind=kind)

    def verdict_for_message(self, message: str) -> Verdict | None:
        """Build the verdict of a code-less error body from :attr:`message_rules`, or None when
        no documented message matches."""
        rule = match_message(self.message_rules, message)
        if rule is None:
            return None
        return Verdict(rule.kind.result, rule.code, message[:200], error_kind=rule.kind)

    @abstractmethod
    def endpoint_specs(self, symbol: str) -> dict[str, EndpointSpec]:
        """Return every endpoint this profile supports, keyed by endpoint name."""

    def check_envelope(self, endpoint: str, status: int, body: Any) -> Verdict | None:
        """Return a verdict when the body's error envelope reports a failure, else None."""
        return None

    @abstractmethod
    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Validate a successful body and extract facts.

        Raises:
            MalformedBodyError: a documented field is missing or malformed.
        """

    def rate_limits(self, headers: Mapping[str, str]) -> list[RateLimitReading]:
        """Return the rate-limit usage the response headers report (none by default)."""
        return []

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        """Seconds the response asks us to wait; ``Retry-After`` by default."""
        return parse_retry_after(headers)

    def classify(
        self, endpoint: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> Verdict:
        """Classify one HTTP response into exactly one :class:`Result`.

        Args:
            endpoint: the endpoint name probed.
            status: HTTP status code.
            headers: response headers (case-insensitive mapping, e.g. ``httpx.Headers``).
            body: raw response body.

        Returns:
            The verdict; never raises for any input.
        """
        retry_after = self.retry_after(headers)
        parsed: Any
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = _NOT_JSON
        if status in self.ban_statuses or status in self.rate_limit_statuses:
            banned = status in self.ban_statuses
            code = _code(parsed)
            overridden = None if banned else self._over_status(endpoint, status, parsed, code)
            if overridden is not None:
                if overridden.retry_after is None:
                    overridden.retry_after = retry_after
                return overridden
            return Verdict(
                Result.BANNED if banned else Result.RATE_LIMITED,
                code,
                _message(parsed) or _text(body),
                retry_after=retry_after,
                error_kind=ErrorKind.BAN if banned else ErrorKind.RATE_LIMIT,
            )
        if parsed is _NOT_JSON:
            result = Result.HTTP_ERROR if status >= 400 else Result.BAD_RESPONSE
            return Verdict(result, message=f"HTTP {status}, body is not JSON")
        envelope = self.check_envelope(endpoint, status, parsed)
        if envelope is not None:
            if envelope.retry_after is None:
                envelope.retry_after = retry_after
            return envelope
        if status >= 400:
            message = _message(parsed)
            by_message = self.verdict_for_message(message)
            if by_message is not None:
                by_message.retry_after = retry_after
                return by_message
            return Verdict(Result.HTTP_ERROR, message=f"HTTP {status} {message}".strip())
        try:
            return self.read_endpoint(endpoint, parsed)
        except MalformedBodyError as exc:
            return Verdict(Result.BAD_RESPONSE, message=str(exc))
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            # A body shaped unlike the documentation in a way read_endpoint did not anticipate.
            return Verdict(Result.BAD_RESPONSE, message=f"unexpected body shape ({exc})"[:200])

    def _over_status(
        self, endpoint: str, status: int, parsed: Any, code: str | None
    ) -> Verdict | None:
        """The verdict of a rate-limit status whose body's code (or, without a code, whose
        documented message) is one of :attr:`codes_over_status`, else None."""
        if not self.codes_over_status:
            return None
        if code is not None:
            if code not in self.codes_over_status:
                return None
            return self.check_envelope(endpoint, status, parsed)
        message = _message(parsed)
        rule = match_message(self.message_rules, message)
        if rule is None or rule.code not in self.codes_over_status:
            return None
        return self.verdict_for_message(message)


_NOT_JSON: Any = object()


def _message(parsed: Any) -> str:
    if isinstance(parsed, dict):
        for key in ("msg", "message", "retMsg", "error"):
            if key in parsed:
                return str(parsed[key])[:200]
    return ""


def _text(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").strip()


def _code(parsed: Any) -> str | None:
    if isinstance(parsed, dict):
        for key in ("code", "retCode"):
            if key in parsed:
                return str(parsed[key])
    return None
