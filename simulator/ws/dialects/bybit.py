"""Bybit v5 public spot WebSocket, as the simulator serves it at ``/bybit/v5/public/spot``
(and the system-status stream at ``/bybit/v5/public/misc/status``).

Facts (tags are Bybit's own documentation pages):

* Subscribe ``{"req_id":"test","op":"subscribe","args":["orderbook.1.BTCUSDT",…]}`` → one ack
  for the request, spot form ``{"success":true,"ret_msg":"subscribe","conn_id":…,"req_id":…,
  "op":"subscribe"}``; at most 10 args per spot request [BY-CONNECT §How to Subscribe to Topics,
  §Understanding the Subscription Response, §Public channel - Args limits]. Unsubscribe ack: the
  same envelope with ``"op":"unsubscribe"`` (UNVERIFIED, not shown in the docs).
* Errors: a bad symbol or topic → ``{"success":false,"ret_msg":"Invalid symbol :[<arg>]",
  "conn_id":…,"op":"subscribe"}`` (OBSERVED); a bad op → ``{"success":false,"ret_msg":
  "error:invalid op","conn_id":…,"request":{"op":…,"args":…}}`` (OBSERVED, ccxt).
* Keep-alive: client ``{"req_id":"100001","op":"ping"}`` → spot pong ``{"success":true,
  "ret_msg":"pong","conn_id":…,"op":"ping"}``; with **no ping and no stream data for 10
  minutes** the server cuts the connection [BY-CONNECT §How to Send the Heartbeat Packet]. The
  transport's ``idle_timeout`` counts client messages only, which would also cut a subscribed
  client that receives data, so this dialect enforces the rule itself in :meth:`on_tick`.
* Topics: ``tickers.{symbol}`` (spot: 50 ms, snapshot only) [BY-TICKER];
  ``publicTrade.{symbol}`` (real time, ``T`` fill time ms, ``seq``) [BY-TRADE];
  ``orderbook.{1,50,200,1000}.{symbol}`` at 10 / 20 / 100 / 200 ms, one ``snapshot`` then
  ``delta`` messages (level 1: snapshots only), ``u`` update id, ``seq`` cross sequence
  (monotonic, not contiguous), ``ts`` system time and ``cts`` matching-engine time in ms
  [BY-OB §Depths, §Response Parameters; BY-CL 2026-03-19].
* ``system.status`` on ``/v5/public/misc/status`` [BY-SYS; BY-ENUM].

Cadence: the market model moves every :data:`~simulator.market.TICK_MS` (100 ms), so the 10 ms,
20 ms and 50 ms streams send at most one message per tick (there is nothing newer to send in
between); ``orderbook.1000`` at most every second tick (200 ms). Book messages go out when the
book changed; an unchanged level 1 is re-pushed every 3 s with the same ``u`` [BY-OB §info].
Deltas are :func:`~simulator.market.book_diff` of the levels last sent and the current ones,
from the same :class:`~simulator.market.VenueView` levels as REST ``/v5/market/orderbook``.

Sequence fields: ``u`` is +1 per book change of one subscription (the docs do not promise more
for ``orderbook.{1,50,200,1000}``, so a client checking ``u == prev + 1`` never sees a false
gap; the WebSocket snapshot, not REST, is the sync point, so ``u`` is not REST's ``u``); ``seq``
is the REST order book's ``seq`` of the same tick. Faults: ``ws_gap`` (book) drops one book
message in :attr:`Dialect.gap_every` (the first at once) while it holds, so ``u`` jumps by 2 and
the local book misses that delta; trade messages carry no contiguous field, so ``ws_gap`` on
trades drops trade messages (invisible by design, as on Bybit). ``ws_reject`` refuses a
subscribe naming a channel the fault covers with the OBSERVED ``Invalid symbol`` body. Bybit
books carry no checksum (``ws_checksum`` does not apply).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from simulator.market import TICK_MS, Level, book_diff
from simulator.ws.dialect import KeepAliveRule, WsDialect, WsSession

__all__ = ["Dialect"]

_DEPTH_EVERY_TICKS = {1: 1, 50: 1, 200: 1, 1000: 2}
"""Ticks between messages per ``orderbook`` depth: 10 ms, 20 ms, 100 ms → every tick; 200 ms →
every second tick [BY-OB §Depths]."""
_MAX_ARGS = 10  # spot: at most 10 args per subscribe request [BY-CONNECT §Public channel - Args]
_MAX_TRADES = 1024  # at most 1024 trades per publicTrade message [BY-TRADE §note]
_LEVEL1_REPUSH_MS = 3000  # unchanged level 1 re-pushed every 3 s, same u [BY-OB §info]
_DIFFS: dict[tuple[int, str, int, int, int], tuple[list[list[str]], list[list[str]]]] = {}
"""(market object, market, depth, from tick, to tick) → delta rows, shared by connections."""
_DIFFS_MAX = 2048
_CHANNEL = {"tickers": "ticker", "publicTrade": "trades", "orderbook": "book"}
_SPOT = "/v5/public/spot"
_STATUS = "/v5/public/misc/status"


class _Book:
    """One ``orderbook.{depth}.{symbol}`` subscription: the levels last sent and ``u``."""

    __slots__ = ("asks", "bids", "depth", "pushed_ms", "sent", "seq", "tick", "u")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: list[Level] = []
        self.asks: list[Level] = []
        self.u = 0
        self.seq = 0
        self.sent = False
        self.pushed_ms = 0
        self.tick = 0


def _pairs(levels: list[tuple[str, str]] | list[Level]) -> list[list[str]]:
    return [[lv[0], lv[1]] for lv in levels]


class Dialect(WsDialect):
    """Bybit v5 public spot stream (see the module docstring for facts and sources).

    Class attributes tests may shorten:
        idle_close_s: seconds without a client ping and without stream data before the server
            closes (600 [BY-CONNECT §How to Send the Heartbeat Packet]).
        gap_every: under ``ws_gap``, one book delta in this many is dropped (the first at once).
    """

    exchange: ClassVar[str] = "bybit"
    paths: ClassVar[tuple[str, ...]] = (_SPOT, _STATUS)
    keepalive: ClassVar[KeepAliveRule] = KeepAliveRule(close_code=1000)
    idle_close_s: ClassVar[float] = 600.0
    gap_every: ClassVar[int] = 10

    def __init__(self, session: WsSession, path: str, query: Mapping[str, str]) -> None:
        """Per-connection state: ``conn_id``, subscriptions, last traffic time."""
        super().__init__(session, path, query)
        self.conn_id = str(uuid.uuid4())
        self.topics: dict[str, tuple[str, str, int]] = {}
        """topic → (kind ``tickers``/``publicTrade``/``orderbook``/``system.status``, market,
        depth)."""
        self._books: dict[str, _Book] = {}
        self._last_trade: dict[str, tuple[int, float]] = {}
        self._gap_count: dict[str, int] = {}
        self._last_traffic_ms = session.now_ms()
        self._last_tick = -1

    # -- naming -----------------------------------------------------------------------------
    def _markets(self) -> dict[str, str]:
        """Bybit symbol (``BTCUSDT``) → unified market (``BTC/USDT``)."""
        return {m.replace("/", ""): m for m in self.session.market.markets(self.exchange)}

    def _parse(self, topic: object) -> tuple[str, str, int] | None:
        """``tickers.BTCUSDT`` → ("tickers", "BTC/USDT", 0); ``orderbook.50.BTCUSDT`` →
        ("orderbook", "BTC/USDT", 50); None when the topic or symbol does not exist."""
        if not isinstance(topic, str):
            return None
        if self.path == _STATUS:
            return ("system.status", "", 0) if topic == "system.status" else None
        parts = topic.split(".")
        markets = self._markets()
        if len(parts) == 2 and parts[0] in ("tickers", "publicTrade") and parts[1] in markets:
            return parts[0], markets[parts[1]], 0
        if (
            len(parts) == 3
            and parts[0] == "orderbook"
            and parts[1].isdigit()
            and int(parts[1]) in _DEPTH_EVERY_TICKS
            and parts[2] in markets
        ):
            return "orderbook", markets[parts[2]], int(parts[1])
        return None

    # -- client messages --------------------------------------------------------------------
    def _reply(self, body: Mapping[str, Any]) -> None:
        self.session.send_control_text(json.dumps(body, separators=(",", ":")))

    def on_text(self, text: str) -> None:
        """Handle ``subscribe``, ``unsubscribe`` and ``ping`` [BY-CONNECT]; anything else gets
        the OBSERVED ``error:invalid op`` body."""
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        op = msg.get("op") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or op not in ("subscribe", "unsubscribe", "ping"):
            request = {
                "op": op if isinstance(op, str) else "",
                "args": msg.get("args") if isinstance(msg, dict) else None,
            }
            self._reply(
                {
                    "success": False,
                    "ret_msg": "error:invalid op",
                    "conn_id": self.conn_id,
                    "request": request,
                }
            )
            return
        req_id = msg.get("req_id")
        if op == "ping":
            self._last_traffic_ms = self.session.now_ms()
            # Spot pong: no req_id [BY-CONNECT §How to Send the Heartbeat Packet].
            self._reply({"success": True, "ret_msg": "pong", "conn_id": self.conn_id, "op": "ping"})
            return
        args = msg.get("args")
        if not isinstance(args, list) or not args:
            self._ack(op, req_id, False, "Invalid symbol :[]")
            return
        if self.path == _SPOT and len(args) > _MAX_ARGS:
            # Text not in the docs (UNVERIFIED); the limit is [BY-CONNECT §Public channel - Args].
            self._ack(op, req_id, False, f"args size >{_MAX_ARGS}")
            return
        parsed = [(a, self._parse(a)) for a in args]
        bad = [
            str(a)
            for a, p in parsed
            if p is None
            or (
                op == "subscribe" and self.active_fault("ws_reject", _CHANNEL.get(p[0])) is not None
            )
        ]
        if bad:
            self._ack(op, req_id, False, f"Invalid symbol :[{','.join(bad)}]")
            return
        for arg, spec in parsed:
            assert spec is not None
            topic = str(arg)
            if op == "subscribe":
                self.topics[topic] = spec
                if spec[0] == "orderbook":
                    self._books[topic] = _Book(spec[2])
            else:
                self.topics.pop(topic, None)
                self._books.pop(topic, None)
        self._ack(op, req_id, True, op)

    def _ack(self, op: str, req_id: object, success: bool, ret_msg: str) -> None:
        """The spot ack envelope; ``req_id`` echoed when the request had one [BY-CONNECT
        §Understanding the Subscription Response]."""
        body: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": self.conn_id}
        if req_id is not None:
            body["req_id"] = req_id
        body["op"] = op
        self._reply(body)

    # -- faults -----------------------------------------------------------------------------
    def _delivered(self, channel: str) -> bool:
        """True when data of ``channel`` sent now reaches the client (no stall/blackhole)."""
        return (
            self.active_fault("ws_stall", channel) is None
            and self.active_fault("ws_blackhole", None) is None
        )

    def _gap_now(self, key: str, channel: str) -> bool:
        """Under ``ws_gap``: True for the first message and then every :attr:`gap_every`-th."""
        if self.active_fault("ws_gap", channel) is None:
            self._gap_count.pop(key, None)
            return False
        n = self._gap_count.get(key, 0)
        self._gap_count[key] = n + 1
        return n % self.gap_every == 0

    def _send(self, body: Mapping[str, Any], channel: str) -> None:
        self.session.send_text(json.dumps(body, separators=(",", ":")), channel)
        if self._delivered(channel):
            self._last_traffic_ms = self.session.now_ms()

    # -- data -------------------------------------------------------------------------------
    def on_tick(self, now_ms: int) -> None:
        """Send every subscription's message due at ``now_ms`` and enforce the 10 minute rule.

        Message shapes: ``{"topic","ts","type","cs","data":{…}}`` (tickers), ``{"topic","type":
        "snapshot","ts","data":[{T,s,S,v,p,L,i,BT,seq}]}`` (publicTrade), ``{"topic","type",
        "ts","data":{"s","b","a","u","seq"},"cts"}`` (orderbook) [BY-TICKER, BY-TRADE, BY-OB].
        """
        now_ms = self.session.now_ms()  # the exchange's clock (clock_skew applied)
        if self.active_fault("ws_blackhole", None) is not None:
            self._last_traffic_ms = now_ms  # the server answers nothing: no rule is enforced
        if now_ms - self._last_traffic_ms > self.idle_close_s * 1000:
            self.session.close(self.keepalive.close_code, "")
            return
        tick = now_ms // TICK_MS
        if tick == self._last_tick:
            return
        self._last_tick = tick
        for topic, (kind, market, depth) in list(self.topics.items()):
            if kind == "tickers":
                self._ticker(topic, market, now_ms)
            elif kind == "publicTrade":
                self._trades(topic, market, now_ms)
            elif kind == "orderbook" and tick % _DEPTH_EVERY_TICKS[depth] == 0:
                self._book(topic, market, now_ms)

    def _ticker(self, topic: str, market: str, now_ms: int) -> None:
        """Spot ticker snapshot, same fields and values as REST ``/v5/market/tickers``."""
        v = self.session.market.view(self.exchange, now_ms, market)
        st = v.stats
        prev = v.scaled(st.open_24h)
        data = {
            "symbol": market.replace("/", ""),
            "lastPrice": v.price(v.last),
            "highPrice24h": v.price(max(v.scaled(st.high_24h), v.last)),
            "lowPrice24h": v.price(min(v.scaled(st.low_24h), v.last)),
            "prevPrice24h": v.price(prev),
            "volume24h": v.qty(v.volume_24h),
            "turnover24h": f"{v.volume_24h * v.scaled(st.vwap_24h):.8f}",
            "price24hPcnt": f"{(v.last - prev) / prev:.4f}",
            "usdIndexPrice": f"{(v.best_bid + v.best_ask) / 2.0:.8f}",
        }
        body = {"topic": topic, "ts": now_ms, "type": "snapshot", "cs": _cross_seq(v.update_id)}
        body["data"] = data
        self._send(body, "ticker")

    def _trades(self, topic: str, market: str, now_ms: int) -> None:
        """New trades since the last message (none at subscribe time), ``T`` = fill time ms."""
        v = self.session.market.view(self.exchange, now_ms, market)
        last = self._last_trade.get(topic)
        self._last_trade[topic] = (v.trade_id, v.last)
        if last is None or v.trade_id <= last[0]:
            return
        if self._gap_now(topic, "trades"):
            return
        first = max(last[0] + 1, v.trade_id - _MAX_TRADES + 1)
        interval = v.venue.trade_interval_ms
        if v.last > last[1]:
            tick_dir = "PlusTick"
        elif v.last < last[1]:
            tick_dir = "MinusTick"
        else:
            tick_dir = "ZeroPlusTick"
        symbol = market.replace("/", "")
        data = [
            {
                "T": v.trade_ms - (v.trade_id - i) * interval,
                "s": symbol,
                "S": "Buy" if v.last >= v.best_ask else "Sell",
                "v": v.qty(v.last_qty),
                "p": v.price(v.last),
                "L": tick_dir,
                "i": str(i),
                "BT": False,
                "seq": _cross_seq(v.update_id),
            }
            for i in range(first, v.trade_id + 1)
        ]
        self._send({"topic": topic, "type": "snapshot", "ts": now_ms, "data": data}, "trades")

    def _book(self, topic: str, market: str, now_ms: int) -> None:
        """A ``snapshot`` first (and always for depth 1), then ``delta`` = :func:`book_diff`
        of the levels last sent and this tick's levels (size ``"0"`` deletes), sent when the
        book changed; level 1 is re-pushed every 3 s with the same ``u`` when unchanged [BY-OB
        §info]."""
        book = self._books[topic]
        v = self.session.market.view(self.exchange, now_ms, market)
        bids, asks = v.levels(book.depth)
        changed = True  # deltas: an empty one is not sent (below)
        if book.depth == 1:
            changed = not book.sent or bids != book.bids or asks != book.asks
            if not changed and now_ms - book.pushed_ms < _LEVEL1_REPUSH_MS:
                return
            kind = "snapshot"
            b, a = _pairs(bids), _pairs(asks)
        elif not book.sent:
            kind = "snapshot"
            b, a = _pairs(bids), _pairs(asks)
        else:
            kind = "delta"
            key = (id(self.session.market), market, book.depth, book.tick, v.tick)
            rows = _DIFFS.get(key)
            if rows is None:  # the same for every connection of this book at this tick
                b = _pairs(book_diff(book.bids, bids, zero=v.zero_qty, descending=True))
                a = _pairs(book_diff(book.asks, asks, zero=v.zero_qty, descending=False))
                rows = _DIFFS[key] = (b, a)
                if len(_DIFFS) >= _DIFFS_MAX:
                    _DIFFS.clear()
            b, a = rows
            if not b and not a:
                book.tick = v.tick
                return
        if changed:
            book.u = book.u + 1 if book.sent else 1_000 + v.tick % 1_000_000 * 10
            book.seq = _cross_seq(v.update_id)
        book.bids, book.asks, book.tick = bids, asks, v.tick
        if book.sent and changed and self._gap_now(topic, "book"):
            return  # u advanced, message dropped: the client sees u jump by 2
        book.sent = True
        book.pushed_ms = now_ms
        data = {"s": market.replace("/", ""), "b": b, "a": a, "u": book.u, "seq": book.seq}
        body = {"topic": topic, "type": kind, "ts": now_ms, "data": data, "cts": v.t_ms}
        self._send(body, "book")

    # -- notices ----------------------------------------------------------------------------
    def maintenance_notice(self) -> str | None:
        """On ``/v5/public/misc/status`` with ``system.status`` subscribed: an ``ongoing``
        market-data maintenance record (serviceType 5) [BY-SYS; BY-ENUM]; else None (spot
        streams carry no maintenance message)."""
        if self.path != _STATUS or "system.status" not in self.topics:
            return None
        now = self.session.now_ms()
        record = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bybit-maintenance-{now // 60_000}")),
            "title": "Market data maintenance",
            "state": "ongoing",
            "begin": str(now),
            "end": str(now + 3_600_000),
            "href": "",
            "serviceTypes": [2, 3, 4, 5],
            "product": [1, 2],
            "uidSuffix": [],
            "maintainType": 1,
            "env": 1,
        }
        body = {"topic": "system.status", "ts": now, "data": [record]}
        return json.dumps(body, separators=(",", ":"))


def _cross_seq(update_id: int) -> int:
    """Bybit ``seq``/``cs``: the REST order book's ``seq`` of the same tick (monotonic, not
    contiguous) [BY-OB §Response Parameters]."""
    return update_id * 7 + 1_000_000_000
