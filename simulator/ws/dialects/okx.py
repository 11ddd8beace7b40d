"""OKX v5 public WebSocket, as the simulator serves it at ``/okx/ws/v5/public``.

Facts (tags are OKX's own documentation sections):

* Subscribe ``{"id":"1512","op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}``
  → one ``{"id":"1512","event":"subscribe","arg":{…},"connId":"a4d3ae55"}`` per arg (``id``
  echoed when given); unsubscribe → ``{"event":"unsubscribe","arg":{…},"connId":…}``; errors
  ``{"id":…,"event":"error","code":"60012","msg":"Invalid request: …","connId":…}`` [OKX-OV
  §Subscribe, §Unsubscribe]. Codes used: 60011 "Please log in" (``books-l2-tbt`` and
  ``books50-l2-tbt`` need a login), 60012 "Invalid request", 60018 for an unknown channel or
  instId with the OBSERVED text ``Wrong URL or channel:…,instId:… doesn't exist`` [OKX-ERR
  §Public].
* Keep-alive: the connection breaks when no subscription is made or **no data is pushed for
  30 s**; clients send the text ``ping`` and get the text ``pong`` [OKX-OV §Connect]; the close
  is code 4004 "No data received in 30s" [OKX-ERR §Close Frame]. Pushed data includes acks and
  pongs, so a subscribed busy stream stays up without pings, and a quiet one needs them: this is
  enforced by the dialect in :meth:`Dialect.on_tick` (the transport's ``idle_timeout`` counts
  client messages, which is not the documented rule).
* Channels [OKX-MD]: ``tickers`` (fastest 1 per 100 ms, on change); ``trades`` (one message per
  taker order, ``tradeId`` = last id of ``count`` aggregated trades, ``ts`` fill time);
  ``books`` (400-level ``snapshot`` then ``update`` deltas every 100 ms with ``prevSeqId`` /
  ``seqId`` and ``checksum``); ``books5`` (5-level snapshots every 100 ms on change);
  ``bbo-tbt`` (1-level snapshot every 10 ms on change → one per 100 ms model tick). Levels are
  ``[price, size, "0", numOrders]``; ``ts`` are ms strings.
* Sequence: ``seqId`` is per instId and identical across connections (the market model's
  update id of the tick); each update's ``prevSeqId`` is the previous message's ``seqId``; the
  snapshot has ``prevSeqId:-1``; with no book change for ~60 s an empty update with
  ``prevSeqId == seqId`` is sent [OKX-MD §Sequence ID].
* Checksum: CRC32 (signed 32-bit) of ``bid1px:bid1sz:ask1px:ask1sz:…`` over the top 25 levels,
  alternating bid/ask, the shorter side's missing entries skipped [OKX-MD §Checksum]. The class
  switch :attr:`Dialect.checksum_zero` sends the OBSERVED constant ``0`` instead (ccxt PR
  #30299).
* ``{"event":"notice","code":"64008",…}`` before a service upgrade [OKX-OV §Notification].

Books are built from the same :class:`~simulator.market.VenueView` levels as REST
``/api/v5/market/books``; deltas are :func:`~simulator.market.book_diff` of the levels last sent
and the current ones (computed once per tick for all connections).

Faults: ``ws_gap`` drops one ``books`` update (or one ``trades`` message) in
:attr:`Dialect.gap_every` while it holds (the first at once): the next update's ``prevSeqId`` no
longer equals the client's last ``seqId`` and the client's book misses a delta; the next trade's
``tradeId - count`` skips ids. ``ws_checksum`` sends a wrong non-zero checksum on every ``books``
message. ``ws_reject`` answers each subscribe arg of a channel the fault covers with 60018. Not
enforced: 480 subscribe/unsubscribe per connection per hour, 3 connections/s per IP [OKX-OV].
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from simulator.exchanges.okx import ticker_item
from simulator.market import TICK_MS, Level, book_diff
from simulator.ws.dialect import KeepAliveRule, WsDialect, WsSession

__all__ = ["Dialect", "okx_checksum"]

_BOOK_DEPTH = {"books": 400, "books5": 5, "bbo-tbt": 1}
_LOGIN_BOOKS = frozenset({"books-l2-tbt", "books50-l2-tbt"})
_CHANNELS = frozenset({"tickers", "trades", *_BOOK_DEPTH})
_CHANNEL_KIND = {"tickers": "ticker", "trades": "trades", "books": "book", "books5": "book"}
_CHANNEL_KIND["bbo-tbt"] = "book"
_ROWS: dict[tuple[int, str, int, int], tuple[list[list[str]], list[list[str]], int]] = {}
"""(market object, market, prevSeqId, seqId) → the ``books`` rows and real checksum, shared by
every connection (the model is the same for all)."""
_ROWS_MAX = 2048
_KEEPALIVE_EMPTY_MS = 60_000  # empty update after ~60 s without a depth change [OKX-MD]


def okx_checksum(bids: Sequence[Sequence[object]], asks: Sequence[Sequence[object]]) -> int:
    """OKX ``books`` checksum of a local book: CRC32 (IEEE) of the top 25 bids and asks joined
    as ``bid1px:bid1sz:ask1px:ask1sz:bid2px…`` (a side with fewer levels is skipped where it runs
    out), as a **signed** 32-bit int [OKX-MD §Checksum].

    Args:
        bids: best first, each ``[price_str, size_str, …]`` exactly as sent.
        asks: best first, likewise.

    Example: bids ``3366.1/7, 3366/6`` and asks ``3366.8/9, 3368/8`` → ``-1881014294``.
    """
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts += (str(bids[i][0]), str(bids[i][1]))
        if i < len(asks):
            parts += (str(asks[i][0]), str(asks[i][1]))
    crc = zlib.crc32(":".join(parts).encode("ascii"))
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _wire(levels: Sequence[Level]) -> list[list[str]]:
    """``[price, size, "0", numOrders]`` rows [OKX-MD]."""
    return [[lv[0], lv[1], "0", str(lv[2])] for lv in levels]


def _wire_diff(prev: list[Level], cur: list[Level], zero: str, bids: bool) -> list[list[str]]:
    """The delta rows turning ``prev`` into ``cur`` (:func:`book_diff`); a removed level is
    ``[price, "0", "0", "0"]``."""
    counts = {lv[0]: str(lv[2]) for lv in cur}
    return [
        [p, q, "0", counts.get(p, "0")] for p, q in book_diff(prev, cur, zero=zero, descending=bids)
    ]


class _Book:
    """One book subscription: levels last sent, ``seqId`` last sent, time of the last push."""

    __slots__ = ("asks", "bids", "last_push_ms", "seq")

    def __init__(self) -> None:
        self.bids: list[Level] = []
        self.asks: list[Level] = []
        self.seq: int | None = None
        self.last_push_ms = 0


class Dialect(WsDialect):
    """OKX v5 public stream (see the module docstring for facts and sources).

    Class attributes tests may change:
        checksum_zero: send ``checksum: 0`` on every ``books`` message (OBSERVED wire mode).
        idle_close_s: seconds without a push (or without a subscription) before close 4004.
        gap_every: under ``ws_gap`` one message in this many is dropped.
    """

    exchange: ClassVar[str] = "okx"
    paths: ClassVar[tuple[str, ...]] = ("/ws/v5/public",)
    keepalive: ClassVar[KeepAliveRule] = KeepAliveRule(close_code=4004)
    checksum_zero: ClassVar[bool] = False
    idle_close_s: ClassVar[float] = 30.0
    gap_every: ClassVar[int] = 10

    def __init__(self, session: WsSession, path: str, query: Mapping[str, str]) -> None:
        """Per-connection state: ``connId``, subscriptions, last push time."""
        super().__init__(session, path, query)
        now = session.now_ms()
        self.conn_id = f"{(id(self) ^ now) & 0xFFFFFFFF:08x}"
        self.subs: dict[tuple[str, str], str] = {}
        """(channel, instId) → unified market."""
        self._books: dict[tuple[str, str], _Book] = {}
        self._last_trade: dict[tuple[str, str], int] = {}
        self._gap_count: dict[tuple[str, str], int] = {}
        self._last_push_ms = now
        self._unsubscribed_since: int | None = now
        self._last_tick = -1

    # -- client messages --------------------------------------------------------------------
    def _control(self, body: Mapping[str, Any]) -> None:
        self.session.send_control_text(json.dumps(body, separators=(",", ":")))
        if self.active_fault("ws_blackhole", None) is None:
            self._last_push_ms = self.session.now_ms()

    def _error(self, req_id: object, code: str, msg: str) -> None:
        body: dict[str, Any] = {} if req_id is None else {"id": req_id}
        body.update({"event": "error", "code": code, "msg": msg, "connId": self.conn_id})
        self._control(body)

    def on_text(self, text: str) -> None:
        """Text ``ping`` → ``pong``; JSON ``subscribe``/``unsubscribe`` → per-arg events;
        anything else → error 60012 "Invalid request: <the text>" [OKX-OV, OKX-ERR]."""
        if text == "ping":
            self.session.send_control_text("pong")
            if self.active_fault("ws_blackhole", None) is None:
                self._last_push_ms = self.session.now_ms()
            return
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self._error(None, "60012", f"Invalid request: {text}")
            return
        req_id = msg.get("id")
        op, args = msg.get("op"), msg.get("args")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list) or not args:
            self._error(req_id, "60012", f"Invalid request: {text}")
            return
        for arg in args:
            self._one(req_id, op, arg, text)
        self._unsubscribed_since = None if self.subs else self.session.now_ms()

    def _one(self, req_id: object, op: str, arg: object, text: str) -> None:
        """Subscribe or unsubscribe one ``{"channel","instId"}`` arg."""
        if not isinstance(arg, dict) or not isinstance(arg.get("channel"), str):
            self._error(req_id, "60012", f"Invalid request: {text}")
            return
        channel, inst = arg["channel"], arg.get("instId")
        if channel in _LOGIN_BOOKS and op == "subscribe":
            self._error(req_id, "60011", "Please log in")
            return
        markets = {m.replace("/", "-"): m for m in self.session.market.markets(self.exchange)}
        known = channel in _CHANNELS and isinstance(inst, str) and inst in markets
        rejected = op == "subscribe" and self.active_fault("ws_reject", _CHANNEL_KIND.get(channel))
        if not known or rejected:
            self._error(
                req_id, "60018", f"Wrong URL or channel:{channel},instId:{inst} doesn't exist"
            )
            return
        assert isinstance(inst, str)
        key = (channel, inst)
        if op == "subscribe":
            self.subs[key] = markets[inst]
            if channel in _BOOK_DEPTH:
                self._books[key] = _Book()
            self._last_trade.pop(key, None)
        else:
            self.subs.pop(key, None)
            self._books.pop(key, None)
        body: dict[str, Any] = {} if req_id is None else {"id": req_id}
        body.update({"event": op, "arg": {"channel": channel, "instId": inst}})
        body["connId"] = self.conn_id
        self._control(body)

    # -- faults -----------------------------------------------------------------------------
    def _gap_now(self, key: tuple[str, str], channel: str) -> bool:
        """Under ``ws_gap``: True for the first message and then every :attr:`gap_every`-th."""
        if self.active_fault("ws_gap", channel) is None:
            self._gap_count.pop(key, None)
            return False
        n = self._gap_count.get(key, 0)
        self._gap_count[key] = n + 1
        return n % self.gap_every == 0

    def _push(self, body: Mapping[str, Any], channel: str) -> None:
        self.session.send_text(json.dumps(body, separators=(",", ":")), channel)
        stalled = self.active_fault("ws_stall", channel) or self.active_fault("ws_blackhole", None)
        if not stalled:
            self._last_push_ms = self.session.now_ms()

    # -- data -------------------------------------------------------------------------------
    def on_tick(self, now_ms: int) -> None:
        """Send each subscription's message for this tick; close with 4004 "No data received in
        30s" after 30 s without a push or without any subscription [OKX-OV §Connect; OKX-ERR]."""
        now_ms = self.session.now_ms()  # the exchange's clock (clock_skew applied)
        limit = self.idle_close_s * 1000
        if self.active_fault("ws_blackhole", None) is not None:  # the server answers nothing
            self._last_push_ms = now_ms
            if self._unsubscribed_since is not None:
                self._unsubscribed_since = now_ms
        since = self._unsubscribed_since
        if now_ms - self._last_push_ms > limit or (since is not None and now_ms - since > limit):
            self.session.close(4004, "No data received in 30s")
            return
        tick = now_ms // TICK_MS
        if tick == self._last_tick:
            return
        self._last_tick = tick
        for (channel, inst), market in list(self.subs.items()):
            arg = {"channel": channel, "instId": inst}
            if channel == "tickers":
                self._ticker(arg, market, now_ms)
            elif channel == "trades":
                self._trades(arg, market, now_ms)
            elif channel == "books":
                self._books_delta(arg, market, now_ms)
            else:
                self._book_snapshot(arg, market, now_ms)

    def _ticker(self, arg: dict[str, str], market: str, now_ms: int) -> None:
        """SPOT ticker, every field a string, same values as REST ``/api/v5/market/ticker``;
        ``ts`` = generation time (ms string) [OKX-MD §Tickers channel]."""
        v = self.session.market.view(self.exchange, now_ms, market)
        item = ticker_item(v, now_ms)
        item["instId"] = arg["instId"]
        self._push({"arg": arg, "data": [item]}, "ticker")

    def _trades(self, arg: dict[str, str], market: str, now_ms: int) -> None:
        """One aggregated message per tick with new trades: ``tradeId`` = last id, ``count`` =
        trades since the previous message, ``ts`` = fill time ms string [OKX-MD §Trades]."""
        key = (arg["channel"], arg["instId"])
        v = self.session.market.view(self.exchange, now_ms, market)
        last = self._last_trade.get(key)
        self._last_trade[key] = v.trade_id
        if last is None or v.trade_id <= last or self._gap_now(key, "trades"):
            return
        item = {
            "instId": arg["instId"],
            "tradeId": str(v.trade_id),
            "px": v.price(v.last),
            "sz": v.qty(v.last_qty),
            "side": "buy" if v.last >= v.best_ask else "sell",
            "ts": str(v.trade_ms),
            "count": str(v.trade_id - last),
            "source": "0",
            "seqId": v.update_id,
        }
        self._push({"arg": arg, "data": [item]}, "trades")

    def _checksum(self, value: int) -> int:
        """The checksum to send given the real one ``value``: itself, ``0`` in OBSERVED mode,
        or a wrong non-zero one under ``ws_checksum``."""
        fault = self.active_fault("ws_checksum", "book") is not None
        if self.checksum_zero and not fault:
            return 0
        if fault:
            value = (value ^ 1) or 2  # differs from the real value, never 0 (= "no checksum")
        return value

    def _books_delta(self, arg: dict[str, str], market: str, now_ms: int) -> None:
        """``books``: 400-level snapshot (``prevSeqId:-1``), then ``update`` deltas
        (:func:`book_diff` of the last sent levels), ``checksum`` of the resulting top 25."""
        key = (arg["channel"], arg["instId"])
        book = self._books[key]
        v = self.session.market.view(self.exchange, now_ms, market)
        bids, asks = v.levels(_BOOK_DEPTH["books"])
        action, prev = ("snapshot", -1) if book.seq is None else ("update", book.seq)
        cache_key = (id(self.session.market), market, prev, v.update_id)
        rows = _ROWS.get(cache_key)
        if rows is None:  # the same for every connection of this market at this tick
            if book.seq is None:
                b, a = _wire(bids), _wire(asks)
            else:
                b = _wire_diff(book.bids, bids, v.zero_qty, True)
                a = _wire_diff(book.asks, asks, v.zero_qty, False)
            rows = (b, a, okx_checksum(bids, asks))
            if len(_ROWS) >= _ROWS_MAX:
                _ROWS.clear()
            _ROWS[cache_key] = rows
        b, a, crc = rows
        quiet = not b and not a and now_ms - book.last_push_ms < _KEEPALIVE_EMPTY_MS
        if action == "update" and quiet:
            return  # no depth change: nothing until the ~60 s keep-alive update
        seq = v.update_id if (b or a or book.seq is None) else book.seq
        book.bids, book.asks, book.seq = bids, asks, seq
        if action == "update" and self._gap_now(key, "book"):
            return  # seqId consumed, message lost: the next prevSeqId skips it
        book.last_push_ms = now_ms
        item: dict[str, Any] = {"asks": a, "bids": b, "ts": str(now_ms)}
        item.update({"checksum": self._checksum(crc), "prevSeqId": prev, "seqId": seq})
        self._push({"arg": arg, "action": action, "data": [item]}, "book")

    def _book_snapshot(self, arg: dict[str, str], market: str, now_ms: int) -> None:
        """``books5`` / ``bbo-tbt``: a snapshot with ``instId``, ``ts`` and ``seqId`` (no
        ``prevSeqId``, no checksum) whenever the levels changed [OKX-MD §Order book channel]."""
        key = (arg["channel"], arg["instId"])
        book = self._books[key]
        v = self.session.market.view(self.exchange, now_ms, market)
        bids, asks = v.levels(_BOOK_DEPTH[arg["channel"]])
        if book.seq is not None and bids == book.bids and asks == book.asks:
            return
        book.bids, book.asks, book.seq = bids, asks, v.update_id
        item: dict[str, Any] = {"asks": _wire(asks), "bids": _wire(bids)}
        item.update({"instId": arg["instId"], "ts": str(now_ms), "seqId": v.update_id})
        self._push({"arg": arg, "data": [item]}, "book")

    # -- notices ----------------------------------------------------------------------------
    def maintenance_notice(self) -> str | None:
        """``{"event":"notice","code":"64008","msg":"The connection will soon be closed for a
        service upgrade. Please reconnect.","connId":…}`` [OKX-OV §Notification]."""
        body = {
            "event": "notice",
            "code": "64008",
            "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
            "connId": self.conn_id,
        }
        return json.dumps(body, separators=(",", ":"))
