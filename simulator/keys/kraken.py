"""Kraken spot private endpoint: ``POST /0/private/GetApiKeyInfo`` [KR-KEYINFO], verified as
Kraken documents its REST authentication [KR-AUTH].

Every answer is HTTP 200 with the errors in ``error[]`` ("HTTP status codes are generally not
used" [KR-REST-INTRO]); an error body is ``{"error": ["<string>"], "result": {}}`` as in the
documented example [KR-ERRORS]. Checks, in this order:

1. ``API-Key`` missing or unknown, or the key revoked (``DELETE /_control/keys``) →
   ``EAPI:Invalid key`` [KR-ERRORS];
2. the body: form-encoded (``nonce=...&...``) or JSON (``{"nonce": ...}``, shown in the current
   reference [KR-KEYINFO]); no readable positive integer ``nonce`` → ``EAPI:Invalid nonce``;
3. ``API-Sign`` missing or not base64(HMAC-SHA512(base64-decode(secret), path + SHA256(nonce
   + body))) over the body text **as received** and the path without the ``/kraken`` prefix →
   ``EAPI:Invalid signature`` [KR-AUTH];
4. nonce not greater than the last nonce accepted for the key → ``EAPI:Invalid nonce``
   [KR-ERRORS]; there is no clock window (a ``clock_skew`` fault changes nothing here). A
   correctly signed request with a fresh nonce is accepted as far as the nonce goes:
   ``SimKey.last_nonce`` is updated even when a later check refuses the call.
   ``nonceWindow`` is always 0 (its semantics are UNVERIFIED);
5. the key fault and the key's state: ``key_revoked`` → ``EAPI:Invalid key``; ``key_expired``
   or a key past ``expires_at`` → ``EAPI:Invalid key``; ``ip_not_allowed`` or a client
   address outside ``ips`` → ``EGeneral:Permission denied``. Kraken's answers for an expired
   key and for an address outside the IP allow-list are **UNVERIFIED** (the facts name these
   two as the likely ones); the exporter tells them apart using the key's earlier state.

The accepted answer is GetApiKeyInfo in Kraken's words [KR-KEYINFO]: ``apiKeyName``,
``apiKey``, ``nonce`` (the last accepted, as a string), ``nonceWindow``, ``permissions``
(``read`` → ``query-funds``, ``query-open-trades``; ``trade`` → ``modify-trades``;
``withdraw`` → ``withdraw-funds`` — the strings of the documented example; Kraken's full list
is UNVERIFIED), ``iban``, ``validUntil`` (``expires_at`` in seconds as a string, ``"0"`` =
none), ``queryFrom``, ``queryTo``, ``createdTime``, ``modifiedTime``, ``ipAllowlist`` and
``lastUsed`` (epoch seconds as strings).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from simulator.keys.base import PrivateApi
from simulator.keys.request import PrivateRequest
from simulator.keys.store import SimKey
from simulator.responses import Reply, json_reply

__all__ = ["KrakenPrivateApi", "kraken_sign"]

_PERMISSION_STRINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("read", ("query-funds", "query-open-trades")),
    ("trade", ("modify-trades",)),
    ("withdraw", ("withdraw-funds",)),
)
"""Simulator permission → Kraken permission strings (those of the doc example [KR-KEYINFO])."""

_IBAN = "AA88 N84G WOAK NMOI"  # the documented example's value [KR-KEYINFO]


def kraken_sign(secret: bytes, path: str, nonce: str, body: bytes) -> str:
    """base64(HMAC-SHA512(``secret`` (decoded), ``path`` + SHA256(``nonce`` + ``body``)))
    [KR-AUTH]."""
    inner = hashlib.sha256(nonce.encode() + body).digest()
    return base64.b64encode(
        hmac.new(secret, path.encode() + inner, hashlib.sha512).digest()
    ).decode("ascii")


def _error(text: str) -> Reply:
    return json_reply(200, {"error": [text], "result": {}})


def _nonce(request: PrivateRequest) -> str | None:
    """The nonce exactly as written in the body (form or JSON), or None when there is none or
    it is not a positive integer."""
    text = request.body.decode("utf-8", errors="replace")
    content_type = request.headers.get("content-type", "")
    value: Any = None
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if isinstance(doc, dict):
            value = doc.get("nonce")
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            value = str(value)
    else:
        for name, item in parse_qsl(text, keep_blank_values=True):
            if name == "nonce":
                value = item
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    return value if int(value) > 0 else None


def _key_info(sim: SimKey, now: float) -> dict[str, Any]:
    """GetApiKeyInfo ``result`` for ``sim`` [KR-KEYINFO]."""
    permissions = [
        item for name, items in _PERMISSION_STRINGS if name in sim.permissions for item in items
    ]
    created = str(int(sim.created_at))
    valid_until = "0" if sim.expires_at is None else str(int(sim.expires_at))
    return {
        "apiKeyName": "simulator",
        "apiKey": sim.key,
        "nonce": str(sim.last_nonce),
        "nonceWindow": 0,
        "permissions": permissions,
        "iban": _IBAN,
        "validUntil": valid_until,
        "queryFrom": "0",
        "queryTo": "0",
        "createdTime": created,
        "modifiedTime": created,
        "ipAllowlist": [str(n) if n.num_addresses > 1 else str(n.network_address) for n in sim.ips],
        "lastUsed": str(int(now)),
    }


class KrakenPrivateApi(PrivateApi):
    """Kraken ``POST /0/private/GetApiKeyInfo`` (see the module docstring for every check and
    answer)."""

    exchange: ClassVar[str] = "kraken"
    routes: ClassVar[dict[tuple[str, str], int]] = {("POST", "/0/private/GetApiKeyInfo"): 1}

    def handle(self, request: PrivateRequest, server_ms: int, now: float) -> Reply:
        """Verify the request and answer GetApiKeyInfo or the documented error (``server_ms``
        is unused: Kraken nonces have no clock window)."""
        headers = request.headers
        key = headers.get("api-key", "")
        sim = request.keys.get(self.exchange, key) if key else None
        if sim is None or sim.revoked:
            return _error("EAPI:Invalid key")
        nonce = _nonce(request)
        if nonce is None:
            return _error("EAPI:Invalid nonce")
        expected = kraken_sign(sim.secret_bytes, request.path, nonce, request.body)
        if not hmac.compare_digest(headers.get("api-sign", "").encode(), expected.encode()):
            return _error("EAPI:Invalid signature")
        if int(nonce) <= sim.last_nonce:
            return _error("EAPI:Invalid nonce")
        sim.last_nonce = int(nonce)
        fault = request.fault_for(sim.key)
        if fault == "key_revoked" or fault == "key_expired" or sim.expired(now):
            return _error("EAPI:Invalid key")
        if fault == "ip_not_allowed" or not sim.ip_allowed(request.client_ip):
            return _error("EGeneral:Permission denied")
        return json_reply(200, {"error": [], "result": _key_info(sim, now)})
