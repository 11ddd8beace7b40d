"""One entry per market-integrity alert (prometheus/rules/exchange-market-alerts.yml, issue 15).

The same data shape as :mod:`receiver.diagnosis.knowledge.alerts` (which appends
:data:`MARKET_ALERTS` to its ``ALERTS``); ``docs/alerts.md`` has a section for each. Templates
use ``{exchange}``, ``{endpoint}`` and ``{severity}`` only: the alerts' ``market``,
``price_group`` and ``window`` labels are untrusted values that
:mod:`receiver.diagnosis.markethealth` quotes (cleaned and capped) in its evidence sentences,
together with the market context of :mod:`receiver.diagnosis.marketcontext`.

Categories:

* the price alerts and the crossed book are ``data_quality``: the venue's price is wrong for a
  desk that trades or hedges on it, whatever the cause behind it (stuck feed or matching engine,
  stale ticker, local basis, wrong mapping);
* ``ExchangeVolumeSpike`` is ``rate_limit``: the traded volume is real market activity, not bad
  data, so ``data_quality`` would point the desk at the wrong fix; what hurts us next is load -
  bots poll and trade more, the exchanges slow down and throttle, and a surge was the prelude to
  the multi-hour IP ban of our incident stories. Its actions are the rate-limit ones (request
  weight, polling), so the rate-limit evidence (usage, its trend) supports it;
* ``ExchangeRateLimitExhaustionPredicted`` is ``rate_limit``, ``ExchangeMaintenanceScheduled``
  ``maintenance``.

No exchange fact is quoted here beyond those already in :mod:`.causes` (limits per IP, the ban
that follows ignored 429s).
"""

from __future__ import annotations

from receiver.diagnosis.knowledge.model import Entry

#: A venue's mid this far (bps) from the others' median is a mapping or unit error, not a drift.
MAPPING_BPS = 2000.0
#: A quote older than this (seconds) is stale: the rules' default freshness
#: (``market_fresh_seconds`` in prometheus/thresholds.yml, 30 s).
STALE_SECONDS = 30.0
#: Other venues moving at least this share of the alert venue's move: a market-wide move.
MARKET_WIDE_SHARE = 0.5
#: A move (bps over the lookback of the market context) below this counts as "did not move".
FLAT_BPS = 0.5
#: Other markets of the venue deviating within this share of each other: a shared quote basis.
BASIS_SHARE = 0.3
#: Other venues' volume ratio (5 m rate / 1 h rate) from which a surge is market-wide.
SURGE_RATIO = 2.0

#: Shared action: stop trading against a price nobody can trust.
STOP_QUOTING = (
    "Stop quoting, hedging and arbitraging against {exchange}'s price for this market until it "
    "is back in line: an 'arbitrage' against a stuck or wrong price is a loss, and fills there "
    "may never come."
)

PRICE_DEVIATION = Entry(
    name="ExchangePriceDeviation",
    category="data_quality",
    confidence=0.75,
    diagnosis=(
        "{exchange}'s mid price deviates from the median of the other exchanges quoting the same "
        "price group (at least three with fresh data) by more than the threshold for a minute. "
        "Likely causes: a stuck matching engine or feed on {exchange}, a stale ticker, a local "
        "basis (a stablecoin de-peg, USD against USDT quotes in one group), or a wrong market "
        "mapping (another asset, unit or denomination)."
    ),
    impact=(
        "Prices from {exchange} are not the market's: quotes built on them are mispriced, hedges "
        "land at the wrong level, and the apparent arbitrage against {exchange} may be a stuck "
        "price that never fills."
    ),
    actions=(
        STOP_QUOTING,
        "Cross-check {exchange}'s order book and recent trades on its web UI or REST API: a book "
        "and trades that agree with the ticker mean a real local price, a frozen book or no "
        "trades mean a stuck feed or matching engine.",
        "Check the stablecoin basis: compare USDT/USD (and USDC/USD) on {exchange} and elsewhere "
        "- a de-peg moves every market of that quote currency on {exchange} together.",
        "Check the market's configuration (markets: and price_group in the exporter config): the "
        "right symbol, base and quote on {exchange}.",
        "Check {exchange}'s status page and announcements for a halted market or matching-engine "
        "incident.",
    ),
    rollback=(
        "Resume quoting against {exchange} once its mid is back within the threshold of the "
        "others for several minutes and its book and trades agree."
    ),
    eta="minutes for a stale feed; as long as the de-peg or the exchange incident lasts",
    severities=("warning", "critical"),
    blame_network=False,
)

PRICE_SPIKE = Entry(
    name="ExchangePriceSpike",
    category="data_quality",
    confidence=0.65,
    diagnosis=(
        "{exchange}'s 1-minute return is several standard deviations of the last hour's "
        "1-minute returns (and above the minimum in bps): a flash print on {exchange} (thin "
        "book swept, fat-finger order, liquidation cascade, bad tick) or a market-wide move "
        "that every venue shows. A spike on {exchange} alone deviates from the other venues "
        "too; a market-wide move does not."
    ),
    impact=(
        "Stop orders and liquidations may have triggered on {exchange}; strategies that react "
        "to its price may chase a print that reverts within seconds."
    ),
    actions=(
        "Compare {exchange}'s move with the other venues of the price group: all venues moving "
        "is the market, {exchange} alone is a local print or a bad tick.",
        "For a move on {exchange} alone: " + STOP_QUOTING[0].lower() + STOP_QUOTING[1:],
        "Check {exchange}'s recent trades and book: a real print has volume behind it, a bad "
        "tick does not.",
        "Check the desk's open orders and stops on {exchange} for fills at the spike price.",
        "For a market-wide move: widen spreads and cut size until volatility settles.",
    ),
    rollback=(
        "Restore normal spreads and size once the returns are back within their usual range "
        "for several minutes."
    ),
    eta="seconds to minutes (flash prints revert quickly)",
    severities=("warning",),
    blame_network=False,
)

VOLUME_SPIKE = Entry(
    name="ExchangeVolumeSpike",
    category="rate_limit",
    confidence=0.6,
    diagnosis=(
        "The traded volume on {exchange} over 5 minutes runs several times its 1-hour average: "
        "a volume surge (news, liquidations, a listing). The data is not wrong, but surges are "
        "the prelude to rate-limit trouble in busy markets - bots poll and trade more, the "
        "exchange slows down and throttles, and ignored 429s become IP bans."
    ),
    impact=(
        "Request weight on {exchange} climbs with the activity; spreads widen and books thin; "
        "a ban in the middle of the surge would cut the desk off {exchange} for minutes to "
        "hours."
    ),
    actions=(
        "Watch the request weight on {exchange} now (exchange_rate_limit_used against its "
        "limit): every process on the IP shares it.",
        "Reduce REST polling on {exchange} and move market data to WebSocket streams before "
        "the limit is near.",
        "Prepare for wider spreads and thinner books: cut size and widen quotes on {exchange}.",
        "Make sure every bot honours Retry-After and backs off on 429 - continuing leads to an "
        "IP ban (Binance 418, Bybit 403).",
    ),
    rollback=(
        "Restore normal polling and quoting once the volume ratio is back near 1 and the "
        "request weight has fallen."
    ),
    eta="minutes to an hour (as long as the surge lasts)",
    severities=("warning",),
    blame_network=False,
)

BOOK_CROSSED = Entry(
    name="ExchangeBookCrossed",
    category="data_quality",
    confidence=0.75,
    diagnosis=(
        "{exchange}'s best bid is at or above its best ask for longer than one probe or stream "
        "interval. A live matching engine never rests a crossed book: either the exchange's "
        "feed or matching engine is faulty, or we missed an update (a stale side next to a "
        "fresh one, a lost delta)."
    ),
    impact=(
        "Best bid and ask from {exchange} are wrong: mids, spreads and any signal built on them "
        "are garbage; orders sent at the 'crossing' price will not fill as expected."
    ),
    actions=(
        STOP_QUOTING,
        "Compare with {exchange}'s book on its REST API or web UI: crossed there too is the "
        "exchange's fault, not crossed there is our missed update.",
        "Make the exporter and the bots rebuild the book from a fresh snapshot (resubscribe the "
        "stream).",
        "Check the stream alerts of {exchange} (sequence gaps, checksum mismatches, stale "
        "channels): they point at a missed update.",
    ),
    rollback="Resume once bid < ask again and the book matches a fresh snapshot.",
    eta="minutes (a resync takes seconds; an exchange fault as long as it lasts)",
    severities=("warning",),
    blame_network=False,
)

RATE_LIMIT_PREDICTED = Entry(
    name="ExchangeRateLimitExhaustionPredicted",
    category="rate_limit",
    confidence=0.7,
    diagnosis=(
        "At its current trend, the request weight {exchange} reports for this IP reaches the "
        "limit within the forecast horizon (5 minutes by default): not yet throttled, but "
        "heading for 429s and then a ban."
    ),
    impact=(
        "Within minutes {exchange} may start refusing requests from every process on this IP; "
        "ignored 429s lead to IP bans (Binance 418 from 2 minutes to 3 days)."
    ),
    actions=(
        "Throttle the bots on this IP now: lower polling rates and pause non-essential jobs "
        "(backfills, reports) on {exchange}.",
        "Stagger the bots' schedules so that their requests do not burst at the start of the "
        "same window.",
        "Move market data to WebSocket streams: subscriptions do not cost REST weight.",
        "Find the heaviest callers on the IP (per-process request counts) and cut them first.",
    ),
    rollback=(
        "Restore normal rates gradually once the forecast stays below the limit, watching the "
        "reported usage."
    ),
    eta="minutes (the window resets; act before it is exhausted)",
    severities=("warning",),
    blame_network=False,
)

MAINTENANCE_SCHEDULED = Entry(
    name="ExchangeMaintenanceScheduled",
    category="maintenance",
    confidence=0.9,
    diagnosis=(
        "{exchange} announces a maintenance window in machine-readable form that starts soon "
        "(within the notice period): planned work, nothing is broken yet."
    ),
    impact=(
        "During the window trading on {exchange} is unavailable or restricted; orders left "
        "resting may be cancelled, or stay exposed while nobody can manage them."
    ),
    actions=(
        "Pause the strategies on {exchange} before the window starts and route hedging to "
        "other venues.",
        "Cancel resting orders before the start if {exchange}'s announcement says so (or if "
        "they must not rest through the window).",
        "Expect ExchangeMaintenance inside the window and WebSocket disconnects; make sure "
        "reconnects back off.",
        "Read the announcement on {exchange}'s status page for the scope (which products, "
        "cancel-only phases) and the expected end.",
    ),
    rollback=(
        "After the window: reconcile orders and positions, resubscribe streams and re-enable "
        "the strategies gradually."
    ),
    eta="as announced by the exchange",
    severities=("info",),
    blame_network=False,
)

#: The market-integrity alerts, in the order of the issue.
MARKET_ALERTS: tuple[Entry, ...] = (
    PRICE_DEVIATION,
    PRICE_SPIKE,
    VOLUME_SPIKE,
    BOOK_CROSSED,
    RATE_LIMIT_PREDICTED,
    MAINTENANCE_SCHEDULED,
)

#: Their names.
MARKET_ALERT_NAMES: frozenset[str] = frozenset(entry.name for entry in MARKET_ALERTS)
