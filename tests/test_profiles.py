"""Profiles classify documented responses (bodies from shared/reference/exchange-api-facts.md)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from exporter.profiles import PROFILES, Result, get_profile


def classify(profile: str, endpoint: str, body: Any, status: int = 200, **headers: str):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return get_profile(profile).classify(endpoint, status, httpx.Headers(headers), raw)


OK_CASES = [
    ("binance", "ping", {}),
    ("binance", "time", {"serverTime": 1499827319559}),
    ("binance", "status", {"status": 0, "msg": "normal"}),
    ("binance", "ticker", {"symbol": "BTCUSDT", "lastPrice": "4.00000200", "closeTime": 1}),
    ("binance", "orderbook", {"lastUpdateId": 1, "bids": [["4.0", "431.0"]], "asks": []}),
    (
        "bybit",
        "time",
        {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"timeSecond": "1688639403", "timeNano": "1688639403423213947"},
            "retExtInfo": {},
            "time": 1,
        },
    ),
    ("bybit", "status", {"retCode": 0, "retMsg": "", "result": {"list": [{"state": "completed"}]}}),
    (
        "bybit",
        "ticker",
        {
            "retCode": 0,
            "retMsg": "OK",
            "result": {
                "category": "spot",
                "list": [{"symbol": "BTCUSDT", "lastPrice": "20533.13"}],
            },
        },
    ),
    (
        "bybit",
        "orderbook",
        {"retCode": 0, "retMsg": "OK", "result": {"s": "BTCUSDT", "a": [], "b": [], "ts": 1}},
    ),
    ("okx", "time", {"code": "0", "msg": "", "data": [{"ts": "1597026383085"}]}),
    ("okx", "status", {"code": "0", "msg": "", "data": []}),
    (
        "okx",
        "ticker",
        {
            "code": "0",
            "msg": "",
            "data": [{"instId": "BTC-USDT", "last": "9999.99", "ts": "1597026383085"}],
        },
    ),
    ("okx", "orderbook", {"code": "0", "msg": "", "data": [{"asks": [], "bids": [], "ts": "1"}]}),
    ("coinbase", "time", {"iso": "2015-01-07T23:47:25.201Z", "epoch": 1420674445.201}),
    ("coinbase", "ticker", {"trade_id": 1, "price": "6268.48", "time": "2020-03-20T00:22:57Z"}),
    ("coinbase", "orderbook", {"sequence": 1, "bids": [], "asks": []}),
    ("kraken", "time", {"error": [], "result": {"unixtime": 1688669448, "rfc1123": "x"}}),
    ("kraken", "status", {"error": [], "result": {"status": "online", "timestamp": "x"}}),
    ("kraken", "ticker", {"error": [], "result": {"XXBTZUSD": {"c": ["3537.5", "0.25"]}}}),
    ("kraken", "orderbook", {"error": [], "result": {"XXBTZUSD": {"asks": [], "bids": []}}}),
]


@pytest.mark.parametrize(("profile", "endpoint", "body"), OK_CASES)
def test_documented_bodies_are_ok(profile: str, endpoint: str, body: Any) -> None:
    assert classify(profile, endpoint, body).result is Result.OK


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("binance", 1499827319.559),
        ("bybit", 1688639403.423214),
        ("okx", 1597026383.085),
        ("coinbase", 1420674445.201),
        ("kraken", 1688669448.5),
    ],
)
def test_server_time_in_epoch_seconds(profile: str, expected: float) -> None:
    body = next(b for p, e, b in OK_CASES if p == profile and e == "time")
    verdict = classify(profile, "time", body)
    assert verdict.server_time == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    ("profile", "endpoint", "status", "body", "headers", "result", "code"),
    [
        (
            "binance",
            "ticker",
            429,
            {"code": -1003, "msg": "Too much request weight used"},
            {"Retry-After": "30"},
            Result.RATE_LIMITED,
            "-1003",
        ),
        (
            "binance",
            "ticker",
            418,
            {"code": -1003, "msg": "Way too much request weight used; IP banned until 1"},
            {"Retry-After": "120"},
            Result.BANNED,
            "-1003",
        ),
        (
            "binance",
            "ticker",
            400,
            {"code": -1121, "msg": "Invalid symbol."},
            {},
            Result.API_ERROR,
            "-1121",
        ),
        (
            "binance",
            "status",
            200,
            {"status": 1, "msg": "system_maintenance"},
            {},
            Result.MAINTENANCE,
            None,
        ),
        ("binance", "time", 502, b"<html>Bad Gateway</html>", {}, Result.HTTP_ERROR, None),
        ("binance", "time", 200, b"not json", {}, Result.BAD_RESPONSE, None),
        ("binance", "time", 200, {"server": 1}, {}, Result.BAD_RESPONSE, None),
        (
            "bybit",
            "ticker",
            200,
            {"retCode": 10006, "retMsg": "Too many visits!"},
            {},
            Result.RATE_LIMITED,
            "10006",
        ),
        ("bybit", "ticker", 403, b"access too frequent", {}, Result.BANNED, None),
        (
            "bybit",
            "time",
            200,
            {"retCode": 10016, "retMsg": "Server error."},
            {},
            Result.API_ERROR,
            "10016",
        ),
        (
            "bybit",
            "status",
            200,
            {
                "retCode": 0,
                "retMsg": "",
                "result": {"list": [{"state": "ongoing", "title": "upgrade"}]},
            },
            {},
            Result.MAINTENANCE,
            None,
        ),
        (
            "okx",
            "ticker",
            200,
            {"code": "50011", "msg": "Rate limit reached.", "data": []},
            {},
            Result.RATE_LIMITED,
            "50011",
        ),
        (
            "okx",
            "ticker",
            503,
            {"code": "50001", "msg": "Service temporarily unavailable", "data": []},
            {},
            Result.MAINTENANCE,
            "50001",
        ),
        (
            "okx",
            "status",
            200,
            {"code": "0", "msg": "", "data": [{"state": "ongoing"}]},
            {},
            Result.MAINTENANCE,
            None,
        ),
        (
            "coinbase",
            "ticker",
            429,
            {"message": "Too Many Requests"},
            {},
            Result.RATE_LIMITED,
            None,
        ),
        ("coinbase", "ticker", 404, {"message": "NotFound"}, {}, Result.API_ERROR, "404"),
        ("coinbase", "ticker", 500, {"error": "x"}, {}, Result.HTTP_ERROR, None),
        (
            "kraken",
            "ticker",
            200,
            {"error": ["EAPI:Rate limit exceeded"]},
            {},
            Result.RATE_LIMITED,
            "EAPI:Rate limit exceeded",
        ),
        (
            "kraken",
            "ticker",
            200,
            {"error": ["EQuery:Unknown asset pair"]},
            {},
            Result.API_ERROR,
            "EQuery:Unknown asset pair",
        ),
        (
            "kraken",
            "ticker",
            200,
            {"error": ["EGeneral:Temporary lockout"]},
            {},
            Result.BANNED,
            "EGeneral:Temporary lockout",
        ),
        (
            "kraken",
            "status",
            200,
            {"error": [], "result": {"status": "maintenance"}},
            {},
            Result.MAINTENANCE,
            None,
        ),
    ],
)
def test_error_classification(
    profile: str,
    endpoint: str,
    status: int,
    body: Any,
    headers: dict[str, str],
    result: Result,
    code: str | None,
) -> None:
    verdict = classify(profile, endpoint, body, status, **headers)
    assert verdict.result is result
    assert verdict.error_code == code
    if "Retry-After" in headers:
        assert verdict.retry_after == float(headers["Retry-After"])


def test_binance_weight_header() -> None:
    readings = get_profile("binance").rate_limits(httpx.Headers({"X-MBX-USED-WEIGHT-1M": "42"}))
    assert [(r.window, r.used, r.limit) for r in readings] == [("1m", 42.0, 6000)]


def test_bybit_limit_headers() -> None:
    headers = httpx.Headers({"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "9"})
    readings = get_profile("bybit").rate_limits(headers)
    assert [(r.window, r.used, r.limit) for r in readings] == [("1s", 1.0, 10.0)]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_offers_its_defaults_and_never_raises(name: str) -> None:
    profile = get_profile(name)
    specs = profile.endpoint_specs(profile.default_symbol)
    assert set(profile.default_endpoints) <= set(specs)
    for endpoint in specs:
        for body in (b"", b"null", b"[]", b"{}", b'"x"', b"\xff\xfe"):
            for status in (200, 404, 500):
                assert isinstance(
                    profile.classify(endpoint, status, httpx.Headers(), body).result, Result
                )


@pytest.mark.parametrize(
    ("profile", "endpoint", "body", "expected"),
    [
        ("binance", "ticker", {"lastPrice": "1", "closeTime": 1499869899040}, 1499869899.040),
        (
            "bybit",
            "orderbook",
            {"retCode": 0, "result": {"a": [], "b": [], "ts": 1716863719031}},
            1716863719.031,
        ),
        (
            "okx",
            "ticker",
            {"code": "0", "data": [{"last": "1", "ts": "1597026383085"}]},
            1597026383.085,
        ),
        (
            "okx",
            "orderbook",
            {"code": "0", "data": [{"asks": [], "bids": [], "ts": "1629966436396"}]},
            1629966436.396,
        ),
        (
            "coinbase",
            "ticker",
            {"price": "1", "time": "2020-03-20T00:22:57.833897Z"},
            1584663777.833897,
        ),
        (
            "kraken",
            "orderbook",
            {
                "error": [],
                "result": {
                    "XXBTZUSD": {
                        "asks": [["3539.9", "0.801", 1548119951]],
                        "bids": [["3538.9", "0.754", 1548119886]],
                    }
                },
            },
            1548119951.0,
        ),
    ],
)
def test_market_data_time(profile: str, endpoint: str, body: Any, expected: float) -> None:
    verdict = classify(profile, endpoint, body)
    assert verdict.result is Result.OK
    assert verdict.data_time == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    ("profile", "code", "label"),
    [
        ("binance", "-1021", "-1021"),
        ("binance", "-9999", "other"),
        ("bybit", "10002", "10002"),
        ("okx", "50102", "50102"),
        ("kraken", "EAPI:Invalid nonce", "EAPI:Invalid nonce"),
        ("kraken", "EFoo:made up", "other"),
        ("coinbase", "404", "404"),
    ],
)
def test_error_code_labels_are_bounded(profile: str, code: str, label: str) -> None:
    assert get_profile(profile).error_label(code) == label


@pytest.mark.parametrize(
    ("profile", "body", "kind"),
    [
        (
            "binance",
            {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
            "timestamp",
        ),
        (
            "bybit",
            {"retCode": 10002, "retMsg": "The request time exceeds the time window range."},
            "timestamp",
        ),
        ("bybit", {"retCode": 10010, "retMsg": "Unmatched IP"}, "auth"),
        ("okx", {"code": "50013", "msg": "Systems are busy.", "data": []}, "busy"),
        ("kraken", {"error": ["EService:Unavailable"]}, "busy"),
    ],
)
def test_documented_codes_have_kinds(profile: str, body: Any, kind: str) -> None:
    verdict = classify(profile, "time", body)
    assert verdict.result is Result.API_ERROR
    assert verdict.error_kind == kind


def test_bybit_retry_after_from_reset_timestamp() -> None:
    import time

    reset_ms = int((time.time() + 2.0) * 1000)
    headers = {
        "X-Bapi-Limit": "10",
        "X-Bapi-Limit-Status": "0",
        "X-Bapi-Limit-Reset-Timestamp": str(reset_ms),
    }
    verdict = classify(
        "bybit", "ticker", {"retCode": 10006, "retMsg": "Too many visits!"}, **headers
    )
    assert verdict.result is Result.RATE_LIMITED
    assert verdict.retry_after == pytest.approx(2.0, abs=0.2)


def test_every_profile_has_limits_and_backoffs() -> None:
    for name in PROFILES:
        profile = get_profile(name)
        assert profile.limits or name == "generic", name  # generic: no documented limit
        assert all(rule.source for rule in profile.limits), name
        assert profile.backoff_seconds[Result.RATE_LIMITED] > 0
        assert (
            profile.backoff_seconds[Result.BANNED] >= profile.backoff_seconds[Result.RATE_LIMITED]
        )
