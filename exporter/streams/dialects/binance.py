"""Binance spot public market-data streams [BN-WS] and its REST-snapshot book sync.

Connection: the combined-stream endpoint ``/stream`` plus one ``SUBSCRIBE`` request per
:attr:`BinanceDialect.max_subscriptions_per_request` streams (rather than naming the streams in
``/stream?streams=…``): every payload arrives wrapped as ``{"stream":…,"data":…}``, so the
stream name tells channel and market even for payloads without a symbol; the request is
acknowledged (``{"result":null,"id":n}``), so a subscription is confirmed or refused on the
wire [BN-WS §Live Subscribing/Unsubscribing]; and it costs one inbound message of the five per
second a connection may send [BN-WS §WebSocket Limits]. Streams used: ``<sym>@ticker`` (1 s),
``<sym>@trade`` (real time) and ``<sym>@depth@100ms`` (diff depth), each with event time ``E``
in ms [BN-WS §Individual Symbol Ticker Streams, §Trade Streams, §Diff. Depth Stream]. Market
data: bid/ask/last from the ticker's ``b``/``a``/``c``, last and volume from each trade's
``p``/``q`` (``@bookTicker`` is not used: it has no event time [BN-WS §Individual Symbol Book
Ticker Streams]).
"""

from __future__ import annotations

from collections import deque
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
)
from exporter.streams.events import (
    BookMessage,
    Channel,
    Data,
    Ignored,
    Notice,
    NoticeKind,
    StreamEvent,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)

SNAPSHOT_LIMIT = 100
"""Levels per side of the REST snapshot (``limit``): the largest limit in the cheapest weight
band (1–100: weight 5) [BN-REST]. Enough for best bid/ask and crossing: levels beyond it are
unknown until they change, as [BN-WS §How to manage a local order book correctly] notes for any
limit."""

SNAPSHOT_WEIGHT = 5.0
"""Request weight of ``GET /api/v3/depth`` with limit 1–100 [BN-REST]."""

BOOK_MAX_DEPTH = 1000
"""Levels kept per side: the diff stream updates every level of the book, so without a bound the
local book would grow with the exchange's whole book (memory bound; levels beyond are unknown
anyway)."""

BUFFER_MAX = 2000
"""Diff events held while waiting for the snapshot (200 s of ``@100ms`` events); the oldest are
dropped beyond it (the snapshot rule then compares against the oldest kept)."""

_STREAM_SUFFIX: dict[Channel, str] = {
    Channel.TICKER: "@ticker",
    Channel.TRADES: "@trade",
    Channel.BOOK: "@depth@100ms",
}


class BinanceBook(BookSync):
    """Binance's local book procedure [BN-WS §How to manage a local order book correctly]
    (corrected 2025-11-12 [BN-CL 2025-11-12]).

    ``BookMessage.first_id``/``last_id`` are the diff event's ``U``/``u``. Until a REST snapshot
    is applied, events are buffered (``needs_snapshot`` True, verdict ``buffered``). A snapshot
    with ``lastUpdateId`` < the first buffered ``U`` is too old: ``apply_snapshot`` answers
    ``buffered`` and ``needs_snapshot`` stays True ("fetch again"). Otherwise buffered events with
    ``u`` ≤ ``lastUpdateId`` are dropped and the rest applied. Then for every event: ``u`` < book
    id → ``ignored``; ``U`` > book id + 1 → ``gap`` (the book is discarded, ``needs_snapshot``
    is True again and the event that revealed the gap is kept as the first buffered one);
    else the levels are applied (quantity 0 removes) and book id := ``u``. A snapshot that
    arrived before any diff event (nothing buffered to compare it with) is checked against the
    first event instead: one that does not link means the snapshot was too old — "fetch again",
    verdict ``buffered``, not a gap in the stream.
    """

    def __init__(self) -> None:
        self.book = LocalBook(BOOK_MAX_DEPTH)
        self.needs_snapshot = True
        self._buffer: deque[BookMessage] = deque(maxlen=BUFFER_MAX)
        self._book_id: int | None = None
        self._unchecked = False  # a snapshot no diff event has been compared with yet

    @property
    def book_id(self) -> int | None:
        """The update id the local book is at (``lastUpdateId``, then the last applied ``u``)."""
        return self._book_id

    def apply(self, message: BookMessage) -> BookVerdict:
        """Buffer, ignore, apply or detect a gap, per the procedure (see the class docstring).
        A diff without ``U``/``u`` or with a non-numeric level counts as a gap (resync)."""
        if self.needs_snapshot:
            self._buffer.append(message)
            return BookVerdict.BUFFERED
        return self._step(message)

    def _step(self, message: BookMessage) -> BookVerdict:
        first, last, book_id = message.first_id, message.last_id, self._book_id
        if first is None or last is None or book_id is None:
            self._restart(None)
            return BookVerdict.GAP
        if last < book_id:
            return BookVerdict.IGNORED
        if first > book_id + 1:
            too_old = self._unchecked
            self._restart(message)
            return BookVerdict.BUFFERED if too_old else BookVerdict.GAP
        try:
            self.book.apply(message.bids, message.asks)
        except ValueError:
            self._restart(None)
            return BookVerdict.GAP
        self._book_id = last
        self._unchecked = False
        return BookVerdict.OK

    def _restart(self, message: BookMessage | None) -> None:
        self.book.clear()
        self._book_id = None
        self._unchecked = False
        self.needs_snapshot = True
        self._buffer.clear()
        if message is not None:
            self._buffer.append(message)

    def apply_snapshot(self, body: object) -> BookVerdict:
        """Apply a ``GET /api/v3/depth`` body ``{"lastUpdateId":…,"bids":[[p,q]…],"asks":…}``.

        Returns ``buffered`` (still ``needs_snapshot``: fetch again) when ``lastUpdateId`` < the
        first buffered ``U`` (with nothing buffered, the first event makes that check); ``gap``
        when the first event after it does not link (fetch again); else ``ok`` with the
        buffered events applied.

        Raises:
            ValueError: the body is not the documented snapshot (names the field).
        """
        last_update_id, bids, asks = _snapshot_fields(body)
        buffer = self._buffer
        if buffer and buffer[0].first_id is not None and last_update_id < buffer[0].first_id:
            return BookVerdict.BUFFERED
        self.book.replace(bids, asks)
        self._book_id = last_update_id
        self.needs_snapshot = False
        self._unchecked = not buffer
        pending = list(buffer)
        buffer.clear()
        for index, message in enumerate(pending):
            if message.last_id is not None and message.last_id <= last_update_id:
                continue
            verdict = self._step(message)
            if verdict is BookVerdict.GAP:
                self._buffer.extend(pending[index + 1 :])
                return BookVerdict.GAP
        return BookVerdict.OK

    def best(self) -> tuple[float | None, float | None]:
        """Best bid and ask of the local book (None/None while waiting for a snapshot)."""
        return self.book.best()

    def reset(self) -> None:
        """Forget the book and the buffer; wait for a new snapshot."""
        self._restart(None)


def _snapshot_fields(body: object) -> tuple[int, list[list[str]], list[list[str]]]:
    if not isinstance(body, Mapping):
        raise ValueError(f"Binance depth snapshot must be a JSON object, got {type(body).__name__}")
    last_update_id = body.get("lastUpdateId")
    if not isinstance(last_update_id, int) or isinstance(last_update_id, bool):
        raise ValueError(
            f"Binance depth snapshot field lastUpdateId must be an integer, got {last_update_id!r}"
        )
    sides: list[list[list[str]]] = []
    for name in ("bids", "asks"):
        levels = body.get(name)
        if not isinstance(levels, list) or not all(
            isinstance(level, list | tuple)
            and len(level) >= 2
            and isinstance(level[0], str)
            and isinstance(level[1], str)
            for level in levels
        ):
            raise ValueError(
                f"Binance depth snapshot field {name} must be a list of [price, quantity] "
                f"strings, got {cap(repr(levels), 120)}"
            )
        sides.append(levels)
    return last_update_id, sides[0], sides[1]


class BinanceDialect(BaseDialect):
    """Binance spot public streams [BN-WS].

    Facts: base ``wss://stream.binance.com:9443`` [BN-WS §General WSS information]; the server
    pings every 20 s and disconnects without a pong within 1 min, which the WebSocket library
    answers (keep-alive ``server_ping``); a connection lives 24 h [BN-WS §General WSS
    information]; 5 inbound messages/s (pings, pongs and JSON control messages count) and 300
    connection attempts per 5 min per IP [BN-WS §WebSocket Limits]; symbols lower case.
    """

    exchange: ClassVar[str] = "binance"
    default_url: ClassVar[str] = "wss://stream.binance.com:9443"
    keepalive: ClassVar[KeepAlive] = KeepAlive.SERVER_PING
    ping_interval: ClassVar[float] = 20.0
    """Our round-trip pings (RTT only): every 20 s, the server's own ping period — one inbound
    message per 20 s of the 5/s allowance [BN-WS §WebSocket Limits]."""
    pong_timeout: ClassVar[float] = 10.0
    """Our choice: a protocol pong later than 10 s means the link is unusable for market data."""
    connect_limits: ClassVar[tuple[ConnectLimit, ...]] = (
        ConnectLimit(300, 300.0, "[BN-WS §WebSocket Limits]"),
    )
    max_lifetime: ClassVar[float | None] = 24 * 3600.0
    max_client_messages_per_second: ClassVar[float | None] = 5.0
    max_subscriptions_per_request: ClassVar[int] = 100
    """Undocumented per request (only 1024 streams per connection [BN-WS §WebSocket Limits] and
    a "too many parameters" error [BN-WS §Error Messages]); 100 keeps requests modest."""
    default_stale_after: ClassVar[Mapping[Channel, float]] = {
        # @ticker pushes every 1000 ms [BN-WS §Individual Symbol Ticker Streams]: 5 missed.
        Channel.TICKER: 5.0,
        # @trade is real time [BN-WS §Trade Streams]: cadence follows trading; BTC/ETH trade
        # several times a second, 10 s (the ceiling for a ≤ 30 s notification) avoids false
        # alarms in a lull.
        Channel.TRADES: 10.0,
        # @depth@100ms pushes every 100 ms when the book changed [BN-WS §Diff. Depth Stream];
        # a liquid book changes constantly: 5 s is 50 missed pushes.
        Channel.BOOK: 5.0,
    }

    def __init__(self) -> None:
        super().__init__()
        self._pending = PendingRequests()
        self._streams: dict[str, Subscription] = {}

    def symbol(self, market: str) -> str:
        """``BTC/USDT`` → ``btcusdt`` (lower case [BN-WS §General WSS information]).

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        base, quote = split_market(market)
        return (base + quote).lower()

    def stream_name(self, subscription: Subscription) -> str:
        """The stream of a subscription (``btcusdt@depth@100ms``), remembered for parsing."""
        name = self.remember(subscription.market) + _STREAM_SUFFIX[subscription.channel]
        self._streams[name] = subscription
        return name

    def connect_url(self, url: str, subscriptions: Sequence[Subscription]) -> str:
        """``<url>/stream`` (combined endpoint, streams subscribed by message; kept as is when
        ``url`` already ends in ``/stream`` or ``/ws``)."""
        for subscription in subscriptions:
            self.stream_name(subscription)
        return join_url(url, "/stream", "/ws")

    def subscribe_messages(self, subscriptions: Sequence[Subscription]) -> list[str]:
        """``{"method":"SUBSCRIBE","params":[streams],"id":n}`` per
        :attr:`max_subscriptions_per_request` streams [BN-WS §Live Subscribing/Unsubscribing]."""
        frames: list[str] = []
        size = self.max_subscriptions_per_request
        for start in range(0, len(subscriptions), size):
            chunk = list(subscriptions[start : start + size])
            request_id = self.next_request_id()
            self._pending.add(request_id, chunk)
            params = [self.stream_name(sub) for sub in chunk]
            frames.append(dumps({"method": "SUBSCRIBE", "params": params, "id": request_id}))
        return frames

    def resubscribe_messages(self, subscription: Subscription) -> list[str] | None:
        """Empty for the book: the diff stream keeps flowing and the book resynchronises from a
        new REST snapshot (``needs_snapshot``), no frame and no reconnect needed. None for other
        channels (they carry no state)."""
        return [] if subscription.channel is Channel.BOOK else None

    def snapshot_request(self, market: str) -> tuple[str, Mapping[str, str], float] | None:
        """``("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "100"}, 5.0)`` [BN-WS §How to
        manage a local order book correctly; BN-REST weight table].

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """
        symbol = self.remember(market).upper()
        return "/api/v3/depth", {"symbol": symbol, "limit": str(SNAPSHOT_LIMIT)}, SNAPSHOT_WEIGHT

    def new_book(self, market: str) -> BinanceBook:
        """A :class:`BinanceBook` waiting for its snapshot."""
        self.remember(market)
        return BinanceBook()

    def parse(self, text: str) -> list[StreamEvent]:
        """Combined (``{"stream","data"}``) or raw payloads, acks, both error forms and
        ``serverShutdown`` → events; never raises."""
        try:
            message = loads(text)
        except ValueError:
            return [malformed("not JSON", text)]
        if not isinstance(message, dict):
            return [malformed("not a JSON object", text)]
        payload = message.get("data")
        if isinstance(payload, dict) and "stream" in message:
            return self._payload(payload, text)
        if "e" in message:
            return self._payload(message, text)
        if "result" in message and "id" in message:
            return self._ack(message)
        if "error" in message or "code" in message:
            return self._error(message)
        return [malformed("unknown message", text)]

    def _payload(self, payload: dict[str, Any], text: str) -> list[StreamEvent]:
        kind = payload.get("e")
        try:
            if kind == "depthUpdate":
                channel = Channel.BOOK
            elif kind == "trade":
                channel = Channel.TRADES
            elif kind == "24hrTicker":
                channel = Channel.TICKER
            elif kind == "serverShutdown":
                # [BN-WS §Server Shutdown]: reconnect as soon as possible, no lead time promised.
                return [Notice(NoticeKind.SHUTDOWN, "serverShutdown")]
            else:
                return [Ignored(f"event {cap(str(kind), 40)}")]
            symbol = payload["s"]
            market = self.market_of(symbol.lower())
            if market is None:
                return [Ignored(f"{channel} for unsubscribed symbol {cap(symbol, 40)}")]
            event_time = ms_time(payload["E"])
            if channel is Channel.TICKER:
                # 24hrTicker: best bid `b`, best ask `a`, last price `c` [BN-WS §Individual
                # Symbol Ticker Streams].
                return [
                    Data(
                        channel,
                        market,
                        event_time,
                        bid=number(payload.get("b")),
                        ask=number(payload.get("a")),
                        last=number(payload.get("c")),
                    )
                ]
            if channel is Channel.TRADES:
                # One trade per event: price `p`, base quantity `q` [BN-WS §Trade Streams].
                return [
                    Data(
                        channel,
                        market,
                        event_time,
                        last=number(payload.get("p")),
                        volume=number(payload.get("q")) or 0.0,
                    )
                ]
            first, last = payload["U"], payload["u"]
            if type(first) is not int or type(last) is not int:
                return [malformed("depthUpdate U/u not integers", text)]
            book = BookMessage(
                snapshot=False,
                bids=[(level[0], level[1]) for level in payload["b"]],
                asks=[(level[0], level[1]) for level in payload["a"]],
                first_id=first,
                last_id=last,
            )
            return [Data(channel, market, event_time, book)]
        except (KeyError, TypeError, IndexError, AttributeError):
            return [malformed(f"{kind} event missing fields", text)]

    def _ack(self, message: dict[str, Any]) -> list[StreamEvent]:
        if message["result"] is not None:
            return [Ignored("LIST_SUBSCRIPTIONS result")]
        subscriptions = self._pending.pop(message["id"])
        if subscriptions is None:
            return [Ignored("ack of an unknown request")]
        return [Subscribed(sub) for sub in subscriptions]

    def _error(self, message: dict[str, Any]) -> list[StreamEvent]:
        # Documented {"code":…,"msg":…,"id":…} [BN-WS §Error Messages]; OBSERVED wrapped
        # {"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}.
        error = message.get("error")
        body = error if isinstance(error, dict) else message
        text = cap(f"code {body.get('code')}: {body.get('msg')}")
        subscriptions = self._pending.pop(message.get("id"))
        if not subscriptions:
            return [SubscriptionFailed(None, text)]
        return [SubscriptionFailed(sub, text) for sub in subscriptions]
