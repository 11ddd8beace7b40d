"""Slack incoming-webhook notifier: Block Kit message with a plain ``text`` fallback.

Limits enforced (Slack Block Kit reference, https://api.slack.com/reference/block-kit/blocks,
summarised in shared/reference/alertmanager-and-notifiers.md): at most 50 blocks; header
``plain_text`` ≤150 chars; section ``text`` ≤3000; at most 10 section ``fields`` of ≤2000 each;
messages over ~13,000 characters of blocks are rejected (``msg_blocks_too_long``), so the
per-block budgets below keep the whole message under :data:`MAX_TOTAL_CHARS`.

Firing and resolved messages differ in header (``🔴 FIRING`` / ``✅ RESOLVED``), context line and
fields; a resolved message says how long the incident lasted (``lasted 4 min 12 s``).

Untrusted text is escaped with :func:`receiver.text.slack_escape` (``& < >`` → entities, which
also neutralises ``<!channel>``/``<!here>``; ``@everyone``/``@here`` defanged). 429 responses
carry ``Retry-After`` in seconds (https://api.slack.com/apis/rate-limits).
"""

from __future__ import annotations

from typing import Any

from receiver.notifiers.base import (
    Notification,
    WebhookUrlNotifier,
    parse_retry_after_header,
    post_json,
    raise_for_status,
)
from receiver.notifiers.options import NotifierOptions
from receiver.text import fit, safe_url, slack_escape

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
#: Stay well below Slack's ~13k ``msg_blocks_too_long`` threshold.
MAX_TOTAL_CHARS = 12000
TEXT_MAX = 3000

# Budgets per block, in characters after escaping; they add up to less than MAX_TOTAL_CHARS.
_FIELD_VALUE = 150
_SUMMARY = 1000
_DESCRIPTION = 1500
_DIAGNOSIS = 2200
_IMPACT = 1100
_ACTIONS = 1800
_ROLLBACK = 1100
_CONTEXT = 300
_EVIDENCE = 700
_LINKS = 1500


def _esc(text: str, limit: int) -> str:
    return fit(text, limit, slack_escape)


def _section(title: str, body: str, limit: int) -> dict[str, Any]:
    head = f"*{title}*\n"
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": head + _esc(body, min(limit, SECTION_MAX) - len(head))},
    }


def _link(url: str | None, label: str) -> str | None:
    checked = safe_url(url)
    if checked is None:
        return None
    return f"<{checked.replace('&', '&amp;')}|{label}>"


def block_text_length(blocks: list[dict[str, Any]]) -> int:
    """Total characters of all text objects in ``blocks`` (what Slack counts for size)."""
    total = 0
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            total += len(str(text.get("text", "")))
        for item in block.get("fields", []) + block.get("elements", []):
            total += len(str(item.get("text", "")))
    return total


def render_slack(n: Notification) -> dict[str, Any]:
    """Render a notification as a Slack webhook body ``{"text": str, "blocks": [...]}``.

    Firing and resolved differ in header prefix (``🔴 FIRING`` / ``✅ RESOLVED``) and context
    line. Every field is capped to its limit; never raises on long input.
    """
    d = n.diagnosis
    firing = n.status == "firing"
    prefix = "🔴 FIRING" if firing else "✅ RESOLVED"
    where = f" · {n.exchange}" if n.exchange else ""
    header = (
        prefix + ": " + fit(f"{n.alertname}{where}", HEADER_MAX - len(prefix) - 2, slack_escape)
    )

    lasted = n.duration_text
    if firing:
        context = f"*Firing* since {n.starts_at}"
    else:
        context = f"*Resolved* at {n.ends_at} (started {n.starts_at})"
        if lasted:
            context += f" · lasted {lasted}"
    if n.receiver:
        context += f" · receiver {n.receiver}"
    if n.route:
        context += f" · route {n.route}"

    field_pairs = [
        ("Alert", n.alertname),
        ("Exchange", n.exchange or "-"),
        ("Endpoint", n.endpoint or "-"),
        ("Severity", n.severity or "-"),
        ("Status", n.status),
        ("Category", d.root_cause_category),
        ("Confidence", f"{d.confidence:.0%} ({d.source})"),
        ("Est. recovery", d.estimated_recovery_time) if firing else ("Lasted", lasted or "unknown"),
    ][:MAX_FIELDS]
    fields = [
        {"type": "mrkdwn", "text": f"*{title}*\n" + _esc(value, min(_FIELD_VALUE, FIELD_MAX))}
        for title, value in field_pairs
    ]

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _esc(context, _CONTEXT)}]},
        {"type": "section", "fields": fields},
    ]
    if n.summary:
        blocks.append(_section("Summary", n.summary, _SUMMARY))
    if n.description:
        blocks.append(_section("Description", n.description, _DESCRIPTION))
    blocks.append({"type": "divider"})
    title = "Diagnosis" if firing else "Recovery check"
    blocks.append(_section(f"{title} ({d.source})", d.diagnosis, _DIAGNOSIS))
    blocks.append(_section("Impact", d.impact, _IMPACT))
    if d.context is not None and d.context.summary:
        blocks.append(_section("Context (Prometheus)", d.context.summary, _EVIDENCE))
    actions = "\n".join(f"{i}. {item}" for i, item in enumerate(d.action_items, 1))
    blocks.append(_section("Action items", actions, _ACTIONS))
    blocks.append(_section("Rollback plan", d.rollback_plan, _ROLLBACK))
    links: list[str] = []
    used = 0
    for link in (
        _link(n.runbook_url, "Runbook"),
        _link(n.generator_url, "Prometheus graph"),
        _link(n.external_url, "Alertmanager"),
    ):
        # A link is kept whole or dropped: cutting one would break the <url|label> syntax.
        if link and used + len(link) + 3 <= _LINKS:
            links.append(link)
            used += len(link) + 3
    if links:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(links)}]}
        )
    blocks = blocks[:MAX_BLOCKS]

    summary = n.summary or d.diagnosis
    fallback = f"{prefix}: {n.alertname}"
    if n.exchange:
        fallback += f" [{n.exchange}]"
    if n.severity:
        fallback += f" ({n.severity})"
    if not firing and lasted:
        fallback += f" - lasted {lasted}"
    fallback += f" - {summary}"
    return {"text": _esc(fallback, TEXT_MAX), "blocks": blocks}


class SlackOptions(NotifierOptions):
    """``type: slack`` (secret ``webhook_url``)."""


class SlackNotifier(WebhookUrlNotifier):
    """Posts to a Slack incoming webhook.

    Args:
        webhook_url: the incoming-webhook URL (secret; never logged).
        client: shared HTTP client.
        name: instance name (default ``"slack"``).
    """

    channel = "slack"
    options = SlackOptions
    #: Slack: about one message per second per channel (https://api.slack.com/apis/rate-limits).
    min_send_interval = 1.0

    async def _send(self, notification: Notification) -> None:
        """POST the rendered message.

        Raises:
            RateLimitedError: 429, with ``retry_after`` from the ``Retry-After`` header.
            PermanentNotifyError: other 4xx (e.g. ``invalid_blocks``, ``no_service``).
            NotifyError: 5xx or network failure.
        """
        body = render_slack(notification)
        resp = await post_json(self._client, self._url.get_secret_value(), body, channel=self.name)
        retry_after = parse_retry_after_header(resp.headers.get("Retry-After"))
        raise_for_status(resp, channel=self.name, retry_after=retry_after)
