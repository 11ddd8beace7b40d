"""Bybit v5 REST (``/bybit`` prefix): market time, system status, spot tickers and order book.

Facts: envelope ``retCode/retMsg/result/retExtInfo/time`` [BY-GUIDE]; bodies [BY-TIME,
BY-TICKERS, BY-OB, BY-STATUS]; error codes and HTTP semantics [BY-ERR]; IP limit 600 requests per
5 s and ``403 access too frequent`` [BY-RL]. There is no ping endpoint (facts: UNVERIFIED absence).

``X-Bapi-Limit`` / ``-Status`` / ``-Reset-Timestamp`` are documented per UID and endpoint
[BY-RL]; whether public calls carry them is UNVERIFIED. The simulator sends them on every JSON
response, filled from the IP window of :class:`~simulator.limits.BybitIpLimiter`: limit =
``requests_per_5s`` (600), remaining = limit minus the requests of all clients in the current
5 s window (never below 0), reset = now (server ms) while requests remain, else the end of the
window. The limiter enforces the IP limit (HTTP 403 ``access too frequent`` for ``ban_seconds``)
unless limits are disabled.

Faults: ``rate_limited`` = the API (UID) rate limit: HTTP 200 ``retCode 10006`` "Too many visits.
Exceeded the API Rate Limit." with ``X-Bapi-Limit-Status: 0`` and a reset timestamp ``retry_after``
seconds ahead [BY-ERR, BY-RL]; ``banned`` = the IP ban: HTTP 403 ``access too frequent``
(text/plain; the body format is not documented) [BY-RL].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.bodies import BookFrame
from simulator.exchanges.base import Exchange, RequestContext, Route, fault_int, reject_params
from simulator.faults import Fault
from simulator.limits import BybitIpLimiter
from simulator.responses import CT_JSON, Reply, gateway_page, json_reply, text_reply

__all__ = ["API_MESSAGES", "IP_LIMIT", "IP_WINDOW_S", "BybitExchange"]

IP_LIMIT = 600
"""Documented requests per :data:`IP_WINDOW_S` per IP [BY-RL]: the default ``requests_per_5s`` of
:class:`~simulator.limits.BybitIpLimiter`."""
IP_WINDOW_S = 5

_CATEGORIES = ("spot", "linear", "inverse", "option")
_MAX_BOOK = 1000  # spot limit 1–1000, default 1 [BY-OB]

_ERRORS: dict[int, tuple[int, str]] = {
    401: (10003, "API key is invalid. Check whether the key and domain are matched."),
    429: (10006, "Too many visits!"),
    500: (10016, "Server error."),
    503: (10016, "Server error."),
    504: (10000, "Server Timeout"),
}
_PARAM_ERROR = 10001  # "Request parameter error." (BY-ERR; message not copied in facts file)
_RATE_LIMIT_MSG = "Too many visits. Exceeded the API Rate Limit."  # 10006 [BY-ERR]
_ACCESS_TOO_FREQUENT = "access too frequent"  # IP ban [BY-RL]

API_MESSAGES: dict[int, str] = {
    10000: "Server Timeout",
    10001: "Request parameter error.",  # not copied in the facts file
    10002: "The request time exceeds the time window range.",
    # 10003 and 10009: the doc text continues ("...") in the facts file; cut at that point
    10003: "API key is invalid. Check whether the key and domain are matched.",
    10004: "Error sign, please check your signature generation algorithm.",
    10005: "Permission denied, please check your API key permissions.",
    10006: _RATE_LIMIT_MSG,
    10009: "Service Restricted",
    10010: "Unmatched IP, please check your API key's bound IP addresses.",
    10016: "Server error.",
    10018: "Exceeded the IP Rate Limit",  # deprecated (struck through) [BY-ERR]
    429: "The trading service is experiencing a high server load",
    -2015: "Your api key has expired",
    33004: "Your api key has expired",
}
"""Documented ``retMsg`` per ``retCode`` for the ``api_error`` fault [BY-ERR]; other codes get
``"Simulated error <code>."``."""


class BybitExchange(Exchange):
    """Simulated Bybit v5 public REST API (see module docstring for sources)."""

    name = "bybit"
    gateway_server = "openresty"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """See :class:`~simulator.exchanges.base.Exchange`; also creates the IP limiter."""
        super().__init__(*args, **kwargs)
        self.limiter: BybitIpLimiter = BybitIpLimiter()

    def build_routes(self) -> dict[str, Route]:
        """Routes: ``/v5/market/time``, ``/v5/system/status``, ``/v5/market/tickers``,
        ``/v5/market/orderbook`` [BY-TIME, BY-STATUS, BY-TICKERS, BY-OB]."""
        return {
            "/v5/market/time": Route("time", self.time),
            "/v5/system/status": Route("status", self.status),
            "/v5/market/tickers": Route("ticker", self.tickers),
            "/v5/market/orderbook": Route("orderbook", self.orderbook),
        }

    # -- accounting -------------------------------------------------------------------------
    def on_request(self, ctx: RequestContext) -> Reply | None:
        """Count the request in the current 5 s IP window; HTTP 403 ``access too frequent``
        (text/plain) when :class:`~simulator.limits.BybitIpLimiter` refuses it [BY-RL]."""
        if self.limiter.admit(1, ctx.now) is None:
            return None
        return text_reply(403, _ACCESS_TOO_FREQUENT)

    def decorate(self, ctx: RequestContext, reply: Reply) -> None:
        """Add ``X-Bapi-Limit*`` headers to JSON replies [BY-RL] — not to gateway HTML / the
        text 403, which come from the front end, and not to replies that already carry headers
        (the ``rate_limited`` fault sets its own values)."""
        if reply.content_type is not CT_JSON or reply.headers:
            return
        limiter = self.limiter
        limit = limiter.limit
        remaining = max(limit - limiter.used(ctx.now), 0)
        if remaining:
            reset = ctx.server_ms
        else:
            reset = limiter.window_end_ms(ctx.now) + (ctx.server_ms - int(ctx.now * 1000))
        reply.headers.append((b"X-Bapi-Limit", b"%d" % limit))
        reply.headers.append((b"X-Bapi-Limit-Status", b"%d" % remaining))
        reply.headers.append((b"X-Bapi-Limit-Reset-Timestamp", b"%d" % reset))

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def envelope(
        ctx: RequestContext, result: Any, code: int = 0, msg: str = "OK", status: int = 200
    ) -> Reply:
        """``{"retCode", "retMsg", "result", "retExtInfo": {}, "time": server ms}``
        [BY-GUIDE]; ``time`` follows ``clock_skew``."""
        body = {
            "retCode": code,
            "retMsg": msg,
            "result": result,
            "retExtInfo": {},
            "time": ctx.server_ms,
        }
        return json_reply(status, body)

    def _param_error(self, ctx: RequestContext, msg: str) -> Reply:
        """Business error: HTTP 200, ``retCode`` 10001, empty ``result`` [BY-ERR, CCXT-BY]."""
        return self.envelope(ctx, {}, _PARAM_ERROR, msg)

    def _check_spot(self, ctx: RequestContext, symbol_required: bool) -> Reply | None:
        """Validate ``category`` (required; only ``spot`` is simulated) and ``symbol``."""
        category = ctx.query.get("category")
        if category is None or category == "":
            return self._param_error(ctx, "params error: category is required")
        if category not in _CATEGORIES:
            return self._param_error(ctx, f"Illegal category: {category}")
        symbol = ctx.query.get("symbol")
        if symbol is None and symbol_required:
            return self._param_error(ctx, "params error: symbol is required")
        if category != "spot" or (symbol is not None and ctx.market_for(symbol) is None):
            return self._param_error(ctx, "Not supported symbols")
        return None

    @staticmethod
    def _selected(ctx: RequestContext) -> list[str]:
        """Markets named by ``symbol`` (validated by :meth:`_check_spot`), else all listed."""
        symbol = ctx.query.get("symbol")
        market = ctx.market_for(symbol) if symbol is not None else None
        return [market] if market is not None else list(ctx.markets)

    # -- handlers ---------------------------------------------------------------------------
    def time(self, ctx: RequestContext) -> Reply:
        """``GET /v5/market/time`` → ``result.timeSecond`` (s, string), ``result.timeNano`` (ns,
        string), envelope ``time`` (ms) — all consistent and skewed by ``clock_skew`` [BY-TIME]."""
        ms = ctx.server_ms
        nano = ms * 1_000_000 + int(ctx.now * 1_000_000) % 1000 * 1000
        return self.envelope(ctx, {"timeSecond": str(ms // 1000), "timeNano": str(nano)})

    def status(self, ctx: RequestContext) -> Reply:
        """``GET /v5/system/status`` → ``result.list`` of maintenance records [BY-STATUS].

        Normally one ``completed`` record from yesterday (clients must check ``state``, as
        ccxt does: any ``ongoing`` item = maintenance); under ``maintenance`` (the fault, or
        inside a window announced with ``/_control/maintenance``) an ``ongoing`` record is
        listed first; an announced window is listed ``scheduled`` before it and ``completed``
        after it (states per [BY-STATUS]). ``begin``/``end`` are ms strings; ``retMsg`` is
        ``""`` as in the doc example.
        """
        now_ms = ctx.server_ms
        day_start = now_ms - now_ms % 86_400_000
        items = [
            self._item(
                "9f2c8f1e-0000-4000-8000-00000000b7b1",
                "Scheduled system upgrade",
                "completed",
                day_start - 7_200_000,
                day_start - 5_400_000,
            )
        ]
        window = ctx.window
        if window is not None and not ctx.maintenance:  # scheduled, or over: completed
            state = "scheduled" if ctx.now < window.starts_at else "completed"
            if state == "scheduled" or ctx.now >= window.ends_at:
                items.insert(
                    0,
                    self._item(
                        "7c1d3e52-0000-4000-8000-00000000a11c",
                        "System maintenance",
                        state,
                        int(window.starts_at * 1000),
                        int(window.ends_at * 1000),
                    ),
                )
        if ctx.maintenance:
            assert ctx.fault is not None
            begin = int(ctx.fault.created_at * 1000)
            end = begin + int((ctx.fault.duration_s or 3600) * 1000)
            items.insert(
                0,
                self._item(
                    "4d95b2a0-587f-11f0-bcc9-56f28c94d6ea",
                    "System maintenance",
                    "ongoing",
                    begin,
                    end,
                ),
            )
        return self.envelope(ctx, {"list": items}, msg="")

    @staticmethod
    def _item(ident: str, title: str, state: str, begin: int, end: int) -> dict[str, Any]:
        return {
            "id": ident,
            "title": title,
            "state": state,
            "begin": str(begin),
            "end": str(end),
            "href": "",
            "serviceTypes": [1, 2, 3, 4, 5],
            "product": [1, 2, 3, 4],
            "uidSuffix": [],
            "maintainType": 1,
            "env": 1,
        }

    def tickers(self, ctx: RequestContext) -> Reply:
        """``GET /v5/market/tickers?category=spot[&symbol=BTCUSDT]`` → ``result.category`` +
        ``result.list`` of spot tickers, all values strings [BY-TICKERS]. Missing ``category`` →
        retCode 10001 on HTTP 200; unknown symbol → 10001 "Not supported symbols" (message not in
        the facts file)."""
        error = self._check_spot(ctx, symbol_required=False)
        if error is not None:
            return error
        items = []
        for market in self._selected(ctx):
            v = ctx.view(market)
            st = v.stats
            prev = v.scaled(st.open_24h)
            vwap = v.scaled(st.vwap_24h)
            items.append(
                {
                    "symbol": v.venue.symbol,
                    "bid1Price": v.price(v.best_bid),
                    "bid1Size": v.qty(v.bid_qty),
                    "ask1Price": v.price(v.best_ask),
                    "ask1Size": v.qty(v.ask_qty),
                    "lastPrice": v.price(v.last),
                    "prevPrice24h": v.price(prev),
                    "price24hPcnt": f"{(v.last - prev) / prev:.4f}",
                    "highPrice24h": v.price(max(v.scaled(st.high_24h), v.last)),
                    "lowPrice24h": v.price(min(v.scaled(st.low_24h), v.last)),
                    "turnover24h": f"{v.volume_24h * vwap:.8f}",
                    "volume24h": v.qty(v.volume_24h),
                    "usdIndexPrice": f"{(v.best_bid + v.best_ask) / 2.0:.8f}",
                }
            )
        return self.envelope(ctx, {"category": "spot", "list": items})

    def orderbook(self, ctx: RequestContext) -> Reply:
        """``GET /v5/market/orderbook?category=spot&symbol=BTCUSDT&limit=N`` → ``result``
        ``{"s", "a": [[price, size]], "b": ..., "ts": ms, "u": int, "seq": int, "cts": ms}``;
        ``limit`` 1–1000, default 1 [BY-OB]. ``ts``/``cts`` lag under ``stale``."""
        error = self._check_spot(ctx, symbol_required=True)
        if error is not None:
            return error
        limit = ctx.int_param("limit", 1)
        if limit is None or not 1 <= limit <= _MAX_BOOK:
            return self._param_error(ctx, f"params error: limit must be 1-{_MAX_BOOK}")
        v = ctx.view(self._selected(ctx)[0])
        bids, asks = v.levels(limit)
        ts = ctx.data_ms
        result = {
            "s": v.venue.symbol,
            "a": [[p, q] for p, q, _, _ in asks],
            "b": [[p, q] for p, q, _, _ in bids],
            "ts": ts,
            "u": v.update_id,
            "seq": v.update_id * 7 + 1_000_000_000,
            "cts": ts - 5 - v.update_id % 120,
        }
        return self.envelope(ctx, result)

    # -- errors and faults ------------------------------------------------------------------
    def not_found(self, ctx: RequestContext) -> Reply:
        """Unknown path → HTTP 404 "path not found" [BY-ERR]; body shape not documented, so an
        openresty-style HTML page (Bybit's front end) is returned."""
        return gateway_page(404, self.gateway_server)

    def error_body(self, ctx: RequestContext, status: int) -> Reply:
        """``http_error`` JSON body: envelope with 10003 (401), 10006 (429), 10016 (500/503),
        10000 (504), else 10001; 403 → the text "access too frequent" [BY-ERR, BY-RL]."""
        if status == 403:
            return text_reply(403, "access too frequent")
        code, msg = _ERRORS.get(
            status,
            (
                _PARAM_ERROR if status < 500 else 10016,
                "Request parameter error." if status < 500 else "Server error.",
            ),
        )
        return self.envelope(ctx, {}, code, msg, status)

    def fault_params(self, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``rate_limited``: ``retry_after`` (int s 0–259200, default 1: the API limits are per
        rolling second [BY-RL]) → reset timestamp; ``banned``: no parameters; ``api_error``:
        int ``code`` (``retCode``), optional ``http_status`` (default 200) and ``message``."""
        if kind == "api_error":
            return self.api_error_params(spec, None)
        if kind == "banned":
            reject_params(spec, (), "bybit banned")
            return {}
        reject_params(spec, ("retry_after",), "bybit rate_limited")
        return {"retry_after": fault_int(spec, "retry_after", 0, 259_200, 1)}

    def rate_limited(self, ctx: RequestContext, fault: Fault) -> Reply:
        """API rate limit: HTTP 200, ``retCode`` 10006 "Too many visits. Exceeded the API Rate
        Limit." with ``X-Bapi-Limit: <limit>``, ``X-Bapi-Limit-Status: 0`` and
        ``X-Bapi-Limit-Reset-Timestamp`` = server ms + ``retry_after`` s [BY-ERR, BY-RL]."""
        reply = self.envelope(ctx, {}, 10006, _RATE_LIMIT_MSG)
        reset = ctx.server_ms + fault.params["retry_after"] * 1000
        reply.headers.append((b"X-Bapi-Limit", b"%d" % self.limiter.limit))
        reply.headers.append((b"X-Bapi-Limit-Status", b"0"))
        reply.headers.append((b"X-Bapi-Limit-Reset-Timestamp", b"%d" % reset))
        return reply

    def banned(self, ctx: RequestContext, fault: Fault) -> Reply:
        """IP ban: HTTP 403, text/plain ``access too frequent`` [BY-RL]."""
        return text_reply(403, _ACCESS_TOO_FREQUENT)

    def api_error(self, ctx: RequestContext, fault: Fault) -> Reply:
        """Envelope ``{"retCode": code, "retMsg": <documented>, "result": {}, ...}`` on HTTP
        200 (or ``http_status``) [BY-ERR, CCXT-BY handle_errors]; ``retMsg`` from
        :data:`API_MESSAGES`, else ``"Simulated error <code>."``, unless ``message`` is given."""
        params = fault.params
        code = params["code"]
        msg = params.get("message") or API_MESSAGES.get(code) or f"Simulated error {code}."
        return self.envelope(ctx, {}, code, msg, params.get("http_status", 200))

    def book_frame(self, ctx: RequestContext) -> BookFrame:
        """``huge_body``: the envelope of ``/v5/market/orderbook`` (``result.a`` first, then
        ``result.b``) [BY-OB]."""
        v = ctx.view(self._selected(ctx)[0] if self._check_spot(ctx, False) is None else None)
        ts = ctx.data_ms
        tail = b'],"ts":%d,"u":%d,"seq":%d,"cts":%d},"retExtInfo":{},"time":%d}' % (
            ts,
            v.update_id,
            v.update_id * 7 + 1_000_000_000,
            ts - 5,
            ctx.server_ms,
        )
        head = b'{"retCode":0,"retMsg":"OK","result":{"s":"%s","a":[' % v.venue.symbol.encode()
        return BookFrame(head, b'],"b":[', tail, '["%d.%02d","0.5"]', bids_first=False)
