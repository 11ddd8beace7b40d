"""The notifier interface, the notification record every notifier renders, and typed errors.

Each notifier is one channel (``slack``, ``discord``, ``jsonl``) with
``async send(notification) -> None``. Errors:

* :class:`RateLimitedError` - the target answered 429; ``retry_after`` is seconds to wait
  (Slack ``Retry-After`` header, Discord JSON ``retry_after``), or ``None`` if absent;
* :class:`PermanentNotifyError` - the target rejected the message itself (4xx other than 429):
  retrying the same body cannot succeed;
* :class:`NotifyError` - anything else worth retrying (5xx, network error, I/O error).

Error messages never contain webhook URLs or other secrets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import httpx

from receiver.diagnosis.schema import Diagnosis


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
    """One delivery channel. Subclasses set :attr:`channel` and implement :meth:`send`."""

    channel: str = "base"

    @abstractmethod
    async def send(self, notification: Notification) -> None:
        """Deliver one notification.

        Raises:
            RateLimitedError: HTTP 429 (with ``retry_after`` seconds when known).
            PermanentNotifyError: the target rejected the message (other 4xx).
            NotifyError: transient failure (5xx, network, I/O).
        """


def parse_retry_after_header(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds (RFC 9110 §10.2.3 delay-seconds form).

    Returns ``None`` for a missing or non-numeric value (the HTTP-date form is not used by
    Slack or Discord) and clamps negatives to 0.
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


async def post_json(
    client: httpx.AsyncClient, url: str, body: dict[str, object], *, channel: str
) -> httpx.Response:
    """POST ``body`` as JSON and map transport failures to :class:`NotifyError`.

    The returned response may have any status; callers interpret it. Error messages name the
    channel and the exception class only, never the (secret) URL.
    """
    try:
        return await client.post(url, json=body, timeout=httpx.Timeout(10.0))
    except httpx.HTTPError as exc:
        raise NotifyError(f"{channel} request failed ({exc.__class__.__name__})") from None


def raise_for_status(resp: httpx.Response, *, channel: str, retry_after: float | None) -> None:
    """Raise the typed error for a non-2xx ``resp`` (429 → :class:`RateLimitedError`)."""
    code = resp.status_code
    if 200 <= code < 300:
        return
    if code == 429:
        raise RateLimitedError(f"{channel} rate limited (HTTP 429)", retry_after)
    detail = resp.text[:200].replace("\n", " ") if resp.content else ""
    message = f"{channel} returned HTTP {code}" + (f": {detail}" if detail else "")
    if 400 <= code < 500 and code not in (408, 409, 425):
        raise PermanentNotifyError(message)
    raise NotifyError(message)
