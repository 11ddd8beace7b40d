"""Tests for the exchange simulator (``simulator/``): routes, shapes, faults, control API, CLI.

The server runs in-process on a background thread (one per module); one test starts the CLI as a
subprocess. Exchange facts asserted here come from shared/reference/exchange-api-facts.md (source
tags in the simulator docstrings).
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from simulator import SimulatorServer, run_in_thread
from simulator.cli import parse_listen
from simulator.market import Market, reference_price

pytestmark = pytest.mark.e2e  # an in-thread simulator or its CLI process (all but two tests)

ISO_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ISO_S = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
KRAKEN_RFC1123 = re.compile(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \+0000$")
TRANSPORT_ERRORS = (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError)


# -- fixtures ------------------------------------------------------------------------------


def set_fault(client: httpx.Client, **spec: Any) -> dict[str, Any]:
    """POST a fault and assert it was accepted; returns the response body."""
    r = client.post("/_control/faults", json=spec)
    assert r.status_code == 200, r.text
    return r.json()


def now_ms() -> int:
    """Current wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


def is_num_str(value: Any) -> bool:
    """A decimal number encoded as a JSON string (exchanges send prices as strings)."""
    return isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) is not None


# -- routes and shapes: Binance -------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    r = client.get("/_control/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_binance_ping_time_status(client: httpx.Client) -> None:
    r = client.get("/binance/api/v3/ping")
    assert (r.status_code, r.json()) == (200, {})
    assert r.headers["content-type"] == "application/json"
    assert abs(parsedate_to_datetime(r.headers["date"]).timestamp() - time.time()) < 5

    before = now_ms()
    server_time = client.get("/binance/api/v3/time").json()["serverTime"]
    assert isinstance(server_time, int)
    assert before - 5 <= server_time <= now_ms() + 5  # milliseconds

    assert client.get("/binance/sapi/v1/system/status").json() == {"status": 0, "msg": "normal"}


def test_binance_ticker_24hr_full_shape(client: httpx.Client) -> None:
    body = client.get("/binance/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"}).json()
    string_fields = [
        "priceChange",
        "priceChangePercent",
        "weightedAvgPrice",
        "prevClosePrice",
        "lastPrice",
        "lastQty",
        "bidPrice",
        "bidQty",
        "askPrice",
        "askQty",
        "openPrice",
        "highPrice",
        "lowPrice",
        "volume",
        "quoteVolume",
    ]
    int_fields = ["openTime", "closeTime", "firstId", "lastId", "count"]
    assert set(body) == {"symbol", *string_fields, *int_fields}
    assert body["symbol"] == "BTCUSDT"
    assert all(is_num_str(body[f]) for f in string_fields)
    assert all(isinstance(body[f], int) for f in int_fields)
    assert abs(body["closeTime"] - now_ms()) < 2000  # ms, current
    assert body["closeTime"] - body["openTime"] == 86_400_000
    assert body["count"] == body["lastId"] - body["firstId"] + 1
    assert float(body["bidPrice"]) < float(body["askPrice"])
    assert float(body["lowPrice"]) <= float(body["lastPrice"]) <= float(body["highPrice"])
    assert re.fullmatch(r"\d+\.\d{8}", body["lastPrice"])


def test_binance_price_and_book_ticker(client: httpx.Client) -> None:
    price = client.get("/binance/api/v3/ticker/price?symbol=BTCUSDT").json()
    assert set(price) == {"symbol", "price"} and is_num_str(price["price"])
    book = client.get("/binance/api/v3/ticker/bookTicker?symbol=BTCUSDT").json()
    assert set(book) == {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}
    assert all(is_num_str(book[k]) for k in ("bidPrice", "bidQty", "askPrice", "askQty"))
    everything = client.get("/binance/api/v3/ticker/price").json()
    assert isinstance(everything, list) and everything[0]["symbol"] == "BTCUSDT"


@pytest.mark.parametrize("limit", [1, 5, 100, 150])
def test_binance_depth_honours_limit(client: httpx.Client, limit: int) -> None:
    body = client.get(f"/binance/api/v3/depth?symbol=BTCUSDT&limit={limit}").json()
    assert isinstance(body["lastUpdateId"], int)
    assert len(body["bids"]) == len(body["asks"]) == limit
    for side in ("bids", "asks"):
        assert all(len(lvl) == 2 and all(is_num_str(x) for x in lvl) for lvl in body[side])
    bids = [float(p) for p, _ in body["bids"]]
    asks = [float(p) for p, _ in body["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < asks[0]


def test_binance_depth_default_limit_is_100(client: httpx.Client) -> None:
    body = client.get("/binance/api/v3/depth?symbol=BTCUSDT").json()
    assert len(body["bids"]) == 100


def test_binance_errors(client: httpx.Client) -> None:
    r = client.get("/binance/api/v3/ticker/24hr?symbol=FOOBAR")
    assert r.status_code == 400
    assert r.json() == {"code": -1121, "msg": "Invalid symbol."}
    assert "X-MBX-USED-WEIGHT-1M" in r.headers
    r = client.get("/binance/api/v3/depth?symbol=DOGEUSDT&limit=5")
    assert (r.status_code, r.json()["code"]) == (400, -1121)
    r = client.get("/binance/api/v3/depth")
    assert (r.status_code, r.json()["code"]) == (400, -1102)


def _wait_for_fresh_minute_window() -> None:
    """Avoid a UTC-minute rollover (weight window reset) in the middle of a weight test."""
    if time.time() % 60 > 57:
        time.sleep(60 - time.time() % 60 + 0.05)


def test_binance_weight_header_counts_documented_weights(client: httpx.Client) -> None:
    _wait_for_fresh_minute_window()

    def used(r: httpx.Response) -> int:
        """The minute's weight from both Binance headers (they must agree)."""
        assert r.headers["X-MBX-USED-WEIGHT-1M"] == r.headers["X-MBX-USED-WEIGHT"]
        return int(r.headers["X-MBX-USED-WEIGHT-1M"])

    start = used(client.get("/binance/api/v3/ping"))
    assert start >= 1
    cases = [
        ("/binance/api/v3/ping", 1),
        ("/binance/api/v3/time", 1),
        ("/binance/sapi/v1/system/status", 1),
        ("/binance/api/v3/ticker/24hr?symbol=BTCUSDT", 2),
        ("/binance/api/v3/ticker/price?symbol=BTCUSDT", 2),
        ("/binance/api/v3/ticker/bookTicker?symbol=BTCUSDT", 2),
        ("/binance/api/v3/depth?symbol=BTCUSDT&limit=100", 5),
        ("/binance/api/v3/depth?symbol=BTCUSDT&limit=101", 25),
        ("/binance/api/v3/depth?symbol=BTCUSDT&limit=1000", 50),
        ("/binance/api/v3/depth?symbol=BTCUSDT&limit=5000", 250),
        ("/binance/api/v3/ticker/24hr", 80),
        ("/binance/api/v3/ticker/24hr?symbol=NOPE", 2),  # errors carry the header too
    ]
    previous = start
    for path, weight in cases:
        current = used(client.get(path))
        assert current - previous == weight, path
        previous = current
    stats = client.get("/_control/stats").json()
    assert stats["binance_used_weight_1m"] == previous


# -- routes and shapes: Bybit, OKX, Coinbase, Kraken ----------------------------------------


def _bybit_ok(r: httpx.Response) -> Any:
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert body["retCode"] == 0 and body["retExtInfo"] == {}
    assert isinstance(body["time"], int) and abs(body["time"] - now_ms()) < 2000
    for header in ("X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp"):
        assert r.headers[header].isdigit()
    return body["result"]


def test_bybit_routes(client: httpx.Client) -> None:
    t = client.get("/bybit/v5/market/time")
    result = _bybit_ok(t)
    assert isinstance(result["timeSecond"], str) and isinstance(result["timeNano"], str)
    assert int(result["timeNano"]) // 1_000_000 == t.json()["time"]  # ns vs ms
    assert int(result["timeSecond"]) == t.json()["time"] // 1000  # s

    status = _bybit_ok(client.get("/bybit/v5/system/status"))
    assert all(item["state"] != "ongoing" for item in status["list"])
    assert all(item["begin"].isdigit() and item["end"].isdigit() for item in status["list"])

    tick = _bybit_ok(client.get("/bybit/v5/market/tickers?category=spot&symbol=BTCUSDT"))
    assert tick["category"] == "spot"
    item = tick["list"][0]
    assert item["symbol"] == "BTCUSDT"
    for key in (
        "bid1Price",
        "bid1Size",
        "ask1Price",
        "ask1Size",
        "lastPrice",
        "prevPrice24h",
        "price24hPcnt",
        "highPrice24h",
        "lowPrice24h",
        "turnover24h",
        "volume24h",
    ):
        assert is_num_str(item[key]), key

    book = _bybit_ok(client.get("/bybit/v5/market/orderbook?category=spot&symbol=BTCUSDT&limit=7"))
    assert book["s"] == "BTCUSDT" and len(book["a"]) == len(book["b"]) == 7
    assert all(isinstance(book[k], int) for k in ("ts", "u", "seq", "cts"))
    assert abs(book["ts"] - now_ms()) < 2000 and book["cts"] <= book["ts"]  # ms
    default = _bybit_ok(client.get("/bybit/v5/market/orderbook?category=spot&symbol=BTCUSDT"))
    assert len(default["a"]) == 1  # default limit 1


def test_bybit_category_required(client: httpx.Client) -> None:
    r = client.get("/bybit/v5/market/tickers?symbol=BTCUSDT")
    assert r.status_code == 200
    body = r.json()
    assert body["retCode"] == 10001 and "category" in body["retMsg"]
    r = client.get("/bybit/v5/market/orderbook?category=spot&symbol=DOGEUSDT")
    assert r.json()["retCode"] == 10001


def test_okx_routes(client: httpx.Client) -> None:
    t = client.get("/okx/api/v5/public/time").json()
    assert t["code"] == "0" and t["msg"] == ""
    ts = t["data"][0]["ts"]
    assert isinstance(ts, str) and abs(int(ts) - now_ms()) < 2000

    assert client.get("/okx/api/v5/system/status").json() == {"code": "0", "msg": "", "data": []}

    tick = client.get("/okx/api/v5/market/ticker?instId=BTC-USDT").json()
    assert tick["code"] == "0"
    item = tick["data"][0]
    assert item["instType"] == "SPOT" and item["instId"] == "BTC-USDT"
    for key in (
        "last",
        "lastSz",
        "askPx",
        "askSz",
        "bidPx",
        "bidSz",
        "open24h",
        "high24h",
        "low24h",
        "volCcy24h",
        "vol24h",
        "sodUtc0",
        "sodUtc8",
        "ts",
    ):
        assert is_num_str(item[key]), key
    assert abs(int(item["ts"]) - now_ms()) < 2000

    books = client.get("/okx/api/v5/market/books?instId=BTC-USDT&sz=3").json()
    book = books["data"][0]
    assert len(book["asks"]) == len(book["bids"]) == 3
    assert all(
        len(lvl) == 4 and lvl[2] == "0" and all(isinstance(x, str) for x in lvl)
        for lvl in book["asks"] + book["bids"]
    )
    assert isinstance(book["ts"], str)
    one = client.get("/okx/api/v5/market/books?instId=BTC-USDT").json()["data"][0]
    assert len(one["asks"]) == 1  # default sz 1

    missing = client.get("/okx/api/v5/market/ticker")
    assert missing.json()["code"] != "0"


def test_coinbase_routes(client: httpx.Client) -> None:
    t = client.get("/coinbase/time").json()
    assert set(t) == {"iso", "epoch"}
    assert ISO_MS.match(t["iso"])
    assert isinstance(t["epoch"], float) and abs(t["epoch"] - time.time()) < 2  # seconds

    tick = client.get("/coinbase/products/BTC-USD/ticker").json()
    assert set(tick) == {"trade_id", "price", "size", "time", "bid", "ask", "volume"}
    assert isinstance(tick["trade_id"], int)
    assert ISO_US.match(tick["time"])
    assert all(is_num_str(tick[k]) for k in ("price", "size", "bid", "ask", "volume"))

    book = client.get("/coinbase/products/BTC-USD/book?level=2").json()
    assert isinstance(book["sequence"], int) and len(book["bids"]) > 1
    price, size, orders = book["bids"][0]
    assert is_num_str(price) and is_num_str(size) and isinstance(orders, int)
    level1 = client.get("/coinbase/products/BTC-USD/book?level=1").json()
    assert len(level1["bids"]) == len(level1["asks"]) == 1

    r = client.get("/coinbase/products/DOGE-EUR/ticker")
    assert (r.status_code, r.json()) == (404, {"message": "NotFound"})


def test_kraken_routes(client: httpx.Client) -> None:
    t = client.get("/kraken/0/public/Time").json()
    assert t["error"] == []
    assert isinstance(t["result"]["unixtime"], int)
    assert abs(t["result"]["unixtime"] - time.time()) < 2  # seconds
    assert KRAKEN_RFC1123.match(t["result"]["rfc1123"])

    status = client.get("/kraken/0/public/SystemStatus").json()["result"]
    assert status["status"] == "online" and ISO_S.match(status["timestamp"])
    assert status["upcoming_maintenance"] == [] and status["emergency"] == []

    tick = client.get("/kraken/0/public/Ticker?pair=XBTUSD").json()
    assert tick["error"] == [] and list(tick["result"]) == ["XXBTZUSD"]
    info = tick["result"]["XXBTZUSD"]
    assert set(info) == {"a", "b", "c", "v", "p", "t", "l", "h", "o"}
    assert len(info["a"]) == len(info["b"]) == 3 and len(info["c"]) == 2
    assert all(isinstance(n, int) for n in info["t"])
    assert float(info["b"][0]) < float(info["a"][0])

    depth = client.get("/kraken/0/public/Depth?pair=XBTUSD&count=4").json()
    book = depth["result"]["XXBTZUSD"]
    assert len(book["asks"]) == len(book["bids"]) == 4
    for price, volume, ts in book["asks"] + book["bids"]:
        assert is_num_str(price) and is_num_str(volume)
        assert isinstance(ts, int) and time.time() - 120 < ts <= time.time() + 1  # seconds

    bad = client.get("/kraken/0/public/Ticker?pair=FOOBAR")
    assert (bad.status_code, bad.json()) == (200, {"error": ["EQuery:Unknown asset pair"]})


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("/binance/api/v3/nope", lambda b: isinstance(b, dict) and isinstance(b["code"], int)),
        ("/bybit/v5/nope", lambda b: b is None),  # front-end HTML page
        ("/okx/api/v5/nope", lambda b: b["code"] != "0"),
        ("/coinbase/nope", lambda b: b == {"message": "NotFound"}),
        ("/kraken/0/public/Nope", lambda b: b["error"] == ["EGeneral:Unknown method"]),
        ("/nosuchexchange/x", lambda b: "error" in b),
    ],
)
def test_unknown_paths_are_404_in_exchange_style(
    client: httpx.Client, path: str, check: Any
) -> None:
    r = client.get(path)
    assert r.status_code == 404
    body = r.json() if r.headers["content-type"] == "application/json" else None
    assert check(body), r.text


def test_exchanges_have_no_ping_where_undocumented(client: httpx.Client) -> None:
    assert client.get("/bybit/v5/market/ping").status_code == 404
    r = client.post(
        "/_control/faults", json={"exchange": "okx", "fault": "down", "endpoint": "ping"}
    )
    assert r.status_code == 400 and "endpoint" in r.json()["error"]


def test_keep_alive_and_pipelining(sim: SimulatorServer) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        req = b"GET /binance/api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req + req.replace(b"ping", b"time"))
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            assert chunk, "connection closed early"
            data += chunk
        assert b"{}" in data and b"serverTime" in data


# -- faults -----------------------------------------------------------------------------------


def test_down_reset_is_a_transport_error(client: httpx.Client, sim: SimulatorServer) -> None:
    set_fault(client, exchange="binance", fault="down")
    with httpx.Client(base_url=sim.url, timeout=2.0, trust_env=False) as fresh:
        with pytest.raises(TRANSPORT_ERRORS):
            fresh.get("/binance/api/v3/ping")
        with pytest.raises(TRANSPORT_ERRORS):
            fresh.get("/binance/api/v3/nope")  # unknown paths of a down exchange too
    assert client.get("/okx/api/v5/public/time").status_code == 200  # other exchanges fine
    stats = client.get("/_control/stats").json()
    assert stats["outcomes"]["binance"]["reset"] >= 2


def test_down_hang_times_out_without_blocking_others(
    client: httpx.Client, sim: SimulatorServer
) -> None:
    set_fault(client, exchange="kraken", fault="down", mode="hang")
    with httpx.Client(base_url=sim.url, timeout=0.3, trust_env=False) as short:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            short.get("/kraken/0/public/Time")
        assert time.monotonic() - started < 2
    # while a hung connection is open, everything else answers promptly
    hung = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    try:
        hung.sendall(b"GET /kraken/0/public/Time HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        assert client.get("/bybit/v5/market/time").json()["retCode"] == 0
        assert time.monotonic() - started < 0.5
    finally:
        hung.close()


def test_endpoint_scoped_fault_leaves_other_endpoints_healthy(
    client: httpx.Client, sim: SimulatorServer
) -> None:
    body = set_fault(client, exchange="binance", fault="down", endpoint="ticker")
    assert body["faults"] == [
        {"exchange": "binance", "endpoint": "ticker", "fault": "down", "mode": "reset"}
    ]
    with httpx.Client(base_url=sim.url, timeout=2.0, trust_env=False) as fresh:
        for path in (
            "/api/v3/ticker/24hr?symbol=BTCUSDT",
            "/api/v3/ticker/price",
            "/api/v3/ticker/bookTicker?symbol=BTCUSDT",
        ):
            with pytest.raises(TRANSPORT_ERRORS):
                fresh.get("/binance" + path)
    assert client.get("/binance/api/v3/ping").status_code == 200
    assert client.get("/binance/api/v3/depth?symbol=BTCUSDT&limit=5").status_code == 200


def test_endpoint_fault_overrides_exchange_fault_and_replaces_same_scope(
    client: httpx.Client,
) -> None:
    set_fault(client, exchange="okx", fault="http_error", status=500)
    set_fault(client, exchange="okx", endpoint="time", fault="latency", latency_ms=0)
    assert client.get("/okx/api/v5/public/time").status_code == 200
    r = client.get("/okx/api/v5/market/ticker?instId=BTC-USDT")
    assert r.status_code == 500 and r.json()["code"] == "50026"
    # same scope: replaced, not stacked
    faults = set_fault(client, exchange="okx", fault="rate_limited")["faults"]
    assert [(f["endpoint"], f["fault"]) for f in faults] == [
        (None, "rate_limited"),
        ("time", "latency"),
    ]
    # "none" with an endpoint clears only that scope; without, the whole exchange
    faults = set_fault(client, exchange="okx", endpoint="time", fault="none")["faults"]
    assert [f["fault"] for f in faults] == ["rate_limited"]
    assert client.get("/okx/api/v5/public/time").status_code == 429
    assert set_fault(client, exchange="okx", fault="none")["faults"] == []


def test_latency_adds_delay_and_does_not_block(client: httpx.Client, sim: SimulatorServer) -> None:
    set_fault(client, exchange="coinbase", fault="latency", latency_ms=300)
    started = time.monotonic()
    assert client.get("/coinbase/time").status_code == 200
    elapsed = time.monotonic() - started
    assert 0.28 <= elapsed < 1.5

    async def burst() -> float:
        async with httpx.AsyncClient(base_url=sim.url, timeout=5, trust_env=False) as ac:
            t0 = time.monotonic()
            replies = await asyncio.gather(*(ac.get("/coinbase/time") for _ in range(5)))
            assert all(r.status_code == 200 for r in replies)
            return time.monotonic() - t0

    assert asyncio.run(burst()) < 0.9  # five concurrent 300 ms delays overlap
    started = time.monotonic()
    client.get("/kraken/0/public/Time")
    assert time.monotonic() - started < 0.2  # other exchanges unaffected


def test_latency_jitter_stays_in_range(client: httpx.Client) -> None:
    set_fault(client, exchange="kraken", fault="latency", latency_ms=100, jitter_ms=50)
    for _ in range(3):
        started = time.monotonic()
        client.get("/kraken/0/public/Time")
        assert 0.045 <= time.monotonic() - started < 0.6


@pytest.mark.parametrize(
    ("exchange", "path", "status", "check"),
    [
        ("binance", "/api/v3/ping", 500, lambda r: r.json()["code"] == -1001),
        ("binance", "/api/v3/ping", 503, lambda r: "503 Service Unavailable" in r.text),
        ("coinbase", "/time", 503, lambda r: r.headers["content-type"] == "text/html"),
        ("bybit", "/v5/market/time", 500, lambda r: r.json()["retCode"] == 10016),
        ("okx", "/api/v5/public/time", 503, lambda r: r.json()["code"] == "50001"),
        ("coinbase", "/time", 500, lambda r: r.json() == {"message": "Internal Server Error"}),
        ("kraken", "/0/public/Time", 503, lambda r: "<html>" in r.text),
        ("okx", "/api/v5/public/time", 502, lambda r: "502 Bad Gateway" in r.text),
    ],
)
def test_http_error_uses_exchange_shape(
    client: httpx.Client, exchange: str, path: str, status: int, check: Any
) -> None:
    set_fault(client, exchange=exchange, fault="http_error", status=status)
    r = client.get(f"/{exchange}{path}")
    assert r.status_code == status
    assert check(r), r.text
    if exchange == "binance":
        assert "X-MBX-USED-WEIGHT-1M" in r.headers


def test_http_error_body_override(client: httpx.Client) -> None:
    set_fault(client, exchange="binance", fault="http_error", status=503, body="json")
    r = client.get("/binance/api/v3/time")
    assert r.status_code == 503 and r.json()["code"] == -1008
    set_fault(client, exchange="binance", fault="http_error", status=502, body="json")
    r = client.get("/binance/api/v3/time")
    assert r.status_code == 502 and r.json()["code"] == -1001
    set_fault(client, exchange="binance", fault="http_error", status=500, body="html")
    r = client.get("/binance/api/v3/time")
    assert r.headers["content-type"] == "text/html" and "500" in r.text


@pytest.mark.parametrize(
    ("exchange", "path", "status", "body"),
    [
        (
            "binance",
            "/api/v3/ticker/price?symbol=BTCUSDT",
            429,
            {
                "code": -1003,
                "msg": "Too much request weight used; current limit is 6000 request weight per 1 "
                "MINUTE. Please use WebSocket Streams for live updates to avoid polling the "
                "API.",
            },
        ),
        (
            "bybit",
            "/v5/market/time",
            200,
            {
                "retCode": 10006,
                "retMsg": "Too many visits. Exceeded the API Rate Limit.",
                "result": {},
                "retExtInfo": {},
            },
        ),
        (
            "okx",
            "/api/v5/public/time",
            429,
            {"code": "50011", "msg": "Too Many Requests", "data": []},
        ),
        ("coinbase", "/time", 429, {"message": "Too Many Requests"}),
        ("kraken", "/0/public/Time", 200, {"error": ["EAPI:Rate limit exceeded"]}),
    ],
)
def test_rate_limited_all_exchanges(
    client: httpx.Client, exchange: str, path: str, status: int, body: Any
) -> None:
    set_fault(client, exchange=exchange, fault="rate_limited")
    r = client.get(f"/{exchange}{path}")
    assert r.status_code == status
    got = r.json()
    if exchange == "bybit":
        assert abs(got.pop("time") - now_ms()) < 2000
    assert got == body
    if exchange == "binance":
        assert r.headers["Retry-After"] == "30"
        assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) >= 2


def test_binance_rate_limited_custom_retry_after(client: httpx.Client) -> None:
    set_fault(client, exchange="binance", fault="rate_limited", retry_after=7)
    assert client.get("/binance/api/v3/ping").headers["Retry-After"] == "7"


def test_binance_banned(client: httpx.Client) -> None:
    set_fault(client, exchange="binance", fault="banned")
    before = now_ms()
    r = client.get("/binance/api/v3/depth?symbol=BTCUSDT")
    assert r.status_code == 418
    assert r.headers["Retry-After"] == "120"
    assert "X-MBX-USED-WEIGHT-1M" in r.headers
    body = r.json()
    assert body["code"] == -1003
    match = re.fullmatch(
        r"Way too much request weight used; IP banned until (\d+)\. Please use WebSocket "
        r"Streams for live updates to avoid bans\.",
        body["msg"],
    )
    assert match is not None
    assert before + 119_000 <= int(match.group(1)) <= now_ms() + 121_000


@pytest.mark.parametrize("exchange", ["okx", "coinbase"])
def test_banned_rejected_where_undocumented(client: httpx.Client, exchange: str) -> None:
    r = client.post("/_control/faults", json={"exchange": exchange, "fault": "banned"})
    assert r.status_code == 400 and r.json()["error"].startswith("fault:")
    assert exchange in r.json()["error"]


def test_maintenance_binance(client: httpx.Client) -> None:
    set_fault(client, exchange="binance", fault="maintenance")
    status = client.get("/binance/sapi/v1/system/status").json()
    assert status == {"status": 1, "msg": "system_maintenance"}
    assert client.get("/binance/api/v3/ticker/price?symbol=BTCUSDT").status_code == 200


def test_maintenance_bybit(client: httpx.Client) -> None:
    set_fault(client, exchange="bybit", fault="maintenance", duration_s=600)
    items = client.get("/bybit/v5/system/status").json()["result"]["list"]
    ongoing = [i for i in items if i["state"] == "ongoing"]
    assert len(ongoing) == 1
    assert int(ongoing[0]["end"]) - int(ongoing[0]["begin"]) == 600_000
    assert int(ongoing[0]["begin"]) <= now_ms()


def test_maintenance_okx(client: httpx.Client) -> None:
    set_fault(client, exchange="okx", fault="maintenance")
    data = client.get("/okx/api/v5/system/status").json()["data"]
    assert len(data) == 1
    item = data[0]
    assert item["state"] == "ongoing"
    assert item["begin"].isdigit() and item["end"].isdigit() and item["begin"] < item["end"]
    for key in ("serviceType", "maintType", "env", "system", "title", "href"):
        assert isinstance(item[key], str)
    r = client.get("/okx/api/v5/market/ticker?instId=BTC-USDT")
    assert r.status_code == 503 and r.json()["code"] == "50001"
    assert client.get("/okx/api/v5/public/time").status_code == 200
    scheduled = client.get("/okx/api/v5/system/status?state=scheduled").json()
    assert scheduled["data"] == []


def test_maintenance_kraken(client: httpx.Client) -> None:
    set_fault(client, exchange="kraken", fault="maintenance")
    assert client.get("/kraken/0/public/SystemStatus").json()["result"]["status"] == "maintenance"
    r = client.get("/kraken/0/public/Ticker?pair=XBTUSD")
    assert (r.status_code, r.json()) == (200, {"error": ["EService:Unavailable"]})


def test_maintenance_scoped_to_status_only(client: httpx.Client) -> None:
    set_fault(client, exchange="kraken", endpoint="status", fault="maintenance")
    assert client.get("/kraken/0/public/SystemStatus").json()["result"]["status"] == "maintenance"
    assert client.get("/kraken/0/public/Ticker?pair=XBTUSD").json()["error"] == []


def test_maintenance_rejected_for_coinbase(client: httpx.Client) -> None:
    r = client.post("/_control/faults", json={"exchange": "coinbase", "fault": "maintenance"})
    assert r.status_code == 400
    assert "fault" in r.json()["error"] and "status" in r.json()["error"]


def test_clock_skew_shifts_every_server_time(client: httpx.Client) -> None:
    skew = 5_000
    for exchange in ("binance", "bybit", "okx", "coinbase", "kraken"):
        set_fault(client, exchange=exchange, fault="clock_skew", skew_ms=skew)
    real = now_ms()
    r = client.get("/binance/api/v3/time")
    assert abs(r.json()["serverTime"] - real - skew) < 1000
    assert abs(parsedate_to_datetime(r.headers["date"]).timestamp() * 1000 - real) < 2000
    bybit = client.get("/bybit/v5/market/time").json()
    assert abs(bybit["time"] - real - skew) < 1000
    assert abs(int(bybit["result"]["timeSecond"]) * 1000 - real - skew) < 2000
    okx = client.get("/okx/api/v5/public/time").json()
    assert abs(int(okx["data"][0]["ts"]) - real - skew) < 1000
    coinbase = client.get("/coinbase/time").json()
    assert abs(coinbase["epoch"] * 1000 - real - skew) < 1000
    kraken = client.get("/kraken/0/public/Time").json()
    assert abs(kraken["result"]["unixtime"] * 1000 - real - skew) < 2000
    # the envelope time of other Bybit endpoints is server time too
    env = client.get("/bybit/v5/market/tickers?category=spot&symbol=BTCUSDT").json()
    assert abs(env["time"] - real - skew) < 1000

    set_fault(client, exchange="binance", fault="clock_skew", skew_ms=-3_000)
    assert abs(client.get("/binance/api/v3/time").json()["serverTime"] - now_ms() + 3_000) < 1000


def test_stale_ages_timestamps_and_freezes_prices(client: httpx.Client) -> None:
    age = 120
    for exchange in ("binance", "bybit", "okx", "coinbase", "kraken"):
        set_fault(client, exchange=exchange, fault="stale", age_s=age)
    expected = now_ms() - age * 1000
    first = client.get("/binance/api/v3/ticker/24hr?symbol=BTCUSDT").json()
    assert abs(first["closeTime"] - expected) < 1500
    book1 = client.get("/binance/api/v3/depth?symbol=BTCUSDT&limit=5").json()
    bybit = client.get("/bybit/v5/market/orderbook?category=spot&symbol=BTCUSDT").json()
    assert abs(bybit["result"]["ts"] - expected) < 1500
    assert abs(bybit["time"] - now_ms()) < 1500  # envelope time stays current
    okx = client.get("/okx/api/v5/market/ticker?instId=BTC-USDT").json()["data"][0]
    assert abs(int(okx["ts"]) - expected) < 1500
    cb = client.get("/coinbase/products/BTC-USD/ticker").json()
    cb_time = datetime.strptime(cb["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(cb_time.timestamp() * 1000 - expected) < 1500
    depth = client.get("/kraken/0/public/Depth?pair=XBTUSD&count=10").json()
    level_ts = [lvl[2] for lvl in depth["result"]["XXBTZUSD"]["bids"]]
    assert max(level_ts) <= time.time() - age + 1
    time.sleep(0.25)  # > 2 market ticks
    second = client.get("/binance/api/v3/ticker/24hr?symbol=BTCUSDT").json()
    assert second["lastPrice"] == first["lastPrice"] and second["lastId"] == first["lastId"]
    assert client.get("/binance/api/v3/depth?symbol=BTCUSDT&limit=5").json() == book1
    # the time endpoint is not market data: unaffected
    assert abs(client.get("/binance/api/v3/time").json()["serverTime"] - now_ms()) < 1000


def test_duration_s_auto_expires(client: httpx.Client) -> None:
    faults = set_fault(client, exchange="coinbase", fault="rate_limited", duration_s=0.3)
    assert faults["faults"][0]["duration_s"] == 0.3
    assert 0 < faults["faults"][0]["remaining_s"] <= 0.3
    assert client.get("/coinbase/time").status_code == 429
    time.sleep(0.35)
    assert client.get("/coinbase/time").status_code == 200
    assert client.get("/_control/faults").json() == {"faults": []}


# -- control API --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"exchange": "bitmex", "fault": "down"}, "exchange"),
        ({"fault": "down"}, "exchange"),
        ({"exchange": ["binance"], "fault": "down"}, "exchange"),
        ({"exchange": "binance", "fault": "explode"}, "fault"),
        ({"exchange": "binance"}, "fault"),
        ({"exchange": "binance", "fault": "down", "endpoint": "trades"}, "endpoint"),
        ({"exchange": "coinbase", "fault": "down", "endpoint": "status"}, "endpoint"),
        ({"exchange": "binance", "fault": "down", "mode": "explode"}, "mode"),
        ({"exchange": "binance", "fault": "latency"}, "latency_ms"),
        ({"exchange": "binance", "fault": "latency", "latency_ms": -5}, "latency_ms"),
        ({"exchange": "binance", "fault": "latency", "latency_ms": "100"}, "latency_ms"),
        ({"exchange": "binance", "fault": "latency", "latency_ms": True}, "latency_ms"),
        (
            {"exchange": "binance", "fault": "latency", "latency_ms": 5, "jitter_ms": -1},
            "jitter_ms",
        ),
        ({"exchange": "binance", "fault": "latency", "latency": 100}, "latency"),
        ({"exchange": "binance", "fault": "http_error"}, "status"),
        ({"exchange": "binance", "fault": "http_error", "status": 302}, "status"),
        ({"exchange": "binance", "fault": "http_error", "status": 500.5}, "status"),
        ({"exchange": "binance", "fault": "http_error", "status": 500, "body": "xml"}, "body"),
        ({"exchange": "binance", "fault": "rate_limited", "retry_after": -1}, "retry_after"),
        ({"exchange": "kraken", "fault": "rate_limited", "retry_after": 5}, "retry_after"),
        ({"exchange": "binance", "fault": "banned", "retry_after": "soon"}, "retry_after"),
        ({"exchange": "binance", "fault": "clock_skew"}, "skew_ms"),
        ({"exchange": "binance", "fault": "clock_skew", "skew_ms": 10**12}, "skew_ms"),
        ({"exchange": "binance", "fault": "stale", "age_s": -1}, "age_s"),
        ({"exchange": "binance", "fault": "stale", "age_s": None}, "age_s"),
        ({"exchange": "binance", "fault": "maintenance", "endpoint": "ticker"}, "endpoint"),
        ({"exchange": "binance", "fault": "down", "duration_s": 0}, "duration_s"),
        ({"exchange": "binance", "fault": "none", "duration_s": 5}, "duration_s"),
    ],
)
def test_fault_validation_names_the_field(
    client: httpx.Client, spec: dict[str, Any], field: str
) -> None:
    r = client.post("/_control/faults", json=spec)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error.startswith(f"{field}:"), error
    assert client.get("/_control/faults").json() == {"faults": []}


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_fault_validation_rejects_non_object_bodies(client: httpx.Client, raw: bytes) -> None:
    r = client.post("/_control/faults", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"].startswith("body:")


def test_value_is_named_in_error(client: httpx.Client) -> None:
    r = client.post(
        "/_control/faults", json={"exchange": "binance", "fault": "latency", "latency_ms": -42}
    )
    assert "-42" in r.json()["error"]
    r = client.post("/_control/faults", json={"exchange": "bitmex", "fault": "down"})
    assert "bitmex" in r.json()["error"]


def test_list_and_delete_faults(client: httpx.Client) -> None:
    set_fault(client, exchange="bybit", fault="latency", latency_ms=5, jitter_ms=1)
    set_fault(client, exchange="binance", endpoint="orderbook", fault="stale", age_s=30)
    listed = client.get("/_control/faults").json()["faults"]
    assert listed == [
        {"exchange": "binance", "endpoint": "orderbook", "fault": "stale", "age_s": 30},
        {
            "exchange": "bybit",
            "endpoint": None,
            "fault": "latency",
            "latency_ms": 5,
            "jitter_ms": 1,
        },
    ]
    assert client.delete("/_control/faults").json() == {"faults": []}
    assert client.get("/_control/faults").json() == {"faults": []}


def test_control_unknown_path_and_method(client: httpx.Client) -> None:
    r = client.get("/_control/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = client.put("/_control/faults", json={})
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


def test_stats_count_requests(client: httpx.Client) -> None:
    client.delete("/_control/stats")
    for _ in range(3):
        client.get("/okx/api/v5/market/books?instId=BTC-USDT")
    client.get("/okx/api/v5/unknown")
    stats = client.get("/_control/stats").json()
    assert stats["requests"]["okx"] == {"orderbook": 3, "unknown": 1}
    assert stats["outcomes"]["okx"] == {"200": 3, "404": 1}
    assert stats["total"] == 4


# -- market, lifecycle, CLI ---------------------------------------------------------------


def test_market_is_deterministic_and_moving() -> None:
    t = 1_750_000_000.0
    assert reference_price(t) == reference_price(t)
    a, b = Market(), Market()
    assert a.view("okx", t * 1000).levels(20) == b.view("okx", t * 1000).levels(20)
    prices = {a.view("binance", t * 1000 + i * 1000).best_bid for i in range(10)}
    assert len(prices) > 5
    view = a.view("binance", t * 1000)
    deep, _ = view.levels(300)
    assert view.levels(10)[0] == deep[:10]  # deeper books extend, never reshuffle


def test_stop_leaves_no_hung_tasks() -> None:
    async def scenario() -> None:
        server = SimulatorServer("127.0.0.1", 0)
        await server.start()
        server.faults.apply({"exchange": "binance", "fault": "down", "mode": "hang"})
        hung_r, hung_w = await asyncio.open_connection("127.0.0.1", server.port)
        hung_w.write(b"GET /binance/api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", server.port)
        idle_w.write(b"GET /okx/api/v5/public/time HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await idle_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.05)
        assert len(asyncio.all_tasks()) > 1
        await asyncio.wait_for(server.stop(), 2)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert await asyncio.wait_for(hung_r.read(), 2) == b""  # released: EOF, no answer
        for w in (hung_w, idle_w):
            w.close()

    asyncio.run(scenario())


def test_run_in_thread_stop_releases_hung_client() -> None:
    server, stop = run_in_thread()
    errors: list[BaseException] = []

    def hang() -> None:
        with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as c:
            c.post("/_control/faults", json={"exchange": "okx", "fault": "down", "mode": "hang"})
            try:
                c.get("/okx/api/v5/public/time")
            except httpx.HTTPError as exc:
                errors.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    stop()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 3
    assert errors and isinstance(errors[0], TRANSPORT_ERRORS)
    stop()  # idempotent


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8000", "host:", "host:99999", ":80"):
        with pytest.raises(Exception, match=r"HOST:PORT|port"):
            parse_listen(bad)


def test_cli_subprocess_prints_url_and_exits_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"exchange-simulator listening on (http://127\.0\.0\.1:(\d+))", line)
        assert match is not None, line
        assert int(match.group(2)) > 0
        r = httpx.get(match.group(1) + "/_control/health", timeout=5, trust_env=False)
        assert r.json() == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_bad_listen() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "--listen", "nonsense"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert proc.returncode == 2 and "HOST:PORT" in proc.stderr
