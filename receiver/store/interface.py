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
* ids increase in storage order (the worker's per-alert ordering relies on it);
* several receiver processes may share one database (PostgreSQL): work is handed out with
  leases (:meth:`Store.claim`), so a notification is processed by one receiver at a time and a
  crashed receiver's work is taken over once its lease expires; the dead man's switch has one
  leader (:meth:`Store.lead`); :meth:`Store.init` is safe when receivers start together.

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
    Delivery,
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
    """Durable storage of webhooks, notifications, deliveries and the dead man's switch.

    Attributes:
        backend: the engine's name (``sqlite``, ``postgresql``), for logs and ``/readyz``.
    """

    backend: str = "unknown"

    # --- lifecycle ------------------------------------------------------------------------

    @abstractmethod
    def init(self) -> None:
        """Create the database and its schema if needed, migrating an older schema.

        Raises:
            StoreError: the database cannot be opened, created or migrated (or its schema is
                newer than this code).
        """

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections (a pool); the store may be used again afterwards."""

    def describe(self) -> str:
        """Where the data is, without secrets (``sqlite:/path/receiver.db``,
        ``postgresql://host:5432/db``), for logs and ``/readyz``."""
        return self.backend

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
    def claim(
        self, now: float, owner: str, lease_seconds: float, limit: int = 100
    ) -> list[PendingNotification]:
        """Lease due notifications to ``owner``, lowest id first, at most ``limit``.

        A notification is claimable when it is pending, its next attempt time has come
        (``next_attempt_at <= now``) and its lease is free: never leased, released, expired
        (``lease_until <= now``) or already ``owner``'s. Each one returned is leased to
        ``owner`` until ``now + lease_seconds``. Concurrent claims (other threads, other
        receivers) never return the same notification: PostgreSQL locks the rows and skips
        rows another transaction has locked (``FOR UPDATE SKIP LOCKED``); SQLite serialises
        writers. :meth:`finish`, :meth:`postpone` and :meth:`complete` end the lease.

        Args:
            now: Unix seconds.
            owner: the claiming receiver's identity (stable for the process's life).
            lease_seconds: how long the lease lasts without :meth:`renew`.
            limit: most notifications returned.

        Raises:
            StoreError: nothing was claimed.
        """

    @abstractmethod
    def renew(self, owner: str, ids: Sequence[int], until: float) -> list[int]:
        """Extend ``owner``'s leases on ``ids`` to ``until`` (Unix seconds).

        Returns:
            The ids still leased to ``owner`` (an id missing was finished, or its lease
            expired and another receiver claimed it).

        Raises:
            StoreError: nothing was written.
        """

    @abstractmethod
    def release(self, owner: str, ids: Sequence[int]) -> None:
        """End ``owner``'s leases on ``ids`` without processing them (claimed, not started).

        Raises:
            StoreError: nothing was written.
        """

    @abstractmethod
    def next_due(self, after: float) -> float | None:
        """The earliest time later than ``after`` at which a pending notification becomes
        claimable: its next attempt time, or its lease's end when that is later.

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
        message_ref: str | None = None,
    ) -> None:
        """Update the delivery of one notifier (created by :meth:`prepare`).

        Args:
            state: the new state (``delivered`` also records the delivery time).
            attempts: attempts started so far (unchanged when ``None``).
            next_attempt_at: Unix seconds of the next attempt (unchanged when ``None``).
            error: last error message (must not contain secrets), or ``None``.
            keep_error: leave the stored last error as it is (``error`` is ignored).
            message_ref: what identifies the sent message for a later update (opaque text,
                no secrets; :attr:`Delivery.message_ref`); unchanged when ``None``.

        Raises:
            StoreError: nothing was written.
        """

    @abstractmethod
    def deliveries(self, notification_id: int) -> dict[str, Delivery]:
        """``{notifier name: Delivery}`` of every delivery of a notification (empty when it
        has none), read without starting a round: what a later update of its messages needs.

        Raises:
            StoreError: the database cannot be read.
        """

    @abstractmethod
    def set_diagnosis(self, notification_id: int, diagnosis: dict[str, Any]) -> None:
        """Store (replace) the diagnosis of a notification, whatever its state: a late LLM
        diagnosis that follows a page sent with the rules' one. From then on :meth:`due` and
        :meth:`claim` return it, so deliveries still to be made carry it.

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

    # --- retention ------------------------------------------------------------------------

    @abstractmethod
    def prune(self, before: float, limit: int = 500) -> int:
        """Delete old rows in one short transaction: at most ``limit`` notifications that are
        ``done`` and completed before ``before`` (Unix seconds), with their deliveries, then at
        most ``limit`` webhooks received before ``before`` that no notification refers to.

        Pending notifications and their webhooks are never deleted. Callers repeat until it
        returns 0, pausing between calls, so intake is never blocked for long.

        Returns:
            Notifications plus webhooks deleted.

        Raises:
            StoreError: nothing was deleted.
        """

    @abstractmethod
    def size_bytes(self) -> int:
        """The database's size on disk in bytes (SQLite: the file and its WAL; PostgreSQL:
        ``pg_database_size``).

        Raises:
            StoreError: it cannot be read.
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
    def lead(self, owner: str, ttl: float) -> bool:
        """Try to become, or stay, the one receiver that raises the dead man's switch.

        PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a
        dedicated connection, released by :meth:`resign` or when that session ends (a crashed
        receiver's lock goes with its connection; ``ttl`` is not needed). SQLite: a lease row
        (owner, until) taken when free or expired and renewed for ``ttl`` seconds. Call it
        at least every ``ttl / 3`` seconds while running.

        Returns:
            True while ``owner`` is the leader.

        Raises:
            StoreError: the database cannot be reached (the caller is not the leader).
        """

    @abstractmethod
    def resign(self, owner: str) -> None:
        """Give up leadership if ``owner`` holds it (on shutdown); never raises."""

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
