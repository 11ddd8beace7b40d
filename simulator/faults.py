"""Fault registry and validation for the control API (``POST /_control/faults``).

A fault is scoped to an exchange, optionally narrowed to one endpoint name (``ping``, ``time``,
``status``, ``ticker``, ``orderbook``). At most one fault exists per scope: setting a new one
replaces the old one. For a request to ``(exchange, endpoint)`` the *effective* fault is the
endpoint-scoped one if present, else the exchange-wide one (endpoint ``None``) — faults never
stack. Faults with ``duration_s`` expire by themselves (checked lazily on lookup).

Fault kinds and their parameters (numbers may be int or float unless stated; booleans are
rejected as numbers). What each exchange answers is documented in ``simulator/README.md`` and in
the exchange modules; the per-exchange kinds (†) are validated by the exchange itself.

================ =====================================================================
fault            parameters
================ =====================================================================
``down``         ``mode``: ``"reset"`` (default, TCP RST after reading the request) or
                 ``"hang"`` (never answer)
``reset``        alias of ``down`` + ``mode: "reset"`` (stored and listed as ``down``)
``hang``         alias of ``down`` + ``mode: "hang"`` (stored and listed as ``down``)
``latency``      ``latency_ms`` (required, 0–600000), ``jitter_ms`` (0–600000, default 0,
                 uniform ±, the total delay is clamped at 0)
``slow_body``    headers at once, then the (complete, valid) body in slices:
                 ``bytes_per_second`` (> 0, default 64) and ``interval_ms`` (10–60000,
                 default 1000: one slice of ``bytes_per_second × interval`` bytes per interval,
                 the first one interval after the headers)
``http_error``   ``status`` (required int 400–599), ``body``: ``"json"`` (the exchange's
                 error JSON) or ``"html"`` (CDN gateway page); default ``"html"`` for
                 502/503/504/52x (except OKX 503, documented as JSON code 50001) and for
                 every Kraken status, else ``"json"``
``rate_limited`` † ``retry_after`` (int s; Binance default 30 → ``Retry-After``; Bybit
                 default 1 → ``X-Bapi-Limit-Reset-Timestamp``; OKX/Coinbase only when given,
                 UNVERIFIED header), ``http_status`` (OKX only: 200 or 429, default 429)
``banned``       † Binance (``retry_after`` int s, default 120), Bybit, Kraken; rejected for
                 OKX and Coinbase (no documented IP-ban answer)
``api_error``    † ``code`` (required; Binance/Bybit int, OKX int or digit string, Coinbase
                 int 400–599 = the HTTP status, Kraken full error string such as
                 ``"EService:Unavailable"``), ``http_status`` (override, int 200–599; not
                 Coinbase), ``message`` (override the documented message; not Kraken)
``maintenance``  none; exchange-wide or ``endpoint: "status"`` only; not for Coinbase
``clock_skew``   ``skew_ms`` (required, signed, |x| <= 86400000)
``stale``        ``age_s`` (0–86400) or ``age_ms`` (0–86400000); exactly one is required
``bad_json``     none: HTTP 200, JSON content type, the normal body cut in half (invalid)
``huge_body``    ``size_bytes`` (int 1024–67108864, default 5242880): HTTP 200 with a valid
                 JSON order book of exactly that many bytes, streamed
``none``         none; clears the exchange's faults (all scopes, WebSocket faults
                 included) or one endpoint's fault
================ =====================================================================

WebSocket faults (:data:`WS_FAULT_KINDS`) act on the exchange's simulated WebSocket streams only
(:mod:`simulator.ws`). They are exchange-wide (``endpoint`` must be absent or null) and live in
their own scope: setting one never replaces a REST fault, and REST faults never touch the streams
(except an exchange-wide ``down``, which also refuses and drops WebSocket connections). At most one
WebSocket fault holds per exchange; ``none`` clears it with the rest. ``channel`` (``ticker``,
``trades`` or ``book``) narrows the kinds marked ‡ to one channel.

========================= ============================================================
fault                     parameters and effect
========================= ============================================================
``ws_stall`` ‡            none: connection open, pings/pongs and acks answered, no data
``ws_blackhole``          none: nothing at all (no data, no pongs, no acks, no server
                          pings), TCP stays open
``ws_disconnect``         ``close_code`` (int 1000–1003, 1007–1013 or 3000–4999: the codes
                          a close frame may carry): every live session is closed once with that code
                          when the fault is set, new connections are accepted then closed at
                          once while it holds; without ``close_code`` the TCP connection is
                          dropped without a close frame (what clients report as 1006);
                          ``once`` (bool, default false): only the sessions live when it
                          is set are closed, new connections are served (a server restart
                          behind a load balancer: the reconnect lands on a healthy server)
``ws_lag`` ‡              ``lag_ms`` (required, 0–600000): data frames are delivered that
                          much later; their event times stay the true ones
``ws_gap`` ‡              none: the dialect skips sequence numbers (Binance ``U`` jumps)
``ws_checksum``           none: the dialect sends wrong book checksums; only for exchanges
                          whose books carry one (OKX, Kraken)
``ws_reject`` ‡           none: subscriptions are refused with the documented error
``ws_maintenance_notice`` none: the dialect's maintenance notice is sent once to every
                          session when set and to each new session while it holds
========================= ============================================================

API-key faults (:data:`KEY_FAULT_KINDS`) act on the exchange's signed (private) endpoints only
(:mod:`simulator.keys`): every correctly signed request is answered with the exchange's own
error for that condition, as if the key had been deleted (``key_revoked``), had passed its expiry
(``key_expired``) or were bound to other IPs (``ip_not_allowed``). They are exchange-wide
(``endpoint`` absent or null), live in their own scope (never replacing a REST or WebSocket
fault), and ``key`` (optional string) narrows one to a single API key.

Market faults (:data:`MARKET_FAULT_KINDS`, :mod:`simulator.market_effects`) change the market
the exchange quotes, so REST (tickers, books, 24 h volume) and every WebSocket channel (ticker,
trades, book) show them alike — the exporter reads prices from the stream where one runs and from
the REST ticker elsewhere. They are exchange-wide (``endpoint`` absent or null) and each kind lives
in its own scope (``@market:<kind>``): they compose with each other (an offset plus a crossed
book), never replace a REST, WebSocket or API-key fault, and REST faults never hide them (a
``stale`` fault freezes the market it shows, effects included). Setting a kind again replaces
it; ``none`` on the exchange (or ``DELETE /_control/faults``) ends them. Each starts at the next
100 ms tick and ends at the tick after it is cleared or expires.

========================= ============================================================
fault                     parameters and effect
========================= ============================================================
``price_offset``          ``bps`` (required, signed, −10000 < bps ≤ 10000), ``ramp_s``
                          (0–86400, default 0): every price of the exchange (bid, ask,
                          last, book levels, trade prices) × (1 + bps/10000), reached
                          linearly over ``ramp_s`` from the offset shown when set
``price_spike``           ``bps`` (required, same bounds), ``duration_s`` (required here):
                          a flash move of ``bps`` reached within min(2 s, duration/10),
                          decaying back to 0 at ``duration_s`` (when the fault ends)
``price_freeze``          none: prices (bid, ask, last, book levels) stay those of the
                          tick the fault started at while timestamps, trade and update
                          ids and level quantities move on (a stuck feed or engine)
``volume_spike``          ``ratio`` (required, > 0, ≤ 1000): traded volume × ratio —
                          every trade's size (WebSocket trades, REST last size) and the
                          REST rolling 24 h volume, which grows by (ratio − 1) × the
                          normal rate while it holds and keeps that for 24 h
``book_crossed``          none: the best ask is placed below the best bid (by the usual
                          spread), in REST tickers and books and WebSocket tickers and
                          books alike
========================= ============================================================

Common fields: ``exchange`` (required), ``fault`` (required), ``endpoint`` (optional string or
null), ``duration_s`` (optional, > 0 and <= 86400; not allowed with ``none``). Unknown fields are
rejected so typos (``latency`` instead of ``latency_ms``) do not silently do nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.fault_params import FaultError, fault_number, market_params, stale_params, ws_params
from simulator.market_effects import MARKET_FAULT_KINDS, MarketEffects
from simulator.specs import check_fields, choice, text

__all__ = [
    "CHECKSUM_EXCHANGES",
    "EXCHANGE_KINDS",
    "FAULT_KINDS",
    "KEY_FAULT_KINDS",
    "KEY_SCOPE",
    "MARKET_FAULT_KINDS",
    "MARKET_SCOPE",
    "WS_CHANNELS",
    "WS_FAULT_KINDS",
    "WS_SCOPE",
    "Fault",
    "FaultError",
    "FaultRegistry",
    "ParamValidator",
]

FAULT_KINDS: tuple[str, ...] = (
    "down",
    "reset",
    "hang",
    "latency",
    "slow_body",
    "http_error",
    "rate_limited",
    "banned",
    "api_error",
    "maintenance",
    "clock_skew",
    "stale",
    "bad_json",
    "huge_body",
    "ws_stall",
    "ws_blackhole",
    "ws_disconnect",
    "ws_lag",
    "ws_gap",
    "ws_checksum",
    "ws_reject",
    "ws_maintenance_notice",
    "key_revoked",
    "key_expired",
    "ip_not_allowed",
    *MARKET_FAULT_KINDS,
    "none",
)

WS_FAULT_KINDS: tuple[str, ...] = tuple(k for k in FAULT_KINDS if k.startswith("ws_"))
"""The WebSocket fault kinds (see the module docstring)."""

KEY_FAULT_KINDS: tuple[str, ...] = ("key_revoked", "key_expired", "ip_not_allowed")
"""The API-key fault kinds (see the module docstring)."""

KEY_SCOPE = "@keys"
"""Registry key under which an exchange's API-key fault is stored (its own scope, like
:data:`WS_SCOPE`)."""

MARKET_SCOPE = "@market:"
"""Prefix of the registry key (in place of an endpoint name) under which a market-model fault
is stored, followed by its kind (``@market:price_offset``): each market kind has its own scope,
so market faults compose with each other and never replace a REST, WebSocket or API-key fault."""

WS_CHANNELS: tuple[str, ...] = ("ticker", "trades", "book")
"""Channel names a ``channel`` field may narrow a WebSocket fault to."""

WS_SCOPE = "@websocket"
"""Registry key (in place of an endpoint name) under which an exchange's WebSocket fault is
stored, so it never replaces nor is seen as a REST fault."""

CHECKSUM_EXCHANGES: frozenset[str] = frozenset({"okx", "kraken"})
"""Exchanges whose WebSocket books carry a checksum (OKX CRC32 top 25 [OKX-MD §Checksum],
Kraken CRC32 top 10 [KR-CKS2]); Binance, Bybit and Coinbase books have none."""

EXCHANGE_KINDS: frozenset[str] = frozenset({"rate_limited", "banned", "api_error"})
"""Kinds whose parameters and answers differ per exchange (validated by the exchange)."""

_ALIASES: dict[str, str] = {"reset": "reset", "hang": "hang"}  # alias -> down mode
_MAX_LATENCY_MS = 600_000
_MAX_SKEW_MS = 86_400_000
_MAX_DURATION_S = 86_400
_MAX_BODY_RATE = 1_000_000_000
_MIN_HUGE = 1024
_MAX_HUGE = 64 * 1024 * 1024
_DEFAULT_HUGE = 5 * 1024 * 1024
_GATEWAY_STATUSES = frozenset({502, 503, 504, *range(520, 531)})

_PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "down": ("mode",),
    "reset": (),
    "hang": (),
    "latency": ("latency_ms", "jitter_ms"),
    "slow_body": ("bytes_per_second", "interval_ms"),
    "http_error": ("status", "body"),
    "rate_limited": ("retry_after", "http_status"),
    "banned": ("retry_after",),
    "api_error": ("code", "http_status", "message"),
    "maintenance": (),
    "clock_skew": ("skew_ms",),
    "stale": ("age_s", "age_ms"),
    "bad_json": (),
    "huge_body": ("size_bytes",),
    "ws_stall": ("channel",),
    "ws_blackhole": (),
    "ws_disconnect": ("close_code", "once"),
    "ws_lag": ("lag_ms", "channel"),
    "ws_gap": ("channel",),
    "ws_checksum": (),
    "ws_reject": ("channel",),
    "ws_maintenance_notice": (),
    "key_revoked": ("key",),
    "key_expired": ("key",),
    "ip_not_allowed": ("key",),
    "price_offset": ("bps", "ramp_s"),
    "price_spike": ("bps",),
    "price_freeze": (),
    "volume_spike": ("ratio",),
    "book_crossed": (),
    "none": (),
}
ParamValidator = Callable[[str, Mapping[str, Any]], dict[str, Any]]
"""``(kind, spec) -> params`` for the :data:`EXCHANGE_KINDS` of one exchange; raises
:class:`FaultError` naming the field (see ``Exchange.fault_params``)."""


def _generic_params(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Fallback validator for exchanges that bring none: no rate-limit parameters, no ban,
    ``api_error`` with any int or string ``code``."""
    if kind == "banned":
        raise FaultError(f"fault: 'banned' is not supported for {spec.get('exchange')!r}")
    if kind == "api_error":
        code = spec.get("code")
        if not isinstance(code, int | str) or isinstance(code, bool):
            raise FaultError(f"code: required int or string for fault 'api_error', got {code!r}")
        return {"code": code}
    for name in _PARAM_NAMES[kind]:
        if name in spec:
            raise FaultError(f"{name}: not supported for {spec.get('exchange')!r}")
    return {}


@dataclass(frozen=True, slots=True)
class Fault:
    """One active fault.

    Attributes:
        exchange: exchange name.
        endpoint: endpoint name, or ``None`` for exchange-wide.
        kind: one of :data:`FAULT_KINDS` except ``"none"`` and the aliases ``reset``/``hang``
            (stored as ``down``).
        params: normalised parameters with defaults filled in (see module docstring).
        created_at: wall-clock epoch seconds when the fault was set.
        duration_s: requested lifetime in seconds, or ``None`` for until cleared.
        expires_at: :func:`time.monotonic` deadline, or ``None``.
    """

    exchange: str
    endpoint: str | None
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    duration_s: float | None = None
    expires_at: float | None = None

    def delay_s(self) -> float:
        """For a ``latency`` fault: the delay for one request in seconds (jitter applied)."""
        jitter = self.params.get("jitter_ms", 0)
        ms: float = self.params["latency_ms"] + (random.uniform(-jitter, jitter) if jitter else 0.0)
        return max(ms, 0.0) / 1000.0

    def to_json(self, now_monotonic: float | None = None) -> dict[str, Any]:
        """JSON form: ``{"exchange", "endpoint", "fault", **params, "duration_s"?,
        "remaining_s"?}`` (``remaining_s`` only for expiring faults)."""
        out: dict[str, Any] = {"exchange": self.exchange, "endpoint": self.endpoint}
        out["fault"] = self.kind
        out.update(self.params)
        if self.duration_s is not None and self.expires_at is not None:
            now = time.monotonic() if now_monotonic is None else now_monotonic
            out["duration_s"] = self.duration_s
            out["remaining_s"] = round(max(self.expires_at - now, 0.0), 3)
        return out


class FaultRegistry:
    """Active faults keyed by ``(exchange, endpoint-or-None)``.

    Args:
        endpoints: for each exchange name, the endpoint names it has (from its route table).
        validators: per exchange, the :data:`ParamValidator` for ``rate_limited``, ``banned``
            and ``api_error`` (default: a generic one without bans).
        status_capable: exchanges with a system-status API (default: those with a ``status``
            endpoint; Coinbase Exchange has none).
        json_statuses: per exchange, gateway statuses (502/503/504/52x) for which the exchange
            documents its own JSON error, so ``http_error`` defaults to ``body: "json"`` (OKX 503
            code 50001 [OKX-ERR]).
        html_errors: exchanges whose every non-200 answer comes from the CDN, so ``http_error``
            defaults to ``body: "html"`` for all statuses (Kraken [KR-REST-INTRO]).
        effects: the market's :class:`~simulator.market_effects.MarketEffects` timeline, which
            the market-model faults drive (default: a private one nobody reads).
    """

    def __init__(
        self,
        endpoints: Mapping[str, Collection[str]],
        *,
        validators: Mapping[str, ParamValidator] | None = None,
        status_capable: Collection[str] | None = None,
        json_statuses: Mapping[str, Collection[int]] | None = None,
        html_errors: Collection[str] = ("kraken",),
        effects: MarketEffects | None = None,
    ) -> None:
        """Create an empty registry for the given exchanges (see class docstring)."""
        self._json_statuses = {ex: frozenset(v) for ex, v in (json_statuses or {}).items()}
        self._html_errors = frozenset(html_errors)
        self._endpoints = {ex: frozenset(eps) for ex, eps in endpoints.items()}
        self._validators = dict(validators or {})
        self._status_capable = frozenset(
            status_capable
            if status_capable is not None
            else [ex for ex, eps in self._endpoints.items() if "status" in eps]
        )
        self._faults: dict[tuple[str, str | None], Fault] = {}
        self.effects = effects if effects is not None else MarketEffects()

    @property
    def exchanges(self) -> frozenset[str]:
        """Names of the exchanges faults can be set on."""
        return frozenset(self._endpoints)

    # -- hot path ---------------------------------------------------------------------------
    def effective(self, exchange: str, endpoint: str | None) -> Fault | None:
        """The fault applying to a request for ``(exchange, endpoint)``, or ``None``.

        Endpoint-scoped faults override exchange-wide ones; ``endpoint=None`` (unknown path)
        sees only the exchange-wide fault. Expired faults are dropped here.
        """
        faults = self._faults
        if not faults:
            return None
        fault = faults.get((exchange, endpoint)) if endpoint is not None else None
        if fault is None:
            fault = faults.get((exchange, None))
            if fault is None:
                return None
        if fault.expires_at is not None and time.monotonic() >= fault.expires_at:
            self._purge_expired()
            return self.effective(exchange, endpoint)
        return fault

    def websocket(self, exchange: str) -> Fault | None:
        """The WebSocket fault (a ``ws_*`` kind) holding on ``exchange``, or ``None``. Expired
        faults are dropped here."""
        fault = self._faults.get((exchange, WS_SCOPE)) if self._faults else None
        expires = fault.expires_at if fault is not None else None
        if expires is not None and time.monotonic() >= expires:
            self._purge_expired()
            return None
        return fault

    def key_fault(self, exchange: str) -> Fault | None:
        """The API-key fault (a :data:`KEY_FAULT_KINDS` kind) holding on ``exchange``, or
        ``None``. Expired faults are dropped here."""
        fault = self._faults.get((exchange, KEY_SCOPE)) if self._faults else None
        expires = fault.expires_at if fault is not None else None
        if expires is not None and time.monotonic() >= expires:
            self._purge_expired()
            return None
        return fault

    # -- control API ------------------------------------------------------------------------
    def apply(self, spec: Any) -> Fault | None:
        """Validate ``spec`` (decoded JSON) and set or clear a fault.

        Returns:
            The new :class:`Fault`, or ``None`` for ``fault: "none"``.

        Raises:
            FaultError: any invalid field; the message names the field and the value.
        """
        fault = self.validate(spec)
        if fault.kind == "none":
            self.clear(fault.exchange, fault.endpoint)
            return None
        if fault.kind in WS_FAULT_KINDS:
            scope: str | None = WS_SCOPE
        elif fault.kind in KEY_FAULT_KINDS:
            scope = KEY_SCOPE
        elif fault.kind in MARKET_FAULT_KINDS:
            scope = MARKET_SCOPE + fault.kind
            params = dict(fault.params)
            if fault.duration_s is not None:
                params["duration_s"] = fault.duration_s
            self.effects.set(fault.exchange, fault.kind, params, fault.created_at, fault.duration_s)
        else:
            scope = fault.endpoint
        self._faults[(fault.exchange, scope)] = fault
        return fault

    def validate(self, spec: Any) -> Fault:
        """Check ``spec`` and return the normalised :class:`Fault` without storing it.

        Raises:
            FaultError: see :meth:`apply`.
        """
        if not isinstance(spec, dict):
            raise FaultError(f"body: expected a JSON object, got {type(spec).__name__}")
        exchange = spec.get("exchange")
        if not isinstance(exchange, str) or exchange not in self._endpoints:
            valid = ", ".join(sorted(self._endpoints))
            if "exchange" not in spec:
                raise FaultError(f"exchange: required (one of {valid})")
            raise FaultError(f"exchange: unknown exchange {exchange!r} (expected one of {valid})")
        kind = spec.get("fault")
        if not isinstance(kind, str) or kind not in FAULT_KINDS:
            if "fault" not in spec:
                raise FaultError(f"fault: required (one of {', '.join(FAULT_KINDS)})")
            raise FaultError(
                f"fault: unknown fault {kind!r} (expected one of {', '.join(FAULT_KINDS)})"
            )
        endpoint = spec.get("endpoint")
        if kind in WS_FAULT_KINDS and endpoint is not None:
            raise FaultError(
                f"endpoint: WebSocket faults are exchange-wide (omit endpoint or use null), "
                f"got {endpoint!r}"
            )
        if kind in KEY_FAULT_KINDS and endpoint is not None:
            raise FaultError(
                f"endpoint: API-key faults are exchange-wide (omit endpoint or use null), "
                f"got {endpoint!r}"
            )
        if kind in MARKET_FAULT_KINDS and endpoint is not None:
            raise FaultError(
                f"endpoint: market faults change the exchange's whole market (REST and "
                f"WebSocket); omit endpoint or use null, got {endpoint!r}"
            )
        if endpoint is not None and (
            not isinstance(endpoint, str) or endpoint not in self._endpoints[exchange]
        ):
            valid = ", ".join(sorted(self._endpoints[exchange]))
            raise FaultError(
                f"endpoint: {endpoint!r} is not an endpoint of {exchange} (expected one of "
                f"{valid}, or null for all)"
            )
        params_allowed = _PARAM_NAMES[kind]
        check_fields(
            spec,
            {"exchange", "fault", "endpoint", "duration_s", *params_allowed},
            f"fault {kind!r}",
            error=FaultError,
            shown=params_allowed,
        )
        params = self._params(spec, exchange, kind, endpoint)
        if kind in _ALIASES:
            kind = "down"
        duration = None
        if kind != "none":
            duration = fault_number(spec, "duration_s", 0.001, _MAX_DURATION_S, required=False)
        elif "duration_s" in spec:
            raise FaultError("duration_s: not allowed with fault 'none'")
        now = time.monotonic()
        return Fault(
            exchange=exchange,
            endpoint=endpoint,
            kind=kind,
            params=params,
            created_at=time.time(),
            duration_s=duration,
            expires_at=None if duration is None else now + duration,
        )

    def _params(
        self, spec: Mapping[str, Any], exchange: str, kind: str, endpoint: str | None
    ) -> dict[str, Any]:
        """Validate and normalise the kind-specific parameters."""
        if kind in EXCHANGE_KINDS:
            return self._validators.get(exchange, _generic_params)(kind, spec)
        if kind == "down":
            return {"mode": choice(spec, "mode", ("reset", "hang"), "reset", error=FaultError)}
        if kind in _ALIASES:
            return {"mode": _ALIASES[kind]}
        if kind == "latency":
            return {
                "latency_ms": fault_number(spec, "latency_ms", 0, _MAX_LATENCY_MS, required=True),
                "jitter_ms": fault_number(
                    spec, "jitter_ms", 0, _MAX_LATENCY_MS, required=False, default=0
                ),
            }
        if kind == "slow_body":
            rate = fault_number(
                spec, "bytes_per_second", 0, _MAX_BODY_RATE, required=False, default=64
            )
            if rate == 0:
                raise FaultError("bytes_per_second: must be > 0, got 0")
            interval = fault_number(spec, "interval_ms", 10, 60_000, required=False, default=1000)
            return {"bytes_per_second": rate, "interval_ms": interval}
        if kind == "http_error":
            status = int(fault_number(spec, "status", 400, 599, required=True, integer=True) or 0)
            gateway = status in _GATEWAY_STATUSES or exchange in self._html_errors
            json_doc = status in self._json_statuses.get(exchange, ())
            default = "html" if gateway and not json_doc else "json"
            body = choice(spec, "body", ("json", "html"), default, error=FaultError)
            return {"status": status, "body": body}
        if kind == "maintenance":
            if exchange not in self._status_capable:
                raise FaultError(
                    f"fault: 'maintenance' needs a system-status API and {exchange!r} has "
                    "none (Coinbase Exchange publishes status only on its status page)"
                )
            if endpoint not in (None, "status"):
                raise FaultError(
                    f"endpoint: maintenance is exchange-wide (use null or 'status'), "
                    f"got {endpoint!r}"
                )
            return {}
        if kind == "clock_skew":
            return {
                "skew_ms": fault_number(spec, "skew_ms", -_MAX_SKEW_MS, _MAX_SKEW_MS, required=True)
            }
        if kind == "stale":
            return stale_params(spec)
        if kind in WS_FAULT_KINDS:
            return ws_params(spec, exchange, kind, CHECKSUM_EXCHANGES, WS_CHANNELS)
        if kind in MARKET_FAULT_KINDS:
            return market_params(spec, kind)
        if kind in KEY_FAULT_KINDS:
            key = text(spec, "key", required=False, error=FaultError)
            return {} if key is None else {"key": key}
        if kind == "huge_body":
            size = fault_number(
                spec,
                "size_bytes",
                _MIN_HUGE,
                _MAX_HUGE,
                required=False,
                default=_DEFAULT_HUGE,
                integer=True,
            )
            return {"size_bytes": size}
        return {}  # "none", "bad_json"

    def clear(self, exchange: str | None = None, endpoint: str | None = None) -> None:
        """Remove faults: all (``exchange=None``), all of one exchange (``endpoint=None``), or
        the one scoped to ``(exchange, endpoint)``."""
        if exchange is None:
            self._faults.clear()
            self.effects.end(None, time.time())
        elif endpoint is None:
            for key in [k for k in self._faults if k[0] == exchange]:
                del self._faults[key]
            self.effects.end(exchange, time.time())
        else:
            self._faults.pop((exchange, endpoint), None)

    def active(self) -> list[Fault]:
        """All unexpired faults, sorted by exchange then endpoint (exchange-wide first)."""
        self._purge_expired()
        return sorted(self._faults.values(), key=lambda f: (f.exchange, f.endpoint or ""))

    def to_json(self) -> list[dict[str, Any]]:
        """:meth:`active` rendered with :meth:`Fault.to_json`."""
        now = time.monotonic()
        return [f.to_json(now) for f in self.active()]

    def _purge_expired(self) -> None:
        now = time.monotonic()
        for key, fault in list(self._faults.items()):
            if fault.expires_at is not None and now >= fault.expires_at:
                del self._faults[key]
