"""Binance spot: the signed ``GET /sapi/v1/account/apiRestrictions`` key check.

Signing [BN-REST §Request Security, §SIGNED Endpoint security, §Timing security]: header
``X-MBX-APIKEY: <apiKey>``; parameters ``timestamp`` (ms) and ``recvWindow`` (ms, default 5000,
max 60000); ``signature`` = HMAC-SHA256 (key: the secret's bytes as given) of the query string
exactly as sent, lowercase hex, appended last. The probe's payload is
``timestamp=<ms>&recvWindow=<ms>``; the exchange hashes the received bytes, so the order signed
is the order sent. Only HMAC keys are supported (RSA/Ed25519 keys are refused by
:meth:`BinanceKeyApi.check_credentials`).

Cost: request weight 1 against the IP-wide ``REQUEST_WEIGHT`` limit [BN-APIKEY]; no per-key
limit is documented.

Answers [BN-ERR, BN-REST §HTTP Return Codes, BN-APIKEY]; the body is ``{"code", "msg"}``:

=====================================  =================================================
answer                                 result
=====================================  =================================================
200 apiRestrictions body               ``ok`` (facts below)
-2014 "API-key format invalid."        ``invalid_key``
-2015 "Invalid API-key, IP, or         ``expired`` when ``previous`` carries an expiry the
permissions for action."               exchange gave (``tradingAuthorityExpirationTime``)
                                       that has passed; else ``ip_not_allowed`` when
                                       ``previous.ip_restricted``; else ``invalid_key``
-2008 "Invalid Api-Key ID" (ccxt)      ``invalid_key``
-1022 bad signature (HTTP 400)         ``invalid_signature``
-1021 outside recvWindow / ahead       ``timestamp``
-1002 not authorized                   ``permission_denied``
-1131 recvWindow too large             ``other`` (a request-parameter error, not a clock one)
HTTP 429 (-1003)                       ``rate_limited``, ``ip_wide`` (limits are per IP),
                                       ``retry_after`` from ``Retry-After``
HTTP 418 (IP ban)                      ``rate_limited``, ``ip_wide``, ``banned``
HTTP 403 (WAF block), 5xx, other       ``other``
=====================================  =================================================

``-2015`` is one code for an unknown key, an IP not allowed and a missing permission
[BN-ERR]; the key's last accepted answer (``previous``) tells them apart as far as it can: a key
that was IP-restricted most likely lost our IP from its list; any other key was deleted or
never existed. (Every Binance key can read, and the key-info call needs nothing more, so a
missing permission is not a likely cause.)

Simulator faults and their results (asserted by the integration matrix):

=================  ==========================================================
fault              result
=================  ==========================================================
``key_revoked``    ``invalid_key``
``key_expired``    ``invalid_key`` (Binance has no expired-key code; ``expired``
                   only when the last answer's exchange expiry has passed)
``ip_not_allowed`` ``ip_not_allowed`` when the key was IP-bound before (previous
                   facts: created with ``ips``); ``invalid_key`` otherwise
=================  ==========================================================

Facts of an accepted answer [BN-APIKEY]: ``read`` ← ``enableReading``; ``trade`` ← any of
``enableSpotAndMarginTrading``, ``enableFutures``, ``enableVanillaOptions``,
``enablePortfolioMarginTrading``, ``enableFixApiTrade``; ``withdraw`` ← ``enableWithdrawals``;
``transfer`` ← ``enableInternalTransfer`` or ``permitsUniversalTransfer`` (each only when the
answer carries one of its fields; ``enableMargin``, margin loan/repay, is not mapped).
``ip_restricted`` ← ``ipRestrict`` (Binance never lists the IPs). Expiry: the spot and margin
trading permission's ``tradingAuthorityExpirationTime`` (ms, optional [BN-RAPI, OBS-BN-TAE]) →
source ``exchange``; else, for a key without IP restriction with spot trading enabled,
``createTime`` + 30 days → source ``policy`` [BN-ANN-2021] (keys created before the rule took
effect, 2021-07-09, are exempt until their permissions are edited, so none is set for them).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from exporter.keys.exchanges.base import KeyApi, cap, expiry_passed, parse_json, retry_after
from exporter.keys.model import (
    Credentials,
    ExpirySource,
    KeyFacts,
    KeyResult,
    KeyVerdict,
    Permission,
    SignedRequest,
)

__all__ = [
    "DEFAULT_RECV_WINDOW_MS",
    "MAX_RECV_WINDOW_MS",
    "POLICY_RULE_START",
    "POLICY_TRADING_DAYS",
    "BinanceKeyApi",
    "binance_query",
    "binance_signature",
    "facts_from_restrictions",
]

DEFAULT_RECV_WINDOW_MS = 5000
"""Binance's default ``recvWindow`` in ms [BN-REST §Timing security]."""
MAX_RECV_WINDOW_MS = 60000
"""The largest ``recvWindow`` Binance accepts, in ms [BN-REST §Timing security]."""
POLICY_TRADING_DAYS = 30
"""Days "Enable Spot & Margin Trading" stays on for a key without whitelisted IPs
[BN-ANN-2021]."""
POLICY_RULE_START = datetime(2021, 7, 9, tzinfo=UTC).timestamp()
"""Unix seconds from which new keys fall under the 30-day rule [BN-ANN-2021]."""

_DAY = 86400.0
_TRADE_FIELDS = (
    "enableSpotAndMarginTrading",
    "enableFutures",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
    "enableFixApiTrade",
)
_TRANSFER_FIELDS = ("enableInternalTransfer", "permitsUniversalTransfer")
_INVALID_KEY_CODES = frozenset({-2014, -2008})


def binance_signature(secret: str, payload: str) -> str:
    """The HMAC-SHA256 signature of ``payload`` (query string + body, exactly as sent) with
    ``secret`` (its UTF-8 bytes as given), lowercase hex (64 characters)
    [BN-REST §SIGNED Endpoint security]."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def binance_query(timestamp_ms: int, recv_window_ms: int) -> str:
    """The probe's signed payload ``timestamp=<ms>&recvWindow=<ms>`` (the order sent)."""
    return f"timestamp={timestamp_ms}&recvWindow={recv_window_ms}"


class BinanceKeyApi(KeyApi):
    """``GET /sapi/v1/account/apiRestrictions`` with an HMAC key (see the module docstring)."""

    api: ClassVar[str] = "binance"
    path: ClassVar[str] = "/sapi/v1/account/apiRestrictions"
    weight: ClassVar[float] = 1.0  # Request Weight (IP) 1 [BN-APIKEY]
    default_recv_window_ms: ClassVar[int | None] = DEFAULT_RECV_WINDOW_MS
    max_recv_window_ms: ClassVar[int | None] = MAX_RECV_WINDOW_MS

    @classmethod
    def check_credentials(cls, credentials: Credentials) -> None:
        """Require a secret that is an HMAC secret (not a PEM RSA/Ed25519 private key).

        Raises:
            ValueError: ``secret_env``/``secret_file`` missing or a PEM private key.
        """
        if credentials.secret is None:
            raise ValueError("secret_env or secret_file: required for Binance keys")
        if "PRIVATE KEY" in credentials.secret.get_secret_value():
            raise ValueError(
                "secret_env or secret_file: RSA/Ed25519 Binance keys are not supported; "
                "use an HMAC key"
            )

    def sign(
        self,
        credentials: Credentials,
        base_url: str,
        now: float,
        recv_window_ms: int | None = None,
    ) -> SignedRequest:
        """``GET <base_url>/sapi/v1/account/apiRestrictions?timestamp=<ms>&recvWindow=<ms>
        &signature=<hex>`` with ``X-MBX-APIKEY`` [BN-REST]. ``timestamp`` is ``now`` in whole
        ms; ``recvWindow`` is ``recv_window_ms`` or 5000 (not capped here: config validation
        refuses more than 60000).

        Raises:
            ValueError: the credentials carry no secret.
        """
        if credentials.secret is None:
            raise ValueError("secret_env or secret_file: required for Binance keys")
        window = DEFAULT_RECV_WINDOW_MS if recv_window_ms is None else recv_window_ms
        payload = binance_query(int(now * 1000), window)
        signature = binance_signature(credentials.secret.get_secret_value(), payload)
        url = f"{base_url.rstrip('/')}{self.path}?{payload}&signature={signature}"
        return SignedRequest(
            method=self.method,
            url=url,
            headers={"X-MBX-APIKEY": credentials.key.get_secret_value()},
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
        data = parse_json(body)
        code = _code(data)
        message = cap(data.get("msg", "")) if isinstance(data, dict) else ""
        error_code = None if code is None else str(code)
        if status in (418, 429):
            return KeyVerdict(
                KeyResult.RATE_LIMITED,
                error_code,
                message,
                retry_after=retry_after(headers),
                ip_wide=True,
                banned=status == 418,
            )
        if status >= 500 or status == 403:
            return KeyVerdict(KeyResult.OTHER, error_code, message or f"HTTP {status}")
        if status == 200 and code is None and isinstance(data, dict):
            facts = facts_from_restrictions(data)
            if facts is not None:
                return KeyVerdict(KeyResult.OK, facts=facts)
            return KeyVerdict(KeyResult.OTHER, message="unreadable apiRestrictions answer")
        if code is None:
            return KeyVerdict(KeyResult.OTHER, message=f"HTTP {status} without a Binance code")
        result = _code_result(code, previous, now)
        if result is KeyResult.RATE_LIMITED:  # -1003 under another status: still per IP
            return KeyVerdict(
                result, error_code, message, retry_after=retry_after(headers), ip_wide=True
            )
        return KeyVerdict(result, error_code, message)


def _code_result(code: int, previous: KeyFacts | None, now: float) -> KeyResult:
    if code == -2015:
        # The 30-day policy expiry switches trading off, not the key: only a told one counts.
        told = previous is not None and previous.expiry_source == "exchange"
        if told and expiry_passed(previous, now):
            return KeyResult.EXPIRED
        if previous is not None and previous.ip_restricted:
            return KeyResult.IP_NOT_ALLOWED
        return KeyResult.INVALID_KEY
    if code in _INVALID_KEY_CODES:
        return KeyResult.INVALID_KEY
    if code == -1022:
        return KeyResult.INVALID_SIGNATURE
    if code == -1021:
        return KeyResult.TIMESTAMP
    if code == -1002:
        return KeyResult.PERMISSION_DENIED
    if code == -1003:
        return KeyResult.RATE_LIMITED
    return KeyResult.OTHER


def facts_from_restrictions(data: Mapping[str, Any]) -> KeyFacts | None:
    """The :class:`KeyFacts` of an apiRestrictions body (shape in the module docstring), or
    None when it carries neither ``enableReading`` nor ``ipRestrict`` (not that answer)."""
    if not isinstance(data.get("enableReading"), bool) and not isinstance(
        data.get("ipRestrict"), bool
    ):
        return None
    permissions: dict[Permission, bool] = {}
    if isinstance(data.get("enableReading"), bool):
        permissions[Permission.READ] = data["enableReading"]
    for permission, names in (
        (Permission.TRADE, _TRADE_FIELDS),
        (Permission.WITHDRAW, ("enableWithdrawals",)),
        (Permission.TRANSFER, _TRANSFER_FIELDS),
    ):
        present = [data[n] for n in names if isinstance(data.get(n), bool)]
        if present:
            permissions[permission] = any(present)
    ip_restrict = data.get("ipRestrict")
    ip_restricted = ip_restrict if isinstance(ip_restrict, bool) else None
    created = _ms(data.get("createTime"))
    expires_at, source, note = _expiry(data, ip_restricted, created)
    return KeyFacts(
        permissions=permissions,
        ip_restricted=ip_restricted,
        ips=(),
        expires_at=expires_at,
        expiry_source=source,
        expiry_note=note,
        created_at=created,
    )


def _expiry(
    data: Mapping[str, Any], ip_restricted: bool | None, created: float | None
) -> tuple[float | None, ExpirySource | None, str]:
    told = _ms(data.get("tradingAuthorityExpirationTime"))
    if told is not None:
        return (
            told,
            "exchange",
            "The key's spot and margin trading permission expires at "
            "tradingAuthorityExpirationTime, as Binance reports it.",
        )
    if (
        ip_restricted is False
        and data.get("enableSpotAndMarginTrading") is True
        and created is not None
        and created >= POLICY_RULE_START
    ):
        return (
            created + POLICY_TRADING_DAYS * _DAY,
            "policy",
            "Binance switches spot and margin trading off 30 days after creation on keys "
            "without an IP restriction (2021-07-08 key permission rules).",
        )
    return None, None, ""


def _ms(value: Any) -> float | None:
    """Unix seconds of a positive ms number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value) / 1000.0


def _code(data: Any) -> int | None:
    if not isinstance(data, dict):
        return None
    code = data.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        return None
    return code
