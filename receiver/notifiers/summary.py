"""The five-line summary every chat message starts with, and the PromQL filter it relies on.

A page is read on a phone lock screen or in a notification preview first, so the top of every
message answers, in at most :data:`MAX_LINES` short lines::

    🔴 FIRING: ExchangeApiDown · binance                      what and where (the headline)
    Critical · firing since 07:22:00 UTC (3 min)               since when, how bad
    Impact: Orders, cancels and market data for Binance …      the diagnosis' impact
    First action: Check Binance's status page …                 its first action item
    Diagnosis: Binance API is not answering probes …            what it found (first sentence)

A resolved message has the same shape: what recovered, when and after how long, the residual
impact and what to check first. Everything else (annotations, the whole diagnosis, all action
items, rollback, evidence, links) goes below, folded as each platform allows.

The lines are built from the labels and the diagnosis, never from raw annotations; every line
still goes through :func:`strip_promql`, because an LLM (or a rule quoting an alert) may write a
PromQL expression or a label dump, which says nothing to someone deciding what to do. Lines here
are *raw* (unescaped, uncapped beyond :data:`TEXT_MAX`); each notifier escapes and caps them with
its own :class:`receiver.notifiers.common.Style`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from receiver.models import ZERO_TIME, parse_rfc3339
from receiver.notifiers.base import Notification
from receiver.text import ELLIPSIS, format_duration, strip_control

#: At most this many lines at the top of a message (headline included).
MAX_LINES = 5
#: Raw characters of one summary line's text before a notifier's own (smaller) cap.
TEXT_MAX = 200
#: A first sentence shorter than this is followed by the next one (when it fits).
SHORT_SENTENCE = 40
#: A severity label longer than this is not shown in the summary (it is in the details).
SEVERITY_MAX = 20

# PromQL functions and aggregation operators that take a parenthesised argument
# (https://prometheus.io/docs/prometheus/latest/querying/functions/ and /operators/).
_FUNCTIONS = (
    "abs|absent|absent_over_time|avg|avg_over_time|bottomk|ceil|changes|clamp|clamp_max|"
    "clamp_min|count|count_over_time|count_values|day_of_month|day_of_week|delta|deriv|exp|"
    "floor|group|histogram_quantile|holt_winters|idelta|increase|irate|label_join|"
    "label_replace|last_over_time|ln|log2|log10|max|max_over_time|min|min_over_time|"
    "predict_linear|present_over_time|quantile|quantile_over_time|rate|resets|round|scalar|sgn|"
    "sort|sort_desc|stddev|stddev_over_time|stdvar|stdvar_over_time|sum|sum_over_time|"
    "timestamp|topk|vector"
)
#: Modifiers that may stand apart from their parenthesis (``sum by (exchange)``).
_MODIFIERS = "by|without|group_left|group_right"
#: Modifiers too common in prose to match with a space (``on (`` …): only glued (``on(``).
_GLUED = "on|ignoring"
_CALL = re.compile(rf"\b(?:{_FUNCTIONS}|{_GLUED})\(|\b(?:{_MODIFIERS})\s*\(", re.IGNORECASE)
_GROUP = re.compile(
    rf"(?P<name>\b(?:{_FUNCTIONS}|{_MODIFIERS}|{_GLUED}))?(?P<space>\s*)\((?P<inner>[^()]*)\)",
    re.IGNORECASE,
)
_MODIFIER_NAMES = frozenset(_MODIFIERS.split("|"))
_BRACES = re.compile(r"[\w:]*\{[^{}]*\}(?:\[[^\]]*\])?|\{\{.*?\}\}")
_RANGE = re.compile(r"\[\s*\d+[smhdwy][\w:]*\s*\]")
_OFFSET = re.compile(r"\boffset\s+\d+[smhdwy]\b")
_MATCHER = re.compile(r"[\w.]+\s*(?:=~|!~|!=|==|=)\s*\"[^\"]*\"")
#: A metric name (with ``_`` or ``:``) compared with something; the lookahead keeps it linear.
_COMPARISON = re.compile(
    r"\b(?=[\w:]*[_:])[a-zA-Z_:][\w:]*\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?-?[\w.]+"
)
#: Recording-rule names (``level:metric:operations``) and snake_case names of 3+ words.
_METRIC_NAME = re.compile(
    r"\b[a-z][a-z0-9]*(?::[a-z0-9_]+){2,}\b|\b[a-z][a-z0-9]*(?:_[a-z0-9]+){2,}\b"
)
_KEY_VALUE = re.compile(r"\b[a-z_][a-z0-9_]*=[^\s,;)]+")
_EVIDENCE = re.compile(r"\s*\bEvidence\b\s*[-:—–].*$", re.DOTALL)
#: Where PromQL was cut out, until the orphan operators around it are gone.
_CUT = "\x02"
_OPERATOR = r"(?:==|!=|>=|<=|=~|!~|[-+*/%^<>=]|\band\b|\bor\b|\bunless\b)"
_ORPHANS = (
    re.compile(rf"{_CUT}\s*{_OPERATOR}\s*(?:bool\s+)?(?:{_CUT}|-?\d[\w.]*)"),
    re.compile(rf"\s{_OPERATOR}\s*{_CUT}"),
    re.compile(rf"\b(?:{_FUNCTIONS}|{_MODIFIERS}|{_GLUED})\s*{_CUT}", re.IGNORECASE),
)
_PROMQL_SIGNS = (_BRACES, _RANGE, _OFFSET, _MATCHER, _COMPARISON, _CALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_SEVERITY_LEAD = re.compile(r"^\s*Severity\s+[\w-]+\s*[.:;]\s*", re.IGNORECASE)


def looks_like_promql(text: str) -> bool:
    """True when ``text`` contains something that reads as PromQL: a ``{…}`` selector (or a
    leftover ``{{ … }}`` template), a range ``[5m]``, ``offset 5m``, a label matcher
    ``name="value"``, a comparison of a metric name (``exchange_api_up == 0``) or a function
    or aggregation call (``rate(``, ``sum by (``)."""
    return any(sign.search(text) for sign in _PROMQL_SIGNS)


def _tidy(text: str) -> str:
    text = re.sub(r"\(\s*[,;:]?\s*\)|\[\s*\]", "", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:!?)])", r"\1", text)
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"([,;:])\s*([.!?)])", r"\2", text)
    return text.strip(" ,;:-—–")


def strip_promql(text: str) -> str:
    """``text`` without its PromQL: expressions, selectors, label matchers, metric names and
    ``key=value`` label dumps are removed, and an ``Evidence - …`` tail (the rule-based
    diagnosis' label and annotation dump) is dropped; the remaining prose is tidied (no empty
    parentheses, no doubled punctuation, single spaces).

    Args:
        text: raw untrusted text (an annotation, a diagnosis sentence).

    Returns:
        The text without PromQL, possibly ``""``; never raises.

    Example:
        ``"binance failed its last probe (exchange_api_up == 0), 3 times"`` →
        ``"binance failed its last probe, 3 times"``.
    """
    text = _EVIDENCE.sub("", strip_control(text))
    text = _BRACES.sub(_CUT, text)
    previous = None
    while previous != text:  # innermost parentheses first, so nested calls go too
        previous = text
        text = _GROUP.sub(_group_replacement, text)
    text = text.replace(_OPEN, "(").replace(_CLOSE, ")")
    for pattern in (_RANGE, _OFFSET, _MATCHER, _COMPARISON, _METRIC_NAME, _KEY_VALUE):
        text = pattern.sub(_CUT, text)
    previous = None
    while previous != text:
        previous = text
        text = re.sub(rf"{_CUT}\s*{_CUT}", _CUT, text)
        for orphan in _ORPHANS:
            text = orphan.sub(_CUT, text)
    return _tidy(text.replace(_CUT, " "))


_OPEN, _CLOSE = "\x00", "\x01"  # kept parentheses, hidden until the end of the loop


def _group_replacement(m: re.Match[str]) -> str:
    """Remove a parenthesised group that is PromQL: named by a function or modifier glued to
    it (``rate(``) or by a modifier (``by (``), or whose content reads as PromQL or is empty
    once its inner PromQL is gone. Kept groups get placeholder parentheses, so the group
    around them can be judged on the next pass."""
    name, space, inner = m.group("name"), m.group("space"), m.group("inner")
    named = name is not None and (not space or name.lower() in _MODIFIER_NAMES)
    if named or looks_like_promql(inner) or not inner.strip(f" ,;{_CUT}"):
        return _CUT
    return f"{name or ''}{space}{_OPEN}{inner}{_CLOSE}"


def one_line(text: str, limit: int = TEXT_MAX) -> str:
    """``text`` on one line (whitespace collapsed), cut at a word boundary to ``limit`` raw
    characters with ``…``."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + ELLIPSIS


def first_sentences(text: str, limit: int = TEXT_MAX) -> str:
    """The first sentence of ``text`` (and the next ones while the result is shorter than
    :data:`SHORT_SENTENCE` and fits ``limit``), PromQL removed, on one line of at most
    ``limit`` raw characters; a leading ``Severity <x>.`` is skipped (the summary shows it)."""
    # Only the start can reach the line; cutting first bounds the regex work on long text.
    text = strip_promql(_SEVERITY_LEAD.sub("", text.strip()[: limit * 4]))
    sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
    if not sentences:
        return ""
    out = sentences[0]
    for sentence in sentences[1:]:
        if len(out) >= SHORT_SENTENCE or len(out) + 1 + len(sentence) > limit:
            break
        out += " " + sentence
    return one_line(out, limit)


def _time(value: str, now: float) -> str | None:
    """``07:22:00 UTC`` on the day of ``now``, else ``2026-11-21 07:22 UTC``; None if unknown."""
    if value == ZERO_TIME:
        return None
    try:
        at = parse_rfc3339(value).astimezone(UTC)
    except ValueError:
        return None
    if at.date() == datetime.fromtimestamp(now, UTC).date():
        return at.strftime("%H:%M:%S UTC")
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _age(value: str, now: float) -> str | None:
    try:
        seconds = now - parse_rfc3339(value).timestamp()
    except ValueError:
        return None
    return format_duration(seconds) if seconds >= 0 else None


def severity_word(n: Notification) -> str | None:
    """The ``severity`` label capitalised (``Critical``), or None when absent or too long."""
    severity = (n.severity or "").strip()
    if not severity or len(severity) > SEVERITY_MAX:
        return None
    return severity[:1].upper() + severity[1:]


def since_line(n: Notification, now: float | None = None) -> str:
    """Line 2: ``Critical · firing since 07:22:00 UTC (3 min)``, or for a resolved alert
    ``Critical · resolved at 07:26:12 UTC · lasted 4 min 12 s`` (raw).

    Args:
        n: the notification.
        now: Unix seconds to measure the age from (default: the current time).
    """
    now = time.time() if now is None else now
    parts = [w] if (w := severity_word(n)) else []
    if n.firing:
        started = _time(n.starts_at, now)
        text = f"firing since {started}" if started else "firing"
        age = _age(n.starts_at, now) if started else None
        parts.append(text + (f" ({age})" if age else ""))
    else:
        ended = _time(n.ends_at, now)
        parts.append(f"resolved at {ended}" if ended else "resolved")
        if n.duration_text:
            parts.append(f"lasted {n.duration_text}")
    line = " · ".join(parts)
    return line[:1].upper() + line[1:]


@dataclass(frozen=True)
class SummaryLine:
    """One line of the summary.

    Attributes:
        label: ``""`` for the headline and the since line, else ``Impact``, ``First action``,
            ``Check first``, ``Diagnosis`` or ``Recovery check`` (shown bold, then ``: ``).
        text: raw one-line text, no PromQL, at most :data:`TEXT_MAX` characters.
    """

    label: str
    text: str


def headline(n: Notification) -> str:
    """``🔴 FIRING: <alertname> · <exchange>`` or ``✅ RESOLVED: …`` (raw, unescaped)."""
    prefix = "🔴 FIRING" if n.firing else "✅ RESOLVED"
    where = f" · {n.exchange}" if n.exchange else ""
    return f"{prefix}: {n.alertname}{where}"


def detail_lines(n: Notification) -> list[SummaryLine]:
    """Lines 3-5: the impact, the first action item and what the diagnosis found (raw, each
    one line without PromQL; a line whose text is empty after filtering is left out)."""
    d = n.diagnosis
    first = d.action_items[0] if d.action_items else ""
    lines = [
        SummaryLine("Impact", first_sentences(d.impact)),
        SummaryLine("First action" if n.firing else "Check first", first_sentences(first)),
        SummaryLine("Diagnosis" if n.firing else "Recovery check", first_sentences(d.diagnosis)),
    ]
    return [line for line in lines if line.text]


def summary_lines(n: Notification, now: float | None = None) -> list[SummaryLine]:
    """The whole summary (at most :data:`MAX_LINES`): headline, since line, then
    :func:`detail_lines`.

    Args:
        n: the notification.
        now: Unix seconds for the alert's age (default: the current time).
    """
    top = [SummaryLine("", headline(n)), SummaryLine("", since_line(n, now))]
    return (top + detail_lines(n))[:MAX_LINES]


def plain_summary(n: Notification, now: float | None = None) -> str:
    """The summary as raw plain text, one line each (``Impact: …``); callers escape it."""
    return "\n".join(
        f"{line.label}: {line.text}" if line.label else line.text for line in summary_lines(n, now)
    )
