"""The market benchmark's pieces that need no stack: thresholds, queries, the section."""

from __future__ import annotations

from pathlib import Path

from benchmarks import bench_market

ROOT = Path(__file__).resolve().parents[2]


def test_reads_the_shipped_thresholds() -> None:
    thresholds = bench_market.shipped_thresholds()
    assert set(thresholds) == {
        "price_deviation_bps",
        "price_spike_sigma",
        "price_spike_min_bps",
        "volume_spike_ratio",
    }
    assert all(value > 0 for value in thresholds.values())


def test_queries_name_recording_rules_that_exist() -> None:
    rules = "\n".join(p.read_text() for p in (ROOT / "prometheus" / "rules").glob("*.yml"))
    for name in (
        bench_market.DEVIATION,
        bench_market.RETURN,
        bench_market.RETURN_STDDEV,
        bench_market.VOLUME_RATIO,
        bench_market.VOLUME_RATE,
    ):
        assert f"record: {name}\n" in rules, name
    queries = bench_market.extremes_queries(1800)
    assert "[1800s:15s]" in queries["deviation_bps"] and "[1200s:15s]" in queries["return_z"]
    assert "[1200s:15s]" in queries["volume_ratio"]


def test_market_alerts_are_the_shipped_ones() -> None:
    rules = "\n".join(p.read_text() for p in (ROOT / "prometheus" / "rules").glob("*.yml"))
    for alert in bench_market.MARKET_ALERTS:
        assert f"alert: {alert}\n" in rules, alert


def test_section_reports_figures_against_thresholds_and_alerts() -> None:
    thresholds = {
        "price_deviation_bps": 50.0,
        "price_spike_sigma": 6.0,
        "price_spike_min_bps": 50.0,
        "volume_spike_ratio": 5.0,
    }
    quiet = {
        "alerts": {},
        "extremes": {
            "deviation_bps": 12.0,
            "return_z": 3.1,
            "return_bps": 8.0,
            "volume_ratio": 1.9,
        },
        "minutes": 30.0,
    }
    result = bench_market.build_section(quiet, thresholds)
    assert all(t["met"] for t in result["targets"])
    assert [r["threshold"] for r in result["rows"]] == [50.0, 6.0, 50.0, 5.0]
    noisy = {**quiet, "alerts": {("ExchangePriceSpike", "okx", "BTC/USDT"): "firing"}}
    result = bench_market.build_section(noisy, thresholds)
    assert not result["targets"][0]["met"]
    assert "ExchangePriceSpike okx BTC/USDT (firing)" in " ".join(result["notes"])
