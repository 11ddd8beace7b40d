"""Telegram notifier: Bot API ``sendMessage`` with ``parse_mode=HTML``.

Platform facts (Telegram Bot API, https://core.telegram.org/bots/api):

* ``POST https://api.telegram.org/bot<token>/sendMessage`` with a JSON body ("Making requests":
  https://core.telegram.org/bots/api#making-requests). The token is in the URL path, so the URL
  is a secret: it never appears in messages or logs.
* ``sendMessage`` (https://core.telegram.org/bots/api#sendmessage): ``chat_id`` (integer or
  ``@channelusername``), ``text`` of 1-4096 characters *after entities parsing*,
  ``parse_mode``, ``link_preview_options`` (Bot API 7.0+, replaces
  ``disable_web_page_preview``), ``message_thread_id`` for forum topics.
* HTML style (https://core.telegram.org/bots/api#html-style): supported tags ``<b> <i> <a
  href> <code> <pre> <blockquote>…``; every ``<``, ``>`` and ``&`` that is not part of a tag or
  entity must be written as ``&lt;`` ``&gt;`` ``&amp;``. Untrusted text goes through
  :func:`receiver.text.telegram_html`, which also defangs ``@username`` mentions.
* ``<blockquote expandable>`` is a quotation collapsed by default, the reader taps to expand it
  (same HTML-style section; added in Bot API 7.4, https://core.telegram.org/bots/api-changelog
  #may-28-2024). Blockquote entities cannot be nested and, bold aside, entities do not contain
  each other, so the message is: the five-line summary (:mod:`receiver.notifiers.summary`), the
  details inside one ``<blockquote expandable>`` (bold titles only), then the links outside it
  (:func:`receiver.notifiers.common.compose`).
* Errors: ``{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 5",
  "parameters": {"retry_after": 5}}``; ``parameters.retry_after`` is the number of seconds to
  wait, ``parameters.migrate_to_chat_id`` the new id of a group upgraded to a supergroup
  (ResponseParameters, https://core.telegram.org/bots/api#responseparameters).
* Pace: about one message per second per chat, at most 20 per minute in a group
  (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this).

The 4096 limit counts UTF-16 code units of the visible text; this renderer keeps the *raw HTML*
(tags included, always at least as long as the visible text) within 4096 UTF-16 code units, so
the limit holds whatever Telegram strips. Telegram has no idempotency key: a retry after a lost
response may post the message twice.

Late diagnoses (:mod:`receiver.updates`): ``sendMessage`` answers with the sent Message
(``result.message_id``, ``result.chat.id``), kept with the delivery; the update is
``editMessageText`` (https://core.telegram.org/bots/api#editmessagetext) with that ``chat_id``
and ``message_id`` and the message re-rendered with the new diagnosis (same HTML, same 4096
limit; Telegram shows it as "edited"). A 400 "message is not modified" means it already says
that. Without a known ``message_id`` the update is a new message naming the first.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator

from receiver.notifiers.base import (
    MessageIds,
    Notification,
    Notifier,
    PermanentNotifyError,
    RateLimitedError,
    SentMessage,
    UpdateKind,
    parse_retry_after_header,
    post_json,
    raise_for_status,
    response_json,
    retry_after_from_json,
)
from receiver.notifiers.common import Style, compose
from receiver.notifiers.followup import compose_update
from receiver.notifiers.options import HttpUrlOption, NotifierConfig, NotifierOptions
from receiver.text import html_attr, telegram_html, utf16_len

TEXT_MAX = 4096
DEFAULT_API_URL = "https://api.telegram.org"
_NUMERIC = re.compile(r"^-?\d{1,20}$")

STYLE = Style(
    escape=telegram_html,
    bold=lambda text: f"<b>{text}</b>",
    link=lambda label, url: f'<a href="{html_attr(url)}">{telegram_html(label)}</a>',
    length=utf16_len,
    link_separator=" · ",
    fold_open="<blockquote expandable>",
    fold_close="</blockquote>",
    separator="",
)


def render_telegram(
    n: Notification,
    chat_id: str,
    *,
    message_thread_id: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The ``sendMessage`` JSON body for ``n`` (HTML, ≤4096 UTF-16 code units, no preview):
    the summary, then the details in an expandable blockquote, then the links; ``now`` (Unix
    seconds, default the current time) dates the alert's age in the summary."""
    body: dict[str, Any] = {
        "chat_id": int(chat_id) if _NUMERIC.match(chat_id) else chat_id,
        "text": compose(n, STYLE, TEXT_MAX, now=now),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    if message_thread_id is not None:
        body["message_thread_id"] = message_thread_id
    return body


def render_telegram_edit(
    n: Notification, chat_id: int | str, message_id: int, *, now: float | None = None
) -> dict[str, Any]:
    """The ``editMessageText`` JSON body: ``n`` re-rendered (as :func:`render_telegram`) in
    message ``message_id`` of ``chat_id``."""
    return {
        "chat_id": chat_id,
        "message_id": message_id,
        "text": compose(n, STYLE, TEXT_MAX, now=now),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


def _int_id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**20:
        return value
    return None


def _migrate_to_chat_id(resp: httpx.Response) -> int | None:
    try:
        data = resp.json()
    except ValueError:
        return None
    params = data.get("parameters") if isinstance(data, dict) else None
    value = params.get("migrate_to_chat_id") if isinstance(params, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_TELEGRAM_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{10,128}$")
_TELEGRAM_CHAT = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,64})$")


class TelegramOptions(NotifierOptions):
    """``type: telegram`` (secret ``bot_token``)."""

    chat_id: str
    message_thread_id: int | None = Field(default=None, ge=1)
    api_url: HttpUrlOption = DEFAULT_API_URL

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not _TELEGRAM_CHAT.match(value.strip()):
            raise ValueError("must be a numeric chat id (e.g. '-1001234567890') or '@channel'")
        return value.strip() if isinstance(value, str) else value


class TelegramNotifier(Notifier):
    """Sends each notification as a Telegram message.

    Args:
        bot_token: the bot token from @BotFather (secret).
        chat_id: target chat: a numeric id (``-100…`` for supergroups/channels) or
            ``@channelusername``.
        client: shared HTTP client.
        name: instance name (default ``"telegram"``).
        message_thread_id: forum topic to post in, if any.
        api_url: Bot API server origin (default ``https://api.telegram.org``; a self-hosted
            ``telegram-bot-api`` server works too).
    """

    channel = "telegram"
    options = TelegramOptions
    secret_fields = ("bot_token",)

    @classmethod
    def check_secret(cls, field: str, value: str) -> str | None:
        """The bot token must look like ``<digits>:<letters, digits, _ or ->``."""
        if not _TELEGRAM_TOKEN.match(value):
            return "not a Telegram bot token ('<digits>:<letters, digits, _ or ->')"
        return None

    @classmethod
    def from_config(cls, config: NotifierConfig, client: httpx.AsyncClient) -> TelegramNotifier:
        """Build from a routing entry (``type: telegram``)."""
        o = config.typed(TelegramOptions)
        return cls(
            config.secrets["bot_token"],
            o.chat_id,
            client,
            name=config.name,
            message_thread_id=o.message_thread_id,
            api_url=o.api_url,
        )

    def __init__(
        self,
        bot_token: SecretStr,
        chat_id: str,
        client: httpx.AsyncClient,
        *,
        name: str | None = None,
        message_thread_id: int | None = None,
        api_url: str = DEFAULT_API_URL,
    ) -> None:
        super().__init__(name=name)
        self._token = bot_token
        self.chat_id = str(chat_id)
        self._thread = message_thread_id
        self._api_url = api_url.rstrip("/")
        self._client = client
        # Groups and channels (negative ids, @names): 20 messages/min; private chats: ~1/s.
        private = _NUMERIC.match(self.chat_id) is not None and not self.chat_id.startswith("-")
        self.min_send_interval = 1.0 if private else 3.0

    def __repr__(self) -> str:
        return f"<TelegramNotifier name={self.name!r} chat_id={self.chat_id!r}>"

    def _url(self, method: str) -> str:
        return f"{self._api_url}/bot{self._token.get_secret_value()}/{method}"

    async def _send(self, notification: Notification) -> MessageIds | None:
        """POST ``sendMessage``.

        Returns:
            ``{"chat_id": …, "message_id": …}`` of the sent Message, or ``None`` when the answer
            does not name it.

        Raises:
            RateLimitedError: 429 with ``parameters.retry_after`` (else ``Retry-After``).
            PermanentNotifyError: other 4xx (bad token 401, bot blocked or not in the chat 403,
                chat not found or bad markup 400; a group upgraded to a supergroup names the new
                ``chat_id`` to configure).
            NotifyError: 5xx or network failure.
        """
        body = render_telegram(notification, self.chat_id, message_thread_id=self._thread)
        resp = await post_json(self._client, self._url("sendMessage"), body, channel=self.name)
        self._check(resp)
        result = (response_json(resp) or {}).get("result")
        if not isinstance(result, dict) or _int_id(result.get("message_id")) is None:
            return None
        chat = result.get("chat")
        chat_id = _int_id(chat.get("id")) if isinstance(chat, dict) else None
        return {
            "chat_id": body["chat_id"] if chat_id is None else chat_id,
            "message_id": result["message_id"],
        }

    async def _send_update(self, notification: Notification, sent: SentMessage) -> UpdateKind:
        """``editMessageText`` of the first message; without its id, a follow-up message
        naming it.

        Raises:
            RateLimitedError, PermanentNotifyError (e.g. the message was deleted),
            NotifyError: as :meth:`_send`.
        """
        message_id = _int_id(sent.ids.get("message_id"))
        chat_id = sent.ids.get("chat_id")
        if message_id is not None and isinstance(chat_id, int | str) and chat_id != "":
            body = render_telegram_edit(notification, chat_id, message_id)
            url = self._url("editMessageText")
            resp = await post_json(self._client, url, body, channel=self.name)
            if resp.status_code == 400 and "message is not modified" in resp.text:
                return "edited"  # it already says that
            self._check(resp)
            return "edited"
        body = render_telegram(notification, self.chat_id, message_thread_id=self._thread)
        body["text"] = compose_update(notification, sent, STYLE, TEXT_MAX)
        resp = await post_json(self._client, self._url("sendMessage"), body, channel=self.name)
        self._check(resp)
        return "follow_up"

    def _check(self, resp: httpx.Response) -> None:
        """Raise the typed error of a non-2xx Bot API answer (see :meth:`_send`)."""
        code = resp.status_code
        if code == 429:
            retry_after = retry_after_from_json(resp, "parameters", "retry_after")
            if retry_after is None:
                retry_after = parse_retry_after_header(resp.headers.get("Retry-After"))
            raise RateLimitedError(f"{self.name} rate limited (HTTP 429)", retry_after)
        if code == 400:
            migrated = _migrate_to_chat_id(resp)
            if migrated is not None:
                raise PermanentNotifyError(
                    f"{self.name}: the group was upgraded to a supergroup; "
                    f"set chat_id to {migrated}"
                )
        # A 2xx is delivered (the Bot API answers ``{"ok": true, …}`` with it); retrying an
        # odd 2xx body could only post the message twice.
        raise_for_status(
            resp, channel=self.name, retry_after=None, secrets=(self._token.get_secret_value(),)
        )
