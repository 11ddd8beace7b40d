"""Coinbase Exchange private endpoint ``GET /accounts``, signed with an HMAC key (key + base64
secret + passphrase) [CB-EX-AUTH, CB-EX-ACCTS].

Verification, in this order (every error body is ``{"message": "..."}``):

1. ``CB-ACCESS-KEY`` names a known, unrevoked Exchange (``hmac``) key, else 401
   ``Invalid API Key`` (a CDP key sent here is answered the same [OBS-CB-EX401]; a missing
   header too).
2. ``CB-ACCESS-TIMESTAMP`` (Unix seconds, decimals allowed) within 30 s of the exchange clock
   (``server_ms``, so a ``clock_skew`` fault applies), else 401 ``request timestamp expired``
   (400 in 2017 reports, 401 in 2021 ones [OBS-CB-EX]; a missing or unreadable timestamp gets
   the same answer).
3. ``CB-ACCESS-SIGN`` = base64(HMAC-SHA256(base64-decode(secret), timestamp + METHOD +
   requestPath + body)) over the bytes as received, else 400 ``invalid signature`` (OBSERVED
   2019). requestPath is the path without the ``/coinbase`` prefix plus ``?query`` as sent
   (what common clients sign [CCXT-CBX]); with a query the documented path-only form is
   accepted too (whether Coinbase accepts it is UNVERIFIED).
4. ``CB-ACCESS-PASSPHRASE`` equals the key's, else 401 ``Invalid Passphrase`` (status
   UNVERIFIED; 401 as for the other credential errors).
5. The key is usable: revoked (``key_revoked`` fault), expired (``SimKey.expired`` or the
   ``key_expired`` fault) and IP-denied (``SimKey.ip_allowed`` or the ``ip_not_allowed`` fault)
   keys all get 401 ``Invalid API Key``. Coinbase documents no expired-key or IP-denied answer:
   UNVERIFIED, the closest documented answer (the unknown-key one) is used.
6. The key has View or Trade (``read`` or ``trade``), which ``/accounts`` needs, else 403
   ``Forbidden`` (body UNVERIFIED).

Answer: the profile's accounts ``[{"id", "currency", "balance", "hold", "available",
"profile_id", "trading_enabled"}]`` [CB-EX-ACCTS], ids derived from the key (stable).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import uuid
from typing import Any, ClassVar

from simulator.keys.base import PrivateApi
from simulator.keys.request import PrivateRequest
from simulator.keys.store import SimKey
from simulator.responses import Reply, json_reply

__all__ = ["TIMESTAMP_WINDOW_S", "CoinbaseExchangePrivateApi", "exchange_signature"]

TIMESTAMP_WINDOW_S = 30.0
"""A request more than this many seconds from the exchange clock is rejected [CB-EX-AUTH]."""

_BALANCES: tuple[tuple[str, str, str], ...] = (
    ("USD", "10000.0000000000000000", "250.0000000000000000"),
    ("BTC", "0.5000000000000000", "0.0000000000000000"),
    ("ETH", "4.2500000000000000", "0.2500000000000000"),
)


def exchange_signature(secret: bytes, message: bytes) -> str:
    """base64(HMAC-SHA256(secret, message)) [CB-EX-AUTH]; ``secret`` already base64-decoded."""
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode("ascii")


def _message(text: str) -> Reply:
    return json_reply(401, {"message": text})


def _timestamp(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _signature_ok(request: PrivateRequest, key: SimKey, timestamp: str, given: str) -> bool:
    # Header values and the target arrive as bytes decoded as latin-1: encode them back.
    prefix = (
        timestamp.encode("latin-1", "replace")
        + request.method.encode("latin-1", "replace")
        + request.path.encode("latin-1", "replace")
    )
    query = request.raw_query.encode("latin-1", "replace")
    candidates = [prefix + b"?" + query] if query else []
    candidates.append(prefix)
    given_bytes = given.encode("latin-1", "replace")
    return any(
        hmac.compare_digest(
            exchange_signature(key.secret_bytes, signed + request.body).encode(), given_bytes
        )
        for signed in candidates
    )


def _accounts(key: SimKey) -> list[dict[str, Any]]:
    profile = uuid.uuid5(uuid.NAMESPACE_URL, f"coinbase-exchange-profile/{key.key}")
    return [
        {
            "id": str(uuid.uuid5(profile, currency)),
            "currency": currency,
            "balance": balance,
            "hold": hold,
            "available": f"{float(balance) - float(hold):.16f}",
            "profile_id": str(profile),
            "trading_enabled": True,
        }
        for currency, balance, hold in _BALANCES
    ]


class CoinbaseExchangePrivateApi(PrivateApi):
    """Coinbase Exchange ``GET /accounts`` with HMAC authentication (see the module
    docstring for the checks and answers)."""

    exchange: ClassVar[str] = "coinbase"
    routes: ClassVar[dict[tuple[str, str], int]] = {("GET", "/accounts"): 1}

    def handle(self, request: PrivateRequest, server_ms: int, now: float) -> Reply:
        """Verify the ``CB-ACCESS-*`` headers and answer the accounts or the documented error.

        Args:
            request: the request as received.
            server_ms: the exchange clock in epoch ms (timestamp window).
            now: real Unix seconds (key expiry).
        """
        headers = request.headers
        key = request.keys.get(self.exchange, headers.get("cb-access-key", ""))
        if key is None or key.kind != "hmac" or key.revoked:
            return _message("Invalid API Key")
        raw_ts = headers.get("cb-access-timestamp", "")
        sent = _timestamp(raw_ts)
        if sent is None or abs(sent - server_ms / 1000.0) > TIMESTAMP_WINDOW_S:
            return _message("request timestamp expired")
        if not _signature_ok(request, key, raw_ts, headers.get("cb-access-sign", "")):
            return json_reply(400, {"message": "invalid signature"})
        passphrase = headers.get("cb-access-passphrase", "")
        if key.passphrase is None or not hmac.compare_digest(
            passphrase.encode("latin-1", "replace"), key.passphrase.encode("utf-8")
        ):
            return _message("Invalid Passphrase")
        fault = request.fault_for(key.key)
        if fault is not None or key.expired(now) or not key.ip_allowed(request.client_ip):
            # key_revoked: as deleted; key_expired / ip_not_allowed: UNVERIFIED, closest
            # documented answer (the unknown-key one).
            return _message("Invalid API Key")
        if not key.permissions & {"read", "trade"}:
            return json_reply(403, {"message": "Forbidden"})
        return json_reply(200, _accounts(key))
