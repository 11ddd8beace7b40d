"""Coinbase Advanced Trade (``api.coinbase.com``): the key check of a CDP Secret API key, an
EC P-256 private key signing a short-lived ES256 JWT sent as ``Authorization: Bearer <jwt>``
[CB-AT-AUTH, CB-JWT].

The check is ``GET /api/v3/brokerage/key_permissions`` [CB-KEYPERM], which answers
``{"can_view", "can_trade", "can_transfer", "portfolio_uuid", "portfolio_type"}``
[CB-KEYPERM-FIELDS]. Mapped permissions: ``can_view`` → ``read``, ``can_trade`` → ``trade``,
``can_transfer`` → ``withdraw`` (Transfer is the send/withdraw permission of the key's
View/Trade/Transfer set [CB-CDP-KEYS]; that it means withdraw is an inference). The answer tells
neither an IP allow-list nor an expiry (``ip_restricted`` None, no expiry).

The JWT is built exactly like the official SDK's ``jwt_generator`` [CB-SDK], with PyJWT: header
``{"alg": "ES256", "typ": "JWT", "kid": <key name>, "nonce": <random hex>}``, claims
``{"sub": <key name>, "iss": "cdp", "nbf": now, "exp": now + 120, "uri": "GET host/path"}``;
``uri`` has no scheme and no query, and carries ``host[:port]`` and the full path as sent
(a path prefix of ``base_url`` included). A new JWT is built for every request ("Your JWT expires
after 2 minutes" [CB-JWT]).

Answers → :class:`~exporter.keys.model.KeyResult` [OBS-CB-AT401, CCXT-CB, CB-APP-RL]:

=============================================== ===================== ========================
answer                                          result                note
=============================================== ===================== ========================
200 with ``can_view``/``can_trade``/...         ``ok``
401 text ``Unauthorized``                       ``invalid_key``       see below
401, or ids ``authentication_error``,           ``invalid_key``
``unauthorized``, ``invalid_token``,
``expired_token``
``PERMISSION_DENIED``, ``invalid_scope`` (403)  ``permission_denied``
429, ids ``rate_limit_exceeded``,               ``rate_limited``      per key/user:
``resource_exhausted``                                                ``ip_wide`` False
5xx, unreadable, anything else                  ``other``
=============================================== ===================== ========================

A bad or expired JWT gets the same 401 ``Unauthorized`` as an unknown or deleted key
[OBS-CB-AT401]: a JWT rejected for time (our clock off by more than the JWT's 120 s, or behind
the exchange so that ``nbf`` is in its future) cannot be told apart here and is classified
``invalid_key``; the diagnosis tells clock skew from ``exchange_clock_skew_seconds``. An
invalid-key answer when the previous facts' ``expires_at`` has passed is ``expired`` (never the
case here: no expiry is told).

Simulator API-key faults → result (the integration matrix asserts this). Coinbase documents no
IP-denied or expired-key answer (UNVERIFIED), so the simulator answers both with the closest
documented one, 401 ``Unauthorized``; the answer tells no IP binding or expiry that could
distinguish them:

================== ================= ==========================================================
fault              result            why
================== ================= ==========================================================
``key_revoked``    ``invalid_key``   a deleted key is unknown: 401 ``Unauthorized``
``key_expired``    ``invalid_key``   no documented expired answer; 401 ``Unauthorized``
``ip_not_allowed`` ``invalid_key``   no documented IP answer; 401 ``Unauthorized``
================== ================= ==========================================================
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from exporter.keys.exchanges.base import KeyApi, cap, expiry_passed, parse_json, retry_after
from exporter.keys.model import (
    Credentials,
    KeyFacts,
    KeyResult,
    KeyVerdict,
    Permission,
    SignedRequest,
)

__all__ = [
    "JWT_LIFETIME_SECONDS",
    "CoinbaseAdvancedKeyApi",
    "build_jwt",
    "classify_advanced_answer",
    "jwt_uri",
    "load_cdp_private_key",
]

JWT_LIFETIME_SECONDS = 120
"""``exp - nbf`` of every JWT, as the official SDK sets it [CB-SDK, CB-JWT]."""

_AUTH_IDS = frozenset({"authentication_error", "unauthorized", "invalid_token", "expired_token"})
_PERMISSION_IDS = frozenset({"permission_denied", "invalid_scope"})
_RATE_IDS = frozenset({"rate_limit_exceeded", "resource_exhausted"})
_DEFAULT_PORTS = {"https": "443", "http": "80"}
_PERMISSIONS: tuple[tuple[str, Permission], ...] = (
    ("can_view", Permission.READ),
    ("can_trade", Permission.TRADE),
    ("can_transfer", Permission.WITHDRAW),
)


def load_cdp_private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The EC P-256 private key of a CDP key's PEM text.

    Raises:
        ValueError: naming ``private_key_file`` (never the value): not a readable unencrypted
            PEM private key, or not EC P-256 (Coinbase App SDKs do not support Ed25519
            [CB-AT-AUTH]).
    """
    try:
        key = load_pem_private_key(pem.encode("utf-8"), password=None)
    except Exception:  # ValueError, TypeError, or cryptography's own UnsupportedAlgorithm
        raise ValueError("private_key_file: not a readable, unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(
            "private_key_file: Advanced Trade needs an EC P-256 (ES256) CDP key; "
            "Ed25519 keys are not supported by Coinbase App"
        )
    return key


def jwt_uri(method: str, base_url: str, path: str) -> str:
    """The ``uri`` claim: ``METHOD host[:port]/prefix/path``, no scheme, no query [CB-SDK].

    ``host[:port]`` is what the HTTP client sends as ``Host`` (host lower-cased, the scheme's
    default port left out); the path is ``base_url``'s path prefix + ``path``.

    Raises:
        ValueError: ``base_url`` has no host.
    """
    parts = urlsplit(base_url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if not netloc:
        raise ValueError("base_url: no host")
    host, sep, port = netloc.rpartition(":")
    if not sep or "]" in port:  # no port (an IPv6 literal's colons are inside brackets)
        host, port = netloc, ""
    if port and _DEFAULT_PORTS.get(parts.scheme.lower()) == port:
        port = ""
    authority = host.lower() + (f":{port}" if port else "")
    return f"{method.upper()} {authority}{parts.path.rstrip('/')}{path}"


def build_jwt(
    key_name: str,
    private_key_pem: str | ec.EllipticCurvePrivateKey,
    uri: str,
    now: float,
    nonce: str | None = None,
) -> str:
    """A CDP JWT exactly as the official SDK builds it [CB-SDK]: ES256, header ``kid`` (the
    key name) and ``nonce`` (random hex; PyJWT adds ``typ: JWT``), claims ``sub`` (the key
    name), ``iss: "cdp"``, ``nbf`` (``now`` in whole seconds), ``exp`` (``nbf + 120``), ``uri``.

    Args:
        key_name: ``organizations/{org_id}/apiKeys/{key_id}``.
        private_key_pem: the PEM EC P-256 private key (or the loaded key).
        uri: see :func:`jwt_uri`.
        now: Unix seconds.
        nonce: header nonce; None: ``secrets.token_hex()`` (32 random bytes as hex), as the
            SDK does.

    Raises:
        ValueError: the key is not a readable EC P-256 PEM key (naming ``private_key_file``).
    """
    key = (
        load_cdp_private_key(private_key_pem)
        if isinstance(private_key_pem, str)
        else private_key_pem
    )
    issued = int(now)
    claims = {
        "sub": key_name,
        "iss": "cdp",
        "nbf": issued,
        "exp": issued + JWT_LIFETIME_SECONDS,
        "uri": uri,
    }
    headers = {"kid": key_name, "nonce": nonce if nonce is not None else secrets.token_hex()}
    return jwt.encode(claims, key, algorithm="ES256", headers=headers)


def _error_id(data: Any) -> tuple[str | None, str]:
    """``(error id, message)`` of a JSON error body: ``{"error": "...", "message": ...}`` or
    ``{"errors": [{"id": "...", "message": "..."}]}`` [CCXT-CB, CB-APP-RL]."""
    if not isinstance(data, dict):
        return None, ""
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        ident = first.get("id")
        return (ident if isinstance(ident, str) else None), str(first.get("message", ""))
    ident = data.get("error")
    message = data.get("message", data.get("error_details", ""))
    return (ident if isinstance(ident, str) else None), str(message)


def _facts(data: Any) -> KeyFacts | None:
    if not isinstance(data, dict):
        return None
    permissions: dict[Permission, bool] = {}
    for field, permission in _PERMISSIONS:
        value = data.get(field)
        if isinstance(value, bool):
            permissions[permission] = value
    if not permissions:
        return None
    return KeyFacts(
        permissions=permissions,
        ip_restricted=None,
        expiry_note=(
            "Coinbase documents no expiry for CDP keys and key_permissions tells neither an "
            "expiry nor an IP allow-list."
        ),
    )


def classify_advanced_answer(
    status: int, headers: Mapping[str, str], body: bytes, previous: KeyFacts | None, now: float
) -> KeyVerdict:
    """Classify one answer of ``GET /api/v3/brokerage/key_permissions`` (see the module
    docstring's table).

    Returns:
        The verdict; never raises.
    """
    data = parse_json(body)
    ident, message = _error_id(data)
    if data is None:
        message = body[:200].decode("utf-8", "replace")
    text = cap(message)
    code = ident if ident is not None else (text or str(status))
    lowered = (ident or "").lower()
    if status >= 500:
        return KeyVerdict(KeyResult.OTHER, str(status), text or f"HTTP {status}")
    if status == 200:
        facts = _facts(data)
        if facts is not None:
            return KeyVerdict(KeyResult.OK, facts=facts)
        return KeyVerdict(KeyResult.OTHER, None, "HTTP 200 without key permissions")
    if status == 429 or lowered in _RATE_IDS:
        return KeyVerdict(
            KeyResult.RATE_LIMITED,
            code,
            text,
            retry_after=retry_after(headers),
            ip_wide=False,
        )
    if lowered in _PERMISSION_IDS:
        return KeyVerdict(KeyResult.PERMISSION_DENIED, code, text)
    if status == 401 or lowered in _AUTH_IDS:
        result = KeyResult.EXPIRED if expiry_passed(previous, now) else KeyResult.INVALID_KEY
        return KeyVerdict(result, code, text)
    return KeyVerdict(KeyResult.OTHER, code, text or f"HTTP {status}")


class CoinbaseAdvancedKeyApi(KeyApi):
    """Key check of a Coinbase Advanced Trade CDP key: ``GET
    /api/v3/brokerage/key_permissions`` with a fresh ES256 JWT [CB-KEYPERM, CB-SDK].

    The endpoint's rate limit is UNVERIFIED (no ``limits``); one call per interval.
    """

    api: ClassVar[str] = "coinbase-advanced-trade"
    path: ClassVar[str] = "/api/v3/brokerage/key_permissions"

    @classmethod
    def check_credentials(cls, credentials: Credentials) -> None:
        """Require a PEM EC P-256 private key.

        Raises:
            ValueError: naming ``private_key_file``, never its value.
        """
        if credentials.private_key is None or not credentials.private_key.get_secret_value():
            raise ValueError("private_key_file: required for a Coinbase Advanced Trade CDP key")
        load_cdp_private_key(credentials.private_key.get_secret_value())

    @classmethod
    def check_base_url(cls, base_url: str) -> None:
        """Advanced Trade lives on ``api.coinbase.com`` [CB-KEYPERM]; the public probes'
        Exchange API host (``api.exchange.coinbase.com``) does not serve it.

        Raises:
            ValueError: ``base_url`` is the Exchange API's host.
        """
        host = (urlsplit(base_url).hostname or "").lower()
        if host.endswith("exchange.coinbase.com"):
            raise ValueError(
                f"base_url: {host} is the Coinbase Exchange API; a CDP (Advanced Trade) key is "
                "checked at https://api.coinbase.com: set the key's base_url to it"
            )

    def sign(
        self,
        credentials: Credentials,
        base_url: str,
        now: float,
        recv_window_ms: int | None = None,
    ) -> SignedRequest:
        """``GET base_url/api/v3/brokerage/key_permissions`` with ``Authorization: Bearer`` a
        JWT whose ``uri`` is ``GET host[:port]<prefix>/api/v3/brokerage/key_permissions``.

        Raises:
            ValueError: no readable EC P-256 private key (naming ``private_key_file``), or a
                ``base_url`` without host.
        """
        if credentials.private_key is None:
            raise ValueError("private_key_file: required for a Coinbase Advanced Trade CDP key")
        uri = jwt_uri(self.method, base_url, self.path)
        token = build_jwt(
            credentials.key.get_secret_value(),
            credentials.private_key.get_secret_value(),
            uri,
            now,
        )
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return SignedRequest(self.method, base_url.rstrip("/") + self.path, headers, b"")

    def classify(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        previous: KeyFacts | None,
        now: float,
    ) -> KeyVerdict:
        """See :func:`classify_advanced_answer`; never raises (an unexpected failure to read
        the answer is ``other``)."""
        try:
            return classify_advanced_answer(status, headers, body, previous, now)
        except Exception:  # classify must never raise
            return KeyVerdict(KeyResult.OTHER, str(status), "unreadable answer")
