"""Coinbase private endpoints of the simulator, both APIs: requests signed by the exporter's
key APIs are accepted, each documented error comes from the matching mistake, and every answer
round-trips through the exporter's classification (the fault → result tables of
:mod:`exporter.keys.exchanges.coinbase_exchange` and ``coinbase_advanced``)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from exporter.keys.exchanges.coinbase_advanced import (
    CoinbaseAdvancedKeyApi,
    build_jwt,
    jwt_uri,
)
from exporter.keys.exchanges.coinbase_exchange import (
    CoinbaseExchangeKeyApi,
    coinbase_exchange_signature,
)
from exporter.keys.model import Credentials, KeyResult, KeyVerdict, Permission, SignedRequest

pytestmark = pytest.mark.e2e

EX_KEY = "cbx-monitor-key-0001"
EX_SECRET = (
    "rghl+lB/RFs6R3zvJuEDhpzgKKCat4pNyLiU6KXyDAZ0P8TOFRV6bHMfmtWKf5Um7h2KlBZz/R33sOdbYFryhg=="
)
OTHER_SECRET = "c2VjcmV0LW51bWJlci10d28tZm9yLXRoZS13cm9uZy1zaWduYXR1cmUtdGVzdHMhIQ=="
EX_PASSPHRASE = "monitor-passphrase"
CDP_NAME = "organizations/11111111-org/apiKeys/22222222-key"
PERMISSIONS_PATH = "/api/v3/brokerage/key_permissions"
FAULTS = ("key_revoked", "key_expired", "ip_not_allowed")


def _pem(private: ec.EllipticCurvePrivateKey) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def cdp_private() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/") + "/coinbase"


def _add_key(client: httpx.Client, **spec: Any) -> None:
    reply = client.post("/_control/keys", json={"exchange": "coinbase", **spec})
    assert reply.status_code == 200, reply.text


def _add_exchange_key(client: httpx.Client, **extra: Any) -> None:
    spec: dict[str, Any] = {
        "key": EX_KEY,
        "secret": EX_SECRET,
        "passphrase": EX_PASSPHRASE,
        "permissions": ["read"],
    }
    spec.update(extra)
    _add_key(client, **spec)


def _add_cdp_key(client: httpx.Client, private: ec.EllipticCurvePrivateKey, **extra: Any) -> None:
    spec: dict[str, Any] = {"key": CDP_NAME, "secret": _pem(private), "permissions": ["read"]}
    spec.update(extra)
    _add_key(client, **spec)


def _fault(client: httpx.Client, **spec: Any) -> None:
    reply = client.post("/_control/faults", json={"exchange": "coinbase", **spec})
    assert reply.status_code == 200, reply.text


def _send(client: httpx.Client, signed: SignedRequest) -> httpx.Response:
    return client.request(
        signed.method, signed.url, headers=dict(signed.headers), content=signed.body
    )


# -- Coinbase Exchange (HMAC) ------------------------------------------------------------------


def _ex_credentials(
    key: str = EX_KEY, secret: str = EX_SECRET, passphrase: str = EX_PASSPHRASE
) -> Credentials:
    return Credentials(
        key=SecretStr(key), secret=SecretStr(secret), passphrase=SecretStr(passphrase)
    )


def _ex_call(
    client: httpx.Client, credentials: Credentials | None = None, now: float | None = None
) -> tuple[httpx.Response, KeyVerdict]:
    api = CoinbaseExchangeKeyApi()
    signed = api.sign(
        credentials or _ex_credentials(), _base(client), time.time() if now is None else now
    )
    reply = _send(client, signed)
    verdict = api.classify(reply.status_code, reply.headers, reply.content, None, time.time())
    return reply, verdict


def test_exchange_signed_request_is_accepted(client: httpx.Client) -> None:
    _add_exchange_key(client, permissions=["read", "trade"])
    reply, verdict = _ex_call(client)
    assert reply.status_code == 200, reply.text
    accounts = reply.json()
    assert isinstance(accounts, list) and len(accounts) >= 2
    for account in accounts:
        assert set(account) == {
            "id",
            "currency",
            "balance",
            "hold",
            "available",
            "profile_id",
            "trading_enabled",
        }
    assert len({a["profile_id"] for a in accounts}) == 1
    assert verdict.result is KeyResult.OK
    assert verdict.facts is not None
    assert dict(verdict.facts.permissions) == {Permission.READ: True}
    assert verdict.facts.ip_restricted is None


def test_exchange_accepts_a_signature_over_path_and_query(client: httpx.Client) -> None:
    _add_exchange_key(client)
    ts = str(int(time.time()))
    for signed_path in ("/accounts?limit=5", "/accounts"):
        sign = coinbase_exchange_signature(EX_SECRET, f"{ts}GET{signed_path}")
        reply = client.get(
            "/coinbase/accounts?limit=5",
            headers={
                "CB-ACCESS-KEY": EX_KEY,
                "CB-ACCESS-SIGN": sign,
                "CB-ACCESS-TIMESTAMP": ts,
                "CB-ACCESS-PASSPHRASE": EX_PASSPHRASE,
            },
        )
        assert reply.status_code == 200, (signed_path, reply.text)
    sign = coinbase_exchange_signature(EX_SECRET, f"{ts}GET/accounts?limit=6")
    reply = client.get(
        "/coinbase/accounts?limit=5",
        headers={
            "CB-ACCESS-KEY": EX_KEY,
            "CB-ACCESS-SIGN": sign,
            "CB-ACCESS-TIMESTAMP": ts,
            "CB-ACCESS-PASSPHRASE": EX_PASSPHRASE,
        },
    )
    assert (reply.status_code, reply.json()) == (400, {"message": "invalid signature"})


@pytest.mark.parametrize(
    ("credentials", "status", "message", "result"),
    [
        (
            _ex_credentials(secret=OTHER_SECRET),
            400,
            "invalid signature",
            KeyResult.INVALID_SIGNATURE,
        ),
        (
            _ex_credentials(passphrase="wrong-passphrase"),
            401,
            "Invalid Passphrase",
            KeyResult.INVALID_SIGNATURE,
        ),
        (_ex_credentials(key="cbx-unknown-key"), 401, "Invalid API Key", KeyResult.INVALID_KEY),
        (_ex_credentials(key=CDP_NAME), 401, "Invalid API Key", KeyResult.INVALID_KEY),
    ],
)
def test_exchange_credential_mistakes(
    client: httpx.Client,
    cdp_private: ec.EllipticCurvePrivateKey,
    credentials: Credentials,
    status: int,
    message: str,
    result: KeyResult,
) -> None:
    _add_exchange_key(client)
    _add_cdp_key(client, cdp_private)  # a CDP key is unknown to the Exchange API
    reply, verdict = _ex_call(client, credentials)
    assert (reply.status_code, reply.json()) == (status, {"message": message})
    assert verdict.result is result


@pytest.mark.parametrize("offset", [-60.0, 45.0])
def test_exchange_stale_timestamp(client: httpx.Client, offset: float) -> None:
    _add_exchange_key(client)
    reply, verdict = _ex_call(client, now=time.time() + offset)
    assert (reply.status_code, reply.json()) == (401, {"message": "request timestamp expired"})
    assert verdict.result is KeyResult.TIMESTAMP


def test_exchange_clock_skew_fault_gives_timestamp(client: httpx.Client) -> None:
    _add_exchange_key(client)
    _fault(client, fault="clock_skew", skew_ms=90_000)
    assert _ex_call(client)[1].result is KeyResult.TIMESTAMP
    _fault(client, fault="clock_skew", skew_ms=-90_000)
    assert _ex_call(client)[1].result is KeyResult.TIMESTAMP
    _fault(client, fault="clock_skew", skew_ms=5_000)  # inside the 30 s window
    assert _ex_call(client)[1].result is KeyResult.OK


def test_exchange_missing_headers(client: httpx.Client) -> None:
    _add_exchange_key(client)
    assert client.get("/coinbase/accounts").json() == {"message": "Invalid API Key"}
    reply = client.get("/coinbase/accounts", headers={"CB-ACCESS-KEY": EX_KEY})
    assert reply.json() == {"message": "request timestamp expired"}


def test_exchange_revoked_key(client: httpx.Client) -> None:
    _add_exchange_key(client)
    assert _ex_call(client)[1].result is KeyResult.OK
    revoked = client.request(
        "DELETE", "/_control/keys", json={"exchange": "coinbase", "key": EX_KEY}
    )
    assert revoked.status_code == 200, revoked.text
    reply, verdict = _ex_call(client)
    assert (reply.status_code, reply.json()) == (401, {"message": "Invalid API Key"})
    assert verdict.result is KeyResult.INVALID_KEY


def test_exchange_expired_key(client: httpx.Client) -> None:
    _add_exchange_key(client, expires_at=time.time() - 5)
    reply, verdict = _ex_call(client)
    assert (reply.status_code, reply.json()) == (401, {"message": "Invalid API Key"})
    assert verdict.result is KeyResult.INVALID_KEY


def test_exchange_ip_binding(client: httpx.Client) -> None:
    _add_exchange_key(client, ips=["203.0.113.7"])
    reply, verdict = _ex_call(client)
    assert (reply.status_code, reply.json()) == (401, {"message": "Invalid API Key"})
    assert verdict.result is KeyResult.INVALID_KEY
    _add_exchange_key(client, ips=["127.0.0.1"])
    assert _ex_call(client)[1].result is KeyResult.OK


def test_exchange_key_without_view_or_trade_is_forbidden(client: httpx.Client) -> None:
    _add_exchange_key(client, permissions=["withdraw"])
    reply, verdict = _ex_call(client)
    assert reply.status_code == 403
    assert verdict.result is KeyResult.PERMISSION_DENIED


@pytest.mark.parametrize("fault", FAULTS)
def test_exchange_key_faults(client: httpx.Client, fault: str) -> None:
    _add_exchange_key(client)
    _fault(client, fault=fault)
    reply, verdict = _ex_call(client)
    assert (reply.status_code, reply.json()) == (401, {"message": "Invalid API Key"})
    assert verdict.result is KeyResult.INVALID_KEY  # the module docstring's table
    _fault(client, fault=fault, key="some-other-key")
    assert _ex_call(client)[1].result is KeyResult.OK
    _fault(client, fault=fault, key=EX_KEY)
    assert _ex_call(client)[1].result is KeyResult.INVALID_KEY


def test_exchange_rest_faults_on_the_key_endpoint(client: httpx.Client) -> None:
    _add_exchange_key(client)
    _fault(client, endpoint="api_key", fault="rate_limited", retry_after=2)
    verdict = _ex_call(client)[1]
    assert verdict.result is KeyResult.RATE_LIMITED and verdict.ip_wide is False
    _fault(client, endpoint="api_key", fault="http_error", status=502)
    assert _ex_call(client)[1].result is KeyResult.OTHER


# -- Advanced Trade (CDP JWT) ------------------------------------------------------------------


def _cdp_credentials(private: ec.EllipticCurvePrivateKey, name: str = CDP_NAME) -> Credentials:
    return Credentials(key=SecretStr(name), private_key=SecretStr(_pem(private)))


def _classify_at(reply: httpx.Response) -> KeyVerdict:
    return CoinbaseAdvancedKeyApi().classify(
        reply.status_code, reply.headers, reply.content, None, time.time()
    )


def _at_call(
    client: httpx.Client, credentials: Credentials, now: float | None = None
) -> tuple[httpx.Response, KeyVerdict]:
    signed = CoinbaseAdvancedKeyApi().sign(
        credentials, _base(client), time.time() if now is None else now
    )
    reply = _send(client, signed)
    return reply, _classify_at(reply)


def _bearer(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/coinbase" + PERMISSIONS_PATH, headers={"Authorization": f"Bearer {token}"})


def _assert_unauthorized(reply: httpx.Response) -> None:
    assert reply.status_code == 401
    assert reply.text == "Unauthorized"
    assert reply.headers["content-type"].startswith("text/plain")
    assert _classify_at(reply).result is KeyResult.INVALID_KEY


def test_advanced_signed_request_is_accepted(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey
) -> None:
    _add_cdp_key(client, cdp_private, permissions=["read", "withdraw"])
    reply, verdict = _at_call(client, _cdp_credentials(cdp_private))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert {k: body[k] for k in ("can_view", "can_trade", "can_transfer", "portfolio_type")} == {
        "can_view": True,
        "can_trade": False,
        "can_transfer": True,
        "portfolio_type": "DEFAULT",
    }
    assert isinstance(body["portfolio_uuid"], str) and body["portfolio_uuid"]
    assert verdict.result is KeyResult.OK
    assert verdict.facts is not None
    assert dict(verdict.facts.permissions) == {
        Permission.READ: True,
        Permission.TRADE: False,
        Permission.WITHDRAW: True,
    }
    assert verdict.facts.ip_restricted is None


@pytest.mark.parametrize("offset", [-300.0, 60.0])
def test_advanced_jwt_outside_its_validity(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey, offset: float
) -> None:
    """Expired (exp passed) and not yet valid (nbf in the future) JWTs."""
    _add_cdp_key(client, cdp_private)
    reply, _ = _at_call(client, _cdp_credentials(cdp_private), now=time.time() + offset)
    _assert_unauthorized(reply)


def test_advanced_clock_skew_fault_rejects_the_jwt(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey
) -> None:
    _add_cdp_key(client, cdp_private)
    credentials = _cdp_credentials(cdp_private)
    for skew_ms in (300_000, -60_000):
        _fault(client, fault="clock_skew", skew_ms=skew_ms)
        _assert_unauthorized(_at_call(client, credentials)[0])
    _fault(client, fault="none")
    assert _at_call(client, credentials)[1].result is KeyResult.OK


def test_advanced_wrong_uri(client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey) -> None:
    _add_cdp_key(client, cdp_private)
    now = time.time()
    host = httpx.URL(_base(client)).netloc.decode()
    for uri in (
        f"GET {host}{PERMISSIONS_PATH}",  # the prefix left out
        f"POST {host}/coinbase{PERMISSIONS_PATH}",
        f"GET api.coinbase.com/coinbase{PERMISSIONS_PATH}",
        f"GET {host}/coinbase{PERMISSIONS_PATH}?x=1",
    ):
        _assert_unauthorized(_bearer(client, build_jwt(CDP_NAME, cdp_private, uri, now)))
    good = jwt_uri("GET", _base(client), PERMISSIONS_PATH)
    assert _bearer(client, build_jwt(CDP_NAME, cdp_private, good, now)).status_code == 200


def test_advanced_wrong_signing_key(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey
) -> None:
    _add_cdp_key(client, cdp_private)
    other = ec.generate_private_key(ec.SECP256R1())
    reply, _ = _at_call(client, _cdp_credentials(other))
    _assert_unauthorized(reply)


def test_advanced_unknown_key_and_hmac_key(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey
) -> None:
    _add_cdp_key(client, cdp_private)
    _add_exchange_key(client)
    _assert_unauthorized(
        _at_call(client, _cdp_credentials(cdp_private, "organizations/x/apiKeys/y"))[0]
    )
    # An Exchange (HMAC) key's name on Advanced Trade is as unknown as any other.
    _assert_unauthorized(_at_call(client, _cdp_credentials(cdp_private, EX_KEY))[0])


def test_advanced_malformed_tokens(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey
) -> None:
    _add_cdp_key(client, cdp_private)
    now = int(time.time())
    uri = jwt_uri("GET", _base(client), PERMISSIONS_PATH)
    claims = {"sub": CDP_NAME, "iss": "cdp", "nbf": now, "exp": now + 120, "uri": uri}
    _assert_unauthorized(client.get("/coinbase" + PERMISSIONS_PATH))
    _assert_unauthorized(_bearer(client, "not-a-jwt"))
    wrong_sub = jwt.encode(
        {**claims, "sub": "organizations/x/apiKeys/other"},
        cdp_private,
        algorithm="ES256",
        headers={"kid": CDP_NAME, "nonce": "00"},
    )
    _assert_unauthorized(_bearer(client, wrong_sub))
    hs256 = jwt.encode(
        claims, "a-shared-secret-of-enough-length-32b", algorithm="HS256", headers={"kid": CDP_NAME}
    )
    _assert_unauthorized(_bearer(client, hs256))
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": CDP_NAME})
    _assert_unauthorized(_bearer(client, unsigned))
    no_exp = jwt.encode(
        {k: v for k, v in claims.items() if k != "exp"},
        cdp_private,
        algorithm="ES256",
        headers={"kid": CDP_NAME},
    )
    _assert_unauthorized(_bearer(client, no_exp))
    good = jwt.encode(claims, cdp_private, algorithm="ES256", headers={"kid": CDP_NAME})
    assert _bearer(client, good).status_code == 200


def test_advanced_revoked_key(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey
) -> None:
    _add_cdp_key(client, cdp_private)
    credentials = _cdp_credentials(cdp_private)
    assert _at_call(client, credentials)[1].result is KeyResult.OK
    revoked = client.request(
        "DELETE", "/_control/keys", json={"exchange": "coinbase", "key": CDP_NAME}
    )
    assert revoked.status_code == 200, revoked.text
    _assert_unauthorized(_at_call(client, credentials)[0])


def test_advanced_expired_key(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey
) -> None:
    _add_cdp_key(client, cdp_private, expires_at=time.time() - 5)
    _assert_unauthorized(_at_call(client, _cdp_credentials(cdp_private))[0])


def test_advanced_ip_binding(client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey) -> None:
    credentials = _cdp_credentials(cdp_private)
    _add_cdp_key(client, cdp_private, ips=["203.0.113.7"])
    _assert_unauthorized(_at_call(client, credentials)[0])
    _add_cdp_key(client, cdp_private, ips=["127.0.0.1"])
    assert _at_call(client, credentials)[1].result is KeyResult.OK


@pytest.mark.parametrize("fault", FAULTS)
def test_advanced_key_faults(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey, fault: str
) -> None:
    _add_cdp_key(client, cdp_private)
    credentials = _cdp_credentials(cdp_private)
    _fault(client, fault=fault)
    reply, verdict = _at_call(client, credentials)
    _assert_unauthorized(reply)
    assert verdict.result is KeyResult.INVALID_KEY  # the module docstring's table
    _fault(client, fault=fault, key="organizations/x/apiKeys/other")
    assert _at_call(client, credentials)[1].result is KeyResult.OK
    _fault(client, fault=fault, key=CDP_NAME)
    assert _at_call(client, credentials)[1].result is KeyResult.INVALID_KEY


def test_advanced_rest_faults_on_the_key_endpoint(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey
) -> None:
    _add_cdp_key(client, cdp_private)
    credentials = _cdp_credentials(cdp_private)
    _fault(client, endpoint="api_key", fault="rate_limited", retry_after=2)
    verdict = _at_call(client, credentials)[1]
    assert verdict.result is KeyResult.RATE_LIMITED and verdict.ip_wide is False
    _fault(client, endpoint="api_key", fault="http_error", status=503)
    assert _at_call(client, credentials)[1].result is KeyResult.OTHER


def test_both_apis_share_the_coinbase_prefix(
    client: httpx.Client, cdp_private: ec.EllipticCurvePrivateKey
) -> None:
    _add_exchange_key(client)
    _add_cdp_key(client, cdp_private)
    assert _ex_call(client)[1].result is KeyResult.OK
    assert _at_call(client, _cdp_credentials(cdp_private))[1].result is KeyResult.OK
    listed = client.get("/_control/keys").json()["keys"]
    kinds = {k["key"]: k["kind"] for k in listed if k["exchange"] == "coinbase"}
    assert kinds == {EX_KEY: "hmac", CDP_NAME: "cdp"}
    assert EX_SECRET not in str(listed) and EX_PASSPHRASE not in str(listed)
