"""What a stream dialect reads out of one WebSocket message: the events the stream core acts on.

A dialect (:class:`exporter.streams.dialect.StreamDialect`) turns the exchange's own wire text
into these exchange-neutral events; the core (:mod:`exporter.streams.connection`) turns events
into metrics, resyncs and reconnects. Times are Unix seconds (float); book prices and quantities
stay the exchange's strings until a book needs them as numbers (checksums use the strings);
ticker and trade prices and sizes are floats (:class:`Data`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Channel(StrEnum):
    """A stream channel kind, the ``channel`` label of the ``exchange_ws_*`` metrics."""

    TICKER = "ticker"
    TRADES = "trades"
    BOOK = "book"


CHANNELS: tuple[Channel, ...] = (Channel.TICKER, Channel.TRADES, Channel.BOOK)


class ReconnectReason(StrEnum):
    """Why a stream connection was replaced: the ``reason`` label of
    ``exchange_ws_reconnects_total``."""

    CLOSED_BY_SERVER = "closed_by_server"
    PING_TIMEOUT = "ping_timeout"
    STALE = "stale"
    ERROR = "error"
    RESYNC = "resync"
    SCHEDULED = "scheduled"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class Subscription:
    """One channel of one market: ``(channel, market)``; ``market`` is the unified ``BASE/QUOTE``
    name (``BTC/USDT``), never the exchange's spelling."""

    channel: Channel
    market: str


@dataclass(frozen=True, slots=True)
class BookMessage:
    """One order-book message as the exchange sent it.

    Attributes:
        snapshot: True for a full book (replaces the local one), False for a delta.
        bids / asks: ``(price, quantity)`` strings as received; quantity ``"0"`` (any zero
            spelling) deletes the level in a delta.
        first_id / last_id / prev_id: the exchange's ordering fields where it has them (Binance
            ``U``/``u``, Bybit ``u`` in ``last_id`` and ``seq`` in ``prev_id``… each dialect's
            BookSync documents its use); None where absent.
        checksum: the exchange's checksum (OKX signed CRC32, Kraken unsigned CRC32), None where
            the channel has none.
    """

    snapshot: bool
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    first_id: int | None = None
    last_id: int | None = None
    prev_id: int | None = None
    checksum: int | None = None


@dataclass(slots=True)
class Data:
    """A market-data message of one subscribed channel.

    Attributes:
        channel / market: which subscription it belongs to.
        event_time: the exchange's event time (Unix s) or None where the message has none
            (Binance ``bookTicker``, partial depth).
        book: the book content for ``book`` messages, else None.
        gap: sequence numbers skipped before this message on a channel whose continuity the
            dialect can check outside the book (e.g. Kraken ``trade_id``); 0 = none.
        messages: how many exchange messages this event stands for (1; a batched frame may
            carry several).
        bid / ask: best bid and ask (quote-currency units) where a ticker message carries them,
            else None.
        last: last traded price (quote-currency units): a ticker's last price, or the price of
            the last trade (in the message's order) of a trades message; None where absent.
        volume: summed base-currency size of the trades in a trades message (0.0 otherwise,
            and for trades that are history, e.g. a subscribe-time snapshot).

    Prices and volume are read from the already-parsed message; a missing, malformed,
    non-positive or non-finite number leaves its field None (volume: adds nothing).
    """

    channel: Channel
    market: str
    event_time: float | None = None
    book: BookMessage | None = None
    gap: int = 0
    messages: int = 1
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    volume: float = 0.0


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The exchange acknowledged a subscription (one event per acknowledged subscription)."""

    subscription: Subscription


@dataclass(frozen=True, slots=True)
class SubscriptionFailed:
    """The exchange refused a subscription; ``subscription`` is None when the error does not say
    which one (the core then counts it against every unacknowledged subscription)."""

    subscription: Subscription | None
    message: str


@dataclass(frozen=True, slots=True)
class Pong:
    """An application-level pong; ``request_id`` echoes the ping's id where the protocol has one;
    ``server_time`` is the exchange's time in it (Unix s, Kraken ``time_out``) or None."""

    request_id: str | None = None
    server_time: float | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """An exchange heartbeat (Kraken ``heartbeat``, Coinbase ``heartbeat``): the connection is
    alive even when no channel has data."""

    event_time: float | None = None


class NoticeKind(StrEnum):
    """Server notices that end a connection soon or announce the exchange's state."""

    SHUTDOWN = "shutdown"  # Binance serverShutdown, OKX 64008: reconnect now
    MAINTENANCE = (
        "maintenance"  # Kraken status system!=online, Coinbase status, Bybit system.status
    )
    ONLINE = "online"  # the exchange says it is back


@dataclass(frozen=True, slots=True)
class Notice:
    """A server notice (see :class:`NoticeKind`) with its text, capped by the dialect."""

    kind: NoticeKind
    message: str = ""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message the dialect understood and that needs no action (e.g. a Kraken ``status``
    ``online`` on connect, an unsubscribe ack)."""

    what: str = ""


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message that is not what the exchange documents (not JSON, fields missing)."""

    reason: str
    sample: str = field(default="", repr=False)


StreamEvent = (
    Data | Subscribed | SubscriptionFailed | Pong | Heartbeat | Notice | Ignored | Malformed
)
"""Every event a dialect may return from :meth:`StreamDialect.parse`."""
