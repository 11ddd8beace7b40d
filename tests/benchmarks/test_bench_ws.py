"""Smoke test of the WebSocket benchmark (``benchmarks/bench_ws.py`` and its ``ws_*`` helpers):
the feed through the exporter's real dialects and books, the lag pairing, the configs it runs,
the section it returns, and (e2e) one short sender → receiver run of each mode. The stack and
the simulator are left to ``make bench``."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import bench_ws, ws_memory, ws_runs, ws_stale
from benchmarks.ws_feed import MARKETS, BinanceFeed, BookCycle, OkxFeed, schedule
from exporter.config import load_config, parse_config
from exporter.streams.book import LocalBook
from exporter.streams.dialect import BookVerdict
from exporter.streams.dialects import get_dialect
from exporter.streams.events import CHANNELS, Data, Subscription

SUBSCRIPTIONS = [Subscription(channel, market) for channel in CHANNELS for market in MARKETS]


@pytest.mark.parametrize("base", ["BTC", "ETH", "SOL"])
def test_book_cycle_states_match_applied_deltas(base: str) -> None:
    cycle = BookCycle(base)
    book = LocalBook()
    book.replace(cycle.bids, cycle.asks)
    for m in range(1, 3 * cycle.cycle + 2):
        book.apply(*cycle.delta(m))
        assert book.top(100) == cycle.book_after(m)
        bid, ask = book.best()
        assert bid is not None and ask is not None and bid < ask
    assert cycle.book_after(cycle.cycle) == (cycle.bids, cycle.asks)


def test_okx_feed_passes_the_real_dialect_with_checksums() -> None:
    feed, dialect = OkxFeed(), get_dialect("okx")()
    dialect.subscribe_messages(SUBSCRIPTIONS)
    books = {market: dialect.new_book(market) for market in MARKETS}
    verdicts: Counter[BookVerdict] = Counter()
    for market in MARKETS:
        (event,) = dialect.parse(feed.snapshot(market, 1_700_000_000_000))
        assert isinstance(event, Data) and event.book is not None and event.book.checksum
        verdicts[books[market].apply(event.book)] += 1
    kinds: Counter[str] = Counter()
    for _ in range(60):
        for market, kind in schedule(MARKETS):
            (event,) = dialect.parse(feed.message(market, kind, 1_700_000_000_123))
            assert isinstance(event, Data) and event.gap == 0
            assert event.event_time == 1_700_000_000.123
            kinds[event.channel.value] += 1
            if event.book is not None:
                verdicts[books[market].apply(event.book)] += 1
    assert verdicts == {BookVerdict.OK: 3 + 60 * 2 * len(MARKETS)}
    assert kinds == {"ticker": 180, "trades": 180, "book": 360}


def test_binance_feed_syncs_from_a_snapshot_at_any_point() -> None:
    feed, dialect = BinanceFeed(), get_dialect("binance")()
    dialect.connect_url("ws://127.0.0.1:1", SUBSCRIPTIONS)
    dialect.subscribe_messages(SUBSCRIPTIONS)
    books = {market: dialect.new_book(market) for market in MARKETS}
    verdicts: Counter[BookVerdict] = Counter()

    def pump(rounds: int) -> None:
        for _ in range(rounds):
            for market, kind in schedule(MARKETS):
                (event,) = dialect.parse(feed.message(market, kind, 1_700_000_000_000))
                assert isinstance(event, Data)
                if event.book is not None:
                    verdicts[books[market].apply(event.book)] += 1

    pump(7)  # buffered until the snapshot, as the documented procedure says
    for market in MARKETS:
        snapshot = feed.snapshot(market.replace("/", ""))
        assert books[market].apply_snapshot(snapshot) is BookVerdict.OK
    pump(50)
    assert verdicts == {BookVerdict.BUFFERED: 7 * 2 * 3, BookVerdict.OK: 50 * 2 * 3}
    assert all(not book.needs_snapshot for book in books.values())
    with pytest.raises(KeyError):
        feed.snapshot("DOGEUSDT")


def test_acknowledgements_are_the_documented_shapes() -> None:
    assert BinanceFeed.ack(3) == '{"result":null,"id":3}'
    dialect = get_dialect("okx")()
    dialect.subscribe_messages(SUBSCRIPTIONS[:1])
    (event,) = dialect.parse(OkxFeed.ack("1", "tickers", "BTC-USDT"))
    assert type(event).__name__ == "Subscribed"


def test_lag_errors_pair_in_order_and_split_the_error() -> None:
    sent = [[1_000_000_400_000, 1_000_000], [1_000_002_900_000, 1_000_002]]  # ns, stamped ms
    arrivals = [[1_000_000_500_000, 1_000_000], [1_000_003_000_000, 1_000_002]]
    lags = [0.0008, 0.0011]  # the exporter's view: its receive time − the ms field
    errors = ws_runs.lag_errors(sent, arrivals, lags)
    assert errors.mismatched == 0
    assert errors.delay == pytest.approx([0.1, 0.1])
    assert errors.error == pytest.approx([0.7, 1.0])
    assert errors.quantisation == pytest.approx([0.4, 0.9])
    assert errors.loop == pytest.approx([0.3, 0.1])
    mismatched = ws_runs.lag_errors(sent, [[1, 999], [1_000_003_000_000, 1_000_002]], lags)
    assert mismatched.mismatched == 1 and len(mismatched.error) == 1
    with pytest.raises(ValueError, match="unpaired"):
        ws_runs.lag_errors(sent, arrivals, lags[:1])


def test_summarize_adds_rates() -> None:
    out = ws_runs.summarize({"messages": 20_000, "seconds": 2.0, "cpu_seconds": 1.0})
    assert (out["msgs_per_s"], out["cpu_us_per_msg"], out["cpu_util"]) == (10_000, 50.0, 0.5)
    assert math.isnan(
        ws_runs.summarize({"messages": 0, "seconds": 0, "cpu_seconds": 0})["msgs_per_s"]
    )


def test_memory_configs_are_valid_with_and_without_streams() -> None:
    listed = {"binance": ("BTC/USDT", "ETH/USDT"), "kraken": ("BTC/USD", "ETH/USD", "SOL/USD")}
    assert ws_memory.markets_for("binance", listed["binance"]) == (
        ["BTC/USDT", "ETH/USDT"],
        ["SOL/USDT"],
    )
    assert ws_memory.markets_for("kraken", listed["kraken"])[1] == []
    markets = {v: [f"BTC/{q}", f"ETH/{q}"] for v, q in ws_memory.QUOTES.items()}
    base = "http://127.0.0.1:8123"
    without = ws_memory.config(base, markets, streams=False)
    with_streams = ws_memory.config(base, markets, streams=True)
    assert all("websocket" not in e for e in without["exchanges"])
    urls = {e["name"]: e["websocket"]["url"] for e in with_streams["exchanges"]}
    assert urls["coinbase"] == "ws://127.0.0.1:8123/coinbase/ws"
    assert urls["okx"] == "ws://127.0.0.1:8123/okx"
    plans = parse_config(with_streams).stream_plans()
    assert sorted(plans) == sorted(ws_memory.QUOTES)
    assert all(len(p.channels) == 3 and len(p.markets) == 2 for p in plans.values())
    assert parse_config(without).stream_plans() == {}


def test_memory_readiness_from_metrics() -> None:
    up = {
        "exchange_ws_connected": [({"exchange": "a"}, 1.0), ({"exchange": "b"}, 1.0)],
        "exchange_ws_messages_total": [({"exchange": "a"}, 5.0), ({"exchange": "b"}, 2.0)],
    }
    assert ws_memory.streams_flowing(up, 2)
    assert not ws_memory.streams_flowing(up, 3)
    quiet = {**up, "exchange_ws_messages_total": [({"exchange": "a"}, 0.0)]}
    assert not ws_memory.streams_flowing(quiet, 2)
    probes = {"exchange_api_requests_total": [({"exchange": "a"}, 1.0)]}
    assert ws_memory.probes_running(probes, 1) and not ws_memory.probes_running(probes, 2)


def test_stale_pieces_follow_the_shipped_configs() -> None:
    with tempfile.TemporaryDirectory() as name:
        path = ws_stale.derived_config(8124, Path(name))
        plans = load_config(path).stream_plans()
    assert plans["kraken"].url == "ws://127.0.0.1:8124/kraken"
    assert plans["coinbase"].url == "ws://127.0.0.1:8124/coinbase/ws"
    rule = ws_stale.stale_rule()
    assert rule is not None and rule["labels"]["severity"] == "critical"
    assert ws_stale.route_group_wait() == 0.0
    low, high, terms = ws_stale.expected_seconds()
    assert 0 < low < high <= bench_ws.TARGET_STALE_S and "stale_after" in terms


def test_stale_summary_counts_a_failed_sample_as_late() -> None:
    samples = [
        ws_stale.StaleRun("binance", 18.0, 17.0),
        ws_stale.StaleRun("okx", 22.0, 21.0),
        ws_stale.StaleRun("kraken", None, error="no firing"),
    ]
    out = ws_stale.summary(samples)
    assert out["samples"] == "2/3" and out["median_s"] == 20.0 and out["max_s"] == 22.0
    assert out["target_value"] == math.inf and "kraken —" in out["each"]
    assert ws_stale.summary(samples[:2])["target_value"] == 22.0


def _throughput() -> dict[str, dict[str, float]]:
    exporter = ws_runs.summarize(
        {
            "messages": 300_000,
            "seconds": 10.0,
            "cpu_seconds": 9.0,
            "gaps": 0,
            "checksum_mismatches": 0,
            "resyncs": 0,
            "crossed": 0,
            "reconnects": 0,
        }
    )
    bare = ws_runs.summarize({"messages": 1_000_000, "seconds": 10.0, "cpu_seconds": 6.0})
    return {"exporter": exporter, "bare": bare}


def test_section_shape_with_fake_figures() -> None:
    lag = {
        "messages": 50_003,
        "mismatched": 0,
        "error_max_ms": 3.0,
        **{
            f"{f}_p{q}_ms": 0.5
            for f in ("error", "quantisation", "loop", "delay")
            for q in (50, 99)
        },
    }
    memory = {
        "added_mib": 4.0,
        "rss_with_mib": 60.0,
        "rss_without_mib": 56.0,
        "peak_with_mib": 61.0,
        "peak_without_mib": 56.5,
        "connected": 5,
        "channels_flowing": 15,
        "subscriptions": 45,
        "missing_markets": [],
    }
    stale = ws_stale.summary([ws_stale.StaleRun("okx", 20.0, 19.0)])
    out = bench_ws.build_section(_throughput(), lag, memory, stale, ["n"], runs=1)
    assert out["name"] == "ws" and out["runs"] == 1
    assert {tuple(r) for r in out["rows"]} == {("figure", "value", "unit", "detail")}
    values = [t["value"] for t in out["targets"]]
    assert values == [30_000.0, 0.5, 4.0, 20.0]
    assert all(t["met"] for t in out["targets"])
    assert out["cpu_ratio"] == pytest.approx(5.0)


def test_unmeasured_figures_miss_their_targets() -> None:
    out = bench_ws.build_section(None, None, None, None, [], runs=1)
    assert out["rows"] == []
    assert all(math.isnan(t["value"]) and not t["met"] for t in out["targets"])


def test_method_text_is_the_module_docstring() -> None:
    from benchmarks.run import BENCHMARKS, _method

    assert "ws" in BENCHMARKS
    method = _method(Path(bench_ws.__file__))
    assert "quantisation" in method and "python benchmarks" not in method


@pytest.mark.e2e
def test_sender_and_receivers_end_to_end() -> None:
    """One short run of each receiver mode against a real sender (processes on loopback)."""
    cpus = sorted(os.sched_getaffinity(0))
    window = ["--warmup", "0.2", "--window", "1"]
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        with ws_runs.sender(cpus, directory) as (_, url, _):
            exporter = ws_runs.receive("exporter", url, cpus, directory, *window)
            bare = ws_runs.receive("bare", url, cpus, directory, *window)
        assert exporter["messages"] > 0 and bare["messages"] > 0
        assert {k: exporter[k] for k in ("gaps", "checksum_mismatches", "resyncs", "crossed")} == {
            "gaps": 0,
            "checksum_mismatches": 0,
            "resyncs": 0,
            "crossed": 0,
        }
        with ws_runs.sender(cpus, directory, rate=500, count=200) as (_, url, sends):
            result = ws_runs.receive("lag", url, cpus, directory, "--count", "403")
            for _ in range(100):
                if sends.exists():
                    break
                time.sleep(0.1)
            sent = json.loads(sends.read_text())
    for exchange in ("okx", "binance"):
        errors = ws_runs.lag_errors(
            sent[exchange], result["arrivals"][exchange], result["lags"][exchange]
        )
        assert errors.mismatched == 0
        assert len(errors.error) == (203 if exchange == "okx" else 200)
        assert all(q >= 0 for q in errors.quantisation)
