"""Inbound auth of the webhook endpoints: checking the ``Authorization`` header.

Mirrors Alertmanager's webhook ``http_config``: ``authorization`` (Bearer token) or
``basic_auth`` (username and password), as configured by ``Settings.inbound_auth``. Credentials
are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from receiver.settings import InboundAuth


def _digest(value: bytes) -> bytes:
    # Comparing fixed-length digests keeps even the length of the secret out of the timing.
    return hashlib.sha256(value).digest()


def check_credentials(auth: InboundAuth, header: str | None) -> bool:
    """True when the ``Authorization`` header carries ``auth``'s credentials.

    Bearer: ``Bearer <token>`` (scheme case-insensitive). Basic: ``Basic base64(user:pass)``.
    Secrets are compared with :func:`hmac.compare_digest` on SHA-256 digests.
    """
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    # Starlette decodes header bytes as latin-1: encoding back gives the bytes as sent.
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    if auth.scheme == "bearer":
        if scheme.lower() != "bearer" or auth.token is None:
            return False
        expected = auth.token.get_secret_value().encode("utf-8")
        return hmac.compare_digest(_digest(raw), _digest(expected))
    if scheme.lower() != "basic" or auth.username is None or auth.password is None:
        return False
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    if not sep:
        return False
    user_ok = hmac.compare_digest(_digest(user), _digest(auth.username.encode("utf-8")))
    password_ok = hmac.compare_digest(
        _digest(password), _digest(auth.password.get_secret_value().encode("utf-8"))
    )
    return user_ok and password_ok


def challenge(auth: InboundAuth) -> str:
    """The ``WWW-Authenticate`` value of a 401 answer."""
    return (
        'Bearer realm="alert-receiver"'
        if auth.scheme == "bearer"
        else 'Basic realm="alert-receiver", charset="UTF-8"'
    )


def security_scheme(auth: InboundAuth) -> dict[str, str]:
    """The OpenAPI security scheme of the webhook endpoints."""
    return (
        {"type": "http", "scheme": "bearer"}
        if auth.scheme == "bearer"
        else {"type": "http", "scheme": "basic"}
    )
