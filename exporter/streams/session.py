"""One open stream connection: subscribe, read, keep alive, watch for silence, end with a reason.

The reader turns every frame into events with the connection's dialect and acts on them; a
ticker (every :data:`TICK_SECONDS` at most) evaluates ``exchange_ws_up`` per channel, sends
pings (every ``ping_interval``, and sooner once the link has been quiet for half the shortest of
ping_interval, the largest stale_after and the silence limit below: an application ping where
the dialect has one — client_text keep-alive, or Kraken's optional ping — else a protocol ping,
so a dead link is told from a stalled feed), and ends the connection when:

- a ping got no pong within the dialect's ``pong_timeout``, or nothing at all (data, pong,
  heartbeat) arrived for ``pong_timeout`` (heartbeat dialects) or ``ping_interval`` +
  ``pong_timeout`` (ping dialects, whose pongs come once per interval) (reason
  ``ping_timeout``);
- every channel has been silent for :data:`STALE_CONNECTION_FACTOR` × the largest
  ``stale_after`` (reason ``stale``: a connection that stays open and goes quiet is replaced);
- the dialect's ``max_lifetime`` is near (reason ``scheduled``, ahead of it with jitter: Binance
  cuts connections at 24 h [BN-WS §General WSS information]);
- a ``Notice(SHUTDOWN)`` arrived (reason ``maintenance``), or a book needs a reconnect to
  resync (reason ``resync``).

Market data (:class:`~exporter.market.data.MarketData`, when given): a data event's prices go
to ``quote(…, source="stream")`` when it carries any, its traded volume to ``trade`` when above
0. A trade's price is taken as the last price only for a market whose ticker this connection
does not subscribe (the ticker's own last price is the one reported otherwise: one source per
gauge). Where the dialect's ticker has no best bid/ask (``ticker_quotes`` False: Bybit spot),
a market's bid and ask come from its local book after every applied book message, for markets
whose ticker and book are both subscribed.

Per message the reader does one ``time.time()``, one dict lookup and pre-bound metric calls:
the labelled children are bound once per connection (:class:`Cell`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from exporter.market.data import MarketData
from exporter.state import ExchangeState
from exporter.streams.dialect import KeepAlive, StreamDialect
from exporter.streams.events import (
    Channel,
    Data,
    Heartbeat,
    Malformed,
    Notice,
    NoticeKind,
    Pong,
    ReconnectReason,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)
from exporter.streams.integrity import BookKeeper, Fetch
from exporter.streams.limits import MessagePacer
from exporter.streams.metrics import ChannelChildren, ExchangeChildren
from exporter.streams.status import ChannelStatus, StreamStatus

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
"""Longest time between two evaluations of ``exchange_ws_up`` and the connection's deadlines
(shorter when a stale_after or the pong timeout is short)."""

STALE_CONNECTION_FACTOR = 2.0
"""A connection whose every channel has been silent for this many times the largest
stale_after is replaced (reason ``stale``)."""

LIFETIME_MARGIN = (0.90, 0.95)
"""A connection with a documented maximum lifetime is replaced at a random point in this
fraction of it (reason ``scheduled``)."""


class Cell:
    """One subscribed channel on one connection: its status record and bound metric children.

    Attributes:
        status: the channel's ``/status`` record.
        children: the channel's labelled metric children.
        inc / observe: bound ``messages.inc`` and ``lag.observe``.
        flushed: the last-message time last written to the gauge.
    """

    __slots__ = ("children", "flushed", "inc", "observe", "status")

    def __init__(self, status: ChannelStatus, children: ChannelChildren) -> None:
        self.status = status
        self.children = children
        self.inc = children.messages.inc
        self.observe = children.lag.observe
        self.flushed = 0.0


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """How a connection ended.

    Attributes:
        reason: the reconnect reason.
        error: what happened, for ``/status`` and the log.
        healthy_seconds: how long it was subscribed and receiving (0 if never).
    """

    reason: ReconnectReason
    error: str
    healthy_seconds: float


class StreamSession:
    """Runs one open connection until it ends (see the module docstring).

    Args:
        ws: the open connection.
        dialect: this connection's dialect instance.
        subscriptions: what to subscribe.
        cells: per subscribed channel.
        exchange: per-exchange metric children.
        ping_rtt: the exchange's ``exchange_ws_ping_rtt_seconds`` child factory (bound on the
            first measured round trip, so the series is absent where none can be timed).
        state: the exchange's state (clock skew for lag; maintenance).
        status: the stream's ``/status`` record.
        fetch: REST snapshot fetch through the probe gate, or None.
        on_maintenance: called after the stream's maintenance flag changed.
        rng: jitter source.
        skew_resolution: a measured clock skew smaller than this (the exchange's server-time
            resolution) is noise, and lag is not corrected by it.
        market_data: where prices and traded volume go (None: nowhere).
        exchange_name: the configured exchange name, the ``exchange`` of ``market_data``.
    """

    def __init__(
        self,
        ws: ClientConnection,
        dialect: StreamDialect,
        subscriptions: Sequence[Subscription],
        cells: Mapping[Channel, Cell],
        exchange: ExchangeChildren,
        ping_rtt: Any,
        state: ExchangeState,
        status: StreamStatus,
        fetch: Fetch | None,
        on_maintenance: Any,
        rng: random.Random,
        skew_resolution: float = 0.001,
        market_data: MarketData | None = None,
        exchange_name: str = "",
    ) -> None:
        self._ws = ws
        self._market_data = market_data
        self._exchange_name = exchange_name
        self._ticker_markets = frozenset(
            s.market for s in subscriptions if s.channel is Channel.TICKER
        )
        self._skew_floor = skew_resolution
        self._dialect = dialect
        self._subscriptions = list(subscriptions)
        self._cells = dict(cells)
        self._exchange = exchange
        self._ping_rtt = ping_rtt
        self._state = state
        self._status = status
        self._on_maintenance = on_maintenance
        self._rng = rng
        self._pacer = MessagePacer(dialect.max_client_messages_per_second)
        self._pending: set[Subscription] = set(subscriptions)
        self._acked: set[Subscription] = set()
        self._end: tuple[ReconnectReason, str] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.opened = time.time()
        self.last_received = self.opened
        self.subscribed_at: float | None = None
        self.received_data = False
        self._ping_sent_at: float | None = None
        self._last_ping = self.opened
        self._rtt_waiter: Any = None
        # Heartbeat dialects: pong_timeout is the longest silence of any kind. Ping dialects:
        # a pong (or a timed protocol ping) arrives every ping_interval even on a quiet feed.
        self._silence_limit = dialect.pong_timeout
        if dialect.keepalive is not KeepAlive.HEARTBEAT:
            self._silence_limit += dialect.ping_interval
        stale = [s.status.stale_after for s in self._cells.values()] or [60.0]
        self._stale_limit = STALE_CONNECTION_FACTOR * max(stale)
        # A quiet link is probed early, so a dead one (no pong) is told from a stalled feed
        # (pongs, no data) well before the stale limit.
        self._idle_after = min(dialect.ping_interval, max(stale), self._silence_limit) / 2
        self._tick = max(0.05, min([TICK_SECONDS, dialect.pong_timeout / 4, *stale]))
        lifetime = dialect.max_lifetime
        self._deadline = (
            self.opened + lifetime * rng.uniform(*LIFETIME_MARGIN) if lifetime else None
        )
        books = [s.market for s in subscriptions if s.channel is Channel.BOOK]
        book_cell = self._cells.get(Channel.BOOK)
        self._books: BookKeeper | None = None
        if books and book_cell is not None:
            self._books = BookKeeper(
                dialect,
                books,
                book_cell.children,
                exchange,
                status,
                self.send_later,
                self.end,
                fetch,
                on_best=(
                    self._book_quote
                    if market_data is not None and not dialect.ticker_quotes
                    else None
                ),
            )

    # -- ending ---------------------------------------------------------------------------

    def end(self, reason: ReconnectReason, error: str) -> None:
        """End the connection with ``reason`` (the first reason given wins)."""
        if self._end is not None:
            return
        self._end = (reason, error)
        self._closing = asyncio.create_task(self._ws.close(1000, reason.value[:100]))

    def send_later(self, frames: list[str]) -> None:
        """Send ``frames`` in order, paced, from a task (callable from the reader)."""
        self._spawn(self._send_all(frames), "send")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"stream-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self, frames: list[str]) -> None:
        try:
            for frame in frames:
                await self._pacer.pace()
                await self._ws.send(frame)
        except ConnectionClosed:
            pass

    # -- the connection's life ------------------------------------------------------------

    async def run(self) -> SessionEnd:
        """Subscribe, then read until the connection ends; return how it ended."""
        error = ""
        frames = self._dialect.subscribe_messages(self._subscriptions)
        if frames:
            self.send_later(frames)
        else:  # the URL names the streams: nothing to acknowledge
            for subscription in self._subscriptions:
                self._ack(subscription, self.opened)
        if self._books is not None:
            self._books.start()
        ticker = asyncio.create_task(self._ticker(), name="stream-ticker")
        try:
            await self._read()
        except ConnectionClosed:
            pass
        except Exception as exc:  # a dialect bug or a library error: reconnect, keep going
            log.exception("stream reader failed")
            error = f"{type(exc).__name__}: {exc}"
        finally:
            ticker.cancel()
            others = [ticker, *self._tasks]
            for task in self._tasks:
                task.cancel()
            if self._books is not None:
                await self._books.close()
            await asyncio.gather(*others, return_exceptions=True)
            if self._closing is None:
                self._closing = asyncio.create_task(self._ws.close())
            await asyncio.gather(self._closing, return_exceptions=True)
        return self._result(error)

    def _result(self, error: str) -> SessionEnd:
        now = time.time()
        healthy = 0.0
        if self.subscribed_at is not None and self.received_data:
            healthy = now - self.subscribed_at
        if self._end is not None:
            return SessionEnd(self._end[0], self._end[1], healthy)
        if error:
            return SessionEnd(ReconnectReason.ERROR, error, healthy)
        ws = self._ws
        received = ws.protocol.close_rcvd
        if received is not None:
            text = f"closed by the server: code {received.code} {received.reason}".strip()
            return SessionEnd(ReconnectReason.CLOSED_BY_SERVER, text, healthy)
        return SessionEnd(
            ReconnectReason.ERROR, "connection lost without a close frame (1006)", healthy
        )

    async def _read(self) -> None:
        recv = self._ws.recv
        parse = self._dialect.parse
        cells = self._cells
        state = self._state
        books = self._books
        now_fn = time.time
        floor = self._skew_floor
        market_data = self._market_data
        name = self._exchange_name
        ticker_markets = self._ticker_markets
        trades = Channel.TRADES
        while True:
            frame = await recv()
            now = now_fn()
            self.last_received = now
            if not isinstance(frame, str):
                frame = frame.decode("utf-8", "replace")
            for event in parse(frame):
                if type(event) is not Data:
                    self._event(event, now)
                    continue
                cell = cells.get(event.channel)
                if cell is None:
                    continue
                if self._pending:
                    self._ack(Subscription(event.channel, event.market), now)
                count = event.messages
                st = cell.status
                st.messages += count
                st.last_message_at = now
                cell.inc(count)
                if not st.up and self.subscribed_at is not None:
                    st.up = True
                    cell.children.up.set(1)
                event_time = event.event_time
                if event_time is not None:
                    skew = state.clock_skew
                    if skew is not None and -floor < skew < floor:
                        skew = None  # within the server time's resolution: noise
                    lag = now - event_time + skew if skew is not None else now - event_time
                    if lag < 0.0:
                        lag = 0.0
                    cell.observe(lag)
                    st.lag.add(lag)
                if event.gap:
                    cell.children.gaps.inc(event.gap)
                    st.gaps += event.gap
                if event.book is not None and books is not None:
                    books.apply(event.market, event.book)
                self.received_data = True
                if market_data is not None:
                    market = event.market
                    volume = event.volume
                    if volume > 0.0:
                        market_data.trade(name, market, volume)
                    bid, ask, last = event.bid, event.ask, event.last
                    if last is not None and event.channel is trades and market in ticker_markets:
                        last = None  # the ticker reports this market's last price
                    if bid is not None or ask is not None or last is not None:
                        market_data.quote(
                            name, market, bid=bid, ask=ask, last=last, source="stream"
                        )

    def _book_quote(self, market: str, bid: float | None, ask: float | None) -> None:
        """Best bid/ask of a freshly applied local book, for dialects whose ticker has none."""
        if self._market_data is not None and market in self._ticker_markets:
            self._market_data.quote(self._exchange_name, market, bid=bid, ask=ask, source="stream")

    # -- events other than data -----------------------------------------------------------

    def _event(self, event: object, now: float) -> None:
        if isinstance(event, Subscribed):
            self._ack(event.subscription, now)
        elif isinstance(event, SubscriptionFailed):
            self._refused(event, now)
        elif isinstance(event, Pong):
            self._pong(now)
        elif isinstance(event, Heartbeat):
            pass  # last_received is already updated
        elif isinstance(event, Notice):
            self._notice(event, now)
        elif isinstance(event, Malformed):
            self._status.error(f"malformed message: {event.reason}", now)

    def _ack(self, subscription: Subscription, now: float) -> None:
        if subscription not in self._pending:
            return
        self._pending.discard(subscription)
        self._acked.add(subscription)
        if self.subscribed_at is None:
            self.subscribed_at = now
            self._status.connected = True
            self._status.since = now
            self._status.waiting = ""
            self._exchange.connected.set(1)

    def _refused(self, event: SubscriptionFailed, now: float) -> None:
        if event.subscription is not None:
            refused = [event.subscription]
            self._pending.discard(event.subscription)
        else:
            refused = list(self._pending)
            self._pending.clear()
        for subscription in refused:
            cell = self._cells.get(subscription.channel)
            if cell is not None:
                cell.children.subscription_errors.inc()
                cell.status.subscription_errors += 1
        self._status.error(f"subscription refused: {event.message}", now)

    def _pong(self, now: float) -> None:
        sent = self._ping_sent_at
        if sent is None:
            return
        self._ping_sent_at = None
        self._rtt(now - sent)

    def _rtt(self, seconds: float) -> None:
        self._status.ping_rtt = seconds
        self._ping_rtt().set(seconds)

    def _notice(self, notice: Notice, now: float) -> None:
        if notice.kind is NoticeKind.SHUTDOWN:
            self.end(ReconnectReason.MAINTENANCE, f"server shutdown notice: {notice.message}")
        elif notice.kind is NoticeKind.MAINTENANCE:
            self._status.maintenance = True
            self._status.maintenance_message = notice.message[:200]
            self._on_maintenance()
        elif self._status.maintenance:  # ONLINE: the exchange says it is back
            self._status.maintenance = False
            self._status.maintenance_message = ""
            self._on_maintenance()

    # -- the ticker -----------------------------------------------------------------------

    async def _ticker(self) -> None:
        while self._end is None:
            await asyncio.sleep(self._tick)
            self.check(time.time())
            if self._end is None:
                await self._keepalive(time.time())

    def check(self, now: float) -> None:
        """Evaluate ``exchange_ws_up`` per channel and the connection's deadlines at ``now``."""
        subscribed = self.subscribed_at is not None
        newest = self.opened
        for cell in self._cells.values():
            st = cell.status
            last = st.last_message_at
            if last > newest:
                newest = last
            up = subscribed and last >= self.opened and now - last <= st.stale_after
            if up != st.up:
                st.up = up
                cell.children.up.set(1 if up else 0)
            if last != cell.flushed:
                cell.flushed = last
                cell.children.last_message.set(last)
        dialect = self._dialect
        if self._ping_sent_at is not None and now - self._ping_sent_at > dialect.pong_timeout:
            if dialect.keepalive is KeepAlive.HEARTBEAT:
                # Pings only time the round trip there; heartbeats prove the link alive.
                self._ping_sent_at = None
                self._rtt_waiter = None
            else:
                self.end(ReconnectReason.PING_TIMEOUT, f"no pong within {dialect.pong_timeout:g}s")
        elif now - self.last_received > self._silence_limit:
            self.end(
                ReconnectReason.PING_TIMEOUT,
                f"nothing received for {now - self.last_received:.0f}s "
                f"(limit {self._silence_limit:g}s)",
            )
        elif now - newest > self._stale_limit:
            self.end(
                ReconnectReason.STALE,
                f"every channel silent for {now - newest:.0f}s "
                f"(limit {self._stale_limit:g}s = {STALE_CONNECTION_FACTOR:g} × stale_after)",
            )
        elif self._deadline is not None and now >= self._deadline:
            self.end(
                ReconnectReason.SCHEDULED,
                f"replaced ahead of the documented {dialect.max_lifetime:g}s lifetime",
            )

    async def _keepalive(self, now: float) -> None:
        dialect = self._dialect
        waiter = self._rtt_waiter
        if waiter is not None and waiter.done():
            self._rtt_waiter = None
            self._ping_sent_at = None
            if not waiter.cancelled() and waiter.exception() is None:
                self._rtt(float(waiter.result()))
                self.last_received = max(self.last_received, now)
        since_ping = now - self._last_ping
        due = since_ping >= dialect.ping_interval or (
            since_ping >= self._idle_after and now - self.last_received >= self._idle_after
        )
        if self._ping_sent_at is not None or not due:
            return
        text = dialect.ping_message() if dialect.keepalive is not KeepAlive.SERVER_PING else None
        if text is not None:
            # client_text keep-alive, or a heartbeat dialect's optional application ping
            # (Kraken ``{"method":"ping"}``) that times the round trip.
            self._last_ping = now
            await self._pacer.pace()
            try:
                await self._ws.send(text)
            except ConnectionClosed:
                return
            self._ping_sent_at = time.time()
        elif dialect.keepalive is not KeepAlive.CLIENT_TEXT:
            # Time a round trip with a protocol ping (the library answers the server's pings;
            # a heartbeat dialect without an application ping may still answer ours).
            self._last_ping = now
            await self._pacer.pace()
            try:
                self._rtt_waiter = await self._ws.ping()
            except ConnectionClosed:
                return
            self._ping_sent_at = time.time()
