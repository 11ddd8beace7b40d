"""Discord webhook notifier: one embed per notification, mentions disabled.

Limits enforced (Discord "Embed Limits", https://discord.com/developers/docs/resources/
message#embed-object-embed-limits, summarised in shared/reference/alertmanager-and-notifiers.md):
title ≤256, description ≤4096, ≤25 fields with name ≤256 and value ≤1024, footer ≤2048, and
6000 characters in total across the embed. The per-part budgets below add up to less than
:data:`EMBED_TOTAL_MAX`, so the total holds by construction.

The embed's title is the headline and its description the rest of the five-line summary
(:mod:`receiver.notifiers.summary`); Discord shows the description before the fields, which
hold the details. Firing and resolved embeds differ in title, colour, summary and fields; a
resolved embed has a ``Lasted`` field (``4 min 12 s``, from ``startsAt`` to ``endsAt``) instead
of the recovery estimate.

``allowed_mentions: {"parse": []}`` stops @everyone/@here/role/user pings
(https://discord.com/developers/docs/resources/message#allowed-mentions-object); text is also
escaped with :func:`receiver.text.discord_escape`. A 429 carries JSON ``retry_after`` (float
seconds) and a ``Retry-After`` header (https://discord.com/developers/docs/topics/rate-limits).

Late diagnoses (:mod:`receiver.updates`): the webhook is executed with ``?wait=true``, so Discord
answers with the created message object and its ``id`` ("Execute Webhook",
https://discord.com/developers/docs/resources/webhook#execute-webhook); the update is "Edit
Webhook Message", ``PATCH /webhooks/{webhook.id}/{webhook.token}/messages/{message.id}`` with the
re-rendered embed (https://discord.com/developers/docs/resources/webhook#edit-webhook-message),
keeping a ``thread_id`` query parameter of the configured URL (the message lives in that
thread). Without a known message id (a delivery recorded before this, or a 204 answer) the
update is a follow-up message naming the first (``content``, at most 2000 characters).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from receiver.models import ZERO_TIME, parse_rfc3339
from receiver.notifiers.base import (
    MessageIds,
    Notification,
    RateLimitedError,
    SentMessage,
    UpdateKind,
    WebhookUrlNotifier,
    parse_retry_after_header,
    raise_for_status,
    request_json,
    response_json,
    retry_after_from_json,
)
from receiver.notifiers.common import Style, render_summary
from receiver.notifiers.followup import compose_update
from receiver.notifiers.options import NotifierOptions
from receiver.text import discord_escape, discord_plain, fit, safe_url

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
MAX_FIELDS = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000
#: ``content`` of a message (https://discord.com/developers/docs/resources/message#create-message).
CONTENT_MAX = 2000
#: A snowflake id as Discord writes it (a decimal string); anything else is not put in a URL.
_SNOWFLAKE = re.compile(r"^[0-9]{1,25}$")

STYLE = Style(escape=discord_escape, bold=lambda text: f"**{text}**")

COLOR_CRITICAL = 0xD32F2F  # red
COLOR_WARNING = 0xF57C00  # orange
COLOR_INFO = 0x1976D2  # blue
COLOR_RESOLVED = 0x2E7D32  # green

# Budgets (characters); sum < EMBED_TOTAL_MAX together with field names.
_TITLE = 200
_SUMMARY_LINE = 160
_SUMMARY_TEXT = 660
_SUMMARY = 300
_DESCRIPTION = 500
_DIAGNOSIS = 900
_INLINE_VALUE = 100
_IMPACT = 400
_ACTIONS = 900
_ROLLBACK = 400
_EVIDENCE = 300
_LINKS = 400
_FOOTER = 200


def severity_color(status: str, severity: str | None) -> int:
    """Embed colour: green when resolved; red for critical, orange for warning, else blue."""
    if status == "resolved":
        return COLOR_RESOLVED
    sev = (severity or "").lower()
    if sev in ("critical", "page", "error", "high"):
        return COLOR_CRITICAL
    if sev in ("warning", "warn", "medium"):
        return COLOR_WARNING
    return COLOR_INFO


def _esc(text: str, limit: int) -> str:
    return fit(text, limit, discord_escape)


def _timestamp(value: str) -> str | None:
    if value == ZERO_TIME:
        return None
    try:
        return parse_rfc3339(value).isoformat()
    except ValueError:
        return None


def embed_length(embed: dict[str, Any]) -> int:
    """Characters Discord counts toward the 6000 limit: title, description, field names and
    values, footer text and author name."""
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    for f in embed.get("fields", []):
        total += len(f["name"]) + len(f["value"])
    total += len(embed.get("footer", {}).get("text", ""))
    total += len(embed.get("author", {}).get("name", ""))
    return total


def render_discord(n: Notification, *, now: float | None = None) -> dict[str, Any]:
    """Render a notification as a Discord webhook body with one embed.

    Layout: the title is the headline (``🔴 FIRING: <alertname> · <exchange>``), the
    description the rest of the five-line summary (since when, impact, first action, diagnosis;
    :mod:`receiver.notifiers.summary`), which Discord shows first; the details follow as fields
    (exchange, severity, category… inline, then the annotations, the whole diagnosis, impact,
    every action item, rollback, evidence and links).

    Args:
        n: the notification.
        now: Unix seconds for the alert's age in the summary (default: the current time).

    Returns:
        ``{"content": "", "embeds": [embed], "allowed_mentions": {"parse": []}}``; every part
        within Discord's limits; never raises on long input.
    """
    d = n.diagnosis
    firing = n.status == "firing"
    prefix = "🔴 FIRING" if firing else "✅ RESOLVED"
    where = f" · {n.exchange}" if n.exchange else ""
    title = prefix + ": " + fit(f"{n.alertname}{where}", _TITLE - len(prefix) - 2, discord_plain)
    summary = render_summary(n, STYLE, _SUMMARY_LINE, with_headline=False, now=now)
    description = "\n".join(summary)[:_SUMMARY_TEXT]  # ≤4 lines of ≤160: never cut

    inline = [
        ("Exchange", n.exchange or "-"),
        ("Endpoint", n.endpoint or "-"),
        ("Severity", n.severity or "-"),
        ("Category", d.root_cause_category),
        ("Confidence", f"{d.confidence:.0%} ({d.source})"),
        ("Est. recovery", d.estimated_recovery_time)
        if firing
        else ("Lasted", n.duration_text or "unknown"),
    ]
    fields: list[dict[str, Any]] = [
        {"name": name, "value": _esc(value, _INLINE_VALUE), "inline": True}
        for name, value in inline
    ]
    blocks: list[tuple[str, str | None, int]] = [
        ("Summary", n.summary, _SUMMARY),
        ("Description", n.description, _DESCRIPTION),
        (f"{'Diagnosis' if firing else 'Recovery check'} ({d.source})", d.diagnosis, _DIAGNOSIS),
        ("Impact", d.impact, _IMPACT),
        ("Action items", "\n".join(f"{i}. {a}" for i, a in enumerate(d.action_items, 1)), _ACTIONS),
        ("Rollback plan", d.rollback_plan, _ROLLBACK),
        ("Context", d.context.summary if d.context is not None else None, _EVIDENCE),
    ]
    for name, value, budget in blocks:
        if value:
            fields.append({"name": name, "value": _esc(value, budget), "inline": False})
    links: list[str] = []
    used = 0
    for label, url in (
        ("Runbook", n.runbook_url),
        ("Prometheus graph", n.generator_url),
        ("Alertmanager", n.external_url),
    ):
        checked = safe_url(url)
        if checked is None:
            continue
        line = f"{label}: <{checked}>"
        if used + len(line) + 1 <= _LINKS:  # whole links only
            links.append(line)
            used += len(line) + 1
    if links:
        fields.append({"name": "Links", "value": "\n".join(links), "inline": False})
    fields = fields[:MAX_FIELDS]

    footer = f"exchange-watch · {n.status}"
    if n.receiver:
        footer += f" · receiver {n.receiver}"
    if n.route:
        footer += f" · route {n.route}"
    footer += f" · fingerprint {n.fingerprint}"

    embed: dict[str, Any] = {
        "title": title,
        "description": description,
        "color": severity_color(n.status, n.severity),
        "fields": fields,
        "footer": {"text": fit(footer, _FOOTER, discord_plain)},
    }
    # Cannot happen with the budgets above; never send an oversized embed (links kept).
    while len(embed["fields"]) > 7 and embed_length(embed) > EMBED_TOTAL_MAX:
        embed["fields"].pop(-2 if embed["fields"][-1]["name"] == "Links" else -1)
    ts = _timestamp(n.starts_at if firing else n.ends_at)
    if ts:
        embed["timestamp"] = ts
    runbook = safe_url(n.runbook_url)
    if runbook:
        embed["url"] = runbook
    return {"content": "", "embeds": [embed], "allowed_mentions": {"parse": []}}


def _retry_after(resp: httpx.Response) -> float | None:
    value = retry_after_from_json(resp, "retry_after")
    if value is not None:
        return value
    return parse_retry_after_header(resp.headers.get("Retry-After"))


class DiscordOptions(NotifierOptions):
    """``type: discord`` (secret ``webhook_url``)."""


class DiscordNotifier(WebhookUrlNotifier):
    """Posts to a Discord webhook.

    Args:
        webhook_url: the webhook URL (secret; never logged).
        client: shared HTTP client.
        name: instance name (default ``"discord"``).
    """

    channel = "discord"
    options = DiscordOptions
    #: Discord webhooks allow a few requests per second (per-route buckets,
    #: https://discord.com/developers/docs/topics/rate-limits).
    min_send_interval = 0.5

    def _webhook(self) -> httpx.URL:
        """The configured webhook URL (secret), without a ``wait`` parameter."""
        url = httpx.URL(self._url.get_secret_value())
        return url.copy_remove_param("wait") if "wait" in url.params else url

    async def _call(self, method: str, url: httpx.URL, body: dict[str, Any]) -> httpx.Response:
        resp = await request_json(self._client, method, url, body, channel=self.name)
        if resp.status_code == 429:
            raise RateLimitedError(f"{self.name} rate limited (HTTP 429)", _retry_after(resp))
        raise_for_status(
            resp, channel=self.name, retry_after=None, secrets=(self._url.get_secret_value(),)
        )
        return resp

    async def _send(self, notification: Notification) -> MessageIds | None:
        """Execute the webhook with the rendered embed and ``?wait=true``.

        Returns:
            ``{"message_id": "<snowflake>"}`` from the message object Discord answers with, or
            ``None`` when the answer has none (e.g. a 204 from a proxy).

        Raises:
            RateLimitedError: 429, ``retry_after`` from the JSON body (else the header).
            PermanentNotifyError: other 4xx (e.g. 400 ``{"embeds": ["0"]}``).
            NotifyError: 5xx or network failure.
        """
        body = render_discord(notification)
        url = self._webhook().copy_merge_params({"wait": "true"})
        resp = await self._call("POST", url, body)
        data = response_json(resp) or {}
        message_id = data.get("id")
        if isinstance(message_id, str) and _SNOWFLAKE.match(message_id):
            return {"message_id": message_id}
        return None

    async def _send_update(self, notification: Notification, sent: SentMessage) -> UpdateKind:
        """Edit the first message (its embed re-rendered with the new diagnosis); without
        its id, execute the webhook with a follow-up message naming it.

        Raises:
            RateLimitedError, PermanentNotifyError (e.g. 404: the message was deleted),
            NotifyError: as :meth:`_send`.
        """
        message_id = sent.ids.get("message_id")
        webhook = self._webhook()
        if isinstance(message_id, str) and _SNOWFLAKE.match(message_id):
            url = webhook.copy_with(path=webhook.path.rstrip("/") + f"/messages/{message_id}")
            await self._call("PATCH", url, render_discord(notification))
            return "edited"
        body = {
            "content": compose_update(notification, sent, STYLE, CONTENT_MAX),
            "allowed_mentions": {"parse": []},
        }
        await self._call("POST", webhook, body)
        return "follow_up"
