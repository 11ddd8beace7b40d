"""Shared machinery for the simulated exchanges: routes, the per-request context, and the
:class:`Exchange` base class that turns an (effective) fault into the exchange's own response.

Transport-level faults (``down``, ``latency``) are handled by the server before an exchange is
asked for a reply; everything that results in an HTTP response is decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from simulator.bodies import BookFrame, huge_book, truncate_json
from simulator.faults import Fault, FaultError
from simulator.keys.base import KEY_ENDPOINT, PrivateApi
from simulator.keys.request import PrivateRequest
from simulator.limits import Limiter
from simulator.maintenance import Window
from simulator.market import Market, Venue, VenueView
from simulator.responses import CT_JSON, Reply, gateway_page
from simulator.specs import check_fields, number, text

__all__ = [
    "Exchange",
    "Handler",
    "RequestContext",
    "Route",
    "const_weight",
    "fault_int",
    "reject_params",
]

Handler = Callable[["RequestContext"], Reply]
WeightFn = Callable[[Mapping[str, str]], int]


def const_weight(weight: int) -> WeightFn:
    """Return a weight function that ignores the query and returns ``weight``."""
    return lambda _query: weight


_WEIGHT_ONE = const_weight(1)
_HANDLER_KINDS = frozenset({"clock_skew", "stale", "latency", "down", "slow_body", "bad_json"})
"""Fault kinds under which the normal handler still builds the reply."""


def fault_int(spec: Mapping[str, Any], name: str, lo: int, hi: int, default: int | None) -> Any:
    """An optional integer fault parameter (``None`` default = absent), raising
    :class:`~simulator.faults.FaultError` naming the field and value."""
    return number(
        spec, name, lo, hi, required=False, default=default, integer=True, error=FaultError
    )


def reject_params(spec: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    """Reject fault parameters this exchange does not support for ``what`` (e.g.
    ``"kraken rate_limited"``), naming the field."""
    check_fields(
        spec,
        {"exchange", "fault", "endpoint", "duration_s", *allowed},
        what,
        error=FaultError,
        shown=allowed,
    )


@dataclass(frozen=True, slots=True)
class Route:
    """One real REST path of an exchange.

    Attributes:
        endpoint: fault/stats endpoint name (``ping``/``time``/``status``/``ticker``/``orderbook``).
        handler: builds the normal reply from a :class:`RequestContext`.
        weight: request weight for the query (Binance IP weight [BN-REST]; 1 elsewhere).
    """

    endpoint: str
    handler: Handler
    weight: WeightFn = _WEIGHT_ONE


class RequestContext:
    """Everything a handler needs about one request. Cheap to build (``__slots__``).

    Attributes:
        route: the matched :class:`Route`, or ``None`` for an unknown path.
        endpoint: ``route.endpoint`` or ``None``.
        path: request path with the ``/<exchange>`` prefix removed (``"/api/v3/ping"``).
        query: decoded query parameters (last value wins).
        now: real wall-clock time, epoch seconds (float).
        fault: the effective :class:`~simulator.faults.Fault`, or ``None``.
        private: for a private (signed) route, the request as received
            (:class:`~simulator.keys.request.PrivateRequest`), else ``None``.
        window: the maintenance :class:`~simulator.maintenance.Window` announced for this
            exchange (any state), or ``None``; inside it :attr:`fault` is a ``maintenance``
            fault (when no REST fault is set).
    """

    __slots__ = (
        "endpoint",
        "fault",
        "market",
        "now",
        "path",
        "private",
        "query",
        "route",
        "venue",
        "window",
    )

    def __init__(
        self,
        *,
        route: Route | None,
        path: str,
        query: dict[str, str],
        now: float,
        fault: Fault | None,
        market: Market,
        venue: Venue,
        private: PrivateRequest | None = None,
        window: Window | None = None,
    ) -> None:
        """Store the request facts (see class docstring)."""
        self.window = window
        self.route = route
        self.endpoint = route.endpoint if route is not None else None
        self.path = path
        self.query = query
        self.now = now
        self.fault = fault
        self.market = market
        self.venue = venue
        self.private = private

    @property
    def server_ms(self) -> int:
        """The exchange's clock in epoch ms: real time plus any ``clock_skew`` ``skew_ms``.

        Used for every *server time* field (time endpoints, Bybit envelope ``time``, Kraken
        status ``timestamp``, Binance ban-until). Market-data timestamps use :attr:`data_ms`.
        """
        fault = self.fault
        if fault is not None and fault.kind == "clock_skew":
            return int(self.now * 1000.0 + fault.params["skew_ms"])
        return int(self.now * 1000.0)

    @property
    def data_ms(self) -> int:
        """Generation time of market data in epoch ms: real time, minus ``age_s`` under a
        ``stale`` fault (not affected by ``clock_skew``, so the two faults stay independent)."""
        fault = self.fault
        if fault is not None and fault.kind == "stale":
            return int((self.now - fault.params["age_s"]) * 1000.0)
        return int(self.now * 1000.0)

    @property
    def maintenance(self) -> bool:
        """True when the effective fault is ``maintenance`` (set, or an ongoing announced
        window)."""
        return self.fault is not None and self.fault.kind == "maintenance"

    def scheduled_window(self) -> Window | None:
        """The announced maintenance window if it has not started yet at :attr:`now`."""
        window = self.window
        return window if window is not None and self.now < window.starts_at else None

    def view(self, market: str | None = None) -> VenueView:
        """Market state of ``market`` (unified name; None = the venue's first, BTC) on this
        venue: current, or frozen at ``created_at - age_s`` when the effective fault is
        ``stale`` (prices stop moving).

        Raises:
            KeyError: the venue does not list ``market``.
        """
        fault = self.fault
        if fault is not None and fault.kind == "stale":
            frozen = fault.created_at - fault.params["age_s"]
            return self.market.view(self.venue.name, frozen * 1000.0, market)
        return self.market.view(self.venue.name, self.now * 1000.0, market)

    def market_for(self, symbol: str) -> str | None:
        """The unified market the REST ``symbol`` names on this venue, or None if unlisted."""
        return self.market.market_for_symbol(self.venue.name, symbol)

    @property
    def markets(self) -> tuple[str, ...]:
        """Unified names of every market this venue lists, BTC first."""
        return self.market.markets(self.venue.name)

    def int_param(self, name: str, default: int) -> int | None:
        """Query parameter ``name`` as a non-negative int; ``default`` if absent; ``None`` if it
        is present but not made of ASCII digits (1–20 of them)."""
        raw = self.query.get(name)
        if raw is None:
            return default
        if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
            return None
        return int(raw)


class Exchange:
    """Base class of one simulated exchange.

    Subclasses set :attr:`name` and :attr:`gateway_server`, and implement
    :meth:`build_routes`, :meth:`not_found`, :meth:`error_body` and :meth:`rate_limited`;
    they may override :meth:`banned`, :meth:`maintenance_reply`, :meth:`on_request`,
    :meth:`decorate` and :meth:`resolve`.
    """

    name: ClassVar[str] = ""
    gateway_server: ClassVar[str] = "cloudflare"
    """Footer of the HTML gateway page for ``http_error`` with ``body: "html"``."""
    json_gateway_statuses: ClassVar[frozenset[int]] = frozenset()
    """Gateway statuses (502/503/504) the exchange itself documents a JSON error for; the
    ``http_error`` fault then defaults to the JSON body instead of the CDN HTML page."""

    limiter: Limiter | None = None
    """The exchange's per-IP :class:`~simulator.limits.Limiter`, if it documents one."""

    def __init__(self, market: Market) -> None:
        """Bind the exchange to the shared ``market`` and build its route table."""
        self.market = market
        self.venue: Venue = market.venues[self.name]
        self.routes: dict[str, Route] = self.build_routes()
        self.private_routes: dict[tuple[str, str], Route] = {}

    def attach_private(self, apis: list[PrivateApi]) -> None:
        """Serve the private (signed) routes of ``apis`` under the endpoint name ``api_key``."""
        for api in apis:
            for (method, path), weight in api.routes.items():
                self.private_routes[(method, path)] = Route(
                    KEY_ENDPOINT, _private_handler(api), const_weight(weight)
                )

    # -- to implement -----------------------------------------------------------------------
    def build_routes(self) -> dict[str, Route]:
        """Map real REST paths (without the ``/<exchange>`` prefix) to :class:`Route`."""
        raise NotImplementedError

    def not_found(self, ctx: RequestContext) -> Reply:
        """The exchange's answer to an unknown path."""
        raise NotImplementedError

    def error_body(self, ctx: RequestContext, status: int) -> Reply:
        """The exchange's own JSON error for HTTP ``status`` (``http_error`` fault)."""
        raise NotImplementedError

    def rate_limited(self, ctx: RequestContext, fault: Fault) -> Reply:
        """The exchange's own rate-limit response (``rate_limited`` fault)."""
        raise NotImplementedError

    def api_error(self, ctx: RequestContext, fault: Fault) -> Reply:
        """The exchange's error envelope carrying ``fault.params["code"]`` (``api_error``)."""
        raise NotImplementedError

    def book_frame(self, ctx: RequestContext) -> BookFrame:
        """The order-book envelope used by the ``huge_body`` fault."""
        raise NotImplementedError

    def fault_params(self, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the parameters of ``rate_limited`` / ``banned`` / ``api_error`` for this
        exchange and return them normalised (a :data:`~simulator.faults.ParamValidator`).

        The default: ``rate_limited`` without parameters, no ``banned`` (rejected naming the
        field and value), ``api_error`` with an int ``code`` answered by :meth:`api_error`.

        Raises:
            FaultError: the message names the field and the bad value.
        """
        if kind == "banned":
            raise FaultError(
                f"fault: 'banned' is not documented for {self.name} (no IP-ban answer in the "
                "facts file; supported: binance, bybit, kraken)"
            )
        if kind == "rate_limited":
            reject_params(spec, (), f"{self.name} rate_limited")
            return {}
        return self.api_error_params(spec, code_check=None)

    def api_error_params(
        self,
        spec: Mapping[str, Any],
        code_check: Callable[[Any], Any] | None,
        *,
        http_status: bool = True,
        message: bool = True,
    ) -> dict[str, Any]:
        """Shared ``api_error`` validation: ``code`` (required; ``code_check`` normalises it or
        returns ``None`` to reject; default: any int), optional ``http_status`` (int 200–599)
        and ``message`` (string ≤ 500 chars) when this exchange supports them.

        Raises:
            FaultError: names the field and value.
        """
        allowed = (
            "code",
            *(("http_status",) if http_status else ()),
            *(("message",) if message else ()),
        )
        reject_params(spec, allowed, f"{self.name} api_error")
        if "code" not in spec:
            raise FaultError("code: required for fault 'api_error'")
        raw = spec["code"]
        if code_check is None:
            ok = isinstance(raw, int) and not isinstance(raw, bool)
            code = raw if ok else None
        else:
            code = code_check(raw)
        if code is None:
            raise FaultError(f"code: {self.name} expects {self.api_code_help}, got {raw!r}")
        params: dict[str, Any] = {"code": code}
        status = fault_int(spec, "http_status", 200, 599, None)
        if status is not None:
            params["http_status"] = status
        msg = text(spec, "message", required=False, error=FaultError)
        if msg is not None:
            params["message"] = msg
        return params

    api_code_help: ClassVar[str] = "an integer"
    """How ``api_error`` ``code`` must look (for the validation message)."""

    def banned(self, ctx: RequestContext, fault: Fault) -> Reply:
        """The exchange's IP-ban response. The default :meth:`fault_params` rejects the fault,
        so this 500 should never be seen."""
        return self.error_body(ctx, 500)

    def maintenance_reply(self, ctx: RequestContext) -> Reply | None:
        """Reply for a market-data endpoint (``ticker``/``orderbook``) while ``maintenance`` is
        active, or ``None`` to answer normally (the default: nothing documented)."""
        return None

    def on_request(self, ctx: RequestContext) -> Reply | None:
        """Account for a request as soon as it is read (Binance weight, Bybit IP count) and
        return the exchange's limit answer (429/418/403) if :attr:`limiter` refuses it, else
        ``None``. Default: no accounting."""
        return None

    def decorate(self, ctx: RequestContext, reply: Reply) -> None:
        """Add per-exchange headers (rate-limit usage) to ``reply`` in place. Default: no-op."""

    # -- shared -----------------------------------------------------------------------------
    def resolve(self, path: str) -> Route | None:
        """Find the route for ``path`` (exact match); ``None`` if unknown."""
        return self.routes.get(path)

    def resolve_private(self, method: str, path: str) -> Route | None:
        """The private route for ``method`` and ``path``, or ``None``."""
        return self.private_routes.get((method, path)) if self.private_routes else None

    @property
    def endpoints(self) -> frozenset[str]:
        """Endpoint names this exchange serves (used to validate fault scopes)."""
        routes = [*self.routes.values(), *self.private_routes.values()]
        return frozenset(route.endpoint for route in routes)

    def respond(self, ctx: RequestContext) -> Reply:
        """Produce the reply for ``ctx``, applying the effective HTTP-level fault, then
        :meth:`decorate` it. ``down``/``latency`` must have been handled by the caller;
        ``slow_body`` only marks the reply for pacing (the server paces it)."""
        fault = ctx.fault
        if fault is None:
            reply = ctx.route.handler(ctx) if ctx.route is not None else self.not_found(ctx)
            self.decorate(ctx, reply)
            return reply
        kind = fault.kind
        if kind in _HANDLER_KINDS:
            reply = ctx.route.handler(ctx) if ctx.route is not None else self.not_found(ctx)
            if kind == "slow_body":
                reply.bytes_per_second = fault.params["bytes_per_second"]
                reply.pace_interval_s = fault.params["interval_ms"] / 1000.0
            elif kind == "bad_json":
                reply.status = 200
                reply.content_type = CT_JSON
                reply.body = truncate_json(reply.body)
        elif kind == "http_error":
            reply = self.http_error(ctx, fault.params["status"], fault.params["body"] == "html")
        elif kind == "rate_limited":
            reply = self.rate_limited(ctx, fault)
        elif kind == "banned":
            reply = self.banned(ctx, fault)
        elif kind == "api_error":
            reply = self.api_error(ctx, fault)
        elif kind == "huge_body":
            reply = self.huge_body(ctx, fault.params["size_bytes"])
        elif ctx.route is None:
            reply = self.not_found(ctx)
        elif kind == "maintenance" and ctx.endpoint in ("ticker", "orderbook"):
            reply = self.maintenance_reply(ctx) or ctx.route.handler(ctx)
        else:
            reply = ctx.route.handler(ctx)
        self.decorate(ctx, reply)
        return reply

    def huge_body(self, ctx: RequestContext, size: int) -> Reply:
        """``huge_body``: HTTP 200, a valid JSON order book in this exchange's envelope
        (:meth:`book_frame`) of exactly ``size`` bytes, streamed (whatever the endpoint)."""
        v = ctx.view()
        stream = huge_book(
            self.book_frame(ctx), size, round(v.best_bid * 100), round(v.best_ask * 100)
        )
        return Reply(200, b"", CT_JSON, [], stream=stream, stream_length=size)

    def http_error(self, ctx: RequestContext, status: int, html: bool) -> Reply:
        """``http_error`` fault: a CDN gateway page (``html``) or :meth:`error_body`."""
        if html:
            return gateway_page(status, self.gateway_server)
        return self.error_body(ctx, status)


def _private_handler(api: PrivateApi) -> Handler:
    """A route handler that passes the request as received to ``api``."""

    def handle(ctx: RequestContext) -> Reply:
        assert ctx.private is not None, "private routes are built with a PrivateRequest"
        return api.handle(ctx.private, ctx.server_ms, ctx.now)

    return handle
