"""Binance spot market-data WebSocket streams as the simulator serves them [BN-WS].

Paths under ``/binance``: raw ``/ws/<streamName>`` (one stream from the path, raw payloads),
``/ws`` (streams subscribed by message, raw payloads), combined ``/stream?streams=a/b`` and
``/stream`` + ``SUBSCRIBE`` (each event wrapped ``{"stream": name, "data": raw}``)
[BN-WS §General WSS information]. Symbols are lowercase in stream names.

Streams (every documented name form) [BN-WS §Trade Streams, §Individual Symbol Ticker Streams,
§Individual Symbol Book Ticker Streams, §Partial Book Depth Streams, §Diff. Depth Stream]:
``<sym>@trade`` (real time, ``E``/``T``/``t``), ``<sym>@aggTrade`` (one aggregate of the tick's
trades; its fields beyond ``e``/``E``/``s`` are not in the facts file: UNVERIFIED, shaped after
``@trade`` with ``a``/``f``/``l``), ``<sym>@ticker`` (``24hrTicker`` every 1000 ms),
``<sym>@bookTicker`` (``u``, no event time, on change), ``<sym>@depth<5|10|20>[@100ms]``
(``lastUpdateId``/``bids``/``asks``, no ``E``, every 1000 or 100 ms) and ``<sym>@depth[@100ms]``
(``depthUpdate`` with ``U``/``u``/``E`` every 1000 or 100 ms; ``U`` = previous ``u`` + 1).
The diff stream covers the top :attr:`Dialect.diff_depth` (1000) levels: a REST
``/api/v3/depth?limit=1000`` snapshot plus the events whose ``u`` exceeds its ``lastUpdateId``
(the first one holds ``lastUpdateId`` within ``[U;u]``) reproduce every later REST snapshot of
that depth [BN-WS §How to manage a local order book correctly]. A shallower snapshot misses
levels that move into its range without changing, as Binance documents for levels beyond its
5000-level snapshot; levels leaving the 1000-level window are sent with quantity 0.

Control messages [BN-WS §Live Subscribing/Unsubscribing, §Error Messages]: ``SUBSCRIBE`` /
``UNSUBSCRIBE`` → ``{"result":null,"id":…}``, ``LIST_SUBSCRIPTIONS`` → ``{"result":[…],"id":…}``,
``SET_PROPERTY``/``GET_PROPERTY`` ``combined``. Errors use the OBSERVED wire form
``{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":…}`` [ctubio/Krypto-trading-bot
#1121]; code 3 for invalid JSON, code 2 for other invalid requests (their exact texts beyond the
documented "Invalid request: …" prefix are a simulator choice). A well-formed stream of an
unknown symbol is accepted and never emits (OBSERVED [JKorf/Binance.Net#620]).

Keep-alive and limits [BN-WS §General WSS information, §WebSocket Limits]: a server ping frame
every 20 s, no pong (with the ping's payload) within 60 s → close; more than 5 incoming frames
per second (pings, pongs, JSON) → close; at most 1024 streams per connection; the connection is
closed after 24 h. The close code on these cuts is not documented (1000 here).

Faults: ``ws_maintenance_notice`` → ``serverShutdown`` ([BN-WS §Server Shutdown]: raw
``{"e":"serverShutdown","E":…}``, combined under stream ``!serverShutdown``); ``ws_stall`` and
``ws_blackhole`` hold the streams (their cursors stay, so the diff stream resumes with ``U`` =
the last sent ``u`` + 1 and no gap; trade ids jump past the trades of the pause); ``ws_gap`` drops
every second diff-depth, trade and aggTrade event of the narrowed channel (so ``U`` and trade
ids jump); ``ws_reject`` answers ``SUBSCRIBE`` (and URL streams) with the invalid-stream error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from simulator.market import TICK_MS, VenueView
from simulator.ws.books import interval_diff
from simulator.ws.dialect import KeepAliveRule, WsDialect, WsSession

__all__ = ["STREAM_NAME", "Dialect"]

STREAM_NAME = re.compile(
    r"(?P<sym>[a-z0-9]+)@(?:(?P<kind>trade|aggTrade|ticker|bookTicker)"
    r"|depth(?P<levels>5|10|20)?(?:@(?P<speed>100|1000)ms)?)"
)
"""Every documented stream-name form this simulator serves (``fullmatch``)."""

_CHANNEL = {"trade": "trades", "aggTrade": "trades", "ticker": "ticker", "bookTicker": "ticker"}
_ID = re.compile(r"[A-Za-z0-9]{1,36}")
_MAX_STREAMS = 1024  # per connection [BN-WS §WebSocket Limits]
_MAX_TRADES_PER_TICK = 200
_DAY_MS = 86_400_000
_METHODS = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


class _Stream:
    """One subscribed stream and its per-connection cursor."""

    __slots__ = (
        "channel",
        "count",
        "kind",
        "last_tick",
        "last_trade",
        "last_u",
        "levels",
        "market",
        "name",
        "next_ms",
        "period_ms",
        "sent",
    )

    def __init__(self, name: str, match: re.Match[str], market: str | None) -> None:
        self.name = name
        self.market = market
        kind = match["kind"]
        self.levels = int(match["levels"]) if match["levels"] else 0
        if kind is None:
            kind = "partial" if self.levels else "diff"
        self.kind = kind
        self.channel = _CHANNEL.get(kind, "book")
        self.period_ms = int(match["speed"] or 1000) if kind in ("partial", "diff") else 0
        if kind == "ticker":
            self.period_ms = 1000
        self.next_ms = 0
        self.last_tick: int | None = None
        self.last_u = 0
        self.last_trade: int | None = None
        self.sent: tuple[float, float, float, float] | None = None
        self.count = 0


class Dialect(WsDialect):
    """Binance spot streams (see the module docstring for every fact and its source).

    Class attributes tests may change: :attr:`keepalive` (ping interval, pong deadline, the
    5 frames/s limit and the 24 h lifetime) and :attr:`diff_depth`.
    """

    exchange: ClassVar[str] = "binance"
    paths: ClassVar[tuple[str, ...]] = ("/ws", "/ws/", "/stream")
    keepalive: ClassVar[KeepAliveRule] = KeepAliveRule(
        server_ping_interval=20.0,
        pong_deadline=60.0,
        max_incoming_per_s=5,
        max_lifetime=86_400.0,
        close_code=1000,
    )
    diff_depth: ClassVar[int] = 1000
    """Levels per side the diff-depth stream maintains (the REST snapshot to sync with must
    not be deeper)."""

    def __init__(self, session: WsSession, path: str, query: Mapping[str, str]) -> None:
        """Per-connection state: combined or raw payloads, the subscribed streams."""
        super().__init__(session, path, query)
        self.combined = path == "/stream"
        self.subscriptions: dict[str, _Stream] = {}

    # -- connection -----------------------------------------------------------------------
    def on_open(self) -> None:
        """Subscribe the streams the URL names (``/ws/<name>``, ``/stream?streams=a/b``)."""
        names: list[str] = []
        if self.path.startswith("/ws/"):
            names = [self.path[len("/ws/") :]]
        elif self.combined and self.query.get("streams"):
            names = self.query["streams"].split("/")
        if not names:
            return
        error = self._subscribe(names)
        if error is not None:
            self._error(2, error, None)

    def maintenance_notice(self) -> str | None:
        """``serverShutdown`` [BN-WS §Server Shutdown] (wrapped as ``!serverShutdown`` on
        combined connections)."""
        event = {"e": "serverShutdown", "E": self.session.now_ms()}
        if self.combined:
            return _DUMPS({"stream": "!serverShutdown", "data": event})
        return _DUMPS(event)

    # -- control messages -----------------------------------------------------------------
    def on_text(self, text: str) -> None:
        """Answer ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS``/``SET_PROPERTY``/
        ``GET_PROPERTY`` with the documented bodies, anything else with an error."""
        try:
            msg = json.loads(text)
        except ValueError as exc:
            line, col = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
            self._error(3, f"Invalid JSON: expected value at line {line} column {col}", None)
            return
        if not isinstance(msg, dict):
            self._error(2, "Invalid request: request must be a JSON object", None)
            return
        req_id = msg.get("id")
        if not _valid_id(req_id):
            self._error(2, "Invalid request: invalid `id`", None)
            return
        method = msg.get("method")
        params = msg.get("params", [])
        if method is None:
            self._error(2, "Invalid request: missing field `method`", req_id)
        elif method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                self._error(2, "Invalid request: `params` must be a list of stream names", req_id)
            elif method == "SUBSCRIBE":
                error = self._subscribe(params)
                if error is None:
                    self._result(None, req_id)
                else:
                    self._error(2, error, req_id)
            else:
                for name in params:
                    self.subscriptions.pop(name, None)
                self._result(None, req_id)
        elif method == "LIST_SUBSCRIPTIONS":
            self._result(list(self.subscriptions), req_id)
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            self._property(method, params, req_id)
        else:
            self._error(2, f"Invalid request: unknown variant `{method}`, expected one of "
                        f"{_METHODS}", req_id)  # fmt: skip

    def _property(self, method: str, params: Any, req_id: Any) -> None:
        """``combined`` is the one property [BN-WS §Live Subscribing/Unsubscribing]."""
        if not isinstance(params, list) or not params or params[0] != "combined":
            self._error(0, "Unknown property", req_id)
        elif method == "GET_PROPERTY":
            self._result(self.combined, req_id)
        elif len(params) != 2 or not isinstance(params[1], bool):
            self._error(1, "Invalid value type: expected Boolean", req_id)
        else:
            self.combined = params[1]
            self._result(None, req_id)

    def _subscribe(self, names: list[str]) -> str | None:
        """Add ``names`` (all or none); the error text if one is invalid or refused."""
        fault = self.session.fault()
        reject = fault is not None and fault["fault"] == "ws_reject"
        parsed = []
        for name in names:
            match = STREAM_NAME.fullmatch(name)
            if match is None:
                return "Invalid request: invalid stream"
            stream = _Stream(name, match, None)
            if reject and fault is not None and fault.get("channel") in (None, stream.channel):
                return "Invalid request: invalid stream"
            stream.market = self.session.market.market_for_symbol(
                self.exchange, match["sym"].upper()
            )
            parsed.append(stream)
        if len(set(self.subscriptions) | set(names)) > _MAX_STREAMS:
            return f"Invalid request: too many parameters (at most {_MAX_STREAMS} streams)"
        for stream in parsed:
            self.subscriptions.setdefault(stream.name, stream)
        return None

    def _result(self, result: Any, req_id: Any) -> None:
        self.session.send_control_text(_DUMPS({"result": result, "id": req_id}))

    def _error(self, code: int, msg: str, req_id: Any) -> None:
        self.session.send_control_text(_DUMPS({"error": {"code": code, "msg": msg}, "id": req_id}))

    # -- data -----------------------------------------------------------------------------
    def on_tick(self, now_ms: int) -> None:
        """Emit what each subscribed stream has due at ``now_ms``."""
        fault = self.session.fault()
        kind = fault["fault"] if fault is not None else None
        narrowed = str(fault.get("channel") or "*") if fault is not None else "*"
        market = self.session.market
        for stream in list(self.subscriptions.values()):
            if stream.market is None:
                continue  # unknown symbol: accepted and silent (OBSERVED)
            if kind == "ws_blackhole" or (kind == "ws_stall" and narrowed in ("*", stream.channel)):
                continue  # held: cursors stay, so the diff stream resumes without a gap
            view = market.view(self.exchange, now_ms, stream.market)
            gap = kind == "ws_gap" and narrowed in ("*", stream.channel)
            stream_kind = stream.kind
            if stream_kind == "trade" or stream_kind == "aggTrade":
                self._trades(stream, view, gap)
            elif stream_kind == "bookTicker":
                self._book_ticker(stream, view)
            elif now_ms >= stream.next_ms:
                period = stream.period_ms
                stream.next_ms = (now_ms // period + 1) * period
                if stream_kind == "ticker":
                    self._ticker(stream, view)
                elif stream_kind == "partial":
                    self._partial(stream, view)
                else:
                    self._diff(stream, view, gap)

    def _emit(self, stream: _Stream, data: dict[str, Any]) -> None:
        wrapped = {"stream": stream.name, "data": data} if self.combined else data
        self.session.send_text(_DUMPS(wrapped), stream.channel)

    def _trades(self, stream: _Stream, v: VenueView, gap: bool) -> None:
        """``@trade``: one event per trade since the last tick; ``@aggTrade``: one per tick."""
        last = stream.last_trade
        stream.last_trade = v.trade_id
        if last is None or v.trade_id <= last:
            return
        first = max(last + 1, v.trade_id - _MAX_TRADES_PER_TICK + 1)
        venue = v.venue
        symbol = venue.symbol
        if stream.kind == "aggTrade":
            stream.count += 1
            if gap and stream.count % 2 == 0:
                return
            qty = sum(_trade_qty(t) for t in range(first, v.trade_id + 1)) * v.volume_mult
            self._emit(
                stream,
                {
                    "e": "aggTrade",
                    "E": self.session.now_ms(),
                    "s": symbol,
                    "a": first,
                    "p": v.price(v.last),
                    "q": v.qty(qty),
                    "f": first,
                    "l": v.trade_id,
                    "T": _trade_ms(v, v.trade_id),
                    "m": v.last == v.best_bid,
                    "M": True,
                },
            )
            return
        for trade_id in range(first, v.trade_id + 1):
            stream.count += 1
            if gap and stream.count % 2 == 0:
                continue
            maker = trade_id % 2 == 0  # buyer is the maker: the trade hit the bid
            self._emit(
                stream,
                {
                    "e": "trade",
                    "E": self.session.now_ms(),
                    "s": symbol,
                    "t": trade_id,
                    "p": v.price(v.best_bid if maker else v.best_ask),
                    "q": v.qty(_trade_qty(trade_id) * v.volume_mult),
                    "T": _trade_ms(v, trade_id),
                    "m": maker,
                    "M": True,
                },
            )

    def _book_ticker(self, stream: _Stream, v: VenueView) -> None:
        """``@bookTicker``: best bid/ask with the book update id ``u``, on change."""
        top = (v.best_bid, v.bid_qty, v.best_ask, v.ask_qty)
        if top == stream.sent:
            return
        stream.sent = top
        self._emit(
            stream,
            {
                "u": v.update_id,
                "s": v.venue.symbol,
                "b": v.price(v.best_bid),
                "B": v.qty(v.bid_qty),
                "a": v.price(v.best_ask),
                "A": v.qty(v.ask_qty),
            },
        )

    def _ticker(self, stream: _Stream, v: VenueView) -> None:
        """``@ticker``: the rolling 24 h ``24hrTicker`` event (same figures as REST)."""
        now = self.session.now_ms()
        st = v.stats
        open_ = v.scaled(st.open_24h)
        change = v.last - open_
        self._emit(
            stream,
            {
                "e": "24hrTicker",
                "E": now,
                "s": v.venue.symbol,
                "p": v.price(change),
                "P": f"{change / open_ * 100.0:.3f}",
                "w": v.price(v.scaled(st.vwap_24h)),
                "x": v.price(open_),
                "c": v.price(v.last),
                "Q": v.qty(v.last_qty),
                "b": v.price(v.best_bid),
                "B": v.qty(v.bid_qty),
                "a": v.price(v.best_ask),
                "A": v.qty(v.ask_qty),
                "o": v.price(open_),
                "h": v.price(max(v.scaled(st.high_24h), v.last)),
                "l": v.price(min(v.scaled(st.low_24h), v.last)),
                "v": v.qty(v.volume_24h),
                "q": f"{v.volume_24h * v.scaled(st.vwap_24h):.8f}",
                "O": now - _DAY_MS,
                "C": now,
                "F": v.first_trade_id_24h,
                "L": v.trade_id,
                "n": v.trade_id - v.first_trade_id_24h + 1,
            },
        )

    def _partial(self, stream: _Stream, v: VenueView) -> None:
        """``@depth<N>``: the top N levels with ``lastUpdateId`` (no ``E``, no symbol)."""
        bids, asks = v.levels(stream.levels)
        self._emit(
            stream,
            {
                "lastUpdateId": v.update_id,
                "bids": [[p, q] for p, q, _, _ in bids],
                "asks": [[p, q] for p, q, _, _ in asks],
            },
        )

    def _diff(self, stream: _Stream, v: VenueView, gap: bool) -> None:
        """``@depth``: every level changed since the previous event, ``U`` = previous ``u``
        + 1; under ``ws_gap`` every second event is not sent (``U`` jumps)."""
        tick = v.tick
        if stream.last_tick is None:
            stream.last_tick = tick - stream.period_ms // TICK_MS
            stream.last_u = self._update_id(stream, stream.last_tick)
        if tick <= stream.last_tick:
            return
        bids, asks = interval_diff(
            self.session.market, self.exchange, v.venue.market, stream.last_tick, tick,
            self.diff_depth,
        )  # fmt: skip
        first = stream.last_u + 1
        stream.last_tick = tick
        stream.last_u = v.update_id
        stream.count += 1
        if gap and stream.count % 2 == 0:
            return
        self._emit(
            stream,
            {
                "e": "depthUpdate",
                "E": self.session.now_ms(),
                "s": v.venue.symbol,
                "U": first,
                "u": v.update_id,
                "b": bids,
                "a": asks,
            },
        )

    def _update_id(self, stream: _Stream, tick: int) -> int:
        assert stream.market is not None
        return self.session.market.view(self.exchange, tick * TICK_MS, stream.market).update_id


def _valid_id(value: Any) -> bool:
    """``id``: int64, alphanumeric string ≤ 36, or null [BN-WS §Live Subscribing]."""
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _trade_qty(trade_id: int) -> float:
    """A deterministic trade size for ``trade_id`` (0.00001–0.5), before the view's
    ``volume_mult`` (bursts, ``volume_spike``) scales it."""
    x = (trade_id * 2654435761) % 4294967296 / 4294967296.0
    return 0.00001 + x**3 * 0.5


def _trade_ms(v: VenueView, trade_id: int) -> int:
    """Trade time (ms) of ``trade_id``: trades are ``trade_interval_ms`` apart."""
    return v.trade_ms - (v.trade_id - trade_id) * v.venue.trade_interval_ms
