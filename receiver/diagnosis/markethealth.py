"""Evidence for the market-integrity alerts: what the market context says about the cause.

One evidence function, :func:`market` (the :data:`~receiver.diagnosis.case.Evidence`
signature), for the alerts of :mod:`receiver.diagnosis.knowledge.market`. It reads the
:class:`~receiver.diagnosis.schema.MarketState` of the context (built by
:mod:`receiver.diagnosis.marketcontext` from the raw market series) and tells apart:

* ``ExchangePriceDeviation``: a wrong market mapping (deviation beyond :data:`MAPPING_BPS`), a
  stale ticker (the venue's quote older than :data:`STALE_SECONDS` while the others are fresh),
  a stuck feed or matching engine (the venue's mid did not move while the others did), a local
  basis (every market of the venue off by about the same, or a different quote currency from the
  others': stablecoin de-peg, USD against USDT); with fewer than two fresh other venues nobody
  can tell who is wrong;
* ``ExchangePriceSpike``: a spike on the venue alone (the others did not follow) against a
  market-wide move (the others moved at least :data:`MARKET_WIDE_SHARE` of it, same way);
* ``ExchangeVolumeSpike``: a surge on every venue of the group against one on this venue only;
* ``ExchangeBookCrossed``: still crossed or not, a stale quote (missed update), several markets
  of the venue crossed (its feed as a whole);
* ``ExchangeRateLimitExhaustionPredicted``: the named window's usage, limit and time to reach it;
* ``ExchangeMaintenanceScheduled``: the announced window, when it starts and how long it lasts.

Every label value quoted (market, price group, window) comes cleaned and capped from the
context; the notifiers escape the text.
"""

from __future__ import annotations

import math

from receiver.diagnosis.case import Case, Finding, Findings
from receiver.diagnosis.knowledge import fill
from receiver.diagnosis.knowledge.market import (
    BASIS_SHARE,
    FLAT_BPS,
    MAPPING_BPS,
    MARKET_WIDE_SHARE,
    STALE_SECONDS,
    STOP_QUOTING,
    SURGE_RATIO,
)
from receiver.diagnosis.marketcontext import bps, fmt_price, median, utc_text
from receiver.diagnosis.schema import MarketState, VenueQuote

__all__ = ["market"]

MAPPING_ACTION = (
    "Check the market mapping of {exchange} first: symbol, base, quote and unit in the "
    "exporter's markets: (and the bots' own mapping) - a deviation this large is another asset "
    "or denomination, not a price."
)
STALE_ACTION = (
    "{exchange}'s quote is stale: check its stream and REST ticker (ExchangeWebSocketStale, "
    "ExchangeMarketDataStale) and whether the market is halted; quote nothing from it meanwhile."
)
STUCK_ACTION = (
    "{exchange}'s price is frozen while the market moves: treat its feed or matching engine as "
    "stuck - check its book and trades and its status page before trusting any fill there."
)
BASIS_ACTION = (
    "Check the stablecoin basis on {exchange}: every market with this quote currency is off by "
    "about the same - price against USDT/USD (and USDC/USD) there, not against the others' "
    "median."
)
WIDE_ACTION = (
    "A market-wide move, not a data fault: widen spreads and cut size on every venue until "
    "volatility settles; check stops and liquidations."
)


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f}" if minutes >= 1 else f"{minutes:.1f}"


def _fresh(quote: VenueQuote) -> bool:
    return quote.age is None or quote.age <= STALE_SECONDS


def _quote_currency(market: str) -> str:
    return market.rsplit("/", 1)[1] if "/" in market else ""


def _move(quote: VenueQuote) -> float | None:
    """The quote's mid move over the context's lookback (5 m), in bps."""
    mid = quote.mid
    if mid is None or quote.mid_before is None:
        return None
    return bps(mid, quote.mid_before)


def _deviation(state: MarketState, own: VenueQuote) -> tuple[float, float, int] | None:
    """``(deviation bps, median mid, fresh others)`` of ``own`` against the fresh others."""
    values = [m for m in (q.mid for q in state.others() if _fresh(q)) if m is not None]
    if own.mid is None or not values:
        return None
    mid = median(values)
    dev = bps(own.mid, mid)
    return (dev, mid, len(values)) if dev is not None else None


def _venue_deviations(state: MarketState) -> list[tuple[str, float]]:
    """``(market, bps)`` of the venue's other markets against the others' median per group."""
    out: list[tuple[str, float]] = []
    for quote in state.venue:
        if quote.market == state.market or quote.price_group == state.price_group:
            continue
        reference = state.medians.get(quote.price_group)
        mid = quote.mid
        dev = bps(mid, reference) if mid is not None and reference is not None else None
        if dev is not None:
            out.append((quote.market, dev))
    return out


def _where(state: MarketState, values: dict[str, str]) -> str:
    market = state.market or state.price_group or "this market"
    return f"{market} on {values['exchange']}"


def _price_deviation(case: Case, state: MarketState) -> Finding | None:
    own = state.own()
    if own is None:
        return None
    values = case.values
    where = _where(state, values)
    found = _deviation(state, own)
    if found is None:
        return None
    dev, mid, fresh = found
    own_mid = own.mid or 0.0
    sentences = [
        f"{where}: mid {fmt_price(own_mid)} against a median of {fmt_price(mid)} over "
        f"{fresh} other fresh venues ({dev:+.0f} bps)."
    ]
    if fresh < 2:
        sentences.append(
            "With fewer than two other venues fresh nobody can tell which price is wrong."
        )
        return Finding(sentences=tuple(sentences))
    actions: list[str] = []
    if abs(dev) >= MAPPING_BPS:
        sentences.append(
            f"A deviation of {abs(dev):.0f} bps is beyond any drift or basis: most likely a "
            "wrong market mapping (another asset, unit or denomination)."
        )
        actions.append(fill(MAPPING_ACTION, values))
    if own.age is not None and own.age > STALE_SECONDS:
        sentences.append(
            f"Its quote was last updated {fmt_price(own.age)} s ago while the others are "
            "fresh: a stale ticker or a stuck feed."
        )
        actions.append(fill(STALE_ACTION, values))
    else:
        own_move = _move(own)
        moves = [m for m in (_move(q) for q in state.others() if _fresh(q)) if m is not None]
        if own_move is not None and abs(own_move) < FLAT_BPS and moves:
            typical = median([abs(m) for m in moves])
            if typical >= max(FLAT_BPS, abs(dev) / 2):
                sentences.append(
                    f"Its mid has not moved over the last 5 minutes while the others moved "
                    f"{typical:.0f} bps: a stuck feed or matching engine on {values['exchange']}."
                )
                actions.append(fill(STUCK_ACTION, values))
    same = [
        (mk, d)
        for mk, d in _venue_deviations(state)
        if d * dev > 0 and abs(d - dev) <= BASIS_SHARE * abs(dev)
    ]
    quote = _quote_currency(state.market)
    other_quotes = {_quote_currency(q.market) for q in state.others()} - {""}
    if same:
        names = ", ".join(mk for mk, _ in same[:3])
        sentences.append(
            f"Other markets of {values['exchange']} are off by about the same ({names}): a local "
            "basis shared by the venue (a stablecoin de-peg, the quote currency's price there) "
            "rather than one stuck market."
        )
        actions.append(fill(BASIS_ACTION, values))
    elif quote and other_quotes and quote not in other_quotes:
        sentences.append(
            f"It is quoted in {quote} while the others quote {', '.join(sorted(other_quotes))}: "
            "part of the deviation may be the basis between those currencies."
        )
        actions.append(fill(BASIS_ACTION, values))
    return Finding(sentences=tuple(sentences), lead_actions=tuple(actions), support=True)


def _price_spike(case: Case, state: MarketState) -> Finding | None:
    own = state.own()
    own_move = _move(own) if own is not None else None
    if own is None or own_move is None:
        return None
    values = case.values
    moves = [m for m in (_move(q) for q in state.others() if _fresh(q)) if m is not None]
    head = f"{_where(state, values)} moved {own_move:+.0f} bps over the last 5 minutes"
    if not moves:
        return Finding(sentences=(head + "; no other venue of the group to compare with.",))
    typical = median(moves)
    wide = typical * own_move > 0 and abs(typical) >= MARKET_WIDE_SHARE * abs(own_move)
    head += f", the {len(moves)} other venues {typical:+.0f} bps (median)"
    if wide:
        return Finding(
            sentences=(
                head + ": a market-wide move that every venue shows, not a print of "
                f"{values['exchange']} alone.",
            ),
            lead_actions=(WIDE_ACTION,),
        )
    return Finding(
        sentences=(
            head + f": the spike is on {values['exchange']} alone - a flash print or bad tick "
            "there (its price deviates from the other venues too).",
        ),
        lead_actions=(fill(STOP_QUOTING, values),),
        support=True,
    )


def _volume_spike(case: Case, state: MarketState) -> Finding | None:
    own = state.own()
    if own is None or own.volume_ratio is None:
        return None
    values = case.values
    ratios = [r for r in (q.volume_ratio for q in state.others()) if r is not None]
    head = f"{_where(state, values)} trades ×{fmt_price(own.volume_ratio)} its 1-hour volume rate"
    if not ratios:
        return Finding(sentences=(head + ".",))
    surging = len([r for r in ratios if r >= SURGE_RATIO])
    if surging * 2 >= len(ratios):
        return Finding(
            sentences=(
                head + f"; {surging} of {len(ratios)} other venues surge too: a market-wide "
                "surge - expect load, throttling and wider spreads on every venue, not only "
                f"{values['exchange']}.",
            ),
            support=True,
        )
    return Finding(
        sentences=(
            head + f"; the other venues do not ({surging} of {len(ratios)} above ×"
            f"{fmt_price(SURGE_RATIO)}): a local event on {values['exchange']} (liquidations, "
            "a listing or promotion) - or, where no trade stream runs, a jump of the coarser "
            "REST 24 h volume.",
        )
    )


def _book_crossed(case: Case, state: MarketState) -> Finding | None:
    own = state.own()
    if own is None or own.bid is None or own.ask is None:
        return None
    values = case.values
    where = _where(state, values)
    sentences: list[str] = []
    actions: list[str] = []
    if own.bid >= own.ask:
        by = bps(own.bid, own.ask)
        cross = f" (crossed by {by:.1f} bps)" if by is not None else ""
        sentences.append(
            f"{where}: bid {fmt_price(own.bid)} ≥ ask {fmt_price(own.ask)}{cross} now."
        )
    else:
        sentences.append(
            f"{where}: bid {fmt_price(own.bid)} < ask {fmt_price(own.ask)} now: the book is "
            "no longer crossed."
        )
    if own.age is not None and own.age > STALE_SECONDS:
        sentences.append(
            f"The quote was last updated {fmt_price(own.age)} s ago: the feed stalled on a "
            "crossed book (a missed update left a stale side)."
        )
        actions.append(
            "Resynchronise the book of this market from a fresh snapshot (resubscribe): the "
            "quote is stale."
        )
    crossed = [
        q.market for q in state.venue if q.bid is not None and q.ask is not None and q.bid >= q.ask
    ]
    if len(crossed) >= 2:
        sentences.append(
            f"{len(crossed)} of {len(state.venue)} markets of {values['exchange']} are crossed "
            "at once: the venue's feed (or our session with it) as a whole, not one lost update."
        )
    return Finding(sentences=tuple(sentences), lead_actions=tuple(actions), support=True)


def _rate_limit(case: Case, state: MarketState) -> Finding | None:
    if state.used is None or state.limit is None or state.limit <= 0:
        return None
    values = case.values
    window = state.window or "reported"
    share = state.used / state.limit
    sentence = (
        f"The {window} window of {values['exchange']}: {fmt_price(state.used)} of "
        f"{fmt_price(state.limit)} used ({share:.0%})"
    )
    slope = state.slope_per_second
    if share >= 1:
        sentence += ": the limit is already reached - expect 429s now."
    elif slope is not None and slope > 0 and math.isfinite(slope):
        seconds = (state.limit - state.used) / slope
        sentence += (
            f", rising {fmt_price(slope * 60)}/min: the limit is reached in about "
            f"{_minutes(seconds)} min at this trend."
        )
    else:
        sentence += ", no longer rising: the forecast may clear by itself."
    action = (
        f"Throttle the bots on this IP now for the {window} window of {values['exchange']}: "
        "lower polling, stagger schedules, move market data to WebSocket."
    )
    return Finding(sentences=(sentence,), lead_actions=(action,), support=share >= 0.5)


def _maintenance(case: Case, state: MarketState) -> Finding | None:
    start, end = state.maintenance_start, state.maintenance_end
    if start is None:
        return None
    values = case.values
    sentence = f"{values['exchange']} announces maintenance from {utc_text(start)}"
    if end is not None and end > start:
        sentence += f" to {utc_text(end)} ({_minutes(end - start)} min)"
    if start > state.at:
        sentence += f": it starts in about {_minutes(start - state.at)} min."
        action = (
            f"Pause the strategies on {values['exchange']} before {utc_text(start)} and cancel "
            "the orders that must not rest through the window."
        )
    else:
        sentence += ": the window has started - expect ExchangeMaintenance."
        action = (
            f"The maintenance of {values['exchange']} has started: keep the strategies paused "
            "until the exchange reports normal operation."
        )
    return Finding(sentences=(sentence,), lead_actions=(action,), support=True)


_BY_ALERT = {
    "ExchangePriceDeviation": _price_deviation,
    "ExchangePriceSpike": _price_spike,
    "ExchangeVolumeSpike": _volume_spike,
    "ExchangeBookCrossed": _book_crossed,
    "ExchangeRateLimitExhaustionPredicted": _rate_limit,
    "ExchangeMaintenanceScheduled": _maintenance,
}


def market(case: Case, so_far: Findings) -> Finding | None:
    """Market-integrity alerts: the cause their market context points at (see the module)."""
    ctx = case.context
    if ctx is None or ctx.market is None or not case.exact:
        return None
    handler = _BY_ALERT.get(case.alert.alertname)
    return handler(case, ctx.market) if handler is not None else None
