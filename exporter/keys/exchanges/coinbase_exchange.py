"""Coinbase Exchange (institutional, ``api.exchange.coinbase.com``): the key check of a
per-profile HMAC key (key + base64 secret + passphrase).

The Exchange API documents no key-permission endpoint, so the check is the cheapest signed read
call, ``GET /accounts`` [CB-EX-ACCTS] (it needs View or Trade); an accepted answer proves only that
the key can read. It says nothing about Trade/Transfer permissions, IP allow-lists or expiry.

Signing [CB-EX-AUTH]: headers ``CB-ACCESS-KEY``, ``CB-ACCESS-SIGN``, ``CB-ACCESS-TIMESTAMP``
(Unix seconds; the exchange rejects one more than 30 s from its clock) and
``CB-ACCESS-PASSPHRASE``; the signature is base64(HMAC-SHA256(base64-decode(secret),
timestamp + METHOD + requestPath + body)).

Answers (body ``{"message": "..."}``) → :class:`~exporter.keys.model.KeyResult`
[OBS-CB-EX, OBS-CB-EX401, CCXT-CBX, CB-EX-RL]:

======================================= ======================= ============================
answer                                  result                  note
======================================= ======================= ============================
200 JSON array of accounts              ``ok``                  facts: ``read`` only
401 ``Invalid API Key``                 ``invalid_key``         also a CDP key sent here
``invalid signature`` (400 observed)    ``invalid_signature``
``Invalid Passphrase``                  ``invalid_signature``   a wrong secret, in effect
``request timestamp expired``           ``timestamp``           400 (2017), 401 (2021)
429, ``Private rate limit exceeded``    ``rate_limited``        per profile: not IP-wide
403 JSON ``{"message": ...}``           ``permission_denied``   HTTP meaning; UNVERIFIED
other 401                               ``invalid_key``         HTTP meaning
5xx, unreadable, anything else          ``other``
======================================= ======================= ============================

An invalid-key answer when the previous facts' ``expires_at`` has passed is ``expired`` (never
the case here: the Exchange API tells no expiry).

Simulator API-key faults → result (the integration matrix asserts this). Coinbase documents no
IP-denied or expired-key answer (UNVERIFIED), so the simulator answers both as it answers an
unknown key, 401 ``Invalid API Key``, and nothing in the answer or in the previous facts (no IP
binding or expiry is ever told) can tell them apart:

================== ================= ==========================================================
fault              result            why
================== ================= ==========================================================
``key_revoked``    ``invalid_key``   a deleted key is unknown: 401 ``Invalid API Key``
``key_expired``    ``invalid_key``   no documented expired answer; 401 ``Invalid API Key``
``ip_not_allowed`` ``invalid_key``   no documented IP answer; 401 ``Invalid API Key``
================== ================= ==========================================================
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
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
    "CoinbaseExchangeKeyApi",
    "classify_exchange_answer",
    "coinbase_exchange_message",
    "coinbase_exchange_signature",
]

_MESSAGES: tuple[tuple[str, KeyResult], ...] = (
    ("private rate limit exceeded", KeyResult.RATE_LIMITED),
    ("invalid api key", KeyResult.INVALID_KEY),
    ("invalid signature", KeyResult.INVALID_SIGNATURE),
    ("invalid passphrase", KeyResult.INVALID_SIGNATURE),
    ("request timestamp expired", KeyResult.TIMESTAMP),
)
"""Lower-cased message fragments and their result [OBS-CB-EX, OBS-CB-EX401, CCXT-CBX]."""


def coinbase_exchange_message(timestamp: str, method: str, request_path: str, body: str) -> str:
    """The prehash string ``timestamp + METHOD + requestPath + body`` [CB-EX-AUTH].

    Args:
        timestamp: Unix seconds as sent in ``CB-ACCESS-TIMESTAMP`` (decimals allowed).
        method: upper-case HTTP method.
        request_path: the API path (``/accounts``), with ``?query`` when one is sent.
        body: the request body text ("" for none).
    """
    return f"{timestamp}{method.upper()}{request_path}{body}"


def coinbase_exchange_signature(secret_b64: str, message: str) -> str:
    """``CB-ACCESS-SIGN``: base64(HMAC-SHA256(base64-decode(secret), message)) [CB-EX-AUTH].

    Raises:
        ValueError: ``secret_b64`` is not base64 (the message names no value).
    """
    try:
        key = base64.b64decode(secret_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret is not base64") from None
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def classify_exchange_answer(
    status: int, headers: Mapping[str, str], body: bytes, previous: KeyFacts | None, now: float
) -> KeyVerdict:
    """Classify one answer of ``GET /accounts`` (see the module docstring's table).

    Returns:
        The verdict; never raises.
    """
    data: Any = parse_json(body)
    message = ""
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        message = data["message"]
    elif data is None:
        message = body[:200].decode("utf-8", "replace")
    text = cap(message)
    if status >= 500:
        return KeyVerdict(KeyResult.OTHER, str(status), text or f"HTTP {status}")
    if status == 200:
        if isinstance(data, list):
            facts = KeyFacts(
                permissions={Permission.READ: True},
                ip_restricted=None,
                expiry_note=(
                    "The Coinbase Exchange API has no key-permission call and documents no key "
                    "expiry: an accepted GET /accounts proves only that the key can read."
                ),
            )
            return KeyVerdict(KeyResult.OK, facts=facts)
        return KeyVerdict(KeyResult.OTHER, None, text or "HTTP 200 without an array of accounts")
    lowered = message.strip().lower()
    found = next((result for fragment, result in _MESSAGES if fragment in lowered), None)
    if status == 429 or found is KeyResult.RATE_LIMITED:
        return KeyVerdict(
            KeyResult.RATE_LIMITED,
            text or str(status),
            text,
            retry_after=retry_after(headers),
            ip_wide=False,
        )
    if found is None and isinstance(data, dict) and status == 403:
        found = KeyResult.PERMISSION_DENIED
    if found is None and status == 401:
        found = KeyResult.INVALID_KEY
    if found is None:
        return KeyVerdict(KeyResult.OTHER, text or str(status), text or f"HTTP {status}")
    if found is KeyResult.INVALID_KEY and expiry_passed(previous, now):
        found = KeyResult.EXPIRED
    return KeyVerdict(found, text or str(status), text)


class CoinbaseExchangeKeyApi(KeyApi):
    """Key check of a Coinbase Exchange HMAC key: signed ``GET /accounts`` [CB-EX-AUTH,
    CB-EX-ACCTS].

    Limits: private endpoints allow 15 requests/s per profile (burst 30) [CB-EX-RL], counted
    as a :class:`LimitRule` on ``api_key``. No receive window (the exchange's 30 s is fixed).
    """

    api: ClassVar[str] = "coinbase-exchange"
    path: ClassVar[str] = "/accounts"
    limits: ClassVar[tuple[LimitRule, ...]] = (
        LimitRule("private requests per profile", 1.0, 15, frozenset({KEY_ENDPOINT}), "[CB-EX-RL]"),
    )

    @classmethod
    def check_credentials(cls, credentials: Credentials) -> None:
        """Require a base64 secret and a passphrase.

        Raises:
            ValueError: naming ``secret_env``/``secret_file`` or
                ``passphrase_env``/``passphrase_file``, never a value.
        """
        if credentials.secret is None or not credentials.secret.get_secret_value():
            raise ValueError(
                "secret_env or secret_file: required for a Coinbase Exchange key "
                "(or private_key_file for an Advanced Trade CDP key)"
            )
        try:
            base64.b64decode(credentials.secret.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "secret_env/secret_file: a Coinbase Exchange secret is base64 text"
            ) from None
        if credentials.passphrase is None or not credentials.passphrase.get_secret_value():
            raise ValueError(
                "passphrase_env or passphrase_file: required for a Coinbase Exchange key"
            )

    def sign(
        self,
        credentials: Credentials,
        base_url: str,
        now: float,
        recv_window_ms: int | None = None,
    ) -> SignedRequest:
        """``GET base_url/accounts`` with the four ``CB-ACCESS-*`` headers; the timestamp is
        ``now`` in whole Unix seconds; the signed path is ``/accounts`` (no prefix, no body).

        Raises:
            ValueError: the credentials lack a secret or passphrase (see
                :meth:`check_credentials`).
        """
        self.check_credentials(credentials)
        assert credentials.secret is not None and credentials.passphrase is not None
        timestamp = str(int(now))
        message = coinbase_exchange_message(timestamp, self.method, self.path, "")
        signature = coinbase_exchange_signature(credentials.secret.get_secret_value(), message)
        headers = {
            "CB-ACCESS-KEY": credentials.key.get_secret_value(),
            "CB-ACCESS-SIGN": signature,
            "CB-ACCESS-TIMESTAMP": timestamp,
            "CB-ACCESS-PASSPHRASE": credentials.passphrase.get_secret_value(),
            "Accept": "application/json",
        }
        return SignedRequest(self.method, base_url.rstrip("/") + self.path, headers, b"")

    def classify(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        previous: KeyFacts | None,
        now: float,
    ) -> KeyVerdict:
        """See :func:`classify_exchange_answer`; never raises (an unexpected failure to read
        the answer is ``other``)."""
        try:
            return classify_exchange_answer(status, headers, body, previous, now)
        except Exception:  # classify must never raise
            return KeyVerdict(KeyResult.OTHER, str(status), "unreadable answer")
