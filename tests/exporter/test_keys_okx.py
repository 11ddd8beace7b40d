"""OKX key check: signer vs the computed examples, request shape, facts and classification of
every documented answer [OKX-AUTH, OKX-CONFIG, OKX-ERR]."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from pydantic import SecretStr

from exporter.keys.exchanges import key_api_class
from exporter.keys.exchanges.base import KEY_ENDPOINT
from exporter.keys.exchanges.okx import OkxKeyApi, okx_signature, okx_timestamp
from exporter.keys.model import Credentials, KeyFacts, KeyResult, Permission

DOC_SECRET = "22582BD0CFF14C41EDBF1AB98506286D"
DOC_TIMESTAMP = "2020-12-08T09:08:57.715Z"
DOC_NOW = datetime.fromisoformat("2020-12-08T09:08:57.715+00:00").timestamp()

CREDS = Credentials(
    key=SecretStr("okx-api-key-0001"),
    secret=SecretStr(DOC_SECRET),
    passphrase=SecretStr("my-passphrase"),
)


def body(code: str, msg: str = "", data: list[Any] | None = None) -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": data or []}).encode()


def classify(
    status: int,
    payload: bytes,
    previous: KeyFacts | None = None,
    headers: dict[str, str] | None = None,
    now: float = 1_700_000_000.0,
):
    return OkxKeyApi().classify(status, headers or {}, payload, previous, now)


# -- signer -------------------------------------------------------------------------------------


def test_signature_matches_computed_balance_example() -> None:
    prehash = f"{DOC_TIMESTAMP}GET/api/v5/account/balance?ccy=BTC"
    assert okx_signature(DOC_SECRET, prehash) == "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="


def test_signature_matches_computed_config_example() -> None:
    prehash = f"{DOC_TIMESTAMP}GET/api/v5/account/config"
    assert okx_signature(DOC_SECRET, prehash) == "Kr/8IrbDYujS4cg2KkmB+tO2HMUXxyayG6ZwNb4H/yA="


def test_timestamp_is_iso_with_milliseconds() -> None:
    assert okx_timestamp(DOC_NOW) == DOC_TIMESTAMP
    assert okx_timestamp(1_600_000_000.0) == "2020-09-13T12:26:40.000Z"
    assert okx_timestamp(1_600_000_000.0015) == "2020-09-13T12:26:40.002Z"


def test_sign_builds_documented_request() -> None:
    signed = OkxKeyApi().sign(CREDS, "http://127.0.0.1:9/okx/", DOC_NOW)
    assert signed.method == "GET"
    assert signed.url == "http://127.0.0.1:9/okx/api/v5/account/config"
    assert signed.body == b""
    assert dict(signed.headers) == {
        "OK-ACCESS-KEY": "okx-api-key-0001",
        "OK-ACCESS-SIGN": "Kr/8IrbDYujS4cg2KkmB+tO2HMUXxyayG6ZwNb4H/yA=",
        "OK-ACCESS-TIMESTAMP": DOC_TIMESTAMP,
        "OK-ACCESS-PASSPHRASE": "my-passphrase",
    }


def test_class_attributes_and_registry() -> None:
    assert key_api_class("okx", CREDS) is OkxKeyApi
    assert OkxKeyApi.method == "GET" and OkxKeyApi.path == "/api/v5/account/config"
    (rule,) = OkxKeyApi.limits
    assert rule.endpoints == frozenset({KEY_ENDPOINT})
    assert (rule.limit, rule.window_seconds) == (5, 2.0)
    assert OkxKeyApi.max_recv_window_ms is None


def test_check_credentials_names_fields_never_values() -> None:
    OkxKeyApi.check_credentials(CREDS)
    with pytest.raises(ValueError, match="secret_env or secret_file") as err:
        OkxKeyApi.check_credentials(
            Credentials(key=SecretStr("k"), passphrase=SecretStr("Zq9-passphrase-value"))
        )
    assert "Zq9" not in str(err.value)
    with pytest.raises(ValueError, match="passphrase_env or passphrase_file") as err2:
        OkxKeyApi.check_credentials(Credentials(key=SecretStr("k"), secret=SecretStr(DOC_SECRET)))
    assert DOC_SECRET not in str(err2.value)


# -- facts --------------------------------------------------------------------------------------


def config_body(**fields: str) -> bytes:
    entry = {
        "uid": "44705892343619584",
        "mainUid": "44705892343619584",
        "acctLv": "2",
        "label": "watch",
        "ip": "203.0.113.7",
        "perm": "read_only",
        "kycLv": "2",
        "type": "0",
        "posMode": "net_mode",
    }
    entry.update(fields)
    return body("0", "", [entry])


def test_ok_read_only_ip_bound() -> None:
    verdict = classify(200, config_body())
    assert verdict.result is KeyResult.OK
    facts = verdict.facts
    assert facts is not None
    assert dict(facts.permissions) == {
        Permission.READ: True,
        Permission.TRADE: False,
        Permission.WITHDRAW: False,
    }
    assert facts.ip_restricted is True and facts.ips == ("203.0.113.7",)
    assert facts.expires_at is None and facts.expiry_source is None
    assert "14-day" in facts.expiry_note


def test_ok_unbound_trade_withdraw() -> None:
    verdict = classify(200, config_body(ip="", perm="read_only,trade,withdraw"))
    facts = verdict.facts
    assert verdict.result is KeyResult.OK and facts is not None
    assert all(facts.permissions[p] for p in (Permission.READ, Permission.TRADE))
    assert facts.permissions[Permission.WITHDRAW] is True
    assert facts.ip_restricted is False and facts.ips == ()
    assert facts.expires_at is None
    assert "inactivity" in facts.expiry_note and "uses the key" in facts.expiry_note


def test_ok_several_ips() -> None:
    facts = classify(200, config_body(ip="203.0.113.7, 198.51.100.0/24")).facts
    assert facts is not None and facts.ips == ("203.0.113.7", "198.51.100.0/24")


# -- classification -----------------------------------------------------------------------------

DOCUMENTED = [
    (401, "50111", "Invalid OK-ACCESS-KEY.", KeyResult.INVALID_KEY),
    (200, "50119", "API key doesn't exist", KeyResult.INVALID_KEY),
    (401, "50101", "APIKey does not match current environment.", KeyResult.INVALID_KEY),
    (401, "50113", "Invalid signature.", KeyResult.INVALID_SIGNATURE),
    (
        401,
        "50105",
        'Request header "OK-ACCESS-PASSPHRASE" incorrect.',
        KeyResult.INVALID_SIGNATURE,
    ),
    (401, "50102", "Timestamp request expired.", KeyResult.TIMESTAMP),
    (401, "50112", "Invalid OK-ACCESS-TIMESTAMP.", KeyResult.TIMESTAMP),
    (401, "50103", 'Request header "OK-ACCESS-KEY" cannot be empty.', KeyResult.INVALID_KEY),
    (
        401,
        "50104",
        'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.',
        KeyResult.INVALID_SIGNATURE,
    ),
    (
        401,
        "50106",
        'Request header "OK-ACCESS-SIGN" cannot be empty.',
        KeyResult.INVALID_SIGNATURE,
    ),
    (401, "50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.', KeyResult.TIMESTAMP),
    (401, "50114", "Invalid authorization.", KeyResult.INVALID_SIGNATURE),
    (
        401,
        "50110",
        "Your IP 127.0.0.1 is not included in your API key's IP whitelist.",
        KeyResult.IP_NOT_ALLOWED,
    ),
    (
        200,
        "50120",
        "This API key doesn't have permission to use this function",
        KeyResult.PERMISSION_DENIED,
    ),
    (
        200,
        "50030",
        "You don't have permission to use this API endpoint",
        KeyResult.PERMISSION_DENIED,
    ),
    (400, "50100", "API frozen, please contact customer service.", KeyResult.INVALID_KEY),
    (200, "50011", "Rate limit reached.", KeyResult.RATE_LIMITED),
    (429, "50011", "Too Many Requests", KeyResult.RATE_LIMITED),
    (503, "50001", "Service temporarily unavailable.", KeyResult.OTHER),
    (500, "50026", "System error. Try again later", KeyResult.OTHER),
    (200, "51000", "Parameter error", KeyResult.OTHER),
]


@pytest.mark.parametrize(("status", "code", "msg", "expected"), DOCUMENTED)
def test_documented_answers(status: int, code: str, msg: str, expected: KeyResult) -> None:
    verdict = classify(status, body(code, msg))
    assert verdict.result is expected
    assert verdict.error_code == code
    assert verdict.message == msg
    assert verdict.facts is None
    assert verdict.ip_wide is False and verdict.banned is False


def test_observed_401_shape() -> None:
    verdict = classify(401, b'{"msg":"Invalid OK-ACCESS-KEY","code":"50111"}')
    assert verdict.result is KeyResult.INVALID_KEY and verdict.error_code == "50111"


def test_rate_limit_retry_after_header() -> None:
    verdict = classify(429, body("50011", "Too Many Requests"), headers={"Retry-After": "3"})
    assert verdict.result is KeyResult.RATE_LIMITED
    assert verdict.retry_after == 3.0 and verdict.ip_wide is False


def test_invalid_key_after_known_expiry_is_expired() -> None:
    previous = KeyFacts(expires_at=1_000.0, expiry_source="exchange")
    assert classify(200, body("50119"), previous, now=2_000.0).result is KeyResult.EXPIRED
    assert classify(200, body("50119"), previous, now=500.0).result is KeyResult.INVALID_KEY
    assert classify(401, body("50111"), KeyFacts(), now=2_000.0).result is KeyResult.INVALID_KEY


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (200, b"", KeyResult.OTHER),
        (200, b"<html>", KeyResult.OTHER),
        (200, b"[]", KeyResult.OTHER),
        (200, body("0", "", []), KeyResult.OTHER),
        (502, b"<html>bad gateway</html>", KeyResult.OTHER),
        (429, b"<html>slow down</html>", KeyResult.RATE_LIMITED),
        (200, b'{"code":"0","msg":"","data":["x"]}', KeyResult.OTHER),
    ],
)
def test_unusual_bodies_never_raise(status: int, payload: bytes, expected: KeyResult) -> None:
    assert classify(status, payload).result is expected
