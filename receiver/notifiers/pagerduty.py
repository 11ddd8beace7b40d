"""PagerDuty notifier: Events API v2 ``trigger`` for firing, ``resolve`` for resolved.

Platform facts (PagerDuty Events API v2, https://developer.pagerduty.com/docs/events-api-v2-overview
and the "Send an Event" reference, https://developer.pagerduty.com/api-reference/
368ae3d938c9e-send-an-event-to-pager-duty):

* ``POST https://events.pagerduty.com/v2/enqueue`` (EU accounts:
  ``https://events.eu.pagerduty.com/v2/enqueue``), JSON body with ``routing_key`` (the
  integration key of an "Events API v2" integration - a secret, sent only in the body),
  ``event_action`` ∈ ``trigger``/``acknowledge``/``resolve`` and ``dedup_key`` (≤255
  characters): a ``resolve`` closes the alert opened by the ``trigger`` with the same key.
* ``payload`` (required for ``trigger``): ``summary`` (≤1024 characters), ``source``,
  ``severity`` ∈ ``critical``/``error``/``warning``/``info``, optional ``timestamp``
  (ISO 8601), ``component``, ``group``, ``class`` and ``custom_details`` (free-form object);
  top-level ``links`` (``href``/``text``), ``client`` and ``client_url``.
* Answers: 202 ``{"status": "success", "dedup_key": …}``; 400 invalid event; 429 too many
  events (about 120 per minute per routing key - back off and retry); 5xx retry.

``dedup_key`` is ``exchange-watch-`` plus the SHA-256 of ``groupKey`` and the alert fingerprint
(79 characters), so firing and resolved of one alert share it and any restart derives it again.
A resolve event carries the same payload shape (summary saying how long it lasted); PagerDuty
uses only ``routing_key``, ``event_action`` and ``dedup_key`` of it. PagerDuty renders plain
text: untrusted text goes through :func:`receiver.text.neutralise_text` (no markup, no
mentions if the event is forwarded to chat).

Late diagnoses (:mod:`receiver.updates`): nothing is sent. Events API v2 has no "update" action;
the only way to add to an alert is another ``trigger`` with the same ``dedup_key``, which is
appended to the alert's log while the alert is open but *opens a new alert* (and pages again)
once a responder has resolved it ("Alert De-Duplication",
https://support.pagerduty.com/main/docs/event-management#alert-deduplication). A late diagnosis
must never page again, so it reaches the chat and file targets only.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from pydantic import Field, SecretStr

from receiver.notifiers.base import (
    Notification,
    Notifier,
    parse_retry_after_header,
    post_json,
    raise_for_status,
)
from receiver.notifiers.common import headline, links
from receiver.notifiers.options import HttpUrlOption, NotifierConfig, NotifierOptions
from receiver.text import cap, fit, neutralise_text

DEFAULT_API_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
SEVERITIES = ("critical", "error", "warning", "info")
#: Caps inside ``custom_details`` (the whole event must stay far below PagerDuty's 512 KB).
DETAIL_VALUE_MAX = 2000
DETAIL_MAP_MAX = 100
SHORT_MAX = 255

_SEVERITY_MAP = {
    "critical": "critical",
    "page": "critical",
    "high": "critical",
    "error": "error",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "info": "info",
    "low": "info",
    "none": "info",
}


def dedup_key(n: Notification) -> str:
    """The stable PagerDuty ``dedup_key`` of ``n``'s alert: the same for its firing and
    resolved notifications, ≤255 characters whatever the input."""
    digest = hashlib.sha256(
        f"{n.group_key}\x00{n.fingerprint}".encode("utf-8", "replace")
    ).hexdigest()
    return f"exchange-watch-{digest}"[:DEDUP_KEY_MAX]


def pagerduty_severity(severity: str | None) -> str:
    """Map the ``severity`` label to PagerDuty's four values; unknown or missing → ``error``
    (Alertmanager's own PagerDuty default)."""
    return _SEVERITY_MAP.get((severity or "").strip().lower(), "error")


def _short(text: str, limit: int = SHORT_MAX) -> str:
    return fit(text, limit, neutralise_text)


def _capmap(values: dict[str, str]) -> dict[str, str]:
    items = list(values.items())[:DETAIL_MAP_MAX]
    return {cap(k, SHORT_MAX): cap(v, DETAIL_VALUE_MAX) for k, v in items}


def render_pagerduty(
    n: Notification,
    routing_key: str,
    *,
    source: str | None = None,
    client: str = "exchange-watch",
) -> dict[str, Any]:
    """The Events API v2 body for ``n``: ``trigger`` when firing, ``resolve`` when resolved.

    Args:
        n: the notification.
        routing_key: the integration key (goes into the body only).
        source: ``payload.source``; default the ``instance`` label, else the exchange and
            endpoint, else ``exchange-watch``.
        client: ``client`` (shown in PagerDuty as the monitoring tool).
    """
    d = n.diagnosis
    lasted = n.duration_text
    summary = headline(n).split(" ", 1)[1]  # without the emoji
    if not n.firing and lasted:
        summary += f" (lasted {lasted})"
    text = n.summary or d.diagnosis
    summary = f"{summary} - {text}"
    where = n.labels.get("instance") or " ".join(x for x in (n.exchange, n.endpoint) if x)
    details: dict[str, Any] = {
        "status": n.status,
        "alertname": cap(n.alertname, SHORT_MAX),
        "starts_at": n.starts_at,
        "ends_at": n.ends_at,
        "duration_seconds": n.duration_seconds,
        "duration": lasted,
        "diagnosis": d.model_dump(mode="json"),
        "labels": _capmap(n.labels),
        "annotations": _capmap(n.annotations),
        "fingerprint": cap(n.fingerprint, SHORT_MAX),
        "group_key": cap(n.group_key, DETAIL_VALUE_MAX),
        "receiver": cap(n.receiver, SHORT_MAX),
        "route": n.route,
    }
    payload: dict[str, Any] = {
        "summary": fit(summary, SUMMARY_MAX, neutralise_text),
        "source": _short(source or where or "exchange-watch"),
        "severity": pagerduty_severity(n.severity),
        "timestamp": n.starts_at if n.firing else n.ends_at,
        "class": _short(n.alertname),
        "custom_details": details,
    }
    if n.exchange:
        payload["group"] = _short(n.exchange)
    if n.endpoint:
        payload["component"] = _short(n.endpoint)
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger" if n.firing else "resolve",
        "dedup_key": dedup_key(n),
        "payload": payload,
        "client": _short(client),
        "links": [{"href": url, "text": label} for label, url in links(n)],
    }
    alertmanager = [url for label, url in links(n) if label == "Alertmanager"]
    if alertmanager:
        body["client_url"] = alertmanager[0]
    return body


class PagerDutyOptions(NotifierOptions):
    """``type: pagerduty`` (secret ``routing_key``)."""

    api_url: HttpUrlOption = DEFAULT_API_URL
    source: str | None = Field(default=None, min_length=1, max_length=255)


class PagerDutyNotifier(Notifier):
    """Sends Events API v2 events.

    Args:
        routing_key: the Events API v2 integration key (secret).
        client: shared HTTP client.
        name: instance name (default ``"pagerduty"``).
        api_url: the enqueue URL (default US; use the EU one for EU service regions).
        source: fixed ``payload.source`` (default: from the alert's labels).
    """

    channel = "pagerduty"
    options = PagerDutyOptions
    secret_fields = ("routing_key",)
    secret_format = "token"

    @classmethod
    def from_config(cls, config: NotifierConfig, client: httpx.AsyncClient) -> PagerDutyNotifier:
        """Build from a routing entry (``type: pagerduty``)."""
        o = config.typed(PagerDutyOptions)
        return cls(
            config.secrets["routing_key"],
            client,
            name=config.name,
            api_url=o.api_url,
            source=o.source,
        )

    #: About 120 events per minute per routing key.
    min_send_interval = 0.5

    def __init__(
        self,
        routing_key: SecretStr,
        client: httpx.AsyncClient,
        *,
        name: str | None = None,
        api_url: str = DEFAULT_API_URL,
        source: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._key = routing_key
        self._client = client
        self._api_url = api_url
        self._source = source

    async def _send(self, notification: Notification) -> None:
        """POST the event.

        Raises:
            RateLimitedError: 429 (``Retry-After`` when given, else ``None``).
            PermanentNotifyError: other 4xx (invalid event, bad routing key).
            NotifyError: 5xx or network failure.
        """
        key = self._key.get_secret_value()
        body = render_pagerduty(notification, key, source=self._source)
        resp = await post_json(self._client, self._api_url, body, channel=self.name)
        retry_after = parse_retry_after_header(resp.headers.get("Retry-After"))
        raise_for_status(resp, channel=self.name, retry_after=retry_after, secrets=(key,))
