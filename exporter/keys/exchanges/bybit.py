"""Bybit v5: the signed ``GET /v5/user/query-api`` key check.

Signing [BY-GUIDE §Authentication]: headers ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP`` (UTC ms),
``X-BAPI-RECV-WINDOW`` (ms, default 5000) and ``X-BAPI-SIGN`` = HMAC-SHA256 (key: the secret
string) of ``timestamp + apiKey + recvWindow + queryString``, lowercase hex. The probe has no
query string. Only HMAC keys are supported (RSA keys are refused by
:meth:`BybitKeyApi.check_credentials`). Bybit documents no largest ``recv_window``
(UNVERIFIED); :attr:`BybitKeyApi.max_recv_window_ms` caps it at 60 s, Binance's documented
maximum, so a monitoring check never asks for a wider window than that.

Cost: 10 requests per second per UID for this endpoint [BY-APIKEY, BY-RL] (a
:class:`~exporter.profiles.base.LimitRule` on ``api_key``), and 1 request against the profile's
600 requests per 5 s per IP [BY-RL].

Answers [BY-ERR, BY-RL, OBS-BY, PYBIT]: the envelope ``{"retCode", "retMsg", "result",
"retExtInfo", "time"}``, HTTP 200 for the auth codes (observed):

==========================================  ============================================
answer                                      result
==========================================  ============================================
retCode 0 with ``result``                   ``ok`` (facts below)
10003 API key is invalid                    ``invalid_key``; ``expired`` when ``previous``
                                            carries an expiry that has passed
10007 User authentication failed            ``invalid_key``
10004 Error sign / ``error sign!``          ``invalid_signature``
10002 request time outside the window       ``timestamp``
10010 Unmatched IP                          ``ip_not_allowed``
33004, -2015 Your api key has expired       ``expired``
10005 Permission denied                     ``permission_denied``
10006 Too many visits (UID limit)           ``rate_limited`` (not IP-wide), ``retry_after``
                                            from ``Retry-After`` or
                                            ``X-Bapi-Limit-Reset-Timestamp``
10018 Exceeded the IP Rate Limit            ``rate_limited``, ``ip_wide``
HTTP 403 ``access too frequent`` (IP)       ``rate_limited``, ``ip_wide``, ``banned`` (the
                                            profile's ban answer too), ``retry_after``
                                            from ``Retry-After`` else 600 s ("wait ≥ 10
                                            min" [BY-RL])
HTTP 401 without a retCode                  ``invalid_key`` (auth params missing or wrong
                                            [BY-ERR, BY-PILOT])
HTTP 429 without a retCode                  ``rate_limited``
10009 region restricted, 5xx, other         ``other``
==========================================  ============================================

Simulator faults and their results (asserted by the integration matrix):

=================  ==========================
fault              result
=================  ==========================
``key_revoked``    ``invalid_key`` (10003)
``key_expired``    ``expired`` (33004)
``ip_not_allowed`` ``ip_not_allowed`` (10010)
=================  ==========================

Facts of an accepted answer [BY-APIKEY, BY-SUBKEY, BY-SUBLIST]: ``read`` is always granted (any
key may call query-api); ``trade`` ← ``readOnly`` 0 and a non-empty ``ContractTrade``, ``Spot``,
``Options`` or ``Derivatives`` group; ``transfer`` ← ``readOnly`` 0 and ``AccountTransfer`` or
``SubMemberTransfer`` in ``Wallet``; ``withdraw`` ← ``Withdraw`` in ``Wallet`` (whatever
``readOnly`` says: a listed withdraw right is reported). ``ips`` ``["*"]`` (or empty) means not
bound. Expiry: ``expiredAt`` when not 1970-01-01 → source ``exchange``; else, for a key without
IP binding, ``createdAt`` + 90 days → source ``policy`` [BY-SUBKEY].
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from exporter.keys.exchanges.base import KEY_ENDPOINT, KeyApi, cap, expiry_passed, parse_json
from exporter.keys.model import (
    Credentials,
    ExpirySource,
    KeyFacts,
    KeyResult,
    KeyVerdict,
    Permission,
    SignedRequest,
)
from exporter.profiles.base import LimitRule, parse_retry_after

__all__ = [
    "DEFAULT_RECV_WINDOW_MS",
    "POLICY_DAYS",
    "BybitKeyApi",
    "bybit_sign_string",
    "bybit_signature",
    "facts_from_query_api",
]

DEFAULT_RECV_WINDOW_MS = 5000
"""Bybit's default ``X-BAPI-RECV-WINDOW`` in ms [BY-GUIDE]."""
POLICY_DAYS = 90
"""Days after which a key without IP binding is invalid [BY-SUBKEY]."""
IP_BAN_SECONDS = 600.0
"""Wait after an HTTP 403 IP-limit answer when no header says: "at least 10 minutes" [BY-RL]."""

_DAY = 86400.0
_TRADE_GROUPS = ("ContractTrade", "Spot", "Options", "Derivatives")
_TRANSFER_RIGHTS = ("AccountTransfer", "SubMemberTransfer")
_RESULTS: dict[int, KeyResult] = {
    10003: KeyResult.INVALID_KEY,
    10007: KeyResult.INVALID_KEY,
    10004: KeyResult.INVALID_SIGNATURE,
    10002: KeyResult.TIMESTAMP,
    10010: KeyResult.IP_NOT_ALLOWED,
    33004: KeyResult.EXPIRED,
    -2015: KeyResult.EXPIRED,
    10005: KeyResult.PERMISSION_DENIED,
    10006: KeyResult.RATE_LIMITED,
    10018: KeyResult.RATE_LIMITED,
}


def bybit_sign_string(timestamp_ms: int, api_key: str, recv_window_ms: int, query: str) -> str:
    """The GET string to sign: ``timestamp + apiKey + recvWindow + queryString``
    [BY-GUIDE §Authentication]."""
    return f"{timestamp_ms}{api_key}{recv_window_ms}{query}"


def bybit_signature(
    secret: str, timestamp_ms: int, api_key: str, recv_window_ms: int, query: str = ""
) -> str:
    """``X-BAPI-SIGN`` of a GET request: HMAC-SHA256 with ``secret`` of
    :func:`bybit_sign_string`, lowercase hex (64 characters) [BY-GUIDE §Authentication]."""
    payload = bybit_sign_string(timestamp_ms, api_key, recv_window_ms, query)
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class BybitKeyApi(KeyApi):
    """``GET /v5/user/query-api`` with an HMAC key (see the module docstring)."""

    api: ClassVar[str] = "bybit"
    path: ClassVar[str] = "/v5/user/query-api"
    limits: ClassVar[tuple[LimitRule, ...]] = (
        LimitRule("query-api per UID", 1.0, 10, frozenset({KEY_ENDPOINT}), "[BY-APIKEY, BY-RL]"),
    )
    default_recv_window_ms: ClassVar[int | None] = DEFAULT_RECV_WINDOW_MS
    max_recv_window_ms: ClassVar[int | None] = 60000  # no documented maximum (UNVERIFIED)

    @classmethod
    def check_credentials(cls, credentials: Credentials) -> None:
        """Require an HMAC secret (not a PEM RSA private key).

        Raises:
            ValueError: ``secret_env``/``secret_file`` missing or a PEM private key.
        """
        if credentials.secret is None:
            raise ValueError("secret_env or secret_file: required for Bybit keys")
        if "PRIVATE KEY" in credentials.secret.get_secret_value():
            raise ValueError(
                "secret_env or secret_file: RSA Bybit keys are not supported; use an HMAC key"
            )

    def sign(
        self,
        credentials: Credentials,
        base_url: str,
        now: float,
        recv_window_ms: int | None = None,
    ) -> SignedRequest:
        """``GET <base_url>/v5/user/query-api`` with the four ``X-BAPI-*`` headers
        [BY-GUIDE]; the timestamp is ``now`` in whole ms, the window ``recv_window_ms`` or 5000.

        Raises:
            ValueError: the credentials carry no secret.
        """
        if credentials.secret is None:
            raise ValueError("secret_env or secret_file: required for Bybit keys")
        window = DEFAULT_RECV_WINDOW_MS if recv_window_ms is None else recv_window_ms
        timestamp = int(now * 1000)
        api_key = credentials.key.get_secret_value()
        signature = bybit_signature(
            credentials.secret.get_secret_value(), timestamp, api_key, window, ""
        )
        return SignedRequest(
            method=self.method,
            url=f"{base_url.rstrip('/')}{self.path}",
            headers={
                "X-BAPI-API-KEY": api_key,
                "X-BAPI-TIMESTAMP": str(timestamp),
                "X-BAPI-SIGN": signature,
                "X-BAPI-RECV-WINDOW": str(window),
            },
        )

    def classify(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        previous: KeyFacts | None,
        now: float,
    ) -> KeyVerdict:
        """Classify one answer (table in the module docstring); never raises."""
        lowered = {k.lower(): v for k, v in headers.items()}
        if status == 403:
            wait = parse_retry_after(lowered)
            return KeyVerdict(
                KeyResult.RATE_LIMITED,
                message=cap(body.decode("utf-8", "replace")) or "HTTP 403",
                retry_after=IP_BAN_SECONDS if wait is None else wait,
                ip_wide=True,
                banned=True,
            )
        data = parse_json(body)
        code = _ret_code(data)
        message = cap(data.get("retMsg", "")) if isinstance(data, dict) else ""
        if status >= 500:
            return KeyVerdict(
                KeyResult.OTHER, None if code is None else str(code), message or f"HTTP {status}"
            )
        if code is None:
            if status == 401:
                return KeyVerdict(KeyResult.INVALID_KEY, message=f"HTTP {status}")
            if status == 429:
                return KeyVerdict(KeyResult.RATE_LIMITED, retry_after=_reset_wait(lowered, now))
            return KeyVerdict(KeyResult.OTHER, message=f"HTTP {status} without a Bybit retCode")
        if code == 0:
            result = data.get("result") if isinstance(data, dict) else None
            facts = facts_from_query_api(result) if isinstance(result, dict) else None
            if facts is None:
                return KeyVerdict(KeyResult.OTHER, "0", "unreadable query-api answer")
            return KeyVerdict(KeyResult.OK, facts=facts)
        result_kind = _RESULTS.get(code, KeyResult.OTHER)
        if result_kind is KeyResult.INVALID_KEY and expiry_passed(previous, now):
            result_kind = KeyResult.EXPIRED
        if result_kind is KeyResult.RATE_LIMITED:
            return KeyVerdict(
                result_kind,
                str(code),
                message,
                retry_after=_reset_wait(lowered, now),
                ip_wide=code == 10018,
            )
        return KeyVerdict(result_kind, str(code), message)


def facts_from_query_api(result: Mapping[str, Any]) -> KeyFacts | None:
    """The :class:`KeyFacts` of a query-api ``result`` object, or None when it carries no
    ``readOnly`` 0/1 (not that answer)."""
    read_only = result.get("readOnly")
    if isinstance(read_only, bool) or read_only not in (0, 1):
        return None
    groups = result.get("permissions")
    groups = groups if isinstance(groups, dict) else {}
    wallet = _rights(groups.get("Wallet"))
    writable = read_only == 0
    permissions = {
        Permission.READ: True,
        Permission.TRADE: writable and any(_rights(groups.get(g)) for g in _TRADE_GROUPS),
        Permission.WITHDRAW: "Withdraw" in wallet,
        Permission.TRANSFER: writable and any(r in wallet for r in _TRANSFER_RIGHTS),
    }
    raw_ips = result.get("ips")
    ips = tuple(
        str(ip) for ip in (raw_ips if isinstance(raw_ips, list) else []) if str(ip) not in ("*", "")
    )
    ip_restricted = bool(ips)
    created = _iso(result.get("createdAt"))
    expires_at, source, note = _expiry(result, ip_restricted, created)
    return KeyFacts(
        permissions=permissions,
        ip_restricted=ip_restricted,
        ips=ips,
        expires_at=expires_at,
        expiry_source=source,
        expiry_note=note,
        created_at=created,
    )


def _expiry(
    result: Mapping[str, Any], ip_restricted: bool, created: float | None
) -> tuple[float | None, ExpirySource | None, str]:
    told = _iso(result.get("expiredAt"))
    if told is not None and told > 0:
        return told, "exchange", "The key expires at expiredAt, as Bybit reports it."
    if not ip_restricted and created is not None:
        return (
            created + POLICY_DAYS * _DAY,
            "policy",
            "Bybit invalidates keys without IP binding 90 days after creation.",
        )
    return None, None, ""


def _rights(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _iso(value: Any) -> float | None:
    """Unix seconds of an ISO-8601 UTC time (``2025-10-13T03:20:45Z``), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _ret_code(data: Any) -> int | None:
    if not isinstance(data, dict):
        return None
    code = data.get("retCode")
    if isinstance(code, bool) or not isinstance(code, int):
        return None
    return code


def _reset_wait(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` seconds, else the wait until ``X-Bapi-Limit-Reset-Timestamp`` (ms)
    [BY-RL]; None when neither is given or readable."""
    explicit = parse_retry_after(headers)
    if explicit is not None:
        return explicit
    raw = headers.get("x-bapi-limit-reset-timestamp")
    if raw is None:
        return None
    try:
        reset_ms = float(raw)
    except ValueError:
        return None
    return max(reset_ms / 1000.0 - now, 0.0)
