"""The text message shared by the text-only notifiers (Telegram, LINE, Apprise).

:func:`compose` lays a notification out as::

    <headline>                      🔴 FIRING: ExchangeApiDown · binance
    <status line>                   Firing since 2026-11-21 07:22:00 UTC
    <facts>                         Exchange: binance · Endpoint: … · Severity: critical · …

    <Summary> / <Description> / <Diagnosis|Recovery check> / <Impact> / <Action items> /
    <Rollback plan>                 (each a bold title line and its text)

    <links>                         Runbook · Prometheus graph · Alertmanager

A resolved message starts ``✅ RESOLVED`` and its status line says how long the incident lasted.
The result never exceeds ``limit`` (as the target counts length): the links are kept whole and
reserved first, so a cut message still links to the details; the sections share what is left
(short ones whole, long ones cut with ``…``). Escaping is the target's (:class:`Style`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from receiver.notifiers.base import Notification, human_time
from receiver.text import fit, safe_url

HEADLINE_MAX = 200
STATUS_MAX = 300
FACTS_MAX = 400


def _same(text: str) -> str:
    return text


def _plain_link(label: str, url: str) -> str:
    return f"{label}: {url}"


@dataclass(frozen=True)
class Style:
    """How a target marks text up.

    Attributes:
        escape: untrusted raw text → safe target text (escaping, mention neutralisation).
        bold: already-escaped text → emphasised text (identity for plain text).
        link: ``(label, checked http(s) URL)`` → a link in the target's syntax.
        length: how the target measures length (``len`` or :func:`receiver.text.utf16_len`).
        link_separator: between two links.
    """

    escape: Callable[[str], str]
    bold: Callable[[str], str] = _same
    link: Callable[[str, str], str] = _plain_link
    length: Callable[[str], int] = len
    link_separator: str = "\n"


def headline(n: Notification) -> str:
    """``🔴 FIRING: <alertname> · <exchange>`` or ``✅ RESOLVED: …`` (raw, unescaped)."""
    prefix = "🔴 FIRING" if n.firing else "✅ RESOLVED"
    where = f" · {n.exchange}" if n.exchange else ""
    return f"{prefix}: {n.alertname}{where}"


def status_line(n: Notification) -> str:
    """When it started, or when it ended and how long it lasted (raw)."""
    if n.firing:
        return f"Firing since {human_time(n.starts_at)}"
    line = f"Resolved at {human_time(n.ends_at)}"
    lasted = n.duration_text
    if lasted:
        line += f" · lasted {lasted}"
    return line + f" (started {human_time(n.starts_at)})"


def facts_line(n: Notification) -> str:
    """``Exchange: … · Endpoint: … · Severity: … · Category: … · Confidence: …`` (raw)."""
    d = n.diagnosis
    facts = [
        ("Exchange", n.exchange),
        ("Endpoint", n.endpoint),
        ("Severity", n.severity),
        ("Category", d.root_cause_category),
        ("Confidence", f"{d.confidence:.0%} ({d.source})"),
    ]
    if n.firing:
        facts.append(("Est. recovery", d.estimated_recovery_time))
    return " · ".join(f"{label}: {value[:120]}" for label, value in facts if value)


def links(n: Notification) -> list[tuple[str, str]]:
    """``(label, url)`` of the runbook, the Prometheus graph and Alertmanager, safe URLs only."""
    out: list[tuple[str, str]] = []
    for label, url in (
        ("Runbook", n.runbook_url),
        ("Prometheus graph", n.generator_url),
        ("Alertmanager", n.external_url),
    ):
        checked = safe_url(url)
        if checked is not None:
            out.append((label, checked))
    return out


def sections(n: Notification) -> list[tuple[str, str]]:
    """``(title, raw text)`` of every non-empty section, in display order."""
    d = n.diagnosis
    out: list[tuple[str, str]] = []
    if n.summary:
        out.append(("Summary", n.summary))
    if n.description:
        out.append(("Description", n.description))
    title = "Diagnosis" if n.firing else "Recovery check"
    out.append((f"{title} ({d.source})", d.diagnosis))
    out.append(("Impact", d.impact))
    out.append(("Action items", "\n".join(f"{i}. {a}" for i, a in enumerate(d.action_items, 1))))
    out.append(("Rollback plan", d.rollback_plan))
    return out


def allocate(needs: list[int], budget: int) -> list[int]:
    """Share ``budget`` between parts needing ``needs``: small parts get all they need, the
    rest is split evenly between the larger ones (max-min fair). Never exceeds ``budget``."""
    alloc = [0] * len(needs)
    remaining = max(0, budget)
    left = len(needs)
    for i in sorted(range(len(needs)), key=lambda k: needs[k]):
        share = remaining // left
        alloc[i] = min(needs[i], share)
        remaining -= alloc[i]
        left -= 1
    return alloc


def compose(
    n: Notification,
    style: Style,
    limit: int,
    *,
    with_headline: bool = True,
    link_budget: int = 800,
) -> str:
    """Render ``n`` as one text message of at most ``limit`` (see the module docstring).

    Args:
        n: the notification.
        style: the target's escaping and markup.
        limit: the target's maximum message length, measured with ``style.length``.
        with_headline: start with the headline (off when the target shows it as a title).
        link_budget: most room the links may take (whole links only).

    Returns:
        The message; never longer than ``limit``, never raises on long input.
    """
    length = style.length
    sep = "\n\n"
    head: list[str] = []
    if with_headline:
        head.append(style.bold(fit(headline(n), HEADLINE_MAX, style.escape, length)))
    head.append(fit(status_line(n), STATUS_MAX, style.escape, length))
    head.append(fit(facts_line(n), FACTS_MAX, style.escape, length))
    top = "\n".join(head)
    if length(top) > limit:
        return fit(headline(n) + "\n" + status_line(n), limit, style.escape, length)

    footer_parts: list[str] = []
    used = 0
    room = min(link_budget, limit - length(top) - len(sep))
    for label, url in links(n):
        part = style.link(label, url)
        extra = length(part) + (length(style.link_separator) if footer_parts else 0)
        if used + extra <= room:  # a link is kept whole or dropped
            footer_parts.append(part)
            used += extra
    footer = style.link_separator.join(footer_parts)

    available = limit - length(top) - (length(footer) + len(sep) if footer else 0)
    blocks: list[tuple[str, str]] = []  # (rendered title, raw body)
    for title, body in sections(n):
        blocks.append((style.bold(style.escape(title)) + "\n", body))
    # Drop trailing sections while even their titles do not fit.
    while blocks:
        overhead = sum(length(t) + len(sep) for t, _ in blocks)
        if overhead + 2 * len(blocks) <= available:
            break
        blocks.pop()
    rendered: list[str] = []
    if blocks:
        overhead = sum(length(t) + len(sep) for t, _ in blocks)
        needs = [length(style.escape(body)) for _, body in blocks]
        for (title, body), budget in zip(
            blocks, allocate(needs, available - overhead), strict=True
        ):
            rendered.append(title + fit(body, budget, style.escape, length))
    text = sep.join([top, *rendered, *([footer] if footer else [])])
    if length(text) > limit:  # cannot happen by construction; never send an oversized body
        text = fit(headline(n) + "\n" + status_line(n), limit, style.escape, length)
    return text
