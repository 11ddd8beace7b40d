"""Coinbase Exchange REST (``/coinbase`` prefix): ``/time``, product ticker and product book.

Facts: bodies [CB-TICKER, CB-TIME-EX, CCXT-CBX]; ISO-8601 µs timestamps and string decimals
[COINCISE-CB response_formats.md]; errors ``{"message": ...}`` with standard HTTP statuses, 429 on
rate limit [COINCISE-CB network_connectivity.md, rate_limits.md]. Coinbase Exchange has no ping
and no system-status API (status page only), so the ``maintenance`` fault is rejected for it.

Faults: ``rate_limited`` → HTTP 429 ``{"message": "Too Many Requests"}`` (``Retry-After`` only
when ``retry_after`` is given: no rate-limit headers are documented, UNVERIFIED); ``api_error``
→ HTTP status = ``code`` (400–599) with ``{"message": ...}``. No IP-ban answer is documented
(UNVERIFIED), so ``banned`` is rejected.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from simulator.bodies import BookFrame
from simulator.exchanges.base import Exchange, RequestContext, Route, fault_int, reject_params
from simulator.faults import Fault
from simulator.responses import Header, Reply, json_reply, reason_phrase
from simulator.timefmt import iso_ms, iso_us

__all__ = ["CoinbaseExchange"]

_LEVEL2_DEPTH = 50  # the real level-2 book is the whole aggregated book; 50 levels suffice here
_LEVEL3_DEPTH = 50
_NOT_FOUND = b'{"message":"NotFound"}'


class CoinbaseExchange(Exchange):
    """Simulated Coinbase Exchange public REST API (see module docstring for sources)."""

    name = "coinbase"
    gateway_server = "cloudflare"

    def build_routes(self) -> dict[str, Route]:
        """Routes: ``/time`` plus templated ``/products/{id}/ticker`` and ``/products/{id}/book``
        (resolved by :meth:`resolve`) [CB-TICKER, CCXT-CBX]."""
        return {
            "/time": Route("time", self.time),
            "/products/{id}/ticker": Route("ticker", self.ticker),
            "/products/{id}/book": Route("orderbook", self.book),
        }

    def resolve(self, path: str) -> Route | None:
        """Match ``/time`` exactly and ``/products/<any id>/(ticker|book)``; the product id is
        checked by the handler (unknown product → 404 NotFound)."""
        route = self.routes.get(path)
        if route is not None:
            return route
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "products" and parts[2]:
            return self.routes.get(f"/products/{{id}}/{parts[3]}")
        return None

    @staticmethod
    def _product(ctx: RequestContext) -> str | None:
        """The unified market of the path's product id (BTC-USD, ETH-USD), or None."""
        return ctx.market_for(ctx.path.split("/")[2])

    # -- handlers ---------------------------------------------------------------------------
    def time(self, ctx: RequestContext) -> Reply:
        """``GET /time`` → ``{"iso": ISO-8601 ms, "epoch": float seconds}`` (skewed)
        [CB-TIME-EX]."""
        ms = ctx.server_ms
        return json_reply(200, {"iso": iso_ms(ms / 1000.0), "epoch": ms / 1000.0})

    def ticker(self, ctx: RequestContext) -> Reply:
        """``GET /products/BTC-USD/ticker`` → ``{"trade_id": int, "price", "size", "time":
        ISO-8601 µs last-trade time, "bid", "ask", "volume"}`` [CB-TICKER]. ``time`` lags by
        ``age_s`` under ``stale``."""
        market = self._product(ctx)
        if market is None:
            return Reply(404, _NOT_FOUND)
        v = ctx.view(market)
        trade_ms = ctx.data_ms - (v.t_ms - v.trade_ms) - 1  # strictly before data time
        micros = (v.trade_id * 7919) % 1000  # deterministic sub-ms part
        body = {
            "trade_id": v.trade_id,
            "price": v.price(v.last),
            "size": v.qty(v.last_qty),
            "time": iso_us(trade_ms / 1000.0 + micros / 1e6),
            "bid": v.price(v.best_bid),
            "ask": v.price(v.best_ask),
            "volume": v.qty(v.volume_24h),
        }
        return json_reply(200, body)

    def book(self, ctx: RequestContext) -> Reply:
        """``GET /products/BTC-USD/book?level=1|2|3`` → ``{"sequence": int, "bids": [...],
        "asks": [...]}``; level 1/2 entries ``[price, size, num_orders]``, level 3
        ``[price, size, order_id]`` [CCXT-CBX]; default level 1. Bad level → 400
        ``{"message": "Invalid level"}`` (message UNVERIFIED)."""
        market = self._product(ctx)
        if market is None:
            return Reply(404, _NOT_FOUND)
        level = ctx.query.get("level", "1")
        if level not in ("1", "2", "3"):
            return json_reply(400, {"message": "Invalid level"})
        v = ctx.view(market)
        if level == "3":
            bids, asks = v.levels(_LEVEL3_DEPTH)
            tick = v.tick
            body = {
                "sequence": v.update_id,
                "bids": [
                    [p, q, str(uuid.UUID(int=hash((tick, i, 1)) & (2**128 - 1)))]
                    for i, (p, q, _, _) in enumerate(bids)
                ],
                "asks": [
                    [p, q, str(uuid.UUID(int=hash((tick, i, 2)) & (2**128 - 1)))]
                    for i, (p, q, _, _) in enumerate(asks)
                ],
            }
        else:
            bids, asks = v.levels(1 if level == "1" else _LEVEL2_DEPTH)
            body = {
                "sequence": v.update_id,
                "bids": [[p, q, n] for p, q, n, _ in bids],
                "asks": [[p, q, n] for p, q, n, _ in asks],
            }
        return json_reply(200, body)

    # -- errors and faults ------------------------------------------------------------------
    def not_found(self, ctx: RequestContext) -> Reply:
        """Unknown path → HTTP 404 ``{"message": "NotFound"}`` (same as an unknown product)."""
        return Reply(404, _NOT_FOUND)

    def error_body(self, ctx: RequestContext, status: int) -> Reply:
        """``http_error`` JSON: ``{"message": ...}`` — 401 "Invalid API Key", 404 "NotFound",
        else the HTTP reason phrase [COINCISE-CB network_connectivity.md]."""
        message = {401: "Invalid API Key", 404: "NotFound"}.get(status, reason_phrase(status))
        return json_reply(status, {"message": message})

    api_code_help = "an integer HTTP status between 400 and 599"

    def fault_params(self, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``rate_limited``: optional ``retry_after`` (int s; UNVERIFIED header);
        ``banned``: rejected; ``api_error``: ``code`` 400–599 (the HTTP status) and optional
        ``message``."""
        if kind == "api_error":
            return self.api_error_params(spec, _status_code, http_status=False)
        if kind == "banned":
            return super().fault_params(kind, spec)
        reject_params(spec, ("retry_after",), "coinbase rate_limited")
        retry_after = fault_int(spec, "retry_after", 0, 259_200, None)
        return {} if retry_after is None else {"retry_after": retry_after}

    def rate_limited(self, ctx: RequestContext, fault: Fault) -> Reply:
        """HTTP 429 ``{"message": "Too Many Requests"}`` [COINCISE-CB rate_limits.md];
        ``Retry-After`` only with ``retry_after`` (UNVERIFIED)."""
        headers: list[Header] = []
        if "retry_after" in fault.params:
            headers.append((b"Retry-After", b"%d" % fault.params["retry_after"]))
        return json_reply(429, {"message": "Too Many Requests"}, headers)

    def api_error(self, ctx: RequestContext, fault: Fault) -> Reply:
        """HTTP ``code`` with ``{"message": ...}``: the ``message`` parameter, else the
        messages of :meth:`error_body` [COINCISE-CB network_connectivity.md]."""
        reply = self.error_body(ctx, fault.params["code"])
        if "message" in fault.params:
            reply = json_reply(reply.status, {"message": fault.params["message"]})
        return reply

    def book_frame(self, ctx: RequestContext) -> BookFrame:
        """``huge_body``: the level-2 book ``{"sequence", "bids": [[price, size, num_orders]],
        "asks"}`` [CCXT-CBX]."""
        head = b'{"sequence":%d,"bids":[' % ctx.view().update_id
        return BookFrame(head, b'],"asks":[', b"]}", '["%d.%02d","0.5",1]')


def _status_code(value: Any) -> int | None:
    """Coinbase ``api_error`` ``code``: an int HTTP status 400–599."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599
    return value if ok else None
