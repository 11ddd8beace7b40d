"""Kraken spot WebSocket v2 [KR-INTRO] and its CRC32-checked depth-10 book [KR-CKS2].

Channels used on ``/v2``: ``ticker`` (on every trade), ``trade`` (``trade_id`` sequential per
book, RFC3339 ``timestamp``) and ``book`` depth 10 (snapshot then updates, both with the CRC32
``checksum`` of the top 10; updates carry ``timestamp``) [KR-TICK2; KR-TRADE2; KR-BOOK2].
Prices and quantities are JSON numbers with full precision: frames are decoded keeping every
non-integer number as its source string, so ``0.00100000`` keeps its zeros for the checksum
[KR-INTRO §Websockets v2; KR-CKS2]. Market data: bid/ask/last from the ticker's
``bid``/``ask``/``last``, last and volume from the trades' ``price``/``qty`` (the decimal
strings and integers become floats there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from exporter.streams.book import LocalBook
from exporter.streams.checksums import KRAKEN_CHECKSUM_DEPTH, kraken_checksum
from exporter.streams.dialect import BookSync, BookVerdict, ConnectLimit, KeepAlive
from exporter.streams.dialects._common import (
    PENDING_MAX,
    BaseDialect,
    PendingRequests,
    cap,
    dumps,
    join_url,
    loads_decimal,
    malformed,
    number,
    rfc3339_time,
    split_market,
    trade_totals,
)
from exporter.streams.events import (
    BookMessage,
    Channel,
    Data,
    Heartbeat,
    Ignored,
    Notice,
    NoticeKind,
    Pong,
    StreamEvent,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)

PATH = "/v2"
"""Public v2 path [KR-INTRO §Connection Details]."""

BOOK_DEPTH = 10
"""Subscribed book depth (the default, and the checksum's depth) [KR-BOOK2 §Subscribe]."""

_CHANNEL_NAME: dict[Channel, str] = {
    Channel.TICKER: "ticker",
    Channel.TRADES: "trade",
    Channel.BOOK: "book",
}
_CHANNEL_OF: dict[str, Channel] = {name: channel for channel, name in _CHANNEL_NAME.items()}
_MAINTENANCE_STATES = ("maintenance", "cancel_only", "post_only")


def _text(value: object) -> str:
    """A decimal-preserved number (str) or an integer as the string the checksum uses."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"not a number: {value!r}")


def _levels(levels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(_text(level["price"]), _text(level["qty"])) for level in levels]


class KrakenBook(BookSync):
    """Kraken v2 book procedure [KR-CKS2 §Maintaining the book, §Algorithm].

    There are no sequence numbers: a snapshot replaces the book (``ok``, ``reset`` when it
    replaces a live one), an update applies its levels in order (``qty`` 0 removes) and the
    book is truncated to the subscribed depth after every message (levels that fall out of
    scope get no delete). Then the unsigned CRC32 of the top 10 is compared with ``checksum``;
    a mismatch discards the book (``checksum``: resubscribe for a fresh snapshot). Updates
    before a snapshot are ``ignored``.
    """

    def __init__(self, depth: int = BOOK_DEPTH) -> None:
        self.book = LocalBook(depth)
        self._synced = False

    def apply(self, message: BookMessage) -> BookVerdict:
        """Apply a snapshot or an update and check its checksum (see the class docstring)."""
        try:
            if message.snapshot:
                verdict = BookVerdict.RESET if self._synced else BookVerdict.OK
                self.book.replace(message.bids, message.asks)
                self._synced = True
            elif not self._synced:
                return BookVerdict.IGNORED
            else:
                verdict = BookVerdict.OK
                self.book.apply(message.bids, message.asks)
        except ValueError:
            self.reset()
            return BookVerdict.GAP
        if message.checksum is not None:
            bids, asks = self.book.top(KRAKEN_CHECKSUM_DEPTH)
            if kraken_checksum(bids, asks) != message.checksum:
                self.reset()
                return BookVerdict.CHECKSUM
        return verdict

    def best(self) -> tuple[float | None, float | None]:
        """Best bid and ask of the local book."""
        return self.book.best()

    def reset(self) -> None:
        """Forget the book; updates are ignored until the next snapshot."""
        self.book.clear()
        self._synced = False


class KrakenDialect(BaseDialect):
    """Kraken spot WebSocket v2 [KR-INTRO].

    Facts: base ``wss://ws.kraken.com``, path ``/v2`` [KR-INTRO §Connection Details]; the server
    sends ``{"channel":"heartbeat"}`` about once a second when no other update is sent
    [KR-HB2] (keep-alive ``heartbeat``) and the reconnection guide recommends a 5 s deadline:
    no message of any kind ⇒ reconnect [KR-RECON §Detecting disconnects]; ``{"method":"ping"}``
    is optional, its pong carries server times [KR-PING2]; ~150 connection attempts per rolling
    10 min per IP (more bans the IP for 10 min) [KR-V2HOME §General Considerations]; one ack per
    symbol [KR-BOOK2 §Subscribe].
    """

    exchange: ClassVar[str] = "kraken"
    default_url: ClassVar[str] = "wss://ws.kraken.com"
    keepalive: ClassVar[KeepAlive] = KeepAlive.HEARTBEAT
    ping_interval: ClassVar[float] = 30.0
    """Optional application pings to time the round trip (and keep an idle connection busy
    well inside the ~1 min inactivity cut quoted for [KR-INTRO], UNVERIFIED)."""
    pong_timeout: ClassVar[float] = 5.0
    """[KR-RECON §Detecting disconnects]: 5 s without any message ⇒ reconnect."""
    connect_limits: ClassVar[tuple[ConnectLimit, ...]] = (
        ConnectLimit(150, 600.0, "[KR-V2HOME §General Considerations]"),
    )
    max_subscriptions_per_request: ClassVar[int] = 100
    """Symbols per subscribe request: undocumented for public channels [KR-L3]."""
    default_stale_after: ClassVar[Mapping[Channel, float]] = {
        # ticker updates on every trade by default (event_trigger "trades") [KR-TICK2]: its
        # cadence is the trade rate; 10 s covers a lull on BTC/ETH.
        Channel.TICKER: 10.0,
        # trade: one message per trade batch [KR-TRADE2]: as ticker.
        Channel.TRADES: 10.0,
        # book depth 10 changes constantly; [KR-RECON] recommends a 5 s deadline.
        Channel.BOOK: 5.0,
    }

    def __init__(self) -> None:
        super().__init__()
        self._pending = PendingRequests()
        self._requests: dict[str, Channel] = {}
        self._waiting: list[Subscription] = []
        self._last_trade: dict[str, int] = {}
        self._system: str | None = None

    def symbol(self, market: str) -> str:
        """``BTC/USD`` → ``BTC/USD`` (v2 uses the unified form; v1's ``XBT`` is rejected
        [KR-TICK2 §Subscribe Ack Schema]).

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        split_market(market)
        return market

    def connect_url(self, url: str, subscriptions: Sequence[Subscription]) -> str:
        """``<url>/v2`` (kept as is when already there)."""
        return join_url(url, PATH)

    def _request(self, method: str, channel: Channel, markets: list[str]) -> str:
        request_id = self.next_request_id()
        params: dict[str, Any] = {
            "channel": _CHANNEL_NAME[channel],
            "symbol": [self.remember(market) for market in markets],
        }
        if channel is Channel.BOOK:
            params["depth"] = BOOK_DEPTH
            params["snapshot"] = True
        elif channel is Channel.TRADES:
            # The last-50 snapshot is history (DOCS DISAGREE on its default): ask for none.
            params["snapshot"] = False
        if method == "subscribe":
            requests = self._requests
            requests[str(request_id)] = channel
            if len(requests) > PENDING_MAX:
                del requests[next(iter(requests))]
            subs = [Subscription(channel, market) for market in markets]
            self._pending.add(request_id, subs)
            self._waiting = [*self._waiting[-PENDING_MAX:], *subs]
        return dumps({"method": method, "params": params, "req_id": request_id})

    def subscribe_messages(self, subscriptions: Sequence[Subscription]) -> list[str]:
        """One ``subscribe`` per channel with its symbols (book: depth 10, snapshot)
        [KR-BOOK2 §Subscribe; KR-TICK2; KR-TRADE2]."""
        by_channel: dict[Channel, list[str]] = {}
        for sub in subscriptions:
            by_channel.setdefault(sub.channel, []).append(sub.market)
        size = self.max_subscriptions_per_request
        return [
            self._request("subscribe", channel, markets[start : start + size])
            for channel, markets in by_channel.items()
            for start in range(0, len(markets), size)
        ]

    def resubscribe_messages(self, subscription: Subscription) -> list[str] | None:
        """Unsubscribe + subscribe: the new snapshot is authoritative [KR-CKS2; KR-RECON]."""
        markets = [subscription.market]
        return [
            self._request("unsubscribe", subscription.channel, markets),
            self._request("subscribe", subscription.channel, markets),
        ]

    def ping_message(self) -> str:
        """``{"method":"ping","req_id":n}`` [KR-PING2]."""
        return dumps({"method": "ping", "req_id": self.next_request_id()})

    def new_book(self, market: str) -> KrakenBook:
        """A :class:`KrakenBook` (depth 10) waiting for its snapshot."""
        self.remember(market)
        return KrakenBook()

    def parse(self, text: str) -> list[StreamEvent]:
        """Channel messages, method responses (acks, errors, pong) → events; never raises."""
        try:
            message = loads_decimal(text)
        except ValueError:
            return [malformed("not JSON", text)]
        if not isinstance(message, dict):
            return [malformed("not a JSON object", text)]
        try:
            channel_name = message.get("channel")
            if channel_name is not None:
                channel = _CHANNEL_OF.get(channel_name)
                if channel is Channel.BOOK:
                    return self._book(message, text)
                if channel is Channel.TRADES:
                    return self._trades(message, text)
                if channel is Channel.TICKER:
                    return self._ticker(message, text)
                if channel_name == "heartbeat":
                    return [Heartbeat()]
                if channel_name == "status":
                    return self._status(message)
                return [Ignored(f"channel {cap(str(channel_name), 40)}")]
            method = message.get("method")
            if method == "pong":
                request_id = message.get("req_id")
                return [
                    Pong(
                        None if request_id is None else str(request_id),
                        rfc3339_time(message.get("time_out")),
                    )
                ]
            if method == "subscribe":
                return self._ack(message)
            if method == "unsubscribe":
                return [Ignored("unsubscribe ack")]
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            return [malformed(f"{message.get('channel')} message missing fields", text)]
        return [malformed("unknown message", text)]

    def _by_market(self, message: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for item in message["data"]:
            market = self.market_of(item["symbol"])
            if market is not None:
                grouped.setdefault(market, []).append(item)
        return grouped

    def _ticker(self, message: dict[str, Any], text: str) -> list[StreamEvent]:
        # `bid`, `ask`, `last` (JSON numbers); the RFC3339 `timestamp` is optional (DOCS
        # DISAGREE) [KR-TICK2].
        events: list[StreamEvent] = []
        for market, items in self._by_market(message).items():
            item = items[-1]
            events.append(
                Data(
                    Channel.TICKER,
                    market,
                    rfc3339_time(item.get("timestamp")),
                    bid=number(item.get("bid")),
                    ask=number(item.get("ask")),
                    last=number(item.get("last")),
                )
            )
        return events or [Ignored("ticker for an unsubscribed symbol")]

    def _trades(self, message: dict[str, Any], text: str) -> list[StreamEvent]:
        # trade_id: "a sequence number, unique per book" [KR-TRADE2; KR-SPOT-WS §v2 vs v1].
        snapshot = message.get("type") == "snapshot"
        events: list[StreamEvent] = []
        for market, trades in self._by_market(message).items():
            gap = 0
            last = self._last_trade.get(market)
            for trade in trades:
                trade_id = trade["trade_id"]
                if type(trade_id) is not int:
                    raise ValueError("trade_id not an integer")
                if not snapshot and last is not None and trade_id > last + 1:
                    gap += trade_id - last - 1
                if last is None or trade_id > last:
                    last = trade_id
            if last is not None:
                self._last_trade[market] = last
            if snapshot:
                # A snapshot is history (the last 50 trades): no lag sample, no volume, and no
                # last price (its order is not documented).
                events.append(Data(Channel.TRADES, market, None, gap=gap))
                continue
            # `price`, `qty` of each trade [KR-TRADE2].
            price, volume = trade_totals(trades, "price", "qty")
            event_time = rfc3339_time(trades[-1].get("timestamp"))
            events.append(
                Data(Channel.TRADES, market, event_time, gap=gap, last=price, volume=volume)
            )
        return events or [Ignored("trade for an unsubscribed symbol")]

    def _book(self, message: dict[str, Any], text: str) -> list[StreamEvent]:
        snapshot = message.get("type") == "snapshot"
        events: list[StreamEvent] = []
        for item in message["data"]:
            market = self.market_of(item["symbol"])
            if market is None:
                continue
            checksum = item.get("checksum")
            book = BookMessage(
                snapshot=snapshot,
                bids=_levels(item["bids"]),
                asks=_levels(item["asks"]),
                checksum=None if checksum is None else int(checksum),
            )
            events.append(Data(Channel.BOOK, market, rfc3339_time(item.get("timestamp")), book))
        return events or [Ignored("book for an unsubscribed symbol")]

    def _status(self, message: dict[str, Any]) -> list[StreamEvent]:
        # system ∈ online, maintenance, cancel_only, post_only [KR-STATUS2]; sent on connect and
        # on change: a notice whenever it differs from the last one on this connection.
        system = str(message["data"][0]["system"])
        if system == self._system:
            return [Ignored(f"status {cap(system, 40)} unchanged")]
        self._system = system
        if system == "online":
            return [Notice(NoticeKind.ONLINE, "system online")]
        if system in _MAINTENANCE_STATES:
            return [Notice(NoticeKind.MAINTENANCE, f"system {system}")]
        return [Ignored(f"status {cap(system, 40)}")]

    def _ack(self, message: dict[str, Any]) -> list[StreamEvent]:
        # One ack per symbol: {"method":"subscribe","result":{"channel":…,"symbol":…},
        # "success":true,…}; error: success false + "error" (+ "symbol" OBSERVED)
        # [KR-BOOK2 §Subscribe; KR-TICK2 §Subscribe Ack Schema].
        request_id = message.get("req_id")
        result = message.get("result")
        if message.get("success") is True and isinstance(result, dict):
            channel = _CHANNEL_OF.get(str(result.get("channel")))
            market = self.market_of(result.get("symbol"))
            if channel is None or market is None:
                return [Ignored("ack of a channel we did not ask for")]
            acked = Subscription(channel, market)
            self._settle(acked)
            return [Subscribed(acked)]
        reason = cap(str(message.get("error")))
        channel = self._requests.get(str(request_id)) if request_id is not None else None
        market = self.market_of(message.get("symbol"))
        sub: Subscription | None = None
        if market is not None:
            if channel is not None:
                sub = Subscription(channel, market)
            else:
                sub = next((s for s in self._waiting if s.market == market), None)
        elif channel is not None:
            waiting = self._pending.get(request_id) or []
            if len(waiting) == 1:
                sub = waiting[0]
        if sub is None:
            return [SubscriptionFailed(None, reason)]
        self._settle(sub)
        return [SubscriptionFailed(sub, reason)]

    def _settle(self, sub: Subscription) -> None:
        self._pending.discard(sub)
        if sub in self._waiting:
            self._waiting.remove(sub)
