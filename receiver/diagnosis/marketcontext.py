"""The market context of a market-integrity alert: instant queries on the raw market series.

For the alerts of :mod:`receiver.diagnosis.knowledge.market`, at the end of the context window,
from the exporter's raw series (exporter/market/metrics.py and the rate-limit gauges; recording
rules are not needed) and the alert's own labels:

* price group (``price_group`` label; price, volume and crossed-book alerts): every venue's best
  bid and ask now, its mid five minutes earlier, the age of its last update and its traded-volume
  rate over 5 m against 1 h;
* the venue (``exchange``; price-deviation and crossed-book alerts): its bid and ask in every
  price group, and per group the median mid of the other venues (a basis shared by every market
  of the venue, e.g. a stablecoin de-peg, shows there);
* rate limit (``exchange`` and ``window``): ``exchange_rate_limit_used`` and ``_limit`` now and
  ``deriv`` of the usage over 5 m;
* maintenance (``exchange``): ``exchange_maintenance_scheduled_start_timestamp_seconds`` and
  ``_end_``.

Label values reach PromQL only as escaped string literals; the answers are capped by the
context's parser (series, label length, non-finite values dropped).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from receiver.diagnosis.schema import MarketState, VenueQuote
from receiver.text import cap

#: Queries of the price group; ``{pg}`` is the ``price_group="…"`` matcher.
GROUP_QUERIES: dict[str, str] = {
    "mkt_bid": "max by (exchange, market) (exchange_market_bid_price{{{pg}}})",
    "mkt_ask": "max by (exchange, market) (exchange_market_ask_price{{{pg}}})",
    "mkt_mid_before": (
        "avg by (exchange, market) ((exchange_market_bid_price{{{pg}}} offset 5m"
        " + exchange_market_ask_price{{{pg}}} offset 5m) / 2)"
    ),
    "mkt_age": (
        "time() - max by (exchange, market) (exchange_market_last_update_timestamp_seconds{{{pg}}})"
    ),
    "mkt_volume": (
        "sum by (exchange, market) (rate(exchange_market_traded_volume_total{{{pg}}}[5m]))"
        " / (sum by (exchange, market) (rate(exchange_market_traded_volume_total{{{pg}}}[1h]))"
        " > 0)"
    ),
}

#: Queries of the venue; ``{ex}`` is ``exchange="…"``, ``{nex}`` is ``exchange!="…"``.
VENUE_QUERIES: dict[str, str] = {
    "mkt_venue_bid": "max by (market, price_group) (exchange_market_bid_price{{{ex}}})",
    "mkt_venue_ask": "max by (market, price_group) (exchange_market_ask_price{{{ex}}})",
    "mkt_medians": (
        "quantile by (price_group) (0.5, (exchange_market_bid_price{{{nex}}}"
        " + exchange_market_ask_price{{{nex}}}) / 2)"
    ),
}

#: Rate-limit queries; ``{exw}`` is ``exchange="…",window="…"``.
RATE_QUERIES: dict[str, str] = {
    "rl_used": "max(exchange_rate_limit_used{{{exw}}})",
    "rl_limit": "max(exchange_rate_limit_limit{{{exw}}})",
    "rl_slope": "max(deriv(exchange_rate_limit_used{{{exw}}}[5m]))",
}

#: Maintenance queries; ``{ex}`` as above.
MAINTENANCE_QUERIES: dict[str, str] = {
    "mt_start": "min(exchange_maintenance_scheduled_start_timestamp_seconds{{{ex}}})",
    "mt_end": "max(exchange_maintenance_scheduled_end_timestamp_seconds{{{ex}}})",
}

#: Every query name of the market context.
MARKET_QUERY_NAMES: frozenset[str] = frozenset(
    [*GROUP_QUERIES, *VENUE_QUERIES, *RATE_QUERIES, *MAINTENANCE_QUERIES]
)

#: Query set → the labels it needs.
_SETS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "group": (GROUP_QUERIES, ("price_group",)),
    "venue": (VENUE_QUERIES, ("exchange",)),
    "rate": (RATE_QUERIES, ("exchange", "window")),
    "maintenance": (MAINTENANCE_QUERIES, ("exchange",)),
}

#: Which query sets each alert needs.
_PLAN: dict[str, tuple[str, ...]] = {
    "ExchangePriceDeviation": ("group", "venue"),
    "ExchangePriceSpike": ("group",),
    "ExchangeVolumeSpike": ("group",),
    "ExchangeBookCrossed": ("group", "venue"),
    "ExchangeRateLimitExhaustionPredicted": ("rate",),
    "ExchangeMaintenanceScheduled": ("maintenance",),
}

MARKET_TEXT_LIMIT = 300
_LABEL_MAX = 200

Rows = list[tuple[dict[str, str], float]]


def market_queries(
    alertname: str, labels: Mapping[str, str], quote: Callable[[str], str]
) -> dict[str, str]:
    """The PromQL of the market context of one alert (``{}`` for other alerts).

    Args:
        alertname: the alert's name; only the market-integrity alerts get queries.
        labels: the alert's labels (``exchange``, ``price_group``, ``window``); a set of queries
            whose labels are missing or longer than 200 characters is left out.
        quote: quotes a label value as a PromQL string literal (escapes it).

    Returns:
        query name → PromQL (instant queries, no ``{w}`` placeholder left).
    """
    exchange = labels.get("exchange") or ""
    group = labels.get("price_group") or ""
    window = labels.get("window") or ""
    matchers = {
        "pg": f"price_group={quote(group)}",
        "ex": f"exchange={quote(exchange)}",
        "nex": f"exchange!={quote(exchange)}",
        "exw": f"exchange={quote(exchange)},window={quote(window)}",
    }
    out: dict[str, str] = {}
    for kind in _PLAN.get(alertname, ()):
        queries, needed = _SETS[kind]
        values = [labels.get(label) or "" for label in needed]
        if not all(values) or any(len(value) > _LABEL_MAX for value in values):
            continue
        for name, template in queries.items():
            out[name] = template.format(**matchers)
    return out


def _first(rows: Rows | None) -> float | None:
    return rows[0][1] if rows else None


def _by(rows: Rows | None, *keys: str) -> dict[tuple[str, ...], float]:
    return {tuple(labels.get(k, "") for k in keys): value for labels, value in rows or []}


def market_state(
    labels: Mapping[str, str],
    results: dict[str, Any],
    parse: Callable[[Any], Rows],
    now: float,
    clean: Callable[[str], str],
) -> MarketState | None:
    """Build the :class:`MarketState` from the answers of :func:`market_queries`.

    Args:
        labels: the alert's labels (cleaned here with ``clean``).
        results: query name → the ``data`` block Prometheus answered (missing: failed).
        parse: the context's vector parser (caps series and labels, drops non-finite values).
        now: Unix seconds the queries were evaluated at.
        clean: strips control characters and caps an untrusted label value.

    Returns:
        ``None`` when none of the market queries answered with data.
    """
    rows = {q: parse(results.get(q)) for q in MARKET_QUERY_NAMES if q in results}
    if not any(rows.values()):
        return None
    pair = ("exchange", "market")
    bids, asks = _by(rows.get("mkt_bid"), *pair), _by(rows.get("mkt_ask"), *pair)
    before, ages = _by(rows.get("mkt_mid_before"), *pair), _by(rows.get("mkt_age"), *pair)
    volumes = _by(rows.get("mkt_volume"), *pair)
    group = clean(labels.get("price_group") or "")
    keys = sorted({*bids, *asks, *before, *ages, *volumes})
    quotes = [
        VenueQuote(
            exchange=ex,
            market=mk,
            price_group=group,
            bid=bids.get((ex, mk)),
            ask=asks.get((ex, mk)),
            mid_before=before.get((ex, mk)),
            age=ages.get((ex, mk)),
            volume_ratio=volumes.get((ex, mk)),
        )
        for ex, mk in keys
    ]
    vpair = ("market", "price_group")
    vbids, vasks = _by(rows.get("mkt_venue_bid"), *vpair), _by(rows.get("mkt_venue_ask"), *vpair)
    exchange = clean(labels.get("exchange") or "")
    venue = [
        VenueQuote(exchange=exchange, market=mk, price_group=pg, bid=vbids.get((mk, pg)), ask=a)
        for (mk, pg), a in sorted(vasks.items())
    ]
    medians = {k[0]: v for k, v in _by(rows.get("mkt_medians"), "price_group").items() if k[0]}
    state = MarketState(
        exchange=exchange,
        market=clean(labels.get("market") or ""),
        price_group=group,
        window=clean(labels.get("window") or ""),
        quotes=quotes,
        venue=venue,
        medians=medians,
        used=_first(rows.get("rl_used")),
        limit=_first(rows.get("rl_limit")),
        slope_per_second=_first(rows.get("rl_slope")),
        maintenance_start=_first(rows.get("mt_start")),
        maintenance_end=_first(rows.get("mt_end")),
        at=now,
    )
    return state.model_copy(update={"text": render_market_state(state)})


def fmt_price(x: float) -> str:
    """A price, weight, age or ratio: up to 10 significant digits, thousands separated."""
    return f"{x:,.10g}"


def utc_text(when: float) -> str:
    """``2026-12-06 10:00 UTC`` (``an invalid time`` when out of range)."""
    try:
        return datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "an invalid time"


def bps(value: float, reference: float) -> float | None:
    """``value`` against ``reference`` in basis points (log ratio × 10 000); ``None`` if not > 0."""
    if value <= 0 or reference <= 0:
        return None
    return math.log(value / reference) * 10_000


def render_market_state(state: MarketState) -> str:
    """One line for the context fields, e.g. ``BTC/USDT on binance: bid 100 ask 100.1, 3 other
    venues, median 95.2 (+503 bps)``; at most :data:`MARKET_TEXT_LIMIT` characters."""
    parts: list[str] = []
    own = state.own()
    if own is not None:
        where = f"{own.market or state.market} on {own.exchange}"
        if own.bid is not None and own.ask is not None:
            parts.append(f"{where}: bid {fmt_price(own.bid)} ask {fmt_price(own.ask)}")
        else:
            parts.append(where)
        others = [q.mid for q in state.others() if q.mid is not None]
        if others and own.mid is not None:
            mid = median(others)
            dev = bps(own.mid, mid)
            dev_text = f" ({dev:+.0f} bps)" if dev is not None else ""
            parts.append(f"{len(others)} other venues, median mid {fmt_price(mid)}{dev_text}")
        if own.age is not None:
            parts.append(f"updated {fmt_price(own.age)} s ago")
        if own.volume_ratio is not None:
            parts.append(f"volume 5m/1h ×{fmt_price(own.volume_ratio)}")
    if state.used is not None and state.limit is not None:
        parts.append(
            f"{state.window or 'rate-limit'} window {fmt_price(state.used)}/"
            f"{fmt_price(state.limit)} used"
        )
    if state.maintenance_start is not None:
        text = f"maintenance announced from {utc_text(state.maintenance_start)}"
        if state.maintenance_end is not None:
            text += f" to {utc_text(state.maintenance_end)}"
        parts.append(text)
    return cap("; ".join(parts), MARKET_TEXT_LIMIT)


def median(values: list[float]) -> float:
    """The median of a non-empty list (mean of the two middle values for an even length)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
