"""The vocabulary of key checks: results, permissions, what a key-info answer says, and the
signed request a key API builds.

Nothing here holds a secret in clear: credentials are :class:`pydantic.SecretStr` and only the
signers (:mod:`exporter.keys.exchanges`) call ``get_secret_value()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import SecretStr


class KeyResult(StrEnum):
    """The outcome of one key check: the ``result`` label of
    ``exchange_api_key_checks_total``. Exactly one per check.

    - ``ok``: the signed call was accepted.
    - ``invalid_key``: the exchange does not know the key (never created, deleted, revoked).
    - ``invalid_signature``: the key is known but the signature (or OKX/Coinbase passphrase)
      does not verify: a wrong secret.
    - ``timestamp``: the request time is outside the exchange's window (``recvWindow``, OKX
      and Coinbase 30 s, JWT ``nbf``/``exp``) or a Kraken nonce went backwards: clock skew.
    - ``ip_not_allowed``: the key is bound to IPs and ours is not one of them.
    - ``expired``: the key (or its permission) has passed its expiry.
    - ``permission_denied``: the key lacks the permission for the key-info call.
    - ``rate_limited``: the exchange refused the call as over a limit.
    - ``other``: anything else (transport failure, timeout, 5xx, an unreadable body).
    """

    OK = "ok"
    INVALID_KEY = "invalid_key"
    INVALID_SIGNATURE = "invalid_signature"
    TIMESTAMP = "timestamp"
    IP_NOT_ALLOWED = "ip_not_allowed"
    EXPIRED = "expired"
    PERMISSION_DENIED = "permission_denied"
    RATE_LIMITED = "rate_limited"
    OTHER = "other"


AUTH_RESULTS: frozenset[KeyResult] = frozenset(
    {
        KeyResult.INVALID_KEY,
        KeyResult.INVALID_SIGNATURE,
        KeyResult.IP_NOT_ALLOWED,
        KeyResult.EXPIRED,
        KeyResult.PERMISSION_DENIED,
    }
)
"""Results that say the key itself is unusable (``ExchangeApiKeyInvalid``)."""


class Permission(StrEnum):
    """The ``permission`` label of ``exchange_api_key_permission``: each exchange's documented
    permissions mapped onto these (see each module of :mod:`exporter.keys.exchanges`).

    - ``read``: view balances, orders, account data.
    - ``trade``: place or cancel orders (spot, margin, futures, options alike).
    - ``withdraw``: move funds off the exchange (withdrawals, Coinbase Transfer).
    - ``transfer``: move funds between the user's own accounts or sub-accounts.
    """

    READ = "read"
    TRADE = "trade"
    WITHDRAW = "withdraw"
    TRANSFER = "transfer"


ExpirySource = Literal["exchange", "policy"]
"""Where an expiry comes from: the exchange's answer, or its documented key policy applied to
what the answer says (e.g. Bybit: keys without IP binding are invalid after 90 days)."""


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What an accepted key-info answer says about the key.

    Attributes:
        permissions: permission → granted, only for permissions the answer tells (a Coinbase
            Exchange key, whose API has no key-info call, tells only ``read``).
        ip_restricted: whether the key is bound to IPs; None when the answer does not say.
        ips: the bound addresses when the answer lists them (Bybit, OKX, Kraken), else ().
            Not secret: shown in ``/status`` so a desk can check its egress IP is listed.
        expires_at: Unix seconds when the key (or, for Binance, its trading permission)
            stops working; None when nothing expires or nothing is known.
        expiry_source: ``exchange`` or ``policy`` (see :data:`ExpirySource`); None with no
            expiry.
        expiry_note: one sentence naming what expires and the source of the rule.
        created_at: Unix seconds of the key's creation, when the answer gives it.
    """

    permissions: Mapping[Permission, bool] = field(default_factory=dict)
    ip_restricted: bool | None = None
    ips: tuple[str, ...] = ()
    expires_at: float | None = None
    expiry_source: ExpirySource | None = None
    expiry_note: str = ""
    created_at: float | None = None


@dataclass(slots=True)
class KeyVerdict:
    """The classification of one key-info answer.

    Attributes:
        result: the outcome.
        error_code: the exchange's error code as a string (Binance ``code``, Bybit
            ``retCode``, OKX ``code``, Kraken error string, Coinbase error id or message),
            or None.
        message: the exchange's message, at most 200 characters. It may echo the request
            (Bybit's ``origin_string`` contains the API key): the prober scrubs credentials
            out of it before it is stored or logged.
        facts: what an accepted answer says about the key (``ok`` only).
        retry_after: seconds the exchange asks us to wait, or None.
        ip_wide: for ``rate_limited``: the limit is per IP (Binance 429/418, Bybit HTTP 403),
            so the exchange's probes pause too; False for per-key or per-account limits.
        banned: for ``rate_limited``: the answer is an IP ban (Binance 418).
    """

    result: KeyResult
    error_code: str | None = None
    message: str = ""
    facts: KeyFacts | None = None
    retry_after: float | None = None
    ip_wide: bool = False
    banned: bool = False


@dataclass(frozen=True)
class Credentials:
    """A key's secrets, read from the environment or files at config load.

    Attributes:
        key: the API key (Binance/Bybit/OKX/Kraken/Coinbase Exchange key, or the Coinbase
            CDP key name ``organizations/{org_id}/apiKeys/{key_id}``).
        secret: the HMAC secret (Kraken and Coinbase Exchange: base64 text), or None.
        passphrase: OKX and Coinbase Exchange passphrase, or None.
        private_key: Coinbase Advanced Trade: the PEM EC (P-256) private key, or None.
    """

    key: SecretStr
    secret: SecretStr | None = None
    passphrase: SecretStr | None = None
    private_key: SecretStr | None = None

    def values(self) -> tuple[str, ...]:
        """Every secret value in clear (for scrubbing messages), longest first; values shorter
        than 4 characters are left out (they would scrub ordinary words)."""
        found = [
            s.get_secret_value()
            for s in (self.key, self.secret, self.passphrase, self.private_key)
            if s is not None
        ]
        return tuple(sorted((v for v in found if len(v) >= 4), key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One signed HTTP request, ready to send.

    Attributes:
        method: ``GET`` or ``POST``.
        url: the full URL (base URL + path + ``?query`` exactly as signed).
        headers: request headers (signature, key, timestamp, passphrase, content type).
        body: the request body exactly as signed (b"" for none).
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
