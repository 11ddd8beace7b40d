"""What goes into and comes out of a :class:`~receiver.store.Store`: states, rows and results.

Every backend speaks these types; none of them depends on how or where the data is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from receiver.models import AlertmanagerWebhook


class NotificationState(StrEnum):
    """Where a notification is: ``pending`` until every delivery is final, then ``done``."""

    PENDING = "pending"
    DONE = "done"


class DeliveryState(StrEnum):
    """Where the delivery of one notification to one notifier instance is.

    ``pending``: to send, at ``next_attempt_at``. ``sending``: an attempt started (written
    *before* the send, so after a crash the outcome is known to be uncertain). ``delivered``.
    ``rejected``: the target refused the message, retrying cannot help. ``dropped``: gave up
    (too old, too many attempts, or the notifier is no longer configured).
    """

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    DROPPED = "dropped"


#: Delivery states after which nothing more is attempted.
FINAL_STATES = frozenset({DeliveryState.DELIVERED, DeliveryState.REJECTED, DeliveryState.DROPPED})


class Origin(StrEnum):
    """Who made a notification: Alertmanager (a webhook) or the receiver's dead man's switch."""

    ALERTMANAGER = "alertmanager"
    DEADMAN = "deadman"


#: One webhook to store: ``(webhook, route, raw body)``. The raw body is the request body as
#: received (text, or decoded JSON that is serialised again), kept verbatim for audit; ``None``
#: stores the normalised model instead.
IngestItem = tuple[AlertmanagerWebhook, str, str | dict[str, Any] | None]


@dataclass(frozen=True)
class IngestResult:
    """Outcome of storing one webhook.

    Attributes:
        webhook_id: id of the stored webhook (audit row), increasing in storage order.
        new_ids: ids of newly created notifications (in alert order).
        duplicates: alerts already stored under the same idempotency key.
    """

    webhook_id: int
    new_ids: list[int]
    duplicates: int


@dataclass(frozen=True)
class PendingNotification:
    """A notification still to be processed.

    Attributes:
        id: notification id.
        route, receiver, group_key, external_url: webhook-level context.
        fingerprint: the alert's fingerprint (with ``group_key``, the per-alert ordering key).
        alert: the alert as stored (wire/alias field names, JSON-decoded).
        diagnosis: cached diagnosis JSON object, or ``None`` if not diagnosed yet.
        created_ts: when it was stored (Unix seconds): deliveries are dropped past a max age.
        origin: who made it.
    """

    id: int
    route: str
    receiver: str
    group_key: str
    external_url: str
    fingerprint: str
    alert: dict[str, Any]
    diagnosis: dict[str, Any] | None
    created_ts: float
    origin: Origin = Origin.ALERTMANAGER


@dataclass(frozen=True)
class Delivery:
    """The delivery of one notification to one notifier instance.

    Attributes:
        notifier: notifier instance name.
        channel: notifier type (``slack``, ``jsonl``...).
        state: where the delivery is.
        attempts: attempts started so far.
        next_attempt_at: Unix seconds before which no attempt is made.
        message_ref: what the worker recorded of the sent message, to update it later (JSON
            text: when it was sent and the platform's message id, see
            :class:`receiver.notifiers.base.SentMessage`); ``None`` before delivery and for
            deliveries recorded before schema version 4 (SQLite) / migration 2 (PostgreSQL).
    """

    notifier: str
    channel: str
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    message_ref: str | None = None


class RoundStart(NamedTuple):
    """What a processing round of one notification starts from (:meth:`Store.prepare`).

    Attributes:
        plan: ``{notifier name: Delivery}`` of every delivery of the notification, including
            those of notifiers no longer configured.
        blocked: ``{notifier: earliest next_attempt_at}`` of the unfinished deliveries of
            earlier notifications of the same alert (per-alert ordering: they go first).
        unplanned: ``next_attempt_at`` of an earlier pending notification of the same alert
            that has no delivery yet (it blocks every notifier), or ``None``.
    """

    plan: dict[str, Delivery]
    blocked: dict[str, float]
    unplanned: float | None


class Unsent(NamedTuple):
    """Stored notifications not yet delivered to every notifier.

    Attributes:
        pending: pending notifications.
        oldest_age: age in seconds of the oldest one, ``0.0`` when there is none.
    """

    pending: int
    oldest_age: float


@dataclass(frozen=True)
class DeadmanState:
    """The dead man's switch as persisted.

    Attributes:
        last_heartbeat: Unix seconds of the last Watchdog heartbeat, ``None`` before the first.
        heartbeats: heartbeats received in total.
        alarm_since: while the alarm is raised, the time silence began (the last heartbeat, or
            the receiver's start when armed at start); ``None`` when not raised.
        alarm_raised_at: when the alarm was raised, ``None`` when not raised.
    """

    last_heartbeat: float | None = None
    heartbeats: int = 0
    alarm_since: float | None = None
    alarm_raised_at: float | None = None


@dataclass(frozen=True)
class SyntheticNotification:
    """A notification the receiver makes itself (dead man's switch), stored like a webhook's.

    Attributes:
        route: route whose notifiers get it.
        group_key, receiver: stored as a webhook's.
        alert: the alert in webhook wire form (``status``, ``labels``, ``startsAt``, ``endsAt``,
            ``fingerprint``...).
        diagnosis: the diagnosis JSON (stored, so the worker does not diagnose it).
        origin: who made it.
    """

    route: str
    group_key: str
    receiver: str
    alert: dict[str, Any]
    diagnosis: dict[str, Any]
    origin: Origin = Origin.DEADMAN


class DeadmanOutcome(NamedTuple):
    """Result of :meth:`Store.deadman_transition`.

    Attributes:
        state: the state after the transition.
        notification_id: id of the notification stored with it, ``None`` when there was none or
            the same notification was already stored.
    """

    state: DeadmanState
    notification_id: int | None


#: A dead man's switch transition: given the stored state, the new state and an optional
#: notification to store in the same transaction.
DeadmanTransition = Callable[[DeadmanState], tuple[DeadmanState, SyntheticNotification | None]]
