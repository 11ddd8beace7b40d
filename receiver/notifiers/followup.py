"""The text of an update message: a late LLM diagnosis that follows a page already sent.

Targets that cannot edit the first message (Slack incoming webhooks, LINE, Discord or Telegram
when the first message's id is unknown) send this as a new message, and Slack with a bot token
as a threaded reply. :func:`compose_update` lays it out like a page, summary first
(:mod:`receiver.notifiers.summary`), details folded below::

    <headline>          🔄 Update: diagnosis · ExchangeApiDown · binance
    <reference line>    LLM diagnosis for the page sent 2026-11-21 07:22:05 UTC (firing since …)
    Impact: …           the new diagnosis' impact, first action and finding, one line each
    First action: …
    Diagnosis: …
    <fold>              a separator line, or Telegram's <blockquote expandable>
    <facts>             Exchange: binance · Endpoint: … · Severity: critical · Category: … · …

    <Diagnosis (llm)> / <Impact> / <Action items>   (each a bold title line and its text)

The first lines say what it updates (alert, exchange, when the page was sent), so it reads on
its own. Untrusted text (labels, the LLM's answer) goes through the target's :class:`Style`
(escaping, mention neutralisation) and the result never exceeds ``limit`` as the target counts.
"""

from __future__ import annotations

from receiver.notifiers.base import Notification, SentMessage, human_time
from receiver.notifiers.common import (
    FACTS_MAX,
    HEADLINE_MAX,
    STATUS_MAX,
    SUMMARY_LINE_MAX,
    SUMMARY_LINE_MIN,
    Style,
    facts_line,
    fold,
    render_summary_line,
)
from receiver.notifiers.summary import MAX_LINES, detail_lines
from receiver.text import fit

UPDATE_PREFIX = "🔄 Update: diagnosis"


def update_headline(n: Notification) -> str:
    """``🔄 Update: diagnosis · <alertname> · <exchange>`` (raw, unescaped)."""
    where = f" · {n.exchange}" if n.exchange else ""
    return f"{UPDATE_PREFIX} · {n.alertname}{where}"


def reference_line(n: Notification, sent: SentMessage) -> str:
    """Which message this updates: when the page was sent and since when the alert fires."""
    when = sent.sent_text
    first = f"the page sent {when}" if when else "the page already sent"
    return f"LLM diagnosis for {first} (firing since {human_time(n.starts_at)})"


def update_sections(n: Notification) -> list[tuple[str, str]]:
    """``(title, raw text)`` of the update's sections: the diagnosis, impact, action items."""
    d = n.diagnosis
    actions = "\n".join(f"{i}. {a}" for i, a in enumerate(d.action_items, 1))
    return [
        (f"Diagnosis ({d.source})", d.diagnosis),
        ("Impact", d.impact),
        ("Action items", actions),
    ]


def compose_update(n: Notification, sent: SentMessage, style: Style, limit: int) -> str:
    """Render the update of ``n`` (see the module docstring) in at most ``limit``.

    Args:
        n: the notification, carrying the new diagnosis.
        sent: what was recorded of the first message (its time may be unknown).
        style: the target's escaping and markup.
        limit: the target's maximum message length, measured with ``style.length``.

    Returns:
        The message; never longer than ``limit``, never raises on long input.
    """
    length = style.length
    cap = max(SUMMARY_LINE_MIN, min(SUMMARY_LINE_MAX, limit // 8))
    lines = [
        style.bold(fit(update_headline(n), min(cap, HEADLINE_MAX), style.escape, length)),
        fit(reference_line(n, sent), min(cap, STATUS_MAX), style.escape, length),
    ]
    lines += [render_summary_line(line, style, cap) for line in detail_lines(n)]
    lines = lines[:MAX_LINES]
    while len(lines) > 2 and length("\n".join(lines)) > limit:
        lines.pop()
    top = "\n".join(lines)
    if length(top) > limit:
        return fit(update_headline(n), limit, style.escape, length)
    head = [fit(facts_line(n), FACTS_MAX, style.escape, length)]
    details = fold(head, update_sections(n), style, limit - length(top) - 1)
    text = top + ("\n" + details if details else "")
    if length(text) > limit:  # cannot happen by construction; never send an oversized body
        text = fit(update_headline(n), limit, style.escape, length)
    return text
