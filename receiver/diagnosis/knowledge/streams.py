"""One entry per WebSocket market-data stream alert (prometheus/rules/exchange-stream-alerts.yml).

The same data shape as :mod:`receiver.diagnosis.knowledge.alerts` (which appends
:data:`STREAM_ALERTS` to its ``ALERTS``); ``docs/alerts.md`` has a section for each. Templates
may use ``{exchange}``, ``{endpoint}`` and ``{severity}`` only: the stream alerts' ``channel``
label (``ticker``, ``trades``, ``book``) is not a template value, so what depends on it is said
in :attr:`Entry.label_notes`.

The exchange facts quoted here, with their sources: Binance accepts a well-formed stream for a
non-existent symbol and never sends anything (OBSERVED, JKorf/Binance.Net#620), closes a
connection whose pongs stop for a minute [BN-WS §General WSS information] and one that sends more
than 5 messages a second [BN-WS §WebSocket Limits]; OKX closes a connection with 4004 "No data
received in 30s" [OKX-ERR §Close Frame] and has sent ``checksum: 0`` since 2026 (OBSERVED,
ccxt/ccxt PR #30299); Bybit does not announce interruptions under 10 s [BY-SYS]; Coinbase's
``matches`` can drop messages [CB-EX-CH §Heartbeat Channel] and slow consumers are disconnected
with ``ErrSlowConsume`` [CB-EX-OLD §Errors]; Kraken's book checksum has precision edge cases
(ccxt/ccxt#24461) and Cloudflare allows about 150 connection attempts per 10 minutes per IP
[KR-V2HOME §General Considerations].
"""

from __future__ import annotations

from receiver.diagnosis.knowledge.model import Entry

#: Shared action: bots that trade from the stream must not quote from frozen or wrong data.
PAUSE_STREAM_BOTS = (
    "Pause (or switch to REST polling within the rate limit) the strategies that read prices or "
    "books from the {exchange} stream until it is healthy again."
)

#: ``channel`` label → what the channel means for the bots, per alert kind.
_SILENT_NOTES: tuple[tuple[str, str, str], ...] = (
    ("channel", "book", "The order book channel is silent: books built from it are frozen."),
    ("channel", "trades", "The trades channel is silent (on an illiquid market it may be a lull)."),
    ("channel", "ticker", "The ticker channel is silent: last prices and best bid/ask are frozen."),
)
_BOOK_NOTE = (
    "channel",
    "book",
    "The exporter discarded the local order book and resynchronised it (snapshot or "
    "resubscribe); bots keeping their own book must do the same.",
)

STREAM_DOWN = Entry(
    name="ExchangeWebSocketDown",
    category="partial_outage",
    confidence=0.7,
    diagnosis=(
        "The exporter has had no open, subscribed WebSocket connection to {exchange} for 30 s: "
        "its reconnects are failing (connections refused or closed at once, subscriptions "
        "refused, or held back while the IP is banned). The REST API may still answer."
    ),
    impact=(
        "Bots that read prices and books from the {exchange} stream have no live market data; "
        "quotes built on the last values are stale and the books frozen."
    ),
    actions=(
        PAUSE_STREAM_BOTS,
        "Read the exporter's /status (streams.last_error) and exchange_ws_reconnects_total by "
        "reason; exchange_ws_subscription_errors_total rising means a refused market or channel "
        "name.",
        "Check {exchange}'s status page; if REST fails too, follow the ExchangeApiDown runbook.",
        "Check our egress for WebSocket upgrades (proxy, firewall, TLS interception) and the "
        "configured websocket url.",
        "Do not reconnect bots in a tight loop: connection-attempt limits apply per IP (Binance "
        "300 per 5 min, OKX 3 per second, Kraken about 150 per 10 min) and lead to bans.",
    ),
    rollback=(
        "Once the stream is connected and every channel is up again, rebuild books from fresh "
        "snapshots and re-enable the paused strategies one at a time."
    ),
    eta="1-30 minutes",
    severities=("critical",),
    symptom=True,
)

STREAM_STALE = Entry(
    name="ExchangeWebSocketStale",
    category="data_quality",
    confidence=0.75,
    diagnosis=(
        "A channel of the {exchange} WebSocket stream has delivered nothing within its "
        "stale_after while the connection is open: connected and silent - the feed stalled "
        "behind a healthy front, a subscription accepted but never served (Binance accepts a "
        "stream for a non-existent symbol and never sends anything), a halted market, or our "
        "consumer blocked."
    ),
    impact=(
        "Bots reading this channel trade on frozen prices or books without any error; the REST "
        "API may answer normally, so nothing else shows it."
    ),
    actions=(
        PAUSE_STREAM_BOTS,
        "Compare with the REST ticker and order book of {exchange} (ExchangeMarketDataStale) to "
        "tell a stalled exchange feed from a stalled stream.",
        "Make the bots resubscribe on a fresh connection and rebuild books from a new snapshot.",
        "If every exchange's streams are stale at once, check the exporter host (CPU, event "
        "loop) and our network.",
        "For an illiquid market, raise that channel's stale_after in the exporter's websocket "
        "config instead of ignoring the alert.",
    ),
    rollback="Resume quoting once messages flow on every channel and books match a snapshot.",
    eta="1-15 minutes",
    severities=("critical",),
    label_notes=_SILENT_NOTES,
)

STREAM_LAG = Entry(
    name="ExchangeWebSocketLagHigh",
    category="latency_degradation",
    confidence=0.65,
    diagnosis=(
        "More than 10% of a channel's messages from {exchange} arrive over the threshold after "
        "their event time (clock-skew corrected) for 2 minutes: the exchange's feed falling "
        "behind under load, a slow network path, or our consumer (or the bots' host) not keeping "
        "up. A clock error the skew estimate misses also shifts the lag."
    ),
    impact=(
        "Prices and books from the {exchange} stream are behind the market: quotes are stale by "
        "the lag, fills worse, hedges late."
    ),
    actions=(
        "Compare the lag with the other exchanges' streams: all lagging means our host or "
        "network (CPU, receive buffers).",
        "Check clock skew (ExchangeClockSkewHigh): lag is measured against the exchange's event "
        "time corrected by the measured skew.",
        "Widen the staleness tolerance of strategies that quote from this stream, or pause them.",
        "Prefer the exchange's lighter channels (batched or lower-depth books) if our consumer is "
        "the bottleneck.",
    ),
    rollback="Restore normal strategy settings once the p90 lag is back under threshold.",
    eta="5-30 minutes",
    severities=("warning",),
    label_notes=(
        ("channel", "book", "The book channel lags: books are behind the market."),
        ("channel", "ticker", "The ticker channel lags: last prices are behind the market."),
    ),
)

STREAM_GAPS = Entry(
    name="ExchangeWebSocketSequenceGaps",
    category="data_quality",
    confidence=0.7,
    diagnosis=(
        "The {exchange} stream skipped sequence numbers (Binance U/u, Bybit u, OKX "
        "prevSeqId/seqId, Kraken trade_id, Coinbase heartbeat sequence): messages were lost, by "
        "the exchange under load (Coinbase documents dropped matches) or because the reader fell "
        "behind. Over one connection the documented sequences are contiguous, so a gap is not "
        "noise."
    ),
    impact=(
        "Between the gap and the resync the local book was incomplete; bots that kept their own "
        "book through the gap hold a wrong one, trades may be missing from their tape."
    ),
    actions=(
        "Check exchange_ws_sequence_gaps_total and exchange_ws_book_resyncs_total for {exchange} "
        "over the last hour: one gap a day is worth noting, several an hour is a feed problem.",
        "Make sure the bots discard and resynchronise their books on a gap, as the exchange's "
        "procedure says.",
        "If gaps come with lag or reconnects, look for a slow consumer (CPU, receive buffers).",
    ),
    rollback="None: the exporter resynchronises by itself; the alert clears after 5 minutes.",
    eta="minutes (each resync takes seconds)",
    severities=("warning",),
    label_notes=(_BOOK_NOTE,),
)

STREAM_CHECKSUM = Entry(
    name="ExchangeWebSocketChecksumMismatch",
    category="data_quality",
    confidence=0.7,
    diagnosis=(
        "The CRC32 of the local {exchange} order book differed from the exchange's checksum "
        "(OKX top 25 levels when its checksum is not 0, Kraken top 10): the book was corrupt - a "
        "missed or misapplied update, or a change in the exchange's number formatting or "
        "checksum rules (Kraken's checksum has known precision edge cases)."
    ),
    impact=(
        "Books built from this stream were wrong until the resync: prices at the top levels may "
        "have been off; bots that do not validate checksums may still hold the corrupt book."
    ),
    actions=(
        "Check mismatches against resyncs on the detail dashboard: mismatches that return after "
        "every resync mean a systematic difference, not a lost message.",
        "Make bots that keep their own {exchange} book rebuild it from a fresh snapshot.",
        "Compare {exchange}'s API changelog with our checksum code (string formats, depth, "
        "signedness) if mismatches persist.",
    ),
    rollback="None: the exporter resynchronises by itself; the alert clears after 5 minutes.",
    eta="minutes (each resync takes seconds)",
    severities=("warning",),
    label_notes=(_BOOK_NOTE,),
)

STREAM_RECONNECTING = Entry(
    name="ExchangeWebSocketReconnecting",
    category="partial_outage",
    confidence=0.6,
    diagnosis=(
        "The {exchange} stream keeps reconnecting for unscheduled reasons: the exchange closing "
        "connections (overload, deployments, OKX 4004 after 30 s without a client message), "
        "keep-alive failures (pongs late or lost), too many client messages (Binance closes "
        "over 5 per second), or an unstable network path."
    ),
    impact=(
        "Every reconnect leaves a hole in the market data and rebuilds the books; bots "
        "reconnecting in step may hit connection-attempt limits and IP bans."
    ),
    actions=(
        "Break exchange_ws_reconnects_total for {exchange} down by reason over 15 minutes: "
        "closed_by_server points at the exchange, ping_timeout at keep-alive, error at the "
        "network or TLS.",
        "Compare with the other exchanges' streams: all reconnecting means our network or host.",
        "Make sure the bots' reconnects back off with jitter and resubscribe; reconcile their "
        "books after each reconnect.",
        "Check {exchange}'s status page for a deployment or degraded WebSocket service.",
    ),
    rollback="None beyond fixing the cause; the alert clears as the 15-minute window empties.",
    eta="5-30 minutes",
    severities=("warning",),
    symptom=True,
)

#: The stream alerts, in the order of the rule file.
STREAM_ALERTS: tuple[Entry, ...] = (
    STREAM_DOWN,
    STREAM_STALE,
    STREAM_LAG,
    STREAM_GAPS,
    STREAM_CHECKSUM,
    STREAM_RECONNECTING,
)
