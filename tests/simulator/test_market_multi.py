"""Several markets per exchange (BTC and ETH) in the market model and in every REST API, and the
book diff that the WebSocket diff streams are built from."""

from __future__ import annotations

import itertools

import httpx
import pytest

from simulator.market import (
    INSTRUMENTS,
    LEVEL_PERIOD_TICKS,
    TICK_MS,
    Level,
    Market,
    book_diff,
    reference_price,
)

T0 = 1_780_000_000_000  # a fixed instant: the model is a pure function of time

EXPECTED_MARKETS = {
    "binance": ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
    "bybit": ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
    "okx": ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
    "coinbase": ("BTC/USD", "ETH/USD", "SOL/USD"),
    "kraken": ("BTC/USD", "ETH/USD", "SOL/USD"),
}
REST_SYMBOLS = {
    ("binance", "ETH/USDT"): "ETHUSDT",
    ("bybit", "ETH/USDT"): "ETHUSDT",
    ("okx", "ETH/USDT"): "ETH-USDT",
    ("coinbase", "ETH/USD"): "ETH-USD",
    ("kraken", "ETH/USD"): "XETHZUSD",
    ("kraken", "BTC/USD"): "XXBTZUSD",
}


def apply(book: dict[str, str], changes: list[tuple[str, str]]) -> None:
    """Apply level changes the way a client does: a zero quantity removes the level."""
    for price, qty in changes:
        if float(qty) == 0:
            book.pop(price, None)
        else:
            book[price] = qty


def top(book: dict[str, str], depth: int, descending: bool) -> list[tuple[str, str]]:
    prices = sorted(book, key=float, reverse=descending)[:depth]
    return [(p, book[p]) for p in prices]


# -- model ------------------------------------------------------------------------------------


def test_every_exchange_lists_btc_eth_and_sol_btc_first() -> None:
    market = Market()
    for exchange, expected in EXPECTED_MARKETS.items():
        assert market.markets(exchange) == expected
    for (exchange, name), symbol in REST_SYMBOLS.items():
        assert market.symbol(exchange, name) == symbol
        assert market.market_for_symbol(exchange, symbol) == name
    assert market.market_for_symbol("kraken", "XBTUSD") == "BTC/USD"
    assert market.market_for_symbol("kraken", "ETHUSD") == "ETH/USD"
    assert market.market_for_symbol("binance", "DOGEUSDT") is None
    with pytest.raises(KeyError):
        market.view("binance", T0, "DOGE/USDT")


def test_eth_has_its_own_price_grid_and_sequences() -> None:
    market = Market()
    assert market.view("binance", T0) is market.view("binance", T0, "BTC/USDT")
    for exchange in EXPECTED_MARKETS:
        btc = market.view(exchange, T0)
        eth = market.view(exchange, T0, market.markets(exchange)[1])
        assert 60_000 < btc.best_bid < 70_000 and 3_000 < eth.best_bid < 3_800
        assert eth.best_bid < eth.best_ask
        assert eth.trade_id != btc.trade_id or exchange == "kraken"
        bids, asks = eth.levels(5)
        decimals = eth.venue.price_decimals
        assert all(len(p.partition(".")[2]) == decimals for p, *_ in bids + asks)
    # the ETH reference moves on its own phases, not as a scaled BTC
    ratios = {round(reference_price(t) / reference_price(t, "ETH"), 3) for t in range(0, 7200, 600)}
    assert len(ratios) > 3


def test_update_ids_increase_and_leave_room_for_the_snapshot_id() -> None:
    market = Market()
    for exchange, markets in EXPECTED_MARKETS.items():
        for name in markets:
            ids = [market.view(exchange, T0 + i * TICK_MS, name).update_id for i in range(300)]
            if exchange == "kraken":
                continue  # Kraken books carry no sequence
            assert all(b - a >= 2 for a, b in itertools.pairwise(ids)), exchange


def test_books_persist_between_ticks() -> None:
    market = Market()
    a = market.view("binance", T0, "ETH/USDT")
    b = market.view("binance", T0 + TICK_MS, "ETH/USDT")
    bids_a, _ = a.levels(500)
    bids_b, _ = b.levels(500)
    common = {(p, q) for p, q, *_ in bids_a} & {(p, q) for p, q, *_ in bids_b}
    assert len(common) > 300  # most levels survive one tick
    # each level changes once per LEVEL_PERIOD_TICKS: over a full period every level moves
    far = market.view("binance", T0 + LEVEL_PERIOD_TICKS * TICK_MS, "ETH/USDT").levels(500)[0]
    same_price = {p: q for p, q, *_ in far}
    assert all(same_price.get(p) != q for p, q, *_ in bids_a if p in same_price)


def test_book_diff_zero_styles_and_order() -> None:
    prev: list[Level] = [("10.00", "1.00000000", 1, 0), ("9.99", "2.00000000", 1, 0)]
    cur: list[Level] = [("10.01", "1.50000000", 1, 0), ("10.00", "1.00000000", 1, 0)]
    assert book_diff(prev, cur) == [("10.01", "1.50000000"), ("9.99", "0.00000000")]
    trimmed_prev: list[Level] = [("100.1", "2", 1, 0), ("100.3", "1.5", 1, 0)]
    trimmed_cur: list[Level] = [("100.2", "0.25", 1, 0)]
    assert book_diff(trimmed_prev, trimmed_cur) == [
        ("100.1", "0"),
        ("100.2", "0.25"),
        ("100.3", "0"),
    ]
    assert book_diff(prev, prev) == []
    assert book_diff(prev, cur, zero="0", descending=True)[-1] == ("9.99", "0")


@pytest.mark.parametrize(
    ("exchange", "name"), [(ex, m) for ex, ms in EXPECTED_MARKETS.items() for m in ms]
)
def test_snapshot_plus_diffs_equals_later_snapshot(exchange: str, name: str) -> None:
    """A depth-N snapshot at tick N plus the diffs of ticks N+1..M equals the snapshot at M."""
    market = Market()
    depth = 100
    start = market.view(exchange, T0, name)
    bids0, asks0 = start.levels(depth)
    book_b = {p: q for p, q, *_ in bids0}
    book_a = {p: q for p, q, *_ in asks0}
    prev = start
    for i in range(1, 80):
        cur = market.view(exchange, T0 + i * TICK_MS, name)
        db, da = cur.diff_from(prev, depth)
        assert all(q == cur.zero_qty or float(q) > 0 for _, q in db + da)
        apply(book_b, db)
        apply(book_a, da)
        prev = cur
    bids, asks = prev.levels(depth)
    assert top(book_b, depth, True) == [(p, q) for p, q, *_ in bids]
    assert top(book_a, depth, False) == [(p, q) for p, q, *_ in asks]
    assert len(book_b) == len(book_a) == depth


def test_every_venue_has_three_instruments_with_distinct_seeds() -> None:
    seeds = [v.seed for ms in INSTRUMENTS.values() for v in ms]
    assert len(seeds) == len(set(seeds)) == 15


# -- REST -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_binance_rest_serves_every_market(client: httpx.Client) -> None:
    eth = client.get("/binance/api/v3/ticker/24hr?symbol=ETHUSDT").json()
    assert eth["symbol"] == "ETHUSDT" and 3_000 < float(eth["lastPrice"]) < 3_800
    listed = client.get("/binance/api/v3/ticker/price").json()
    assert [t["symbol"] for t in listed] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    book = client.get("/binance/api/v3/depth?symbol=ETHUSDT&limit=5").json()
    assert len(book["bids"]) == 5 and 3_000 < float(book["bids"][0][0]) < 3_800
    assert client.get("/binance/api/v3/ticker/bookTicker?symbol=XRPUSDT").status_code == 400
    bad = client.get("/binance/api/v3/depth?symbol=XRPUSDT")
    assert (bad.status_code, bad.json()["code"]) == (400, -1121)


@pytest.mark.e2e
def test_bybit_okx_coinbase_kraken_rest_serve_eth(client: httpx.Client) -> None:
    bybit = client.get("/bybit/v5/market/tickers?category=spot&symbol=ETHUSDT").json()
    assert bybit["result"]["list"][0]["symbol"] == "ETHUSDT"
    assert len(client.get("/bybit/v5/market/tickers?category=spot").json()["result"]["list"]) == 3
    ob = client.get("/bybit/v5/market/orderbook?category=spot&symbol=ETHUSDT&limit=3").json()
    assert ob["result"]["s"] == "ETHUSDT" and float(ob["result"]["b"][0][0]) < 4_000
    okx = client.get("/okx/api/v5/market/ticker?instId=ETH-USDT").json()["data"][0]
    assert okx["instId"] == "ETH-USDT" and float(okx["last"]) < 4_000
    books = client.get("/okx/api/v5/market/books?instId=ETH-USDT&sz=2").json()["data"][0]
    assert len(books["bids"]) == 2
    unknown = client.get("/okx/api/v5/market/ticker?instId=DOGE-USDT").json()
    assert unknown["code"] == "51001"
    cb = client.get("/coinbase/products/ETH-USD/ticker").json()
    assert float(cb["price"]) < 4_000
    assert client.get("/coinbase/products/ETH-USD/book?level=2").json()["bids"]
    assert client.get("/coinbase/products/DOGE-USD/ticker").status_code == 404
    kr = client.get("/kraken/0/public/Ticker?pair=ETHUSD").json()
    assert list(kr["result"]) == ["XETHZUSD"]
    both = client.get("/kraken/0/public/Ticker").json()["result"]
    assert list(both) == ["XXBTZUSD", "XETHZUSD", "SOLUSD"]
    depth = client.get("/kraken/0/public/Depth?pair=XETHZUSD&count=3").json()
    assert len(depth["result"]["XETHZUSD"]["asks"]) == 3
    assert client.get("/kraken/0/public/Ticker?pair=DOGEUSD").json()["error"] == [
        "EQuery:Unknown asset pair"
    ]
