"""REST market data: ticker quotes and announced maintenance read by the profiles, and the
prober handing them to a real MarketData (bodies from shared/reference/exchange-api-facts.md)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from exporter.http11 import ProbeClient
from exporter.market.data import MarketData
from exporter.metrics import ExporterMetrics
from exporter.prober import Prober, ProbeRecord, ProbeTarget
from exporter.profiles import PROFILES, Result, get_profile
from exporter.profiles.base import TickerQuote
from exporter.profiles.kraken import upcoming_window
from exporter.profiles.optional_fields import (
    announced_window,
    epoch_any,
    next_window,
    optional_number,
)
from exporter.scheduler import ProbeScheduler, build_targets
from tests.exporter.test_prober_canned_responses import config_for, local, sample
from tests.exporter.test_profiles import classify
from testsupport.canned_http import canned_server

# --- documented ticker bodies ------------------------------------------------------------------

BINANCE_TICKER: dict[str, Any] = {
    # The 24hr ticker's documented fields [BN-REST]; values from the bookTicker example.
    "symbol": "LTCBTC",
    "lastPrice": "4.00000200",
    "lastQty": "200.00000000",
    "bidPrice": "4.00000000",
    "bidQty": "431.00000000",
    "askPrice": "4.00000200",
    "askQty": "9.00000000",
    "volume": "8913.30000000",
    "quoteVolume": "15.30000000",
    "openTime": 1499783499040,
    "closeTime": 1499869899040,
}
BYBIT_TICKER: dict[str, Any] = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "category": "spot",
        "list": [
            {
                "symbol": "BTCUSDT",
                "bid1Price": "20517.96",
                "bid1Size": "2",
                "ask1Price": "20527.77",
                "ask1Size": "1.862172",
                "lastPrice": "20533.13",
                "prevPrice24h": "20393.48",
                "price24hPcnt": "0.0068",
                "highPrice24h": "21128.12",
                "lowPrice24h": "20318.89",
                "turnover24h": "243765620.65899866",
                "volume24h": "11801.27771",
                "usdIndexPrice": "20784.12009279",
            }
        ],
    },
    "retExtInfo": {},
    "time": 1673859087947,
}
OKX_TICKER: dict[str, Any] = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "instType": "SWAP",
            "instId": "BTC-USD-SWAP",
            "last": "9999.99",
            "lastSz": "0.1",
            "askPx": "9999.99",
            "askSz": "11",
            "bidPx": "8888.88",
            "bidSz": "5",
            "open24h": "9000",
            "high24h": "10000",
            "low24h": "8888.88",
            "volCcy24h": "2222",
            "vol24h": "2222",
            "sodUtc0": "2222",
            "sodUtc8": "2222",
            "ts": "1597026383085",
        }
    ],
}
COINBASE_TICKER: dict[str, Any] = {
    "trade_id": 86326522,
    "price": "6268.48",
    "size": "0.00698254",
    "time": "2020-03-20T00:22:57.833897Z",
    "bid": "6265.15",
    "ask": "6267.71",
    "volume": "53602.03940154",
}
KRAKEN_TICKER: dict[str, Any] = {
    "error": [],
    "result": {
        "XXBTZUSD": {
            "a": ["3537.50000", "1", "1.000"],
            "b": ["3537.40000", "16", "16.000"],
            "c": ["3537.50000", "0.25000000"],
            "v": ["2945.40515179", "4009.69918350"],
            "p": ["3537.46886", "3535.79747"],
            "t": [5773, 6815],
            "l": ["3504.20000", "3504.20000"],
            "h": ["3565.00000", "3565.00000"],
            "o": "3530.60000",
        }
    },
}

DOCUMENTED_TICKERS = [
    ("binance", BINANCE_TICKER, TickerQuote(4.0, 4.000002, 4.000002, 8913.3)),
    ("bybit", BYBIT_TICKER, TickerQuote(20517.96, 20527.77, 20533.13, 11801.27771)),
    ("okx", OKX_TICKER, TickerQuote(8888.88, 9999.99, 9999.99, 2222.0)),
    ("coinbase", COINBASE_TICKER, TickerQuote(6265.15, 6267.71, 6268.48, 53602.03940154)),
    ("kraken", KRAKEN_TICKER, TickerQuote(3537.4, 3537.5, 3537.5, 4009.6991835)),
]


@pytest.mark.parametrize(("profile", "body", "expected"), DOCUMENTED_TICKERS)
def test_documented_ticker_gives_its_quote(profile: str, body: Any, expected: TickerQuote) -> None:
    verdict = classify(profile, "ticker", body)
    assert verdict.result is Result.OK
    quote = verdict.quote
    assert quote is not None
    for got, want in zip(
        (quote.bid, quote.ask, quote.last, quote.volume_24h),
        (expected.bid, expected.ask, expected.last, expected.volume_24h),
        strict=True,
    ):
        assert got == pytest.approx(want)


def _without(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in keys}


def _bybit_ticker(**fields: Any) -> dict[str, Any]:
    ticker = {**BYBIT_TICKER["result"]["list"][0], **fields}
    return {**BYBIT_TICKER, "result": {"category": "spot", "list": [ticker]}}


def _okx_ticker(**fields: Any) -> dict[str, Any]:
    return {**OKX_TICKER, "data": [{**OKX_TICKER["data"][0], **fields}]}


def _kraken_ticker(pair: dict[str, Any]) -> dict[str, Any]:
    return {"error": [], "result": {"XXBTZUSD": pair}}


# (profile, body, expected quote): the ticker's extras missing or malformed → None for that
# field, and the probe stays ``ok``.
DEGRADED_TICKERS = [
    (
        "binance",
        _without(BINANCE_TICKER, "bidPrice", "askPrice", "volume"),
        TickerQuote(None, None, 4.000002, None),
    ),
    (
        "binance",
        {**BINANCE_TICKER, "bidPrice": "NaN", "askPrice": "-1", "volume": True},
        TickerQuote(None, None, 4.000002, None),
    ),
    # A spot book with no bids: Bybit sends empty strings.
    ("bybit", _bybit_ticker(bid1Price="", volume24h=None), TickerQuote(None, 20527.77, 20533.13)),
    ("okx", _okx_ticker(askPx="abc", vol24h=[1]), TickerQuote(8888.88, None, 9999.99, None)),
    (
        "coinbase",
        {**COINBASE_TICKER, "bid": None, "ask": {}, "volume": "inf"},
        TickerQuote(None, None, 6268.48, None),
    ),
    (
        "kraken",
        _kraken_ticker({"c": ["3537.5", "0.25"], "b": "3537.4", "a": [], "v": ["2945.4"]}),
        TickerQuote(None, None, 3537.5, None),
    ),
]


@pytest.mark.parametrize(("profile", "body", "expected"), DEGRADED_TICKERS)
def test_missing_or_malformed_quote_fields_are_none(
    profile: str, body: Any, expected: TickerQuote
) -> None:
    verdict = classify(profile, "ticker", body)
    assert verdict.result is Result.OK
    assert verdict.quote == expected


def test_a_missing_last_price_still_fails_as_before() -> None:
    """The last price proves the ticker answered as documented: without it the probe stays
    ``bad_response`` (unchanged), with no quote."""
    verdict = classify("okx", "ticker", _okx_ticker(last=None))
    assert verdict.result is Result.BAD_RESPONSE and verdict.quote is None


def test_non_ticker_endpoints_carry_no_quote() -> None:
    assert classify("binance", "time", {"serverTime": 1499827319559}).quote is None


# --- announced maintenance ---------------------------------------------------------------------

HOUR = 3600.0


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def _okx_entry(state: str, begin: float, end: float, **extra: str) -> dict[str, str]:
    """A ``/api/v5/system/status`` entry as documented [OKX-STATUS], times relative to now."""
    entry = {
        "begin": _ms(begin),
        "end": _ms(end),
        "href": "",
        "preOpenBegin": "",
        "scheDesc": "",
        "serviceType": "8",
        "state": state,
        "maintType": "1",
        "env": "1",
        "system": "unified",
        "title": "Trading account system upgrade (in batches of accounts)",
    }
    return {**entry, **extra}


def _okx_status(*entries: dict[str, str]) -> dict[str, Any]:
    return {"code": "0", "data": list(entries), "msg": ""}


def _bybit_entry(state: str, begin: float, end: float) -> dict[str, Any]:
    """A ``/v5/system/status`` list item as documented [BY-STATUS], times relative to now."""
    return {
        "id": "4d95b2a0-587f-11f0-bcc9-56f28c94d6ea",
        "title": "t06",
        "state": state,
        "begin": _ms(begin),
        "end": _ms(end),
        "href": "",
        "serviceTypes": [2, 3, 4, 5],
        "product": [1, 2],
        "uidSuffix": [],
        "maintainType": 1,
        "env": 1,
    }


def _bybit_status(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "", "result": {"list": list(entries)}}


def _kraken_status(upcoming: Any = None, status: str = "online") -> dict[str, Any]:
    result: dict[str, Any] = {"status": status, "timestamp": "2023-07-06T18:52:00Z"}
    if upcoming is not None:
        result["upcoming_maintenance"] = upcoming
        result["emergency"] = []
    return {"error": [], "result": result}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _status_cases(now: float) -> list[tuple[str, Any, tuple[float, float] | None, bool]]:
    """(profile, status body, expected window, expected maintenance-now flag)."""
    soon, later = now + HOUR, now + 5 * HOUR
    return [
        # OKX: the documented example (a completed entry) announces nothing.
        ("okx", _okx_status(_okx_entry("completed", now - 2 * HOUR, now - HOUR)), None, False),
        ("okx", _okx_status(), None, False),
        ("okx", _okx_status(_okx_entry("scheduled", soon, soon + 120)), (soon, soon + 120), False),
        # The next window, whatever the order of the entries.
        (
            "okx",
            _okx_status(
                _okx_entry("scheduled", later, later + HOUR),
                _okx_entry("scheduled", soon, soon + HOUR),
            ),
            (soon, soon + HOUR),
            False,
        ),
        # An ongoing window comes first, and the exchange is in maintenance now.
        (
            "okx",
            _okx_status(
                _okx_entry("scheduled", later, later + HOUR),
                _okx_entry("ongoing", now - 60, now + 600),
            ),
            (now - 60, now + 600),
            True,
        ),
        (
            "okx",
            _okx_status(_okx_entry("pre_open", now - 600, now + 300, preOpenBegin=_ms(now))),
            (now - 600, now + 300),
            False,
        ),
        # Only completed or canceled entries, a scheduled one already over, unreadable times.
        (
            "okx",
            _okx_status(
                _okx_entry("completed", soon, soon + HOUR),
                _okx_entry("canceled", later, later + HOUR),
            ),
            None,
            False,
        ),
        ("okx", _okx_status(_okx_entry("scheduled", now - 2 * HOUR, now - HOUR)), None, False),
        (
            "okx",
            _okx_status({**_okx_entry("scheduled", soon, soon), "end": ""}),
            None,
            False,
        ),
        # Bybit.
        (
            "bybit",
            _bybit_status(_bybit_entry("completed", now - 2 * HOUR, now - HOUR)),
            None,
            False,
        ),
        (
            "bybit",
            _bybit_status(
                _bybit_entry("completed", now - 2 * HOUR, now - HOUR),
                _bybit_entry("scheduled", soon, soon + 300),
            ),
            (soon, soon + 300),
            False,
        ),
        (
            "bybit",
            _bybit_status(
                _bybit_entry("scheduled", later, later + 300),
                _bybit_entry("ongoing", now - 60, now + 60),
            ),
            (now - 60, now + 60),
            True,
        ),
        (
            "bybit",
            _bybit_status(
                _bybit_entry("canceled", soon, soon + 300),
                _bybit_entry("completed", now - HOUR, now - 60),
            ),
            None,
            False,
        ),
        # Kraken: the documented example (empty arrays), an older body without the field.
        ("kraken", _kraken_status([]), None, False),
        ("kraken", _kraken_status(), None, False),
        (
            "kraken",
            _kraken_status(
                [
                    {
                        "event_id": 34,
                        "title": "REST API infrastructure upgrade",
                        "expected_start_utc": _iso(later),
                        "expected_end_utc": _iso(later + 1800),
                    },
                    {
                        "event_id": 21,
                        "title": "Scheduled Maintenance - Website",
                        "expected_start_utc": _iso(soon),
                        "expected_end_utc": _iso(soon + HOUR),
                    },
                ]
            ),
            (float(int(soon)), float(int(soon + HOUR))),
            False,
        ),
        # Tolerant readings of the UNVERIFIED item shape.
        (
            "kraken",
            _kraken_status([{"start": int(soon * 1000), "end": int((soon + 60) * 1000)}]),
            (float(int(soon * 1000)) / 1000, float(int((soon + 60) * 1000)) / 1000),
            False,
        ),
        (
            "kraken",
            _kraken_status([{"scheduled_for": _iso(soon), "scheduled_until": _iso(soon + 60)}]),
            (float(int(soon)), float(int(soon + 60))),
            False,
        ),
        (  # the shape the simulator sends
            "kraken",
            _kraken_status(
                [
                    {
                        "title": "Scheduled maintenance",
                        "start_time": _iso(soon),
                        "end_time": _iso(soon + 60),
                        "start_timestamp": int(soon),
                        "end_timestamp": int(soon + 60),
                    }
                ]
            ),
            (float(int(soon)), float(int(soon + 60))),
            False,
        ),
        (
            "kraken",
            _kraken_status([{"start_timestamp": int(soon), "end_timestamp": int(soon) + 60}]),
            (float(int(soon)), float(int(soon) + 60)),
            False,
        ),
        (
            "kraken",
            _kraken_status([{"title": "no end", "starts_at": int(soon)}]),
            (float(int(soon)), float(int(soon))),
            False,
        ),
        ("kraken", _kraken_status([{"title": "no times"}, "junk", 7]), None, False),
        ("kraken", _kraken_status({"not": "a list"}), None, False),
        # In maintenance now, nothing further announced (Kraken drops started events).
        ("kraken", _kraken_status([], status="maintenance"), None, True),
    ]


@pytest.mark.parametrize("case", range(len(_status_cases(0.0))))
def test_status_answers_give_the_next_window_not_yet_over(case: int) -> None:
    profile, body, window, maintenance = _status_cases(time.time())[case]
    verdict = classify(profile, "status", body)
    assert verdict.result is Result.OK
    assert verdict.maintenance is maintenance
    if window is None:
        assert verdict.scheduled_maintenance is None
    else:
        assert verdict.scheduled_maintenance == pytest.approx(window, abs=1e-3)


def test_documented_status_examples_at_their_own_time() -> None:
    """The documented OKX and Bybit timestamps, read at a fixed ``now``: a scheduled entry
    before its end is the window, after its end it is over."""
    okx = [{"begin": "1672823400000", "end": "1672823520000", "state": "scheduled"}]
    states = {"scheduled", "ongoing", "pre_open"}
    assert announced_window(okx, states, now=1672823000.0) == (1672823400.0, 1672823520.0)
    assert announced_window(okx, states, now=1672823460.0) == (1672823400.0, 1672823520.0)
    assert announced_window(okx, states, now=1672823520.0) is None
    bybit = [{"state": "completed", "begin": "1751596902000", "end": "1751597011000"}]
    assert announced_window(bybit, {"scheduled", "ongoing"}, now=0.0) is None
    assert announced_window({"list": bybit}, {"completed"}, now=0.0) is None


def test_kraken_window_at_a_fixed_time() -> None:
    result = {
        "upcoming_maintenance": [
            {
                "expected_start_utc": "2026-05-14T02:00:00Z",
                "expected_end_utc": "2026-05-14T02:30:00Z",
            }
        ]
    }
    start = epoch_any("2026-05-14T02:00:00Z")
    assert start is not None
    assert upcoming_window(result, now=start - 60) == (start, start + 1800)
    assert upcoming_window(result, now=start + 1800) is None


def test_maintenance_now_is_unchanged_by_old_windows() -> None:
    """The ongoing entry of the documented times (long over) still reports maintenance now, as
    before; it is no announced window."""
    body = {"code": "0", "msg": "", "data": [{"begin": "1672823400000", "end": "1672823520000",
                                              "state": "ongoing", "title": "upgrade"}]}  # fmt: skip
    verdict = classify("okx", "status", body)
    assert (verdict.result, verdict.maintenance, verdict.message) == (Result.OK, True, "upgrade")
    assert verdict.scheduled_maintenance is None


def test_only_okx_bybit_and_kraken_announce_maintenance() -> None:
    announcing = {name for name, cls in PROFILES.items() if cls.announces_maintenance}
    assert announcing == {"okx", "bybit", "kraken"}
    verdict = classify("binance", "status", {"status": 1, "msg": "system_maintenance"})
    assert verdict.maintenance is True and verdict.scheduled_maintenance is None


def test_next_window_order_and_edges() -> None:
    assert next_window([], now=0.0) is None
    assert next_window([(10.0, 20.0), (5.0, 30.0)], now=0.0) == (5.0, 30.0)
    assert next_window([(10.0, 20.0), (10.0, 15.0)], now=0.0) == (10.0, 15.0)
    assert next_window([(10.0, 20.0)], now=20.0) is None  # over at its end
    assert next_window([(30.0, 20.0)], now=0.0) is None  # ends before it starts


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4.00000200", 4.000002),
        (2222, 2222.0),
        ("0", 0.0),
        ("", None),
        (None, None),
        ("NaN", None),
        ("-1", None),
        (True, None),
        ([1], None),
    ],
)
def test_optional_number(value: Any, expected: float | None) -> None:
    assert optional_number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-11T09:00:00Z", 1778490000.0),
        ("2026-05-11T11:00:00+02:00", 1778490000.0),
        ("2026-05-11T09:00:00", 1778490000.0),
        (1778490000, 1778490000.0),
        ("1778490000000", 1778490000.0),
        ("soon", None),
        ("", None),
        (None, None),
        (0, None),
    ],
)
def test_epoch_any(value: Any, expected: float | None) -> None:
    assert epoch_any(value) == expected


# --- the prober hands them to the market data ---------------------------------------------------


class _Harness:
    """One exchange's targets, a fresh ExporterMetrics and the scheduler's real MarketData."""

    def __init__(self, name: str, **extra: Any) -> None:
        self.config = config_for(name, **extra)
        self.metrics = ExporterMetrics()
        scheduler = ProbeScheduler(self.config, self.metrics)  # series and market data
        self.market_data: MarketData = scheduler.market_data
        self.targets = {t.endpoint.name: t for t in build_targets(self.config)}
        self.name = name

    def probe(self, endpoint: str, response: httpx.Response) -> ProbeRecord:
        """Probe once; each probe gets fresh exchange states, so the exchange's schedule and
        limits never hold a test's back-to-back probes (the market data and metrics stay)."""
        target: ProbeTarget = self.targets[endpoint]
        states = ProbeScheduler(self.config, self.metrics).states

        async def go() -> ProbeRecord:
            async with canned_server({target.url: response}) as base:
                client = ProbeClient("test")
                try:
                    prober = Prober(client, self.metrics, states, market_data=self.market_data)
                    return await prober.probe(local(target, base))
                finally:
                    await client.aclose()

        return asyncio.run(go())

    def market(self, metric: str, market: str, group: str) -> float | None:
        labels = {"exchange": self.name, "market": market, "price_group": group}
        return sample(self.metrics, metric, **labels)

    def scheduled(self) -> tuple[float | None, float | None]:
        return (
            sample(
                self.metrics,
                "exchange_maintenance_scheduled_start_timestamp_seconds",
                exchange=self.name,
            ),
            sample(
                self.metrics,
                "exchange_maintenance_scheduled_end_timestamp_seconds",
                exchange=self.name,
            ),
        )


@pytest.mark.e2e  # a canned server on loopback
@pytest.mark.parametrize(
    ("profile", "body", "market", "group"),
    [
        ("binance", BINANCE_TICKER, "BTC/USDT", "BTC/USD"),
        ("bybit", BYBIT_TICKER, "BTC/USDT", "BTC/USD"),
        ("okx", {**OKX_TICKER, "data": [{**OKX_TICKER["data"][0], "instId": "BTC-USDT"}]},
         "BTC/USDT", "BTC/USD"),
        ("coinbase", COINBASE_TICKER, "BTC/USD", "BTC/USD"),
        ("kraken", KRAKEN_TICKER, "BTC/USD", "BTC/USD"),
    ],
)  # fmt: skip
def test_prober_writes_rest_quotes(profile: str, body: Any, market: str, group: str) -> None:
    harness = _Harness(profile)
    assert harness.targets["ticker"].market == market
    before = time.time()
    record = harness.probe("ticker", httpx.Response(200, json=body))
    assert record.result is Result.OK
    quote = record.verdict.quote if record.verdict else None
    assert quote is not None
    assert harness.market("exchange_market_bid_price", market, group) == quote.bid
    assert harness.market("exchange_market_ask_price", market, group) == quote.ask
    assert harness.market("exchange_market_last_price", market, group) == quote.last
    updated = harness.market("exchange_market_last_update_timestamp_seconds", market, group)
    assert updated is not None and updated >= before - 1
    # The first 24 h volume reading only sets the baseline.
    assert harness.market("exchange_market_traded_volume_total", market, group) == 0


@pytest.mark.e2e
def test_rolling_volume_grows_by_the_24h_increase() -> None:
    harness = _Harness("okx")
    for vol in ("2222", "2230.5", "2100"):
        body = _okx_ticker(instId="BTC-USDT", vol24h=vol)
        assert harness.probe("ticker", httpx.Response(200, json=body)).result is Result.OK
    # +8.5 between the first two readings; the drop adds nothing.
    total = harness.market("exchange_market_traded_volume_total", "BTC/USDT", "BTC/USD")
    assert total == pytest.approx(8.5)


@pytest.mark.e2e
def test_failed_ticker_probe_writes_no_quote() -> None:
    harness = _Harness("okx")
    body = {"code": "50011", "msg": "Rate limit reached.", "data": []}
    assert harness.probe("ticker", httpx.Response(429, json=body)).result is Result.RATE_LIMITED
    assert harness.market("exchange_market_last_price", "BTC/USDT", "BTC/USD") is None
    assert harness.market("exchange_market_last_update_timestamp_seconds", "BTC/USDT",
                          "BTC/USD") is None  # fmt: skip


@pytest.mark.e2e
@pytest.mark.parametrize("profile", ["okx", "bybit", "kraken"])
def test_prober_publishes_and_clears_the_announced_window(profile: str) -> None:
    now = time.time()
    soon = now + HOUR
    announced = {
        "okx": _okx_status(_okx_entry("scheduled", soon, soon + 600)),
        "bybit": _bybit_status(_bybit_entry("scheduled", soon, soon + 600)),
        "kraken": _kraken_status(
            [{"expected_start_utc": _iso(soon), "expected_end_utc": _iso(soon + 600)}]
        ),
    }[profile]
    nothing = {"okx": _okx_status(), "bybit": _bybit_status(), "kraken": _kraken_status([])}[
        profile
    ]
    harness = _Harness(profile)
    assert harness.scheduled() == (None, None)
    assert harness.probe("status", httpx.Response(200, json=announced)).result is Result.OK
    start, end = harness.scheduled()
    assert start == pytest.approx(soon, abs=1) and end == pytest.approx(soon + 600, abs=1)
    assert harness.probe("status", httpx.Response(200, json=nothing)).result is Result.OK
    assert harness.scheduled() == (None, None)


@pytest.mark.e2e
def test_failed_status_probe_keeps_the_announced_window() -> None:
    """Only a status answer that succeeded says what is announced: a failing one leaves the
    last window in place."""
    soon = time.time() + HOUR
    harness = _Harness("okx")
    body = _okx_status(_okx_entry("scheduled", soon, soon + 600))
    harness.probe("status", httpx.Response(200, json=body))
    failing = {"code": "50001", "msg": "Service temporarily unavailable", "data": []}
    assert harness.probe("status", httpx.Response(503, json=failing)).result is Result.MAINTENANCE
    assert harness.scheduled()[0] == pytest.approx(soon, abs=1)


@pytest.mark.e2e
def test_binance_status_publishes_no_window() -> None:
    harness = _Harness("binance")
    body = {"status": 1, "msg": "system_maintenance"}
    assert harness.probe("status", httpx.Response(200, json=body)).result is Result.OK
    assert harness.scheduled() == (None, None)
    assert get_profile("binance").announces_maintenance is False
