"""Book integrity on one connection: apply each book message through the exchange's
:class:`~exporter.streams.dialect.BookSync`, count what its verdicts find, resynchronise.

- ``gap`` → ``exchange_ws_sequence_gaps_total{channel="book"}``; ``checksum`` →
  ``exchange_ws_checksum_mismatches_total{channel="book"}``; both discard the local book and
  resynchronise (``exchange_ws_book_resyncs_total``): the dialect's ``resubscribe_messages``
  where the exchange resends a snapshot on resubscribe, else a reconnect (reason ``resync``).
- After each applied message, a crossed book (best bid ≥ best ask) counts
  ``exchange_ws_book_crossed_total`` once per crossing episode (until it uncrosses or resyncs),
  and the best bid and ask go to ``on_best`` when one is given.
- ``needs_snapshot`` (Binance) → fetch the dialect's ``snapshot_request`` over REST through the
  probe gate (:mod:`exporter.streams.snapshot`) and feed ``apply_snapshot``; at most one fetch
  per market in flight, spaced by :data:`SNAPSHOT_MIN_SPACING_SECONDS`.
- A book whose messages keep being ignored or buffered (it never got the snapshot it waits for:
  lost in a stall, say) for :data:`UNSYNCED_RESYNC_SECONDS` while no REST snapshot is in flight
  is resynchronised too, so a book cannot stay silently unsynchronised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from exporter.streams.dialect import BookSync, BookVerdict, StreamDialect
from exporter.streams.events import BookMessage, Channel, ReconnectReason, Subscription
from exporter.streams.metrics import ChannelChildren, ExchangeChildren
from exporter.streams.status import StreamStatus

log = logging.getLogger(__name__)

SNAPSHOT_MIN_SPACING_SECONDS = 1.0
"""Least time between two snapshot requests of one market (a snapshot older than the buffered
diffs is fetched again, as the procedure says, but not in a tight loop)."""

UNSYNCED_RESYNC_SECONDS = 15.0
"""How long a book's messages may be ignored or buffered (no snapshot fetch in flight) before
the book is resynchronised."""

SNAPSHOT_RETRY_SECONDS = 5.0
"""Wait after a failed snapshot request before the next one may start."""

RESYNC_BACKOFF_BASE_SECONDS = 2.0
"""Delay before the second of consecutive resyncs of one market (doubling after)."""

RESYNC_BACKOFF_CAP_SECONDS = 60.0
"""Longest delay between consecutive resyncs of one market."""

RESYNC_RESET_SECONDS = 60.0
"""A market without a resync for this long resyncs at once next time."""

Fetch = Callable[[str, Mapping[str, str], float], Awaitable[object]]
"""``fetch(path, query, weight) -> JSON body`` (:meth:`SnapshotFetcher.fetch`)."""


class BookKeeper:
    """The local books of one connection.

    Args:
        dialect: the connection's dialect (``new_book``, ``resubscribe_messages``,
            ``snapshot_request``).
        markets: unified markets subscribed on the ``book`` channel.
        book: the ``book`` channel's metric children.
        exchange: the exchange's metric children (resyncs, crossed).
        status: the stream's ``/status`` record.
        send: queues frames on the connection (resubscribe).
        end: ends the connection with a reason and error text (reconnect to resync).
        fetch: REST snapshot fetch through the probe gate, or None where not available.
        on_best: called ``(market, best bid, best ask)`` (None for an empty side) after every
            applied message, or None.
    """

    def __init__(
        self,
        dialect: StreamDialect,
        markets: Sequence[str],
        book: ChannelChildren,
        exchange: ExchangeChildren,
        status: StreamStatus,
        send: Callable[[list[str]], None],
        end: Callable[[ReconnectReason, str], None],
        fetch: Fetch | None,
        on_best: Callable[[str, float | None, float | None], None] | None = None,
    ) -> None:
        self._dialect = dialect
        self._on_best = on_best
        self.books: dict[str, BookSync] = {market: dialect.new_book(market) for market in markets}
        self._crossed: dict[str, bool] = dict.fromkeys(markets, False)
        self._book = book
        self._exchange = exchange
        self._status = status
        self._channel = status.channels.get(Channel.BOOK)
        self._send = send
        self._end = end
        self._fetch = fetch
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._last_fetch: dict[str, float] = {}
        self._unsynced: dict[str, float] = {}
        self._waiting: dict[str, asyncio.TimerHandle] = {}
        self._resyncs: dict[str, int] = {}
        self._last_resync: dict[str, float] = {}

    def start(self) -> None:
        """Start the snapshot fetches books need from the outset (call once connected)."""
        for market, book in self.books.items():
            if book.needs_snapshot:
                self._want_snapshot(market)

    def apply(self, market: str, message: BookMessage) -> None:
        """Apply one book message of ``market`` and act on the verdict."""
        book = self.books.get(market)
        if book is None:
            return
        self._verdict(market, book, book.apply(message))
        if book.needs_snapshot and market not in self._fetching:
            self._want_snapshot(market)

    def _verdict(self, market: str, book: BookSync, verdict: BookVerdict) -> None:
        if verdict is BookVerdict.OK or verdict is BookVerdict.RESET:
            if self._unsynced:
                self._unsynced.pop(market, None)
            bid, ask = book.best()
            if self._on_best is not None:
                self._on_best(market, bid, ask)
            crossed = bid is not None and ask is not None and bid >= ask
            if crossed != self._crossed[market]:
                self._crossed[market] = crossed
                if crossed:
                    self._exchange.book_crossed.inc()
                    self._status.book_crossed += 1
        elif verdict is BookVerdict.GAP:
            self._book.gaps.inc()
            if self._channel is not None:
                self._channel.gaps += 1
            self.resync(market, f"sequence gap in the {market} book")
        elif verdict is BookVerdict.CHECKSUM:
            self._book.checksum_mismatches.inc()
            if self._channel is not None:
                self._channel.checksum_mismatches += 1
            self.resync(market, f"checksum mismatch in the {market} book")
        elif market not in self._fetching and market not in self._waiting:
            # ignored or buffered, and no snapshot or resync on its way
            now = time.monotonic()
            since = self._unsynced.setdefault(market, now)
            if now - since > UNSYNCED_RESYNC_SECONDS:
                self.resync(
                    market, f"the {market} book stayed unsynchronised for {now - since:.0f}s"
                )

    def resync(self, market: str, why: str) -> None:
        """Discard ``market``'s book and get a fresh one: resubscribe where the dialect can,
        else end the connection (reason ``resync``); counted in ``book_resyncs``.

        Consecutive resyncs of one market back off (:data:`RESYNC_BACKOFF_BASE_SECONDS`
        doubling to :data:`RESYNC_BACKOFF_CAP_SECONDS`; a market left alone for
        :data:`RESYNC_RESET_SECONDS` starts again at once): a feed whose every message fails
        its checksum must not turn into a resubscribe storm (OKX allows 480
        subscribe/unsubscribe requests per connection per hour [OKX-OV §Subscribe]). A
        resync already waiting its turn absorbs further ones.
        """
        if market in self._waiting:
            return
        self._exchange.book_resyncs.inc()
        self._status.book_resyncs += 1
        self.books[market].reset()
        self._crossed[market] = False
        self._unsynced.pop(market, None)
        now = time.monotonic()
        if now - self._last_resync.get(market, -1e18) > RESYNC_RESET_SECONDS:
            self._resyncs[market] = 0
        count = self._resyncs.get(market, 0)
        self._resyncs[market] = count + 1
        self._last_resync[market] = now
        if count == 0:
            self._resubscribe(market, why)
            return
        delay = min(RESYNC_BACKOFF_CAP_SECONDS, RESYNC_BACKOFF_BASE_SECONDS * 2.0 ** (count - 1))
        loop = asyncio.get_running_loop()
        self._waiting[market] = loop.call_later(delay, self._resubscribe, market, why)

    def _resubscribe(self, market: str, why: str) -> None:
        self._waiting.pop(market, None)
        book = self.books[market]
        frames = self._dialect.resubscribe_messages(Subscription(Channel.BOOK, market))
        if frames is None:
            self._end(ReconnectReason.RESYNC, why)
        elif frames:
            self._send(frames)
        if book.needs_snapshot and market not in self._fetching:
            self._want_snapshot(market)

    def _want_snapshot(self, market: str) -> None:
        if self._fetch is None or self._dialect.snapshot_request(market) is None:
            return
        self._fetching[market] = asyncio.create_task(
            self._snapshot(market), name=f"snapshot-{market}"
        )

    async def _snapshot(self, market: str) -> None:
        fetch = self._fetch
        request = self._dialect.snapshot_request(market)
        assert fetch is not None and request is not None
        path, query, weight = request
        try:
            spacing = self._last_fetch.get(market, -1e18) + SNAPSHOT_MIN_SPACING_SECONDS
            delay = spacing - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._last_fetch[market] = time.monotonic()
            body = await fetch(path, query, weight)
            book = self.books[market]
            self._verdict(market, book, book.apply_snapshot(body))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed snapshot must not end the connection
            text = f"book snapshot of {market}: {type(exc).__name__}: {exc}"
            self._status.error(text, time.time())
            log.warning("%s", text)
            await asyncio.sleep(SNAPSHOT_RETRY_SECONDS)
        finally:
            self._fetching.pop(market, None)
        book = self.books[market]
        if book.needs_snapshot and market not in self._fetching:
            self._want_snapshot(market)

    async def close(self) -> None:
        """Cancel snapshot fetches in flight and wait for them."""
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        tasks = list(self._fetching.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fetching.clear()
