"""The simulated Bybit private endpoint against the exporter's signer and classifier: a
correctly signed request is accepted, each documented error comes from the matching mistake,
and each key fault classifies as the exporter module documents."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from exporter.keys.exchanges.bybit import BybitKeyApi, bybit_signature
from exporter.keys.model import Credentials, KeyFacts, KeyResult, KeyVerdict, Permission

pytestmark = pytest.mark.e2e

KEY = "simBybitMonitorKey01"
SECRET = "simBybitSecret0123456789"
PATH = "/bybit/v5/user/query-api"
WIDE = 60000  # receive window of most tests: robust on a slow machine
API = BybitKeyApi()


def _add_key(client: httpx.Client, **fields: Any) -> None:
    spec = {"exchange": "bybit", "key": KEY, "secret": SECRET, "permissions": ["read"]}
    spec.update(fields)
    response = client.post("/_control/keys", json=spec)
    assert response.status_code == 200, response.text


def _creds(key: str = KEY, secret: str = SECRET) -> Credentials:
    return Credentials(key=SecretStr(key), secret=SecretStr(secret))


def _send(
    client: httpx.Client,
    creds: Credentials | None = None,
    now: float | None = None,
    recv_window_ms: int | None = WIDE,
) -> httpx.Response:
    base = str(client.base_url).rstrip("/") + "/bybit"
    request = API.sign(creds or _creds(), base, time.time() if now is None else now, recv_window_ms)
    return client.request(request.method, request.url, headers=dict(request.headers))


def _classify(response: httpx.Response, previous: KeyFacts | None = None) -> KeyVerdict:
    return API.classify(
        response.status_code, response.headers, response.content, previous, time.time()
    )


def _fault(client: httpx.Client, **spec: Any) -> None:
    response = client.post("/_control/faults", json={"exchange": "bybit", **spec})
    assert response.status_code == 200, response.text


def _assert_code(response: httpx.Response, code: int, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert body["retCode"] == code
    if code:
        assert body["result"] == {}
    return body


def _iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_signed_request_accepted_read_only(client: httpx.Client) -> None:
    before = time.time()
    _add_key(client, ips=["127.0.0.1"])
    response = _send(client, recv_window_ms=None)  # the documented default 5000
    result = _assert_code(response, 0)["result"]
    assert result["apiKey"] == KEY
    assert result["readOnly"] == 1
    assert result["secret"] == ""
    assert result["ips"] == ["127.0.0.1"]
    assert result["permissions"]["Wallet"] == []
    assert result["deadlineDay"] == -2
    assert result["expiredAt"] == "1970-01-01T00:00:00Z"
    assert before - 2 <= _iso(result["createdAt"]) <= time.time() + 1
    verdict = _classify(response)
    assert verdict.result is KeyResult.OK
    facts = verdict.facts
    assert facts is not None
    assert facts.permissions == {
        Permission.READ: True,
        Permission.TRADE: False,
        Permission.WITHDRAW: False,
        Permission.TRANSFER: False,
    }
    assert facts.ip_restricted is True and facts.ips == ("127.0.0.1",)
    assert facts.expires_at is None


def test_unbound_trading_withdraw_key(client: httpx.Client) -> None:
    _add_key(client, permissions=["read", "trade", "withdraw"])
    response = _send(client)
    result = _assert_code(response, 0)["result"]
    assert result["readOnly"] == 0
    assert result["ips"] == ["*"]
    assert result["permissions"]["Wallet"] == ["Withdraw"]
    assert result["permissions"]["Spot"] == ["SpotTrade"]
    created = _iso(result["createdAt"])
    assert _iso(result["expiredAt"]) == pytest.approx(created + 90 * 86400, abs=1)
    assert result["deadlineDay"] in (89, 90)
    facts = _classify(response).facts
    assert facts is not None
    assert facts.ip_restricted is False and facts.ips == ()
    assert facts.permissions[Permission.TRADE] and facts.permissions[Permission.WITHDRAW]
    assert facts.expiry_source == "exchange"
    assert facts.expires_at == pytest.approx(created + 90 * 86400, abs=1)


def test_expires_at_is_reported(client: httpx.Client) -> None:
    expires = time.time() + 3 * 86400 + 60
    _add_key(client, ips=["127.0.0.1"], expires_at=expires)
    result = _assert_code(_send(client), 0)["result"]
    assert result["deadlineDay"] == 3
    assert _iso(result["expiredAt"]) == pytest.approx(expires, abs=1)


def test_wrong_secret_is_10004_with_origin_string(client: httpx.Client) -> None:
    _add_key(client)
    now = time.time()
    response = _send(client, _creds(secret="not-the-secret"), now=now)
    body = _assert_code(response, 10004)
    assert body["retMsg"] == f"error sign! origin_string[{int(now * 1000)}{KEY}{WIDE}]"
    assert _classify(response).result is KeyResult.INVALID_SIGNATURE


def test_uppercase_signature_is_rejected(client: httpx.Client) -> None:
    _add_key(client)
    timestamp = int(time.time() * 1000)
    signature = bybit_signature(SECRET, timestamp, KEY, WIDE)
    headers = {
        "X-BAPI-API-KEY": KEY,
        "X-BAPI-TIMESTAMP": str(timestamp),
        "X-BAPI-RECV-WINDOW": str(WIDE),
    }
    _assert_code(client.get(PATH, headers={**headers, "X-BAPI-SIGN": signature.upper()}), 10004)
    _assert_code(client.get(PATH, headers={**headers, "X-BAPI-SIGN": signature}), 0)


def test_query_string_is_signed_as_received(client: httpx.Client) -> None:
    _add_key(client)
    timestamp = int(time.time() * 1000)
    query = "b=2&a=1"
    headers = {
        "X-BAPI-API-KEY": KEY,
        "X-BAPI-TIMESTAMP": str(timestamp),
        "X-BAPI-RECV-WINDOW": str(WIDE),
        "X-BAPI-SIGN": bybit_signature(SECRET, timestamp, KEY, WIDE, query),
    }
    _assert_code(client.get(f"{PATH}?{query}", headers=headers), 0)
    _assert_code(client.get(f"{PATH}?a=1&b=2", headers=headers), 10004)


def test_unknown_key_is_10003(client: httpx.Client) -> None:
    _add_key(client)
    response = _send(client, _creds(key="someOtherKey"))
    body = _assert_code(response, 10003)
    assert body["retMsg"] == "API key is invalid."
    assert _classify(response).result is KeyResult.INVALID_KEY
    missing = client.get(PATH)
    _assert_code(missing, 10003, status=401)
    assert _classify(missing).result is KeyResult.INVALID_KEY


@pytest.mark.parametrize("offset_s", [-120.0, 30.0], ids=["stale", "future"])
def test_timestamp_outside_window_is_10002(client: httpx.Client, offset_s: float) -> None:
    _add_key(client)
    now = time.time() + offset_s
    response = _send(client, now=now)
    body = _assert_code(response, 10002)
    message = body["retMsg"]
    assert message.startswith(
        "invalid request, please check your server timestamp or recv_window param. "
        f"req_timestamp[{int(now * 1000)}],server_timestamp["
    )
    assert message.endswith(f"],recv_window[{WIDE}]")
    assert _classify(response).result is KeyResult.TIMESTAMP


def test_stale_beyond_default_window(client: httpx.Client) -> None:
    _add_key(client)
    _assert_code(_send(client, now=time.time() - 20, recv_window_ms=None), 10002)


@pytest.mark.parametrize("skew_ms", [300_000, -300_000], ids=["server-ahead", "server-behind"])
def test_clock_skew_fault_gives_10002(client: httpx.Client, skew_ms: int) -> None:
    _add_key(client)
    _fault(client, fault="clock_skew", skew_ms=skew_ms)
    response = _send(client)
    body = _assert_code(response, 10002)
    server_ms = int(body["retMsg"].split("server_timestamp[")[1].split("]")[0])
    assert abs(server_ms - (time.time() * 1000 + skew_ms)) < 60_000
    assert _classify(response).result is KeyResult.TIMESTAMP


def test_revoked_key_is_10003(client: httpx.Client) -> None:
    _add_key(client, ips=["127.0.0.1"])
    previous = _classify(_send(client)).facts
    revoked = client.request("DELETE", "/_control/keys", json={"exchange": "bybit", "key": KEY})
    assert revoked.status_code == 200, revoked.text
    response = _send(client)
    _assert_code(response, 10003)
    assert _classify(response, previous).result is KeyResult.INVALID_KEY


def test_expired_key_is_33004(client: httpx.Client) -> None:
    _add_key(client, expires_at=time.time() - 1)
    response = _send(client)
    body = _assert_code(response, 33004)
    assert body["retMsg"] == "Your api key has expired"
    assert _classify(response).result is KeyResult.EXPIRED


def test_ip_binding_not_matching_is_10010(client: httpx.Client) -> None:
    _add_key(client, ips=["203.0.113.7"])
    response = _send(client)
    body = _assert_code(response, 10010)
    assert body["retMsg"] == "Unmatched IP, please check your API key's bound IP addresses."
    assert _classify(response).result is KeyResult.IP_NOT_ALLOWED


def test_key_without_permissions_is_10005(client: httpx.Client) -> None:
    _add_key(client, permissions=[])
    response = _send(client)
    _assert_code(response, 10005)
    assert _classify(response).result is KeyResult.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("fault", "code", "result"),
    [
        ("key_revoked", 10003, KeyResult.INVALID_KEY),
        ("key_expired", 33004, KeyResult.EXPIRED),
        ("ip_not_allowed", 10010, KeyResult.IP_NOT_ALLOWED),
    ],
)
def test_key_faults_round_trip(
    client: httpx.Client, fault: str, code: int, result: KeyResult
) -> None:
    _add_key(client, ips=["127.0.0.1"])
    ok = _classify(_send(client))
    assert ok.result is KeyResult.OK
    _fault(client, fault=fault)
    response = _send(client)
    _assert_code(response, code)
    assert _classify(response, ok.facts).result is result
    _fault(client, fault="none")
    _fault(client, fault=fault, key="someOtherKey")
    _assert_code(_send(client), 0)
    _fault(client, fault=fault, key=KEY)
    _assert_code(_send(client), code)


def test_key_fault_needs_a_correct_signature(client: httpx.Client) -> None:
    _add_key(client)
    _fault(client, fault="key_expired")
    _assert_code(_send(client, _creds(secret="wrong")), 10004)


def test_rest_faults_on_the_private_endpoint(client: httpx.Client) -> None:
    _add_key(client)
    _fault(client, endpoint="api_key", fault="rate_limited", retry_after=3)
    limited = _classify(_send(client))
    assert limited.result is KeyResult.RATE_LIMITED
    assert not limited.ip_wide
    assert limited.retry_after is not None and 0 <= limited.retry_after <= 3.5
    _fault(client, endpoint="api_key", fault="http_error", status=503)
    assert _classify(_send(client)).result is KeyResult.OTHER
    _fault(client, endpoint="api_key", fault="banned")
    banned = _classify(_send(client))
    assert banned.result is KeyResult.RATE_LIMITED and banned.ip_wide
