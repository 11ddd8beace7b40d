"""Binance spot REST (``/binance`` prefix): ping, time, system status, tickers, depth.

Facts: paths, weights and bodies [BN-REST]; error codes [BN-ERR]; status body [CCXT-BN
fetch_status]; rate-limit headers and 418/429 semantics [BN-REST §HTTP Return Codes, §IP Limits].
Every response (errors and fault responses included) carries ``X-MBX-USED-WEIGHT-1M`` and the
legacy ``X-MBX-USED-WEIGHT``: the weight used by *all* clients (plus ``/_control/consume``) in the
current UTC minute. The 6000/min ``REQUEST_WEIGHT`` limit is enforced by
:class:`~simulator.limits.BinanceWeightLimiter` (429 -1003 + ``Retry-After``, then 418 bans)
unless limits are disabled (``--no-limits``); the ``rate_limited`` / ``banned`` faults force those
answers regardless of usage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from simulator.bodies import BookFrame
from simulator.exchanges.base import (
    Exchange,
    RequestContext,
    Route,
    WeightFn,
    const_weight,
    fault_int,
    reject_params,
)
from simulator.faults import Fault
from simulator.limits import BinanceWeightLimiter
from simulator.market import VenueView
from simulator.responses import Header, Reply, gateway_page, json_reply

__all__ = ["API_MESSAGES", "WEIGHT_LIMIT_1M", "BinanceExchange", "depth_weight"]

WEIGHT_LIMIT_1M = 6000
"""Documented ``REQUEST_WEIGHT`` per 1 MINUTE [BN-ENUM]: the default ``weight_per_minute`` of
:class:`~simulator.limits.BinanceWeightLimiter` (the -1003 message quotes the configured value)."""

_DAY_MS = 86_400_000

_INVALID_SYMBOL = json_reply(400, {"code": -1121, "msg": "Invalid symbol."}).body
_MISSING_SYMBOL = json_reply(
    400,
    {
        "code": -1102,
        "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    },
).body
_BAD_LIMIT = json_reply(
    400,
    {
        "code": -1100,
        "msg": "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
    },
).body
_STATUS_NORMAL = json_reply(200, {"status": 0, "msg": "normal"}).body
_STATUS_MAINT = json_reply(200, {"status": 1, "msg": "system_maintenance"}).body
_PING = b"{}"

# Binance JSON error for an http_error fault, by HTTP status [BN-ERR]; others fall back to
# -1000 UNKNOWN (4xx) / -1001 DISCONNECTED (5xx).
_ERRORS: dict[int, tuple[int, str]] = {
    401: (-2015, "Invalid API-key, IP, or permissions for action."),
    500: (-1001, "Internal error; unable to process your request. Please try again."),
    502: (-1001, "Internal error; unable to process your request. Please try again."),
    503: (
        -1008,
        "Server is currently overloaded with other requests. Please try again in a few minutes.",
    ),
    504: (
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; "
        "execution status unknown.",
    ),
}
_UNKNOWN = (-1000, "An unknown error occurred while processing the request.")
_MAX_RETRY_AFTER_S = 259_200  # bans scale "from 2 minutes to 3 days" [BN-REST]

API_MESSAGES: dict[int, str] = {
    -1000: _UNKNOWN[1],  # message not in the facts file (Binance errors.md wording)
    -1001: "Internal error; unable to process your request. Please try again.",
    -1002: "You are not authorized to execute this request.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; execution "
    "status unknown.",
    -1008: "Server is currently overloaded with other requests. Please try again in a few minutes.",
    -1015: "Too many new orders; current limit is 10 orders per 1 SECOND.",  # ORDERS [BN-ENUM]
    -1016: "This service is no longer available.",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -1121: "Invalid symbol.",
    -1131: "recvWindow must be less than 60000",  # historic [BN-CL]
    -2014: "API-key format invalid.",
    -2015: "Invalid API-key, IP, or permissions for action.",
}
"""Documented ``msg`` per ``code`` for the ``api_error`` fault [BN-ERR, BN-CL]; -1003 is built
from the configured weight limit. Other codes get ``"Simulated error <code>."``."""


def depth_weight(query: Mapping[str, str]) -> int:
    """IP weight of ``GET /api/v3/depth`` by ``limit`` band: 1–100 → 5, 101–500 → 25,
    501–1000 → 50, 1001–5000 → 250; default limit 100 [BN-REST, BN-CL 2023-10-19]."""
    raw = query.get("limit", "100")
    limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 20 else 100
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def _ticker_weight(single: int, all_symbols: int) -> WeightFn:
    """Ticker weight: ``single`` with ``symbol``, ``all_symbols`` without [BN-REST]."""
    return lambda query: single if "symbol" in query else all_symbols


class BinanceExchange(Exchange):
    """Simulated Binance spot public REST API (see module docstring for sources)."""

    name = "binance"
    gateway_server = "CloudFront"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """See :class:`~simulator.exchanges.base.Exchange`; also creates the weight limiter."""
        super().__init__(*args, **kwargs)
        self.limiter: BinanceWeightLimiter = BinanceWeightLimiter()

    def build_routes(self) -> dict[str, Route]:
        """Routes [BN-REST]: ping/time/status weight 1, tickers 2 (single symbol) or 80/4/4
        (all symbols), depth by limit band (:func:`depth_weight`)."""
        return {
            "/api/v3/ping": Route("ping", self.ping, const_weight(1)),
            "/api/v3/time": Route("time", self.time, const_weight(1)),
            "/sapi/v1/system/status": Route("status", self.status, const_weight(1)),
            "/api/v3/ticker/24hr": Route("ticker", self.ticker_24hr, _ticker_weight(2, 80)),
            "/api/v3/ticker/price": Route("ticker", self.ticker_price, _ticker_weight(2, 4)),
            "/api/v3/ticker/bookTicker": Route("ticker", self.book_ticker, _ticker_weight(2, 4)),
            "/api/v3/depth": Route("orderbook", self.depth, depth_weight),
        }

    # -- accounting -------------------------------------------------------------------------
    def on_request(self, ctx: RequestContext) -> Reply | None:
        """Add the route's weight (1 for unknown paths — undocumented choice) to the minute;
        return the 429 / 418 answer when :class:`~simulator.limits.BinanceWeightLimiter`
        refuses the request."""
        cost = ctx.route.weight(ctx.query) if ctx.route is not None else 1
        decision = self.limiter.admit(cost, ctx.now)
        if decision is None:
            return None
        status, retry_after = decision
        if status == 429:
            return self._limit_reply(retry_after)
        return self._ban_reply(ctx, retry_after)

    def decorate(self, ctx: RequestContext, reply: Reply) -> None:
        """Append ``X-MBX-USED-WEIGHT-1M`` and legacy ``X-MBX-USED-WEIGHT`` [BN-REST, BN-CL]."""
        used = b"%d" % self.limiter.used(ctx.now)
        reply.headers.append((b"X-MBX-USED-WEIGHT-1M", used))
        reply.headers.append((b"X-MBX-USED-WEIGHT", used))

    # -- handlers ---------------------------------------------------------------------------
    def ping(self, ctx: RequestContext) -> Reply:
        """``GET /api/v3/ping`` → ``{}`` [BN-REST]."""
        return Reply(200, _PING)

    def time(self, ctx: RequestContext) -> Reply:
        """``GET /api/v3/time`` → ``{"serverTime": ms}`` (skewed by ``clock_skew``) [BN-REST]."""
        return Reply(200, b'{"serverTime":%d}' % ctx.server_ms)

    def status(self, ctx: RequestContext) -> Reply:
        """``GET /sapi/v1/system/status`` → ``{"status": 0, "msg": "normal"}``, or
        ``{"status": 1, "msg": "system_maintenance"}`` under ``maintenance`` [CCXT-BN]."""
        return Reply(200, _STATUS_MAINT if ctx.maintenance else _STATUS_NORMAL)

    def _markets(self, ctx: RequestContext, required: bool) -> Reply | list[str]:
        """The markets a request names: ``symbol`` (any listed market's symbol, e.g. BTCUSDT,
        ETHUSDT), or every market when it is absent and not ``required``. -1102 if a required
        ``symbol`` is missing, -1121 if the symbol is not listed [BN-ERR]."""
        symbol = ctx.query.get("symbol")
        if symbol is None:
            return Reply(400, _MISSING_SYMBOL) if required else list(ctx.markets)
        market = ctx.market_for(symbol)
        return Reply(400, _INVALID_SYMBOL) if market is None else [market]

    def _per_market(self, ctx: RequestContext, build: Callable[[VenueView], Any]) -> Reply:
        """Answer one object for ``symbol=...``, else a list with one per listed market."""
        markets = self._markets(ctx, required=False)
        if isinstance(markets, Reply):
            return markets
        bodies = [build(ctx.view(m)) for m in markets]
        return json_reply(200, bodies[0] if "symbol" in ctx.query else bodies)

    def ticker_24hr(self, ctx: RequestContext) -> Reply:
        """``GET /api/v3/ticker/24hr`` FULL shape [BN-REST]: all prices/quantities are 8-decimal
        strings; ``openTime``/``closeTime`` ms (``closeTime`` = data time, lags under
        ``stale``); ``firstId``/``lastId``/``count`` ints. Without ``symbol``: a list."""
        close_ms = ctx.data_ms

        def build(v: VenueView) -> dict[str, Any]:
            st = v.stats
            open_ = v.scaled(st.open_24h)
            change = v.last - open_
            return {
                "symbol": v.venue.symbol,
                "priceChange": v.price(change),
                "priceChangePercent": f"{change / open_ * 100.0:.3f}",
                "weightedAvgPrice": v.price(v.scaled(st.vwap_24h)),
                "prevClosePrice": v.price(open_),
                "lastPrice": v.price(v.last),
                "lastQty": v.qty(v.last_qty),
                "bidPrice": v.price(v.best_bid),
                "bidQty": v.qty(v.bid_qty),
                "askPrice": v.price(v.best_ask),
                "askQty": v.qty(v.ask_qty),
                "openPrice": v.price(open_),
                "highPrice": v.price(max(v.scaled(st.high_24h), v.last)),
                "lowPrice": v.price(min(v.scaled(st.low_24h), v.last)),
                "volume": v.qty(v.volume_24h),
                "quoteVolume": f"{v.volume_24h * v.scaled(st.vwap_24h):.8f}",
                "openTime": close_ms - _DAY_MS,
                "closeTime": close_ms,
                "firstId": v.first_trade_id_24h,
                "lastId": v.trade_id,
                "count": v.trade_id - v.first_trade_id_24h + 1,
            }

        return self._per_market(ctx, build)

    def ticker_price(self, ctx: RequestContext) -> Reply:
        """``GET /api/v3/ticker/price`` → ``{"symbol", "price"}`` [BN-REST]."""
        return self._per_market(ctx, lambda v: {"symbol": v.venue.symbol, "price": v.price(v.last)})

    def book_ticker(self, ctx: RequestContext) -> Reply:
        """``GET /api/v3/ticker/bookTicker`` → ``{"symbol", "bidPrice", "bidQty", "askPrice",
        "askQty"}`` strings [BN-REST]."""
        return self._per_market(
            ctx,
            lambda v: {
                "symbol": v.venue.symbol,
                "bidPrice": v.price(v.best_bid),
                "bidQty": v.qty(v.bid_qty),
                "askPrice": v.price(v.best_ask),
                "askQty": v.qty(v.ask_qty),
            },
        )

    def depth(self, ctx: RequestContext) -> Reply:
        """``GET /api/v3/depth?symbol=BTCUSDT&limit=N`` → ``{"lastUpdateId": int, "bids":
        [[price, qty], ...], "asks": ...}`` with exactly ``limit`` levels per side (default 100;
        values above 5000 are truncated to 5000 as Binance documents; 0 is treated as 1)
        [BN-REST]. Non-numeric limit → -1100 [BN-ERR message, not in facts file].

        ``lastUpdateId`` is the tick's update id + 1, which lies within ``[U;u]`` of the next
        diff-depth event, as the sync procedure expects [BN-WS §How to manage a local order
        book correctly]; the levels are the tick's book, which that event's changes update.
        """
        markets = self._markets(ctx, required=True)
        if isinstance(markets, Reply):
            return markets
        limit = ctx.int_param("limit", 100)
        if limit is None:
            return Reply(400, _BAD_LIMIT)
        v = ctx.view(markets[0])
        bids, asks = v.levels(limit)
        body = {
            "lastUpdateId": v.update_id + 1,
            "bids": [[p, q] for p, q, _, _ in bids],
            "asks": [[p, q] for p, q, _, _ in asks],
        }
        return json_reply(200, body)

    # -- errors and faults ------------------------------------------------------------------
    def not_found(self, ctx: RequestContext) -> Reply:
        """Unknown path → HTTP 404 with Binance's error shape ``{"code", "msg"}`` [BN-REST error
        body]; the exact code for a bad path is not in the facts file (-1000 UNKNOWN chosen)."""
        return json_reply(404, {"code": _UNKNOWN[0], "msg": _UNKNOWN[1]})

    def error_body(self, ctx: RequestContext, status: int) -> Reply:
        """JSON error for ``http_error``: 401 → -2015, 5xx → -1001/-1008/-1007, 403 → WAF
        page, 418/429 → ban / rate-limit bodies, other 4xx → -1000 [BN-ERR, BN-REST]. Which
        4XX accompanies each code is **UNVERIFIED** per the facts file."""
        if status == 403:  # WAF rule violated: answered by the CDN, not the API [BN-REST]
            return gateway_page(403, self.gateway_server)
        if status == 418:
            return self._ban_reply(ctx, 120)
        if status == 429:
            return self._limit_reply(30)
        code, msg = _ERRORS.get(status, _UNKNOWN if status < 500 else _ERRORS[500])
        return json_reply(status, {"code": code, "msg": msg})

    def fault_params(self, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``rate_limited``: ``retry_after`` (int s 0–259200, default 30); ``banned``:
        ``retry_after`` (default 120, the documented minimum ban [BN-REST]); ``api_error``:
        int ``code``, optional ``http_status`` (default 400) and ``message``."""
        if kind == "api_error":
            return self.api_error_params(spec, None)
        reject_params(spec, ("retry_after",), f"binance {kind}")
        default = 30 if kind == "rate_limited" else 120
        return {"retry_after": fault_int(spec, "retry_after", 0, _MAX_RETRY_AFTER_S, default)}

    def rate_limited(self, ctx: RequestContext, fault: Fault) -> Reply:
        """HTTP 429, -1003 "Too much request weight used; current limit is 6000 request weight
        per 1 MINUTE. ..." + ``Retry-After: <retry_after>`` seconds [BN-ERR, BN-REST]."""
        return self._limit_reply(fault.params["retry_after"])

    def banned(self, ctx: RequestContext, fault: Fault) -> Reply:
        """HTTP 418, -1003 "Way too much request weight used; IP banned until <ms>. ..." +
        ``Retry-After`` (seconds until the ban ends) [BN-ERR, BN-REST]. ``<ms>`` is server time
        (skewed) + ``retry_after``."""
        return self._ban_reply(ctx, fault.params["retry_after"])

    def api_error(self, ctx: RequestContext, fault: Fault) -> Reply:
        """``{"code": <int>, "msg": <documented msg>}`` on HTTP 400 (or ``http_status``)
        [BN-ERR; which 4XX goes with which code is UNVERIFIED]; ``msg`` from
        :data:`API_MESSAGES` (-1003: the rate-limit text with the configured limit), else
        ``"Simulated error <code>."``, unless ``message`` overrides it."""
        params = fault.params
        code = params["code"]
        msg = params.get("message")
        if msg is None:
            msg = self._limit_msg() if code == -1003 else API_MESSAGES.get(code)
        if msg is None:
            msg = f"Simulated error {code}."
        return json_reply(params.get("http_status", 400), {"code": code, "msg": msg})

    def book_frame(self, ctx: RequestContext) -> BookFrame:
        """``huge_body``: the depth shape ``{"lastUpdateId", "bids": [[price, qty]], "asks"}``
        [BN-REST], 8-decimal strings."""
        symbol = ctx.query.get("symbol")
        market = ctx.market_for(symbol) if symbol is not None else None
        head = b'{"lastUpdateId":%d,"bids":[' % (ctx.view(market).update_id + 1)
        return BookFrame(head, b'],"asks":[', b"]}", '["%d.%02d000000","0.00100000"]')

    def _limit_msg(self) -> str:
        return (
            f"Too much request weight used; current limit is {self.limiter.limit} request "
            "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
            "polling the API."
        )

    def _limit_reply(self, retry_after: int) -> Reply:
        """HTTP 429 -1003 with ``Retry-After`` [BN-ERR, BN-REST]."""
        headers: list[Header] = [(b"Retry-After", b"%d" % retry_after)]
        return json_reply(429, {"code": -1003, "msg": self._limit_msg()}, headers)

    @staticmethod
    def _ban_reply(ctx: RequestContext, retry_after: int) -> Reply:
        """HTTP 418 -1003 "IP banned until <server ms>" with ``Retry-After`` [BN-ERR, BN-REST]."""
        until = ctx.server_ms + retry_after * 1000
        msg = (
            f"Way too much request weight used; IP banned until {until}. Please use WebSocket "
            "Streams for live updates to avoid bans."
        )
        headers: list[Header] = [(b"Retry-After", b"%d" % retry_after)]
        return json_reply(418, {"code": -1003, "msg": msg}, headers)
