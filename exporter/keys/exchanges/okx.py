"""OKX v5 key check: ``GET /api/v5/account/config`` signed with the key, secret and passphrase.

Signing [OKX-AUTH §REST Authentication]: headers ``OK-ACCESS-KEY``, ``OK-ACCESS-SIGN``,
``OK-ACCESS-TIMESTAMP`` (UTC ISO-8601 with milliseconds, ``2020-12-08T09:08:57.715Z``) and
``OK-ACCESS-PASSPHRASE`` (sent in clear); the signature is base64(HMAC-SHA256(secret text,
timestamp + "GET" + "/api/v5/account/config")) — GET parameters would belong to the request
path, an empty body is omitted. The call needs the Read permission and is limited to 5 requests
per 2 s per User ID [OKX-CONFIG].

What the answer tells [OKX-CONFIG]: ``perm`` (``read_only``, ``trade``, ``withdraw``,
comma-separated), ``ip`` (bound IPs, comma-separated, ``""`` when none). No creation time or
expiry of the calling key is exposed. OKX's only expiry rule — keys without IP binding that have
``trade`` or ``withdraw`` expire after 14 days of inactivity [OKX-AUTH §API key security] — never
bites a monitored key, because every check is an authenticated call and so counts as use.

Classification of the documented answers [OKX-ERR] (body ``{"code": "<str>", "msg": ...,
"data": []}``):

============================== =========================================================
answer                         result
============================== =========================================================
``0`` (HTTP 200) with data     ``ok``
50111, 50119, 50101, 50103     ``invalid_key`` (``expired`` when the previous answer's
                               expiry has passed — never for OKX, which tells none)
50100 (API frozen)             ``invalid_key`` (the key is unusable until OKX unfreezes it)
50113, 50105, 50104, 50106,    ``invalid_signature`` (wrong secret, wrong or empty
50114                          passphrase, empty signature, invalid authorization)
50102, 50112, 50107            ``timestamp`` (expired, malformed or empty timestamp)
50110                          ``ip_not_allowed``
50120, 50030                   ``permission_denied``
50011 (HTTP 200 or 429), any   ``rate_limited`` (per User ID, ``ip_wide`` False;
HTTP 429                       ``retry_after`` from ``Retry-After`` when sent)
HTTP 5xx, unreadable body,     ``other``
anything else
============================== =========================================================

Simulator key faults → result (asserted by the integration matrix):

=================== ================== ==============================================
fault               OKX answer         result
=================== ================== ==============================================
``key_revoked``     50119 (HTTP 200)   ``invalid_key``
``key_expired``     50119 (HTTP 200)   ``invalid_key`` (OKX tells no expiry, so the
                                       previous facts never make it ``expired``)
``ip_not_allowed``  50110 (HTTP 401)   ``ip_not_allowed``
=================== ================== ==============================================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
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

__all__ = ["OkxKeyApi", "okx_classify", "okx_facts", "okx_signature", "okx_timestamp"]

CONFIG_PATH = "/api/v5/account/config"

_CODES: dict[str, KeyResult] = {
    "50111": KeyResult.INVALID_KEY,
    "50119": KeyResult.INVALID_KEY,
    "50101": KeyResult.INVALID_KEY,
    "50103": KeyResult.INVALID_KEY,
    "50100": KeyResult.INVALID_KEY,
    "50113": KeyResult.INVALID_SIGNATURE,
    "50105": KeyResult.INVALID_SIGNATURE,
    "50104": KeyResult.INVALID_SIGNATURE,
    "50106": KeyResult.INVALID_SIGNATURE,
    "50114": KeyResult.INVALID_SIGNATURE,
    "50102": KeyResult.TIMESTAMP,
    "50112": KeyResult.TIMESTAMP,
    "50107": KeyResult.TIMESTAMP,
    "50110": KeyResult.IP_NOT_ALLOWED,
    "50120": KeyResult.PERMISSION_DENIED,
    "50030": KeyResult.PERMISSION_DENIED,
    "50011": KeyResult.RATE_LIMITED,
}
"""Documented OKX codes → result [OKX-ERR] (see the module docstring's table)."""

_PERMS: dict[str, Permission] = {
    "read_only": Permission.READ,
    "trade": Permission.TRADE,
    "withdraw": Permission.WITHDRAW,
}
"""OKX ``perm`` words → :class:`Permission` [OKX-CONFIG]."""


def okx_timestamp(now: float) -> str:
    """``now`` (Unix seconds) as OKX's ``OK-ACCESS-TIMESTAMP``: UTC ISO-8601 with milliseconds
    and ``Z``, e.g. ``2020-12-08T09:08:57.715Z`` [OKX-AUTH]. Rounded to the millisecond."""
    ms = round(now * 1000)
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def okx_signature(secret: str, prehash: str) -> str:
    """``OK-ACCESS-SIGN``: base64(HMAC-SHA256(key = the secret text, msg = ``prehash``)),
    where ``prehash`` is ``timestamp + METHOD + requestPath + body`` [OKX-AUTH].

    Example (COMPUTED from the doc's example secret and timestamp):
    ``okx_signature("22582BD0CFF14C41EDBF1AB98506286D",
    "2020-12-08T09:08:57.715ZGET/api/v5/account/config")`` →
    ``"Kr/8IrbDYujS4cg2KkmB+tO2HMUXxyayG6ZwNb4H/yA="``.
    """
    digest = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def okx_facts(entry: Mapping[str, Any]) -> KeyFacts:
    """What one ``account/config`` ``data[0]`` entry says about the key [OKX-CONFIG].

    ``perm`` → read/trade/withdraw (each True when listed, False otherwise: the field names
    every permission of the key); ``ip`` → ``ip_restricted`` and ``ips``. OKX tells no expiry
    and no creation time.
    """
    perm_text = entry.get("perm")
    words = {w.strip() for w in str(perm_text).split(",")} if isinstance(perm_text, str) else set()
    permissions = (
        {p: word in words for word, p in _PERMS.items()} if isinstance(perm_text, str) else {}
    )
    ip_text = entry.get("ip")
    ips: tuple[str, ...] = ()
    restricted: bool | None = None
    if isinstance(ip_text, str):
        ips = tuple(a.strip() for a in ip_text.split(",") if a.strip())
        restricted = bool(ips)
    risky = bool(words & {"trade", "withdraw"})
    # The 14-day inactivity rule [OKX-AUTH §API key security].
    if restricted is False and risky:
        note = (
            "OKX expires keys without IP binding that can trade or withdraw after 14 days of "
            "inactivity; this check uses the key, so that rule does not bite."
        )
    else:
        note = (
            "OKX tells no expiry for this key, and its 14-day inactivity rule "
            "applies only to keys without IP binding that can trade or withdraw."
        )
    return KeyFacts(
        permissions=permissions,
        ip_restricted=restricted,
        ips=ips,
        expires_at=None,
        expiry_source=None,
        expiry_note=note,
        created_at=None,
    )


def okx_classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    previous: KeyFacts | None,
    now: float,
) -> KeyVerdict:
    """Classify one ``account/config`` answer (see the module docstring's table).

    Never raises. An invalid-key answer for a key whose previous facts carried an expiry that
    has passed at ``now`` is ``expired`` (OKX tells none, so in practice never).
    """
    wait = retry_after(headers)
    doc = parse_json(body)
    if status >= 500:
        code = str(doc.get("code")) if isinstance(doc, dict) and "code" in doc else None
        msg = cap(doc.get("msg", "")) if isinstance(doc, dict) else f"HTTP {status}"
        return KeyVerdict(KeyResult.OTHER, code, msg)
    if not isinstance(doc, dict) or "code" not in doc:
        if status == 429:
            return KeyVerdict(KeyResult.RATE_LIMITED, None, "HTTP 429", retry_after=wait)
        return KeyVerdict(KeyResult.OTHER, None, f"HTTP {status}: unreadable body")
    code = str(doc.get("code"))
    msg = cap(doc.get("msg", ""))
    if code == "0" and status == 200:
        data = doc.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return KeyVerdict(KeyResult.OK, facts=okx_facts(data[0]))
        return KeyVerdict(KeyResult.OTHER, code, "code 0 without account data")
    if status == 429:
        return KeyVerdict(KeyResult.RATE_LIMITED, code, msg, retry_after=wait)
    result = _CODES.get(code, KeyResult.OTHER)
    if result is KeyResult.INVALID_KEY and expiry_passed(previous, now):
        result = KeyResult.EXPIRED
    if result is KeyResult.RATE_LIMITED:
        return KeyVerdict(result, code, msg, retry_after=wait)
    return KeyVerdict(result, code, msg)


class OkxKeyApi(KeyApi):
    """OKX v5 ``GET /api/v5/account/config`` (see the module docstring for the facts, the
    classification and the fault → result table). Stateless: one instance per key."""

    api: ClassVar[str] = "okx"
    path: ClassVar[str] = CONFIG_PATH
    limits: ClassVar[tuple[LimitRule, ...]] = (
        LimitRule(
            "GET /api/v5/account/config per User ID",
            2.0,
            5,
            frozenset({KEY_ENDPOINT}),
            "[OKX-CONFIG]",
        ),
    )

    @classmethod
    def check_credentials(cls, credentials: Credentials) -> None:
        """OKX signs with the secret and sends the passphrase [OKX-AUTH].

        Raises:
            ValueError: ``secret_env``/``secret_file`` or ``passphrase_env``/
                ``passphrase_file`` missing or empty (never the value).
        """
        if credentials.secret is None or not credentials.secret.get_secret_value():
            raise ValueError("secret_env or secret_file: required for OKX keys")
        if credentials.passphrase is None or not credentials.passphrase.get_secret_value():
            raise ValueError(
                "passphrase_env or passphrase_file: required for OKX keys (the passphrase "
                "chosen when the key was created)"
            )

    def sign(
        self,
        credentials: Credentials,
        base_url: str,
        now: float,
        recv_window_ms: int | None = None,
    ) -> SignedRequest:
        """The signed ``GET {base_url}/api/v5/account/config`` with the four ``OK-ACCESS-*``
        headers [OKX-AUTH]; ``recv_window_ms`` does not apply to OKX and is ignored.

        Raises:
            ValueError: the secret or passphrase is missing (see :meth:`check_credentials`).
        """
        self.check_credentials(credentials)
        assert credentials.secret is not None and credentials.passphrase is not None
        timestamp = okx_timestamp(now)
        prehash = f"{timestamp}{self.method}{self.path}"
        signature = okx_signature(credentials.secret.get_secret_value(), prehash)
        headers = {
            "OK-ACCESS-KEY": credentials.key.get_secret_value(),
            "OK-ACCESS-SIGN": signature,
            "OK-ACCESS-TIMESTAMP": timestamp,
            "OK-ACCESS-PASSPHRASE": credentials.passphrase.get_secret_value(),
        }
        return SignedRequest(self.method, f"{base_url.rstrip('/')}{self.path}", headers, b"")

    def classify(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        previous: KeyFacts | None,
        now: float,
    ) -> KeyVerdict:
        """See :func:`okx_classify`."""
        return okx_classify(status, headers, body, previous, now)
