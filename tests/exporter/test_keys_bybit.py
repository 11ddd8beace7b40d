"""Bybit key check: signer against the computed examples, request shape, classification of
every documented answer, facts mapping and policy expiry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from exporter.keys.exchanges import KEY_ENDPOINT, key_api_class
from exporter.keys.exchanges.bybit import (
    BybitKeyApi,
    bybit_sign_string,
    bybit_signature,
    facts_from_query_api,
)
from exporter.keys.model import Credentials, KeyFacts, KeyResult, Permission

SECRET = "exampleBybitSecret0123456789"
API_KEY = "XXXXXXXXXX"
CREDS = Credentials(key=SecretStr(API_KEY), secret=SecretStr(SECRET))
NOW = 1_800_000_000.0
DAY = 86400.0

# The query-api example of [BY-APIKEY] (trimmed).
DOC_RESULT: dict[str, Any] = {
    "id": "2208369",
    "note": "testnet",
    "apiKey": "XXXXXXXX",
    "readOnly": 1,
    "secret": "",
    "permissions": {
        "ContractTrade": ["Order", "Position"],
        "Spot": ["SpotTrade"],
        "Wallet": ["AccountTransfer", "SubMemberTransfer"],
        "Options": [],
        "Derivatives": ["DerivativesTrade"],
        "Exchange": ["ExchangeHistory"],
        "Earn": ["Earn"],
        "BlockTrade": [],
        "Affiliate": [],
    },
    "ips": ["18.181.170.164", "13.212.45.47"],
    "type": 1,
    "deadlineDay": -2,
    "expiredAt": "1970-01-01T00:00:00Z",
    "createdAt": "2025-10-13T03:20:45Z",
    "uta": 1,
    "userID": 1448939,
    "vipLevel": "PRO-1",
    "rsaPublicKey": "",
    "isMaster": True,
    "parentUid": "0",
}
CREATED = datetime(2025, 10, 13, 3, 20, 45, tzinfo=UTC).timestamp()


def test_signature_matches_computed_probe_example() -> None:
    assert bybit_sign_string(1658384314791, API_KEY, 5000, "") == "1658384314791XXXXXXXXXX5000"
    assert (
        bybit_signature(SECRET, 1658384314791, API_KEY, 5000)
        == "f466d6dbd51fc5d9d1528647d1c8774191fe452a938c496d9043d97025372c55"
    )


def test_signature_matches_computed_doc_get_string() -> None:
    query = "category=option&symbol=BTC-29JUL22-25000-C"
    assert (
        bybit_sign_string(1658384314791, API_KEY, 5000, query)
        == "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C"
    )
    assert (
        bybit_signature(SECRET, 1658384314791, API_KEY, 5000, query)
        == "8849c9f3f2ffd0c8eef05b989bdc45f300c3e2eaed19c5092fd8f75028391b2f"
    )


def test_sign_builds_probe_request() -> None:
    request = BybitKeyApi().sign(CREDS, "https://api.bybit.com/", 1658384314.791)
    assert request.method == "GET"
    assert request.url == "https://api.bybit.com/v5/user/query-api"
    assert dict(request.headers) == {
        "X-BAPI-API-KEY": API_KEY,
        "X-BAPI-TIMESTAMP": "1658384314791",
        "X-BAPI-SIGN": "f466d6dbd51fc5d9d1528647d1c8774191fe452a938c496d9043d97025372c55",
        "X-BAPI-RECV-WINDOW": "5000",
    }
    assert request.body == b""


def test_sign_keeps_prefix_and_recv_window() -> None:
    request = BybitKeyApi().sign(CREDS, "http://127.0.0.1:9/bybit", NOW, 20000)
    assert request.url == "http://127.0.0.1:9/bybit/v5/user/query-api"
    assert request.headers["X-BAPI-RECV-WINDOW"] == "20000"
    assert request.headers["X-BAPI-TIMESTAMP"] == str(int(NOW * 1000))
    assert request.headers["X-BAPI-SIGN"] == bybit_signature(
        SECRET, int(NOW * 1000), API_KEY, 20000
    )
    assert SECRET not in str(request.headers)


def test_class_attributes_and_registry() -> None:
    assert key_api_class("bybit", CREDS) is BybitKeyApi
    assert BybitKeyApi.path == "/v5/user/query-api"
    assert BybitKeyApi.weight == 1
    assert BybitKeyApi.default_recv_window_ms == 5000
    (rule,) = BybitKeyApi.limits
    assert rule.limit == 10 and rule.window_seconds == 1.0
    assert rule.endpoints == frozenset({KEY_ENDPOINT}) == frozenset({"api_key"})


def test_check_credentials() -> None:
    BybitKeyApi.check_credentials(CREDS)
    with pytest.raises(ValueError, match="secret_env or secret_file"):
        BybitKeyApi.check_credentials(Credentials(key=SecretStr(API_KEY)))
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    with pytest.raises(ValueError, match="HMAC") as rsa:
        BybitKeyApi.check_credentials(Credentials(key=SecretStr(API_KEY), secret=SecretStr(pem)))
    assert pem not in str(rsa.value)


def _envelope(code: int, msg: str, result: Any = None) -> dict[str, Any]:
    return {
        "retCode": code,
        "retMsg": msg,
        "result": {} if result is None else result,
        "retExtInfo": {},
        "time": 1800000000000,
    }


def _classify(
    status: int,
    body: Any,
    previous: KeyFacts | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return BybitKeyApi().classify(status, httpx.Headers(headers or {}), raw, previous, NOW)


@pytest.mark.parametrize(
    ("status", "body", "result"),
    [
        (200, _envelope(10003, "API key is invalid."), KeyResult.INVALID_KEY),
        (200, _envelope(10007, "User authentication failed."), KeyResult.INVALID_KEY),
        (
            200,
            _envelope(10004, "error sign! origin_string[1701783394711de21RcqOIH8Gfxvxvv15000]"),
            KeyResult.INVALID_SIGNATURE,
        ),
        (
            200,
            _envelope(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                "req_timestamp[1],server_timestamp[2],recv_window[5000]",
            ),
            KeyResult.TIMESTAMP,
        ),
        (
            200,
            _envelope(10010, "Unmatched IP, please check your API key's bound IP addresses."),
            KeyResult.IP_NOT_ALLOWED,
        ),
        (200, _envelope(33004, "Your api key has expired"), KeyResult.EXPIRED),
        (200, _envelope(-2015, "Your api key has expired"), KeyResult.EXPIRED),
        (
            200,
            _envelope(10005, "Permission denied, please check your API key permissions."),
            KeyResult.PERMISSION_DENIED,
        ),
        (200, _envelope(10009, "Service Restricted"), KeyResult.OTHER),
        (200, _envelope(10001, "Request parameter error."), KeyResult.OTHER),
        (401, _envelope(10003, "API key is invalid."), KeyResult.INVALID_KEY),
        (401, b"", KeyResult.INVALID_KEY),
        (500, _envelope(10016, "Server error."), KeyResult.OTHER),
        (502, b"<html>502 Bad Gateway</html>", KeyResult.OTHER),
        (200, b"{not json", KeyResult.OTHER),
        (200, _envelope(0, "", {"unexpected": 1}), KeyResult.OTHER),
        (404, b"<html>404</html>", KeyResult.OTHER),
    ],
)
def test_classify_documented_errors(status: int, body: Any, result: KeyResult) -> None:
    verdict = _classify(status, body)
    assert verdict.result is result
    assert verdict.facts is None
    assert not verdict.ip_wide
    if isinstance(body, dict) and body["retCode"] != 0:
        assert verdict.error_code == str(body["retCode"])
        assert verdict.message == body["retMsg"]


def test_classify_uid_rate_limit_reads_reset_header() -> None:
    verdict = _classify(
        200,
        _envelope(10006, "Too many visits. Exceeded the API Rate Limit."),
        headers={
            "X-Bapi-Limit": "10",
            "X-Bapi-Limit-Status": "0",
            "X-Bapi-Limit-Reset-Timestamp": str(int((NOW + 2.5) * 1000)),
        },
    )
    assert verdict.result is KeyResult.RATE_LIMITED
    assert not verdict.ip_wide and not verdict.banned
    assert verdict.retry_after == pytest.approx(2.5)
    assert verdict.error_code == "10006"
    plain = _classify(200, _envelope(10006, "Too many visits!"))
    assert plain.result is KeyResult.RATE_LIMITED and plain.retry_after is None


def test_classify_ip_limit_403_and_10018() -> None:
    verdict = _classify(403, b"access too frequent")
    assert verdict.result is KeyResult.RATE_LIMITED
    assert verdict.ip_wide and verdict.banned  # the profile's ban answer: ExchangeIpBanned
    assert verdict.retry_after == 600
    assert verdict.message == "access too frequent"
    told = _classify(403, b"access too frequent", headers={"Retry-After": "30"})
    assert told.retry_after == 30
    old = _classify(200, _envelope(10018, "Exceeded the IP Rate Limit"))
    assert old.result is KeyResult.RATE_LIMITED and old.ip_wide
    http_429 = _classify(429, b"")
    assert http_429.result is KeyResult.RATE_LIMITED and not http_429.ip_wide


@pytest.mark.parametrize(
    ("previous", "result"),
    [
        (None, KeyResult.INVALID_KEY),
        (KeyFacts(ip_restricted=True), KeyResult.INVALID_KEY),
        (KeyFacts(expires_at=NOW + 60, expiry_source="exchange"), KeyResult.INVALID_KEY),
        (KeyFacts(expires_at=NOW - 1, expiry_source="exchange"), KeyResult.EXPIRED),
        (KeyFacts(expires_at=NOW - 1, expiry_source="policy"), KeyResult.EXPIRED),
    ],
    ids=["none", "bound", "not-due", "exchange-expiry-passed", "policy-expiry-passed"],
)
def test_classify_10003_uses_previous_expiry(previous: KeyFacts | None, result: KeyResult) -> None:
    assert _classify(200, _envelope(10003, "API key is invalid."), previous).result is result


def test_doc_example_facts() -> None:
    verdict = _classify(200, _envelope(0, "", DOC_RESULT))
    assert verdict.result is KeyResult.OK
    facts = verdict.facts
    assert facts is not None
    # readOnly 1: the groups listed are what the key may read, not do.
    assert facts.permissions == {
        Permission.READ: True,
        Permission.TRADE: False,
        Permission.WITHDRAW: False,
        Permission.TRANSFER: False,
    }
    assert facts.ip_restricted is True
    assert facts.ips == ("18.181.170.164", "13.212.45.47")
    assert facts.created_at == CREATED
    assert facts.expires_at is None  # IP-bound: 1970 expiredAt and no policy
    assert facts.expiry_source is None


def test_read_write_key_with_withdraw() -> None:
    result = dict(
        DOC_RESULT,
        readOnly=0,
        permissions=dict(DOC_RESULT["permissions"], Wallet=["AccountTransfer", "Withdraw"]),
    )
    facts = facts_from_query_api(result)
    assert facts is not None
    assert facts.permissions == {
        Permission.READ: True,
        Permission.TRADE: True,
        Permission.WITHDRAW: True,
        Permission.TRANSFER: True,
    }


def test_withdraw_is_reported_even_on_read_only() -> None:
    result = dict(DOC_RESULT, permissions={"Wallet": ["Withdraw"]})
    facts = facts_from_query_api(result)
    assert facts is not None
    assert facts.permissions[Permission.WITHDRAW] is True
    assert facts.permissions[Permission.TRADE] is False


def test_star_means_not_bound_and_policy_expiry() -> None:
    facts = facts_from_query_api(dict(DOC_RESULT, ips=["*"]))
    assert facts is not None
    assert facts.ip_restricted is False
    assert facts.ips == ()
    assert facts.expires_at == CREATED + 90 * DAY
    assert facts.expiry_source == "policy"
    assert "90 days" in facts.expiry_note and facts.expiry_note.endswith(".")
    empty = facts_from_query_api(dict(DOC_RESULT, ips=[]))
    assert empty is not None and empty.ip_restricted is False


def test_exchange_expiry_from_expired_at() -> None:
    facts = facts_from_query_api(
        dict(DOC_RESULT, ips=["*"], deadlineDay=21, expiredAt="2026-01-11T03:20:45Z")
    )
    assert facts is not None
    assert facts.expires_at == datetime(2026, 1, 11, 3, 20, 45, tzinfo=UTC).timestamp()
    assert facts.expiry_source == "exchange"
    assert "expiredAt" in facts.expiry_note


def test_unreadable_results() -> None:
    assert facts_from_query_api({"apiKey": "x"}) is None
    assert facts_from_query_api({"readOnly": True}) is None
    minimal = facts_from_query_api({"readOnly": 1})
    assert minimal is not None
    assert minimal.ip_restricted is False
    assert minimal.expires_at is None  # no createdAt: no policy expiry
    bad_dates = facts_from_query_api({"readOnly": 1, "createdAt": "soon", "expiredAt": 5})
    assert bad_dates is not None and bad_dates.created_at is None


def test_classify_never_raises_on_garbage() -> None:
    api = BybitKeyApi()
    for status in (200, 401, 403, 429, 503):
        for body in (b"", b"null", b"[]", b'{"retCode": "0"}', b"\xff\xfe", b'{"retCode": 0}'):
            verdict = api.classify(status, {}, body, KeyFacts(expires_at=0.0), NOW)
            assert verdict.result in KeyResult
