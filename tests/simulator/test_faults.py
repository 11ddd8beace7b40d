"""Tests for the simulator's fault catalogue added on top of the base faults: aliases, slow and
huge bodies, bad JSON, per-exchange rate-limit / ban / api_error answers, ``stale`` in ms.

Expected answers come from shared/reference/exchange-api-facts.md (source tags in the simulator
docstrings and simulator/README.md).
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from typing import Any

import httpx
import pytest

from simulator import SimulatorServer
from simulator.bodies import BookFrame, huge_book, slices, truncate_json

pytestmark = pytest.mark.e2e  # an in-thread simulator (all but the huge-book helpers)

TRANSPORT_ERRORS = (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError)

PATHS = {
    "binance": "/api/v3/time",
    "bybit": "/v5/market/time",
    "okx": "/api/v5/public/time",
    "coinbase": "/time",
    "kraken": "/0/public/Time",
}
BOOKS = {
    "binance": "/api/v3/depth?symbol=BTCUSDT&limit=5",
    "bybit": "/v5/market/orderbook?category=spot&symbol=BTCUSDT",
    "okx": "/api/v5/market/books?instId=BTC-USDT",
    "coinbase": "/products/BTC-USD/book?level=2",
    "kraken": "/0/public/Depth?pair=XBTUSD&count=5",
}


def set_fault(client: httpx.Client, **spec: Any) -> list[dict[str, Any]]:
    """POST a fault, assert it was accepted; return the active faults."""
    r = client.post("/_control/faults", json=spec)
    assert r.status_code == 200, r.text
    return r.json()["faults"]


def rejected(client: httpx.Client, **spec: Any) -> str:
    """POST an invalid fault; assert 400 and nothing set; return the error message."""
    r = client.post("/_control/faults", json=spec)
    assert r.status_code == 400, r.text
    assert client.get("/_control/faults").json() == {"faults": []}
    return r.json()["error"]


def now_ms() -> int:
    """Current wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


# -- aliases ----------------------------------------------------------------------------------


def test_reset_alias_is_down_reset(client: httpx.Client, sim: SimulatorServer) -> None:
    faults = set_fault(client, exchange="okx", fault="reset", endpoint="time")
    assert faults == [{"exchange": "okx", "endpoint": "time", "fault": "down", "mode": "reset"}]
    with (
        httpx.Client(base_url=sim.url, timeout=2.0, trust_env=False) as fresh,
        pytest.raises(TRANSPORT_ERRORS),
    ):
        fresh.get("/okx/api/v5/public/time")
    assert client.get("/okx/api/v5/system/status").status_code == 200


def test_hang_alias_is_down_hang(client: httpx.Client, sim: SimulatorServer) -> None:
    faults = set_fault(client, exchange="kraken", fault="hang")
    assert faults[0]["fault"] == "down" and faults[0]["mode"] == "hang"
    with (
        httpx.Client(base_url=sim.url, timeout=0.3, trust_env=False) as short,
        pytest.raises(httpx.ReadTimeout),
    ):
        short.get("/kraken/0/public/Time")


def test_alias_rejects_mode(client: httpx.Client) -> None:
    error = rejected(client, exchange="okx", fault="reset", mode="hang")
    assert error.startswith("mode:")


# -- slow_body --------------------------------------------------------------------------------


def test_slow_body_headers_arrive_then_body_times_out(
    client: httpx.Client, sim: SimulatorServer
) -> None:
    faults = set_fault(client, exchange="binance", fault="slow_body")
    assert faults[0]["bytes_per_second"] == 64 and faults[0]["interval_ms"] == 1000
    with httpx.Client(base_url=sim.url, timeout=0.5, trust_env=False) as short:
        started = time.monotonic()
        with short.stream("GET", "/binance/api/v3/time") as r:
            assert r.status_code == 200  # headers came promptly
            assert time.monotonic() - started < 0.4
            assert r.headers["content-type"] == "application/json"
            assert int(r.headers["content-length"]) > 0
            assert "X-MBX-USED-WEIGHT-1M" in r.headers
            with pytest.raises(httpx.ReadTimeout):
                r.read()


def test_slow_body_total_timeout_fires_although_bytes_keep_coming(
    client: httpx.Client, sim: SimulatorServer
) -> None:
    """A trickle every 50 ms never trips a per-read timeout, but a total timeout (what a probe
    uses) does."""
    set_fault(client, exchange="okx", fault="slow_body", bytes_per_second=64, interval_ms=50)

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=sim.url, timeout=0.5, trust_env=False) as ac:
            async with asyncio.timeout(0.5):
                await ac.get("/okx/api/v5/market/ticker?instId=BTC-USDT")

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(probe())
    assert time.monotonic() - started < 1.5


def test_slow_body_completes_with_valid_body(client: httpx.Client) -> None:
    normal = client.get("/okx/api/v5/market/ticker?instId=BTC-USDT")
    size = len(normal.content)
    set_fault(client, exchange="okx", fault="slow_body", bytes_per_second=size * 4, interval_ms=50)
    started = time.monotonic()
    r = client.get("/okx/api/v5/market/ticker?instId=BTC-USDT")
    elapsed = time.monotonic() - started
    assert r.status_code == 200
    body = r.json()  # complete and valid
    assert body["code"] == "0" and body["data"][0]["instId"] == "BTC-USDT"
    assert 0.18 <= elapsed < 1.5  # 4 slices of a quarter second's worth, 50 ms apart


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"bytes_per_second": 0}, "bytes_per_second"),
        ({"bytes_per_second": -1}, "bytes_per_second"),
        ({"bytes_per_second": "fast"}, "bytes_per_second"),
        ({"interval_ms": 5}, "interval_ms"),
        ({"rate": 5}, "rate"),
    ],
)
def test_slow_body_validation(client: httpx.Client, spec: dict[str, Any], field: str) -> None:
    assert rejected(client, exchange="binance", fault="slow_body", **spec).startswith(f"{field}:")


# -- rate_limited -----------------------------------------------------------------------------


def test_bybit_rate_limited_is_retcode_10006_with_limit_headers(client: httpx.Client) -> None:
    set_fault(client, exchange="bybit", fault="rate_limited")
    before = now_ms()
    r = client.get("/bybit/v5/market/tickers?category=spot&symbol=BTCUSDT")
    assert r.status_code == 200
    body = r.json()
    assert body["retCode"] == 10006
    assert body["retMsg"] == "Too many visits. Exceeded the API Rate Limit."
    assert body["result"] == {} and body["retExtInfo"] == {}
    assert r.headers["X-Bapi-Limit-Status"] == "0"
    assert r.headers["X-Bapi-Limit"] == "600"
    reset = int(r.headers["X-Bapi-Limit-Reset-Timestamp"])
    assert before + 1000 - 50 <= reset <= now_ms() + 1000 + 50  # default retry_after 1 s
    set_fault(client, exchange="bybit", fault="rate_limited", retry_after=30)
    reset = int(client.get("/bybit/v5/market/time").headers["X-Bapi-Limit-Reset-Timestamp"])
    assert abs(reset - now_ms() - 30_000) < 1000


def test_okx_rate_limited_http_status_choice(client: httpx.Client) -> None:
    set_fault(client, exchange="okx", fault="rate_limited")
    r = client.get("/okx/api/v5/public/time")
    assert (r.status_code, r.json()) == (
        429,
        {"code": "50011", "msg": "Too Many Requests", "data": []},
    )
    assert "Retry-After" not in r.headers  # not documented for OKX
    set_fault(client, exchange="okx", fault="rate_limited", http_status=200)
    r = client.get("/okx/api/v5/public/time")
    assert r.status_code == 200
    assert r.json()["code"] == "50011" and r.json()["msg"].startswith("Rate limit reached.")
    client.delete("/_control/faults")
    assert rejected(client, exchange="okx", fault="rate_limited", http_status=503).startswith(
        "http_status:"
    )


@pytest.mark.parametrize(("exchange", "status"), [("okx", 429), ("coinbase", 429)])
def test_retry_after_opt_in_for_okx_and_coinbase(
    client: httpx.Client, exchange: str, status: int
) -> None:
    assert "Retry-After" not in client.get(f"/{exchange}{PATHS[exchange]}").headers
    set_fault(client, exchange=exchange, fault="rate_limited", retry_after=9)
    r = client.get(f"/{exchange}{PATHS[exchange]}")
    assert r.status_code == status and r.headers["Retry-After"] == "9"


def test_coinbase_rate_limited_has_no_retry_after_by_default(client: httpx.Client) -> None:
    set_fault(client, exchange="coinbase", fault="rate_limited")
    r = client.get("/coinbase/time")
    assert (r.status_code, r.json()) == (429, {"message": "Too Many Requests"})
    assert "Retry-After" not in r.headers


def test_kraken_rate_limited_takes_no_retry_after(client: httpx.Client) -> None:
    error = rejected(client, exchange="kraken", fault="rate_limited", retry_after=3)
    assert error.startswith("retry_after:") and "kraken" in error


# -- banned -----------------------------------------------------------------------------------


def test_bybit_banned_is_403_text(client: httpx.Client) -> None:
    set_fault(client, exchange="bybit", fault="banned")
    r = client.get("/bybit/v5/market/time")
    assert r.status_code == 403
    assert r.text == "access too frequent"
    assert r.headers["content-type"] == "text/plain"
    assert "X-Bapi-Limit" not in r.headers  # answered by the front end, not the API


def test_kraken_banned_is_temporary_lockout(client: httpx.Client) -> None:
    set_fault(client, exchange="kraken", fault="banned")
    r = client.get("/kraken/0/public/Ticker?pair=XBTUSD")
    assert (r.status_code, r.json()) == (200, {"error": ["EGeneral:Temporary lockout"]})


def test_binance_banned_custom_retry_after(client: httpx.Client) -> None:
    set_fault(client, exchange="binance", fault="banned", retry_after=600)
    r = client.get("/binance/api/v3/ping")
    assert r.status_code == 418 and r.headers["Retry-After"] == "600"
    assert "IP banned until" in r.json()["msg"]


def test_banned_takes_no_params_on_bybit(client: httpx.Client) -> None:
    assert rejected(client, exchange="bybit", fault="banned", retry_after=5).startswith(
        "retry_after:"
    )


# -- api_error --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "params", "status", "expected"),
    [
        (
            "binance",
            {"code": -1021},
            400,
            {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
        ),
        (
            "binance",
            {"code": -2015},
            400,
            {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
        ),
        ("binance", {"code": -9999}, 400, {"code": -9999, "msg": "Simulated error -9999."}),
        (
            "binance",
            {"code": -1008, "http_status": 503},
            503,
            {
                "code": -1008,
                "msg": "Server is currently overloaded with other requests. Please try again "
                "in a few minutes.",
            },
        ),
        ("binance", {"code": -1121, "message": "custom"}, 400, {"code": -1121, "msg": "custom"}),
        (
            "bybit",
            {"code": 10002},
            200,
            {"retCode": 10002, "retMsg": "The request time exceeds the time window range."},
        ),
        (
            "bybit",
            {"code": 10006},
            200,
            {"retCode": 10006, "retMsg": "Too many visits. Exceeded the API Rate Limit."},
        ),
        ("bybit", {"code": 12345}, 200, {"retCode": 12345, "retMsg": "Simulated error 12345."}),
        (
            "bybit",
            {"code": 10016, "http_status": 500},
            500,
            {"retCode": 10016, "retMsg": "Server error."},
        ),
        (
            "okx",
            {"code": 50001},
            503,
            {
                "code": "50001",
                "msg": "Service temporarily unavailable. Please try again later.",
                "data": [],
            },
        ),
        (
            "okx",
            {"code": "50013"},
            429,
            {"code": "50013", "msg": "Systems are busy. Please try again later.", "data": []},
        ),
        (
            "okx",
            {"code": 50026},
            500,
            {"code": "50026", "msg": "System error. Try again later", "data": []},
        ),
        (
            "okx",
            {"code": 50102},
            401,
            {"code": "50102", "msg": "Timestamp request expired.", "data": []},
        ),
        ("okx", {"code": 50004}, 400, None),
        (
            "okx",
            {"code": 51999},
            200,
            {"code": "51999", "msg": "Simulated error 51999.", "data": []},
        ),
        ("coinbase", {"code": 401}, 401, {"message": "Invalid API Key"}),
        ("coinbase", {"code": 503}, 503, {"message": "Service Unavailable"}),
        ("coinbase", {"code": 400, "message": "Invalid Price"}, 400, {"message": "Invalid Price"}),
        ("kraken", {"code": "EService:Unavailable"}, 200, {"error": ["EService:Unavailable"]}),
        ("kraken", {"code": "EAPI:Invalid nonce"}, 200, {"error": ["EAPI:Invalid nonce"]}),
        (
            "kraken",
            {"code": "EService:Busy", "http_status": 520},
            520,
            {"error": ["EService:Busy"]},
        ),
    ],
)
def test_api_error_envelopes(
    client: httpx.Client,
    exchange: str,
    params: dict[str, Any],
    status: int,
    expected: dict[str, Any] | None,
) -> None:
    set_fault(client, exchange=exchange, fault="api_error", **params)
    r = client.get(f"/{exchange}{PATHS[exchange]}")
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    if exchange == "bybit":
        assert abs(body.pop("time") - now_ms()) < 2000
        assert body.pop("result") == {} and body.pop("retExtInfo") == {}
    if expected is None:
        assert body["code"] == str(params["code"]) and body["msg"].startswith("API endpoint")
    else:
        assert body == expected
    if exchange == "binance":
        assert "X-MBX-USED-WEIGHT-1M" in r.headers


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"exchange": "binance"}, "code"),
        ({"exchange": "binance", "code": "-1021"}, "code"),
        ({"exchange": "binance", "code": True}, "code"),
        ({"exchange": "bybit", "code": 1.5}, "code"),
        ({"exchange": "okx", "code": "5x"}, "code"),
        ({"exchange": "okx", "code": -1}, "code"),
        ({"exchange": "coinbase", "code": 302}, "code"),
        ({"exchange": "coinbase", "code": 401, "http_status": 500}, "http_status"),
        ({"exchange": "kraken", "code": "Unavailable"}, "code"),
        ({"exchange": "kraken", "code": 5}, "code"),
        ({"exchange": "kraken", "code": "EService:Busy", "message": "x"}, "message"),
        ({"exchange": "binance", "code": -1, "http_status": 99}, "http_status"),
        ({"exchange": "binance", "code": -1, "message": ""}, "message"),
        ({"exchange": "binance", "code": -1, "msg": "x"}, "msg"),
    ],
)
def test_api_error_validation(client: httpx.Client, spec: dict[str, Any], field: str) -> None:
    error = rejected(client, fault="api_error", **spec)
    assert error.startswith(f"{field}:"), error


def test_api_error_names_the_bad_value(client: httpx.Client) -> None:
    error = rejected(client, exchange="kraken", fault="api_error", code="Oops")
    assert "'Oops'" in error and "EService:Unavailable" in error


# -- stale in ms ------------------------------------------------------------------------------


def test_stale_age_ms(client: httpx.Client) -> None:
    faults = set_fault(client, exchange="binance", fault="stale", age_ms=1500)
    assert faults[0]["age_ms"] == 1500 and faults[0]["age_s"] == 1.5
    close = client.get("/binance/api/v3/ticker/24hr?symbol=BTCUSDT").json()["closeTime"]
    assert abs(close - (now_ms() - 1500)) < 300


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "age_s"),
        ({"age_s": 1, "age_ms": 1000}, "age_ms"),
        ({"age_ms": -1}, "age_ms"),
        ({"age_ms": "1s"}, "age_ms"),
    ],
)
def test_stale_validation(client: httpx.Client, spec: dict[str, Any], field: str) -> None:
    assert rejected(client, exchange="okx", fault="stale", **spec).startswith(f"{field}:")


# -- bad_json ---------------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", list(PATHS))
def test_bad_json_is_unparseable_json(client: httpx.Client, exchange: str) -> None:
    set_fault(client, exchange=exchange, fault="bad_json", endpoint="orderbook")
    r = client.get(f"/{exchange}{BOOKS[exchange]}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert len(r.content) == int(r.headers["content-length"]) > 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    assert client.get(f"/{exchange}{PATHS[exchange]}").json()  # other endpoints unaffected


def test_bad_json_on_an_error_answer_is_still_200(client: httpx.Client) -> None:
    set_fault(client, exchange="binance", fault="bad_json")
    r = client.get("/binance/api/v3/ping")  # body "{}" → "{"
    assert r.status_code == 200 and r.content == b"{"
    r = client.get("/binance/api/v3/ticker/price?symbol=NOPE")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


# -- huge_body --------------------------------------------------------------------------------


def _levels(exchange: str, body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """``(bids, asks)`` of an order-book body in the exchange's envelope."""
    if exchange == "bybit":
        return body["result"]["b"], body["result"]["a"]
    if exchange == "okx":
        return body["data"][0]["bids"], body["data"][0]["asks"]
    if exchange == "kraken":
        book = body["result"]["XXBTZUSD"]
        return book["bids"], book["asks"]
    return body["bids"], body["asks"]


@pytest.mark.parametrize("exchange", list(PATHS))
@pytest.mark.parametrize("size", [1024, 4096, 100_003])
def test_huge_body_exact_size_and_valid_book(
    client: httpx.Client, exchange: str, size: int
) -> None:
    set_fault(client, exchange=exchange, fault="huge_body", size_bytes=size)
    r = client.get(f"/{exchange}{BOOKS[exchange]}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content) == size
    bids, asks = _levels(exchange, json.loads(r.content))
    assert len(bids) + len(asks) > size // 60
    bid_prices = [float(level[0]) for level in bids]
    ask_prices = [float(level[0]) for level in asks]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert ask_prices == sorted(ask_prices)
    assert bid_prices[0] < ask_prices[0]


def test_huge_body_default_is_5_mib_and_streams(client: httpx.Client, sim: SimulatorServer) -> None:
    faults = set_fault(client, exchange="binance", fault="huge_body", endpoint="ping")
    assert faults[0]["size_bytes"] == 5 * 1024 * 1024
    tracemalloc.start()
    try:
        received = 0
        with client.stream("GET", "/binance/api/v3/ping") as r:
            assert int(r.headers["content-length"]) == 5 * 1024 * 1024
            for chunk in r.iter_raw():
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == 5 * 1024 * 1024
    assert peak < 2 * 1024 * 1024  # server (same process) and client never held the body


@pytest.mark.parametrize("size", [1023, 64 * 1024 * 1024 + 1, 5.5, "5MiB"])
def test_huge_body_validation(client: httpx.Client, size: Any) -> None:
    error = rejected(client, exchange="okx", fault="huge_body", size_bytes=size)
    assert error.startswith("size_bytes:") and repr(size) in error


# -- body helpers -----------------------------------------------------------------------------


def test_huge_book_is_exact_and_valid_for_every_size() -> None:
    frame = BookFrame(b'{"bids":[', b'],"asks":[', b"]}", '["%d.%02d","1"]')
    for size in [*range(21, 200), 4095, 70_001, 300_000]:
        body = b"".join(huge_book(frame, size, 6_500_000, 6_500_001))
        assert len(body) == size
        book = json.loads(body)
        assert len(book["bids"]) + len(book["asks"]) >= (size - 21) // 17 - 2


def test_huge_book_rejects_size_below_envelope() -> None:
    with pytest.raises(ValueError, match="envelope"):
        list(huge_book(BookFrame(b"{" * 10, b"", b"}", "%d%d"), 5, 100, 101))


def test_slices_and_truncate() -> None:
    parts = [b"abcdefg", b"", b"hij"]
    assert list(slices(parts, 3)) == [b"abc", b"def", b"ghi", b"j"]
    assert list(slices([b"ab"], 5)) == [b"ab"]
    assert truncate_json(b"{}") == b"{"
    assert truncate_json(b'{"a":[1,2,3]}') == b'{"a":['


def test_latency_fault_reports_the_time_held(client: httpx.Client) -> None:
    """Benchmarks pair measured latency with X-Simulator-Latency-Ms (only while injected)."""
    plain = client.get("/binance/api/v3/time")
    assert "x-simulator-latency-ms" not in plain.headers
    set_fault(client, exchange="binance", fault="latency", latency_ms=30)
    held = float(client.get("/binance/api/v3/time").headers["x-simulator-latency-ms"])
    assert 30 <= held < 200
