"""Kraken spot WebSocket v2, as the simulator serves it at ``/kraken/v2``.

Facts (tags are Kraken's own documentation pages):

* On connect (and on engine status change) the server sends ``{"channel":"status","type":
  "update","data":[{"api_version":"v2","connection_id":…,"system":"online","version":
  "2.0.0"}]}``; ``system`` ∈ online, maintenance, cancel_only, post_only [KR-STATUS2].
* Subscribe ``{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD",…],
  "depth":10,"snapshot":true},"req_id":1}`` → **one ack per symbol** ``{"method":"subscribe",
  "result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,
  "time_in":…,"time_out":…}`` (``req_id`` echoed when given); ``depth`` ∈ 10, 25, 100, 500,
  1000 (default 10) [KR-BOOK2 §Subscribe]. Errors: ``success:false`` plus an ``error`` string
  [KR-TICK2 §Subscribe Ack Schema]; an unknown pair answers ``{"error":"Currency pair not
  supported XBT/USD","method":"subscribe","success":false,"symbol":"XBT/USD","time_in":…,
  "time_out":…}`` and a repeated subscription "Already subscribed" (both OBSERVED); other error
  texts here are UNVERIFIED.
* Keep-alive: none required. ``{"channel":"heartbeat"}`` about once per second when no other
  channel update was sent, once anything is subscribed [KR-HB2]; a ``heartbeat`` subscribe is
  accepted too [KR-RECON]. ``{"method":"ping","req_id":101}`` → ``{"method":"pong","req_id":101,
  "time_in":…,"time_out":…}`` [KR-PING2].
* Channels: ``ticker`` (snapshot, then an update on every trade, or on a best bid/offer change
  with ``event_trigger:"bbo"``) [KR-TICK2]; ``trade`` (snapshot of the last 50 trades unless
  ``snapshot:false``, then updates; ``trade_id`` sequential per book, ``timestamp`` RFC3339)
  [KR-TRADE2]; ``book`` (snapshot then updates, both with ``checksum``, updates with
  ``timestamp``; a client truncates to its depth) [KR-BOOK2; KR-CKS2]. Prices and quantities
  are JSON numbers in full precision (BTC/USD 1 price decimal, ETH/USD 2, quantities 8)
  [KR-INTRO §Websockets v2].

Faults: ``ws_checksum`` sends a wrong checksum on every book message. ``ws_gap`` drops one book
update (or one trade update) in :attr:`Dialect.gap_every` while it holds, the first at once:
Kraken has no sequence numbers, so a lost book update shows as a checksum mismatch on the next
message, and a lost trade as a ``trade_id`` jump [KR-CKS2 §Algorithm]. ``ws_reject`` answers
every symbol with the OBSERVED "Currency pair not supported" error.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any, ClassVar

from simulator.market import TICK_MS, VenueView
from simulator.timefmt import iso_us
from simulator.ws.dialect import KeepAliveRule, WsDialect, WsSession
from simulator.ws.dialects.kraken_book import (
    KrakenLevel,
    kraken_checksum,
    kraken_diff,
    levels_json,
    ws_levels,
)

__all__ = ["Dialect"]

_DEPTHS = (10, 25, 100, 500, 1000)
_CHANNELS = ("ticker", "trade", "book", "heartbeat")
_KIND = {"ticker": "ticker", "trade": "trades", "book": "book"}
_TRADE_SNAPSHOT = 50  # last 50 trades [KR-TRADE2]
_HEARTBEAT_MS = 1000  # ~1 s without other updates [KR-HB2]


def _decimals(step: float) -> int:
    text = f"{step:.10f}".rstrip("0")
    return len(text.partition(".")[2])


_CACHE_MAX = 2048
_LEVELS: dict[tuple[int, str, int, int], tuple[list[KrakenLevel], list[KrakenLevel], int]] = {}
"""(market object, symbol, depth, tick) → WebSocket-precision levels and their checksum."""
_DIFFS: dict[tuple[int, str, int, int, int], tuple[str, str] | None] = {}
"""(market object, symbol, depth, from tick, to tick) → the update's bids/asks JSON (None when
nothing changed)."""


def _book_state(
    market_id: int, symbol: str, depth: int, v: VenueView
) -> tuple[list[KrakenLevel], list[KrakenLevel], int]:
    """The top ``depth`` levels of ``v`` in WebSocket precision and their checksum, computed once
    per tick for every connection."""
    key = (market_id, symbol, depth, v.tick)
    state = _LEVELS.get(key)
    if state is None:
        digits = _decimals(v.venue.tick_size)
        raw_bids, raw_asks = v.levels(depth)
        bids, asks = ws_levels(raw_bids, digits), ws_levels(raw_asks, digits)
        state = (bids, asks, kraken_checksum(bids, asks))
        if len(_LEVELS) >= _CACHE_MAX:
            _LEVELS.clear()
        _LEVELS[key] = state
    return state


class _Sub:
    """One (channel, symbol) subscription and what was last sent on it."""

    __slots__ = (
        "asks",
        "bids",
        "depth",
        "event_trigger",
        "last",
        "market",
        "sent",
        "snapshot",
        "tick",
    )

    def __init__(self, market: str, depth: int, snapshot: bool, event_trigger: str) -> None:
        self.market = market
        self.depth = depth
        self.snapshot = snapshot
        self.event_trigger = event_trigger
        self.sent = False
        self.last: tuple[object, ...] = ()
        self.bids: list[KrakenLevel] = []
        self.asks: list[KrakenLevel] = []
        self.tick = 0


class Dialect(WsDialect):
    """Kraken spot WebSocket v2 (see the module docstring for facts and sources).

    Class attributes tests may change: ``gap_every`` (10).
    """

    exchange: ClassVar[str] = "kraken"
    paths: ClassVar[tuple[str, ...]] = ("/v2",)
    keepalive: ClassVar[KeepAliveRule] = KeepAliveRule()
    gap_every: ClassVar[int] = 10

    def __init__(self, session: WsSession, path: str, query: Mapping[str, str]) -> None:
        """Per-connection state: ``connection_id``, subscriptions, last data time."""
        super().__init__(session, path, query)
        self.connection_id = random.getrandbits(63)
        self.subs: dict[tuple[str, str], _Sub] = {}
        self.heartbeat = False
        self._last_data_ms = session.now_ms()
        self._gap_count: dict[tuple[str, str], int] = {}
        self._maintenance = False
        self._last_tick = -1

    # -- helpers ----------------------------------------------------------------------------
    def _now_iso(self) -> str:
        return iso_us(self.session.now_ms() / 1000.0)

    def _reply(self, body: dict[str, Any]) -> None:
        self.session.send_control_text(json.dumps(body, separators=(",", ":")))

    def _status(self, system: str) -> str:
        data = {"api_version": "v2", "connection_id": self.connection_id, "system": system}
        data["version"] = "2.0.0"
        body = {"channel": "status", "type": "update", "data": [data]}
        return json.dumps(body, separators=(",", ":"))

    def _gap_now(self, key: tuple[str, str]) -> bool:
        """Under ``ws_gap``: True for the first update and then every :attr:`gap_every`-th."""
        if self.active_fault("ws_gap", _KIND[key[0]]) is None:
            self._gap_count.pop(key, None)
            return False
        n = self._gap_count.get(key, 0)
        self._gap_count[key] = n + 1
        return n % self.gap_every == 0

    def _send(self, text: str, channel: str, now_ms: int) -> None:
        self.session.send_text(text, channel)
        stalled = self.active_fault("ws_stall", channel) or self.active_fault("ws_blackhole", None)
        if not stalled:
            self._last_data_ms = now_ms

    # -- client messages --------------------------------------------------------------------
    def on_open(self) -> None:
        """Send the ``status`` message [KR-STATUS2]."""
        self.session.send_control_text(self._status("online"))

    def on_text(self, text: str) -> None:
        """``ping`` → ``pong``; ``subscribe``/``unsubscribe`` → one ack or error per symbol."""
        time_in = self._now_iso()
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        method = msg.get("method") if isinstance(msg, dict) else None
        req_id = msg.get("req_id") if isinstance(msg, dict) else None
        if method == "ping":
            body: dict[str, Any] = {"method": "pong"}
            if req_id is not None:
                body["req_id"] = req_id
            body.update({"time_in": time_in, "time_out": self._now_iso()})
            self._reply(body)
            return
        params = msg.get("params") if isinstance(msg, dict) else None
        if method not in ("subscribe", "unsubscribe") or not isinstance(params, dict):
            self._answer(
                str(method or ""), req_id, None, "Malformed request", time_in
            )  # UNVERIFIED
            return
        channel = params.get("channel")
        if channel == "heartbeat":
            self.heartbeat = method == "subscribe"
            self._answer(method, req_id, {"channel": "heartbeat"}, None, time_in)
            return
        if channel not in _CHANNELS:
            self._answer(method, req_id, None, f"Channel {channel} not supported", time_in)
            return
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols:
            self._answer(method, req_id, None, "Missing symbol", time_in)  # UNVERIFIED
            return
        depth = params.get("depth", 10)
        if channel == "book" and depth not in _DEPTHS:
            self._answer(method, req_id, None, f"Invalid depth {depth}", time_in)  # UNVERIFIED
            return
        for symbol in symbols:
            self._one(method, req_id, channel, symbol, params, time_in)

    def _one(
        self,
        method: str,
        req_id: object,
        channel: str,
        symbol: object,
        params: dict[str, Any],
        time_in: str,
    ) -> None:
        """(Un)subscribe one symbol and answer with its own ack or error."""
        markets = self.session.market.markets(self.exchange)
        sym = str(symbol)
        rejected = method == "subscribe" and self.active_fault("ws_reject", _KIND[channel])
        if sym not in markets or rejected:
            error = f"Currency pair not supported {sym}"
            self._answer(method, req_id, None, error, time_in, symbol=sym)
            return
        key = (channel, sym)
        result: dict[str, Any] = {"channel": channel}
        if method == "unsubscribe":
            if self.subs.pop(key, None) is None:
                error = "Subscription Not Found"  # UNVERIFIED text
                self._answer(method, req_id, None, error, time_in, symbol=sym)
                return
        elif key in self.subs:
            self._answer(method, req_id, None, "Already subscribed", time_in, symbol=sym)
            return
        else:
            depth = int(params.get("depth", 10)) if channel == "book" else 0
            snapshot = bool(params.get("snapshot", True))
            trigger = str(params.get("event_trigger", "trades"))
            self.subs[key] = _Sub(sym, depth, snapshot, trigger)
            if channel == "book":
                result["depth"] = depth
            if channel == "ticker" and "event_trigger" in params:
                result["event_trigger"] = trigger
            result["snapshot"] = snapshot
        result["symbol"] = sym
        self._answer(method, req_id, result, None, time_in)

    def _answer(
        self,
        method: str,
        req_id: object,
        result: dict[str, Any] | None,
        error: str | None,
        time_in: str,
        symbol: str | None = None,
    ) -> None:
        """An ack (``result``) or error body [KR-BOOK2 §Subscribe; KR-TICK2]."""
        body: dict[str, Any] = {}
        if error is not None:
            body["error"] = error
        body["method"] = method
        if req_id is not None:
            body["req_id"] = req_id
        if result is not None:
            body["result"] = result
        body["success"] = error is None
        if symbol is not None:
            body["symbol"] = symbol
        body.update({"time_in": time_in, "time_out": self._now_iso()})
        self._reply(body)

    # -- data -------------------------------------------------------------------------------
    def on_tick(self, now_ms: int) -> None:
        """Send each subscription's snapshot or update for this tick, and a heartbeat after
        ~1 s without any delivered update when something is subscribed [KR-HB2]."""
        now_ms = self.session.now_ms()  # the exchange's clock (clock_skew applied)
        tick = now_ms // TICK_MS
        if tick == self._last_tick:
            return
        self._last_tick = tick
        maintenance = self.active_fault("ws_maintenance_notice", None) is not None
        if self._maintenance and not maintenance:  # engine status changed back [KR-STATUS2]
            self.session.send_control_text(self._status("online"))
        self._maintenance = maintenance
        for key, sub in list(self.subs.items()):
            v = self.session.market.view(self.exchange, now_ms, sub.market)
            if key[0] == "ticker":
                self._ticker(key, sub, v, now_ms)
            elif key[0] == "trade":
                self._trade(key, sub, v, now_ms)
            else:
                self._book(key, sub, v, now_ms)
        if (self.subs or self.heartbeat) and now_ms - self._last_data_ms >= _HEARTBEAT_MS:
            self.session.send_control_text('{"channel":"heartbeat"}')
            self._last_data_ms = now_ms

    def _ticker(self, key: tuple[str, str], sub: _Sub, v: VenueView, now_ms: int) -> None:
        """Level-1 ticker: snapshot first, then an update on each trade (or bbo change)."""
        state: tuple[object, ...] = (
            (v.best_bid, v.best_ask, v.bid_qty, v.ask_qty)
            if sub.event_trigger == "bbo"
            else (v.trade_id,)
        )
        if sub.sent and state == sub.last:
            return
        kind = "update" if sub.sent else "snapshot"
        first = not sub.sent
        sub.sent, sub.last = True, state
        if first and not sub.snapshot:
            return  # ``snapshot: false``: updates only [KR-TICK2]
        st = v.stats
        open_24h = v.scaled(st.open_24h)
        digits = _decimals(v.venue.tick_size)
        item: dict[str, Any] = {
            "symbol": sub.market,
            "bid": round(v.best_bid, digits),
            "bid_qty": round(v.bid_qty, 8),
            "ask": round(v.best_ask, digits),
            "ask_qty": round(v.ask_qty, 8),
            "last": round(v.last, digits),
            "volume": round(v.volume_24h, 8),
            "vwap": round(v.scaled(st.vwap_24h), digits),
            "low": round(min(v.scaled(st.low_24h), v.last), digits),
            "high": round(max(v.scaled(st.high_24h), v.last), digits),
            "change": round(v.last - open_24h, digits),
            "change_pct": round((v.last - open_24h) / open_24h * 100.0, 2),
            "timestamp": iso_us(now_ms / 1000.0),
        }
        body = {"channel": "ticker", "type": kind, "data": [item]}
        self._send(json.dumps(body, separators=(",", ":")), "ticker", now_ms)

    def _trade(self, key: tuple[str, str], sub: _Sub, v: VenueView, now_ms: int) -> None:
        """Trades since the last message; the first message is a snapshot of the last 50
        (or nothing with ``snapshot:false``)."""
        last = sub.last[0] if sub.last else None
        sub.last = (v.trade_id,)
        if not sub.sent:
            sub.sent = True
            if sub.snapshot:
                first = v.trade_id - _TRADE_SNAPSHOT + 1
                self._send(self._trades("snapshot", sub, v, first), "trades", now_ms)
            return
        assert isinstance(last, int)
        if v.trade_id <= last or self._gap_now(key):
            return
        first = max(last + 1, v.trade_id - 999)
        self._send(self._trades("update", sub, v, first), "trades", now_ms)

    @staticmethod
    def _trades(kind: str, sub: _Sub, v: VenueView, first: int) -> str:
        digits = _decimals(v.venue.tick_size)
        interval = v.venue.trade_interval_ms
        side = "buy" if v.last >= v.best_ask else "sell"
        data = [
            {
                "symbol": sub.market,
                "side": side,
                "price": round(v.last, digits),
                "qty": round(v.last_qty, 8),
                "ord_type": "market" if trade_id % 3 else "limit",
                "trade_id": trade_id,
                "timestamp": iso_us((v.trade_ms - (v.trade_id - trade_id) * interval) / 1000.0),
            }
            for trade_id in range(first, v.trade_id + 1)
        ]
        return json.dumps({"channel": "trade", "type": kind, "data": data}, separators=(",", ":"))

    def _book(self, key: tuple[str, str], sub: _Sub, v: VenueView, now_ms: int) -> None:
        """Snapshot, then updates (truncating diff) whenever the top ``depth`` changed; the
        checksum is that of the client's book after applying the message [KR-CKS2]."""
        market_id = id(self.session.market)
        bids, asks, checksum = _book_state(market_id, sub.market, sub.depth, v)
        if self.active_fault("ws_checksum", "book") is not None:
            checksum ^= 1
        symbol = json.dumps(sub.market)
        if not sub.sent:
            sub.sent, sub.bids, sub.asks, sub.tick = True, bids, asks, v.tick
            if not sub.snapshot:
                return  # ``snapshot: false``: updates only [KR-BOOK2 §Subscribe]
            text = (
                f'{{"channel":"book","type":"snapshot","data":[{{"symbol":{symbol},'
                f'"bids":{levels_json(bids)},"asks":{levels_json(asks)},"checksum":{checksum}}}]}}'
            )
            self._send(text, "book", now_ms)
            return
        diff_key = (market_id, sub.market, sub.depth, sub.tick, v.tick)
        diff = _DIFFS.get(diff_key)
        if diff is None:  # the same for every connection of this book at this tick
            db = kraken_diff(sub.bids, bids, sub.depth, bids=True)
            da = kraken_diff(sub.asks, asks, sub.depth, bids=False)
            diff = (levels_json(db), levels_json(da)) if db or da else None
            _DIFFS[diff_key] = diff
            if len(_DIFFS) >= _CACHE_MAX:
                _DIFFS.clear()
        sub.bids, sub.asks, sub.tick = bids, asks, v.tick
        if diff is None or self._gap_now(key):
            return
        stamp = iso_us(now_ms / 1000.0)
        text = (
            f'{{"channel":"book","type":"update","data":[{{"symbol":{symbol},'
            f'"bids":{diff[0]},"asks":{diff[1]},"checksum":{checksum},'
            f'"timestamp":"{stamp}"}}]}}'
        )
        self._send(text, "book", now_ms)

    # -- notices ----------------------------------------------------------------------------
    def maintenance_notice(self) -> str | None:
        """The ``status`` message with ``system: maintenance`` [KR-STATUS2]; once the fault
        clears, :meth:`on_tick` sends ``system: online`` (a status change)."""
        self._maintenance = True
        return self._status("maintenance")
