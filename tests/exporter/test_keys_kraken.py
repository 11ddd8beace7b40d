"""Kraken key check: signer vs the documented examples, nonce monotonicity, request shape, facts
and classification of every documented answer incl. ``previous`` disambiguation [KR-AUTH,
KR-KEYINFO, KR-ERRORS]."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from exporter.keys.exchanges import key_api_class
from exporter.keys.exchanges.base import KEY_ENDPOINT
from exporter.keys.exchanges.kraken import (
    KrakenKeyApi,
    kraken_permissions,
    kraken_signature,
)
from exporter.keys.model import Credentials, KeyFacts, KeyResult, Permission

DOC_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
DOC_NONCE = "1616492376594"
CREDS = Credentials(key=SecretStr("kraken-api-key-0001"), secret=SecretStr(DOC_SECRET))


def errors(*items: str) -> bytes:
    return json.dumps({"error": list(items), "result": {}}).encode()


def classify(
    payload: bytes,
    previous: KeyFacts | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    now: float = 1_772_627_061.0,
):
    return KrakenKeyApi().classify(status, headers or {}, payload, previous, now)


# -- signer -------------------------------------------------------------------------------------


def test_signature_matches_documented_add_order_example() -> None:
    data = f"nonce={DOC_NONCE}&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert kraken_signature(DOC_SECRET, "/0/private/AddOrder", DOC_NONCE, data) == (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )


def test_signature_matches_computed_balance_example() -> None:
    assert kraken_signature(
        DOC_SECRET, "/0/private/Balance", int(DOC_NONCE), f"nonce={DOC_NONCE}"
    ) == (
        "1nH4vwR+8FHiYh1QT649xXkGd3JR3x0DWkgv3u9Ed/Qqv6KPtgQpEU4m+Emb/VgpEji3j1XNwI+HCbfXxmrTOg=="
    )


def test_signature_refuses_non_base64_secret_without_echo() -> None:
    with pytest.raises(ValueError) as err:
        kraken_signature("not*base64!", "/0/private/Balance", 1, "nonce=1")
    assert "not*base64!" not in str(err.value)


def test_sign_builds_documented_request() -> None:
    api = KrakenKeyApi()
    signed = api.sign(CREDS, "http://127.0.0.1:9/kraken", 1616492376.594)
    assert signed.method == "POST"
    assert signed.url == "http://127.0.0.1:9/kraken/0/private/GetApiKeyInfo"
    assert signed.body == f"nonce={DOC_NONCE}".encode()
    assert dict(signed.headers) == {
        "API-Key": "kraken-api-key-0001",
        "API-Sign": kraken_signature(
            DOC_SECRET, "/0/private/GetApiKeyInfo", DOC_NONCE, f"nonce={DOC_NONCE}"
        ),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def test_nonce_strictly_increasing_per_instance() -> None:
    api = KrakenKeyApi()
    now = 1_700_000_000.0
    nonces = [api.next_nonce(now) for _ in range(3)]
    assert nonces == [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002]
    assert api.next_nonce(now - 60) == 1_700_000_000_003  # clock went back: still increasing
    assert api.next_nonce(now + 1) == 1_700_000_001_000  # clock moved on: time again
    bodies = [api.sign(CREDS, "http://x", now).body for _ in range(2)]
    assert bodies[0] != bodies[1]
    assert KrakenKeyApi().next_nonce(now) == 1_700_000_000_000  # per instance


def test_class_attributes_and_registry() -> None:
    assert key_api_class("kraken", CREDS) is KrakenKeyApi
    assert KrakenKeyApi.method == "POST" and KrakenKeyApi.path == "/0/private/GetApiKeyInfo"
    (rule,) = KrakenKeyApi.limits
    assert rule.endpoints == frozenset({KEY_ENDPOINT})
    assert rule.limit / rule.window_seconds <= 0.33  # never above the Starter decay


def test_check_credentials() -> None:
    KrakenKeyApi.check_credentials(CREDS)
    with pytest.raises(ValueError, match="secret_env or secret_file"):
        KrakenKeyApi.check_credentials(Credentials(key=SecretStr("k")))
    with pytest.raises(ValueError, match="base64") as err:
        KrakenKeyApi.check_credentials(
            Credentials(key=SecretStr("k"), secret=SecretStr("Qx7%%not-base64"))
        )
    assert "Qx7" not in str(err.value)


# -- facts --------------------------------------------------------------------------------------

DOC_RESULT: dict[str, Any] = {
    "apiKeyName": "my-api-key",
    "apiKey": "4/SDrD...",
    "nonce": "1772627060997",
    "nonceWindow": 0,
    "permissions": ["query-funds", "withdraw-funds", "query-open-trades", "modify-trades"],
    "iban": "AA88 N84G WOAK NMOI",
    "validUntil": "0",
    "queryFrom": "0",
    "queryTo": "0",
    "createdTime": "1772542900",
    "modifiedTime": "1772543095",
    "ipAllowlist": [],
    "lastUsed": "1772627061",
}


def ok_body(**changes: Any) -> bytes:
    return json.dumps({"error": [], "result": {**DOC_RESULT, **changes}}).encode()


def test_ok_documented_example() -> None:
    verdict = classify(ok_body())
    facts = verdict.facts
    assert verdict.result is KeyResult.OK and facts is not None
    assert dict(facts.permissions) == {
        Permission.READ: True,
        Permission.TRADE: True,
        Permission.WITHDRAW: True,
    }
    assert facts.ip_restricted is False and facts.ips == ()
    assert facts.expires_at is None and facts.expiry_source is None
    assert facts.created_at == 1772542900.0
    assert "validUntil" in facts.expiry_note


def test_ok_read_only_bound_with_expiry() -> None:
    body = ok_body(
        permissions=["query-funds", "query-open-trades"],
        ipAllowlist=["203.0.113.7"],
        validUntil="1780000000",
    )
    facts = classify(body).facts
    assert facts is not None
    assert dict(facts.permissions) == {
        Permission.READ: True,
        Permission.TRADE: False,
        Permission.WITHDRAW: False,
    }
    assert facts.ip_restricted is True and facts.ips == ("203.0.113.7",)
    assert facts.expires_at == 1780000000.0 and facts.expiry_source == "exchange"


@pytest.mark.parametrize(
    ("strings", "expected"),
    [
        ([], (False, False, False)),
        (["query-ledger-entries"], (True, False, False)),
        (["create-orders"], (False, True, False)),
        (["cancel-orders"], (False, True, False)),
        (["modify-orders"], (False, True, False)),
        (["close-trades"], (False, True, False)),
        (["withdraw-funds"], (False, False, True)),
        (["deposit-funds", "export-data"], (False, False, False)),
    ],
)
def test_permission_strings(strings: list[str], expected: tuple[bool, bool, bool]) -> None:
    perms = kraken_permissions(strings)
    assert (perms[Permission.READ], perms[Permission.TRADE], perms[Permission.WITHDRAW]) == (
        expected
    )


# -- classification -----------------------------------------------------------------------------

BOUND = KeyFacts(ip_restricted=True, ips=("127.0.0.1",))
UNBOUND = KeyFacts(ip_restricted=False)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("EAPI:Invalid key", KeyResult.INVALID_KEY),
        ("EAPI:Invalid signature", KeyResult.INVALID_SIGNATURE),
        ("EAPI:Invalid nonce", KeyResult.TIMESTAMP),
        ("EGeneral:Permission denied", KeyResult.PERMISSION_DENIED),
        ("EAPI:Rate limit exceeded", KeyResult.RATE_LIMITED),
        ("EGeneral:Too many requests", KeyResult.RATE_LIMITED),
        ("EGeneral:Temporary lockout", KeyResult.RATE_LIMITED),
        ("EService:Unavailable", KeyResult.OTHER),
        ("EGeneral:Invalid arguments", KeyResult.OTHER),
    ],
)
def test_documented_errors(error: str, expected: KeyResult) -> None:
    verdict = classify(errors(error))
    assert verdict.result is expected
    assert verdict.error_code == error and verdict.message == error
    assert verdict.ip_wide is False and verdict.banned is False and verdict.facts is None


def test_doc_error_example_without_result() -> None:
    assert classify(b'{"error":["EAPI:Invalid key"]}').result is KeyResult.INVALID_KEY


def test_permission_denied_after_ip_bound_answer_is_ip() -> None:
    denied = errors("EGeneral:Permission denied")
    assert classify(denied, BOUND).result is KeyResult.IP_NOT_ALLOWED
    assert classify(denied, UNBOUND).result is KeyResult.PERMISSION_DENIED
    assert classify(denied, None).result is KeyResult.PERMISSION_DENIED


def test_invalid_key_after_valid_until_is_expired() -> None:
    previous = KeyFacts(expires_at=1_000.0, expiry_source="exchange")
    invalid = errors("EAPI:Invalid key")
    assert classify(invalid, previous, now=1_000.0).result is KeyResult.EXPIRED
    assert classify(invalid, previous, now=999.0).result is KeyResult.INVALID_KEY
    assert classify(invalid, UNBOUND).result is KeyResult.INVALID_KEY


def test_rate_limit_retry_after() -> None:
    verdict = classify(errors("EAPI:Rate limit exceeded"), headers={"Retry-After": "5"})
    assert verdict.retry_after == 5.0 and verdict.ip_wide is False


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (200, b"", KeyResult.OTHER),
        (200, b"not json", KeyResult.OTHER),
        (200, b'{"error":"x"}', KeyResult.OTHER),
        (200, b'{"error":[]}', KeyResult.OTHER),
        (502, b"<html>bad gateway</html>", KeyResult.OTHER),
        (520, errors("EAPI:Invalid key"), KeyResult.OTHER),
        (429, b"<html>slow down</html>", KeyResult.RATE_LIMITED),
        (200, errors("EAPI:Invalid key", "EGeneral:Temporary lockout"), KeyResult.INVALID_KEY),
    ],
)
def test_unusual_answers_never_raise(status: int, payload: bytes, expected: KeyResult) -> None:
    assert classify(payload, status=status).result is expected
