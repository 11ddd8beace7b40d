"""Coinbase Advanced Trade private endpoint ``GET /api/v3/brokerage/key_permissions``, called
with a CDP key's ES256 JWT in ``Authorization: Bearer <jwt>`` [CB-AT-AUTH, CB-JWT, CB-KEYPERM].

Verification (rules from the official SDK's JWT [CB-SDK]); every failure is HTTP 401 with the
text body ``Unauthorized`` [OBS-CB-AT401]:

1. A ``Bearer`` token whose (unverified) header names in ``kid`` a known, unrevoked CDP key
   (``SimKey.kind == "cdp"``); an Exchange (HMAC) key's name is as unknown here.
2. ``alg`` is ES256 and the signature verifies with the key's P-256 public key.
3. ``sub == kid``; ``nbf`` and ``exp`` are numbers with ``nbf <= now < exp`` on the exchange
   clock (``server_ms``: a ``clock_skew`` fault applies; tolerance UNVERIFIED, none used).
4. ``uri == METHOD + " " + Host header + full path as received`` (prefix included, no query).
5. The key is usable: revoked (``key_revoked`` fault), expired (``SimKey.expired`` or the
   ``key_expired`` fault) and IP-denied (``SimKey.ip_allowed`` or the ``ip_not_allowed`` fault)
   keys all get the same 401 ``Unauthorized``. Coinbase documents no expired-key or IP-denied
   answer: UNVERIFIED, the closest documented answer is used.

``iss`` and ``aud`` are not checked (the SDK sends ``iss: "cdp"``, older SDKs and ccxt
``coinbase-cloud`` with an ``aud``).

Answer [CB-KEYPERM-FIELDS]: ``{"can_view", "can_trade", "can_transfer", "portfolio_uuid",
"portfolio_type": "DEFAULT"}`` with ``can_view`` = ``read``, ``can_trade`` = ``trade``,
``can_transfer`` = ``withdraw`` of the key's permissions (Transfer is the send/withdraw
permission [CB-CDP-KEYS]); ``portfolio_uuid`` derived from the key name (stable).
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import jwt

from simulator.keys.base import PrivateApi
from simulator.keys.request import PrivateRequest
from simulator.keys.store import SimKey
from simulator.responses import Reply, json_reply, text_reply

__all__ = ["CoinbaseAdvancedPrivateApi", "verify_jwt"]

_DECODE_OPTIONS: Any = {
    "verify_signature": True,
    "verify_exp": False,  # checked against the exchange clock below, not the real one
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


def _unauthorized() -> Reply:
    return text_reply(401, "Unauthorized")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def verify_jwt(request: PrivateRequest, token: str, server_s: float) -> SimKey | None:
    """The CDP key that signed ``token`` when it passes checks 1–4 of the module docstring at
    exchange time ``server_s`` (Unix seconds), else None.

    Never raises for any token.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return None
    kid = header.get("kid")
    if not isinstance(kid, str) or header.get("alg") != "ES256":
        return None
    key = request.keys.get("coinbase", kid)
    if key is None or key.kind != "cdp" or key.revoked or key.public_key is None:
        return None
    try:
        claims = jwt.decode(token, key.public_key, algorithms=["ES256"], options=_DECODE_OPTIONS)
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return None
    nbf, exp = _number(claims.get("nbf")), _number(claims.get("exp"))
    if claims.get("sub") != kid or nbf is None or exp is None:
        return None
    if not nbf <= server_s < exp:
        return None
    expected = f"{request.method} {request.host}{request.full_path}"
    if claims.get("uri") != expected:
        return None
    return key


def _permissions(key: SimKey) -> dict[str, Any]:
    return {
        "can_view": "read" in key.permissions,
        "can_trade": "trade" in key.permissions,
        "can_transfer": "withdraw" in key.permissions,
        "portfolio_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"coinbase-portfolio/{key.key}")),
        "portfolio_type": "DEFAULT",
    }


class CoinbaseAdvancedPrivateApi(PrivateApi):
    """Coinbase Advanced Trade ``GET /api/v3/brokerage/key_permissions`` with CDP JWT
    authentication (see the module docstring for the checks and answers)."""

    exchange: ClassVar[str] = "coinbase"
    routes: ClassVar[dict[tuple[str, str], int]] = {("GET", "/api/v3/brokerage/key_permissions"): 1}

    def handle(self, request: PrivateRequest, server_ms: int, now: float) -> Reply:
        """Verify the bearer JWT and answer the key's permissions, or 401 ``Unauthorized``.

        Args:
            request: the request as received.
            server_ms: the exchange clock in epoch ms (``nbf``/``exp``).
            now: real Unix seconds (key expiry).
        """
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized()
        key = verify_jwt(request, token.strip(), server_ms / 1000.0)
        if key is None:
            return _unauthorized()
        if (
            request.fault_for(key.key) is not None
            or key.expired(now)
            or not key.ip_allowed(request.client_ip)
        ):
            # key_revoked: as deleted; key_expired / ip_not_allowed: UNVERIFIED, closest
            # documented answer.
            return _unauthorized()
        return json_reply(200, _permissions(key))
