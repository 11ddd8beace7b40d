"""The store's interface: what the app, the worker and the dead man's switch ask of a database.

A backend is one class implementing :class:`Store` (see :class:`receiver.store.SQLiteStore`).
Its contract, whatever the database:

* durable: a method that writes returns only once the write is committed to stable storage,
  and each method is atomic (all of its writes or none);
* synchronous and thread-safe: callers on the event loop use ``asyncio.to_thread``;
* every database or filesystem failure is raised as :class:`StoreError`;
* notifications are unique on Alertmanager's idempotency key
  ``(group_key, fingerprint, status, starts_at, ends_at)``; one more with the same key is a
  duplicate and is not stored again;
* ids increase in storage order (the worker's per-alert ordering relies on it).

Times are Unix seconds (``float``) from the store's clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from receiver.store.records import (
    DeadmanOutcome,
    DeadmanState,
    DeadmanTransition,
    DeliveryState,
    IngestItem,
    IngestResult,
    PendingNotification,
    RoundStart,
    Unsent,
)


class StoreError(Exception):
    """The database could not be opened, read or written (nothing of the failed call is
    stored)."""


class Store(ABC):
    """Durable storage of webhooks, notifications, deliveries and the dead man's switch."""

    # --- lifecycle ------------------------------------------------------------------------

    @abstractmethod
    def init(self) -> None:
        """Create the database and its schema if needed, migrating an older schema.

        Raises:
            StoreError: the database cannot be opened, created or migrated (or its schema is
                newer than this code).
        """

    @abstractmethod
    def check_writable(self) -> None:
        """Durably write something small, proving the database accepts writes (readiness).

        Raises:
            StoreError: it does not.
        """

    # --- intake ---------------------------------------------------------------------------

    @abstractmethod
    def ingest_many(self, items: Sequence[IngestItem]) -> list[IngestResult]:
        """Store webhooks and one notification per new alert, in one transaction.

        Each webhook is kept as received (``raw``, unknown and newer fields included) with its
        route; each alert whose idempotency key is already stored (or repeated earlier within
        ``items``) counts as a duplicate, as if the webhooks had come one after the other. One
        commit for the lot (group commit, see :class:`receiver.store.IngestQueue`); either all
        are stored or none.

        Returns:
            One :class:`IngestResult` per item, in order.

        Raises:
            StoreError: nothing was stored (the caller answers 503 so Alertmanager retries).
        """

    # --- worker ---------------------------------------------------------------------------

    @abstractmethod
    def due(self, now: float, limit: int = 100) -> list[PendingNotification]:
        """Pending notifications whose next attempt time has come (``<= now``), lowest id first.

        ``due(math.inf)`` lists every pending notification.

        Args:
            now: Unix seconds.
            limit: most notifications returned.

        Raises:
            StoreError: the database cannot be read.
        """

    @abstractmethod
    def next_due(self, after: float) -> float | None:
        """The earliest next attempt time later than ``after`` among pending notifications.

        Returns:
            Unix seconds, or ``None`` when no pending notification has one.

        Raises:
            StoreError: the database cannot be read.
        """

    @abstractmethod
    def prepare(
        self,
        notification_id: int,
        group_key: str,
        fingerprint: str,
        notifiers: Sequence[tuple[str, str]],
        now: float,
        diagnosis: dict[str, Any] | None = None,
    ) -> RoundStart:
        """Start a processing round of a notification, in one transaction.

        Caches ``diagnosis`` (when given; it is returned by :meth:`due` from then on), creates
        the missing deliveries (``pending``, due at ``now``) and reads what earlier
        notifications of the same alert (``group_key``, ``fingerprint``) still owe.

        Args:
            notifiers: ``(name, channel)`` of each notifier the notification's route has now.

        Raises:
            StoreError: nothing was written.
        """

    @abstractmethod
    def update_delivery(
        self,
        notification_id: int,
        notifier: str,
        state: DeliveryState,
        *,
        attempts: int | None = None,
        next_attempt_at: float | None = None,
        error: str | None = None,
        keep_error: bool = False,
    ) -> None:
        """Update the delivery of one notifier (created by :meth:`prepare`).

        Args:
            state: the new state (``delivered`` also records the delivery time).
            attempts: attempts started so far (unchanged when ``None``).
            next_attempt_at: Unix seconds of the next attempt (unchanged when ``None``).
            error: last error message (must not contain secrets), or ``None``.
            keep_error: leave the stored last error as it is (``error`` is ignored).

        Raises:
            StoreError: nothing was written.
        """

    @abstractmethod
    def finish(self, notification_id: int) -> float | None:
        """Close a processing round of a notification.

        Marks it ``done`` when every delivery is final, otherwise makes it due at the earliest
        next attempt time of its unfinished deliveries.

        Returns:
            ``None`` when done, else that next attempt time.

        Raises:
            StoreError: nothing was written.
        """

    @abstractmethod
    def postpone(self, notification_id: int, until: float) -> None:
        """Leave a notification pending but not due before ``until`` (Unix seconds).

        Raises:
            StoreError: nothing was written.
        """

    @abstractmethod
    def complete(self, notification_id: int) -> None:
        """Mark a notification ``done`` whatever its deliveries (e.g. an unreadable alert).

        Raises:
            StoreError: nothing was written.
        """

    # --- observation ----------------------------------------------------------------------

    @abstractmethod
    def unsent(self, now: float) -> Unsent:
        """Pending notifications and the age of the oldest at ``now`` (``/metrics``).

        Raises:
            StoreError: the database cannot be read.
        """

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """``{"webhooks", "pending", "done", "failed_deliveries", "unsent_deliveries"}`` counts.

        ``pending`` and ``done`` count notifications; ``failed_deliveries`` counts deliveries
        given up (``rejected`` or ``dropped``), ``unsent_deliveries`` those still ``pending``
        or ``sending``.

        Raises:
            StoreError: the database cannot be read.
        """

    # --- dead man's switch ----------------------------------------------------------------

    @abstractmethod
    def deadman_state(self) -> DeadmanState:
        """The persisted dead man's switch (defaults before the first heartbeat).

        Raises:
            StoreError: the database cannot be read.
        """

    @abstractmethod
    def deadman_transition(self, transition: DeadmanTransition) -> DeadmanOutcome:
        """Apply ``transition`` to the persisted state atomically: the new state and its
        notification (stored like a webhook's, with its diagnosis) commit together.

        Raises:
            StoreError: nothing was written.
            Exception: whatever ``transition`` raises (nothing was written).
        """
