"""The simulated Kraken ``POST /0/private/GetApiKeyInfo``: a request signed by the exporter's
:class:`KrakenKeyApi` is accepted, each documented error comes from the matching mistake, and
the answers round-trip through :meth:`KrakenKeyApi.classify` [KR-AUTH, KR-KEYINFO,
KR-ERRORS]."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from exporter.keys.exchanges.kraken import KrakenKeyApi, kraken_signature
from exporter.keys.model import Credentials, KeyFacts, KeyResult, KeyVerdict, Permission

pytestmark = pytest.mark.e2e  # an in-thread simulator

KEY = "kraken-sim-key-0001"
SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
OTHER_SECRET = "c2ltdWxhdG9yLXdyb25nLXNlY3JldC1mb3ItdGVzdHM="
CREDS = Credentials(key=SecretStr(KEY), secret=SecretStr(SECRET))
PATH = "/0/private/GetApiKeyInfo"


def add_key(client: httpx.Client, **spec: Any) -> None:
    body = {"exchange": "kraken", "key": KEY, "secret": SECRET, **spec}
    reply = client.post("/_control/keys", json=body)
    assert reply.status_code == 200, reply.text


def set_fault(client: httpx.Client, **spec: Any) -> None:
    reply = client.post("/_control/faults", json={"exchange": "kraken", **spec})
    assert reply.status_code == 200, reply.text


def base(client: httpx.Client) -> str:
    return f"{client.base_url}".rstrip("/") + "/kraken"


def call(
    client: httpx.Client,
    api: KrakenKeyApi | None = None,
    creds: Credentials = CREDS,
    now: float | None = None,
) -> httpx.Response:
    """Send the exporter's signed request."""
    signed = (api or KrakenKeyApi()).sign(creds, base(client), time.time() if now is None else now)
    return client.request(
        signed.method, signed.url, headers=dict(signed.headers), content=signed.body
    )


def verdict(
    reply: httpx.Response, previous: KeyFacts | None = None, now: float | None = None
) -> KeyVerdict:
    return KrakenKeyApi().classify(
        reply.status_code,
        reply.headers,
        reply.content,
        previous,
        time.time() if now is None else now,
    )


def expect_error(reply: httpx.Response, error: str) -> None:
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"error": [error], "result": {}}


def test_signed_request_accepted(client: httpx.Client) -> None:
    add_key(client, permissions=["read"], ips=["127.0.0.1"])
    api = KrakenKeyApi()
    reply = call(client, api)
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    assert doc["error"] == []
    result = doc["result"]
    assert result["permissions"] == ["query-funds", "query-open-trades"]
    assert result["ipAllowlist"] == ["127.0.0.1"]
    assert result["validUntil"] == "0" and result["nonceWindow"] == 0
    assert isinstance(result["createdTime"], str) and result["createdTime"].isdigit()
    assert int(result["nonce"]) == api.next_nonce(0) - 1  # the nonce just accepted
    got = verdict(reply)
    assert got.result is KeyResult.OK and got.facts is not None
    assert got.facts.ip_restricted is True and got.facts.ips == ("127.0.0.1",)
    assert dict(got.facts.permissions) == {
        Permission.READ: True,
        Permission.TRADE: False,
        Permission.WITHDRAW: False,
    }
    assert got.facts.expires_at is None and got.facts.created_at is not None


def test_all_permissions_and_expiry(client: httpx.Client) -> None:
    expires = time.time() + 86_400
    add_key(client, permissions=["read", "trade", "withdraw"], expires_at=expires)
    reply = call(client)
    result = reply.json()["result"]
    assert result["permissions"] == [
        "query-funds",
        "query-open-trades",
        "modify-trades",
        "withdraw-funds",
    ]
    assert result["validUntil"] == str(int(expires)) and result["ipAllowlist"] == []
    facts = verdict(reply).facts
    assert facts is not None and facts.expiry_source == "exchange"
    assert facts.expires_at == float(int(expires))
    assert all(facts.permissions.values()) and facts.ip_restricted is False


def test_successive_checks_accepted(client: httpx.Client) -> None:
    add_key(client)
    api = KrakenKeyApi()
    now = time.time()
    for _ in range(3):  # same clock reading: the nonce still increases
        assert call(client, api, now=now).json()["error"] == []


def test_json_body_accepted(client: httpx.Client) -> None:
    add_key(client)
    nonce = str(int(time.time() * 1000))
    body = json.dumps({"nonce": int(nonce)})
    headers = {
        "API-Key": KEY,
        "API-Sign": kraken_signature(SECRET, PATH, nonce, body),
        "Content-Type": "application/json",
    }
    reply = client.post(base(client) + PATH, headers=headers, content=body.encode())
    assert reply.json()["error"] == [], reply.text


def test_wrong_secret(client: httpx.Client) -> None:
    add_key(client)
    reply = call(client, creds=Credentials(key=SecretStr(KEY), secret=SecretStr(OTHER_SECRET)))
    expect_error(reply, "EAPI:Invalid signature")
    assert verdict(reply).result is KeyResult.INVALID_SIGNATURE


def test_body_changed_after_signing(client: httpx.Client) -> None:
    add_key(client)
    signed = KrakenKeyApi().sign(CREDS, base(client), time.time())
    reply = client.post(signed.url, headers=dict(signed.headers), content=signed.body + b"&x=1")
    expect_error(reply, "EAPI:Invalid signature")


def test_unknown_key(client: httpx.Client) -> None:
    add_key(client)
    reply = call(
        client, creds=Credentials(key=SecretStr("never-created"), secret=SecretStr(SECRET))
    )
    expect_error(reply, "EAPI:Invalid key")
    assert verdict(reply).result is KeyResult.INVALID_KEY


def test_replayed_nonce(client: httpx.Client) -> None:
    add_key(client)
    signed = KrakenKeyApi().sign(CREDS, base(client), time.time())
    first = client.post(signed.url, headers=dict(signed.headers), content=signed.body)
    assert first.json()["error"] == []
    again = client.post(signed.url, headers=dict(signed.headers), content=signed.body)
    expect_error(again, "EAPI:Invalid nonce")
    assert verdict(again).result is KeyResult.TIMESTAMP
    # a fresh instance whose clock is behind the last accepted nonce is refused too
    expect_error(call(client, now=time.time() - 60), "EAPI:Invalid nonce")


def test_clock_skew_does_not_matter(client: httpx.Client) -> None:
    add_key(client)
    set_fault(client, fault="clock_skew", skew_ms=3_600_000)
    assert call(client).json()["error"] == []


def test_revoked_key(client: httpx.Client) -> None:
    add_key(client)
    previous = verdict(call(client)).facts
    reply = client.request("DELETE", "/_control/keys", json={"exchange": "kraken", "key": KEY})
    assert reply.status_code == 200
    reply = call(client)
    expect_error(reply, "EAPI:Invalid key")
    assert verdict(reply, previous).result is KeyResult.INVALID_KEY


def test_expires_at_passed(client: httpx.Client) -> None:
    expires = time.time() + 3_600
    add_key(client, expires_at=expires)
    previous = verdict(call(client)).facts
    assert previous is not None and previous.expires_at == float(int(expires))
    add_key(client, expires_at=time.time() - 10)  # the key now past its expiry
    reply = call(client)
    expect_error(reply, "EAPI:Invalid key")
    assert verdict(reply).result is KeyResult.INVALID_KEY  # nothing known before
    past = previous.expires_at + 1
    assert verdict(reply, previous, now=past).result is KeyResult.EXPIRED


def test_ip_not_matching(client: httpx.Client) -> None:
    add_key(client, ips=["127.0.0.1"])
    previous = verdict(call(client)).facts
    add_key(client, ips=["203.0.113.7"])  # allow-list changed to someone else's address
    reply = call(client)
    expect_error(reply, "EGeneral:Permission denied")
    assert verdict(reply, previous).result is KeyResult.IP_NOT_ALLOWED
    assert verdict(reply, None).result is KeyResult.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("fault", "error", "ips", "expected"),
    [
        ("key_revoked", "EAPI:Invalid key", ["127.0.0.1"], KeyResult.INVALID_KEY),
        ("key_expired", "EAPI:Invalid key", ["127.0.0.1"], KeyResult.INVALID_KEY),
        ("ip_not_allowed", "EGeneral:Permission denied", ["127.0.0.1"], KeyResult.IP_NOT_ALLOWED),
        ("ip_not_allowed", "EGeneral:Permission denied", [], KeyResult.PERMISSION_DENIED),
    ],
)
def test_key_faults_round_trip(
    client: httpx.Client, fault: str, error: str, ips: list[str], expected: KeyResult
) -> None:
    add_key(client, ips=ips)
    api = KrakenKeyApi()
    previous = verdict(call(client, api)).facts
    assert previous is not None
    set_fault(client, fault=fault)
    reply = call(client, api)
    expect_error(reply, error)
    assert verdict(reply, previous).result is expected
    # a wrong signature is still a wrong signature under a key fault
    wrong = Credentials(key=SecretStr(KEY), secret=SecretStr(OTHER_SECRET))
    expect_error(call(client, api, wrong), "EAPI:Invalid signature")


def test_key_expired_fault_after_known_expiry(client: httpx.Client) -> None:
    expires = time.time() + 3_600
    add_key(client, expires_at=expires)
    api = KrakenKeyApi()
    previous = verdict(call(client, api)).facts
    assert previous is not None and previous.expires_at is not None
    set_fault(client, fault="key_expired")
    reply = call(client, api)
    expect_error(reply, "EAPI:Invalid key")
    assert verdict(reply, previous).result is KeyResult.INVALID_KEY  # before validUntil
    past = previous.expires_at + 1
    assert verdict(reply, previous, now=past).result is KeyResult.EXPIRED


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("key_revoked", "EAPI:Invalid key"),
        ("key_expired", "EAPI:Invalid key"),
        ("ip_not_allowed", "EGeneral:Permission denied"),
    ],
)
def test_key_faults_narrowed_to_one_key(client: httpx.Client, fault: str, error: str) -> None:
    add_key(client)
    api = KrakenKeyApi()
    set_fault(client, fault=fault, key="some-other-key")
    assert call(client, api).json()["error"] == []
    set_fault(client, fault=fault, key=KEY)
    expect_error(call(client, api), error)


@pytest.mark.parametrize(
    ("fault", "error"),
    [("rate_limited", "EAPI:Rate limit exceeded"), ("banned", "EGeneral:Temporary lockout")],
)
def test_rest_limit_faults_on_api_key(client: httpx.Client, fault: str, error: str) -> None:
    add_key(client)
    set_fault(client, endpoint="api_key", fault=fault)
    reply = call(client)
    assert reply.status_code == 200 and reply.json()["error"] == [error]
    got = verdict(reply)
    assert got.result is KeyResult.RATE_LIMITED and got.ip_wide is False


@pytest.mark.parametrize(
    ("drop", "body", "error"),
    [
        ("API-Key", None, "EAPI:Invalid key"),
        ("API-Sign", None, "EAPI:Invalid signature"),
        (None, b"nonce=abc", "EAPI:Invalid nonce"),
        (None, b"", "EAPI:Invalid nonce"),
    ],
)
def test_malformed_requests(
    client: httpx.Client, drop: str | None, body: bytes | None, error: str
) -> None:
    add_key(client)
    signed = KrakenKeyApi().sign(CREDS, base(client), time.time())
    headers = {k: v for k, v in signed.headers.items() if k != drop}
    reply = client.post(signed.url, headers=headers, content=signed.body if body is None else body)
    expect_error(reply, error)
