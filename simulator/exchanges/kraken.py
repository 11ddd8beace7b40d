"""Kraken spot REST (``/kraken`` prefix): ``/0/public/Time``, ``SystemStatus``, ``Ticker``,
``Depth``.

Facts: envelope ``{"error": [], "result": {...}}``; errors only in ``error[]`` on HTTP 200 —
"HTTP status codes are generally not used", a non-200 means the request did not reach Kraken
[KR-REST-INTRO]; bodies [KR-TIME, KR-STATUS, KR-SPEC]; error strings [KR-SUPPORT-ERR, KR-ERRORS,
CCXT-KR]. No ping endpoint (UNVERIFIED absence), no usage headers.

Maintenance: ``SystemStatus.status`` becomes ``"maintenance"`` and Ticker/Depth answer
``{"error": ["EService:Unavailable"]}`` (HTTP 200), the unavailable/maintenance error ccxt maps
[CCXT-KR]; Time keeps answering.

Faults (all on HTTP 200, errors in the body): ``rate_limited`` → ``EAPI:Rate limit exceeded``
[CCXT-KR, KR-ERRORS]; ``banned`` → ``EGeneral:Temporary lockout`` [KR-ERRORS]; ``api_error`` →
``{"error": ["<code>"]}`` with ``code`` the full error string ``<E|W><category>:<message>``
[KR-REST-INTRO].
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simulator.bodies import BookFrame
from simulator.exchanges.base import Exchange, RequestContext, Route, reject_params
from simulator.faults import Fault
from simulator.maintenance import KRAKEN_NOTICE_S
from simulator.market import VenueView
from simulator.responses import Reply, json_reply
from simulator.timefmt import iso_s, kraken_rfc1123

__all__ = ["KrakenExchange"]

_MAX_COUNT = 500  # count 1–500, default 100 per third-party clients (UNVERIFIED) [KR-DEPTH]

_UNKNOWN_PAIR = b'{"error":["EQuery:Unknown asset pair"]}'
_INVALID_ARGS = b'{"error":["EGeneral:Invalid arguments"]}'
_UNAVAILABLE = b'{"error":["EService:Unavailable"]}'
_RATE_LIMIT = b'{"error":["EAPI:Rate limit exceeded"]}'
_LOCKOUT = b'{"error":["EGeneral:Temporary lockout"]}'
_ERROR_FORMAT = re.compile(r"[EW][A-Za-z]+:\S.{0,200}")  # <severity><category>:<message>


class KrakenExchange(Exchange):
    """Simulated Kraken public REST API (see module docstring for sources)."""

    name = "kraken"
    gateway_server = "cloudflare"

    def build_routes(self) -> dict[str, Route]:
        """Routes under ``/0/public/``: Time, SystemStatus, Ticker, Depth [KR-TIME, KR-STATUS,
        KR-TICKER, KR-DEPTH]."""
        return {
            "/0/public/Time": Route("time", self.time),
            "/0/public/SystemStatus": Route("status", self.status),
            "/0/public/Ticker": Route("ticker", self.ticker),
            "/0/public/Depth": Route("orderbook", self.depth),
        }

    @staticmethod
    def _pairs(ctx: RequestContext, required: bool) -> Reply | list[str]:
        """The markets ``pair`` names (comma-separated list allowed; AssetPairs keys XXBTZUSD,
        XETHZUSD and altnames XBTUSD, ETHUSD), or every market when absent and not required.
        Unknown → ``EQuery:Unknown asset pair`` [KR-SUPPORT-ERR]; missing but required →
        ``EGeneral:Invalid arguments`` [KR-REST-INTRO format]."""
        pair = ctx.query.get("pair")
        if pair is None:
            return Reply(200, _INVALID_ARGS) if required else list(ctx.markets)
        markets = [ctx.market_for(p.strip().upper()) for p in pair.split(",")]
        found = [m for m in markets if m is not None]
        if len(found) != len(markets):
            return Reply(200, _UNKNOWN_PAIR)
        return list(dict.fromkeys(found))

    @staticmethod
    def _ok(result: Any) -> Reply:
        return json_reply(200, {"error": [], "result": result})

    # -- handlers ---------------------------------------------------------------------------
    def time(self, ctx: RequestContext) -> Reply:
        """``GET /0/public/Time`` → ``result.unixtime`` (int **seconds**) and ``result.rfc1123``
        (``"Thu, 06 Jul 23 18:50:48 +0000"``), both skewed by ``clock_skew`` [KR-TIME]."""
        seconds = ctx.server_ms // 1000
        return self._ok({"unixtime": seconds, "rfc1123": kraken_rfc1123(seconds)})

    def status(self, ctx: RequestContext) -> Reply:
        """``GET /0/public/SystemStatus`` → ``result`` ``{"status": "online" | "maintenance",
        "timestamp": ISO-8601 s (server time), "upcoming_maintenance": [], "emergency": []}``
        [KR-STATUS]. ``status`` is ``maintenance`` under the fault or inside an announced window
        (``/_control/maintenance``); before the window, while it starts within 72 h, it is
        listed in ``upcoming_maintenance`` ("scheduled events that are within 72 hours ...
        removed once its maintenance window starts" [KR-STATUS]). The fields of an
        ``upcoming_maintenance`` item are not in the facts file (**UNVERIFIED**): the simulator
        sends ``{"title", "start_time", "end_time"}`` with ISO-8601 second times (as
        ``timestamp``) plus ``start_timestamp``/``end_timestamp`` epoch seconds."""
        upcoming: list[dict[str, Any]] = []
        window = ctx.scheduled_window()
        if window is not None and window.starts_at - ctx.now <= KRAKEN_NOTICE_S:
            upcoming.append(
                {
                    "title": "Scheduled maintenance",
                    "start_time": iso_s(window.starts_at),
                    "end_time": iso_s(window.ends_at),
                    "start_timestamp": int(window.starts_at),
                    "end_timestamp": int(window.ends_at),
                }
            )
        return self._ok(
            {
                "status": "maintenance" if ctx.maintenance else "online",
                "timestamp": iso_s(ctx.server_ms / 1000.0),
                "upcoming_maintenance": upcoming,
                "emergency": [],
            }
        )

    def ticker(self, ctx: RequestContext) -> Reply:
        """``GET /0/public/Ticker?pair=XBTUSD`` → ``result.XXBTZUSD`` with ``a``/``b`` [price,
        whole-lot vol, lot vol], ``c`` [price, lot vol], ``v``/``p``/``t``/``l``/``h`` [today,
        24 h], ``o`` today's open (midnight UTC); no timestamp field [KR-SPEC, KR-TICKER].
        Without ``pair`` every listed pair is returned, keyed by its AssetPairs name."""
        markets = self._pairs(ctx, required=False)
        if isinstance(markets, Reply):
            return markets
        views = [ctx.view(market) for market in markets]
        return self._ok({v.venue.symbol: self._ticker(v) for v in views})

    @staticmethod
    def _ticker(v: VenueView) -> dict[str, Any]:
        """One pair's ticker object (see :meth:`ticker`)."""
        st = v.stats
        bid_lot = max(int(v.bid_qty), 1)
        ask_lot = max(int(v.ask_qty), 1)
        trades_24h = v.trade_id - v.first_trade_id_24h + 1
        info = {
            "a": [v.price(v.best_ask), str(ask_lot), f"{v.ask_qty:.3f}"],
            "b": [v.price(v.best_bid), str(bid_lot), f"{v.bid_qty:.3f}"],
            "c": [v.price(v.last), v.qty(v.last_qty)],
            "v": [v.qty(v.volume_today), v.qty(v.volume_24h)],
            "p": [v.price(v.scaled(st.vwap_today)), v.price(v.scaled(st.vwap_24h))],
            "t": [max(int(trades_24h * st.day_fraction), 1), trades_24h],
            "l": [
                v.price(min(v.scaled(st.low_today), v.last)),
                v.price(min(v.scaled(st.low_24h), v.last)),
            ],
            "h": [
                v.price(max(v.scaled(st.high_today), v.last)),
                v.price(max(v.scaled(st.high_24h), v.last)),
            ],
            "o": v.price(v.scaled(st.open_today)),
        }
        return info

    def depth(self, ctx: RequestContext) -> Reply:
        """``GET /0/public/Depth?pair=XBTUSD&count=N`` → ``result.XXBTZUSD`` ``{"asks": [[price,
        volume, timestamp]], "bids": ...}``; timestamp = int **seconds** when the level last
        changed (lags by ``age_s`` under ``stale``); ``count`` default 100, values above 500 are
        clamped [KR-SPEC depth.yaml, KR-DEPTH (UNVERIFIED range)]."""
        markets = self._pairs(ctx, required=True)
        if isinstance(markets, Reply):
            return markets
        count = ctx.int_param("count", 100)
        if count is None:
            return Reply(200, b'{"error":["EGeneral:Invalid arguments:count"]}')
        v = ctx.view(markets[0])
        bids, asks = v.levels(min(max(count, 1), _MAX_COUNT))
        now_s = ctx.data_ms // 1000
        book = {
            "asks": [[p, q, now_s - age] for p, q, _, age in asks],
            "bids": [[p, q, now_s - age] for p, q, _, age in bids],
        }
        return self._ok({v.venue.symbol: book})

    # -- errors and faults ------------------------------------------------------------------
    def maintenance_reply(self, ctx: RequestContext) -> Reply | None:
        """``{"error": ["EService:Unavailable"]}`` on HTTP 200 [CCXT-KR]."""
        return Reply(200, _UNAVAILABLE)

    def not_found(self, ctx: RequestContext) -> Reply:
        """Unknown path → HTTP 404 ``{"error": ["EGeneral:Unknown method"]}``. The string is
        what Kraken returns for unknown/POSTed public methods per third-party reports; the HTTP
        status is a simulator choice (not in the facts file)."""
        return json_reply(404, {"error": ["EGeneral:Unknown method"]})

    def error_body(self, ctx: RequestContext, status: int) -> Reply:
        """``http_error`` with ``body: "json"`` (the default for Kraken is the CDN HTML page,
        since non-200 answers do not come from Kraken [KR-REST-INTRO]): ``EAPI:Rate limit
        exceeded`` (429), ``EService:Unavailable`` (5xx), ``EGeneral:Invalid arguments`` (4xx)."""
        if status == 429:
            return Reply(429, _RATE_LIMIT)
        return Reply(status, _UNAVAILABLE if status >= 500 else _INVALID_ARGS)

    api_code_help = "a full error string '<E|W><Category>:<message>' such as 'EService:Unavailable'"

    def fault_params(self, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``rate_limited`` / ``banned``: no parameters (Kraken reports both in the body, no
        ``Retry-After`` [KR-REST-INTRO]); ``api_error``: ``code`` = the full error string,
        optional ``http_status`` (default 200), no ``message`` (the code is the message)."""
        if kind == "api_error":
            return self.api_error_params(spec, _kraken_code, message=False)
        reject_params(spec, (), f"kraken {kind}")
        return {}

    def rate_limited(self, ctx: RequestContext, fault: Fault) -> Reply:
        """HTTP 200 ``{"error": ["EAPI:Rate limit exceeded"]}`` [CCXT-KR, KR-ERRORS]."""
        return Reply(200, _RATE_LIMIT)

    def banned(self, ctx: RequestContext, fault: Fault) -> Reply:
        """HTTP 200 ``{"error": ["EGeneral:Temporary lockout"]}`` ("typically a few minutes")
        [KR-ERRORS]."""
        return Reply(200, _LOCKOUT)

    def api_error(self, ctx: RequestContext, fault: Fault) -> Reply:
        """``{"error": ["<code>"]}`` on HTTP 200 (or ``http_status``) [KR-REST-INTRO]."""
        params = fault.params
        return json_reply(params.get("http_status", 200), {"error": [params["code"]]})

    def book_frame(self, ctx: RequestContext) -> BookFrame:
        """``huge_body``: the ``/0/public/Depth`` envelope, levels ``[price, volume, ts s]``
        [KR-SPEC depth.yaml]."""
        level = '["%d.%02d000","0.50000000",' + str(ctx.data_ms // 1000) + "]"
        head = b'{"error":[],"result":{"XXBTZUSD":{"asks":['
        return BookFrame(head, b'],"bids":[', b"]}}}", level, bids_first=False)


def _kraken_code(value: Any) -> str | None:
    """Kraken ``api_error`` ``code``: ``<E|W><Category>:<message>`` (≤ 200 chars after the
    colon) [KR-REST-INTRO]."""
    return value if isinstance(value, str) and _ERROR_FORMAT.fullmatch(value) else None
