"""Durable storage of webhooks, per-alert notifications, per-notifier deliveries and the dead
man's switch.

* :class:`Store` (:mod:`.interface`) is what the app, the worker and the dead man's switch use;
  a backend implements it: :class:`SQLiteStore` (:mod:`.sqlite`), the embedded single-node
  default, and :class:`PostgresStore` (:mod:`.postgres`), for several receivers on one
  PostgreSQL database (leases, an advisory-lock leader, versioned migrations).
* :mod:`.records` holds what goes in and out: states (:class:`NotificationState`,
  :class:`DeliveryState`, :class:`Origin`), rows and named results.
* :class:`IngestQueue` (:mod:`.queue`) is the asynchronous intake in front of
  :meth:`Store.ingest_many`: webhooks arriving while a commit is in progress are committed
  together in the next transaction (group commit), each acknowledged only after that commit.
"""

from receiver.store.interface import Store, StoreError
from receiver.store.postgres import PostgresStore
from receiver.store.queue import IngestQueue
from receiver.store.records import (
    FINAL_STATES,
    DeadmanOutcome,
    DeadmanState,
    DeadmanTransition,
    Delivery,
    DeliveryState,
    IngestItem,
    IngestResult,
    NotificationState,
    Origin,
    PendingNotification,
    RoundStart,
    SyntheticNotification,
    Unsent,
)
from receiver.store.sqlite import SQLiteStore

__all__ = [
    "FINAL_STATES",
    "DeadmanOutcome",
    "DeadmanState",
    "DeadmanTransition",
    "Delivery",
    "DeliveryState",
    "IngestItem",
    "IngestQueue",
    "IngestResult",
    "NotificationState",
    "Origin",
    "PendingNotification",
    "PostgresStore",
    "RoundStart",
    "SQLiteStore",
    "Store",
    "StoreError",
    "SyntheticNotification",
    "Unsent",
]
