"""The :class:`Reply` value every handler returns, plus JSON / HTML / text builders.

A reply is transport-agnostic: the server adds ``Content-Length``, ``Content-Type`` and ``Date``
when it writes it. Bodies are pre-encoded bytes so the hot path does a single ``json.dumps``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = [
    "CT_HTML",
    "CT_JSON",
    "CT_TEXT",
    "Header",
    "Reply",
    "gateway_page",
    "json_reply",
    "reason_phrase",
    "text_reply",
]

Header = tuple[bytes, bytes]

CT_JSON = b"application/json"
CT_HTML = b"text/html"
CT_TEXT = b"text/plain"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# Cloudflare's 52x codes have no IANA reason phrase; a CDN in front of an exchange uses them.
_EXTRA_REASONS: dict[int, str] = {
    520: "Web Server Returned an Unknown Error",
    521: "Web Server Is Down",
    522: "Connection Timed Out",
    523: "Origin Is Unreachable",
    524: "A Timeout Occurred",
    525: "SSL Handshake Failed",
    526: "Invalid SSL Certificate",
    527: "Railgun Error",
    530: "Origin DNS Error",
}


@dataclass(slots=True)
class Reply:
    """One HTTP response.

    Attributes:
        status: HTTP status code (100–599).
        body: encoded body bytes.
        content_type: ``Content-Type`` value (bytes), JSON unless stated.
        headers: extra ``(name, value)`` byte pairs, e.g. rate-limit headers.
        stream: when set, the body is these parts (``body`` is ignored) and ``stream_length``
            is its exact total size in bytes (``huge_body`` fault).
        stream_length: ``Content-Length`` of a streamed body.
        bytes_per_second: when > 0, the server sends the body in slices of
            ``bytes_per_second × pace_interval_s`` bytes, one per interval (``slow_body``).
        pace_interval_s: seconds between slices of a paced body.
    """

    status: int
    body: bytes
    content_type: bytes = CT_JSON
    headers: list[Header] = field(default_factory=list)
    stream: Iterator[bytes] | None = None
    stream_length: int = 0
    bytes_per_second: float = 0.0
    pace_interval_s: float = 1.0


def json_reply(status: int, obj: Any, headers: list[Header] | None = None) -> Reply:
    """Build a JSON :class:`Reply` from ``obj`` (compact separators, UTF-8).

    Raises:
        TypeError: if ``obj`` is not JSON-serialisable.
    """
    return Reply(status, _dumps(obj).encode(), CT_JSON, headers if headers is not None else [])


def text_reply(status: int, text: str, headers: list[Header] | None = None) -> Reply:
    """Build a ``text/plain`` :class:`Reply` (used for gateway-level answers such as Bybit's
    IP-limit 403 "access too frequent" [BY-RL])."""
    return Reply(status, text.encode(), CT_TEXT, headers if headers is not None else [])


def reason_phrase(status: int) -> str:
    """Return the reason phrase for ``status`` (IANA registry, Cloudflare 52x, else ``"Error"``)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _EXTRA_REASONS.get(status, "Error")


def gateway_page(status: int, server: str) -> Reply:
    """An HTML error page like the one a CDN / reverse proxy in front of an exchange returns.

    Args:
        status: HTTP status (typically 502/503/504 or Cloudflare 52x).
        server: footer name of the front end (``"cloudflare"``, ``"CloudFront"``, ``"openresty"``).

    Kraken notes that a non-200 status means the request never reached its servers
    [KR-REST-INTRO]; such answers come from the CDN, not as exchange JSON. The exact page markup of
    each venue's CDN is **not documented** in the facts file; this is a generic nginx-style page.
    """
    phrase = reason_phrase(status)
    html = (
        "<html>\r\n"
        f"<head><title>{status} {phrase}</title></head>\r\n"
        "<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n"
        f"<hr><center>{server}</center>\r\n"
        "</body>\r\n"
        "</html>\r\n"
    )
    return Reply(status, html.encode(), CT_HTML, [])
