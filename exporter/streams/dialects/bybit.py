"""Bybit v5 public spot streams [BY-CONNECT] and its snapshot/delta book procedure [BY-OB].

Topics used: ``tickers.{symbol}`` (spot: 50 ms, snapshot only) [BY-TICKER], ``publicTrade.{symbol}``
(real time) [BY-TRADE] and ``orderbook.50.{symbol}`` (20 ms, snapshot then deltas) [BY-OB
§Depths]; every message carries ``ts`` in ms (DOCS DISAGREE on number vs string: both accepted
[BY-OB §note reminder]). Market data: last from the ticker's ``lastPrice``, last and volume
from the trades' ``p``/``v``; the spot ticker has no best bid/ask, so they come from the
subscribed ``orderbook.50`` book (:attr:`BybitDialect.ticker_quotes` False).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from exporter.streams.book import LocalBook
from exporter.streams.dialect import BookSync, BookVerdict, ConnectLimit, KeepAlive
from exporter.streams.dialects._common import (
    BaseDialect,
    PendingRequests,
    cap,
    dumps,
    join_url,
    loads,
    malformed,
    ms_time,
    number,
    split_market,
    trade_totals,
)
from exporter.streams.events import (
    BookMessage,
    Channel,
    Data,
    Ignored,
    Malformed,
    Notice,
    NoticeKind,
    Pong,
    StreamEvent,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)

BOOK_DEPTH = 50
"""The ``orderbook.{depth}`` level used: 50 levels at 20 ms [BY-OB §Depths]."""

PATH = "/v5/public/spot"
"""Spot public stream path [BY-CONNECT §WebSocket public stream]."""

_TOPIC_PREFIX: dict[Channel, str] = {
    Channel.TICKER: "tickers.",
    Channel.TRADES: "publicTrade.",
    Channel.BOOK: f"orderbook.{BOOK_DEPTH}.",
}
_CHANNEL_OF: dict[str, Channel] = {
    "tickers": Channel.TICKER,
    "publicTrade": Channel.TRADES,
    "orderbook": Channel.BOOK,
}
_BRACKETED = re.compile(r"\[([^\]]*)\]")


class BybitBook(BookSync):
    """Bybit ``orderbook.50`` procedure [BY-OB §Process snapshot/delta, §Response Parameters].

    ``BookMessage.last_id`` is ``u``, ``prev_id`` is ``seq``. A ``snapshot`` replaces the book
    (``ok`` for the first, ``reset`` when it replaces a live book: Bybit re-sends one when it
    has a problem); a delta with ``u == 1`` means a service restart: the book is overwritten by
    it (``reset``); a delta whose ``seq`` is below the last one is dropped (``ignored``) as the
    full-depth procedure says [BY-FULLOB §Order Book Update Procedure]; deltas before any
    snapshot are ``ignored``. ``u`` contiguity is not documented for this depth, so no gap is
    ever inferred from it by default [BY-OB §Response Parameters]. The book is kept to 50
    levels.

    Args:
        contiguous_u: apply the full-depth rule to ``u`` as well [BY-FULLOB §Order Book Update
            Procedure]: a delta with ``u`` > last ``u`` + 1 is a ``gap``, ``u`` ≤ last is
            ``ignored``. UNVERIFIED for ``orderbook.50`` (ccxt and cryptofeed check nothing); on
            by default (:attr:`BybitDialect.contiguous_update_ids`).
    """

    def __init__(self, contiguous_u: bool = False) -> None:
        self.book = LocalBook(BOOK_DEPTH)
        self.contiguous_u = contiguous_u
        self._synced = False
        self._seq: int | None = None
        self._u: int | None = None

    def apply(self, message: BookMessage) -> BookVerdict:
        """Apply one snapshot or delta (see the class docstring); a non-numeric level discards
        the book (``gap``: resubscribe for a fresh snapshot)."""
        try:
            if message.snapshot or (self._synced and message.last_id == 1):
                verdict = BookVerdict.RESET if self._synced else BookVerdict.OK
                self.book.replace(message.bids, message.asks)
                self._synced = True
                self._seq = message.prev_id
                self._u = message.last_id
                return verdict
            if not self._synced:
                return BookVerdict.IGNORED
            seq, u = message.prev_id, message.last_id
            if seq is not None and self._seq is not None and seq < self._seq:
                return BookVerdict.IGNORED
            if self.contiguous_u and u is not None and self._u is not None:
                if u <= self._u:
                    return BookVerdict.IGNORED
                if u > self._u + 1:
                    self.reset()
                    return BookVerdict.GAP
            self.book.apply(message.bids, message.asks)
        except ValueError:
            self.reset()
            return BookVerdict.GAP
        if seq is not None:
            self._seq = seq
        if u is not None:
            self._u = u
        return BookVerdict.OK

    def best(self) -> tuple[float | None, float | None]:
        """Best bid and ask of the local book."""
        return self.book.best()

    def reset(self) -> None:
        """Forget the book; deltas are ignored until the next snapshot."""
        self.book.clear()
        self._synced = False
        self._seq = None
        self._u = None


class BybitDialect(BaseDialect):
    """Bybit v5 public spot stream [BY-CONNECT].

    Facts: base ``wss://stream.bybit.com``, path ``/v5/public/spot``; client keep-alive
    ``{"req_id":…,"op":"ping"}`` recommended every 20 s (no ping and no data for 10 min → cut)
    [BY-CONNECT §How to Send the Heartbeat Packet]; ≤ 500 connections per 5 min per domain
    [BY-CONNECT §IP Limits]; spot ≤ 10 args per subscribe request [BY-CONNECT §Public channel -
    Args limits]; no documented inbound rate or lifetime.
    """

    exchange: ClassVar[str] = "bybit"
    default_url: ClassVar[str] = "wss://stream.bybit.com"
    keepalive: ClassVar[KeepAlive] = KeepAlive.CLIENT_TEXT
    ping_interval: ClassVar[float] = 20.0
    pong_timeout: ClassVar[float] = 10.0
    """Our choice (undocumented): half the ping period."""
    connect_limits: ClassVar[tuple[ConnectLimit, ...]] = (
        ConnectLimit(500, 300.0, "[BY-CONNECT §IP Limits]"),
    )
    max_subscriptions_per_request: ClassVar[int] = 10
    ticker_quotes: ClassVar[bool] = False
    """The spot ticker has no best bid/ask [BY-TICKER §Response Parameters]."""
    contiguous_update_ids: ClassVar[bool] = True
    """Check ``u`` == last ``u`` + 1 on ``orderbook.50`` deltas (see :class:`BybitBook`). The
    docs promise it only for ``orderbook.full`` [BY-FULLOB]; without it a dropped delta on
    ``orderbook.50`` is invisible (``seq`` is not contiguous [BY-OB]) and the book silently
    drifts, so it is on. Should real ``orderbook.50`` traffic ever skip ids, the cost is resyncs
    counted in ``exchange_ws_sequence_gaps_total`` (visible, alertable), not a wrong book."""
    default_stale_after: ClassVar[Mapping[Channel, float]] = {
        # spot tickers push every 50 ms (snapshot on change) [BY-TICKER]: 5 s = 100 periods.
        Channel.TICKER: 5.0,
        # publicTrade is real time [BY-TRADE]: follows trading; 10 s covers a lull on BTC/ETH.
        Channel.TRADES: 10.0,
        # orderbook.50 pushes every 20 ms on change [BY-OB §Depths]: 5 s = 250 periods.
        Channel.BOOK: 5.0,
    }

    def __init__(self) -> None:
        super().__init__()
        self._pending = PendingRequests()
        self._topics: dict[str, Subscription] = {}

    def symbol(self, market: str) -> str:
        """``BTC/USDT`` → ``BTCUSDT``.

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        base, quote = split_market(market)
        return base + quote

    def topic(self, subscription: Subscription) -> str:
        """The topic of a subscription (``orderbook.50.BTCUSDT``), remembered for parsing."""
        name = _TOPIC_PREFIX[subscription.channel] + self.remember(subscription.market)
        self._topics[name] = subscription
        return name

    def connect_url(self, url: str, subscriptions: Sequence[Subscription]) -> str:
        """``<url>/v5/public/spot`` (kept as is when already there)."""
        return join_url(url, PATH)

    def _request(self, op: str, subscriptions: Sequence[Subscription]) -> str:
        request_id = str(self.next_request_id())
        if op == "subscribe":
            self._pending.add(request_id, list(subscriptions))
        args = [self.topic(sub) for sub in subscriptions]
        return dumps({"req_id": request_id, "op": op, "args": args})

    def subscribe_messages(self, subscriptions: Sequence[Subscription]) -> list[str]:
        """``{"req_id":"n","op":"subscribe","args":[topics]}``, at most 10 args each
        [BY-CONNECT §How to Subscribe to Topics, §Public channel - Args limits]."""
        size = self.max_subscriptions_per_request
        return [
            self._request("subscribe", subscriptions[start : start + size])
            for start in range(0, len(subscriptions), size)
        ]

    def resubscribe_messages(self, subscription: Subscription) -> list[str] | None:
        """Unsubscribe + subscribe: the new subscription starts with a fresh snapshot
        [BY-OB §Process snapshot/delta]."""
        return [
            self._request("unsubscribe", [subscription]),
            self._request("subscribe", [subscription]),
        ]

    def ping_message(self) -> str:
        """``{"req_id":"n","op":"ping"}`` [BY-CONNECT §How to Send the Heartbeat Packet]."""
        return dumps({"req_id": str(self.next_request_id()), "op": "ping"})

    def new_book(self, market: str) -> BybitBook:
        """A :class:`BybitBook` waiting for its snapshot."""
        self.remember(market)
        return BybitBook(contiguous_u=self.contiguous_update_ids)

    def parse(self, text: str) -> list[StreamEvent]:
        """Topic data, pongs (spot and option forms), subscribe acks and errors → events;
        never raises."""
        try:
            message = loads(text)
        except ValueError:
            return [malformed("not JSON", text)]
        if not isinstance(message, dict):
            return [malformed("not a JSON object", text)]
        topic = message.get("topic")
        if isinstance(topic, str):
            return self._data(topic, message, text)
        op = message.get("op")
        if op == "pong" or (op == "ping" and message.get("ret_msg") == "pong"):
            return [_pong(message)]
        if op == "subscribe":
            if message.get("success") is True:
                return self._acked(message)
            return self._failed(message)
        if op == "unsubscribe":
            return [Ignored("unsubscribe ack")]
        if message.get("success") is False:
            # OBSERVED bad-op form {"success":false,"ret_msg":"error:invalid op",…,"request":{…}}.
            request = message.get("request")
            if isinstance(request, dict) and request.get("op") == "subscribe":
                return self._failed(message)
            return [Malformed(f"error: {cap(str(message.get('ret_msg')), 120)}", cap(text))]
        return [malformed("unknown message", text)]

    def _data(self, topic: str, message: dict[str, Any], text: str) -> list[StreamEvent]:
        prefix, _, rest = topic.partition(".")
        channel = _CHANNEL_OF.get(prefix)
        if channel is None:
            if topic == "system.status":
                return _system_status(message)
            return [Ignored(f"topic {cap(topic, 60)}")]
        market = self.market_of(rest.rpartition(".")[2])
        if market is None:
            return [Ignored(f"topic {cap(topic, 60)} not subscribed")]
        event_time = ms_time(message.get("ts"))
        data = message.get("data")
        if channel is Channel.TICKER:
            # Spot tickers carry `lastPrice` and no best bid/ask [BY-TICKER §Response
            # Parameters]: bid/ask come from the book where it is subscribed (ticker_quotes).
            last = number(data.get("lastPrice")) if type(data) is dict else None
            return [Data(channel, market, event_time, last=last)]
        if channel is Channel.TRADES:
            # data: trades with price `p` and base size `v` [BY-TRADE §Response Parameters].
            if type(data) is not list:
                return [Data(channel, market, event_time)]
            last, volume = trade_totals(data, "p", "v")
            return [Data(channel, market, event_time, last=last, volume=volume)]
        try:
            data = message["data"]
            update_id, seq = data["u"], data.get("seq")
            if type(update_id) is not int or (seq is not None and type(seq) is not int):
                return [malformed("orderbook u/seq not integers", text)]
            book = BookMessage(
                snapshot=message["type"] == "snapshot",
                bids=[(level[0], level[1]) for level in data["b"]],
                asks=[(level[0], level[1]) for level in data["a"]],
                last_id=update_id,
                prev_id=seq,
            )
        except (KeyError, TypeError, IndexError):
            return [malformed("orderbook message missing fields", text)]
        return [Data(channel, market, event_time, book)]

    def _acked(self, message: dict[str, Any]) -> list[StreamEvent]:
        # The ack names only the request (req_id) [BY-CONNECT §Understanding the Subscription
        # Response]; answers come in order, so an ack without a known req_id is the oldest's.
        subscriptions = self._pending.pop(message.get("req_id") or None, oldest=True)
        if not subscriptions:
            return [Ignored("ack of an unknown request")]
        return [Subscribed(sub) for sub in subscriptions]

    def _failed(self, message: dict[str, Any]) -> list[StreamEvent]:
        # OBSERVED: {"success":false,"ret_msg":"Invalid symbol :[orderbook.50.NOTREALUSDT]",…}.
        reason = cap(str(message.get("ret_msg")))
        named: list[Subscription] = []
        for group in _BRACKETED.findall(reason):
            for name in group.split(","):
                sub = self._topics.get(name.strip())
                if sub is not None:
                    named.append(sub)
        request_id = message.get("req_id") or None
        if named:
            # One answer per request: the request that asked for the named topic is answered
            # (its other topics, if Bybit subscribed them, are acknowledged by their data).
            if request_id is None or self._pending.pop(request_id) is None:
                self._pending.pop_containing(named[0])
            for sub in named:
                self._pending.discard(sub)
            return [SubscriptionFailed(sub, reason) for sub in named]
        subscriptions = self._pending.pop(request_id, oldest=True)
        if not subscriptions:
            return [SubscriptionFailed(None, reason)]
        return [SubscriptionFailed(sub, reason) for sub in subscriptions]


def _pong(message: dict[str, Any]) -> Pong:
    # Spot {"success":true,"ret_msg":"pong","conn_id":…,"op":"ping"}; option/spread
    # {"args":["1672916271846"],"op":"pong"} [BY-CONNECT §How to Send the Heartbeat Packet].
    request_id = message.get("req_id")
    server_time = None
    args = message.get("args")
    if isinstance(args, list) and args:
        server_time = ms_time(args[0])
    return Pong(str(request_id) if request_id else None, server_time)


def _system_status(message: dict[str, Any]) -> list[StreamEvent]:
    # [BY-SYS]: state scheduled/ongoing/completed/canceled.
    data = message.get("data")
    states = (
        [str(item.get("state")) for item in data if isinstance(item, dict)]
        if isinstance(data, list)
        else []
    )
    if "ongoing" in states:
        return [Notice(NoticeKind.MAINTENANCE, "system.status ongoing")]
    if states and all(state in ("completed", "canceled") for state in states):
        return [Notice(NoticeKind.ONLINE, "system.status " + "/".join(sorted(set(states))))]
    return [Ignored("system.status")]
