"""The notifier interface, the notification record every notifier renders, and typed errors.

A :class:`Notifier` is one configured *instance* (``name``, e.g. ``"slack-desk"``) of a channel
*type* (``channel``, e.g. ``"slack"``); delivery state and metrics are kept per ``name``. Callers
use ``await notifier.send(notification)``; subclasses implement ``_send``. Errors:

* :class:`RateLimitedError` - the target answered 429; ``retry_after`` is seconds to wait
  (Slack ``Retry-After`` header, Discord JSON ``retry_after``, Telegram
  ``parameters.retry_after``), or ``None`` if absent;
* :class:`PermanentNotifyError` - the target rejected the message itself (4xx other than 429):
  retrying the same body cannot succeed;
* :class:`NotifyError` - anything else worth retrying (5xx, network error, I/O error).

Error messages never contain webhook URLs, tokens or other secrets.

Late diagnoses: a page sent with the rules' diagnosis (the LLM missed the critical budget,
:mod:`receiver.updates`) is updated with the LLM's diagnosis when it comes. :meth:`Notifier.send`
returns the platform's ids of the message it sent (kept durably with the delivery as a
:class:`SentMessage`), and :meth:`Notifier.send_update` later edits that message, replies to it
or sends a follow-up naming it, whichever the platform allows (each channel documents its way).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Literal

import httpx
from pydantic import SecretStr

from exchange_common.retry_after import parse_retry_after as parse_retry_after_header
from receiver.diagnosis.schema import Diagnosis
from receiver.models import ZERO_TIME, parse_rfc3339
from receiver.notifiers.metrics import NotifierMetrics
from receiver.notifiers.options import (
    NotifierConfig,
    NotifierOptions,
    ParseContext,
    token_secret_problem,
    url_secret_problem,
)
from receiver.text import format_duration, strip_control

__all__ = [
    "MessageIds",
    "Notification",
    "Notifier",
    "NotifyError",
    "PermanentNotifyError",
    "RateLimitedError",
    "SentMessage",
    "UpdateKind",
    "WebhookUrlNotifier",
    "human_time",
    "parse_retry_after_header",
    "post_json",
    "raise_for_status",
    "request_json",
    "response_json",
    "retry_after_from_json",
]

#: The platform's identifiers of a sent message (``{"message_id": "1234"}``, ``{"channel":
#: "C1", "ts": "1700000000.000100"}``): small, JSON-serialisable, never secret.
MessageIds = dict[str, str | int]

#: What :meth:`Notifier.send_update` did: ``edited`` the message, ``replied`` in its thread,
#: sent a ``follow_up`` message naming it, ``recorded`` an update record (file), or
#: ``unsupported`` (nothing: the target has no way to update, see its module).
UpdateKind = Literal["edited", "replied", "follow_up", "recorded", "unsupported"]

#: Longest :class:`SentMessage` JSON kept (a platform answering huge ids is not trusted).
SENT_MESSAGE_MAX = 1000


@dataclass(frozen=True)
class Notification:
    """One alert notification: a single alert of a webhook with its diagnosis.

    Attributes:
        id: database row id.
        route: the ``{route}`` of ``POST /alerts/{route}`` (``""`` for ``POST /alerts``).
        receiver: Alertmanager receiver name.
        group_key: Alertmanager ``groupKey``.
        external_url: Alertmanager ``externalURL`` (untrusted, may be empty).
        status: this alert's own status.
        labels: alert labels (untrusted).
        annotations: alert annotations (untrusted).
        starts_at: RFC 3339 string as received.
        ends_at: RFC 3339 string as received (``0001-01-01T00:00:00Z`` while firing).
        generator_url: Prometheus graph link (untrusted, may be empty).
        fingerprint: Alertmanager fingerprint.
        diagnosis: the validated diagnosis.
    """

    id: int
    route: str
    receiver: str
    group_key: str
    external_url: str
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    generator_url: str
    fingerprint: str
    diagnosis: Diagnosis

    @property
    def alertname(self) -> str:
        """The ``alertname`` label or ``"unknown"``."""
        return self.labels.get("alertname") or "unknown"

    @property
    def exchange(self) -> str | None:
        """The ``exchange`` label, if any."""
        return self.labels.get("exchange") or None

    @property
    def endpoint(self) -> str | None:
        """The ``endpoint`` label, if any."""
        return self.labels.get("endpoint") or None

    @property
    def severity(self) -> str | None:
        """The ``severity`` label, if any."""
        return self.labels.get("severity") or None

    @property
    def summary(self) -> str | None:
        """The ``summary`` annotation, if any."""
        return self.annotations.get("summary") or None

    @property
    def description(self) -> str | None:
        """The ``description`` annotation, if any."""
        return self.annotations.get("description") or None

    @property
    def runbook_url(self) -> str | None:
        """The ``runbook_url`` annotation (unchecked; use :func:`receiver.text.safe_url`)."""
        return self.annotations.get("runbook_url") or None

    @property
    def firing(self) -> bool:
        """True for a firing notification, False for a resolved one."""
        return self.status == "firing"

    @property
    def duration_seconds(self) -> float | None:
        """How long the incident lasted (``endsAt - startsAt``, ≥ 0) for a resolved alert.

        ``None`` while firing, or when either time is missing or unparseable.
        """
        if self.firing or self.ends_at == ZERO_TIME:
            return None
        try:
            seconds = (parse_rfc3339(self.ends_at) - parse_rfc3339(self.starts_at)).total_seconds()
        except ValueError:
            return None
        return max(0.0, seconds)

    @property
    def duration_text(self) -> str | None:
        """``duration_seconds`` in words (``"4 min 12 s"``), or ``None``."""
        seconds = self.duration_seconds
        return None if seconds is None else format_duration(seconds)

    @property
    def delivery_key(self) -> str:
        """A stable hex key of *this notification* (alert identity plus status and times).

        The same for every retry and after a restart; different for firing and resolved and for
        a later incident of the same series. Used for idempotency keys (LINE retry key, webhook
        ``Idempotency-Key``).
        """
        parts = (self.group_key, self.fingerprint, self.status, self.starts_at, self.ends_at)
        return hashlib.sha256("\x00".join(parts).encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class SentMessage:
    """A delivered message as the worker recorded it, to update it later.

    Stored as JSON with the delivery (``deliveries.message_ref``), so an update after a restart
    still knows what to edit.

    Attributes:
        sent_at: Unix seconds when its delivery was recorded, ``None`` when unknown (a delivery
            recorded before this existed).
        ids: the platform's identifiers of the message (:data:`MessageIds`), ``{}`` when it
            gives none (incoming webhooks, files) or they are unknown.
    """

    sent_at: float | None = None
    ids: Mapping[str, str | int] = field(default_factory=dict)

    def to_json(self) -> str:
        """``{"sent_at": float|null, "ids": {...}}``; ids dropped if they make it longer than
        :data:`SENT_MESSAGE_MAX`."""
        text = json.dumps({"sent_at": self.sent_at, "ids": dict(self.ids)}, separators=(",", ":"))
        if len(text) > SENT_MESSAGE_MAX:
            text = json.dumps({"sent_at": self.sent_at, "ids": {}}, separators=(",", ":"))
        return text

    @classmethod
    def from_json(cls, text: str | None) -> SentMessage:
        """Read :meth:`to_json`'s text; ``None`` or anything unreadable gives an empty one."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        sent_at = data.get("sent_at")
        if not isinstance(sent_at, int | float) or isinstance(sent_at, bool):
            sent_at = None
        raw = data.get("ids")
        ids: dict[str, str | int] = {}
        if isinstance(raw, dict):
            for key, value in raw.items():
                if isinstance(value, str | int) and not isinstance(value, bool):
                    ids[str(key)] = value
        return cls(None if sent_at is None else float(sent_at), ids)

    @property
    def sent_text(self) -> str | None:
        """``sent_at`` as ``2026-11-21 07:22:05 UTC``, or ``None``."""
        if self.sent_at is None or not math.isfinite(self.sent_at):
            return None
        try:
            return datetime.fromtimestamp(self.sent_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (OverflowError, OSError, ValueError):
            return None


def human_time(value: str) -> str:
    """``2026-11-21T07:22:00.568Z`` → ``2026-11-21 07:22:00 UTC``; unparseable input is returned
    cut to 40 characters."""
    try:
        return parse_rfc3339(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return value[:40]


class NotifyError(Exception):
    """A delivery failed in a way that may succeed on retry. The message holds no secrets."""


class PermanentNotifyError(NotifyError):
    """The target rejected this message (4xx other than 429); retrying cannot help."""


class RateLimitedError(NotifyError):
    """The target answered HTTP 429.

    Attributes:
        retry_after: seconds to wait before retrying, or ``None`` when the target gave none.
    """

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Notifier(ABC):
    """One configured notifier instance; each channel module subclasses it.

    Class attributes every channel sets (see :mod:`receiver.notifiers` for a walkthrough):

    - ``channel``: the type (``"slack"``, ``"discord"``, ``"telegram"``, ``"pagerduty"``,
      ``"line"``, ``"webhook"``, ``"apprise"``, ``"jsonl"``), the ``type:`` of a routing-file
      entry and the ``channel`` metric label;
    - ``options``: its :class:`NotifierOptions` model (everything that is not a secret);
    - ``secret_fields``: its secret settings (``<field>_env`` / ``<field>_file`` in the file);

    and it implements :meth:`from_config` and :meth:`_send`. It may override
    :attr:`secret_format` or :meth:`check_secret`, :meth:`parse_extra` (with :attr:`extra_keys`) and
    :meth:`redaction_values` for configuration, and the optional capabilities the worker calls
    through this interface: :meth:`idempotency_key` and :meth:`delivered_before`.

    Attributes:
        name: the instance name from the routing file (e.g. ``"slack-desk"``); defaults to the
            channel, which is what notifiers built from ``SLACK_WEBHOOK_URL`` & co. are called.
            Unique per process: delivery state, spacing and metrics are kept per name.
        min_send_interval: seconds to leave between two sends of this instance (the platform's
            documented per-destination pace; 0 = no spacing).

    Callers use :meth:`send`, which also records the send metrics when :meth:`bind_metrics`
    was called. ``repr()`` never shows secrets.
    """

    channel: ClassVar[str] = "base"
    options: ClassVar[type[NotifierOptions]] = NotifierOptions
    secret_fields: ClassVar[tuple[str, ...]] = ()
    #: How :meth:`check_secret` checks every secret field by default: ``"url"`` (an absolute
    #: http(s) URL), ``"token"`` (printable ASCII without spaces) or ``"any"``.
    secret_format: ClassVar[Literal["url", "token", "any"]] = "any"
    #: Routing-file keys :meth:`parse_extra` handles (left out of the options model).
    extra_keys: ClassVar[tuple[str, ...]] = ()
    min_send_interval: float = 0.0
    _name: str | None = None
    _metrics: NotifierMetrics | None = None

    def __init__(self, *, name: str | None = None) -> None:
        self._name = name

    # --- configuration ----------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: NotifierConfig, client: httpx.AsyncClient) -> Notifier:
        """Build an instance from a validated routing entry, on the shared HTTP ``client``.

        Raises:
            NotImplementedError: the type cannot be configured from a routing file.
        """
        raise NotImplementedError(f"{cls.__name__} cannot be built from a routing file")

    @classmethod
    def check_secret(cls, field: str, value: str) -> str | None:
        """The problem with the value of secret ``field`` (never quoting it), or ``None``.

        By default the check :attr:`secret_format` names; override for anything else.
        """
        if cls.secret_format == "url":
            return url_secret_problem(value)
        if cls.secret_format == "token":
            return token_secret_problem(value)
        return None

    @classmethod
    def secret_required(cls, field: str, raw: Mapping[str, object]) -> bool:
        """Whether secret ``field`` must be given in routing entry ``raw`` (by default every
        one of :attr:`secret_fields`); an optional one that is absent is left out of
        ``NotifierConfig.secrets``."""
        return True

    @classmethod
    def parse_extra(
        cls, raw: Mapping[str, object], path: str, ctx: ParseContext
    ) -> dict[str, SecretStr]:
        """Validate the type's own extra keys of routing entry ``raw`` (at field ``path``),
        recording problems in ``ctx``; return extra named secrets (webhook headers)."""
        return {}

    @classmethod
    def redaction_values(cls, field: str, value: str) -> list[str]:
        """The strings to redact from logs for secret ``field`` holding ``value``."""
        return [value]

    # --- identity and metrics -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The instance name (``channel`` unless configured)."""
        return self._name or self.channel

    def bind_metrics(self, metrics: NotifierMetrics | None) -> None:
        """Record every :meth:`send` in ``metrics`` (``None`` stops recording)."""
        self._metrics = metrics
        if metrics is not None:
            metrics.declare(self.channel, self.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} channel={self.channel!r}>"

    # --- optional capabilities ----------------------------------------------------------------

    def idempotency_key(self, notification: Notification) -> str | None:
        """A key the target uses to drop a repeated send of ``notification`` (stable across
        retries and restarts), or ``None`` when the target has no such mechanism."""
        return None

    async def delivered_before(self, notification: Notification) -> bool:
        """Whether ``notification`` provably arrived before a crash interrupted its send.

        The worker asks this for a delivery left ``sending``; ``False`` (the default, for
        targets that cannot tell) means "send again, possibly duplicating".
        """
        return False

    # --- sending ------------------------------------------------------------------------------

    async def send(self, notification: Notification) -> MessageIds | None:
        """Deliver one notification.

        Returns:
            The platform's ids of the message sent (:data:`MessageIds`), when it gives them and
            the channel can update a message with them; ``None`` otherwise.

        Raises:
            RateLimitedError: HTTP 429 (with ``retry_after`` seconds when known).
            PermanentNotifyError: the target rejected the message (other 4xx).
            NotifyError: transient failure (5xx, network, I/O).
        """
        metrics = self._metrics
        if metrics is None:
            return await self._send(notification)
        started = time.perf_counter()
        result: str | None = "error"
        try:
            ids = await self._send(notification)
            result = "ok"
            return ids
        except RateLimitedError:
            result = "rate_limited"
            raise
        except PermanentNotifyError:
            result = "rejected"
            raise
        except asyncio.CancelledError:
            result = None
            raise
        finally:
            if result is not None:
                metrics.attempt(self.channel, self.name, result, time.perf_counter() - started)

    @abstractmethod
    async def _send(self, notification: Notification) -> MessageIds | None:
        """Deliver one notification (the platform-specific part); see :meth:`send`."""

    async def send_update(self, notification: Notification, sent: SentMessage) -> UpdateKind:
        """Bring a message already delivered up to date with ``notification.diagnosis`` (a
        late LLM diagnosis): edit it, reply to it or send a follow-up naming it, as the
        platform allows. Not counted in the request metrics (the worker counts updates as
        delivery results ``updated`` / ``update_failed``).

        Args:
            notification: the notification as first sent, with the new diagnosis.
            sent: what was recorded of the first message (its time and ids, maybe empty).

        Returns:
            What was done (:data:`UpdateKind`); the default is ``unsupported`` (nothing).

        Raises:
            RateLimitedError, PermanentNotifyError, NotifyError: as :meth:`send`.
        """
        return await self._send_update(notification, sent)

    async def _send_update(self, notification: Notification, sent: SentMessage) -> UpdateKind:
        """The platform-specific part of :meth:`send_update` (default: nothing)."""
        return "unsupported"


class WebhookUrlNotifier(Notifier):
    """A notifier configured by one secret webhook URL (``webhook_url``): Slack, Discord.

    Args:
        webhook_url: the webhook URL (secret; never logged).
        client: shared HTTP client.
        name: instance name (default the channel).
    """

    secret_fields = ("webhook_url",)
    secret_format = "url"

    def __init__(
        self, webhook_url: SecretStr, client: httpx.AsyncClient, *, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self._url = webhook_url
        self._client = client

    @classmethod
    def from_config(cls, config: NotifierConfig, client: httpx.AsyncClient) -> Notifier:
        """Build from a routing entry (``type: <channel>``, secret ``webhook_url``)."""
        return cls(config.secrets["webhook_url"], client, name=config.name)


def retry_after_from_json(resp: httpx.Response, *path: str) -> float | None:
    """The number at ``path`` in a JSON response body (e.g. ``("parameters", "retry_after")``),
    or ``None`` when the body is not JSON or has no finite number there (clamped to ≥ 0)."""
    try:
        data: object = resp.json()
    except ValueError:
        return None
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    if isinstance(data, int | float) and not isinstance(data, bool) and math.isfinite(data):
        return max(0.0, float(data))
    return None


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    body: dict[str, object],
    *,
    channel: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """Send ``body`` as JSON with ``method`` and map transport failures to
    :class:`NotifyError`.

    The returned response may have any status; callers interpret it. Error messages name the
    channel and the exception class only, never the (secret) URL or headers.
    """
    try:
        return await client.request(
            method, url, json=body, headers=dict(headers or {}), timeout=httpx.Timeout(timeout)
        )
    except httpx.HTTPError as exc:
        raise NotifyError(f"{channel} request failed ({exc.__class__.__name__})") from None


async def post_json(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    body: dict[str, object],
    *,
    channel: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST ``body`` as JSON (:func:`request_json`)."""
    return await request_json(
        client, "POST", url, body, channel=channel, headers=headers, timeout=timeout
    )


def response_json(resp: httpx.Response) -> dict[str, object] | None:
    """The response body as a JSON object, or ``None`` when it is empty, not JSON or not an
    object (an answer is untrusted: callers check every value they use)."""
    if not resp.content:
        return None
    try:
        data = resp.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def raise_for_status(
    resp: httpx.Response,
    *,
    channel: str,
    retry_after: float | None,
    secrets: Sequence[str] = (),
) -> None:
    """Raise the typed error for a non-2xx ``resp``.

    429 → :class:`RateLimitedError` with ``retry_after``; other 4xx except 408/409/425 →
    :class:`PermanentNotifyError`; 3xx, 5xx, 408, 409, 425 → :class:`NotifyError`. The message
    names ``channel`` and the status and quotes at most 200 characters of the body, with any of
    ``secrets`` in it replaced by ``<redacted>`` (in case a target echoes the request).
    """
    code = resp.status_code
    if 200 <= code < 300:
        return
    if code == 429:
        raise RateLimitedError(f"{channel} rate limited (HTTP 429)", retry_after)
    detail = strip_control(resp.text[:2000]) if resp.content else ""
    for secret in secrets:
        if secret:
            detail = detail.replace(secret, "<redacted>")
    detail = detail[:200].replace("\n", " ")
    message = f"{channel} returned HTTP {code}" + (f": {detail}" if detail else "")
    if 400 <= code < 500 and code not in (408, 409, 425):
        raise PermanentNotifyError(message)
    raise NotifyError(message)
