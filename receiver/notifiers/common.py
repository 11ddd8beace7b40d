"""The text message shared by the text-only notifiers (Telegram, LINE, Apprise).

:func:`compose` lays a notification out summary first (:mod:`receiver.notifiers.summary`),
details folded below::

    <headline>                      🔴 FIRING: ExchangeApiDown · binance
    <since>                         Critical · firing since 07:22:00 UTC (3 min)
    Impact: …                       the diagnosis' impact, one line
    First action: …                 its first action item, one line
    Diagnosis: …                    what it found, one line (no PromQL in any of these)
    <fold>                          a separator line, or Telegram's <blockquote expandable>
    <status line>                   Firing since 2026-11-21 07:22:00 UTC
    <facts>                         Exchange: binance · Endpoint: … · Severity: critical · …

    <Summary> / <Description> / <Diagnosis|Recovery check> / <Impact> / <Action items> /
    <Rollback plan> / <Context (Prometheus)>   (each a bold title line and its text)
    </fold>

    <links>                         Runbook · Prometheus graph · Alertmanager

A resolved message starts ``✅ RESOLVED`` and says when it ended and how long it lasted.
The result never exceeds ``limit`` (as the target counts length): the summary comes first (its
lines dropped from the last when even they do not fit), then the links are kept whole and
reserved, so a cut message still links to the details; the detail sections share what is left
(short ones whole, long ones cut with ``…``). Escaping is the target's (:class:`Style`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from receiver.notifiers.base import Notification, human_time
from receiver.notifiers.summary import SummaryLine, summary_lines
from receiver.notifiers.summary import headline as headline
from receiver.text import fit, safe_url

HEADLINE_MAX = 200
STATUS_MAX = 300
FACTS_MAX = 400
#: Most room one summary line may take (as the target counts, markup included).
SUMMARY_LINE_MAX = 220
#: Shortest cap of a summary line, however small the message limit.
SUMMARY_LINE_MIN = 40
#: The line between the summary and the details of a plain-text message.
DETAILS_SEPARATOR = "────────── details ──────────"


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
        fold_open, fold_close: markup around the details, when the target can fold them away
            (Telegram's ``<blockquote expandable>``); empty for plain text.
        separator: a line between the summary and the details (``""``: none).
    """

    escape: Callable[[str], str]
    bold: Callable[[str], str] = _same
    link: Callable[[str, str], str] = _plain_link
    length: Callable[[str], int] = len
    link_separator: str = "\n"
    fold_open: str = ""
    fold_close: str = ""
    separator: str = DETAILS_SEPARATOR


def render_summary_line(line: SummaryLine, style: Style, cap: int) -> str:
    """One summary line in ``style``: ``<b>Impact:</b> text`` (labelled) or the text alone,
    at most ``cap`` long as the target counts (the text is cut with ``…``)."""
    if not line.label:
        return fit(line.text, cap, style.escape, style.length)
    label = style.bold(style.escape(line.label + ":")) + " "
    return label + fit(line.text, max(1, cap - style.length(label)), style.escape, style.length)


def render_summary(
    n: Notification,
    style: Style,
    cap: int = SUMMARY_LINE_MAX,
    *,
    with_headline: bool = True,
    now: float | None = None,
) -> list[str]:
    """The summary lines of ``n`` (:func:`receiver.notifiers.summary.summary_lines`) rendered
    in ``style``, each at most ``cap`` long; the headline bold (left out without
    ``with_headline``, for targets that show it as a title).

    Args:
        n: the notification.
        style: the target's escaping and markup.
        cap: most length of one line, as the target counts.
        with_headline: include the headline line.
        now: Unix seconds for the alert's age (default: the current time).
    """
    out: list[str] = []
    for i, line in enumerate(summary_lines(n, now)):
        if i == 0:
            if with_headline:
                out.append(style.bold(render_summary_line(line, style, min(cap, HEADLINE_MAX))))
            continue
        out.append(render_summary_line(line, style, cap))
    return out


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
    """``(title, raw text)`` of every non-empty detail section, in display order."""
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
    if d.context is not None and d.context.summary:
        out.append(("Context (Prometheus)", d.context.summary))
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


def render_sections(blocks: list[tuple[str, str]], style: Style, available: int) -> list[str]:
    """Titled sections (``(raw title, raw body)``) sharing ``available`` (as the target counts,
    ``\\n\\n`` before each included): trailing sections whose titles do not fit are dropped,
    the bodies share the rest fairly (:func:`allocate`) and are cut with ``…``."""
    sep = "\n\n"
    length = style.length
    titled = [(style.bold(style.escape(title)) + "\n", body) for title, body in blocks]
    while titled:
        overhead = sum(length(t) + len(sep) for t, _ in titled)
        if overhead + 2 * len(titled) <= available:
            break
        titled.pop()
    if not titled:
        return []
    overhead = sum(length(t) + len(sep) for t, _ in titled)
    needs = [length(style.escape(body)) for _, body in titled]
    budgets = allocate(needs, available - overhead)
    return [
        title + fit(body, budget, style.escape, length)
        for (title, body), budget in zip(titled, budgets, strict=True)
    ]


def fold(head: list[str], blocks: list[tuple[str, str]], style: Style, budget: int) -> str:
    """The folded details: ``style.fold_open``, ``style.separator``, the ``head`` lines
    (rendered), the sections, ``style.fold_close``; ``""`` when not even the head fits in
    ``budget``. Never longer than ``budget``."""
    length = style.length
    opening = style.fold_open + (style.separator + "\n" if style.separator else "")
    top = "\n".join(head)
    fixed = length(opening) + length(top) + length(style.fold_close)
    if fixed > budget:
        return ""
    rendered = render_sections(blocks, style, budget - fixed)
    return opening + "\n\n".join([top, *rendered]) + style.fold_close


def compose(
    n: Notification,
    style: Style,
    limit: int,
    *,
    with_headline: bool = True,
    link_budget: int = 800,
    now: float | None = None,
) -> str:
    """Render ``n`` as one text message of at most ``limit`` (see the module docstring).

    Args:
        n: the notification.
        style: the target's escaping and markup.
        limit: the target's maximum message length, measured with ``style.length``.
        with_headline: start with the headline (off when the target shows it as a title).
        link_budget: most room the links may take (whole links only).
        now: Unix seconds for the alert's age in the summary (default: the current time).

    Returns:
        The message; never longer than ``limit``, never raises on long input.
    """
    length = style.length
    cap = max(SUMMARY_LINE_MIN, min(SUMMARY_LINE_MAX, limit // 8))
    lines = render_summary(n, style, cap, with_headline=with_headline, now=now)
    keep = 2 if with_headline else 1  # the headline and the since line, at least
    while len(lines) > keep and length("\n".join(lines)) > limit:
        lines.pop()
    top = "\n".join(lines)
    if length(top) > limit:
        return fit(headline(n) + "\n" + status_line(n), limit, style.escape, length)

    sep = "\n\n"
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

    budget = limit - length(top) - 1 - (length(footer) + len(sep) if footer else 0)
    head = [
        fit(status_line(n), STATUS_MAX, style.escape, length),
        fit(facts_line(n), FACTS_MAX, style.escape, length),
    ]
    details = fold(head, sections(n), style, budget)
    text = top + ("\n" + details if details else "") + (sep + footer if footer else "")
    if length(text) > limit:  # cannot happen by construction; never send an oversized body
        text = fit(headline(n) + "\n" + status_line(n), limit, style.escape, length)
    return text
