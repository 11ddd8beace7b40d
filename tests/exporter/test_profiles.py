"""Profiles classify documented responses (bodies from shared/reference/exchange-api-facts.md)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from exporter.profiles import PROFILES, GenericEndpoint, GenericProfile, Result, get_profile


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


def _okx_item(state: str) -> dict[str, str]:
    """One ``/api/v5/system/status`` record as documented [OKX-STATUS]."""
    return {
        "begin": "1672823400000",
        "end": "1672823520000",
        "serviceType": "8",
        "state": state,
        "maintType": "1",
        "system": "unified",
        "title": "Trading account system upgrade (in batches of accounts)",
    }


def _bybit_body(*states: str) -> dict[str, Any]:
    """A ``/v5/system/status`` body with one record per state [BY-STATUS]."""
    items = [{"id": str(i), "title": f"t0{i}", "state": s} for i, s in enumerate(states)]
    return {"retCode": 0, "retMsg": "", "result": {"list": items}, "retExtInfo": {}, "time": 1}


# A status endpoint answering, as documented, that the exchange is in maintenance: (profile,
# body, the reason kept in the verdict's message).
STATUS_IN_MAINTENANCE = [
    ("binance", {"status": 1, "msg": "system_maintenance"}, "system_maintenance"),
    ("bybit", _bybit_body("completed", "ongoing"), "t01"),
    (
        "okx",
        {"code": "0", "msg": "", "data": [_okx_item("scheduled"), _okx_item("ongoing")]},
        "Trading account system upgrade (in batches of accounts)",
    ),
    ("kraken", {"error": [], "result": {"status": "maintenance"}}, "status maintenance"),
    ("kraken", {"error": [], "result": {"status": "cancel_only"}}, "status cancel_only"),
    ("kraken", {"error": [], "result": {"status": "post_only"}}, "status post_only"),
]

# The same endpoints answering that there is no maintenance.
STATUS_NORMAL = [
    ("binance", {"status": 0, "msg": "normal"}),
    ("bybit", _bybit_body("completed", "scheduled")),
    ("okx", {"code": "0", "msg": "", "data": []}),
    ("okx", {"code": "0", "msg": "", "data": [_okx_item("scheduled"), _okx_item("completed")]}),
    ("kraken", {"error": [], "result": {"status": "online", "timestamp": "x"}}),
]


@pytest.mark.parametrize(("profile", "body", "message"), STATUS_IN_MAINTENANCE)
def test_status_endpoint_reporting_maintenance_is_ok(profile: str, body: Any, message: str) -> None:
    """The status endpoint answered correctly: ``ok`` (so ``exchange_api_up`` 1), and the
    maintenance it reports is a state, carried by ``maintenance`` with its reason."""
    verdict = classify(profile, "status", body)
    assert verdict.result is Result.OK
    assert verdict.maintenance is True
    assert verdict.message == message
    assert verdict.error_code is None and verdict.error_kind is None


@pytest.mark.parametrize(("profile", "body"), STATUS_NORMAL)
def test_status_endpoint_without_maintenance_is_ok(profile: str, body: Any) -> None:
    verdict = classify(profile, "status", body)
    assert (verdict.result, verdict.maintenance, verdict.message) == (Result.OK, False, "")


def test_maintenance_message_is_capped() -> None:
    item = {**_okx_item("ongoing"), "title": "x" * 500}
    verdict = classify("okx", "status", {"code": "0", "msg": "", "data": [item]})
    assert verdict.result is Result.OK and len(verdict.message) == 200


def test_every_status_endpoint_is_covered() -> None:
    """Every built-in profile with a status endpoint has a maintenance case above; Coinbase has
    no status API and the generic profile reads no maintenance (any JSON is ``ok``)."""
    with_status = {
        name
        for name, cls in PROFILES.items()
        if name != "generic" and "status" in cls().endpoint_specs("X")
    }
    assert with_status == {p for p, _, _ in STATUS_IN_MAINTENANCE} == {p for p, _ in STATUS_NORMAL}
    assert "status" not in get_profile("coinbase").endpoint_specs("BTC-USD")
    generic = GenericProfile((GenericEndpoint("status", "/v1/status"),))
    verdict = generic.classify("status", 200, httpx.Headers(), b'{"status": "maintenance"}')
    assert (verdict.result, verdict.maintenance) == (Result.OK, None)


# Endpoints that FAIL during maintenance with the exchange's maintenance answer stay
# ``maintenance``: (profile, endpoint, HTTP status, body, error code). Binance -1016
# SERVICE_SHUTTING_DOWN "This service is no longer available." is not one: it says the service
# is gone (a request error, see test_error_dialect_binance.py) [BN-ERR].
FAILING_IN_MAINTENANCE = [
    (
        "okx",
        "ticker",
        503,
        {"code": "50001", "msg": "Service temporarily unavailable. Please try again later."},
        "50001",
    ),
    ("okx", "orderbook", 503, {"code": "50001", "msg": "Service temporarily unavailable"}, "50001"),
    # A status endpoint that itself fails with the maintenance answer did not answer correctly.
    ("okx", "status", 503, {"code": "50001", "msg": "Service temporarily unavailable"}, "50001"),
    (
        "kraken",
        "orderbook",
        200,
        {"error": ["EService:Market in cancel_only mode"]},
        "EService:Market in cancel_only mode",
    ),
    (
        "kraken",
        "ticker",
        200,
        {"error": ["EService:Market in post_only mode"]},
        "EService:Market in post_only mode",
    ),
]


@pytest.mark.parametrize(("profile", "endpoint", "status", "body", "code"), FAILING_IN_MAINTENANCE)
def test_failing_answer_during_maintenance_is_maintenance(
    profile: str, endpoint: str, status: int, body: Any, code: str
) -> None:
    verdict = classify(profile, endpoint, body, status)
    assert verdict.result is Result.MAINTENANCE
    assert verdict.error_code == code
    assert verdict.maintenance is None  # the prober derives the flag from the result


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


@pytest.mark.parametrize(
    ("profile", "body", "last"),
    [
        (p, b, last)
        for (p, e, b), last in zip(
            [c for c in OK_CASES if c[1] == "ticker"],
            [4.000002, 20533.13, 9999.99, 6268.48, 3537.5],
            strict=True,
        )
    ],
)
def test_ticker_verdicts_carry_a_quote(profile: str, body: Any, last: float) -> None:
    """Every ticker verdict carries its quote; fields the body lacks are None (the quotes
    themselves are covered by tests/exporter/test_market_rest.py)."""
    verdict = classify(profile, "ticker", body)
    assert verdict.quote is not None and verdict.quote.last == pytest.approx(last)
    assert verdict.quote.bid is None and verdict.quote.volume_24h is None


@pytest.mark.parametrize(
    ("profile", "body"), [(p, b) for p, b, _ in STATUS_IN_MAINTENANCE] + STATUS_NORMAL
)
def test_status_verdicts_of_past_windows_announce_nothing(profile: str, body: Any) -> None:
    """The documented times are long past, so no window is announced; an announcing profile
    reads them, the others (Binance) never announce."""
    verdict = classify(profile, "status", body)
    assert verdict.scheduled_maintenance is None
    assert get_profile(profile).announces_maintenance is (profile != "binance")
