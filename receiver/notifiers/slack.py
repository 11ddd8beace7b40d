"""Slack incoming-webhook notifier: Block Kit message with a plain ``text`` fallback.

Limits enforced (Slack Block Kit reference, https://api.slack.com/reference/block-kit/blocks,
summarised in shared/reference/alertmanager-and-notifiers.md): at most 50 blocks; header
``plain_text`` ≤150 chars; section ``text`` ≤3000; at most 10 section ``fields`` of ≤2000 each;
messages over ~13,000 characters of blocks are rejected (``msg_blocks_too_long``), so the
per-block budgets below keep the whole message under :data:`MAX_TOTAL_CHARS`.

Layout (:func:`render_slack`): the header, the rest of the five-line summary in one section,
a divider, then the details. Firing and resolved messages differ in header (``🔴 FIRING`` /
``✅ RESOLVED``), summary, context line and fields; a resolved message says how long the
incident lasted (``lasted 4 min 12 s``). The ``text`` fallback is the five-line summary.

Untrusted text is escaped with :func:`receiver.text.slack_escape` (``& < >`` → entities, which
also neutralises ``<!channel>``/``<!here>``; ``@everyone``/``@here`` defanged). 429 responses
carry ``Retry-After`` in seconds (https://api.slack.com/apis/rate-limits).

Late diagnoses (:mod:`receiver.updates`) depend on how the instance is configured:

* ``webhook_url`` only (an incoming webhook, https://api.slack.com/messaging/webhooks): the
  webhook answers ``ok`` without the message's ``ts``, so the update is a follow-up message
  naming the first (alert, exchange, when it was sent);
* ``bot_token`` (``bot_token_env``/``bot_token_file``, a bot token with ``chat:write``) and
  ``channel``: messages are posted with the Web API method ``chat.postMessage``
  (https://api.slack.com/methods/chat.postMessage: ``POST https://slack.com/api/
  chat.postMessage``, ``Authorization: Bearer <token>``, JSON ``channel``/``text``/``blocks``;
  the answer is ``{"ok": true, "channel": "C…", "ts": "…"}`` or ``{"ok": false, "error":
  "…"}`` with HTTP 200). The first message's ``channel`` and ``ts`` are kept, and the update is
  a threaded reply: ``chat.postMessage`` with ``thread_ts`` set to that ``ts``
  (https://api.slack.com/messaging/managing#threading). A webhook URL is then optional in the
  routing file, and not used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr, field_validator

from receiver.notifiers.base import (
    MessageIds,
    Notification,
    NotifyError,
    PermanentNotifyError,
    RateLimitedError,
    SentMessage,
    UpdateKind,
    WebhookUrlNotifier,
    parse_retry_after_header,
    post_json,
    raise_for_status,
    response_json,
)
from receiver.notifiers.common import Style, render_summary
from receiver.notifiers.followup import compose_update
from receiver.notifiers.options import (
    HttpUrlOption,
    NotifierConfig,
    NotifierOptions,
    ParseContext,
    token_secret_problem,
)
from receiver.text import fit, safe_url, slack_escape

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
#: Stay well below Slack's ~13k ``msg_blocks_too_long`` threshold.
MAX_TOTAL_CHARS = 12000
TEXT_MAX = 3000
DEFAULT_API_URL = "https://slack.com/api"
#: ``chat.postMessage`` errors worth retrying (the method's documented errors; the rest -
#: ``invalid_auth``, ``channel_not_found``, ``not_in_channel``, ``invalid_blocks``… - are final).
TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
_CHANNEL = re.compile(r"^[#@]?[A-Za-z0-9._-]{1,80}$")
_CHANNEL_ID = re.compile(r"^[A-Z0-9]{1,40}$")
_TS = re.compile(r"^[0-9]{1,12}\.[0-9]{1,8}$")

STYLE = Style(escape=slack_escape, bold=lambda text: f"*{text}*")

# Budgets per block, in characters after escaping; they add up to less than MAX_TOTAL_CHARS.
_FIELD_VALUE = 150
_SUMMARY_LINE = 200
_SUMMARY = 600
_DESCRIPTION = 1200
_DIAGNOSIS = 2000
_IMPACT = 800
_ACTIONS = 1800
_ROLLBACK = 900
_CONTEXT = 300
_EVIDENCE = 700
_LINKS = 1500

#: The ``text`` fallback (notifications, previews): plain lines, no mrkdwn emphasis.
FALLBACK_STYLE = Style(escape=slack_escape)


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


def _details(n: Notification) -> list[dict[str, Any]]:
    """The blocks below the divider: status context (with the raw ``startsAt``), the fields
    (``*Alert*``, ``*Exchange*``, ``*Status*``…), annotations, the whole diagnosis, evidence,
    every action item, the rollback plan and the links."""
    d = n.diagnosis
    firing = n.firing
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
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _esc(context, _CONTEXT)}]},
        {"type": "section", "fields": fields},
    ]
    if n.summary:
        blocks.append(_section("Summary", n.summary, _SUMMARY))
    if n.description:
        blocks.append(_section("Description", n.description, _DESCRIPTION))
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
    return blocks


def render_slack(n: Notification, *, now: float | None = None) -> dict[str, Any]:
    """Render a notification as a Slack webhook body ``{"text": str, "blocks": [...]}``.

    Layout: the header block (``🔴 FIRING: <alertname> · <exchange>`` or ``✅ RESOLVED: …``),
    one section with the rest of the five-line summary (since when, impact, first action,
    diagnosis; :mod:`receiver.notifiers.summary`), a divider, then the details
    (:func:`_details`). Slack cannot collapse blocks, so the summary is what the first screen
    shows; the ``text`` fallback, which Slack uses for notifications and previews, is the
    summary alone. Every field is capped to its limit; never raises on long input.

    Args:
        n: the notification.
        now: Unix seconds for the alert's age in the summary (default: the current time).
    """
    prefix = "🔴 FIRING" if n.firing else "✅ RESOLVED"
    where = f" · {n.exchange}" if n.exchange else ""
    header = (
        prefix + ": " + fit(f"{n.alertname}{where}", HEADER_MAX - len(prefix) - 2, slack_escape)
    )
    summary = render_summary(n, STYLE, _SUMMARY_LINE, with_headline=False, now=now)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(summary)}},
        {"type": "divider"},
        *_details(n),
    ]
    # Cannot happen with the budgets above; never send an oversized body (links kept).
    while len(blocks) > 5 and (
        len(blocks) > MAX_BLOCKS or block_text_length(blocks) > MAX_TOTAL_CHARS
    ):
        blocks.pop(-2 if blocks[-1]["type"] == "context" else -1)
    fallback = render_summary(n, FALLBACK_STYLE, _SUMMARY_LINE, now=now)
    return {"text": fit("\n".join(fallback), TEXT_MAX), "blocks": blocks}


def render_slack_update(n: Notification, sent: SentMessage) -> dict[str, Any]:
    """The update of ``n`` as a Slack message body ``{"text": mrkdwn}`` (≤3000 characters):
    the late diagnosis, naming the first message (see :mod:`receiver.notifiers.followup`)."""
    return {"text": compose_update(n, sent, STYLE, TEXT_MAX)}


class SlackOptions(NotifierOptions):
    """``type: slack`` (secret ``webhook_url``, or a bot token and ``channel``)."""

    channel: str | None = None
    api_url: HttpUrlOption = DEFAULT_API_URL

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not _CHANNEL.match(value):
            raise ValueError("must be a Slack channel id (e.g. 'C0123456789') or '#name'")
        return value


class SlackNotifier(WebhookUrlNotifier):
    """Posts to a Slack incoming webhook, or with a bot token through ``chat.postMessage``.

    Args:
        webhook_url: the incoming-webhook URL (secret; never logged); ``None`` when a bot token
            and channel are given.
        client: shared HTTP client.
        name: instance name (default ``"slack"``).
        bot_token: a bot token with ``chat:write`` (secret); with ``slack_channel`` the
            messages go through the Web API and updates are threaded replies.
        slack_channel: the channel to post in (id ``C…`` or ``#name``); needs ``bot_token``.
        api_url: the Web API base (default ``https://slack.com/api``; tests point it elsewhere).

    Raises:
        ValueError: neither a webhook URL nor a bot token with a channel.
    """

    channel = "slack"
    options = SlackOptions
    extra_keys = ("bot_token", "bot_token_env", "bot_token_file")
    #: Slack: about one message per second per channel (https://api.slack.com/apis/rate-limits).
    min_send_interval = 1.0

    def __init__(
        self,
        webhook_url: SecretStr | None,
        client: httpx.AsyncClient,
        *,
        name: str | None = None,
        bot_token: SecretStr | None = None,
        slack_channel: str | None = None,
        api_url: str = DEFAULT_API_URL,
    ) -> None:
        super().__init__(webhook_url or SecretStr(""), client, name=name)
        self._bot_token = bot_token if slack_channel else None
        self.slack_channel = slack_channel if bot_token is not None else None
        self._api_url = api_url.rstrip("/")
        if webhook_url is None and not self.threads:
            raise ValueError("slack: needs webhook_url, or bot_token and channel")

    @classmethod
    def secret_required(cls, field: str, raw: Mapping[str, object]) -> bool:
        """``webhook_url`` is optional when the entry gives a bot token (``bot_token_env`` /
        ``bot_token_file``; :meth:`parse_extra` then requires ``channel``)."""
        return field != "webhook_url" or not any(k in raw for k in cls.extra_keys)

    @classmethod
    def parse_extra(
        cls, raw: Mapping[str, object], path: str, ctx: ParseContext
    ) -> dict[str, SecretStr]:
        """The optional ``bot_token`` secret (``bot_token_env``/``bot_token_file``), which
        needs ``channel`` (and the other way round)."""
        keys = [k for k in cls.extra_keys if k in raw]
        if not keys:
            if raw.get("channel") is not None:
                ctx.add(f"{path}.channel", "needs bot_token_env or bot_token_file (a bot token)")
            return {}
        token = ctx.secret(raw, "bot_token", path)
        if token is None:
            return {}
        problem = token_secret_problem(token.get_secret_value())
        if problem:
            ctx.add(f"{path}.{keys[0]}", f"bot_token: {problem}", show=False)
            return {}
        if raw.get("channel") is None:
            ctx.add(f"{path}.channel", "missing: a bot token needs the channel to post in")
            return {}
        return {"bot_token": token}

    @classmethod
    def from_config(cls, config: NotifierConfig, client: httpx.AsyncClient) -> SlackNotifier:
        """Build from a routing entry (``type: slack``)."""
        o = config.typed(SlackOptions)
        return cls(
            config.secrets.get("webhook_url"),
            client,
            name=config.name,
            bot_token=config.secret_headers.get("bot_token"),
            slack_channel=o.channel,
            api_url=o.api_url,
        )

    @property
    def threads(self) -> bool:
        """True when messages go through ``chat.postMessage`` (updates are thread replies)."""
        return self._bot_token is not None and self.slack_channel is not None

    async def _post_message(self, body: dict[str, Any]) -> dict[str, object]:
        """``chat.postMessage`` with ``body``; the answer's JSON when ``ok``.

        Raises:
            RateLimitedError: HTTP 429 (``Retry-After``).
            PermanentNotifyError: ``ok: false`` with a final error, or a 4xx.
            NotifyError: a transient error, 5xx or network failure.
        """
        assert self._bot_token is not None
        token = self._bot_token.get_secret_value()
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{self._api_url}/chat.postMessage"
        resp = await post_json(self._client, url, body, channel=self.name, headers=headers)
        retry_after = parse_retry_after_header(resp.headers.get("Retry-After"))
        raise_for_status(resp, channel=self.name, retry_after=retry_after, secrets=(token,))
        data = response_json(resp)
        if data is None:
            raise NotifyError(f"{self.name}: chat.postMessage answered without a JSON object")
        if data.get("ok") is True:
            return data
        error = str(data.get("error") or "unknown_error")[:100].replace(token, "<redacted>")
        if error == "ratelimited":
            raise RateLimitedError(f"{self.name} rate limited (ratelimited)", retry_after)
        if error in TRANSIENT_ERRORS:
            raise NotifyError(f"{self.name}: chat.postMessage failed: {error}")
        raise PermanentNotifyError(f"{self.name}: chat.postMessage refused: {error}")

    async def _send(self, notification: Notification) -> MessageIds | None:
        """POST the rendered message (to the webhook, or ``chat.postMessage`` with a bot
        token).

        Returns:
            With a bot token, ``{"channel": "C…", "ts": "…"}`` of the posted message (for the
            threaded reply); else ``None``.

        Raises:
            RateLimitedError: 429, with ``retry_after`` from the ``Retry-After`` header.
            PermanentNotifyError: other 4xx (e.g. ``invalid_blocks``, ``no_service``), or a
                final ``chat.postMessage`` error (``channel_not_found``, ``invalid_auth``…).
            NotifyError: 5xx, network failure or a transient ``chat.postMessage`` error.
        """
        body = render_slack(notification)
        if self.threads:
            data = await self._post_message({"channel": self.slack_channel, **body})
            channel, ts = data.get("channel"), data.get("ts")
            if not isinstance(channel, str) or not _CHANNEL_ID.match(channel):
                return None
            return {"channel": channel, "ts": ts} if isinstance(ts, str) and _TS.match(ts) else None
        resp = await post_json(self._client, self._url.get_secret_value(), body, channel=self.name)
        retry_after = parse_retry_after_header(resp.headers.get("Retry-After"))
        raise_for_status(resp, channel=self.name, retry_after=retry_after)
        return None

    async def _send_update(self, notification: Notification, sent: SentMessage) -> UpdateKind:
        """A threaded reply to the first message (bot token and its ``ts`` known), else a
        follow-up message naming it (through the webhook, or ``chat.postMessage``).

        Raises:
            RateLimitedError, PermanentNotifyError, NotifyError: as :meth:`_send`.
        """
        body = render_slack_update(notification, sent)
        if self.threads:
            channel, ts = sent.ids.get("channel"), sent.ids.get("ts")
            if isinstance(channel, str) and isinstance(ts, str) and _TS.match(ts):
                await self._post_message({"channel": channel, "thread_ts": ts, **body})
                return "replied"
            await self._post_message({"channel": self.slack_channel, **body})
            return "follow_up"
        resp = await post_json(self._client, self._url.get_secret_value(), body, channel=self.name)
        retry_after = parse_retry_after_header(resp.headers.get("Retry-After"))
        raise_for_status(resp, channel=self.name, retry_after=retry_after)
        return "follow_up"
