"""Helpers for untrusted text: capping, per-target escaping, mention neutralisation, URL checks.

Everything that comes from an alert (labels, annotations, URLs) or from an LLM is untrusted. Each
notifier renders it through these helpers so that:

* no field exceeds the target's limit (text is cut and ends with ``…``; nothing ever raises on
  long input);
* Slack control sequences are inert: ``& < >`` are escaped as Slack documents
  (https://api.slack.com/reference/surfaces/formatting#escaping), which also neutralises
  ``<!channel>``, ``<!here>`` and ``<@U123>``;
* bare ``@everyone`` / ``@here`` / ``@channel`` and Discord ``<@id>``, ``<@!id>``, ``<@&id>``,
  ``<#id>`` mentions are defanged with a zero-width space, so they display but never ping.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

ELLIPSIS = "…"
ZWSP = "\u200b"

_BARE_MENTION = re.compile(r"@(everyone|here|channel)\b", re.IGNORECASE)
_DISCORD_MENTION = re.compile(r"<(@[!&]?|#|/)(?=[\w:])")
_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|\[\]>#])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def identity(text: str) -> str:
    """Return ``text`` unchanged (the transform for targets without escaping rules)."""
    return text


def strip_control(text: str) -> str:
    """Remove ASCII control characters except tab, newline and carriage return."""
    return _CONTROL.sub("", text)


def cap(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with ``…`` when cut.

    Args:
        text: any string.
        limit: maximum length in characters (Python ``len``); values < 1 yield ``""``.

    Returns:
        ``text`` itself when short enough, else a prefix plus ``…`` of exactly ``limit`` chars.
    """
    if limit < 1:
        return ""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def fit(text: str, limit: int, transform: Callable[[str], str] = identity) -> str:
    """Apply ``transform`` (escaping) and cap the *result* to ``limit`` characters.

    Escaping can lengthen text (``<`` → ``&lt;``), so capping before escaping is not enough and
    capping after escaping could cut an entity in half. This finds the longest prefix of the raw
    text whose transformed form plus ``…`` fits, by binary search (``transform`` must not shrink
    when its input grows, which holds for all escapers here).

    Args:
        text: raw untrusted text.
        limit: maximum length of the returned string, in characters.
        transform: escaping function applied to the raw text.

    Returns:
        The transformed text, at most ``limit`` characters; never raises on long input.
    """
    if limit < 1:
        return ""
    full = transform(text)
    if len(full) <= limit:
        return full
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(transform(text[:mid])) + 1 <= limit:
            lo = mid
        else:
            hi = mid - 1
    return transform(text[:lo]) + ELLIPSIS


def defang_mentions(text: str) -> str:
    """Insert a zero-width space after ``@`` in ``@everyone``, ``@here`` and ``@channel``."""
    return _BARE_MENTION.sub(lambda m: "@" + ZWSP + m.group(1), text)


def slack_escape(text: str) -> str:
    """Escape untrusted text for Slack ``mrkdwn``/``plain_text`` and defang bare mentions.

    Slack requires ``&``, ``<`` and ``>`` to be sent as ``&amp;``, ``&lt;``, ``&gt;``
    (https://api.slack.com/reference/surfaces/formatting#escaping); once escaped, ``<!channel>``,
    ``<!here>`` and ``<@U…>`` are shown literally instead of notifying anyone.
    """
    text = strip_control(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return defang_mentions(text)


def discord_escape(text: str) -> str:
    """Escape untrusted text for Discord markdown and neutralise every mention form.

    Markdown control characters are backslash-escaped (so ``[x](https://evil)`` cannot become a
    masked link), and ``@everyone``/``@here`` plus ``<@id>``, ``<@!id>``, ``<@&id>``, ``<#id>``
    get a zero-width space. The webhook body also sets ``allowed_mentions: {"parse": []}``
    (https://discord.com/developers/docs/resources/message#allowed-mentions-object), so this is
    defence in depth and keeps the text from *looking* like a ping.
    """
    text = strip_control(text)
    text = _DISCORD_MARKDOWN.sub(r"\\\1", text)
    text = _DISCORD_MENTION.sub(lambda m: "<" + ZWSP + m.group(1), text)
    return defang_mentions(text)


def discord_plain(text: str) -> str:
    """Neutralise mentions in Discord text that is not markdown-rendered (titles, names)."""
    text = strip_control(text)
    text = _DISCORD_MENTION.sub(lambda m: "<" + ZWSP + m.group(1), text)
    return defang_mentions(text)


def safe_url(url: str | None, max_len: int = 2000) -> str | None:
    """Return ``url`` if it is a plain absolute http(s) URL that is safe to link, else ``None``.

    Rejects other schemes (``javascript:``, ``file:``…), URLs without a host, URLs longer than
    ``max_len`` and URLs containing whitespace, quotes or the ``< > |`` characters that would break
    Slack's ``<url|text>`` link syntax.
    """
    if not url or len(url) > max_len:
        return None
    if any(c.isspace() or c in '<>|"`\\' for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url
