"""Kraken spot key check: ``POST /0/private/GetApiKeyInfo`` ("API Key Permissions Required:
None" [KR-KEYINFO]) signed with the key and its base64 private key.

Signing [KR-AUTH]: form-encoded body ``nonce=<n>`` (``Content-Type:
application/x-www-form-urlencoded``), headers ``API-Key`` and ``API-Sign`` =
base64(HMAC-SHA512(key = base64-decode(secret), msg = URI path bytes + SHA256(nonce + POST
data) raw digest)). The nonce must exceed the last one accepted for the key [KR-ERRORS]: it is
the local time in milliseconds, kept strictly increasing per :class:`KrakenKeyApi` instance
(``max(now_ms, last + 1)``); no clock window applies.

Limit [KR-RL]: a per-key counter, +1 per private call, at most 15 and decaying 0.33/s on the
Starter tier. Counted conservatively as the sustained decay rate (1 call per 3.1 s), so key
checks alone never build the counter up.

What the answer tells [KR-KEYINFO]: ``permissions`` strings (``query-*`` → read;
``modify``/``create``/``cancel``/``close`` of trades or orders → trade; ``withdraw-funds`` →
withdraw; the full list is UNVERIFIED, unknown strings are ignored), ``ipAllowlist`` (``[]`` =
not bound), ``validUntil`` (epoch seconds as a string, ``"0"`` = no expiry), ``createdTime``.

Classification (errors are strings in ``error[]`` on HTTP 200 [KR-REST-INTRO, KR-ERRORS,
KR-SUPPORT-ERR, CCXT-KR]):

=============================== ========================================================
answer                          result
=============================== ========================================================
``error: []`` with ``result``   ``ok``
``EAPI:Invalid key``            ``invalid_key``; ``expired`` when the previous answer's
                                ``validUntil`` has passed (Kraken's answer for an
                                expired key is UNVERIFIED; the simulator uses this one)
``EAPI:Invalid signature``      ``invalid_signature``
``EAPI:Invalid nonce``          ``timestamp`` (a nonce that went backwards)
``EGeneral:Permission denied``  ``ip_not_allowed`` when the previous answer listed a
                                non-empty ``ipAllowlist`` (GetApiKeyInfo needs no
                                permission; Kraken's IP answer is UNVERIFIED), else
                                ``permission_denied``
``EAPI:Rate limit exceeded``,   ``rate_limited`` (per key: ``ip_wide`` False;
``EGeneral:Too many requests``, ``retry_after`` from ``Retry-After`` when sent)
``EGeneral:Temporary lockout``,
HTTP 429
HTTP 5xx, other non-200 (not    ``other``
from Kraken [KR-REST-INTRO]),
unreadable body, other errors
=============================== ========================================================

Simulator key faults → result (asserted by the integration matrix):

=================== ============================== ==========================================
fault               Kraken answer (UNVERIFIED)     result
=================== ============================== ==========================================
``key_revoked``     ``EAPI:Invalid key``           ``invalid_key``
``key_expired``     ``EAPI:Invalid key``           ``invalid_key``; ``expired`` when the
                                                   previous answer's ``validUntil`` has
                                                   passed (key created with ``expires_at``)
``ip_not_allowed``  ``EGeneral:Permission denied`` ``ip_not_allowed`` when the previous
                                                   answer had a non-empty ``ipAllowlist``
                                                   (key created with ``ips``), else
                                                   ``permission_denied``
=================== ============================== ==========================================
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from exporter.keys.exchanges.base import (
    KEY_ENDPOINT,
    KeyApi,
    cap,
    expiry_passed,
    parse_json,
    retry_after,
)
from exporter.keys.model import (
    Credentials,
    KeyFacts,
    KeyResult,
    KeyVerdict,
    Permission,
    SignedRequest,
)
from exporter.profiles.base import LimitRule

__all__ = [
    "KrakenKeyApi",
    "kraken_classify",
    "kraken_facts",
    "kraken_permissions",
    "kraken_signature",
]

KEY_INFO_PATH = "/0/private/GetApiKeyInfo"

_ERRORS: dict[str, KeyResult] = {
    "EAPI:Invalid key": KeyResult.INVALID_KEY,
    "EAPI:Invalid signature": KeyResult.INVALID_SIGNATURE,
    "EAPI:Invalid nonce": KeyResult.TIMESTAMP,
    "EGeneral:Permission denied": KeyResult.PERMISSION_DENIED,
    "EAPI:Rate limit exceeded": KeyResult.RATE_LIMITED,
    "EGeneral:Too many requests": KeyResult.RATE_LIMITED,
    "EGeneral:Temporary lockout": KeyResult.RATE_LIMITED,
}
"""Documented Kraken error strings → result [KR-ERRORS, KR-SUPPORT-ERR, CCXT-KR]."""

_TRADE_VERBS = ("modify-", "create-", "cancel-", "close-")


def kraken_signature(secret_b64: str, path: str, nonce: str | int, body: str) -> str:
    """``API-Sign``: base64(HMAC-SHA512(base64-decode(``secret_b64``), ``path`` bytes +
    SHA256(``nonce`` + ``body``) raw digest)) [KR-AUTH].

    Args:
        secret_b64: the key's private key as Kraken shows it (base64 text).
        path: the URI path, starting at ``/0/private/``.
        nonce: the nonce exactly as in the body.
        body: the POST data exactly as sent (form-encoded or JSON text).

    Raises:
        ValueError: ``secret_b64`` is not base64 (the message never shows it).

    Example [KR-AUTH]: the documented AddOrder inputs give
    ``4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==``.
    """
    try:
        key = base64.b64decode(secret_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the Kraken private key is not base64") from None
    inner = hashlib.sha256((str(nonce) + body).encode()).digest()
    mac = hmac.new(key, path.encode() + inner, hashlib.sha512).digest()
    return base64.b64encode(mac).decode("ascii")


def kraken_permissions(strings: Sequence[str]) -> dict[Permission, bool]:
    """Kraken permission strings → read/trade/withdraw, each True when some string grants it
    [KR-KEYINFO]: ``query-*`` → read; ``modify-``/``create-``/``cancel-``/``close-`` of
    ``trades``/``orders`` → trade; ``withdraw-funds`` → withdraw. The list names every
    permission of the key, so absent ones are False."""
    read = trade = withdraw = False
    for item in strings:
        if item.startswith("query-"):
            read = True
        elif item.startswith(_TRADE_VERBS) and ("trade" in item or "order" in item):
            trade = True
        elif item == "withdraw-funds":
            withdraw = True
    return {Permission.READ: read, Permission.TRADE: trade, Permission.WITHDRAW: withdraw}


def _seconds(value: Any) -> float | None:
    """Epoch seconds from Kraken's string (or number); None for ``"0"``, missing or bad."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def kraken_facts(result: Mapping[str, Any]) -> KeyFacts:
    """What a GetApiKeyInfo ``result`` says about the key [KR-KEYINFO]: permissions (see
    :func:`kraken_permissions`), ``ipAllowlist`` (``[]`` = not bound), ``validUntil`` (``"0"``
    = no expiry, else ``expires_at`` with source ``exchange``), ``createdTime``."""
    perms = result.get("permissions")
    permissions = (
        kraken_permissions([p for p in perms if isinstance(p, str)])
        if isinstance(perms, list)
        else {}
    )
    allow = result.get("ipAllowlist")
    ips: tuple[str, ...] = ()
    restricted: bool | None = None
    if isinstance(allow, list):
        ips = tuple(str(a) for a in allow if str(a))
        restricted = bool(ips)
    expires = _seconds(result.get("validUntil"))
    if expires is not None:
        note = "The key stops working at its validUntil time, set on the key at Kraken."
    else:
        note = "Kraken reports no expiry for this key (validUntil is 0)."
    return KeyFacts(
        permissions=permissions,
        ip_restricted=restricted,
        ips=ips,
        expires_at=expires,
        expiry_source="exchange" if expires is not None else None,
        expiry_note=note,
        created_at=_seconds(result.get("createdTime")),
    )


def kraken_classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    previous: KeyFacts | None,
    now: float,
) -> KeyVerdict:
    """Classify one GetApiKeyInfo answer (see the module docstring's table). Never raises.

    ``previous`` disambiguates the UNVERIFIED answers: ``EGeneral:Permission denied`` after an
    answer with a non-empty IP allow-list → ``ip_not_allowed``; ``EAPI:Invalid key`` once the
    previous ``validUntil`` has passed at ``now`` → ``expired``.
    """
    wait = retry_after(headers)
    if status == 429:
        return KeyVerdict(KeyResult.RATE_LIMITED, None, "HTTP 429", retry_after=wait)
    if status != 200:
        return KeyVerdict(KeyResult.OTHER, None, f"HTTP {status} (not from Kraken)")
    doc = parse_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("error", []), list):
        return KeyVerdict(KeyResult.OTHER, None, "unreadable body")
    errors = [str(e) for e in doc.get("error", [])]
    if not errors:
        result = doc.get("result")
        if isinstance(result, dict):
            return KeyVerdict(KeyResult.OK, facts=kraken_facts(result))
        return KeyVerdict(KeyResult.OTHER, None, "no error and no result")
    first = errors[0]
    code = cap(first)
    message = cap("; ".join(errors))
    verdict = _ERRORS.get(first)
    if verdict is None:
        # "EGeneral:Permission denied: ..." style suffixes keep the documented prefix.
        verdict = next(
            (r for text, r in _ERRORS.items() if first.startswith(text + ":")), KeyResult.OTHER
        )
    if verdict is KeyResult.PERMISSION_DENIED and _was_ip_bound(previous):
        verdict = KeyResult.IP_NOT_ALLOWED
    elif verdict is KeyResult.INVALID_KEY and expiry_passed(previous, now):
        verdict = KeyResult.EXPIRED
    if verdict is KeyResult.RATE_LIMITED:
        return KeyVerdict(verdict, code, message, retry_after=wait)
    return KeyVerdict(verdict, code, message)


def _was_ip_bound(previous: KeyFacts | None) -> bool:
    return previous is not None and (bool(previous.ips) or previous.ip_restricted is True)


class KrakenKeyApi(KeyApi):
    """Kraken ``POST /0/private/GetApiKeyInfo`` (see the module docstring for the facts, the
    classification and the fault → result table). Keeps the last nonce it signed with."""

    api: ClassVar[str] = "kraken"
    method: ClassVar[str] = "POST"
    path: ClassVar[str] = KEY_INFO_PATH
    limits: ClassVar[tuple[LimitRule, ...]] = (
        LimitRule(
            "private call counter per key (Starter: +1 per call, max 15, decays 0.33/s)",
            3.1,
            1,
            frozenset({KEY_ENDPOINT}),
            "[KR-RL]",
        ),
    )

    def __init__(self) -> None:
        """A key API with no nonce used yet."""
        self._last_nonce = 0
        self._lock = threading.Lock()

    def next_nonce(self, now: float) -> int:
        """The next nonce: ``now`` in milliseconds, or one more than the last nonce when the
        clock has not moved on (strictly increasing per instance) [KR-AUTH, KR-ERRORS]."""
        with self._lock:
            nonce = max(int(now * 1000), self._last_nonce + 1)
            self._last_nonce = nonce
            return nonce

    @classmethod
    def check_credentials(cls, credentials: Credentials) -> None:
        """Kraken signs with the base64-decoded private key [KR-AUTH].

        Raises:
            ValueError: ``secret_env``/``secret_file`` missing, empty or not base64 (never
                the value).
        """
        if credentials.secret is None or not credentials.secret.get_secret_value():
            raise ValueError("secret_env or secret_file: required for Kraken keys")
        try:
            base64.b64decode(credentials.secret.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "secret_env or secret_file: the Kraken private key must be base64 text"
            ) from None

    def sign(
        self,
        credentials: Credentials,
        base_url: str,
        now: float,
        recv_window_ms: int | None = None,
    ) -> SignedRequest:
        """The signed ``POST {base_url}/0/private/GetApiKeyInfo`` with body ``nonce=<n>``
        [KR-AUTH]; ``recv_window_ms`` does not apply to Kraken and is ignored.

        Raises:
            ValueError: the secret is missing or not base64 (see :meth:`check_credentials`).
        """
        self.check_credentials(credentials)
        assert credentials.secret is not None
        nonce = self.next_nonce(now)
        body = f"nonce={nonce}"
        signature = kraken_signature(credentials.secret.get_secret_value(), self.path, nonce, body)
        headers = {
            "API-Key": credentials.key.get_secret_value(),
            "API-Sign": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        return SignedRequest(
            self.method, f"{base_url.rstrip('/')}{self.path}", headers, body.encode()
        )

    def classify(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        previous: KeyFacts | None,
        now: float,
    ) -> KeyVerdict:
        """See :func:`kraken_classify`."""
        return kraken_classify(status, headers, body, previous, now)
