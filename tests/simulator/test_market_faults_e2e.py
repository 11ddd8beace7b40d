"""Market-model faults end to end: set through ``POST /_control/faults``, seen in every
exchange's REST tickers and books and in the WebSocket ticker, trades and book streams."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from simulator.market import Market
from simulator.server import SimulatorServer
from simulator.ws.dialects.binance import _trade_qty

pytestmark = pytest.mark.e2e  # in-thread simulator

TIMEOUT = 30.0
BidAsk = tuple[float, float]


def _binance(c: httpx.Client) -> BidAsk:
    body = c.get("/binance/api/v3/ticker/bookTicker", params={"symbol": "BTCUSDT"}).json()
    return float(body["bidPrice"]), float(body["askPrice"])


def _bybit(c: httpx.Client) -> BidAsk:
    r = c.get("/bybit/v5/market/tickers", params={"category": "spot", "symbol": "BTCUSDT"})
    item = r.json()["result"]["list"][0]
    return float(item["bid1Price"]), float(item["ask1Price"])


def _okx(c: httpx.Client) -> BidAsk:
    item = c.get("/okx/api/v5/market/ticker", params={"instId": "BTC-USDT"}).json()["data"][0]
    return float(item["bidPx"]), float(item["askPx"])


def _coinbase(c: httpx.Client) -> BidAsk:
    body = c.get("/coinbase/products/BTC-USD/ticker").json()
    return float(body["bid"]), float(body["ask"])


def _kraken(c: httpx.Client) -> BidAsk:
    item = c.get("/kraken/0/public/Ticker", params={"pair": "XBTUSD"}).json()["result"]
    return float(item["XXBTZUSD"]["b"][0]), float(item["XXBTZUSD"]["a"][0])


TICKERS: dict[str, Callable[[httpx.Client], BidAsk]] = {
    "binance": _binance,
    "bybit": _bybit,
    "okx": _okx,
    "coinbase": _coinbase,
    "kraken": _kraken,
}
BOOKS: dict[str, tuple[str, dict[str, str], Callable[[Any], tuple[Any, Any]]]] = {
    "binance": ("/binance/api/v3/depth", {"symbol": "BTCUSDT", "limit": "5"},
                lambda b: (b["bids"], b["asks"])),
    "bybit": ("/bybit/v5/market/orderbook", {"category": "spot", "symbol": "BTCUSDT", "limit": "5"},
              lambda b: (b["result"]["b"], b["result"]["a"])),
    "okx": ("/okx/api/v5/market/books", {"instId": "BTC-USDT", "sz": "5"},
            lambda b: (b["data"][0]["bids"], b["data"][0]["asks"])),
    "coinbase": ("/coinbase/products/BTC-USD/book", {"level": "2"},
                 lambda b: (b["bids"], b["asks"])),
    "kraken": ("/kraken/0/public/Depth", {"pair": "XBTUSD", "count": "5"},
               lambda b: (b["result"]["XXBTZUSD"]["bids"], b["result"]["XXBTZUSD"]["asks"])),
}  # fmt: skip


def normal_mid(exchange: str) -> float:
    """The normal market's mid on ``exchange`` now (no fault: a fresh model)."""
    v = Market().view(exchange, time.time() * 1000.0)
    return (v.best_bid + v.best_ask) / 2.0


def bps_off(exchange: str, quote: BidAsk) -> float:
    return ((quote[0] + quote[1]) / 2.0 / normal_mid(exchange) - 1.0) * 1e4


def set_fault(client: httpx.Client, exchange: str, **body: Any) -> None:
    r = client.post("/_control/faults", json={"exchange": exchange, **body})
    assert r.status_code == 200, r.text
    time.sleep(0.15)  # market faults start at the next 100 ms tick


def dial(sim: SimulatorServer, path: str) -> Any:
    url = sim.url.replace("http://", "ws://") + path
    return connect(url, proxy=None, open_timeout=10, close_timeout=5, ping_interval=None)


async def frames(ws: ClientConnection, count: int) -> list[Any]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 10.0)) for _ in range(count)]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


@pytest.mark.parametrize("exchange", sorted(TICKERS))
def test_price_offset_shifts_rest_tickers_and_books(exchange: str, client: httpx.Client) -> None:
    assert abs(bps_off(exchange, TICKERS[exchange](client))) < 10  # basis and spread only
    set_fault(client, exchange, fault="price_offset", bps=300)
    assert bps_off(exchange, TICKERS[exchange](client)) == pytest.approx(300, abs=10)
    path, params, sides = BOOKS[exchange]
    bids, asks = sides(client.get(path, params=params).json())
    book_mid = (float(bids[0][0]) + float(asks[0][0])) / 2.0
    assert (book_mid / normal_mid(exchange) - 1.0) * 1e4 == pytest.approx(300, abs=10)
    other = "kraken" if exchange != "kraken" else "okx"
    assert abs(bps_off(other, TICKERS[other](client))) < 10  # the others are untouched
    set_fault(client, exchange, fault="none")
    assert abs(bps_off(exchange, TICKERS[exchange](client))) < 10


@pytest.mark.parametrize("exchange", sorted(TICKERS))
def test_book_crossed_in_rest_tickers_and_books(exchange: str, client: httpx.Client) -> None:
    bid, ask = TICKERS[exchange](client)
    assert bid < ask
    set_fault(client, exchange, fault="book_crossed")
    bid, ask = TICKERS[exchange](client)
    assert bid > ask
    path, params, sides = BOOKS[exchange]
    bids, asks = sides(client.get(path, params=params).json())
    assert float(bids[0][0]) > float(asks[0][0])


def test_market_fault_composes_with_rest_faults(client: httpx.Client) -> None:
    set_fault(client, "okx", fault="price_offset", bps=-200)
    set_fault(client, "okx", fault="latency", latency_ms=1)
    set_fault(client, "okx", fault="book_crossed")
    listed = {f["fault"] for f in client.get("/_control/faults").json()["faults"]}
    assert listed == {"price_offset", "latency", "book_crossed"}
    bid, ask = _okx(client)
    assert bid > ask and bps_off("okx", (bid, ask)) == pytest.approx(-200, abs=10)
    set_fault(client, "okx", fault="api_error", code=50013)  # replaces latency only
    assert client.get("/okx/api/v5/market/ticker", params={"instId": "BTC-USDT"}).status_code == 429
    listed = {f["fault"] for f in client.get("/_control/faults").json()["faults"]}
    assert listed == {"price_offset", "api_error", "book_crossed"}
    assert client.delete("/_control/faults").json() == {"faults": []}
    time.sleep(0.15)  # ended at the next tick
    bid, ask = _okx(client)
    assert bid < ask and abs(bps_off("okx", (bid, ask))) < 10


def test_price_spike_moves_and_recovers_by_itself(client: httpx.Client) -> None:
    set_fault(client, "bybit", fault="price_spike", bps=-500, duration_s=4)
    time.sleep(0.4)  # rise: min(2 s, duration / 10) = 0.4 s
    deadline = time.monotonic() + 3.0
    seen = []
    while time.monotonic() < deadline:
        seen.append(bps_off("bybit", _bybit(client)))
        time.sleep(0.1)
    assert min(seen) < -300  # the flash move
    time.sleep(max(0.0, deadline + 1.0 - time.monotonic()))
    assert client.get("/_control/faults").json()["faults"] == []  # expired
    assert abs(bps_off("bybit", _bybit(client))) < 10


def test_price_freeze_stops_rest_prices(client: httpx.Client) -> None:
    set_fault(client, "coinbase", fault="price_freeze")
    first = _coinbase(client)
    time.sleep(1.5)
    assert _coinbase(client) == first
    stamp = client.get("/coinbase/products/BTC-USD/ticker").json()["time"]
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    assert abs(time.time() - when) < 5.0  # timestamps stay current (not a stale answer)


def test_volume_spike_grows_rest_24h_volume(client: httpx.Client) -> None:
    def volume() -> float:
        r = client.get("/binance/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"})
        return float(r.json()["volume"])

    def normal() -> float:
        return Market().view("binance", time.time() * 1000.0).volume_24h

    assert volume() == pytest.approx(normal(), rel=1e-6)
    set_fault(client, "binance", fault="volume_spike", ratio=11)
    started = time.time()
    time.sleep(1.0)
    extra = volume() - normal()
    elapsed = time.time() - started
    per_s = normal() / 86_400 * 10  # (ratio - 1) × the normal rate
    assert per_s * 0.5 < extra < per_s * (elapsed + 1.0)


def test_binance_streams_show_offset_crossed_book_and_volume(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    path = "/binance/stream?streams=btcusdt@bookTicker/btcusdt@trade/btcusdt@depth5@100ms"
    set_fault(client, "binance", fault="price_offset", bps=-150)
    set_fault(client, "binance", fault="book_crossed")
    set_fault(client, "binance", fault="volume_spike", ratio=4)

    async def go() -> list[Any]:
        async with dial(sim, path) as ws:
            return await frames(ws, 60)

    got = run(go())
    by_stream: dict[str, list[Any]] = {}
    for frame in got:
        by_stream.setdefault(frame["stream"].split("@", 1)[1], []).append(frame["data"])
    assert {"bookTicker", "trade", "depth5@100ms"} <= set(by_stream)
    for top in by_stream["bookTicker"]:
        bid, ask = float(top["b"]), float(top["a"])
        assert bid > ask and bps_off("binance", (bid, ask)) == pytest.approx(-150, abs=10)
    for book in by_stream["depth5@100ms"]:
        assert float(book["bids"][0][0]) > float(book["asks"][0][0])
    model = Market()
    for trade in by_stream["trade"]:
        assert bps_off("binance", (float(trade["p"]),) * 2) == pytest.approx(-150, abs=10)
        normal = _trade_qty(trade["t"]) * model.view("binance", trade["E"]).volume_mult
        assert float(trade["q"]) == pytest.approx(4 * normal, rel=0.02, abs=2e-8)


def test_okx_ticker_channel_shows_the_offset(sim: SimulatorServer, client: httpx.Client) -> None:
    set_fault(client, "okx", fault="price_offset", bps=250)

    async def go() -> list[Any]:
        async with dial(sim, "/okx/ws/v5/public") as ws:
            sub = {"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]}
            await ws.send(json.dumps(sub))
            out: list[Any] = []
            while len(out) < 3:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10.0))
                if msg.get("arg", {}).get("channel") == "tickers" and "data" in msg:
                    out.append(msg["data"][0])
            return out

    for item in run(go()):
        quote = float(item["bidPx"]), float(item["askPx"])
        assert bps_off("okx", quote) == pytest.approx(250, abs=10)
