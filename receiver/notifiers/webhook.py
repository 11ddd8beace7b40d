"""Generic JSON webhook notifier: POSTs one documented JSON document per notification.

Request: ``POST <url>`` with ``Content-Type: application/json``, the configured extra headers,
and ``Idempotency-Key: <hex>`` - the same for every retry of one notification (also after a
restart), so a receiver can drop duplicates. Body (version 1; fields are only ever added)::

    {
      "version": "1",
      "notifier": "hooks",                  # instance name from the routing file
      "idempotency_key": "<64 hex>",        # = the Idempotency-Key header
      "sent_at": "2026-11-21T08:00:05.123Z",
      "status": "firing" | "resolved",
      "route": "critical",                  # "" for POST /alerts
      "receiver": "exchange-watch", "group_key": "{}:{alertname=\\"X\\"}",
      "external_url": "http://alertmanager:9093",
      "alert": {"alertname": str, "exchange": str|null, "endpoint": str|null,
                "severity": str|null, "summary": str|null, "description": str|null,
                "runbook_url": str|null, "labels": {str: str}, "annotations": {str: str},
                "starts_at": RFC 3339, "ends_at": RFC 3339 ("0001-01-01T00:00:00Z" while firing),
                "generator_url": str, "fingerprint": str},
      "duration_seconds": float | null,     # resolved: endsAt - startsAt
      "duration": "4 min 12 s" | null,
      "diagnosis": {"diagnosis", "impact", "action_items", "rollback_plan",
                    "estimated_recovery_time", "root_cause_category", "confidence", "source"}
    }

A late LLM diagnosis (:mod:`receiver.updates`) is POSTed as a follow-up document: the same
fields, re-rendered with the new diagnosis, plus ``"kind": "update"`` and ``"updates":
{"idempotency_key": <the first document's key>, "sent_at": RFC 3339 | null}``; its own
``idempotency_key`` (and header) is derived from the first's, so it is not dropped as a repeat
of it and stays the same across its retries. A consumer that ignores ``kind`` sees the same alert
again with a better diagnosis; first documents have no ``kind``.

Strings longer than :data:`VALUE_MAX` characters are cut with ``…`` and maps keep at most
:data:`MAX_MAP_ENTRIES` entries, so the body stays bounded (≈ 3.5 MB worst case, typically a
few KB). Values are JSON strings, not markup: the consumer escapes for wherever it displays them
(text is passed through unchanged apart from the cap). Answers: 2xx delivered; 429 →
:class:`RateLimitedError` with ``Retry-After`` (seconds or HTTP-date, RFC 9110 §10.2.3); other
4xx (except 408/409/425) permanent; 3xx (redirects are not followed), 5xx and network errors
retried.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import Field, SecretStr

from exchange_common.timestamps import iso_utc, utc_now_iso
from receiver.notifiers.base import (
    Notification,
    Notifier,
    SentMessage,
    UpdateKind,
    parse_retry_after_header,
    post_json,
    raise_for_status,
)
from receiver.notifiers.options import NotifierConfig, NotifierOptions, ParseContext
from receiver.text import cap

VALUE_MAX = 8192
MAX_MAP_ENTRIES = 200
SCHEMA_VERSION = "1"


def _capmap(values: dict[str, str]) -> dict[str, str]:
    items = list(values.items())[:MAX_MAP_ENTRIES]
    return {cap(k, 256): cap(v, VALUE_MAX) for k, v in items}


def _opt(value: str | None) -> str | None:
    return None if value is None else cap(value, VALUE_MAX)


def render_webhook(n: Notification, *, notifier: str, sent_at: str | None = None) -> dict[str, Any]:
    """The JSON document for ``n`` (see the module docstring)."""
    return {
        "version": SCHEMA_VERSION,
        "notifier": notifier,
        "idempotency_key": n.delivery_key,
        "sent_at": sent_at or utc_now_iso(),
        "status": n.status,
        "route": cap(n.route, 256),
        "receiver": cap(n.receiver, VALUE_MAX),
        "group_key": cap(n.group_key, VALUE_MAX),
        "external_url": cap(n.external_url, VALUE_MAX),
        "alert": {
            "alertname": cap(n.alertname, VALUE_MAX),
            "exchange": _opt(n.exchange),
            "endpoint": _opt(n.endpoint),
            "severity": _opt(n.severity),
            "summary": _opt(n.summary),
            "description": _opt(n.description),
            "runbook_url": _opt(n.runbook_url),
            "labels": _capmap(n.labels),
            "annotations": _capmap(n.annotations),
            "starts_at": n.starts_at,
            "ends_at": n.ends_at,
            "generator_url": cap(n.generator_url, VALUE_MAX),
            "fingerprint": cap(n.fingerprint, VALUE_MAX),
        },
        "duration_seconds": n.duration_seconds,
        "duration": n.duration_text,
        "diagnosis": n.diagnosis.model_dump(mode="json"),
    }


def update_key(n: Notification) -> str:
    """The ``Idempotency-Key`` of the update of ``n`` (64 hex, derived from the first's)."""
    return hashlib.sha256(f"update\x00{n.delivery_key}".encode()).hexdigest()


def render_webhook_update(
    n: Notification, sent: SentMessage, *, notifier: str, sent_at: str | None = None
) -> dict[str, Any]:
    """The follow-up document of ``n``'s late diagnosis (see the module docstring)."""
    body = render_webhook(n, notifier=notifier, sent_at=sent_at)
    first = None if sent.sent_at is None or sent.sent_text is None else iso_utc(sent.sent_at)
    body["kind"] = "update"
    body["idempotency_key"] = update_key(n)
    body["updates"] = {"idempotency_key": n.delivery_key, "sent_at": first}
    return body


_SECRET_HEADER = re.compile(r"auth|token|secret|key|passw|signature|session|cookie", re.I)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")


def _header_value_ok(value: str) -> bool:
    return value.isascii() and value.isprintable() and len(value) <= 8192


class WebhookOptions(NotifierOptions):
    """``type: webhook`` (secret ``url``; secret headers via ``headers_env``/``headers_file``)."""

    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)


class WebhookNotifier(Notifier):
    """POSTs the JSON document to a URL.

    Args:
        url: the target URL (secret: URLs often embed tokens).
        client: shared HTTP client.
        name: instance name (default ``"webhook"``).
        headers: extra headers (values may be secrets, e.g. ``Authorization``; never logged).
        timeout: request timeout in seconds.
    """

    channel = "webhook"
    options = WebhookOptions
    secret_fields = ("url",)
    secret_format = "url"
    extra_keys = ("headers_env", "headers_file")

    @classmethod
    def parse_extra(
        cls, raw: Mapping[str, object], path: str, ctx: ParseContext
    ) -> dict[str, SecretStr]:
        """Secret headers from ``headers_env``/``headers_file`` (name → VAR / PATH), and the
        check that plain ``headers`` hold no secret-looking names and valid values."""
        out = _secret_headers(raw, path, ctx)
        headers = raw.get("headers", {})
        if isinstance(headers, dict):
            for header, value in headers.items():
                hpath = f"{path}.headers.{header}"
                if isinstance(header, str) and _SECRET_HEADER.search(header):
                    ctx.add(
                        hpath,
                        "looks like a secret: secrets must not be written in the routing file; "
                        "use headers_env or headers_file",
                        show=False,
                    )
                elif not isinstance(header, str) or not _HEADER_NAME.match(header):
                    ctx.add(hpath, "not a valid HTTP header name", header)
                elif not isinstance(value, str) or not _header_value_ok(value):
                    ctx.add(hpath, "must be a printable ASCII string", value)
        return out

    @classmethod
    def from_config(cls, config: NotifierConfig, client: httpx.AsyncClient) -> WebhookNotifier:
        """Build from a routing entry (``type: webhook``)."""
        o = config.typed(WebhookOptions)
        headers = {k: SecretStr(v) for k, v in o.headers.items()}
        headers.update(config.secret_headers)
        return cls(
            config.secrets["url"],
            client,
            name=config.name,
            headers=headers,
            timeout=o.timeout_seconds,
        )

    def __init__(
        self,
        url: SecretStr,
        client: httpx.AsyncClient,
        *,
        name: str | None = None,
        headers: Mapping[str, SecretStr] | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(name=name)
        self._url = url
        self._client = client
        self._headers = dict(headers or {})
        self._timeout = timeout

    def idempotency_key(self, notification: Notification) -> str:
        """The ``Idempotency-Key`` header: :attr:`Notification.delivery_key`."""
        return notification.delivery_key

    async def _send(self, notification: Notification) -> None:
        """POST the document.

        Raises:
            RateLimitedError: 429 with ``Retry-After``.
            PermanentNotifyError: other 4xx except 408/409/425.
            NotifyError: 3xx, 5xx or network failure.
        """
        body = render_webhook(notification, notifier=self.name)
        await self._post(body, self.idempotency_key(notification))

    async def _send_update(self, notification: Notification, sent: SentMessage) -> UpdateKind:
        """POST the follow-up document (:func:`render_webhook_update`).

        Raises:
            RateLimitedError, PermanentNotifyError, NotifyError: as :meth:`_send`.
        """
        body = render_webhook_update(notification, sent, notifier=self.name)
        await self._post(body, update_key(notification))
        return "follow_up"

    async def _post(self, body: dict[str, Any], key: str) -> None:
        headers = {k: v.get_secret_value() for k, v in self._headers.items()}
        headers["Idempotency-Key"] = key
        url = self._url.get_secret_value()
        resp = await post_json(
            self._client, url, body, channel=self.name, headers=headers, timeout=self._timeout
        )
        retry_after = parse_retry_after_header(resp.headers.get("Retry-After"))
        secrets = (url, *(v for v in headers.values() if len(v) >= 6))
        raise_for_status(resp, channel=self.name, retry_after=retry_after, secrets=secrets)


def _secret_headers(
    raw: Mapping[str, object], path: str, ctx: ParseContext
) -> dict[str, SecretStr]:
    out: dict[str, SecretStr] = {}
    for how in ("env", "file"):
        key = f"headers_{how}"
        if key not in raw:
            continue
        mapping = raw[key]
        if not isinstance(mapping, dict):
            what = "environment variable name" if how == "env" else "file path"
            ctx.add(f"{path}.{key}", f"must be a mapping of header name to {what}")
            continue
        for header, ref in mapping.items():
            where = f"{path}.{key}.{header}"
            if not isinstance(header, str) or not _HEADER_NAME.match(header):
                ctx.add(where, "not a valid HTTP header name", header)
                continue
            if header in out:
                ctx.add(where, "header given twice (headers_env and headers_file)")
                continue
            value = ctx.resolve(how, ref, where)
            if value is None:
                continue
            if not _header_value_ok(value.get_secret_value()):
                ctx.add(where, "value is not a valid HTTP header value", show=False)
                continue
            out[header] = value
    return out
