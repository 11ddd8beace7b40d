"""OKX v5 public streams [OKX-OV] and its ``prevSeqId``/``seqId`` + CRC32 book procedure [OKX-MD].

Channels used on ``/ws/v5/public``: ``tickers`` (≤ 1 push/100 ms, on trade or best bid/ask
change), ``trades`` (per taker order × price; ``tradeId`` = last id of ``count`` aggregated
trades) and ``books`` (400-level snapshot, then 100 ms deltas); event time ``ts`` in ms as a
string [OKX-MD §WS / Tickers channel, §WS / Trades channel, §WS / Order book channel]. Market
data: bid/ask/last from the ticker's ``bidPx``/``askPx``/``last``, last and volume from the
trades' ``px``/``sz``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from exporter.streams.book import LocalBook
from exporter.streams.checksums import OKX_CHECKSUM_DEPTH, okx_checksum
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
    Notice,
    NoticeKind,
    Pong,
    StreamEvent,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)

PATH = "/ws/v5/public"
"""Public stream path [OKX-OV §Production/Demo Trading Services]."""

BOOK_DEPTH = 400
"""Levels of the ``books`` channel [OKX-MD §WS / Order book channel]."""

SHUTDOWN_NOTICE_CODE = "64008"
"""``event:"notice"`` code announcing a service-upgrade disconnect [OKX-OV §Notification]."""

_CHANNEL_NAME: dict[Channel, str] = {
    Channel.TICKER: "tickers",
    Channel.TRADES: "trades",
    Channel.BOOK: "books",
}
_CHANNEL_OF: dict[str, Channel] = {name: channel for channel, name in _CHANNEL_NAME.items()}
# OBSERVED 60018 text: "channel:ticker,instId:BTC-USDT doesn't exist" [ccxt pro/okx.py].
_NAMED_ARG = re.compile(r"channel:\s*([\w-]+)\s*,\s*instId:\s*([\w-]+)")


class OkxBook(BookSync):
    """OKX ``books`` procedure [OKX-MD §Sequence ID, §Checksum].

    ``BookMessage.prev_id``/``last_id`` are ``prevSeqId``/``seqId``; ``checksum`` the signed
    CRC32. A snapshot replaces the book (``ok``, or ``reset`` when it replaces a live one).
    An update must have ``prevSeqId`` == the previous ``seqId``, else ``gap`` (book discarded;
    resubscribe). Documented exceptions that still link: the keep-alive update with empty sides
    and ``prevSeqId == seqId`` (``ok``), and the maintenance reset ``seqId < prevSeqId``
    (applied, ``reset``). After applying, the CRC32 of the first 25 levels per side is compared
    with ``checksum`` unless it is 0 or absent: OKX sends ``0`` on every message since 2026
    (OBSERVED, [ccxt PR #30299]), which is never a mismatch. Mismatch → ``checksum`` (book
    discarded). Updates before a snapshot are ``ignored``.
    """

    def __init__(self) -> None:
        self.book = LocalBook(BOOK_DEPTH)
        self._seq: int | None = None

    def apply(self, message: BookMessage) -> BookVerdict:
        """Apply one snapshot or update (see the class docstring)."""
        try:
            if message.snapshot:
                verdict = BookVerdict.RESET if self._seq is not None else BookVerdict.OK
                self.book.replace(message.bids, message.asks)
                self._seq = message.last_id if message.last_id is not None else -1
            else:
                if self._seq is None:
                    return BookVerdict.IGNORED
                prev, seq = message.prev_id, message.last_id
                if prev is None or seq is None or prev != self._seq:
                    self.reset()
                    return BookVerdict.GAP
                self.book.apply(message.bids, message.asks)
                self._seq = seq
                verdict = BookVerdict.RESET if seq < prev else BookVerdict.OK
        except ValueError:
            self.reset()
            return BookVerdict.GAP
        checksum = message.checksum
        if checksum:
            bids, asks = self.book.top(OKX_CHECKSUM_DEPTH)
            if okx_checksum(bids, asks) != checksum:
                self.reset()
                return BookVerdict.CHECKSUM
        return verdict

    def best(self) -> tuple[float | None, float | None]:
        """Best bid and ask of the local book (a crossed book is documented in pre-open call
        auctions [OKX-MD §WS / Order book channel])."""
        return self.book.best()

    def reset(self) -> None:
        """Forget the book; updates are ignored until the next snapshot."""
        self.book.clear()
        self._seq = None


class OkxDialect(BaseDialect):
    """OKX v5 public streams [OKX-OV].

    Facts: base ``wss://ws.okx.com:8443``, path ``/ws/v5/public``; the connection breaks when no
    data is pushed for 30 s, so the client sends the text ``ping`` after N < 30 s without a
    message and expects ``pong`` within N s [OKX-OV §Connect]; 3 connection requests/s per IP;
    480 subscribe/unsubscribe requests per connection per hour (each book resync costs two);
    args of one request ≤ 64 KB [OKX-OV §Connect, §Subscribe]. Close codes (4004 …) are the
    stream core's.
    """

    exchange: ClassVar[str] = "okx"
    default_url: ClassVar[str] = "wss://ws.okx.com:8443"
    keepalive: ClassVar[KeepAlive] = KeepAlive.CLIENT_TEXT
    ping_interval: ClassVar[float] = 20.0
    """N = 20 s < 30 s [OKX-OV §Connect]."""
    pong_timeout: ClassVar[float] = 10.0
    """Within N s as documented; 10 s because 20 s + 10 s reaches the server's 30 s cut."""
    connect_limits: ClassVar[tuple[ConnectLimit, ...]] = (
        ConnectLimit(3, 1.0, "[OKX-OV §Connect]"),
    )
    max_subscriptions_per_request: ClassVar[int] = 100
    """The documented bound is 64 KB of args per request [OKX-OV §Subscribe]: 100 args of
    ~45 bytes stay far below it."""
    default_stale_after: ClassVar[Mapping[Channel, float]] = {
        # tickers: up to one push per 100 ms on each trade or best bid/ask change [OKX-MD];
        # BTC/ETH quotes change many times a second: 5 s.
        Channel.TICKER: 5.0,
        # trades follow trading [OKX-MD]: 10 s covers a lull.
        Channel.TRADES: 10.0,
        # books: deltas every 100 ms on change [OKX-MD]; the in-band keep-alive after ~60 s
        # without change is far too late for an alert: 5 s = 50 periods.
        Channel.BOOK: 5.0,
    }

    def __init__(self) -> None:
        super().__init__()
        self._pending = PendingRequests()
        self._last_trade: dict[str, int] = {}

    def symbol(self, market: str) -> str:
        """``BTC/USDT`` → ``BTC-USDT`` (``instId``).

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        base, quote = split_market(market)
        return f"{base}-{quote}"

    def _arg(self, subscription: Subscription) -> dict[str, str]:
        return {
            "channel": _CHANNEL_NAME[subscription.channel],
            "instId": self.remember(subscription.market),
        }

    def _market(self, inst_id: object) -> str | None:
        market = self.market_of(inst_id)
        if market is None and isinstance(inst_id, str) and inst_id.count("-") == 1:
            market = inst_id.replace("-", "/")
        return market

    def _subscription(self, arg: object) -> Subscription | None:
        if not isinstance(arg, dict):
            return None
        channel = _CHANNEL_OF.get(str(arg.get("channel")))
        market = self._market(arg.get("instId"))
        return Subscription(channel, market) if channel and market else None

    def connect_url(self, url: str, subscriptions: Sequence[Subscription]) -> str:
        """``<url>/ws/v5/public`` (kept as is when already there)."""
        return join_url(url, PATH)

    def _request(self, op: str, subscriptions: Sequence[Subscription]) -> str:
        request_id = str(self.next_request_id())
        if op == "subscribe":
            self._pending.add(request_id, list(subscriptions))
        args = [self._arg(sub) for sub in subscriptions]
        return dumps({"id": request_id, "op": op, "args": args})

    def subscribe_messages(self, subscriptions: Sequence[Subscription]) -> list[str]:
        """``{"id":"n","op":"subscribe","args":[{"channel":…,"instId":…}…]}``
        [OKX-OV §Subscribe]."""
        size = self.max_subscriptions_per_request
        return [
            self._request("subscribe", subscriptions[start : start + size])
            for start in range(0, len(subscriptions), size)
        ]

    def resubscribe_messages(self, subscription: Subscription) -> list[str] | None:
        """Unsubscribe + subscribe: a fresh ``books`` snapshot follows [OKX-MD §Sequence ID:
        "gap → resubscribe"]."""
        return [
            self._request("unsubscribe", [subscription]),
            self._request("subscribe", [subscription]),
        ]

    def ping_message(self) -> str:
        """The text ``ping`` [OKX-OV §Connect]."""
        return "ping"

    def new_book(self, market: str) -> OkxBook:
        """An :class:`OkxBook` waiting for its snapshot."""
        self.remember(market)
        return OkxBook()

    def parse(self, text: str) -> list[StreamEvent]:
        """``pong``, channel data, ``subscribe``/``unsubscribe``/``error``/``notice`` events →
        events; never raises."""
        if text == "pong":
            return [Pong()]
        try:
            message = loads(text)
        except ValueError:
            return [malformed("not JSON", text)]
        if not isinstance(message, dict):
            return [malformed("not a JSON object", text)]
        arg = message.get("arg")
        if "data" in message and isinstance(arg, dict):
            return self._data(arg, message, text)
        event = message.get("event")
        if event == "subscribe":
            sub = self._subscription(arg)
            if sub is None:
                return [malformed("subscribe ack without a known arg", text)]
            self._pending.discard(sub)
            return [Subscribed(sub)]
        if event == "unsubscribe":
            return [Ignored("unsubscribe ack")]
        if event == "error":
            return self._error(message)
        if event == "notice":
            notice_text = cap(f"{message.get('code')}: {message.get('msg')}")
            if str(message.get("code")) == SHUTDOWN_NOTICE_CODE:
                return [Notice(NoticeKind.SHUTDOWN, notice_text)]
            return [Ignored("notice " + notice_text)]
        if isinstance(event, str):
            return [Ignored(f"event {cap(event, 40)}")]
        return [malformed("unknown message", text)]

    def _data(self, arg: dict[str, Any], message: dict[str, Any], text: str) -> list[StreamEvent]:
        channel = _CHANNEL_OF.get(str(arg.get("channel")))
        if channel is None:
            return [Ignored(f"channel {cap(str(arg.get('channel')), 40)}")]
        market = self.market_of(arg.get("instId"))
        if market is None:
            return [Ignored(f"{channel} for an unsubscribed instId")]
        try:
            data = message["data"]
            last = data[-1]
            event_time = ms_time(last.get("ts"))
            if channel is Channel.TICKER:
                # `bidPx`, `askPx`, `last` [OKX-MD §WS / Tickers channel].
                return [
                    Data(
                        channel,
                        market,
                        event_time,
                        bid=number(last.get("bidPx")),
                        ask=number(last.get("askPx")),
                        last=number(last.get("last")),
                    )
                ]
            if channel is Channel.TRADES:
                # `px`, `sz` (the size of the `count` trades aggregated) [OKX-MD §WS / Trades
                # channel].
                gap = self._trade_gap(market, data)
                price, volume = trade_totals(data, "px", "sz")
                return [Data(channel, market, event_time, gap=gap, last=price, volume=volume)]
            return [Data(channel, market, event_time, self._book(message, last))]
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            return [malformed(f"{channel} message missing fields", text)]

    def _trade_gap(self, market: str, trades: list[dict[str, Any]]) -> int:
        # tradeId = the last id of `count` aggregated trades: tradeId 123, count 3 ⇒ 121–123
        # [OKX-MD §WS / Trades channel].
        gap = 0
        last_seen = self._last_trade.get(market)
        for trade in trades:
            trade_id = int(trade["tradeId"])
            first_id = trade_id - int(trade.get("count") or 1) + 1
            if last_seen is not None and first_id > last_seen + 1:
                gap += first_id - last_seen - 1
            if last_seen is None or trade_id > last_seen:
                last_seen = trade_id
        if last_seen is not None:
            self._last_trade[market] = last_seen
        return gap

    @staticmethod
    def _book(message: dict[str, Any], data: dict[str, Any]) -> BookMessage:
        prev_id, seq_id, checksum = data.get("prevSeqId"), data.get("seqId"), data.get("checksum")
        return BookMessage(
            snapshot=message.get("action") == "snapshot",
            bids=[(level[0], level[1]) for level in data["bids"]],
            asks=[(level[0], level[1]) for level in data["asks"]],
            prev_id=None if prev_id is None else int(prev_id),
            last_id=None if seq_id is None else int(seq_id),
            checksum=None if checksum is None else int(checksum),
        )

    def _error(self, message: dict[str, Any]) -> list[StreamEvent]:
        # {"id":"1512","event":"error","code":"60012","msg":"Invalid request: …","connId":…}
        # [OKX-OV §Subscribe]; 60018 names channel and instId [OKX-ERR §Public].
        code, msg = message.get("code"), message.get("msg")
        reason = cap(f"{code}: {msg}")
        pending = self._pending.get(message.get("id")) or []
        named = _NAMED_ARG.search(str(msg))
        if named:
            channel = _CHANNEL_OF.get(named.group(1))
            market = self._market(named.group(2))
            hits = [
                sub
                for sub in pending
                if sub.market == market and (channel is None or sub.channel is channel)
            ]
            if not hits and channel is not None and market is not None:
                hits = [Subscription(channel, market)]
            if hits:
                for sub in hits:
                    self._pending.discard(sub)
                return [SubscriptionFailed(sub, reason) for sub in hits]
        subscriptions = self._pending.pop(message.get("id"))
        if not subscriptions:
            return [SubscriptionFailed(None, reason)]
        return [SubscriptionFailed(sub, reason) for sub in subscriptions]
