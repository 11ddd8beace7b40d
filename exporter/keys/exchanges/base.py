"""The interface of one exchange's key check: what credentials it needs, how it signs the
key-info call, what that call costs, and how its answers are classified.

One :class:`KeyApi` instance serves one configured key for the exporter's lifetime (Kraken keeps
its last nonce there). Signing is separate from sending so that every signer is a pure function
of its inputs and can be proven against the exchanges' documented worked examples.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from exporter.keys.model import Credentials, KeyFacts, KeyVerdict, SignedRequest
from exporter.profiles.base import LimitRule, parse_retry_after

KEY_ENDPOINT = "api_key"
"""The name key checks go by in the probe gate (:mod:`exporter.admission`) and in the budget:
a :class:`LimitRule` whose ``endpoints`` is None (IP-wide) or names ``api_key`` counts them."""


class KeyApi(ABC):
    """One exchange's signed key-info call.

    Class attributes (set by subclasses):
        api: a short name of the API (``binance``, ``coinbase-advanced-trade``, ...), shown
            in ``/status``.
        method: ``GET`` or ``POST``.
        path: the documented key-info path, appended to the base URL.
        weight: what one call costs against the profile's IP-wide limits (request weight,
            or 1 where the exchange counts requests).
        limits: documented limits of the key-info call itself (per key, per UID, per
            profile), counted in the exporter's budget beside the profile's IP-wide limits;
            their ``endpoints`` must be ``frozenset({"api_key"})``.
        default_recv_window_ms: the exchange's documented default receive window in ms, or
            None where it has none.
        max_recv_window_ms: the largest receive window the exchange accepts, or None where
            ``recv_window`` does not apply (config validation refuses it there).
    """

    api: ClassVar[str]
    method: ClassVar[str] = "GET"
    path: ClassVar[str]
    weight: ClassVar[float] = 1.0
    limits: ClassVar[tuple[LimitRule, ...]] = ()
    default_recv_window_ms: ClassVar[int | None] = None
    max_recv_window_ms: ClassVar[int | None] = None

    @classmethod
    @abstractmethod
    def check_credentials(cls, credentials: Credentials) -> None:
        """Check that ``credentials`` carry what this API signs with, in the right form
        (e.g. a base64 secret for Kraken, a PEM EC key for Coinbase Advanced Trade).

        Raises:
            ValueError: naming the missing or malformed field (``secret_env``/``secret_file``,
                ``passphrase_env``/``passphrase_file``, ``private_key_file``), never its value.
        """

    @classmethod
    def check_base_url(cls, base_url: str) -> None:
        """Check that ``base_url`` can serve this API's key-info call (default: any).

        Raises:
            ValueError: naming ``base_url`` and what it should be.
        """
        return None

    @abstractmethod
    def sign(
        self,
        credentials: Credentials,
        base_url: str,
        now: float,
        recv_window_ms: int | None = None,
    ) -> SignedRequest:
        """Build the signed key-info request.

        Args:
            credentials: the key's secrets.
            base_url: scheme + host (+ path prefix), no trailing slash needed.
            now: Unix seconds of the local clock (what the exchange compares with its own).
            recv_window_ms: the receive window to ask for (Binance, Bybit), None for the
                exchange's default.

        Returns:
            The request, exactly as the exchange documents it.
        """

    @abstractmethod
    def classify(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        previous: KeyFacts | None,
        now: float,
    ) -> KeyVerdict:
        """Classify one answer into exactly one :class:`~exporter.keys.model.KeyResult`.

        Args:
            status: HTTP status.
            headers: response headers (case-insensitive mapping, e.g. ``httpx.Headers``).
            body: the raw body.
            previous: the facts of the key's last accepted answer, or None (Binance ``-2015``
                is one code for unknown key, IP and permission: a key that was bound to IPs
                and answered before is classified ``ip_not_allowed``).
            now: Unix seconds (for policy expiries counted from creation).

        Returns:
            The verdict; never raises for any input.
        """


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``, or None when it is empty or not JSON."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def cap(text: Any, limit: int = 200) -> str:
    """``str(text)`` stripped and cut to ``limit`` characters."""
    return str(text).strip()[:limit]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (its delay-seconds form, RFC 9110 §10.2.3), whatever the
    header's case in ``headers``; None when absent, negative or unreadable."""
    return parse_retry_after({k.lower(): v for k, v in headers.items()})


def expiry_passed(previous: KeyFacts | None, now: float) -> bool:
    """Whether the key's last accepted answer carried an expiry that has passed at ``now``
    (Unix seconds): an invalid-key answer then means ``expired``."""
    return previous is not None and previous.expires_at is not None and now >= previous.expires_at
