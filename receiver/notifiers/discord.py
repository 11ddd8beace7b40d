"""Discord webhook notifier: one embed per notification, mentions disabled.

Limits enforced (Discord "Embed Limits", https://discord.com/developers/docs/resources/
message#embed-object-embed-limits, summarised in shared/reference/alertmanager-and-notifiers.md):
title ≤256, description ≤4096, ≤25 fields with name ≤256 and value ≤1024, footer ≤2048, and
6000 characters in total across the embed. The per-part budgets below add up to less than
:data:`EMBED_TOTAL_MAX`, so the total holds by construction.

Firing and resolved embeds differ in title, colour and fields; a resolved embed has a
``Lasted`` field (``4 min 12 s``, from ``startsAt`` to ``endsAt``) instead of the recovery
estimate.

``allowed_mentions: {"parse": []}`` stops @everyone/@here/role/user pings
(https://discord.com/developers/docs/resources/message#allowed-mentions-object); text is also
escaped with :func:`receiver.text.discord_escape`. A 429 carries JSON ``retry_after`` (float
seconds) and a ``Retry-After`` header (https://discord.com/developers/docs/topics/rate-limits).
"""

from __future__ import annotations

from typing import Any

import httpx

from receiver.models import ZERO_TIME, parse_rfc3339
from receiver.notifiers.base import (
    Notification,
    RateLimitedError,
    WebhookUrlNotifier,
    parse_retry_after_header,
    post_json,
    raise_for_status,
    retry_after_from_json,
)
from receiver.notifiers.options import NotifierOptions
from receiver.text import discord_escape, discord_plain, fit, safe_url

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
MAX_FIELDS = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000

COLOR_CRITICAL = 0xD32F2F  # red
COLOR_WARNING = 0xF57C00  # orange
COLOR_INFO = 0x1976D2  # blue
COLOR_RESOLVED = 0x2E7D32  # green

# Budgets (characters); sum < EMBED_TOTAL_MAX together with field names.
_TITLE = 200
_SUMMARY = 500
_DESCRIPTION = 1800
_INLINE_VALUE = 100
_IMPACT = 700
_ACTIONS = 900
_ROLLBACK = 500
_EVIDENCE = 300
_LINKS = 450
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


def render_discord(n: Notification) -> dict[str, Any]:
    """Render a notification as a Discord webhook body with one embed.

    Returns:
        ``{"content": "", "embeds": [embed], "allowed_mentions": {"parse": []}}``; every part
        within Discord's limits; never raises on long input.
    """
    d = n.diagnosis
    firing = n.status == "firing"
    prefix = "🔴 FIRING" if firing else "✅ RESOLVED"
    where = f" · {n.exchange}" if n.exchange else ""
    title = prefix + ": " + fit(f"{n.alertname}{where}", _TITLE - len(prefix) - 2, discord_plain)

    parts: list[str] = []
    if n.summary:
        parts.append(_esc(n.summary, _SUMMARY))
    if n.description:
        parts.append(_esc(n.description, 700))
    heading = "**Diagnosis**\n" if firing else "**Recovery check**\n"
    used = sum(len(p) + 2 for p in parts) + len(heading)
    parts.append(heading + _esc(d.diagnosis, max(100, _DESCRIPTION - used)))
    description = "\n\n".join(parts)[:DESCRIPTION_MAX]

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
    actions = "\n".join(f"{i}. {item}" for i, item in enumerate(d.action_items, 1))
    fields.append({"name": "Impact", "value": _esc(d.impact, _IMPACT), "inline": False})
    fields.append({"name": "Action items", "value": _esc(actions, _ACTIONS), "inline": False})
    fields.append(
        {"name": "Rollback plan", "value": _esc(d.rollback_plan, _ROLLBACK), "inline": False}
    )
    if d.context is not None and d.context.summary:
        fields.append(
            {"name": "Context", "value": _esc(d.context.summary, _EVIDENCE), "inline": False}
        )
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

    async def _send(self, notification: Notification) -> None:
        """POST the rendered embed.

        Raises:
            RateLimitedError: 429, ``retry_after`` from the JSON body (else the header).
            PermanentNotifyError: other 4xx (e.g. 400 ``{"embeds": ["0"]}``).
            NotifyError: 5xx or network failure.
        """
        body = render_discord(notification)
        resp = await post_json(self._client, self._url.get_secret_value(), body, channel=self.name)
        if resp.status_code == 429:
            raise RateLimitedError(f"{self.name} rate limited (HTTP 429)", _retry_after(resp))
        raise_for_status(resp, channel=self.name, retry_after=None)
