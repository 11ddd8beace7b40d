"""Coinbase Exchange public WebSocket feed [CB-EX-OV] and its ``level2_batch`` book.

Channels used: ``ticker`` (one message per match, ``time`` RFC3339), ``matches`` (trades),
``level2_batch`` (``snapshot`` then ``l2update`` every 50 ms, public, no sequence numbers),
``heartbeat`` (one per product per second: the keep-alive) and ``status`` (product status:
maintenance signal) [CB-EX-CH; CB-HELP; CB-EX-AUTH]. Market data: bid/ask/last from the
ticker's ``best_bid``/``best_ask``/``price``, last and volume from each match's
``price``/``size`` [CB-EX-CH]. The feed lives at the host root
(``wss://ws-feed.exchange.coinbase.com``); the configured URL is used as is (simulator:
``…/coinbase/ws``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from exporter.streams.book import LocalBook
from exporter.streams.dialect import BookSync, BookVerdict, ConnectLimit, KeepAlive
from exporter.streams.dialects._common import (
    BaseDialect,
    PendingRequests,
    cap,
    dumps,
    loads,
    malformed,
    number,
    rfc3339_time,
    split_market,
)
from exporter.streams.events import (
    BookMessage,
    Channel,
    Data,
    Heartbeat,
    Ignored,
    Notice,
    NoticeKind,
    StreamEvent,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)

BOOK_MAX_DEPTH = 1000
"""Levels kept per side: ``level2_batch`` sends the whole book; beyond 1000 levels a side is a
memory cost with no bearing on best bid/ask or crossing."""

_CHANNEL_NAME: dict[Channel, str] = {
    Channel.TICKER: "ticker",
    Channel.TRADES: "matches",
    Channel.BOOK: "level2_batch",
}
_CHANNEL_OF: dict[str, Channel] = {name: channel for channel, name in _CHANNEL_NAME.items()}
_CHANNEL_OF["level2"] = Channel.BOOK


class CoinbaseBook(BookSync):
    """The ``level2_batch`` book: ``snapshot`` replaces it, ``l2update`` changes are absolute
    sizes (``0`` removes) [CB-EX-CH]. The channel has **no sequence numbers** (guaranteed
    delivery is its contract), so no gap can be seen; integrity rests on the crossed-book check.
    Updates before a snapshot are ``ignored``; a snapshot replacing a live book is ``reset``.
    """

    def __init__(self) -> None:
        self.book = LocalBook(BOOK_MAX_DEPTH)
        self._synced = False

    def apply(self, message: BookMessage) -> BookVerdict:
        """Apply a snapshot or an update (see the class docstring); a non-numeric level
        discards the book (``gap``: resubscribe)."""
        try:
            if message.snapshot:
                verdict = BookVerdict.RESET if self._synced else BookVerdict.OK
                self.book.replace(message.bids, message.asks)
                self._synced = True
                return verdict
            if not self._synced:
                return BookVerdict.IGNORED
            self.book.apply(message.bids, message.asks)
        except ValueError:
            self.reset()
            return BookVerdict.GAP
        return BookVerdict.OK

    def best(self) -> tuple[float | None, float | None]:
        """Best bid and ask of the local book."""
        return self.book.best()

    def reset(self) -> None:
        """Forget the book; updates are ignored until the next snapshot."""
        self.book.clear()
        self._synced = False


class CoinbaseDialect(BaseDialect):
    """Coinbase Exchange public feed [CB-EX-OV].

    Facts: ``wss://ws-feed.exchange.coinbase.com``; a ``subscribe`` must arrive within 5 s
    [CB-EX-OV §Subscribe]; no client ping is required: the ``heartbeat`` channel beats once per
    second per product [CB-EX-CH §Heartbeat Channel] (keep-alive ``heartbeat``); 8 requests/s
    per IP (bursts 20) and 100 client messages/s per IP [CB-EX-RL §Limits]. ``matches`` can
    drop messages: trade ids are checked for continuity (→ ``Data.gap`` on trades)
    [CB-EX-OV §Sequence Numbers; CB-EX-CH §Heartbeat Channel].
    """

    exchange: ClassVar[str] = "coinbase"
    default_url: ClassVar[str] = "wss://ws-feed.exchange.coinbase.com"
    keepalive: ClassVar[KeepAlive] = KeepAlive.HEARTBEAT
    ping_interval: ClassVar[float] = 30.0
    """Protocol pings only to time the round trip (none are required [CB-EX-OLD §Errors])."""
    pong_timeout: ClassVar[float] = 5.0
    """Heartbeats come every second per product: 5 s of silence is five missed beats."""
    connect_limits: ClassVar[tuple[ConnectLimit, ...]] = (
        ConnectLimit(8, 1.0, "[CB-EX-RL §Limits]"),
    )
    max_client_messages_per_second: ClassVar[float | None] = 100.0
    max_subscriptions_per_request: ClassVar[int] = 100
    default_stale_after: ClassVar[Mapping[Channel, float]] = {
        # ticker is sent per match [CB-EX-CH]: its cadence is the trade rate; 10 s covers a
        # lull on BTC/ETH.
        Channel.TICKER: 10.0,
        # matches: one per trade [CB-EX-CH]: as ticker.
        Channel.TRADES: 10.0,
        # level2_batch: 50 ms batches [CB-HELP] of a constantly changing book: 5 s.
        Channel.BOOK: 5.0,
    }

    def __init__(self) -> None:
        super().__init__()
        self._requested: set[Subscription] = set()
        # Requests answered in order (no request ids on this feed): each subscribe or
        # unsubscribe gets one `subscriptions` or `error` answer.
        self._answers = PendingRequests()
        self._last_trade: dict[str, int] = {}
        self._status: str | None = None

    def symbol(self, market: str) -> str:
        """``BTC/USD`` → ``BTC-USD`` (``product_id``).

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        base, quote = split_market(market)
        return f"{base}-{quote}"

    def _market(self, product_id: object) -> str | None:
        market = self.market_of(product_id)
        if market is None and isinstance(product_id, str) and product_id.count("-") == 1:
            market = product_id.replace("-", "/")
        return market

    def _channels(self, subscriptions: Sequence[Subscription]) -> tuple[list[str], list[Any]]:
        products: list[str] = []
        by_channel: dict[str, list[str]] = {}
        for sub in subscriptions:
            product = self.remember(sub.market)
            if product not in products:
                products.append(product)
            by_channel.setdefault(_CHANNEL_NAME[sub.channel], []).append(product)
        channels: list[Any] = [
            {"name": name, "product_ids": ids} for name, ids in by_channel.items()
        ]
        return products, channels

    def subscribe_messages(self, subscriptions: Sequence[Subscription]) -> list[str]:
        """One ``subscribe``: each data channel with its products, plus ``heartbeat`` (the
        keep-alive) and ``status`` for every product [CB-EX-OV §Subscribe]."""
        if not subscriptions:
            return []
        self._requested.update(subscriptions)
        self._answers.add(self.next_request_id(), list(subscriptions))
        products, channels = self._channels(subscriptions)
        channels += ["heartbeat", "status"]
        return [dumps({"type": "subscribe", "product_ids": products, "channels": channels})]

    def resubscribe_messages(self, subscription: Subscription) -> list[str] | None:
        """Unsubscribe + subscribe the product's ``level2_batch``: a fresh ``snapshot`` follows
        [CB-EX-OV §Unsubscribe; CB-EX-CH]."""
        self._requested.add(subscription)
        self._answers.add(self.next_request_id(), [])  # the unsubscribe
        self._answers.add(self.next_request_id(), [subscription])
        _, channels = self._channels([subscription])
        return [
            dumps({"type": "unsubscribe", "channels": channels}),
            dumps({"type": "subscribe", "channels": channels}),
        ]

    def new_book(self, market: str) -> CoinbaseBook:
        """A :class:`CoinbaseBook` waiting for its snapshot."""
        self.remember(market)
        return CoinbaseBook()

    def parse(self, text: str) -> list[StreamEvent]:
        """Feed messages by ``type`` → events; never raises."""
        try:
            message = loads(text)
        except ValueError:
            return [malformed("not JSON", text)]
        if not isinstance(message, dict):
            return [malformed("not a JSON object", text)]
        kind = message.get("type")
        try:
            if kind == "l2update":
                return self._l2update(message, text)
            if kind == "ticker":
                return self._ticker(message)
            if kind == "match" or kind == "last_match":
                return self._match(message, text)
            if kind == "heartbeat":
                return [Heartbeat(rfc3339_time(message.get("time")))]
            if kind == "snapshot":
                return self._snapshot(message, text)
            if kind == "subscriptions":
                return self._subscriptions(message)
            if kind == "status":
                return self._status_notice(message)
            if kind == "error":
                return self._error(message)
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            return [malformed(f"{kind} message missing fields", text)]
        return [malformed("unknown message", text)]

    def _ticker(self, message: dict[str, Any]) -> list[StreamEvent]:
        market = self.market_of(message["product_id"])
        if market is None:
            return [Ignored("ticker for an unsubscribed product")]
        # `best_bid`, `best_ask`, last trade `price` [CB-EX-CH].
        return [
            Data(
                Channel.TICKER,
                market,
                rfc3339_time(message.get("time")),
                bid=number(message.get("best_bid")),
                ask=number(message.get("best_ask")),
                last=number(message.get("price")),
            )
        ]

    def _match(self, message: dict[str, Any], text: str) -> list[StreamEvent]:
        market = self.market_of(message["product_id"])
        if market is None:
            return [Ignored("match for an unsubscribed product")]
        trade_id = message["trade_id"]
        if type(trade_id) is not int:
            return [malformed("match trade_id not an integer", text)]
        last = self._last_trade.get(market)
        gap = trade_id - last - 1 if last is not None and trade_id > last + 1 else 0
        if last is None or trade_id > last:
            self._last_trade[market] = trade_id
        # `price`, `size` of one trade [CB-EX-CH]. last_match (sent on subscribe) is history:
        # no event time (no lag sample) and no volume (counted before, or never ours); its
        # price is still the last traded one.
        price = number(message.get("price"))
        if message["type"] != "match":
            return [Data(Channel.TRADES, market, None, gap=gap, last=price)]
        event_time = rfc3339_time(message.get("time"))
        volume = number(message.get("size")) or 0.0
        return [Data(Channel.TRADES, market, event_time, gap=gap, last=price, volume=volume)]

    def _snapshot(self, message: dict[str, Any], text: str) -> list[StreamEvent]:
        market = self.market_of(message["product_id"])
        if market is None:
            return [Ignored("snapshot for an unsubscribed product")]
        book = BookMessage(
            snapshot=True,
            bids=[(level[0], level[1]) for level in message["bids"]],
            asks=[(level[0], level[1]) for level in message["asks"]],
        )
        return [Data(Channel.BOOK, market, rfc3339_time(message.get("time")), book)]

    def _l2update(self, message: dict[str, Any], text: str) -> list[StreamEvent]:
        market = self.market_of(message["product_id"])
        if market is None:
            return [Ignored("l2update for an unsubscribed product")]
        bids: list[tuple[str, str]] = []
        asks: list[tuple[str, str]] = []
        for side, price, size in message["changes"]:
            if side == "buy":
                bids.append((price, size))
            elif side == "sell":
                asks.append((price, size))
            else:
                return [malformed(f"l2update side {cap(str(side), 20)}", text)]
        book = BookMessage(snapshot=False, bids=bids, asks=asks)
        return [Data(Channel.BOOK, market, rfc3339_time(message.get("time")), book)]

    def _subscriptions(self, message: dict[str, Any]) -> list[StreamEvent]:
        # {"type":"subscriptions","channels":[{"name":…,"product_ids":[…]}…]} [CB-EX-OV
        # §Subscriptions Message]: one Subscribed per acknowledged (channel, market) we asked for.
        self._answers.pop(None, oldest=True)
        events: list[StreamEvent] = []
        for entry in message["channels"]:
            if not isinstance(entry, dict):
                continue
            channel = _CHANNEL_OF.get(str(entry.get("name")))
            if channel is None:
                continue
            for product in entry.get("product_ids") or ():
                market = self._market(product)
                if market is None:
                    continue
                sub = Subscription(channel, market)
                if sub in self._requested:
                    events.append(Subscribed(sub))
        return events or [Ignored("subscriptions without our data channels")]

    def _status_notice(self, message: dict[str, Any]) -> list[StreamEvent]:
        # [CB-EX-CH §Status Channel]: per product status / cancel_only. Only our products
        # count; a notice only when the state changes on this connection.
        states: list[str] = []
        for product in message.get("products") or ():
            if isinstance(product, dict) and self.market_of(product.get("id")) is not None:
                status = str(product.get("status"))
                if product.get("cancel_only") is True and status == "online":
                    status = "cancel_only"
                states.append(f"{product.get('id')} {status}")
        if not states:
            return [Ignored("status without our products")]
        offline = [state for state in states if not state.endswith(" online")]
        summary = "; ".join(offline) if offline else "online"
        if summary == self._status:
            return [Ignored("status unchanged")]
        self._status = summary
        kind = NoticeKind.MAINTENANCE if offline else NoticeKind.ONLINE
        return [Notice(kind, cap(summary))]

    def _error(self, message: dict[str, Any]) -> list[StreamEvent]:
        # {"type":"error","message":…} [CB-EX-OLD §Protocol]; OBSERVED bad product:
        # {"type":"error","message":"Failed to subscribe","reason":"BTC-USDX is not a valid
        # product"}. A refused subscribe changes nothing, so every subscription of the request
        # it answers (the oldest unanswered) failed.
        reason = message.get("reason")
        text = cap(f"{message.get('message')}: {reason}" if reason else str(message.get("message")))
        request = self._answers.pop(None, oldest=True)
        if request is None:
            return [SubscriptionFailed(None, text)]
        if not request:
            return [Ignored(f"unsubscribe refused: {text}")]
        return [SubscriptionFailed(sub, text) for sub in request]
