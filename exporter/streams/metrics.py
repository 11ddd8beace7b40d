"""The ``exchange_ws_*`` metrics of the WebSocket market-data streams. Names are fixed: rules
and dashboards depend on them.

Labels are ``exchange`` (configured names), ``channel`` (:class:`~exporter.streams.events.Channel`:
ticker, trades, book) and ``reason`` (:class:`~exporter.streams.events.ReconnectReason`), so
cardinality is bounded by the config. Series start at 0 for every configured channel and reason
(:meth:`StreamMetrics.declare`), and an exchange's series go when it leaves the config
(:meth:`StreamMetrics.forget_exchange`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exporter.streams.events import Channel, ReconnectReason

LAG_BUCKETS_SECONDS: tuple[float, ...] = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
    0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Message lag buckets: dense from 1 ms to 1 s (a healthy feed from a nearby region, and the
range the lag alert's threshold lives in), coarse up to 60 s for a feed that fell behind."""


@dataclass(slots=True)
class ChannelChildren:
    """The labelled children of one (exchange, channel), bound once per connection so the
    per-message path does no label lookups."""

    up: Any
    messages: Any
    last_message: Any
    lag: Any
    gaps: Any
    checksum_mismatches: Any
    subscription_errors: Any


@dataclass(slots=True)
class ExchangeChildren:
    """The labelled children of one exchange's per-exchange series."""

    connected: Any
    book_resyncs: Any
    book_crossed: Any
    reconnects: dict[ReconnectReason, Any]


class StreamMetrics:
    """Every ``exchange_ws_*`` metric, registered on the exporter's registry.

    Args:
        registry: the exporter's registry (``ExporterMetrics.registry``).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.connected = Gauge(
            "exchange_ws_connected",
            "1 while the exchange's market-data WebSocket is open and at least one subscription "
            "is acknowledged, else 0.",
            ["exchange"],
            registry=r,
        )
        self.up = Gauge(
            "exchange_ws_up",
            "1 while the stream is connected and a message of the channel arrived within its "
            "stale_after, else 0 (evaluated at least every second).",
            ["exchange", "channel"],
            registry=r,
        )
        self.messages = Counter(
            "exchange_ws_messages",
            "Market-data messages received per channel (a batched frame counts each message).",
            ["exchange", "channel"],
            registry=r,
        )
        self.last_message = Gauge(
            "exchange_ws_last_message_timestamp_seconds",
            "Unix time (local clock) of the last message of the channel; 0 before the first.",
            ["exchange", "channel"],
            registry=r,
        )
        self.lag = Histogram(
            "exchange_ws_message_lag_seconds",
            "Receive time minus the exchange's event time of each message that carries one, "
            "corrected by the clock skew the REST time probe measured (exchange_clock_skew_"
            "seconds); negative values count as 0.",
            ["exchange", "channel"],
            buckets=LAG_BUCKETS_SECONDS,
            registry=r,
        )
        self.reconnects = Counter(
            "exchange_ws_reconnects",
            "Stream connections replaced, by reason: closed_by_server, ping_timeout, stale, "
            "error (including failed attempts), resync, scheduled (ahead of a documented "
            "maximum lifetime), maintenance (a shutdown notice).",
            ["exchange", "reason"],
            registry=r,
        )
        self.sequence_gaps = Counter(
            "exchange_ws_sequence_gaps",
            "Sequence gaps detected per channel (book: the exchange's documented ordering "
            "fields; trades: trade-id continuity where documented).",
            ["exchange", "channel"],
            registry=r,
        )
        self.checksum_mismatches = Counter(
            "exchange_ws_checksum_mismatches",
            "Book checksums (OKX, Kraken CRC32) that did not match the local book.",
            ["exchange", "channel"],
            registry=r,
        )
        self.book_resyncs = Counter(
            "exchange_ws_book_resyncs",
            "Local order books discarded and resynchronised after a gap or checksum mismatch.",
            ["exchange"],
            registry=r,
        )
        self.book_crossed = Counter(
            "exchange_ws_book_crossed",
            "Times a local order book became crossed (best bid >= best ask); counted once per "
            "crossing episode, not per message.",
            ["exchange"],
            registry=r,
        )
        self.subscription_errors = Counter(
            "exchange_ws_subscription_errors",
            "Subscriptions the exchange refused, per channel.",
            ["exchange", "channel"],
            registry=r,
        )
        self.ping_rtt = Gauge(
            "exchange_ws_ping_rtt_seconds",
            "Round-trip time of the last keep-alive ping (protocol ping frame or the "
            "exchange's application ping/pong); absent where the protocol cannot time one.",
            ["exchange"],
            registry=r,
        )

    def all(self) -> list[Any]:
        """Every metric object, in exposition order."""
        return [
            self.connected,
            self.up,
            self.messages,
            self.last_message,
            self.lag,
            self.reconnects,
            self.sequence_gaps,
            self.checksum_mismatches,
            self.book_resyncs,
            self.book_crossed,
            self.subscription_errors,
            self.ping_rtt,
        ]

    def declare(self, exchange: str, channels: Iterable[Channel]) -> None:
        """Create the exchange's series at 0 for its configured channels and every reconnect
        reason, so rules and rates see them from the first scrape."""
        self.connected.labels(exchange).set(0)
        self.book_resyncs.labels(exchange)
        self.book_crossed.labels(exchange)
        for reason in ReconnectReason:
            self.reconnects.labels(exchange, reason.value)
        for channel in channels:
            self.channel(exchange, channel)

    def channel(self, exchange: str, channel: Channel) -> ChannelChildren:
        """The children of one (exchange, channel) (created at 0 where new)."""
        c = channel.value
        return ChannelChildren(
            up=self.up.labels(exchange, c),
            messages=self.messages.labels(exchange, c),
            last_message=self.last_message.labels(exchange, c),
            lag=self.lag.labels(exchange, c),
            gaps=self.sequence_gaps.labels(exchange, c),
            checksum_mismatches=self.checksum_mismatches.labels(exchange, c),
            subscription_errors=self.subscription_errors.labels(exchange, c),
        )

    def exchange(self, exchange: str) -> ExchangeChildren:
        """The per-exchange children of ``exchange``."""
        return ExchangeChildren(
            connected=self.connected.labels(exchange),
            book_resyncs=self.book_resyncs.labels(exchange),
            book_crossed=self.book_crossed.labels(exchange),
            reconnects={r: self.reconnects.labels(exchange, r.value) for r in ReconnectReason},
        )

    def forget_channel(self, exchange: str, channel: Channel) -> None:
        """Remove the series of a channel the exchange no longer subscribes (after a reload)."""
        for metric in (
            self.up,
            self.messages,
            self.last_message,
            self.lag,
            self.sequence_gaps,
            self.checksum_mismatches,
            self.subscription_errors,
        ):
            metric.remove_by_labels({"exchange": exchange, "channel": channel.value})

    def forget_exchange(self, exchange: str) -> None:
        """Remove every ``exchange_ws_*`` series of an exchange (it left the config, or its
        stream was turned off): a last ``exchange_ws_up`` 0 left behind would keep alerts
        firing."""
        for metric in self.all():
            metric.remove_by_labels({"exchange": exchange})
