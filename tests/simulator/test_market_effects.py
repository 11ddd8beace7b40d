"""Market-model faults without a server: validation (errors name the field and the value), the
effects timeline and what a :class:`~simulator.market.Market` view shows under each fault."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.exchanges import build_exchanges
from simulator.faults import MARKET_FAULT_KINDS, FaultError, FaultRegistry
from simulator.market import TICK_MS, Market
from simulator.market_effects import MarketEffects, spike_shape

T0_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z
T0_MS = int(T0_S * 1000)


def registry(market: Market) -> FaultRegistry:
    exchanges = build_exchanges(market)
    return FaultRegistry(
        {name: ex.endpoints for name, ex in exchanges.items()},
        validators={name: ex.fault_params for name, ex in exchanges.items()},
        effects=market.effects,
    )


def mid(market: Market, exchange: str, t_ms: float) -> float:
    v = market.view(exchange, t_ms)
    return (v.best_bid + v.best_ask) / 2.0


def ratios(market: Market, exchange: str, seconds: tuple[int, ...]) -> list[float]:
    """Mid under ``market``'s faults / the normal mid, ``seconds`` after T0."""
    normal = Market()
    return [
        mid(market, exchange, T0_MS + s * 1000) / mid(normal, exchange, T0_MS + s * 1000)
        for s in seconds
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fault": "price_offset"}, "bps: required for fault 'price_offset'"),
        ({"fault": "price_offset", "bps": 10_001}, "bps: must be a number between"),
        ({"fault": "price_offset", "bps": -10_000}, "bps: must be greater than -10000"),
        ({"fault": "price_offset", "bps": "5"}, "bps: must be a number, got '5'"),
        ({"fault": "price_offset", "bps": True}, "bps: must be a number, got True"),
        ({"fault": "price_offset", "bps": 5, "ramp_s": -1}, "ramp_s: must be a number between"),
        ({"fault": "price_offset", "bps": 5, "ratio": 2}, "ratio: unexpected field"),
        ({"fault": "price_spike", "bps": -300}, "duration_s: required for fault 'price_spike'"),
        ({"fault": "price_spike", "duration_s": 60}, "bps: required for fault 'price_spike'"),
        (
            {"fault": "price_spike", "bps": 20_000, "duration_s": 60},
            "bps: must be a number between -10000 and 10000, got 20000",
        ),
        ({"fault": "volume_spike"}, "ratio: required for fault 'volume_spike'"),
        ({"fault": "volume_spike", "ratio": 0}, "ratio: must be greater than 0, got 0"),
        ({"fault": "volume_spike", "ratio": -2}, "ratio: must be a number between"),
        ({"fault": "volume_spike", "ratio": 1001}, "ratio: must be a number between 0 and 1000"),
        ({"fault": "book_crossed", "bps": 3}, "bps: unexpected field for fault 'book_crossed'"),
        ({"fault": "price_freeze", "age_s": 3}, "age_s: unexpected field"),
        (
            {"fault": "price_offset", "bps": 5, "endpoint": "ticker"},
            "endpoint: market faults change the exchange's whole market",
        ),
    ],
)
def test_market_fault_validation_names_field_and_value(spec: dict[str, Any], message: str) -> None:
    faults = registry(Market())
    with pytest.raises(FaultError) as err:
        faults.apply({"exchange": "binance", **spec})
    assert str(err.value).startswith(message), str(err.value)
    assert faults.active() == []


def test_market_faults_have_their_own_scopes() -> None:
    market = Market()
    faults = registry(market)
    faults.apply({"exchange": "okx", "fault": "latency", "latency_ms": 5})
    faults.apply({"exchange": "okx", "fault": "ws_stall"})
    for kind, params in (
        ("price_offset", {"bps": 50}),
        ("volume_spike", {"ratio": 3}),
        ("book_crossed", {}),
    ):
        faults.apply({"exchange": "okx", "fault": kind, **params})
    kinds = sorted(f.kind for f in faults.active())
    assert kinds == ["book_crossed", "latency", "price_offset", "volume_spike", "ws_stall"]
    effective = faults.effective("okx", "ticker")
    assert effective is not None and effective.kind == "latency"  # REST fault not replaced
    faults.apply({"exchange": "okx", "fault": "price_offset", "bps": -20})  # replaces its kind
    offsets = [f.params["bps"] for f in faults.active() if f.kind == "price_offset"]
    assert offsets == [-20]
    faults.apply({"exchange": "okx", "fault": "none"})
    assert faults.active() == []
    assert set(MARKET_FAULT_KINDS) <= {"price_offset", "price_spike", "price_freeze",
                                       "volume_spike", "book_crossed"}  # fmt: skip


def test_effects_start_at_the_next_tick_and_past_ticks_stay_as_served() -> None:
    market = Market()
    before = market.view("binance", T0_MS).best_bid
    market.effects.set("binance", "price_offset", {"bps": 100}, T0_S + 0.05)
    assert market.view("binance", T0_MS).best_bid == before  # tick 0 was before the fault
    shifted = mid(market, "binance", T0_MS + TICK_MS)
    assert shifted / mid(Market(), "binance", T0_MS + TICK_MS) == pytest.approx(1.01, abs=2e-4)
    market.effects.end("binance", T0_S + 0.25)  # ends at the tick boundary after 0.25 s
    assert mid(market, "binance", T0_MS + 2 * TICK_MS) == pytest.approx(shifted, rel=5e-4)
    assert mid(market, "binance", T0_MS + 3 * TICK_MS) == mid(Market(), "binance", T0_MS + 300)
    fresh_after = mid(market, "binance", T0_MS + TICK_MS)  # rebuilt after the clear: same
    assert fresh_after == shifted


def test_price_offset_shifts_every_price_and_ramps_both_ways() -> None:
    market, normal = Market(), Market()
    market.effects.set("kraken", "price_offset", {"bps": -250}, T0_S - 1)
    v, n = market.view("kraken", T0_MS), normal.view("kraken", T0_MS)
    for shifted, base in ((v.best_bid, n.best_bid), (v.best_ask, n.best_ask), (v.last, n.last)):
        assert shifted / base == pytest.approx(0.975, abs=1e-4)
    bids, asks = v.levels(5)
    assert float(bids[0][0]) == pytest.approx(v.best_bid) and float(asks[0][0]) > v.best_bid
    ramp = Market()
    ramp.effects.set("okx", "price_offset", {"bps": 100, "ramp_s": 10}, T0_S - 0.05)
    assert ratios(ramp, "okx", (5, 10, 20)) == pytest.approx([1.005, 1.01, 1.01], abs=3e-5)
    ramp.effects.set("okx", "price_offset", {"bps": 0, "ramp_s": 10}, T0_S + 29.95)
    assert ratios(ramp, "okx", (30, 35, 40)) == pytest.approx([1.01, 1.005, 1.0], abs=3e-5)


def test_price_spike_moves_then_decays_back() -> None:
    assert spike_shape(0.0, 60.0) == 0.0
    assert spike_shape(2.0, 60.0) == pytest.approx(1.0)
    assert spike_shape(31.0, 60.0) == pytest.approx(0.25)
    assert spike_shape(60.0, 60.0) == 0.0
    market = Market()
    market.effects.set("bybit", "price_spike", {"bps": -400, "duration_s": 60}, T0_S - 0.05, 60)
    moves = [(r - 1.0) * 1e4 for r in ratios(market, "bybit", (2, 31, 61))]
    assert moves == pytest.approx([-400, -100, 0], abs=1)


def test_price_freeze_holds_prices_while_time_moves_on() -> None:
    market = Market()
    market.effects.set("coinbase", "price_freeze", {}, T0_S - 0.05)
    views = [market.view("coinbase", T0_MS + s * 1000) for s in range(0, 120, 7)]
    assert len({(v.best_bid, v.best_ask, v.last) for v in views}) == 1
    assert len({v.trade_id for v in views}) == len(views)
    assert len({v.update_id for v in views}) == len(views)
    normal = Market()
    assert len({normal.view("coinbase", T0_MS + s * 1000).best_bid for s in range(0, 120, 7)}) > 5


def test_book_crossed_puts_the_best_ask_below_the_best_bid() -> None:
    market = Market()
    market.effects.set("okx", "book_crossed", {}, T0_S - 0.05)
    for name in market.markets("okx"):
        v = market.view("okx", T0_MS, name)
        bids, asks = v.levels(10)
        assert v.best_bid > v.best_ask
        assert float(bids[0][0]) > float(asks[0][0])
        assert [float(p) for p, *_ in bids] == sorted((float(p) for p, *_ in bids), reverse=True)


def test_volume_spike_scales_trade_sizes_and_the_rolling_volume() -> None:
    market, normal = Market(), Market()
    market.effects.set("binance", "volume_spike", {"ratio": 5}, T0_S - 0.05, 600)
    v, n = market.view("binance", T0_MS + 60_000), normal.view("binance", T0_MS + 60_000)
    assert v.volume_mult == pytest.approx(5 * n.volume_mult)
    assert v.last_qty == pytest.approx(5 * n.last_qty, rel=1e-3)
    grown = v.volume_24h - n.volume_24h
    assert grown == pytest.approx(n.volume_24h * 4 * 60 / 86_400, rel=1e-3)
    later = market.view("binance", T0_MS + 3_600_000)  # ended at 600 s: the extra stays 24 h
    base = normal.view("binance", T0_MS + 3_600_000)
    assert later.volume_mult == pytest.approx(base.volume_mult)
    extra = base.volume_24h * 4 * 600 / 86_400
    assert later.volume_24h - base.volume_24h == pytest.approx(extra, rel=1e-3)


def test_timeline_versions_and_unapplied_spans() -> None:
    effects = MarketEffects()
    version = effects.version
    effects.set("okx", "book_crossed", {}, T0_S)
    effects.end("okx", T0_S)  # ended before its first tick: forgotten
    assert effects.version > version
    assert effects.at("okx", T0_MS + TICK_MS) is None
    assert effects.at("binance", T0_MS) is None
    assert effects.extra_volume_24h("okx", T0_MS) == 0.0
