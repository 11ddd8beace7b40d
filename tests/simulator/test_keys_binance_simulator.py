"""The simulated Binance private endpoint against the exporter's signer and classifier: a
correctly signed request is accepted, each documented error comes from the matching mistake,
and each key fault classifies as the exporter module documents."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from exporter.keys.exchanges.binance import BinanceKeyApi, binance_signature
from exporter.keys.model import Credentials, KeyFacts, KeyResult, KeyVerdict, Permission

pytestmark = pytest.mark.e2e

KEY = "simBinanceMonitorKey0001"
SECRET = "simBinanceSecret-0123456789abcdef"
PATH = "/binance/sapi/v1/account/apiRestrictions"
WIDE = 60000  # receive window of most tests: robust on a slow machine
API = BinanceKeyApi()


def _add_key(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    spec = {"exchange": "binance", "key": KEY, "secret": SECRET, "permissions": ["read"]}
    spec.update(fields)
    response = client.post("/_control/keys", json=spec)
    assert response.status_code == 200, response.text
    return spec


def _creds(key: str = KEY, secret: str = SECRET) -> Credentials:
    return Credentials(key=SecretStr(key), secret=SecretStr(secret))


def _base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/") + "/binance"


def _send(
    client: httpx.Client,
    creds: Credentials | None = None,
    now: float | None = None,
    recv_window_ms: int | None = WIDE,
) -> httpx.Response:
    request = API.sign(
        creds or _creds(), _base(client), time.time() if now is None else now, recv_window_ms
    )
    return client.request(request.method, request.url, headers=dict(request.headers))


def _classify(response: httpx.Response, previous: KeyFacts | None = None) -> KeyVerdict:
    return API.classify(
        response.status_code, response.headers, response.content, previous, time.time()
    )


def _fault(client: httpx.Client, **spec: Any) -> None:
    response = client.post("/_control/faults", json={"exchange": "binance", **spec})
    assert response.status_code == 200, response.text


def _assert_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "msg"}
    assert body["code"] == code
    return body


def test_signed_request_accepted_with_read_only_facts(client: httpx.Client) -> None:
    before = time.time()
    _add_key(client)
    response = _send(client, recv_window_ms=None)  # the documented default 5000
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ipRestrict"] is False
    assert body["enableReading"] is True
    assert body["enableSpotAndMarginTrading"] is False
    assert body["enableWithdrawals"] is False
    assert "tradingAuthorityExpirationTime" not in body
    assert before * 1000 - 1000 <= body["createTime"] <= time.time() * 1000 + 1000
    verdict = _classify(response)
    assert verdict.result is KeyResult.OK
    assert verdict.facts is not None
    assert verdict.facts.permissions[Permission.READ] is True
    assert verdict.facts.permissions[Permission.TRADE] is False
    assert verdict.facts.permissions[Permission.WITHDRAW] is False
    assert verdict.facts.ip_restricted is False
    assert verdict.facts.expires_at is None


def test_ip_bound_trading_key_with_expiry(client: httpx.Client) -> None:
    expires = time.time() + 7 * 86400
    _add_key(
        client,
        permissions=["read", "trade", "withdraw"],
        ips=["127.0.0.1"],
        expires_at=expires,
    )
    response = _send(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ipRestrict"] is True
    assert body["enableSpotAndMarginTrading"] is True
    assert body["enableWithdrawals"] is True
    assert body["tradingAuthorityExpirationTime"] == int(expires * 1000)
    facts = _classify(response).facts
    assert facts is not None
    assert facts.ip_restricted is True
    assert facts.permissions[Permission.TRADE] and facts.permissions[Permission.WITHDRAW]
    assert facts.expires_at == pytest.approx(expires, abs=0.001)
    assert facts.expiry_source == "exchange"


def test_unbound_trading_key_gets_policy_expiry(client: httpx.Client) -> None:
    _add_key(client, permissions=["read", "trade"])
    facts = _classify(_send(client)).facts
    assert facts is not None and facts.created_at is not None
    assert facts.expiry_source == "policy"
    assert facts.expires_at == pytest.approx(facts.created_at + 30 * 86400)


def test_signature_is_case_insensitive_and_order_matters(client: httpx.Client) -> None:
    _add_key(client)
    request = API.sign(_creds(), _base(client), time.time(), WIDE)
    upper = request.url.rsplit("=", 1)[0] + "=" + request.url.rsplit("=", 1)[1].upper()
    response = client.get(upper, headers=dict(request.headers))
    assert response.status_code == 200, response.text
    # The same parameters re-ordered after signing: the received bytes no longer match.
    timestamp = int(time.time() * 1000)
    signature = binance_signature(SECRET, f"timestamp={timestamp}&recvWindow={WIDE}")
    swapped = f"{PATH}?recvWindow={WIDE}&timestamp={timestamp}&signature={signature}"
    response = client.get(swapped, headers={"X-MBX-APIKEY": KEY})
    _assert_error(response, 400, -1022)


def test_wrong_secret_is_1022(client: httpx.Client) -> None:
    _add_key(client)
    response = _send(client, _creds(secret="not-the-secret"))
    body = _assert_error(response, 400, -1022)
    assert body["msg"] == "Signature for this request is not valid."
    assert _classify(response).result is KeyResult.INVALID_SIGNATURE


def test_unknown_key_is_2015_and_malformed_is_2014(client: httpx.Client) -> None:
    _add_key(client)
    response = _send(client, _creds(key="someOtherKey"))
    body = _assert_error(response, 401, -2015)
    assert body["msg"] == "Invalid API-key, IP, or permissions for action."
    assert _classify(response).result is KeyResult.INVALID_KEY
    malformed = _send(client, _creds(key="not a key"))
    body = _assert_error(malformed, 401, -2014)
    assert body["msg"] == "API-key format invalid."
    assert _classify(malformed).result is KeyResult.INVALID_KEY
    request = API.sign(_creds(), _base(client), time.time(), WIDE)
    missing = client.get(request.url)
    _assert_error(missing, 401, -2015)


@pytest.mark.parametrize(
    ("offset_s", "message"),
    [
        (-120.0, "Timestamp for this request is outside of the recvWindow."),
        (30.0, "Timestamp for this request was 1000ms ahead of the server's time."),
    ],
    ids=["stale", "future"],
)
def test_timestamp_outside_window_is_1021(
    client: httpx.Client, offset_s: float, message: str
) -> None:
    _add_key(client)
    response = _send(client, now=time.time() + offset_s)
    body = _assert_error(response, 400, -1021)
    assert body["msg"] == message
    assert _classify(response).result is KeyResult.TIMESTAMP


def test_stale_beyond_default_window(client: httpx.Client) -> None:
    _add_key(client)
    response = _send(client, now=time.time() - 20, recv_window_ms=None)
    _assert_error(response, 400, -1021)


@pytest.mark.parametrize("skew_ms", [300_000, -300_000], ids=["server-ahead", "server-behind"])
def test_clock_skew_fault_gives_1021(client: httpx.Client, skew_ms: int) -> None:
    _add_key(client)
    _fault(client, fault="clock_skew", skew_ms=skew_ms)
    response = _send(client)
    _assert_error(response, 400, -1021)
    assert _classify(response).result is KeyResult.TIMESTAMP


def test_recv_window_too_large_is_1131(client: httpx.Client) -> None:
    _add_key(client)
    response = _send(client, recv_window_ms=60001)
    body = _assert_error(response, 400, -1131)
    assert body["msg"] == "recvWindow must be less than 60000."
    assert _classify(response).result is KeyResult.OTHER
    assert _send(client, recv_window_ms=60000).status_code == 200


def test_missing_timestamp_is_1102(client: httpx.Client) -> None:
    _add_key(client)
    response = client.get(f"{PATH}?recvWindow=5000&signature=00", headers={"X-MBX-APIKEY": KEY})
    body = _assert_error(response, 400, -1102)
    assert "'timestamp'" in body["msg"]


def test_revoked_key_is_2015(client: httpx.Client) -> None:
    _add_key(client)
    previous = _classify(_send(client)).facts
    revoked = client.request("DELETE", "/_control/keys", json={"exchange": "binance", "key": KEY})
    assert revoked.status_code == 200, revoked.text
    response = _send(client)
    _assert_error(response, 401, -2015)
    assert _classify(response, previous).result is KeyResult.INVALID_KEY


def test_expired_key_is_2015_classified_expired(client: httpx.Client) -> None:
    _add_key(client, expires_at=time.time() + 3600)
    previous = _classify(_send(client)).facts
    assert previous is not None and previous.expiry_source == "exchange"
    _add_key(client, expires_at=time.time() - 1)
    response = _send(client)
    _assert_error(response, 401, -2015)
    after_expiry = KeyFacts(
        ip_restricted=False, expires_at=time.time() - 1, expiry_source="exchange"
    )
    assert _classify(response, after_expiry).result is KeyResult.EXPIRED
    assert _classify(response).result is KeyResult.INVALID_KEY


def test_ip_binding_not_matching_is_2015(client: httpx.Client) -> None:
    _add_key(client, ips=["127.0.0.1"])
    previous = _classify(_send(client)).facts
    assert previous is not None and previous.ip_restricted is True
    _add_key(client, ips=["203.0.113.7"])
    response = _send(client)
    _assert_error(response, 401, -2015)
    assert _classify(response, previous).result is KeyResult.IP_NOT_ALLOWED
    _add_key(client, ips=["127.0.0.0/8"])
    assert _send(client).status_code == 200


def test_key_without_read_is_2015(client: httpx.Client) -> None:
    _add_key(client, permissions=[])
    _assert_error(_send(client), 401, -2015)


@pytest.mark.parametrize(
    ("fault", "ips", "result"),
    [
        ("key_revoked", [], KeyResult.INVALID_KEY),
        ("key_expired", [], KeyResult.INVALID_KEY),
        ("ip_not_allowed", ["127.0.0.1"], KeyResult.IP_NOT_ALLOWED),
        ("ip_not_allowed", [], KeyResult.INVALID_KEY),
    ],
    ids=["revoked", "expired", "ip-bound", "ip-unbound"],
)
def test_key_faults_round_trip(
    client: httpx.Client, fault: str, ips: list[str], result: KeyResult
) -> None:
    _add_key(client, ips=ips)
    ok = _classify(_send(client))
    assert ok.result is KeyResult.OK
    _fault(client, fault=fault)
    response = _send(client)
    _assert_error(response, 401, -2015)
    assert _classify(response, ok.facts).result is result
    # The fault narrowed to another key leaves this one alone.
    _fault(client, fault="none")
    _fault(client, fault=fault, key="someOtherKey")
    assert _send(client).status_code == 200
    _fault(client, fault=fault, key=KEY)
    _assert_error(_send(client), 401, -2015)


def test_key_fault_needs_a_correct_signature(client: httpx.Client) -> None:
    _add_key(client)
    _fault(client, fault="key_revoked")
    _assert_error(_send(client, _creds(secret="wrong")), 400, -1022)


def test_rest_faults_on_the_private_endpoint(client: httpx.Client) -> None:
    _add_key(client)
    _fault(client, endpoint="api_key", fault="http_error", status=502)
    response = _send(client)
    assert response.status_code == 502
    assert _classify(response).result is KeyResult.OTHER
    _fault(client, endpoint="api_key", fault="rate_limited", retry_after=7)
    limited = _classify(_send(client))
    assert limited.result is KeyResult.RATE_LIMITED
    assert limited.ip_wide and limited.retry_after == 7
