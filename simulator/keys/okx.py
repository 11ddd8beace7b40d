"""OKX v5 private endpoint: ``GET /api/v5/account/config`` [OKX-CONFIG], verified as OKX
documents its REST authentication [OKX-AUTH §REST Authentication].

Checks, in this order, each with its documented answer [OKX-ERR] (body ``{"code": "<str>",
"msg": ..., "data": []}``):

1. missing or empty headers: ``OK-ACCESS-KEY`` → 50103, ``OK-ACCESS-SIGN`` → 50106,
   ``OK-ACCESS-TIMESTAMP`` → 50107, ``OK-ACCESS-PASSPHRASE`` → 50104 (HTTP 401,
   ``Request header "<name>" cannot be empty.``);
2. ``OK-ACCESS-TIMESTAMP`` not UTC ISO-8601 with milliseconds (``2020-12-08T09:08:57.715Z``)
   → 50112 (401);
3. timestamp more than 30 s away from the exchange clock (``server_ms``, so a ``clock_skew``
   fault produces it) → 50102 (401). The REST tolerance is **UNVERIFIED**: 30 s is the
   documented WebSocket-login rule [OKX-WSLOGIN], applied here in both directions;
4. unknown key → 50111 (401) "Invalid OK-ACCESS-KEY."; revoked key (``DELETE
   /_control/keys``) → 50119 (HTTP 200) "API key doesn't exist", the documented answer for a
   deleted key;
5. passphrase mismatch → 50105 (401); signature mismatch → 50113 (401). The signature is
   verified over ``timestamp + METHOD + path(+?query as received) + body as received``;
6. the key fault, expiry and IP binding: ``key_revoked`` fault → 50119; ``key_expired`` fault
   or a key past ``expires_at`` → 50119 too (OKX's only expiry is its 14-day inactivity
   deletion [OKX-AUTH §API key security], and which code such a key gets — 50111 or 50119 —
   is **UNVERIFIED**: a deleted key's 50119 is used); ``ip_not_allowed`` fault or a client
   address outside ``ips`` → 50110 (401) "Your IP <ip> is not included in your API key's IP
   whitelist.".

The accepted answer is ``account/config`` in OKX's words: ``data[0]`` with ``uid``,
``mainUid``, ``acctLv``, ``label``, ``ip`` (the bound addresses comma-separated, ``""`` when
none), ``perm`` (``read_only``, ``trade``, ``withdraw`` comma-separated), ``kycLv``, ``type``
and ``posMode`` [OKX-CONFIG]; ``uid`` is derived from the key, ``label`` is ``simulator``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from simulator.keys.base import PrivateApi
from simulator.keys.request import PrivateRequest
from simulator.keys.store import SimKey
from simulator.responses import Reply, json_reply

__all__ = ["TIMESTAMP_TOLERANCE_MS", "OkxPrivateApi", "okx_sign"]

TIMESTAMP_TOLERANCE_MS = 30_000
"""Largest accepted distance between ``OK-ACCESS-TIMESTAMP`` and the exchange clock (UNVERIFIED
for REST: the documented WebSocket-login rule [OKX-WSLOGIN])."""

_ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

_MISSING: tuple[tuple[str, str, str], ...] = (
    ("ok-access-key", "50103", "OK-ACCESS-KEY"),
    ("ok-access-sign", "50106", "OK-ACCESS-SIGN"),
    ("ok-access-timestamp", "50107", "OK-ACCESS-TIMESTAMP"),
    ("ok-access-passphrase", "50104", "OK-ACCESS-PASSPHRASE"),
)
"""Header → code of the documented "cannot be empty" answers [OKX-ERR]."""

_PERM_WORDS: tuple[tuple[str, str], ...] = (
    ("read", "read_only"),
    ("trade", "trade"),
    ("withdraw", "withdraw"),
)


def okx_sign(secret: str, prehash: bytes) -> str:
    """base64(HMAC-SHA256(secret text, ``prehash``)) [OKX-AUTH]."""
    digest = hmac.new(secret.encode(), prehash, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _error(status: int, code: str, msg: str) -> Reply:
    return json_reply(status, {"code": code, "msg": msg, "data": []})


def _parse_timestamp(text: str) -> int | None:
    """Epoch ms of an ``OK-ACCESS-TIMESTAMP``, or None when it is not ISO-8601 UTC with ms."""
    if not _ISO_MS.fullmatch(text):
        return None
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return round(moment.timestamp() * 1000)


def _uid(key: str) -> str:
    """A stable 17-digit OKX-style user id derived from the key."""
    return str(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 10**17).zfill(17)


def _config(sim: SimKey) -> dict[str, Any]:
    """``data[0]`` of ``account/config`` for ``sim`` [OKX-CONFIG]."""
    ips = ",".join(str(n) if n.num_addresses > 1 else str(n.network_address) for n in sim.ips)
    perm = ",".join(word for name, word in _PERM_WORDS if name in sim.permissions)
    uid = _uid(sim.key)
    return {
        "uid": uid,
        "mainUid": uid,
        "acctLv": "2",
        "label": "simulator",
        "ip": ips,
        "perm": perm,
        "kycLv": "2",
        "type": "0",
        "posMode": "net_mode",
    }


class OkxPrivateApi(PrivateApi):
    """OKX ``GET /api/v5/account/config`` (see the module docstring for every check and
    answer)."""

    exchange: ClassVar[str] = "okx"
    routes: ClassVar[dict[tuple[str, str], int]] = {("GET", "/api/v5/account/config"): 1}

    def handle(self, request: PrivateRequest, server_ms: int, now: float) -> Reply:
        """Verify the request and answer ``account/config`` or the documented error."""
        headers = request.headers
        for name, code, shown in _MISSING:
            if not headers.get(name):
                return _error(401, code, f'Request header "{shown}" cannot be empty.')
        timestamp = headers["ok-access-timestamp"]
        sent_ms = _parse_timestamp(timestamp)
        if sent_ms is None:
            return _error(401, "50112", "Invalid OK-ACCESS-TIMESTAMP.")
        if abs(server_ms - sent_ms) > TIMESTAMP_TOLERANCE_MS:
            return _error(401, "50102", "Timestamp request expired.")
        sim = request.keys.get(self.exchange, headers["ok-access-key"])
        if sim is None:
            return _error(401, "50111", "Invalid OK-ACCESS-KEY.")
        if sim.revoked:
            return _error(200, "50119", "API key doesn't exist")
        if not hmac.compare_digest(
            headers["ok-access-passphrase"].encode(), (sim.passphrase or "").encode()
        ):
            return _error(401, "50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
        request_path = request.path + (f"?{request.raw_query}" if request.raw_query else "")
        prehash = (
            timestamp.encode() + request.method.encode() + request_path.encode() + request.body
        )
        expected = okx_sign(sim.secret, prehash)
        if not hmac.compare_digest(headers["ok-access-sign"].encode(), expected.encode()):
            return _error(401, "50113", "Invalid signature.")
        fault = request.fault_for(sim.key)
        if fault == "key_revoked" or fault == "key_expired" or sim.expired(now):
            return _error(200, "50119", "API key doesn't exist")
        if fault == "ip_not_allowed" or not sim.ip_allowed(request.client_ip):
            return _error(
                401,
                "50110",
                f"Your IP {request.client_ip} is not included in your API key's IP whitelist.",
            )
        return json_reply(200, {"code": "0", "msg": "", "data": [_config(sim)]})
