"""Market-integrity alerts: their knowledge entries and the causes told apart from the context."""

from __future__ import annotations

import pytest

from receiver.diagnosis.knowledge import KNOWLEDGE_BASE, fill, lookup_rule
from receiver.diagnosis.knowledge.alerts import ALERTS
from receiver.diagnosis.knowledge.market import MARKET_ALERT_NAMES, MARKET_ALERTS
from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import ROOT_CAUSE_CATEGORIES, Context, MarketState, VenueQuote
from receiver.models import Alert

NOW = 1_800_000_000.0
VALUES = {"exchange": "Binance", "endpoint": "(all endpoints)", "severity": "warning"}

#: alert → (root cause category, severities of the rule file).
MARKET_SPEC: dict[str, tuple[str, tuple[str, ...]]] = {
    "ExchangePriceDeviation": ("data_quality", ("warning", "critical")),
    "ExchangePriceSpike": ("data_quality", ("warning",)),
    "ExchangeVolumeSpike": ("rate_limit", ("warning",)),
    "ExchangeBookCrossed": ("data_quality", ("warning",)),
    "ExchangeRateLimitExhaustionPredicted": ("rate_limit", ("warning",)),
    "ExchangeMaintenanceScheduled": ("maintenance", ("info",)),
}


def market_alert(alertname: str, severity: str = "warning", **labels: str) -> Alert:
    base = {"alertname": alertname, "severity": severity, "exchange": "binance"}
    if alertname not in ("ExchangeRateLimitExhaustionPredicted", "ExchangeMaintenanceScheduled"):
        base |= {"market": "BTC/USDT", "price_group": "BTC/USD"}
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": base | labels,
            "annotations": {"summary": f"{alertname} summary"},
            "startsAt": "2027-01-15T08:00:00Z",
            "fingerprint": "m1",
        }
    )


def q(
    exchange: str,
    mid: float,
    *,
    market: str = "BTC/USDT",
    before: float | None = None,
    age: float | None = 1.0,
    ratio: float | None = None,
    spread: float = 1.0,
    group: str = "BTC/USD",
) -> VenueQuote:
    """A quote around ``mid``; ``before`` is the mid 5 minutes earlier (default: unchanged)."""
    return VenueQuote(
        exchange=exchange,
        market=market,
        price_group=group,
        bid=mid - spread / 2,
        ask=mid + spread / 2,
        mid_before=mid if before is None else before,
        age=age,
        volume_ratio=ratio,
    )


def others(mid: float = 100_000.0, before: float | None = None, **kw: float) -> list[VenueQuote]:
    return [
        q("bybit", mid, before=before, **kw),
        q("okx", mid + 5, before=None if before is None else before + 5, **kw),
        q("kraken", mid - 5, market="BTC/USD", before=None if before is None else before - 5),
    ]


def context(state: MarketState) -> Context:
    return Context(exchange="binance", end=NOW, market=state)


def state(quotes: list[VenueQuote], **kw: object) -> MarketState:
    fields: dict[str, object] = {
        "exchange": "binance",
        "market": "BTC/USDT",
        "price_group": "BTC/USD",
        "at": NOW,
    }
    return MarketState.model_validate(fields | {"quotes": quotes} | kw)


def diagnose(alertname: str, st: MarketState | None, **labels: str) -> tuple[str, str, list[str]]:
    """``(root cause, diagnosis text, action items)`` of the rules for ``alertname``."""
    ctx = context(st) if st is not None else None
    d = diagnose_with_rules(market_alert(alertname, **labels), context=ctx)
    return d.root_cause_category, d.diagnosis, d.action_items


# --- the entries ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MARKET_SPEC))
def test_each_market_alert_has_its_entry(name: str) -> None:
    category, severities = MARKET_SPEC[name]
    entry = KNOWLEDGE_BASE[name]
    assert lookup_rule(name) is entry  # by name, not by a keyword ("ratelimit", "maintenance")
    assert entry.category == category and entry.category in ROOT_CAUSE_CATEGORIES
    assert set(entry.severities) == set(severities)
    assert entry.scope == "exchange" and entry.source == "prometheus"
    assert not entry.symptom and not entry.blame_network
    for template in (entry.diagnosis, entry.impact, entry.rollback, *entry.actions):
        assert "{" not in fill(template, VALUES)


def test_market_entries_are_registered_with_the_other_alerts() -> None:
    assert {e.name for e in MARKET_ALERTS} == set(MARKET_SPEC) == MARKET_ALERT_NAMES
    assert all(entry in ALERTS for entry in MARKET_ALERTS)


@pytest.mark.parametrize("severity", ["warning", "critical"])
def test_price_deviation_root_cause_is_data_quality(severity: str) -> None:
    """The e2e acceptance: price_offset on one exchange → ExchangePriceDeviation, data_quality."""
    d = diagnose_with_rules(market_alert("ExchangePriceDeviation", severity))
    assert d.root_cause_category == "data_quality" and d.source == "rules"
    assert d.confidence >= 0.7
    assert "market=BTC/USDT" in d.diagnosis and "price_group=BTC/USD" in d.diagnosis
    with_context = diagnose_with_rules(
        market_alert("ExchangePriceDeviation", severity),
        context=context(state([q("binance", 100_500.0), *others()])),
    )
    assert with_context.root_cause_category == "data_quality"
    assert with_context.confidence > d.confidence  # the context confirms the deviation


def test_volume_spike_is_a_rate_limit_early_warning() -> None:
    category, text, actions = diagnose("ExchangeVolumeSpike", None)
    assert category == "rate_limit"
    assert any("request weight" in a for a in actions)
    assert any("wider spreads" in a for a in actions)
    assert "prelude to rate-limit trouble" in text


# --- ExchangePriceDeviation -------------------------------------------------------------------


def test_deviation_numbers_are_stated() -> None:
    _, text, _ = diagnose("ExchangePriceDeviation", state([q("binance", 100_500.0), *others()]))
    assert "BTC/USDT on Binance: mid 100,500 against a median of 100,000 over 3 other" in text
    assert "3 other fresh venues (+50 bps)" in text


def test_deviation_with_a_stale_ticker() -> None:
    st = state([q("binance", 100_500.0, age=400.0), *others()])
    category, text, actions = diagnose("ExchangePriceDeviation", st)
    assert category == "data_quality"
    assert "last updated 400 s ago" in text and "stale ticker" in text
    assert actions[0].startswith("Binance's quote is stale")


def test_deviation_with_a_stuck_feed() -> None:
    """Its mid stayed put while the others fell 100 bps: stuck, not stale (it still updates)."""
    st = state([q("binance", 100_000.0), *others(mid=99_000.0, before=100_000.0)])
    _, text, actions = diagnose("ExchangePriceDeviation", st)
    assert "has not moved over the last 5 minutes" in text and "stuck feed" in text
    assert actions[0].startswith("Binance's price is frozen")
    assert "last updated" not in text


def test_deviation_far_beyond_drift_is_a_mapping_error() -> None:
    st = state([q("binance", 3_500.0), *others()])  # ETH price mapped to BTC
    _, text, actions = diagnose("ExchangePriceDeviation", st)
    assert "wrong market mapping" in text
    assert actions[0].startswith("Check the market mapping of Binance")


def test_deviation_shared_by_the_venue_is_a_basis() -> None:
    """ETH/USDT on the same venue is off by the same 50 bps: the USDT price there, a de-peg."""
    venue = [
        q("binance", 100_500.0, group="BTC/USD"),
        q("binance", 3_015.0, market="ETH/USDT", group="ETH/USD"),
    ]
    st = state(
        [q("binance", 100_500.0), *others()],
        venue=venue,
        medians={"BTC/USD": 100_000.0, "ETH/USD": 3_000.0},
    )
    _, text, actions = diagnose("ExchangePriceDeviation", st)
    assert "Other markets of Binance are off by about the same (ETH/USDT)" in text
    assert "stablecoin de-peg" in text
    assert actions[0].startswith("Check the stablecoin basis on Binance")


def test_deviation_of_one_market_only_is_not_a_basis() -> None:
    venue = [q("binance", 3_000.0, market="ETH/USDT", group="ETH/USD")]
    st = state([q("binance", 100_500.0), *others()], venue=venue, medians={"ETH/USD": 3_000.0})
    _, text, _ = diagnose("ExchangePriceDeviation", st)
    assert "off by about the same" not in text


def test_deviation_of_a_different_quote_currency_names_the_basis() -> None:
    st = state(
        [q("binance", 100_500.0, market="BTC/USD"), *others()[:2]],
        market="BTC/USD",
    )
    _, text, _ = diagnose("ExchangePriceDeviation", st, market="BTC/USD")
    assert "quoted in USD while the others quote USDT" in text


def test_deviation_with_one_other_venue_cannot_tell_who_is_wrong() -> None:
    st = state([q("binance", 100_500.0), q("bybit", 100_000.0), q("okx", 100_000.0, age=900.0)])
    _, text, _ = diagnose("ExchangePriceDeviation", st)
    assert "over 1 other fresh venues" in text
    assert "nobody can tell which price is wrong" in text


# --- ExchangePriceSpike -----------------------------------------------------------------------


def test_spike_on_the_venue_alone() -> None:
    st = state([q("binance", 101_000.0, before=100_000.0), *others()])
    category, text, actions = diagnose("ExchangePriceSpike", st)
    assert category == "data_quality"
    assert "moved +100 bps" in text and "on Binance alone" in text and "flash print" in text
    assert actions[0].startswith("Stop quoting")


def test_spike_that_every_venue_shows_is_a_market_move() -> None:
    st = state([q("binance", 101_000.0, before=100_000.0), *others(101_000.0, 100_000.0)])
    _, text, actions = diagnose("ExchangePriceSpike", st)
    assert "a market-wide move that every venue shows" in text
    assert actions[0].startswith("A market-wide move, not a data fault")


def test_spike_against_an_opposite_move_is_the_venue() -> None:
    st = state([q("binance", 101_000.0, before=100_000.0), *others(99_000.0, 100_000.0)])
    _, text, _ = diagnose("ExchangePriceSpike", st)
    assert "on Binance alone" in text


# --- ExchangeVolumeSpike ----------------------------------------------------------------------


def test_volume_surge_everywhere() -> None:
    st = state([q("binance", 100_000.0, ratio=6.0), *others(ratio=4.0)])
    category, text, _ = diagnose("ExchangeVolumeSpike", st)
    assert category == "rate_limit"
    assert "×6 its 1-hour volume rate" in text
    assert "other venues surge too: a market-wide surge" in text


def test_volume_surge_on_one_venue() -> None:
    st = state([q("binance", 100_000.0, ratio=6.0), *others(ratio=1.1)])
    _, text, _ = diagnose("ExchangeVolumeSpike", st)
    assert "the other venues do not" in text and "local event on Binance" in text


# --- ExchangeBookCrossed ----------------------------------------------------------------------


def test_crossed_book_with_a_stale_side() -> None:
    st = state([q("binance", 100_000.0, spread=-20.0, age=120.0), *others()])
    category, text, actions = diagnose("ExchangeBookCrossed", st)
    assert category == "data_quality"
    assert "bid 100,010 ≥ ask 99,990 (crossed by 2.0 bps) now" in text
    assert "missed update" in text
    assert actions[0].startswith("Resynchronise the book")


def test_several_crossed_markets_point_at_the_venue_feed() -> None:
    venue = [
        q("binance", 100_000.0, spread=-20.0),
        q("binance", 3_000.0, market="ETH/USDT", spread=-2.0, group="ETH/USD"),
        q("binance", 150.0, market="SOL/USDT", group="SOL/USD"),
    ]
    st = state([q("binance", 100_000.0, spread=-20.0), *others()], venue=venue)
    _, text, _ = diagnose("ExchangeBookCrossed", st)
    assert "2 of 3 markets of Binance are crossed at once" in text
    assert "missed update" not in text


def test_book_no_longer_crossed() -> None:
    _, text, _ = diagnose("ExchangeBookCrossed", state([q("binance", 100_000.0), *others()]))
    assert "no longer crossed" in text


# --- ExchangeRateLimitExhaustionPredicted -----------------------------------------------------


def test_rate_limit_forecast_names_the_window() -> None:
    st = state([], window="1m", used=4800.0, limit=6000.0, slope_per_second=10.0)
    category, text, actions = diagnose("ExchangeRateLimitExhaustionPredicted", st, window="1m")
    assert category == "rate_limit"
    assert "The 1m window of Binance: 4,800 of 6,000 used (80%)" in text
    assert "rising 600/min: the limit is reached in about 2 min" in text
    assert actions[0].startswith("Throttle the bots on this IP now for the 1m window of Binance")
    assert "labels: exchange=binance, window=1m" in text


def test_rate_limit_forecast_no_longer_rising_or_reached() -> None:
    flat = state([], window="1m", used=3000.0, limit=6000.0, slope_per_second=-1.0)
    _, text, _ = diagnose("ExchangeRateLimitExhaustionPredicted", flat, window="1m")
    assert "no longer rising" in text
    full = state([], window="1m", used=6000.0, limit=6000.0, slope_per_second=5.0)
    _, text, _ = diagnose("ExchangeRateLimitExhaustionPredicted", full, window="1m")
    assert "already reached" in text


# --- ExchangeMaintenanceScheduled -------------------------------------------------------------


def test_maintenance_ahead() -> None:
    st = state([], maintenance_start=NOW + 1500, maintenance_end=NOW + 1500 + 3600)
    category, text, actions = diagnose("ExchangeMaintenanceScheduled", st, severity="info")
    assert category == "maintenance"
    assert "announces maintenance from 2027-01-15 08:25 UTC to 2027-01-15 09:25 UTC" in text
    assert "(60 min): it starts in about 25 min" in text
    assert actions[0].startswith("Pause the strategies on Binance before 2027-01-15 08:25 UTC")


def test_maintenance_already_started() -> None:
    st = state([], maintenance_start=NOW - 60, maintenance_end=NOW + 600)
    _, text, actions = diagnose("ExchangeMaintenanceScheduled", st)
    assert "the window has started - expect ExchangeMaintenance" in text
    assert actions[0].startswith("The maintenance of Binance has started")


# --- untrusted labels -------------------------------------------------------------------------


def test_hostile_labels_are_cleaned_and_capped() -> None:
    hostile = "BTC/USDT\x1b[31m<script>{exchange}" + "x" * 500
    d = diagnose_with_rules(
        market_alert("ExchangePriceDeviation", market=hostile, price_group="{severity}\n" * 50)
    )
    assert "\x1b" not in d.diagnosis and "x" * 100 not in d.diagnosis
    assert d.root_cause_category == "data_quality"
    st = state([q("binance", 100_500.0, market=hostile[:64]), *others()], market=hostile[:64])
    d = diagnose_with_rules(
        market_alert("ExchangePriceDeviation", market=hostile), context=context(st)
    )
    assert "{exchange}" in d.diagnosis  # a label value is quoted, never filled as a template
    assert "Binance" in d.diagnosis
