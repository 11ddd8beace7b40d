"""Market context of the market-integrity alerts: queries, escaping, state, rendering (respx)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import respx

from receiver.diagnosis.context import ContextBuilder, promql_string
from receiver.diagnosis.marketcontext import (
    MARKET_QUERY_NAMES,
    market_queries,
    market_state,
    median,
    render_market_state,
)
from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import Context, MarketState, VenueQuote
from receiver.models import Alert, parse_rfc3339

PROM = "http://prom.test:9090"
STARTS_AT = "2026-11-21T07:22:00Z"
NOW = parse_rfc3339(STARTS_AT).timestamp() + 120.0
LABELS = {"exchange": "binance", "market": "BTC/USDT", "price_group": "BTC/USD"}

Rows = list[tuple[dict[str, str], float]]


def market_alert(alertname: str = "ExchangePriceDeviation", **labels: str) -> Alert:
    base = {"alertname": alertname, "severity": "warning"}
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": base | labels,
            "annotations": {"summary": "s"},
            "startsAt": STARTS_AT,
            "fingerprint": "m1",
        }
    )


def vector(rows: Rows) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [NOW, str(v)]} for m, v in rows],
        },
    }


EMPTY_MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": []}}


def venue(exchange: str, market: str = "BTC/USDT") -> dict[str, str]:
    return {"exchange": exchange, "market": market}


#: Query prefix → answer: Binance 50 bps above three fresh venues, its quote 400 s old.
ANSWERS: dict[str, Rows] = {
    "max by (exchange, market) (exchange_market_bid_price": [
        (venue("binance"), 100_499.5),
        (venue("bybit"), 99_999.5),
        (venue("okx"), 100_004.5),
        (venue("kraken", "BTC/USD"), 99_994.5),
    ],
    "max by (exchange, market) (exchange_market_ask_price": [
        (venue("binance"), 100_500.5),
        (venue("bybit"), 100_000.5),
        (venue("okx"), 100_005.5),
        (venue("kraken", "BTC/USD"), 99_995.5),
    ],
    "avg by (exchange, market) ((exchange_market_bid_price": [
        (venue("binance"), 100_500.0),
        (venue("bybit"), 100_000.0),
    ],
    "time() - max by (exchange, market)": [
        (venue("binance"), 400.0),
        (venue("bybit"), 1.0),
        (venue("okx"), 2.0),
        (venue("kraken", "BTC/USD"), 1.0),
    ],
    "exchange_market_traded_volume_total": [(venue("binance"), 1.5)],
    "max by (market, price_group) (exchange_market_bid_price": [
        ({"market": "BTC/USDT", "price_group": "BTC/USD"}, 100_499.5),
    ],
    "max by (market, price_group) (exchange_market_ask_price": [
        ({"market": "BTC/USDT", "price_group": "BTC/USD"}, 100_500.5),
    ],
    "quantile by (price_group)": [({"price_group": "BTC/USD"}, 100_000.0)],
    "max(exchange_rate_limit_used": [({}, 4800.0)],
    "max(exchange_rate_limit_limit": [({}, 6000.0)],
    "max(deriv(exchange_rate_limit_used": [({}, 10.0)],
    "min(exchange_maintenance_scheduled_start": [({}, NOW + 1800)],
    "max(exchange_maintenance_scheduled_end": [({}, NOW + 5400)],
}


def mock_prometheus(mock: respx.MockRouter) -> respx.Route:
    def instant_reply(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        for prefix, rows in ANSWERS.items():
            if query.startswith(prefix) or (prefix in query and "traded_volume" in prefix):
                return httpx.Response(200, json=vector(rows))
        if "exchange_api_up" in query:
            return httpx.Response(200, json=vector([({"exchange": "binance"}, 1.0)]))
        return httpx.Response(200, json=vector([]))

    mock.get(f"{PROM}/api/v1/query_range").mock(return_value=httpx.Response(200, json=EMPTY_MATRIX))
    return mock.get(f"{PROM}/api/v1/query").mock(side_effect=instant_reply)


def build(alert: Alert) -> tuple[Context, str]:
    async def go() -> tuple[Context, str]:
        async with httpx.AsyncClient() as client:
            builder = ContextBuilder(client, PROM, deadline=5.0, clock=lambda: NOW)
            return await builder.fetch(alert)

    return asyncio.run(go())


def queries_of(route: respx.Route) -> list[str]:
    return [call.request.url.params["query"] for call in route.calls]


# --- the plan ---------------------------------------------------------------------------------


def test_plan_per_alert() -> None:
    def names(alertname: str, **labels: str) -> set[str]:
        return set(market_queries(alertname, labels, promql_string))

    assert len(names("ExchangePriceDeviation", **LABELS)) == 8
    assert names("ExchangeBookCrossed", **LABELS) == names("ExchangePriceDeviation", **LABELS)
    assert len(names("ExchangePriceSpike", **LABELS)) == 5
    assert names("ExchangeVolumeSpike", **LABELS) == names("ExchangePriceSpike", **LABELS)
    assert names("ExchangeRateLimitExhaustionPredicted", exchange="okx", window="2s") == {
        "rl_used",
        "rl_limit",
        "rl_slope",
    }
    assert names("ExchangeMaintenanceScheduled", exchange="okx") == {"mt_start", "mt_end"}
    assert names("ExchangeRateLimitExhaustionPredicted", exchange="okx") == set()  # no window
    assert names("ExchangePriceSpike", exchange="okx") == set()  # no price_group
    assert names("ExchangeApiDown", **LABELS) == set()
    assert names("ExchangePriceDeviation", **LABELS) | names(
        "ExchangeRateLimitExhaustionPredicted", exchange="x", window="1m"
    ) | names("ExchangeMaintenanceScheduled", exchange="x") == set(MARKET_QUERY_NAMES)


def test_hostile_labels_are_escaped_in_promql() -> None:
    hostile = '"} or vector(1) or {a="'
    queries = market_queries(
        "ExchangePriceDeviation", {"exchange": "binance", "price_group": hostile}, promql_string
    )
    expected = 'price_group="\\"} or vector(1) or {a=\\""'
    group_queries = [q for q in queries.values() if "price_group=" in q]
    assert len(group_queries) == 5
    assert all(q.count(expected) == q.count("price_group=") for q in group_queries)
    too_long = {"exchange": "binance", "price_group": "x" * 201}
    assert set(market_queries("ExchangePriceSpike", too_long, promql_string)) == set()


# --- the builder ------------------------------------------------------------------------------


def test_context_gathers_the_market_series() -> None:
    with respx.mock() as mock:
        route = mock_prometheus(mock)
        ctx, status = build(market_alert(**LABELS))
    assert status == "ok"
    market = ctx.market
    assert market is not None
    assert (market.exchange, market.market, market.price_group) == (
        "binance",
        "BTC/USDT",
        "BTC/USD",
    )
    own = market.own()
    assert own is not None and own.mid == 100_500.0 and own.age == 400.0
    assert own.mid_before == 100_500.0 and own.volume_ratio == 1.5
    assert {q.exchange for q in market.others()} == {"bybit", "okx", "kraken"}
    assert market.medians == {"BTC/USD": 100_000.0}
    assert [v.market for v in market.venue] == ["BTC/USDT"]
    assert ctx.fields["market"].startswith("BTC/USDT on binance: bid 100,499.5 ask 100,500.5")
    assert "3 other venues, median mid 100,000 (+50 bps)" in ctx.fields["market"]
    assert "market: BTC/USDT on binance" in ctx.summary
    market_calls = [q for q in queries_of(route) if "exchange_market" in q]
    assert len(market_calls) == 8
    assert all('price_group="BTC/USD"' in q or "exchange" in q for q in market_calls)

    d = diagnose_with_rules(market_alert(**LABELS), context=ctx)
    assert d.root_cause_category == "data_quality"
    assert "last updated 400 s ago" in d.diagnosis
    assert d.action_items[0].startswith("Binance's quote is stale")


def test_context_of_the_rate_limit_and_maintenance_alerts() -> None:
    with respx.mock() as mock:
        mock_prometheus(mock)
        rate, _ = build(
            market_alert("ExchangeRateLimitExhaustionPredicted", exchange="binance", window="1m")
        )
        maintenance, _ = build(market_alert("ExchangeMaintenanceScheduled", exchange="binance"))
    assert rate.market is not None
    assert (rate.market.used, rate.market.limit, rate.market.slope_per_second) == (
        4800.0,
        6000.0,
        10.0,
    )
    assert rate.market.window == "1m"
    assert "1m window 4,800/6,000 used" in rate.fields["market"]
    assert maintenance.market is not None
    assert maintenance.market.maintenance_start == NOW + 1800
    assert (
        "maintenance announced from 2026-11-21 07:54 UTC to 2026-11-21 08:54 UTC"
        in (maintenance.fields["market"])
    )
    d = diagnose_with_rules(
        market_alert("ExchangeMaintenanceScheduled", exchange="binance"), context=maintenance
    )
    assert "it starts in about 30 min" in d.diagnosis


def test_other_alerts_query_no_market_series() -> None:
    with respx.mock() as mock:
        route = mock_prometheus(mock)
        ctx, _ = build(market_alert("ExchangeApiDown", **LABELS))
    assert ctx.market is None
    assert not [q for q in queries_of(route) if "exchange_market" in q]


def test_market_without_data_gives_no_state() -> None:
    assert market_state(LABELS, {"mkt_bid": None}, lambda _: [], NOW, str) is None


# --- helpers ----------------------------------------------------------------------------------


def test_median_and_rendering() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([1.0, 2.0, 3.0, 4.0]) == 2.5
    state = MarketState(
        exchange="okx",
        market="ETH/USDT",
        price_group="ETH/USD",
        quotes=[VenueQuote(exchange="okx", market="ETH/USDT", bid=1.0, ask=2.0)],
    )
    assert render_market_state(state) == "ETH/USDT on okx: bid 1 ask 2"
    assert len(render_market_state(state.model_copy(update={"market": "x" * 500}))) <= 300
