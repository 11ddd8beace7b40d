"""The simulated OKX ``GET /api/v5/account/config``: a request signed by the exporter's
:class:`OkxKeyApi` is accepted, each documented error comes from the matching mistake, and the
answers round-trip through :meth:`OkxKeyApi.classify` [OKX-AUTH, OKX-CONFIG, OKX-ERR]."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from exporter.keys.exchanges.okx import OkxKeyApi
from exporter.keys.model import Credentials, KeyFacts, KeyResult, KeyVerdict, Permission

pytestmark = pytest.mark.e2e  # an in-thread simulator

KEY = "okx-sim-key-0001"
SECRET = "22582BD0CFF14C41EDBF1AB98506286D"
PASSPHRASE = "sim-passphrase"
CREDS = Credentials(key=SecretStr(KEY), secret=SecretStr(SECRET), passphrase=SecretStr(PASSPHRASE))


def add_key(client: httpx.Client, **spec: Any) -> None:
    body = {"exchange": "okx", "key": KEY, "secret": SECRET, "passphrase": PASSPHRASE, **spec}
    reply = client.post("/_control/keys", json=body)
    assert reply.status_code == 200, reply.text


def set_fault(client: httpx.Client, **spec: Any) -> None:
    reply = client.post("/_control/faults", json={"exchange": "okx", **spec})
    assert reply.status_code == 200, reply.text


def call(
    client: httpx.Client,
    creds: Credentials = CREDS,
    now: float | None = None,
    headers: dict[str, str | None] | None = None,
) -> httpx.Response:
    """Send the exporter's signed request (``headers``: overrides, None removes one)."""
    signed = OkxKeyApi().sign(
        creds, f"{client.base_url}".rstrip("/") + "/okx", time.time() if now is None else now
    )
    sent = dict(signed.headers)
    for name, value in (headers or {}).items():
        if value is None:
            sent.pop(name, None)
        else:
            sent[name] = value
    return client.request(signed.method, signed.url, headers=sent, content=signed.body)


def verdict(reply: httpx.Response, previous: KeyFacts | None = None) -> KeyVerdict:
    return OkxKeyApi().classify(
        reply.status_code, reply.headers, reply.content, previous, time.time()
    )


def expect_error(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    doc = reply.json()
    assert doc["code"] == code and doc["data"] == []
    return doc


def test_signed_request_accepted(client: httpx.Client) -> None:
    add_key(client, permissions=["read"], ips=["127.0.0.1"])
    reply = call(client)
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    assert doc["code"] == "0" and doc["msg"] == ""
    (entry,) = doc["data"]
    assert entry["perm"] == "read_only" and entry["ip"] == "127.0.0.1"
    assert {"uid", "mainUid", "acctLv", "label", "kycLv", "type"} <= entry.keys()
    got = verdict(reply)
    assert got.result is KeyResult.OK and got.facts is not None
    assert got.facts.ip_restricted is True and got.facts.ips == ("127.0.0.1",)
    assert dict(got.facts.permissions) == {
        Permission.READ: True,
        Permission.TRADE: False,
        Permission.WITHDRAW: False,
    }
    assert got.facts.expires_at is None


def test_permissions_in_okx_words(client: httpx.Client) -> None:
    add_key(client, permissions=["read", "trade", "withdraw"], ips=[])
    reply = call(client)
    assert reply.json()["data"][0]["perm"] == "read_only,trade,withdraw"
    assert reply.json()["data"][0]["ip"] == ""
    facts = verdict(reply).facts
    assert facts is not None and facts.ip_restricted is False
    assert facts.permissions[Permission.WITHDRAW] is True


def test_wrong_secret_is_invalid_signature(client: httpx.Client) -> None:
    add_key(client)
    wrong = Credentials(
        key=SecretStr(KEY), secret=SecretStr("0" * 32), passphrase=SecretStr(PASSPHRASE)
    )
    reply = call(client, wrong)
    expect_error(reply, 401, "50113")
    assert verdict(reply).result is KeyResult.INVALID_SIGNATURE


def test_wrong_passphrase(client: httpx.Client) -> None:
    add_key(client)
    wrong = Credentials(key=SecretStr(KEY), secret=SecretStr(SECRET), passphrase=SecretStr("no"))
    reply = call(client, wrong)
    expect_error(reply, 401, "50105")
    assert verdict(reply).result is KeyResult.INVALID_SIGNATURE


def test_unknown_key(client: httpx.Client) -> None:
    add_key(client)
    other = Credentials(
        key=SecretStr("never-created"), secret=SecretStr(SECRET), passphrase=SecretStr(PASSPHRASE)
    )
    reply = call(client, other)
    expect_error(reply, 401, "50111")
    assert verdict(reply).result is KeyResult.INVALID_KEY


def test_stale_timestamp(client: httpx.Client) -> None:
    add_key(client)
    for offset in (-120.0, 120.0):
        reply = call(client, now=time.time() + offset)
        expect_error(reply, 401, "50102")
        assert verdict(reply).result is KeyResult.TIMESTAMP


def test_clock_skew_fault_gives_timestamp_error(client: httpx.Client) -> None:
    add_key(client)
    set_fault(client, fault="clock_skew", skew_ms=90_000)
    reply = call(client)
    expect_error(reply, 401, "50102")
    assert verdict(reply).result is KeyResult.TIMESTAMP


def test_malformed_timestamp(client: httpx.Client) -> None:
    add_key(client)
    reply = call(client, headers={"OK-ACCESS-TIMESTAMP": str(int(time.time()))})
    expect_error(reply, 401, "50112")
    assert verdict(reply).result is KeyResult.TIMESTAMP


@pytest.mark.parametrize(
    ("header", "code", "expected"),
    [
        ("OK-ACCESS-KEY", "50103", KeyResult.INVALID_KEY),
        ("OK-ACCESS-SIGN", "50106", KeyResult.INVALID_SIGNATURE),
        ("OK-ACCESS-TIMESTAMP", "50107", KeyResult.TIMESTAMP),
        ("OK-ACCESS-PASSPHRASE", "50104", KeyResult.INVALID_SIGNATURE),
    ],
)
def test_missing_headers(client: httpx.Client, header: str, code: str, expected: KeyResult) -> None:
    add_key(client)
    reply = call(client, headers={header: None})
    doc = expect_error(reply, 401, code)
    assert doc["msg"] == f'Request header "{header}" cannot be empty.'
    assert verdict(reply).result is expected


def test_revoked_key(client: httpx.Client) -> None:
    add_key(client)
    previous = verdict(call(client)).facts
    reply = client.request("DELETE", "/_control/keys", json={"exchange": "okx", "key": KEY})
    assert reply.status_code == 200
    reply = call(client)
    expect_error(reply, 200, "50119")
    assert verdict(reply, previous).result is KeyResult.INVALID_KEY


def test_expires_at_passed(client: httpx.Client) -> None:
    add_key(client, expires_at=time.time() - 10)
    reply = call(client)
    expect_error(reply, 200, "50119")
    assert verdict(reply).result is KeyResult.INVALID_KEY


def test_ip_not_matching(client: httpx.Client) -> None:
    add_key(client, ips=["203.0.113.7"])
    reply = call(client)
    doc = expect_error(reply, 401, "50110")
    assert "127.0.0.1" in doc["msg"]
    assert verdict(reply).result is KeyResult.IP_NOT_ALLOWED


FAULTS = [
    ("key_revoked", 200, "50119", KeyResult.INVALID_KEY),
    ("key_expired", 200, "50119", KeyResult.INVALID_KEY),
    ("ip_not_allowed", 401, "50110", KeyResult.IP_NOT_ALLOWED),
]
"""The fault → result table of :mod:`exporter.keys.exchanges.okx`."""


@pytest.mark.parametrize(("fault", "status", "code", "expected"), FAULTS)
def test_key_faults_round_trip(
    client: httpx.Client, fault: str, status: int, code: str, expected: KeyResult
) -> None:
    add_key(client, ips=["127.0.0.1"])
    previous = verdict(call(client)).facts
    assert previous is not None
    set_fault(client, fault=fault)
    reply = call(client)
    expect_error(reply, status, code)
    assert verdict(reply, previous).result is expected
    # a wrong signature is still a wrong signature under a key fault
    wrong = Credentials(
        key=SecretStr(KEY), secret=SecretStr("1" * 32), passphrase=SecretStr(PASSPHRASE)
    )
    expect_error(call(client, wrong), 401, "50113")


@pytest.mark.parametrize(("fault", "status", "code", "expected"), FAULTS)
def test_key_faults_narrowed_to_one_key(
    client: httpx.Client, fault: str, status: int, code: str, expected: KeyResult
) -> None:
    add_key(client)
    set_fault(client, fault=fault, key="some-other-key")
    assert call(client).json()["code"] == "0"
    set_fault(client, fault=fault, key=KEY)
    reply = call(client)
    expect_error(reply, status, code)
    assert verdict(reply).result is expected


def test_rest_rate_limit_fault_on_api_key(client: httpx.Client) -> None:
    add_key(client)
    set_fault(client, endpoint="api_key", fault="rate_limited", retry_after=2)
    reply = call(client)
    expect_error(reply, 429, "50011")
    got = verdict(reply)
    assert got.result is KeyResult.RATE_LIMITED and got.retry_after == 2.0
    assert got.ip_wide is False
