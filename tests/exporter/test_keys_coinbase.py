"""Coinbase key checks (exporter side): the Exchange API's HMAC signer against the computed
examples, the Advanced Trade JWT (header, claims, signature), request shapes, classification of
every documented answer, the facts mapping and credential errors."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import SecretStr

from exporter.keys.exchanges import key_api_class
from exporter.keys.exchanges.base import KEY_ENDPOINT
from exporter.keys.exchanges.coinbase_advanced import (
    JWT_LIFETIME_SECONDS,
    CoinbaseAdvancedKeyApi,
    build_jwt,
    jwt_uri,
    load_cdp_private_key,
)
from exporter.keys.exchanges.coinbase_exchange import (
    CoinbaseExchangeKeyApi,
    coinbase_exchange_message,
    coinbase_exchange_signature,
)
from exporter.keys.model import Credentials, KeyFacts, KeyResult, KeyVerdict, Permission

# COMPUTED example of the facts (Coinbase Exchange, no documented vector) [CB-EX-AUTH].
EX_SECRET = (
    "rghl+lB/RFs6R3zvJuEDhpzgKKCat4pNyLiU6KXyDAZ0P8TOFRV6bHMfmtWKf5Um7h2KlBZz/R33sOdbYFryhg=="
)
EX_SIG = "pxHPwggL4YwLm0R9NQKn0g6oCmtVb81Ca25HQV867eo="
EX_SIG_DECIMAL = "g9EqCaQzWtAwUO0fM7djl7xvMMYzpDB+Ch+tDoIETPg="
EX_KEY = "f1d7c2a0b4e9c3d5a6b7c8d9e0f1a2b3"
EX_PASSPHRASE = "pass-phrase-7q"
KEY_NAME = "organizations/0f4e-org/apiKeys/9a1c-key"
PERMISSIONS_PATH = "/api/v3/brokerage/key_permissions"


def _pem(
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
) -> str:
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if isinstance(private, ec.EllipticCurvePrivateKey)
        else serialization.PrivateFormat.PKCS8
    )
    return private.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def cdp_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def cdp_credentials(cdp_key: ec.EllipticCurvePrivateKey) -> Credentials:
    return Credentials(key=SecretStr(KEY_NAME), private_key=SecretStr(_pem(cdp_key)))


def _ex_credentials(
    secret: str | None = EX_SECRET, passphrase: str | None = EX_PASSPHRASE
) -> Credentials:
    return Credentials(
        key=SecretStr(EX_KEY),
        secret=None if secret is None else SecretStr(secret),
        passphrase=None if passphrase is None else SecretStr(passphrase),
    )


# -- Coinbase Exchange signer ----------------------------------------------------------------


def test_exchange_signature_matches_the_computed_examples() -> None:
    assert coinbase_exchange_message("1700000000", "GET", "/accounts", "") == (
        "1700000000GET/accounts"
    )
    assert coinbase_exchange_signature(EX_SECRET, "1700000000GET/accounts") == EX_SIG
    assert coinbase_exchange_signature(EX_SECRET, "1700000000.123GET/accounts") == EX_SIG_DECIMAL


def test_exchange_signature_refuses_a_non_base64_secret_without_echoing_it() -> None:
    with pytest.raises(ValueError) as info:
        coinbase_exchange_signature("not base64 !!secretvalue", "x")
    assert "secretvalue" not in str(info.value)


def test_exchange_sign_builds_the_documented_request() -> None:
    api = CoinbaseExchangeKeyApi()
    signed = api.sign(_ex_credentials(), "http://127.0.0.1:8080/coinbase/", 1700000000.75)
    assert signed.method == "GET"
    assert signed.url == "http://127.0.0.1:8080/coinbase/accounts"
    assert signed.body == b""
    assert signed.headers["CB-ACCESS-KEY"] == EX_KEY
    assert signed.headers["CB-ACCESS-TIMESTAMP"] == "1700000000"
    # The signed path is the API path without the simulator's prefix.
    assert signed.headers["CB-ACCESS-SIGN"] == EX_SIG
    assert signed.headers["CB-ACCESS-PASSPHRASE"] == EX_PASSPHRASE


def test_exchange_api_class_attributes() -> None:
    assert CoinbaseExchangeKeyApi.path == "/accounts"
    assert CoinbaseExchangeKeyApi.max_recv_window_ms is None
    (rule,) = CoinbaseExchangeKeyApi.limits
    assert rule.limit == 15 and rule.window_seconds == 1.0
    assert rule.endpoints == frozenset({KEY_ENDPOINT})


@pytest.mark.parametrize(
    ("credentials", "field"),
    [
        (_ex_credentials(secret=None), "secret_env"),
        (_ex_credentials(secret="not-base64-secretvalue!"), "secret_env/secret_file"),
        (_ex_credentials(passphrase=None), "passphrase_env"),
    ],
)
def test_exchange_check_credentials_names_the_field_never_the_value(
    credentials: Credentials, field: str
) -> None:
    with pytest.raises(ValueError) as info:
        CoinbaseExchangeKeyApi.check_credentials(credentials)
    message = str(info.value)
    assert field in message
    for value in (*credentials.values(), "secretvalue"):
        assert value not in message


def test_exchange_check_credentials_accepts_a_complete_key() -> None:
    CoinbaseExchangeKeyApi.check_credentials(_ex_credentials())


# -- Advanced Trade JWT ------------------------------------------------------------------------


def test_build_jwt_header_and_claims_exactly(cdp_key: ec.EllipticCurvePrivateKey) -> None:
    uri = "GET api.coinbase.com/api/v3/brokerage/key_permissions"
    token = build_jwt(KEY_NAME, _pem(cdp_key), uri, 1700000000.9, nonce="ab12cd34")
    assert jwt.get_unverified_header(token) == {
        "alg": "ES256",
        "typ": "JWT",
        "kid": KEY_NAME,
        "nonce": "ab12cd34",
    }
    claims = jwt.decode(
        token,
        cdp_key.public_key(),
        algorithms=["ES256"],
        options={"verify_exp": False, "verify_nbf": False},
    )
    assert claims == {
        "sub": KEY_NAME,
        "iss": "cdp",
        "nbf": 1700000000,
        "exp": 1700000000 + JWT_LIFETIME_SECONDS,
        "uri": uri,
    }
    assert JWT_LIFETIME_SECONDS == 120


def test_build_jwt_verifies_only_with_the_right_public_key(
    cdp_key: ec.EllipticCurvePrivateKey,
) -> None:
    now = time.time()
    token = build_jwt(KEY_NAME, cdp_key, "GET h/p", now)
    assert jwt.decode(token, cdp_key.public_key(), algorithms=["ES256"])["sub"] == KEY_NAME
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["ES256"])


def test_build_jwt_nonce_is_fresh_random_hex(cdp_key: ec.EllipticCurvePrivateKey) -> None:
    nonces = {
        jwt.get_unverified_header(build_jwt(KEY_NAME, cdp_key, "GET h/p", 1.0))["nonce"]
        for _ in range(3)
    }
    assert len(nonces) == 3
    for nonce in nonces:
        assert len(nonce) == 64
        int(nonce, 16)


@pytest.mark.parametrize(
    ("base_url", "uri"),
    [
        ("https://api.coinbase.com", "GET api.coinbase.com" + PERMISSIONS_PATH),
        ("https://api.coinbase.com/", "GET api.coinbase.com" + PERMISSIONS_PATH),
        ("https://API.Coinbase.com:443", "GET api.coinbase.com" + PERMISSIONS_PATH),
        ("https://api.coinbase.com:8443", "GET api.coinbase.com:8443" + PERMISSIONS_PATH),
        ("http://127.0.0.1:8080/coinbase", "GET 127.0.0.1:8080/coinbase" + PERMISSIONS_PATH),
        ("http://[::1]:9000/coinbase/", "GET [::1]:9000/coinbase" + PERMISSIONS_PATH),
        ("http://127.0.0.1:80/coinbase", "GET 127.0.0.1/coinbase" + PERMISSIONS_PATH),
    ],
)
def test_jwt_uri_is_method_host_and_full_path(base_url: str, uri: str) -> None:
    assert jwt_uri("GET", base_url, PERMISSIONS_PATH) == uri


def test_jwt_uri_host_matches_what_httpx_sends() -> None:
    for base in ("http://127.0.0.1:8080/coinbase", "https://api.coinbase.com:443"):
        request = httpx.Request("GET", base + PERMISSIONS_PATH)
        expected = f"GET {request.headers['host']}{request.url.path}"
        assert jwt_uri("GET", base, PERMISSIONS_PATH) == expected


def test_advanced_sign_builds_the_documented_request(
    cdp_key: ec.EllipticCurvePrivateKey, cdp_credentials: Credentials
) -> None:
    now = time.time()
    signed = CoinbaseAdvancedKeyApi().sign(cdp_credentials, "http://127.0.0.1:8080/coinbase", now)
    assert signed.method == "GET"
    assert signed.url == "http://127.0.0.1:8080/coinbase" + PERMISSIONS_PATH
    assert signed.body == b""
    scheme, _, token = signed.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(token, cdp_key.public_key(), algorithms=["ES256"])
    assert claims["uri"] == "GET 127.0.0.1:8080/coinbase" + PERMISSIONS_PATH
    assert claims["nbf"] == int(now)
    assert jwt.get_unverified_header(token)["kid"] == KEY_NAME


def test_key_api_class_picks_the_api_by_credentials(cdp_credentials: Credentials) -> None:
    assert key_api_class("coinbase", cdp_credentials) is CoinbaseAdvancedKeyApi
    assert key_api_class("coinbase", _ex_credentials()) is CoinbaseExchangeKeyApi


def test_load_cdp_private_key_accepts_p256(cdp_key: ec.EllipticCurvePrivateKey) -> None:
    loaded = load_cdp_private_key(_pem(cdp_key))
    assert isinstance(loaded.curve, ec.SECP256R1)


def _bad_private_keys() -> list[tuple[str, str]]:
    return [
        ("garbage-secretvalue", "PEM"),
        (_pem(ec.generate_private_key(ec.SECP384R1())), "P-256"),
        (_pem(ed25519.Ed25519PrivateKey.generate()), "P-256"),
        (_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "P-256"),
    ]


@pytest.mark.parametrize(("pem", "word"), _bad_private_keys())
def test_advanced_check_credentials_refuses_other_keys(pem: str, word: str) -> None:
    credentials = Credentials(key=SecretStr(KEY_NAME), private_key=SecretStr(pem))
    with pytest.raises(ValueError) as info:
        CoinbaseAdvancedKeyApi.check_credentials(credentials)
    message = str(info.value)
    assert message.startswith("private_key_file:")
    assert word in message
    assert pem not in message and "secretvalue" not in message
    for line in pem.splitlines():
        if len(line) > 8 and "-----" not in line:
            assert line not in message
    assert KEY_NAME not in message


def test_advanced_check_credentials_needs_a_private_key() -> None:
    with pytest.raises(ValueError, match="private_key_file"):
        CoinbaseAdvancedKeyApi.check_credentials(Credentials(key=SecretStr(KEY_NAME)))


def test_advanced_check_credentials_accepts_a_cdp_key(cdp_credentials: Credentials) -> None:
    CoinbaseAdvancedKeyApi.check_credentials(cdp_credentials)


# -- classification: Advanced Trade ------------------------------------------------------------


def _advanced(
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    previous: KeyFacts | None = None,
) -> KeyVerdict:
    return CoinbaseAdvancedKeyApi().classify(
        status, httpx.Headers(headers or {}), body, previous, 1_700_000_000.0
    )


def _j(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_advanced_ok_maps_permissions() -> None:
    body = _j(
        {
            "can_view": True,
            "can_trade": False,
            "can_transfer": True,
            "portfolio_uuid": "0b7c-uuid",
            "portfolio_type": "DEFAULT",
        }
    )
    verdict = CoinbaseAdvancedKeyApi().classify(200, httpx.Headers(), body, None, 0.0)
    assert verdict.result is KeyResult.OK
    assert verdict.facts is not None
    assert dict(verdict.facts.permissions) == {
        Permission.READ: True,
        Permission.TRADE: False,
        Permission.WITHDRAW: True,
    }
    assert verdict.facts.ip_restricted is None
    assert verdict.facts.ips == ()
    assert verdict.facts.expires_at is None and verdict.facts.expiry_source is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, b"Unauthorized", "invalid_key"),
        (401, b"Unauthorized\n", "invalid_key"),
        (401, _j({"errors": [{"id": "authentication_error", "message": "x"}]}), "invalid_key"),
        (401, _j({"errors": [{"id": "unauthorized", "message": "x"}]}), "invalid_key"),
        (401, _j({"errors": [{"id": "invalid_token", "message": "x"}]}), "invalid_key"),
        (401, _j({"errors": [{"id": "expired_token", "message": "x"}]}), "invalid_key"),
        (400, _j({"errors": [{"id": "authentication_error", "message": "x"}]}), "invalid_key"),
        (
            403,
            _j({"error": "PERMISSION_DENIED", "message": "Missing required scopes"}),
            "permission_denied",
        ),
        (
            400,
            _j({"error": "PERMISSION_DENIED", "message": "Missing required scopes"}),
            "permission_denied",
        ),
        (403, _j({"errors": [{"id": "invalid_scope", "message": "x"}]}), "permission_denied"),
        (
            429,
            _j({"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}),
            "rate_limited",
        ),
        (429, _j({"message": "Too Many Requests"}), "rate_limited"),
        (429, b"", "rate_limited"),
        (400, _j({"error": "resource_exhausted"}), "rate_limited"),
        (500, _j({"errors": [{"id": "internal_server_error", "message": "x"}]}), "other"),
        (502, b"<html>bad gateway</html>", "other"),
        (403, b"<html>Cloudflare</html>", "other"),
        (404, _j({"error": "NOT_FOUND", "message": "x"}), "other"),
        (200, _j({"unexpected": 1}), "other"),
        (200, b"not json", "other"),
        (200, _j([1, 2]), "other"),
        (418, b"\xff\xfe\x00", "other"),
    ],
)
def test_advanced_classifies_every_answer(status: int, body: bytes, expected: str) -> None:
    assert _advanced(status, body).result is KeyResult(expected)


def test_advanced_rate_limit_is_per_key_with_retry_after() -> None:
    body = _j({"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]})
    verdict = _advanced(429, body, {"Retry-After": "3"})
    assert verdict.retry_after == 3.0
    assert verdict.ip_wide is False
    assert verdict.banned is False
    assert verdict.error_code == "rate_limit_exceeded"


def test_advanced_invalid_key_after_a_known_expiry_is_expired() -> None:
    previous = KeyFacts(expires_at=1_600_000_000.0, expiry_source="exchange")
    assert _advanced(401, b"Unauthorized", previous=previous).result is KeyResult.EXPIRED
    later = KeyFacts(expires_at=1_800_000_000.0, expiry_source="exchange")
    assert _advanced(401, b"Unauthorized", previous=later).result is KeyResult.INVALID_KEY


def test_advanced_message_is_capped() -> None:
    verdict = _advanced(401, b"Unauthorized" + b"x" * 500)
    assert len(verdict.message) <= 200


# -- classification: Coinbase Exchange ---------------------------------------------------------


def _exchange(
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    previous: KeyFacts | None = None,
) -> KeyResult:
    return (
        CoinbaseExchangeKeyApi()
        .classify(status, httpx.Headers(headers or {}), body, previous, 1_700_000_000.0)
        .result
    )


def test_exchange_ok_proves_read_only() -> None:
    body = _j(
        [
            {
                "id": "a1",
                "currency": "BTC",
                "balance": "0.5",
                "hold": "0",
                "available": "0.5",
                "profile_id": "p1",
                "trading_enabled": True,
            }
        ]
    )
    verdict = CoinbaseExchangeKeyApi().classify(200, httpx.Headers(), body, None, 0.0)
    assert verdict.result is KeyResult.OK
    assert verdict.facts is not None
    assert dict(verdict.facts.permissions) == {Permission.READ: True}
    assert verdict.facts.ip_restricted is None
    assert verdict.facts.expires_at is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b"[]", "ok"),
        (401, _j({"message": "Invalid API Key"}), "invalid_key"),
        (400, _j({"message": "Invalid API Key"}), "invalid_key"),
        (400, _j({"message": "invalid signature"}), "invalid_signature"),
        (401, _j({"message": "invalid signature"}), "invalid_signature"),
        (401, _j({"message": "Invalid Passphrase"}), "invalid_signature"),
        (400, _j({"message": "Invalid Passphrase"}), "invalid_signature"),
        (400, _j({"message": "request timestamp expired"}), "timestamp"),
        (401, _j({"message": "request timestamp expired"}), "timestamp"),
        (429, _j({"message": "Private rate limit exceeded"}), "rate_limited"),
        (429, _j({"message": "Too Many Requests"}), "rate_limited"),
        (400, _j({"message": "Private rate limit exceeded"}), "rate_limited"),
        (403, _j({"message": "Forbidden"}), "permission_denied"),
        (401, _j({"message": "Unauthorized."}), "invalid_key"),
        (400, _j({"message": "Invalid level"}), "other"),
        (404, _j({"message": "NotFound"}), "other"),
        (500, _j({"message": "Internal server error"}), "other"),
        (503, _j({"message": "invalid signature"}), "other"),
        (200, _j({"message": "odd"}), "other"),
        (200, b"garbage", "other"),
        (403, b"<html>blocked</html>", "other"),
    ],
)
def test_exchange_classifies_every_answer(status: int, body: bytes, expected: str) -> None:
    assert _exchange(status, body) is KeyResult(expected)


def test_exchange_rate_limit_is_per_profile_with_retry_after() -> None:
    verdict = CoinbaseExchangeKeyApi().classify(
        429,
        httpx.Headers({"Retry-After": "2"}),
        _j({"message": "Private rate limit exceeded"}),
        None,
        0.0,
    )
    assert verdict.result is KeyResult.RATE_LIMITED
    assert verdict.retry_after == 2.0
    assert verdict.ip_wide is False
    assert verdict.error_code == "Private rate limit exceeded"


def test_exchange_invalid_key_after_a_known_expiry_is_expired() -> None:
    previous = KeyFacts(expires_at=1_600_000_000.0, expiry_source="exchange")
    body = _j({"message": "Invalid API Key"})
    assert _exchange(401, body, previous=previous) is KeyResult.EXPIRED
    assert _exchange(401, body) is KeyResult.INVALID_KEY


def test_signed_exchange_request_verifies_with_the_decoded_secret() -> None:
    """A cross-check independent of the helper: HMAC with the decoded 64-byte secret."""
    import hashlib
    import hmac

    signed = CoinbaseExchangeKeyApi().sign(_ex_credentials(), "https://x.test", 1700000123.0)
    raw = base64.b64decode(EX_SECRET)
    assert len(raw) == 64
    expected = base64.b64encode(
        hmac.new(raw, b"1700000123GET/accounts", hashlib.sha256).digest()
    ).decode()
    assert signed.headers["CB-ACCESS-SIGN"] == expected
