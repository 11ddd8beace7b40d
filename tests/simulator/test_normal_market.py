"""The normal market (no fault) stays well within the market-integrity thresholds: measured over
simulated time with :func:`simulator.market_stats.measure` (no clock, no server).

Shipped thresholds (``prometheus/thresholds.yml``): price deviation 50 bps (the model should stay
under ~25), return spike 6 σ and 20 bps for BTC, volume spike 3× the hour's average."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from simulator.market import Market, reference_price
from simulator.market_model import WALK_SIGMA_1M, volume_intensity, walk
from simulator.market_stats import measure

STARTS = (1_767_225_600.0, 1_767_400_000.0)
"""Two 30-minute windows (2026-01-01 00:00 UTC and two days later): different walks."""


@pytest.mark.parametrize("start", STARTS)
def test_thirty_normal_minutes_stay_within_the_thresholds(start: float) -> None:
    stats = measure(start, 30.0)
    assert stats.max_deviation_bps <= 25.0, stats
    assert stats.max_return_z < 6.0, stats
    assert stats.max_btc_return_bps < 20.0, stats
    assert stats.max_volume_ratio < 3.0, stats
    # ... and the market is not flat: prices move and volume is bursty
    assert stats.max_return_z > 1.5 and stats.max_btc_return_bps > 3.0, stats
    assert stats.max_volume_ratio > 1.2, stats


def test_walk_is_a_calibrated_random_walk() -> None:
    t0 = 1_767_225_600.0
    one = [walk(t0 + 60 * i + 60, 7) - walk(t0 + 60 * i, 7) for i in range(3000)]
    assert statistics.pstdev(one) == pytest.approx(WALK_SIGMA_1M, rel=0.25)
    ten = [walk(t0 + 600 * i + 600, 7) - walk(t0 + 600 * i, 7) for i in range(3000)]
    # random-walk scaling: 10-minute increments ~ sqrt(10) × the 1-minute ones
    assert statistics.pstdev(ten) / statistics.pstdev(one) == pytest.approx(math.sqrt(10), rel=0.3)
    assert walk(t0, 7) == walk(t0, 7) and walk(t0, 7) != walk(t0, 8)


def test_volume_intensity_clusters_around_one() -> None:
    t0 = 1_767_225_600.0
    values = [volume_intensity(t0 + 5 * i, 11) for i in range(20_000)]
    assert statistics.fmean(values) == pytest.approx(1.0, abs=0.1)
    assert min(values) > 0.2 and max(values) < 5.0
    # clustered: neighbours 5 s apart are strongly correlated
    pairs = list(itertools.pairwise(values))
    assert statistics.correlation([a for a, _ in pairs], [b for _, b in pairs]) > 0.9


def test_basis_keeps_exchanges_close_and_prices_plausible() -> None:
    market = Market()
    t_ms = 1_767_225_600_000
    mids = {
        ex: (v.best_bid + v.best_ask) / 2.0
        for ex in market.instruments
        for v in [market.view(ex, t_ms)]
    }
    ref = reference_price(t_ms / 1000.0)
    assert all(abs(m / ref - 1.0) * 1e4 < 5.0 for m in mids.values()), mids
    assert 60_000 < ref < 70_000
