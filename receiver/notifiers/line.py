"""LINE notifier: Messaging API push message, made idempotent with ``X-Line-Retry-Key``.

Platform facts (LINE Messaging API reference, https://developers.line.biz/en/reference/
messaging-api/):

* "Send push message" (#send-push-message): ``POST https://api.line.me/v2/bot/message/push``,
  ``Authorization: Bearer {channel access token}``, JSON ``{"to": user/group/room id,
  "messages": [1-5 message objects]}``.
* Text message (#text-message): ``{"type": "text", "text": …}``, at most 5000 characters.
* Retry key (https://developers.line.biz/en/docs/messaging-api/retrying-api-request/): header
  ``X-Line-Retry-Key`` holding a UUID in hexadecimal notation; once a request with that key has
  been accepted, retries with the same key are not executed again and answer **409** (with the
  ``x-line-accepted-request-id`` header). Retrying is meant for 5xx answers and timeouts.
* Status codes (#status-codes): 400 bad request, 401 bad token, 403 not permitted, 409 retry key
  already accepted, 429 rate or monthly message limit exceeded (the monthly quota can also be
  reached temporarily while another delivery is in progress), 5xx server error.
* LINE Notify was shut down on 2025-03-31; this uses the Messaging API only.

The retry key is a UUIDv5 of the notifier name, the destination and
:attr:`receiver.notifiers.base.Notification.delivery_key`, so every retry of one notification -
even after a receiver restart - sends the same key, and a replay of an already accepted push
gives 409, which counts as delivered. LINE text has no markup and plain text cannot mention
anyone; text still goes through :func:`receiver.text.neutralise_text`. Length is counted in
UTF-16 code units (at least Python's count, so the cap also holds if LINE counts code points).

Late diagnoses (:mod:`receiver.updates`): the Messaging API cannot edit a pushed message (the
message endpoints send, they do not modify), so the update is a follow-up push naming the first
message (alert, exchange, when it was sent; :mod:`receiver.notifiers.followup`), with its own
retry key (:func:`update_retry_key`), stable across the update's retries.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from pydantic import SecretStr, field_validator

from receiver.notifiers.base import (
    Notification,
    Notifier,
    SentMessage,
    UpdateKind,
    parse_retry_after_header,
    post_json,
    raise_for_status,
)
from receiver.notifiers.common import Style, compose
from receiver.notifiers.followup import compose_update
from receiver.notifiers.options import HttpUrlOption, NotifierConfig, NotifierOptions
from receiver.text import neutralise_text, utf16_len

DEFAULT_API_URL = "https://api.line.me/v2/bot/message/push"
TEXT_MAX = 5000
MAX_MESSAGES = 5
#: Namespace of the retry-key UUIDs (any fixed UUID; changing it changes every key).
RETRY_KEY_NAMESPACE = uuid.UUID("6f1d9a4e-3c55-4f0e-9a57-0b8d2f1c7e21")

STYLE = Style(escape=neutralise_text, length=utf16_len)


def render_line(n: Notification, to: str, *, now: float | None = None) -> dict[str, Any]:
    """The push-message body: one text message of at most 5000 UTF-16 code units, the
    five-line summary first, then a separator line and the details
    (:func:`receiver.notifiers.common.compose`; ``now``: Unix seconds for the alert's age,
    default the current time)."""
    text = compose(n, STYLE, TEXT_MAX, now=now)
    return {"to": to, "messages": [{"type": "text", "text": text}]}


def retry_key(n: Notification, *, notifier: str, to: str) -> str:
    """The ``X-Line-Retry-Key`` for sending ``n`` to ``to`` (stable across retries)."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, f"{notifier}\x00{to}\x00{n.delivery_key}"))


def update_retry_key(n: Notification, *, notifier: str, to: str) -> str:
    """The ``X-Line-Retry-Key`` of the update of ``n`` (differs from :func:`retry_key`)."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, f"update\x00{notifier}\x00{to}\x00{n.delivery_key}"))


_LINE_TO = re.compile(r"^[UCR][0-9a-f]{32}$")


class LineOptions(NotifierOptions):
    """``type: line`` (secret ``channel_access_token``)."""

    to: str
    api_url: HttpUrlOption = DEFAULT_API_URL

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        if not _LINE_TO.match(value):
            raise ValueError(
                "must be a LINE user, group or room id: U, C or R followed by 32 hex digits"
            )
        return value


class LineNotifier(Notifier):
    """Pushes each notification to a LINE user, group or room.

    Args:
        channel_access_token: the Messaging API channel access token (secret).
        to: the destination id (``U…`` user, ``C…`` group, ``R…`` room).
        client: shared HTTP client.
        name: instance name (default ``"line"``).
        api_url: the push endpoint (tests point it elsewhere).
    """

    channel = "line"
    options = LineOptions
    secret_fields = ("channel_access_token",)
    secret_format = "token"

    @classmethod
    def from_config(cls, config: NotifierConfig, client: httpx.AsyncClient) -> LineNotifier:
        """Build from a routing entry (``type: line``)."""
        o = config.typed(LineOptions)
        return cls(
            config.secrets["channel_access_token"],
            o.to,
            client,
            name=config.name,
            api_url=o.api_url,
        )

    def __init__(
        self,
        channel_access_token: SecretStr,
        to: str,
        client: httpx.AsyncClient,
        *,
        name: str | None = None,
        api_url: str = DEFAULT_API_URL,
    ) -> None:
        super().__init__(name=name)
        self._token = channel_access_token
        self.to = to
        self._client = client
        self._api_url = api_url

    def __repr__(self) -> str:
        return f"<LineNotifier name={self.name!r} to={self.to!r}>"

    def idempotency_key(self, notification: Notification) -> str:
        """The ``X-Line-Retry-Key``: :func:`retry_key` of this instance and destination."""
        return retry_key(notification, notifier=self.name, to=self.to)

    async def _send(self, notification: Notification) -> None:
        """POST the push message with the notification's retry key.

        Raises:
            RateLimitedError: 429 (``Retry-After`` if LINE sends one, else ``None``).
            PermanentNotifyError: other 4xx except 409 (bad token, bad ``to``, bad body).
            NotifyError: 5xx or network failure (retried with the same key).
        """
        body = render_line(notification, self.to)
        await self._push(body, self.idempotency_key(notification))

    async def _send_update(self, notification: Notification, sent: SentMessage) -> UpdateKind:
        """Push the follow-up message naming the first (see the module docstring).

        Raises:
            RateLimitedError, PermanentNotifyError, NotifyError: as :meth:`_send`.
        """
        text = compose_update(notification, sent, STYLE, TEXT_MAX)
        body = {"to": self.to, "messages": [{"type": "text", "text": text}]}
        key = update_retry_key(notification, notifier=self.name, to=self.to)
        await self._push(body, key)
        return "follow_up"

    async def _push(self, body: dict[str, Any], key: str) -> None:
        token = self._token.get_secret_value()
        headers = {"Authorization": f"Bearer {token}", "X-Line-Retry-Key": key}
        resp = await post_json(
            self._client, self._api_url, body, channel=self.name, headers=headers
        )
        if resp.status_code == 409:
            return  # an earlier attempt with this retry key was accepted: delivered
        retry_after = parse_retry_after_header(resp.headers.get("Retry-After"))
        raise_for_status(resp, channel=self.name, retry_after=retry_after, secrets=(token,))
