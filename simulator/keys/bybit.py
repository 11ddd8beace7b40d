"""Bybit v5 private endpoint: ``GET /v5/user/query-api`` (any permission).

Every answer is the envelope ``{"retCode", "retMsg", "result", "retExtInfo": {}, "time": server
ms}``; the auth errors come with HTTP 200 (observed for 10002/10003/10004/10010 [PYBIT, OBS-BY];
assumed the same for 10005 and 33004). Verification, in this order [BY-GUIDE §Authentication,
BY-ERR]:

1. No ``X-BAPI-API-KEY`` header → HTTP 401 with retCode 10003 (Bybit documents HTTP 401 for
   auth params not in the headers [BY-ERR, BY-PILOT]; the body is UNVERIFIED).
2. Unknown or revoked key → 10003 "API key is invalid." (observed text [PYBIT]).
3. ``X-BAPI-SIGN``: lowercase hex HMAC-SHA256 with the secret of ``X-BAPI-TIMESTAMP +
   apiKey + X-BAPI-RECV-WINDOW + queryString``, the headers and query string exactly as
   received (``X-BAPI-RECV-WINDOW`` absent: nothing, as in the string the client signed);
   otherwise 10004 ``error sign! origin_string[<the string hashed>]`` [OBS-BY].
4. Timing against the exchange clock: accept iff ``server_time - recv_window <= timestamp <
   server_time + 1000`` (``recv_window`` default 5000); otherwise (or when the timestamp or
   window is not a number) 10002 ``invalid request, please check your server timestamp or
   recv_window param. req_timestamp[..],server_timestamp[..],recv_window[..]`` [OBS-BY].
5. Key fault ``key_revoked`` → 10003; ``key_expired`` or the key's ``expires_at`` passed →
   33004 "Your api key has expired"; ``ip_not_allowed`` or a client IP outside the key's
   ``ips`` → 10010 "Unmatched IP, please check your API key's bound IP addresses."; a key
   without any permission → 10005 "Permission denied, please check your API key
   permissions." [BY-ERR].

Answer (retCode 0) in Bybit's words [BY-APIKEY]: ``readOnly`` 1 unless the key may ``trade`` or
``withdraw``; ``permissions`` groups: ``trade`` → ``ContractTrade: ["Order", "Position"]``,
``Spot: ["SpotTrade"]``, ``Derivatives: ["DerivativesTrade"]``; ``withdraw`` → ``Wallet:
["Withdraw"]``; other groups empty. ``ips``: the bound addresses, or ``["*"]`` when not bound
[BY-SUBLIST, BY-SUBKEY]. ``expiredAt``/``deadlineDay`` [BY-APIKEY]: the key's ``expires_at``
when set; else, for a key without IP binding, creation + 90 days (Bybit's policy [BY-SUBKEY]:
the simulator does not enforce it); else ``"1970-01-01T00:00:00Z"`` and ``-2`` as for an
IP-bound key. ``deadlineDay`` is the whole days left. ``createdAt`` ISO-8601 UTC.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import zlib
from typing import Any, ClassVar

from simulator.keys.base import PrivateApi
from simulator.keys.request import PrivateRequest
from simulator.keys.store import SimKey
from simulator.responses import Reply, json_reply

__all__ = ["BybitPrivateApi", "query_api_result"]

DEFAULT_RECV_WINDOW_MS = 5000
"""``X-BAPI-RECV-WINDOW`` when absent [BY-GUIDE]."""
AHEAD_MS = 1000
"""How far ahead of the server a timestamp may be, in ms [BY-GUIDE §Authentication]."""
POLICY_DAYS = 90
"""Days a key without IP binding stays valid [BY-SUBKEY]."""

_INTEGER = re.compile(r"^\d{1,20}$")
_MSG_INVALID_KEY = "API key is invalid."
_MSG_EXPIRED = "Your api key has expired"
_MSG_IP = "Unmatched IP, please check your API key's bound IP addresses."
_MSG_PERMISSION = "Permission denied, please check your API key permissions."
_EPOCH = "1970-01-01T00:00:00Z"
_DAY = 86400.0


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _envelope(
    server_ms: int, code: int, msg: str, result: dict[str, Any], status: int = 200
) -> Reply:
    return json_reply(
        status,
        {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": server_ms},
    )


def query_api_result(key: SimKey, now: float) -> dict[str, Any]:
    """The query-api ``result`` for ``key`` at Unix time ``now`` (see the module docstring)
    [BY-APIKEY]."""
    trade = "trade" in key.permissions
    withdraw = "withdraw" in key.permissions
    ips = [str(n) if n.num_addresses > 1 else str(n.network_address) for n in key.ips]
    expires = key.expires_at
    if expires is None and not ips:
        expires = key.created_at + POLICY_DAYS * _DAY
    return {
        "id": str(zlib.crc32(key.key.encode())),
        "note": "",
        "apiKey": key.key,
        "readOnly": 0 if trade or withdraw else 1,
        "secret": "",
        "permissions": {
            "ContractTrade": ["Order", "Position"] if trade else [],
            "Spot": ["SpotTrade"] if trade else [],
            "Wallet": ["Withdraw"] if withdraw else [],
            "Options": [],
            "Derivatives": ["DerivativesTrade"] if trade else [],
            "Exchange": [],
            "Earn": [],
            "BlockTrade": [],
            "Affiliate": [],
        },
        "ips": ips or ["*"],
        "type": 1,
        "deadlineDay": -2 if expires is None else max(int((expires - now) // _DAY), 0),
        "expiredAt": _EPOCH if expires is None else _iso(expires),
        "createdAt": _iso(key.created_at),
        "uta": 1,
        "userID": 1000000 + zlib.crc32(key.key.encode()) % 1000000,
        "vipLevel": "No VIP",
        "rsaPublicKey": "",
        "isMaster": True,
        "parentUid": "0",
    }


class BybitPrivateApi(PrivateApi):
    """Bybit's signed key-info endpoint (see the module docstring)."""

    exchange: ClassVar[str] = "bybit"
    routes: ClassVar[dict[tuple[str, str], int]] = {("GET", "/v5/user/query-api"): 1}

    def handle(self, request: PrivateRequest, server_ms: int, now: float) -> Reply:
        """Verify ``request`` as Bybit does and answer (see the module docstring)."""
        headers = request.headers
        api_key = headers.get("x-bapi-api-key")
        if not api_key:
            return _envelope(server_ms, 10003, _MSG_INVALID_KEY, {}, 401)
        key = request.keys.get(self.exchange, api_key)
        if key is None or key.revoked:
            return _envelope(server_ms, 10003, _MSG_INVALID_KEY, {})
        timestamp = headers.get("x-bapi-timestamp", "")
        window = headers.get("x-bapi-recv-window")
        origin = f"{timestamp}{api_key}{'' if window is None else window}{request.raw_query}"
        expected = hmac.new(key.secret_bytes, origin.encode(), hashlib.sha256).hexdigest()
        received = headers.get("x-bapi-sign", "").encode("utf-8", "replace")
        if not hmac.compare_digest(expected.encode(), received):
            return _envelope(server_ms, 10004, f"error sign! origin_string[{origin}]", {})
        window_ms = DEFAULT_RECV_WINDOW_MS if window is None else window
        if not (
            _INTEGER.match(timestamp)
            and _INTEGER.match(str(window_ms))
            and server_ms - int(window_ms) <= int(timestamp) < server_ms + AHEAD_MS
        ):
            msg = (
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{timestamp}],server_timestamp[{server_ms}],"
                f"recv_window[{window_ms}]"
            )
            return _envelope(server_ms, 10002, msg, {})
        fault = request.fault_for(key.key)
        if fault == "key_revoked":
            return _envelope(server_ms, 10003, _MSG_INVALID_KEY, {})
        if fault == "key_expired" or key.expired(now):
            return _envelope(server_ms, 33004, _MSG_EXPIRED, {})
        if fault == "ip_not_allowed" or not key.ip_allowed(request.client_ip):
            return _envelope(server_ms, 10010, _MSG_IP, {})
        if not key.permissions:
            return _envelope(server_ms, 10005, _MSG_PERMISSION, {})
        return _envelope(server_ms, 0, "", query_api_result(key, now))
