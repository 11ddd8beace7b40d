"""Binance key check: signer against the documented worked examples, request shape,
classification of every documented answer, facts mapping and policy expiry."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from exporter.keys.exchanges import key_api_class
from exporter.keys.exchanges.binance import (
    POLICY_RULE_START,
    BinanceKeyApi,
    binance_query,
    binance_signature,
    facts_from_restrictions,
)
from exporter.keys.model import Credentials, KeyFacts, KeyResult, Permission

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
CREDS = Credentials(key=SecretStr(API_KEY), secret=SecretStr(SECRET))
NOW = 1_800_000_000.0
DAY = 86400.0

# The apiRestrictions example of [BN-APIKEY] (comments condensed).
DOC_BODY: dict[str, Any] = {
    "ipRestrict": False,
    "createTime": 1698645219000,
    "enableReading": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "permitsUniversalTransfer": False,
    "enableVanillaOptions": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": True,
    "enableSpotAndMarginTrading": False,
    "enablePortfolioMarginTrading": True,
}


@pytest.mark.parametrize(
    ("payload", "signature"),
    [
        (
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
            "&recvWindow=5000&timestamp=1499827319559",
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71",
        ),
        (
            "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT"
            "&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559",
            "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3",
        ),
        (
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
            + "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559",
            "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77",
        ),
        (
            "timestamp=1499827319559&recvWindow=5000",
            "6cd35332399b004466463b9ad65a112a14f31fb9ddfd5e19bd7298fbd491dbc7",
        ),
    ],
    ids=["doc-example-1", "doc-example-2-percent-encoded", "doc-example-3-query+body", "probe"],
)
def test_signature_matches_documented_examples(payload: str, signature: str) -> None:
    assert binance_signature(SECRET, payload) == signature


def test_signature_covers_parameter_order() -> None:
    swapped = binance_signature(SECRET, "recvWindow=5000&timestamp=1499827319559")
    assert swapped != binance_signature(SECRET, binance_query(1499827319559, 5000))
    assert swapped.startswith("82f4e72e") and swapped.endswith("55821")


def test_sign_builds_documented_probe_request() -> None:
    request = BinanceKeyApi().sign(CREDS, "https://api.binance.com/", 1499827319.559)
    assert request.method == "GET"
    assert request.url == (
        "https://api.binance.com/sapi/v1/account/apiRestrictions?timestamp=1499827319559"
        "&recvWindow=5000&signature=6cd35332399b004466463b9ad65a112a14f31fb9ddfd5e19bd7298fbd491dbc7"
    )
    assert dict(request.headers) == {"X-MBX-APIKEY": API_KEY}
    assert request.body == b""


def test_sign_keeps_prefix_and_recv_window() -> None:
    request = BinanceKeyApi().sign(CREDS, "http://127.0.0.1:9/binance", NOW, 60000)
    parts = urlsplit(request.url)
    assert parts.path == "/binance/sapi/v1/account/apiRestrictions"
    query = dict(parse_qsl(parts.query))
    assert query["timestamp"] == str(int(NOW * 1000))
    assert query["recvWindow"] == "60000"
    assert parts.query.endswith("&signature=" + query["signature"])
    signed = parts.query.rsplit("&signature=", 1)[0]
    assert binance_signature(SECRET, signed) == query["signature"]
    assert SECRET not in request.url and SECRET not in str(request.headers)


def test_class_attributes_and_registry() -> None:
    assert key_api_class("binance", CREDS) is BinanceKeyApi
    assert BinanceKeyApi.path == "/sapi/v1/account/apiRestrictions"
    assert BinanceKeyApi.weight == 1
    assert BinanceKeyApi.default_recv_window_ms == 5000
    assert BinanceKeyApi.max_recv_window_ms == 60000
    assert BinanceKeyApi.limits == ()


def test_check_credentials() -> None:
    BinanceKeyApi.check_credentials(CREDS)
    with pytest.raises(ValueError, match="secret_env or secret_file") as missing:
        BinanceKeyApi.check_credentials(Credentials(key=SecretStr(API_KEY)))
    assert API_KEY not in str(missing.value)
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----"
    with pytest.raises(ValueError, match="HMAC") as rsa:
        BinanceKeyApi.check_credentials(Credentials(key=SecretStr(API_KEY), secret=SecretStr(pem)))
    assert pem not in str(rsa.value)


def _classify(
    status: int,
    body: Any,
    previous: KeyFacts | None = None,
    headers: dict[str, str] | None = None,
    now: float = NOW,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return BinanceKeyApi().classify(status, httpx.Headers(headers or {}), raw, previous, now)


def _err(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg}


REJECTED = _err(-2015, "Invalid API-key, IP, or permissions for action.")


@pytest.mark.parametrize(
    ("status", "body", "result"),
    [
        (401, _err(-2014, "API-key format invalid."), KeyResult.INVALID_KEY),
        (401, REJECTED, KeyResult.INVALID_KEY),
        (401, _err(-2008, "Invalid Api-Key ID."), KeyResult.INVALID_KEY),
        (400, _err(-1022, "Signature for this request is not valid."), KeyResult.INVALID_SIGNATURE),
        (
            400,
            _err(-1021, "Timestamp for this request is outside of the recvWindow."),
            KeyResult.TIMESTAMP,
        ),
        (
            400,
            _err(-1021, "Timestamp for this request was 1000ms ahead of the server's time."),
            KeyResult.TIMESTAMP,
        ),
        (400, _err(-1131, "recvWindow must be less than 60000."), KeyResult.OTHER),
        (
            401,
            _err(-1002, "You are not authorized to execute this request."),
            KeyResult.PERMISSION_DENIED,
        ),
        (400, _err(-1102, "Mandatory parameter 'timestamp' was not sent."), KeyResult.OTHER),
        (403, b"<html>403 Forbidden</html>", KeyResult.OTHER),
        (502, b"<html>502 Bad Gateway</html>", KeyResult.OTHER),
        (500, _err(-1000, "An unknown error occurred."), KeyResult.OTHER),
        (200, b"{not json", KeyResult.OTHER),
        (200, {"unexpected": True}, KeyResult.OTHER),
        (404, b"", KeyResult.OTHER),
    ],
)
def test_classify_documented_errors(status: int, body: Any, result: KeyResult) -> None:
    verdict = _classify(status, body)
    assert verdict.result is result
    assert verdict.facts is None
    assert not verdict.ip_wide
    if isinstance(body, dict) and "code" in body:
        assert verdict.error_code == str(body["code"])
        assert verdict.message == body["msg"]


def test_classify_rate_limit_429_and_ban_418() -> None:
    limited = _classify(
        429,
        _err(-1003, "Too much request weight used; current limit is 6000 request weight per 1 M."),
        headers={"Retry-After": "17"},
    )
    assert limited.result is KeyResult.RATE_LIMITED
    assert limited.ip_wide and not limited.banned
    assert limited.retry_after == 17
    assert limited.error_code == "-1003"
    banned = _classify(
        418, _err(-1003, "Way too much request weight used; IP banned until 1800000120000.")
    )
    assert banned.result is KeyResult.RATE_LIMITED
    assert banned.ip_wide and banned.banned
    assert banned.retry_after is None


def test_classify_1003_under_another_status_is_ip_wide() -> None:
    verdict = _classify(400, _err(-1003, "Too much request weight used"))
    assert verdict.result is KeyResult.RATE_LIMITED and verdict.ip_wide


@pytest.mark.parametrize(
    ("previous", "result"),
    [
        (None, KeyResult.INVALID_KEY),
        (KeyFacts(ip_restricted=False), KeyResult.INVALID_KEY),
        (KeyFacts(ip_restricted=True), KeyResult.IP_NOT_ALLOWED),
        (
            KeyFacts(ip_restricted=False, expires_at=NOW - 1, expiry_source="exchange"),
            KeyResult.EXPIRED,
        ),
        (
            KeyFacts(ip_restricted=True, expires_at=NOW - 1, expiry_source="exchange"),
            KeyResult.EXPIRED,
        ),
        (
            KeyFacts(ip_restricted=True, expires_at=NOW + 60, expiry_source="exchange"),
            KeyResult.IP_NOT_ALLOWED,
        ),
        # The 30-day policy switches trading off, not the key: -2015 is not explained by it.
        (
            KeyFacts(ip_restricted=False, expires_at=NOW - 1, expiry_source="policy"),
            KeyResult.INVALID_KEY,
        ),
    ],
    ids=["none", "unbound", "ip-bound", "expired", "expired-bound", "bound-not-due", "policy"],
)
def test_classify_2015_uses_previous_facts(previous: KeyFacts | None, result: KeyResult) -> None:
    verdict = _classify(401, REJECTED, previous)
    assert verdict.result is result
    assert verdict.error_code == "-2015"


def test_doc_example_facts() -> None:
    verdict = _classify(200, DOC_BODY)
    assert verdict.result is KeyResult.OK
    facts = verdict.facts
    assert facts is not None
    assert facts.permissions == {
        Permission.READ: True,
        Permission.TRADE: True,  # enablePortfolioMarginTrading
        Permission.WITHDRAW: False,
        Permission.TRANSFER: False,
    }
    assert facts.ip_restricted is False
    assert facts.ips == ()
    assert facts.created_at == 1698645219.0
    assert facts.expires_at is None  # spot trading is off: the 30-day rule does not apply
    assert facts.expiry_source is None


def test_policy_expiry_without_ip_restriction_and_spot_trading() -> None:
    body = dict(DOC_BODY, enableSpotAndMarginTrading=True)
    facts = facts_from_restrictions(body)
    assert facts is not None
    assert facts.expires_at == 1698645219.0 + 30 * DAY
    assert facts.expiry_source == "policy"
    assert "30 days" in facts.expiry_note and facts.expiry_note.endswith(".")


def test_no_policy_expiry_when_ip_restricted_or_before_rule() -> None:
    bound = facts_from_restrictions(
        dict(DOC_BODY, ipRestrict=True, enableSpotAndMarginTrading=True)
    )
    assert bound is not None and bound.expires_at is None and bound.ip_restricted is True
    old_ms = int((POLICY_RULE_START - DAY) * 1000)
    old = facts_from_restrictions(
        dict(DOC_BODY, createTime=old_ms, enableSpotAndMarginTrading=True)
    )
    assert old is not None and old.expires_at is None


def test_exchange_expiry_wins() -> None:
    body = dict(DOC_BODY, enableSpotAndMarginTrading=True, tradingAuthorityExpirationTime=1.9e12)
    facts = facts_from_restrictions(body)
    assert facts is not None
    assert facts.expires_at == 1.9e9
    assert facts.expiry_source == "exchange"
    assert "tradingAuthorityExpirationTime" in facts.expiry_note
    empty = facts_from_restrictions(dict(DOC_BODY, tradingAuthorityExpirationTime=None))
    assert empty is not None and empty.expires_at is None


def test_permission_mapping_fields() -> None:
    body = {
        "ipRestrict": True,
        "createTime": 1698645219000,
        "enableReading": True,
        "enableWithdrawals": True,
        "enableInternalTransfer": False,
        "permitsUniversalTransfer": True,
        "enableFutures": False,
        "enableSpotAndMarginTrading": False,
    }
    facts = facts_from_restrictions(body)
    assert facts is not None
    assert facts.permissions == {
        Permission.READ: True,
        Permission.TRADE: False,
        Permission.WITHDRAW: True,
        Permission.TRANSFER: True,
    }
    only_read = facts_from_restrictions({"ipRestrict": False, "enableReading": True})
    assert only_read is not None
    assert only_read.permissions == {Permission.READ: True}
    assert only_read.created_at is None
    assert facts_from_restrictions({"code": 0}) is None


def test_classify_never_raises_on_garbage() -> None:
    api = BinanceKeyApi()
    for status in (200, 400, 401, 418, 429, 503):
        for body in (b"", b"null", b"[]", b'"x"', b'{"code": "x"}', b"\xff\xfe", b"{"):
            verdict = api.classify(status, {}, body, KeyFacts(ip_restricted=True), NOW)
            assert verdict.result in KeyResult
