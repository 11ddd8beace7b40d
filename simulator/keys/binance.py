"""Binance spot private endpoint: ``GET /sapi/v1/account/apiRestrictions`` (weight 1).

Verification, in this order [BN-REST §Request Security, §SIGNED Endpoint security, §Timing
security; BN-ERR]; every error body is ``{"code": <int>, "msg": "<text>"}``:

1. ``timestamp`` and ``signature`` present, ``timestamp`` (ms, or µs when 16+ digits) and
   ``recvWindow`` (ms, up to 3 decimals, default 5000) numbers, else HTTP 400 ``-1102``
   "Mandatory parameter '<name>' was not sent, was empty/null, or malformed.".
2. ``recvWindow`` > 60000 → HTTP 400 ``-1131`` "recvWindow must be less than 60000." (code and
   status UNVERIFIED: from a ccxt comment).
3. ``X-MBX-APIKEY``: a value that is not printable ASCII without spaces → ``-2014`` "API-key
   format invalid." (HTTP 401, UNVERIFIED); missing, unknown or revoked → HTTP 401 ``-2015``
   "Invalid API-key, IP, or permissions for action." [OBS-BN-401].
4. Signature: HMAC-SHA256 with the secret over the received query bytes with the
   ``signature=...`` parameter taken out (plus the body), hex compared case-insensitively →
   HTTP 400 ``-1022`` "Signature for this request is not valid." [OBS-BN-400].
5. Timing against the exchange clock: accept iff ``timestamp < serverTime + 1000`` and
   ``serverTime - timestamp <= recvWindow``; else HTTP 400 ``-1021`` "Timestamp for this request
   was 1000ms ahead of the server's time." or "Timestamp for this request is outside of the
   recvWindow." [OBS-BN-1021].
6. The key fault (``key_revoked``, ``key_expired``, ``ip_not_allowed``), the key's expiry, its
   IP binding and a key without ``read`` → HTTP 401 ``-2015``: Binance has one code for an
   unknown key, an IP not allowed and a missing permission, and no expired-key code [BN-ERR].
   (Spot does not append ``, request ip: <ip>``: UNVERIFIED either way.)

Answer (HTTP 200) in Binance's words [BN-APIKEY]: ``ipRestrict`` = the key has ``ips``;
``createTime`` = creation in ms; ``enableReading``/``enableSpotAndMarginTrading``/
``enableWithdrawals`` from the key's ``read``/``trade``/``withdraw``; the other ``enable*``
flags false; ``tradingAuthorityExpirationTime`` (ms) when the key has ``expires_at``
[BN-RAPI]. Binance only allows withdrawals on IP-restricted keys [BN-APIKEY]; the simulator
reports ``enableWithdrawals`` as configured so a dangerous key can be staged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, ClassVar
from urllib.parse import unquote

from simulator.keys.base import PrivateApi
from simulator.keys.request import PrivateRequest
from simulator.keys.store import SimKey
from simulator.responses import Reply, json_reply

__all__ = ["MAX_RECV_WINDOW_MS", "BinancePrivateApi", "restrictions_body"]

DEFAULT_RECV_WINDOW_MS = 5000.0
MAX_RECV_WINDOW_MS = 60000.0
"""Binance's ``recvWindow`` default and maximum in ms [BN-REST §Timing security]."""
AHEAD_MS = 1000
"""How far ahead of the server a timestamp may be, in ms [BN-REST §Timing security]."""

_KEY_FORMAT = re.compile(r"^[\x21-\x7e]{1,200}$")
_MSG_REJECTED = "Invalid API-key, IP, or permissions for action."
_MSG_FORMAT = "API-key format invalid."
_MSG_SIGNATURE = "Signature for this request is not valid."
_MSG_AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."
_MSG_WINDOW = "Timestamp for this request is outside of the recvWindow."
_MSG_RECV_WINDOW = "recvWindow must be less than 60000."
_NUMBER = re.compile(r"^\d{1,20}(\.\d{1,3})?$")


def _error(status: int, code: int, msg: str) -> Reply:
    return json_reply(status, {"code": code, "msg": msg})


def _mandatory(name: str) -> Reply:
    return _error(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def restrictions_body(key: SimKey) -> dict[str, Any]:
    """The apiRestrictions answer for ``key`` (see the module docstring) [BN-APIKEY]."""
    body: dict[str, Any] = {
        "ipRestrict": bool(key.ips),
        "createTime": int(key.created_at * 1000),
        "enableReading": "read" in key.permissions,
        "enableWithdrawals": "withdraw" in key.permissions,
        "enableInternalTransfer": False,
        "enableMargin": False,
        "enableFutures": False,
        "permitsUniversalTransfer": False,
        "enableVanillaOptions": False,
        "enableFixApiTrade": False,
        "enableFixReadOnly": False,
        "enableSpotAndMarginTrading": "trade" in key.permissions,
        "enablePortfolioMarginTrading": False,
    }
    if key.expires_at is not None:
        body["tradingAuthorityExpirationTime"] = int(key.expires_at * 1000)
    return body


class BinancePrivateApi(PrivateApi):
    """Binance's signed key-info endpoint (see the module docstring)."""

    exchange: ClassVar[str] = "binance"
    routes: ClassVar[dict[tuple[str, str], int]] = {("GET", "/sapi/v1/account/apiRestrictions"): 1}

    def handle(self, request: PrivateRequest, server_ms: int, now: float) -> Reply:
        """Verify ``request`` as Binance does and answer (see the module docstring)."""
        payload_parts: list[str] = []
        params: dict[str, str] = {}
        for part in request.raw_query.split("&") if request.raw_query else []:
            name, _, value = part.partition("=")
            name = unquote(name)
            if name != "signature":
                payload_parts.append(part)
            params.setdefault(name, unquote(value))  # the first value wins
        payload = "&".join(payload_parts).encode() + request.body
        for name in ("timestamp", "signature"):
            if not params.get(name):
                return _mandatory(name)
        if not _NUMBER.match(params["timestamp"]) or "." in params["timestamp"]:
            return _mandatory("timestamp")
        window_text = params.get("recvWindow", "")
        if window_text and not _NUMBER.match(window_text):
            return _mandatory("recvWindow")
        window = float(window_text) if window_text else DEFAULT_RECV_WINDOW_MS
        if window > MAX_RECV_WINDOW_MS:
            return _error(400, -1131, _MSG_RECV_WINDOW)
        api_key = request.headers.get("x-mbx-apikey")
        if api_key is not None and not _KEY_FORMAT.match(api_key):
            return _error(401, -2014, _MSG_FORMAT)
        key = None if api_key is None else request.keys.get(self.exchange, api_key)
        if key is None or key.revoked:
            return _error(401, -2015, _MSG_REJECTED)
        expected = hmac.new(key.secret_bytes, payload, hashlib.sha256).hexdigest()
        received = params["signature"].lower().encode("utf-8", "replace")
        if not hmac.compare_digest(expected.encode(), received):
            return _error(400, -1022, _MSG_SIGNATURE)
        timestamp = int(params["timestamp"])
        timestamp_ms = timestamp / 1000.0 if len(params["timestamp"]) >= 16 else float(timestamp)
        if timestamp_ms >= server_ms + AHEAD_MS:
            return _error(400, -1021, _MSG_AHEAD)
        if server_ms - timestamp_ms > window:
            return _error(400, -1021, _MSG_WINDOW)
        if (
            request.fault_for(key.key) is not None
            or key.expired(now)
            or not key.ip_allowed(request.client_ip)
            or "read" not in key.permissions
        ):
            return _error(401, -2015, _MSG_REJECTED)
        return json_reply(200, restrictions_body(key))
