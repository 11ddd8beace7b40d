"""Helpers for untrusted text: capping, per-target escaping, mention neutralisation, URL checks.

Everything that comes from an alert (labels, annotations, URLs) or from an LLM is untrusted. Each
notifier renders it through these helpers so that:

* no field exceeds the target's limit (text is cut and ends with ``…``; nothing ever raises on
  long input);
* Slack control sequences are inert: ``& < >`` are escaped as Slack documents
  (https://api.slack.com/reference/surfaces/formatting#escaping), which also neutralises
  ``<!channel>``, ``<!here>`` and ``<@U123>``;
* bare ``@everyone`` / ``@here`` / ``@channel`` and Discord ``<@id>``, ``<@!id>``, ``<@&id>``,
  ``<#id>`` mentions are defanged with a zero-width space, so they display but never ping;
* Telegram text is HTML-escaped for ``parse_mode=HTML`` and ``@username`` mentions are defanged;
  plain-text targets (LINE, PagerDuty, Apprise) get :func:`neutralise_text`.

Limits are counted in Python characters (code points) unless a target counts UTF-16 code units
(Telegram, LINE): :func:`fit` takes the ``length`` function to measure with (:func:`utf16_len`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Re-exported: the notifiers and their tests render durations through this module.
from exchange_common.durations import format_duration as format_duration
from receiver.config_helpers import is_http_url

ELLIPSIS = "…"
ZWSP = "\u200b"

_BARE_MENTION = re.compile(r"@(everyone|here|channel)\b", re.IGNORECASE)
_DISCORD_MENTION = re.compile(r"<(@[!&]?|#|/)(?=[\w:])")
_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|\[\]>#])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_AT_WORD = re.compile(r"@(?=\w)")
_ANGLE_MENTION = re.compile(r"<(?=[!@#&/])")


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


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (characters outside the BMP, e.g. most emoji,
    count 2). Telegram and LINE count message length this way."""
    return len(text.encode("utf-16-le")) // 2


def fit(
    text: str,
    limit: int,
    transform: Callable[[str], str] = identity,
    length: Callable[[str], int] = len,
) -> str:
    """Apply ``transform`` (escaping) and cap the *result* to ``limit`` characters.

    Escaping can lengthen text (``<`` → ``&lt;``), so capping before escaping is not enough and
    capping after escaping could cut an entity in half. This finds the longest prefix of the raw
    text whose transformed form plus ``…`` fits, by binary search (``transform`` must not shrink
    when its input grows, which holds for all escapers here).

    Args:
        text: raw untrusted text.
        limit: maximum length of the returned string, as measured by ``length``.
        transform: escaping function applied to the raw text.
        length: how the target counts (``len`` for code points, :func:`utf16_len`).

    Returns:
        The transformed text, at most ``limit`` long; never raises on long input.
    """
    if limit < 1:
        return ""
    full = transform(text)
    if length(full) <= limit:
        return full
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if length(transform(text[:mid])) + 1 <= limit:
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
    return url if is_http_url(url) else None


def neutralise_text(text: str) -> str:
    """Make untrusted text inert for plain-text targets whose rendering we do not control.

    Used for LINE, PagerDuty and Apprise (which may forward to Slack, Discord, Telegram...):
    control characters are removed, a zero-width space follows every ``@`` that starts a word
    (``@everyone``, ``@here``, ``@username`` never ping) and every ``<`` that would open a
    Slack/Discord mention (``<!channel>``, ``<@U1>``, ``<#42>``, ``<@&7>``).
    """
    text = strip_control(text)
    text = _ANGLE_MENTION.sub("<" + ZWSP, text)
    return _AT_WORD.sub("@" + ZWSP, text)


def telegram_html(text: str) -> str:
    """Escape untrusted text for Telegram ``parse_mode=HTML`` and defang ``@username`` mentions.

    Telegram: "All ``<``, ``>`` and ``&`` symbols that are not a part of a tag or an HTML entity
    must be replaced with the corresponding HTML entities" (https://core.telegram.org/bots/api
    #html-style). Text with those escaped cannot open a tag, so ``<b>``, ``<a href>`` or
    ``tg://user`` links from an alert render literally. A ``@username`` in a group message
    notifies that user, so every ``@`` starting a word gets a zero-width space.
    """
    text = strip_control(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _AT_WORD.sub("@" + ZWSP, text)


def html_attr(value: str) -> str:
    """Escape a value for a double-quoted HTML attribute (``&``, ``<``, ``>`` and ``"``)."""
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
