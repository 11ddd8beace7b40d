"""Stream market data reaches MarketData: each exchange's documented ticker and trade messages,
read by its dialect and passed on by the stream session, set ``exchange_market_bid_price`` /
``_ask_price`` / ``_last_price`` and grow ``exchange_market_traded_volume_total`` (source
``stream``); a trade's price is the last price only where no ticker is subscribed; Bybit's
spot bid/ask come from its local book. Unit tests drive a session over a scripted connection
(no sockets); the last test runs the exporter against a loopback fake exchange (e2e).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from test_ws_fakes import FakeDialect, FakeExchange, exchange_config, until
from websockets.exceptions import ConnectionClosed

from exporter.config import load_config
from exporter.market.data import MarketData
from exporter.market.groups import default_price_group
from exporter.market.metrics import MarketMetrics
from exporter.metrics import ExporterMetrics
from exporter.runtime import ExporterRuntime
from exporter.state import ExchangeState
from exporter.streams import dialects
from exporter.streams.dialect import StreamDialect
from exporter.streams.dialects import get_dialect
from exporter.streams.dialects._common import number, trade_totals
from exporter.streams.events import Channel, Subscription
from exporter.streams.metrics import StreamMetrics
from exporter.streams.session import Cell, StreamSession
from exporter.streams.status import StreamStatus
from simulator import simulator_in_thread
from testsupport.ws_harness import VENUES, RunningExporter, stream_config
from testsupport.ws_harness import until as sim_until

EXCHANGE = "ex"


class ScriptedWs:
    """A connection that yields ``frames`` then reports a close."""

    def __init__(self, frames: Sequence[str]) -> None:
        self._frames = list(frames)
        self.protocol = SimpleNamespace(close_rcvd=None)

    async def recv(self) -> str:
        if self._frames:
            return self._frames.pop(0)
        raise ConnectionClosed(None, None)

    async def send(self, text: str) -> None:
        return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return None

    async def ping(self) -> asyncio.Future[float]:
        return asyncio.get_running_loop().create_future()


class Sink:
    """A real MarketData on a fresh registry, configured for one exchange."""

    def __init__(self, markets: Sequence[str], ticker: Sequence[str], trades: Sequence[str]):
        self.registry = CollectorRegistry()
        self.data = MarketData(MarketMetrics(self.registry))
        groups = {m: m.split("/")[0] + "/USD" for m in markets}
        self.groups = groups
        self.data.configure(EXCHANGE, groups, ticker_streamed=ticker, trades_streamed=trades)

    def value(self, metric: str, market: str) -> float | None:
        labels = {"exchange": EXCHANGE, "market": market, "price_group": self.groups[market]}
        return self.registry.get_sample_value(f"exchange_market_{metric}", labels)

    def quote(self, market: str) -> tuple[float | None, ...]:
        return tuple(self.value(f"{side}_price", market) for side in ("bid", "ask", "last"))

    def volume(self, market: str) -> float | None:
        return self.value("traded_volume_total", market)


def run_session(
    dialect: StreamDialect,
    subscriptions: Sequence[Subscription],
    frames: Sequence[str],
    market_data: MarketData | None,
) -> StreamStatus:
    """Run one StreamSession over ``frames`` until the scripted connection closes; its
    ``/status`` record."""
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    channels = tuple(dict.fromkeys(s.channel for s in subscriptions))
    metrics.declare(EXCHANGE, channels)
    status = StreamStatus("wss://example.invalid", {c: 5.0 for c in channels})
    cells = {c: Cell(status.channels[c], metrics.channel(EXCHANGE, c)) for c in channels}
    ws = ScriptedWs(frames)
    session = StreamSession(
        cast(Any, ws),
        dialect,
        subscriptions,
        cells,
        metrics.exchange(EXCHANGE),
        lambda: metrics.ping_rtt.labels(EXCHANGE),
        ExchangeState.for_config(exchange_config()),
        status,
        None,
        lambda: None,
        random.Random(1),
        market_data=market_data,
        exchange_name=EXCHANGE,
    )
    asyncio.run(asyncio.wait_for(session.run(), 30))
    return status


def subs(channels: Sequence[Channel], markets: Sequence[str]) -> list[Subscription]:
    return [Subscription(c, m) for m in markets for c in channels]


TT = (Channel.TICKER, Channel.TRADES)

# Per exchange: (market, ticker frame, trade frame, expected (bid, ask, last) of the ticker,
# last price of the trade frame, its volume). Frames are the documented examples [BN-WS
# §Individual Symbol Ticker Streams, §Trade Streams; BY-TICKER; BY-TRADE; OKX-MD §WS / Tickers
# channel, §WS / Trades channel; CB-EX-CH; KR-TICK2; KR-TRADE2].
CASES: dict[str, tuple[str, str, str, tuple[float | None, ...], float, float]] = {
    "binance": (
        "BNB/BTC",
        '{"stream":"bnbbtc@ticker","data":{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC",'
        '"p":"0.0015","P":"250.00","w":"0.0018","x":"0.0009","c":"0.0025","Q":"10",'
        '"b":"0.0024","B":"10","a":"0.0026","A":"100","o":"0.0010","h":"0.0025","l":"0.0010",'
        '"v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}}',
        '{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,'
        '"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}',
        (0.0024, 0.0026, 0.0025),
        0.001,
        100.0,
    ),
    "bybit": (
        "BTC/USDT",
        '{"topic":"tickers.BTCUSDT","ts":1673853746003,"type":"snapshot","cs":2588407389,'
        '"data":{"symbol":"BTCUSDT","lastPrice":"21109.77","highPrice24h":"21426.99",'
        '"lowPrice24h":"20575","prevPrice24h":"20704.93","volume24h":"6780.866843",'
        '"turnover24h":"142944834.75","price24hPcnt":"0.0196","usdIndexPrice":"21120.24"}}',
        '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{'
        '"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick",'
        '"i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1783284617}]}',
        (None, None, 21109.77),
        16578.5,
        0.001,
    ),
    "okx": (
        "BTC/USDT",
        '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT",'
        '"instId":"BTC-USDT","last":"9999.99","lastSz":"0.1","askPx":"9999.99","askSz":"11",'
        '"bidPx":"8888.88","bidSz":"5","open24h":"9000","high24h":"10000","low24h":"8888.88",'
        '"volCcy24h":"2222","vol24h":"2222","sodUtc0":"2222","sodUtc8":"2222",'
        '"ts":"1597026383085"}]}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
        '"tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy",'
        '"ts":"1630048897897","count":"3","source":"0","seqId":1234}]}',
        (8888.88, 9999.99, 9999.99),
        42219.9,
        0.12060306,
    ),
    "coinbase": (
        "BTC/USD",
        '{"type":"ticker","sequence":7388547310,"product_id":"BTC-USD","price":"22345.67",'
        '"open_24h":"22000","volume_24h":"100","low_24h":"21000","high_24h":"23000",'
        '"volume_30d":"3000","best_bid":"22345.67","best_bid_size":"0.10647825",'
        '"best_ask":"22349.68","best_ask_size":"0.03131702","side":"sell",'
        '"time":"2023-03-04T03:37:20.799258Z","trade_id":11586478,"last_size":"0.00352175"}',
        '{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"ac928c66",'
        '"taker_order_id":"132fb6ae","time":"2014-11-07T08:19:27.028459Z",'
        '"product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell"}',
        (22345.67, 22349.68, 22345.67),
        400.23,
        5.23512,
    ),
    "kraken": (
        "BTC/USD",
        '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":108359.8,'
        '"bid_qty":0.01362603,"ask":108359.9,"ask_qty":17.17988863,"last":108359.8,'
        '"volume":2158.32346723,"vwap":108894.5,"low":106824,"high":111300,"change":-2679.9,'
        '"change_pct":-2.41}]}',
        '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell",'
        '"price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,'
        '"timestamp":"2023-09-25T07:49:37.708706Z"}]}',
        (108359.8, 108359.9, 108359.8),
        0.5117,
        40.0,
    ),
}


def prepared(exchange: str, subscriptions: Sequence[Subscription]) -> StreamDialect:
    """The exchange's dialect after spelling ``subscriptions`` (as a connection does)."""
    dialect = get_dialect(exchange)()
    dialect.connect_url(dialect.default_url, subscriptions)
    dialect.subscribe_messages(subscriptions)
    return dialect


@pytest.mark.parametrize("exchange", sorted(CASES))
def test_documented_ticker_then_trade_reach_market_data(exchange: str) -> None:
    market, ticker, trade, quote, _, volume = CASES[exchange]
    sink = Sink([market], ticker=[market], trades=[market])
    subscriptions = subs(TT, [market])
    run_session(prepared(exchange, subscriptions), subscriptions, [ticker, trade], sink.data)
    # The ticker's last price stands: the trade's price does not replace it (one source).
    assert sink.quote(market) == quote
    assert sink.volume(market) == pytest.approx(volume)
    assert sink.value("last_update_timestamp_seconds", market) is not None


@pytest.mark.parametrize("exchange", sorted(CASES))
def test_without_a_ticker_the_trade_price_is_the_last_price(exchange: str) -> None:
    market, _, trade, _, last, volume = CASES[exchange]
    sink = Sink([market], ticker=[], trades=[market])
    subscriptions = subs([Channel.TRADES], [market])
    run_session(prepared(exchange, subscriptions), subscriptions, [trade, trade], sink.data)
    assert sink.quote(market) == (None, None, last)
    assert sink.volume(market) == pytest.approx(2 * volume)


def test_without_market_data_the_session_runs_as_before() -> None:
    market, ticker, trade, *_ = CASES["okx"]
    subscriptions = subs(TT, [market])
    status = run_session(prepared("okx", subscriptions), subscriptions, [ticker, trade], None)
    assert [status.channels[c].messages for c in TT] == [1, 1]


def test_malformed_numbers_write_nothing() -> None:
    market = "BTC/USDT"
    sink = Sink([market], ticker=[market], trades=[market])
    subscriptions = subs(TT, [market])
    frames = [
        '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
        '"last":"","askPx":"x","bidPx":"0","ts":"1597026383085"}]}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
        '"tradeId":"1","px":"NaN","sz":"-1","ts":"1630048897897"}]}',
    ]
    run_session(prepared("okx", subscriptions), subscriptions, frames, sink.data)
    assert sink.quote(market) == (None, None, None)
    assert sink.volume(market) == 0.0
    assert sink.value("last_update_timestamp_seconds", market) is None


def bybit_book(kind: str, bids: list[list[str]], asks: list[list[str]], u: int) -> str:
    return json.dumps(
        {
            "topic": "orderbook.50.BTCUSDT",
            "type": kind,
            "ts": 1687940967466,
            "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": 66544703342 + u},
            "cts": 1687940967464,
        }
    )


def test_bybit_bid_and_ask_come_from_the_local_book() -> None:
    # The spot ticker has no best bid/ask [BY-TICKER]: the orderbook.50 book gives them.
    market, ticker, _, _, _, _ = CASES["bybit"]
    sink = Sink([market, "ETH/USDT"], ticker=[market], trades=[])
    subscriptions = [*subs([Channel.TICKER, Channel.BOOK], [market])]
    frames = [
        ticker,
        bybit_book("snapshot", [["30247.20", "30.028"], ["30240.00", "1"]], [["30248.70", "2"]], 1),
        bybit_book("delta", [["30247.20", "0"]], [["30248.10", "0.5"]], 2),
    ]
    run_session(prepared("bybit", subscriptions), subscriptions, frames, sink.data)
    assert sink.quote(market) == (30240.0, 30248.1, 21109.77)


def test_bybit_book_without_its_ticker_leaves_bid_and_ask_to_rest() -> None:
    market = "BTC/USDT"
    sink = Sink([market], ticker=[], trades=[])
    subscriptions = subs([Channel.BOOK], [market])
    frames = [bybit_book("snapshot", [["30247.20", "1"]], [["30248.70", "2"]], 1)]
    run_session(prepared("bybit", subscriptions), subscriptions, frames, sink.data)
    assert sink.quote(market) == (None, None, None)


def test_other_exchanges_do_not_quote_from_the_book() -> None:
    # OKX's ticker carries bid/ask [OKX-MD]: the book does not write them (one source).
    market, ticker, *_ = CASES["okx"]
    sink = Sink([market], ticker=[market], trades=[])
    subscriptions = subs([Channel.TICKER, Channel.BOOK], [market])
    book = (
        '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{'
        '"asks":[["9000.5","1","0","1"]],"bids":[["8999.5","1","0","1"]],"ts":"1597026383085",'
        '"checksum":0,"prevSeqId":-1,"seqId":10}]}'
    )
    run_session(prepared("okx", subscriptions), subscriptions, [ticker, book], sink.data)
    assert sink.quote(market) == (8888.88, 9999.99, 9999.99)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("65000.10", 65000.1),
        ("0.00100000", 0.001),
        (42, 42.0),
        (0.5, 0.5),
        ("1e-8", 1e-8),
        (None, None),
        ("", None),
        ("abc", None),
        ("0", None),
        (0, None),
        ("-1.5", None),
        ("NaN", None),
        ("inf", None),
        (float("inf"), None),
        (True, None),
        ([1], None),
        ({"p": 1}, None),
    ],
)
def test_number_reads_prices_and_sizes(value: object, expected: float | None) -> None:
    assert number(value) == expected


def test_trade_totals_skips_bad_trades() -> None:
    trades = [{"p": "10", "q": "1"}, "junk", {"p": "x", "q": "2"}, {"p": "11", "q": None}, {}]
    assert trade_totals(trades, "p", "q") == (11.0, 3.0)
    assert trade_totals([], "p", "q") == (None, 0.0)


@pytest.mark.e2e  # starts a loopback WebSocket server and the exporter's loops
def test_the_running_exporter_streams_market_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(dialects.DIALECTS, "binance", FakeDialect)

    async def body() -> None:
        async with FakeExchange() as ex:
            ex.market_fields = {
                Channel.TICKER: {"bid": 100.0, "ask": 101.0, "last": 100.5},
                Channel.TRADES: {"last": 99.0, "vol": 0.25},
            }
            path = tmp_path / "exporter.yml"
            path.write_text(
                "exchanges:\n"
                "  - name: wsa\n"
                "    profile: binance\n"
                "    base_url: http://127.0.0.1:9\n"
                "    interval: 60s\n"
                "    timeout: 1s\n"
                "    endpoints: [time]\n"
                "    markets: [BTC/USDT]\n"
                f"    websocket: {{url: '{ex.url}', channels: [ticker, trades]}}\n"
            )
            metrics = ExporterMetrics()
            runtime = ExporterRuntime(path, load_config(path), metrics)
            stop = asyncio.Event()
            task = asyncio.create_task(runtime.run(stop))
            labels = {"exchange": "wsa", "market": "BTC/USDT", "price_group": "BTC/USD"}

            def value(name: str) -> float | None:
                return metrics.registry.get_sample_value(f"exchange_market_{name}", labels)

            try:
                await until(lambda: (value("traded_volume_total") or 0) >= 1.0, what="volume")
                await until(lambda: value("bid_price") == 100.0, what="bid")
                assert value("ask_price") == 101.0
                assert value("last_price") == 100.5  # the ticker's, not the trades' 99
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)

    asyncio.run(asyncio.wait_for(body(), 120))


@pytest.mark.e2e  # an in-thread simulator and the exporter's scheduler
def test_every_exchange_streams_market_data_from_the_simulator() -> None:
    """The scheduler's MarketData fed by the real dialects from the simulator's faithful feeds:
    per exchange bid < ask, last near them and a growing volume (Bybit's bid/ask from its
    book). REST ticker quotes are ignored for streamed markets, so these are the stream's."""

    async def body(sim_url: str) -> None:
        async with RunningExporter(stream_config(sim_url, rest_interval="300s")) as rig:

            def sample(name: str, venue: str) -> float:
                market = VENUES[venue].market
                group = default_price_group(market)
                return rig.value(
                    f"exchange_market_{name}", exchange=venue, market=market, price_group=group
                )

            def complete(venue: str) -> bool:
                names = ("bid_price", "ask_price", "last_price", "traded_volume_total")
                return all(sample(name, venue) > 0 for name in names)

            for venue in VENUES:
                await sim_until(lambda v=venue: complete(v), 90.0, f"{venue} market data")  # type: ignore[misc]
            for venue in VENUES:
                bid, ask = sample("bid_price", venue), sample("ask_price", venue)
                last = sample("last_price", venue)
                assert 0 < bid < ask, (venue, bid, ask)
                assert 0.9 * bid < last < 1.1 * ask, (venue, bid, ask, last)
            first = {venue: sample("traded_volume_total", venue) for venue in VENUES}
            for venue in VENUES:
                await sim_until(
                    lambda v=venue: sample("traded_volume_total", v) > first[v],  # type: ignore[misc]
                    90.0,
                    f"{venue} volume growing",
                )

    with simulator_in_thread() as server:
        asyncio.run(asyncio.wait_for(body(server.url), 300))
