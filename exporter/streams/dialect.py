"""The interface every exchange's WebSocket dialect implements, and the book-sync interface.

A :class:`StreamDialect` knows one exchange's public market-data WebSocket API exactly as its
documentation gives it: the URL and stream names, how to subscribe, what its acknowledgements,
errors, heartbeats and notices look like, how the connection is kept alive, and how its order book
is kept in sync (:class:`BookSync`). It never does I/O: the stream core
(:mod:`exporter.streams.connection`) owns the socket, the clocks and the metrics. A dialect
instance is created per connection and may keep per-connection state (request ids, trade ids).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from exporter.streams.events import BookMessage, Channel, StreamEvent, Subscription


class KeepAlive(StrEnum):
    """Who keeps the connection alive and how.

    - ``server_ping``: the server sends protocol ping frames; the WebSocket library answers
      (Binance). We may still send protocol pings to time a round trip.
    - ``client_text``: we send an application message (:meth:`StreamDialect.ping_message`)
      every :attr:`StreamDialect.ping_interval` and expect :class:`~exporter.streams.events.Pong`
      (Bybit ``{"op":"ping"}``, OKX text ``ping``, Kraken ``{"method":"ping"}``).
    - ``heartbeat``: the exchange sends heartbeats on a subscribed channel; no client ping is
      required (Coinbase ``heartbeat`` channel).
    """

    SERVER_PING = "server_ping"
    CLIENT_TEXT = "client_text"
    HEARTBEAT = "heartbeat"


@dataclass(frozen=True, slots=True)
class ConnectLimit:
    """A documented limit on connection attempts per IP: ``attempts`` per ``window_seconds``,
    with the source of the fact. Reconnects never exceed it."""

    attempts: int
    window_seconds: float
    source: str


class BookVerdict(StrEnum):
    """What applying one book message found.

    - ``ok``: applied, in order, checksum (if any) matched.
    - ``ignored``: an old message the procedure says to drop (Binance ``u`` < book id).
    - ``buffered``: held until a snapshot arrives (Binance before its REST snapshot).
    - ``gap``: a sequence gap: the book is discarded and must be resynchronised.
    - ``checksum``: the checksum does not match the local book: discard and resync.
    - ``reset``: the exchange reset the book (Bybit new snapshot or ``u == 1``, OKX sequence
      reset): applied, not an error.
    """

    OK = "ok"
    IGNORED = "ignored"
    BUFFERED = "buffered"
    GAP = "gap"
    CHECKSUM = "checksum"
    RESET = "reset"


class BookSync(ABC):
    """One market's local order book and the exchange's documented procedure to keep it right.

    Attributes:
        needs_snapshot: True while the procedure waits for a REST snapshot (Binance): the core
            then fetches :meth:`StreamDialect.snapshot_request` through the probe gate and
            passes the body to :meth:`apply_snapshot`.
    """

    needs_snapshot: bool = False

    @abstractmethod
    def apply(self, message: BookMessage) -> BookVerdict:
        """Apply one stream message following the exchange's procedure."""

    def apply_snapshot(self, body: object) -> BookVerdict:
        """Apply a REST snapshot body (Binance ``GET /api/v3/depth``); default: unsupported.

        Raises:
            ValueError: the body is not the documented snapshot.
        """
        raise NotImplementedError

    @abstractmethod
    def best(self) -> tuple[float | None, float | None]:
        """``(best bid, best ask)`` prices of the local book, None for an empty side."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the local book (before a resync)."""


class StreamDialect(ABC):
    """One exchange's public market-data WebSocket API.

    Class attributes (facts, each with its source in the subclass):
        exchange: the profile name (``binance`` …).
        default_url: the production public URL (``wss://…``).
        keepalive: see :class:`KeepAlive`.
        ping_interval: seconds between our keep-alive pings (client_text), or between our
            round-trip pings where we only time the link.
        pong_timeout: seconds without a pong (or, for heartbeat dialects, without any message)
            before the connection counts as dead (reason ``ping_timeout``).
        connect_limits: documented connection-attempt limits per IP.
        max_lifetime: seconds after which the exchange cuts a connection (Binance 24 h); the
            core reconnects ahead of it (reason ``scheduled``). None = no documented limit.
        max_client_messages_per_second: documented inbound (client → exchange) message limit
            per connection, pings included (Binance 5); None = undocumented.
        max_subscriptions_per_request: args per subscribe request (Bybit spot 10).
        default_stale_after: seconds of silence per channel before the channel is stale,
            from the channel's documented cadence.
        ticker_quotes: the ticker carries best bid/ask (``Data.bid``/``ask``). False (Bybit
            spot): the session takes a market's bid/ask from its local book instead, where the
            book and the ticker are both subscribed.
    """

    exchange: ClassVar[str]
    default_url: ClassVar[str]
    keepalive: ClassVar[KeepAlive]
    ping_interval: ClassVar[float]
    pong_timeout: ClassVar[float]
    connect_limits: ClassVar[tuple[ConnectLimit, ...]]
    max_lifetime: ClassVar[float | None] = None
    max_client_messages_per_second: ClassVar[float | None] = None
    max_subscriptions_per_request: ClassVar[int] = 100
    default_stale_after: ClassVar[Mapping[Channel, float]]
    ticker_quotes: ClassVar[bool] = True

    @abstractmethod
    def symbol(self, market: str) -> str:
        """The exchange's WebSocket spelling of a unified market (``BTC/USDT`` → ``btcusdt``).

        Raises:
            ValueError: ``market`` is not ``BASE/QUOTE``.
        """

    def connect_url(self, url: str, subscriptions: Sequence[Subscription]) -> str:
        """The URL to dial for ``subscriptions`` (``url`` is the configured base, e.g.
        ``wss://stream.binance.com:9443`` or ``ws://127.0.0.1:8000/binance``); default: the
        dialect's documented path appended to ``url``."""
        return url

    @abstractmethod
    def subscribe_messages(self, subscriptions: Sequence[Subscription]) -> list[str]:
        """The text frames that subscribe to ``subscriptions`` (split as the exchange's
        per-request limits require); may be empty when the URL already names the streams."""

    def resubscribe_messages(self, subscription: Subscription) -> list[str] | None:
        """Frames that make the exchange resend a fresh snapshot of one subscription
        (unsubscribe + subscribe); None when only a reconnect can (reason ``resync``)."""
        return None

    def ping_message(self) -> str | None:
        """The application-level ping text (client_text dialects); None otherwise."""
        return None

    @abstractmethod
    def parse(self, text: str) -> list[StreamEvent]:
        """Read one text frame into events; never raises (malformed → ``Malformed``)."""

    @abstractmethod
    def new_book(self, market: str) -> BookSync:
        """A fresh :class:`BookSync` for ``market``."""

    def snapshot_request(self, market: str) -> tuple[str, Mapping[str, str], float] | None:
        """``(REST path, query, request weight)`` of the book snapshot the sync procedure needs,
        or None where the stream itself sends snapshots."""
        return None
