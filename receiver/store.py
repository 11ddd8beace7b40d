"""SQLite storage of webhooks, per-alert notifications, per-notifier deliveries, dead man's switch.

Tables (schema version 2, ``PRAGMA user_version``; a version-1 database is migrated in place):

* ``webhooks`` - every valid webhook as received (audit trail, one row per POST), plus one row per
  synthetic notification of the dead man's switch (``receiver = 'alert-receiver'``);
* ``notifications`` - one row per alert notification, unique on Alertmanager's idempotency key
  ``(group_key, fingerprint, status, starts_at, ends_at)``; ``state`` is ``pending`` until every
  delivery is final, then ``done``; ``next_attempt_at`` (Unix seconds) is when the worker next
  looks at it; ``origin`` is ``alertmanager`` or ``deadman``; the diagnosis is cached in
  ``diagnosis`` once made;
* ``deliveries`` - one row per (notification, notifier instance): ``state`` ``pending`` (to send,
  at ``next_attempt_at``), ``sending`` (an attempt started: written *before* the send, so after a
  crash the outcome is known to be uncertain), ``delivered``, ``rejected`` (the target refused
  the message, retrying cannot help) or ``dropped`` (gave up: too old, too many attempts, or the
  notifier is no longer configured); attempt count and last error (never containing secrets);
* ``deadman`` - a single row: last Watchdog heartbeat, whether the pipeline-down alarm is raised;
* ``health`` - a single row rewritten by the readiness probe to prove the database is writable.

The database runs in WAL mode with ``synchronous=FULL``: a webhook is on disk before the HTTP
answer. Methods are synchronous and safe to call from worker threads (``asyncio.to_thread``):
each thread keeps its own connection (opened on first use, replaced after an error), and write
transactions of one process queue on a lock instead of in SQLite's busy handler (which sleeps
1-100 ms between retries). :class:`IngestQueue` is the asynchronous intake in front of
:meth:`Store.ingest_many`: webhooks arriving while a commit is in progress are committed
together in the next transaction (group commit), each acknowledged only after that commit.
Every SQLite or filesystem failure is raised as :class:`StoreError`. One receiver process per
database file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receiver.models import AlertmanagerWebhook

SCHEMA_VERSION = 2

#: Delivery states after which nothing more is attempted.
FINAL_STATES = ("delivered", "rejected", "dropped")

_TABLES = [
    """CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    route TEXT NOT NULL,
    group_key TEXT NOT NULL,
    receiver TEXT NOT NULL,
    status TEXT NOT NULL,
    alert_count INTEGER NOT NULL,
    payload TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    webhook_id INTEGER NOT NULL REFERENCES webhooks(id),
    group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    alertname TEXT NOT NULL,
    route TEXT NOT NULL,
    receiver TEXT NOT NULL,
    external_url TEXT NOT NULL,
    alert TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    diagnosis TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    origin TEXT NOT NULL DEFAULT 'alertmanager',
    UNIQUE (group_key, fingerprint, status, starts_at, ends_at)
)""",
    "CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (state, id)",
    "CREATE INDEX IF NOT EXISTS notifications_alert ON notifications (group_key, fingerprint, id)",
    # next_due: the earliest retry among pending rows, without reading every pending row.
    "CREATE INDEX IF NOT EXISTS notifications_next ON notifications (state, next_attempt_at)",
    """CREATE TABLE IF NOT EXISTS deliveries (
    notification_id INTEGER NOT NULL REFERENCES notifications(id),
    notifier TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('pending', 'sending', 'delivered', 'rejected', 'dropped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at TEXT NOT NULL,
    delivered_at TEXT,
    PRIMARY KEY (notification_id, notifier)
)""",
    """CREATE TABLE IF NOT EXISTS deadman (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_heartbeat REAL,
    heartbeats INTEGER NOT NULL DEFAULT 0,
    alarm_since REAL,
    alarm_raised_at REAL,
    updated_at TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TEXT NOT NULL
)""",
]

_MIGRATE_1_TO_2 = [
    "ALTER TABLE notifications ADD COLUMN next_attempt_at REAL NOT NULL DEFAULT 0",
    "ALTER TABLE notifications ADD COLUMN origin TEXT NOT NULL DEFAULT 'alertmanager'",
    "ALTER TABLE deliveries RENAME TO deliveries_v1",
    *_TABLES,
    # Version 1 had one delivery per channel type (its name) and gave up for good ('failed').
    "INSERT INTO deliveries (notification_id, notifier, channel, state, attempts,"
    " next_attempt_at, last_error, updated_at, delivered_at)"
    " SELECT notification_id, channel, channel,"
    " CASE state WHEN 'failed' THEN 'dropped' ELSE state END,"
    " attempts, 0, last_error, updated_at, delivered_at FROM deliveries_v1",
    "DROP TABLE deliveries_v1",
]


class StoreError(Exception):
    """The database could not be opened, read or written."""


def iso_utc(ts: float) -> str:
    """Unix seconds as ISO-8601 UTC with millisecond precision and a ``Z`` suffix."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """Inverse of :func:`iso_utc` (any ISO-8601 with offset); ``0.0`` if unparsable."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class IngestResult:
    """Outcome of storing one webhook.

    Attributes:
        webhook_id: row id in ``webhooks``.
        new_ids: ids of newly created notifications (in alert order).
        duplicates: alerts already stored under the same idempotency key.
    """

    webhook_id: int
    new_ids: list[int]
    duplicates: int


@dataclass(frozen=True)
class PendingNotification:
    """A notification row still to be processed.

    Attributes:
        id: row id.
        route, receiver, group_key, external_url: webhook-level context.
        fingerprint: the alert's fingerprint (with ``group_key``, the per-alert ordering key).
        alert: the alert as stored (wire/alias field names, JSON-decoded).
        diagnosis: cached diagnosis JSON object, or ``None`` if not diagnosed yet.
        created_ts: when it was stored (Unix seconds): deliveries are dropped past a max age.
        origin: ``alertmanager`` or ``deadman``.
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
    origin: str = "alertmanager"


@dataclass(frozen=True)
class Delivery:
    """The delivery row of one notification to one notifier instance.

    Attributes:
        notifier: notifier instance name.
        channel: notifier type (``slack``, ``jsonl``...).
        state: ``pending``, ``sending``, ``delivered``, ``rejected`` or ``dropped``.
        attempts: attempts started so far.
        next_attempt_at: Unix seconds before which no attempt is made.
    """

    notifier: str
    channel: str
    state: str
    attempts: int
    next_attempt_at: float


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
        alert: the alert in webhook wire form (``status``, ``labels``, ``startsAt``...).
        diagnosis: the diagnosis JSON (stored, so the worker does not diagnose it).
        origin: ``notifications.origin``.
    """

    route: str
    group_key: str
    receiver: str
    alert: dict[str, Any]
    diagnosis: dict[str, Any]
    origin: str = "deadman"


#: A dead man's switch transition: given the stored state, the new state and an optional
#: notification to store in the same transaction.
DeadmanTransition = Callable[[DeadmanState], tuple[DeadmanState, SyntheticNotification | None]]

#: One webhook to store: ``(webhook, route, raw body)``, as :meth:`Store.ingest` takes them.
IngestItem = tuple[AlertmanagerWebhook, str, str | dict[str, Any] | None]


class Store:
    """SQLite store at ``path`` (parent directories are created).

    Args:
        path: database file.
        clock: Unix-seconds clock for timestamps (tests may inject one).
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._ready = False
        self._local = threading.local()  # .conn: this thread's connection
        self._write_lock = threading.Lock()

    def _now_iso(self) -> str:
        return iso_utc(self._clock())

    def _open(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            if not self._ready:
                self._init_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _rollback(conn: sqlite3.Connection | None) -> None:
        with contextlib.suppress(sqlite3.Error):  # also raised by a closed connection
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, opened on first use and kept for the next call (opening
        one costs more than most statements); after a database error it is closed, so the next
        call starts afresh."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._open()
                self._local.conn = conn
            yield conn
        except (sqlite3.Error, OSError) as exc:
            self._rollback(conn)
            self._local.conn = None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            raise StoreError(f"database error: {exc}") from exc
        except BaseException:
            self._rollback(conn)
            raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error).

        Writers of this process take turns on a lock: waiting in SQLite's busy handler instead
        would sleep 1-100 ms between attempts, long after the lock was free.
        """
        with self._write_lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                self._rollback(conn)
                raise
            conn.execute("COMMIT")

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot enable WAL journal mode (got {mode})")
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.OperationalError(
                f"database schema version {version} is newer than supported {SCHEMA_VERSION}"
            )
        statements = _MIGRATE_1_TO_2 if version == 1 else _TABLES
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
        self._ready = True

    def init(self) -> None:
        """Create the database, schema and WAL mode if needed (migrating version 1).

        Raises:
            StoreError: the database cannot be opened or created.
        """
        with self._connect():
            pass

    # --- intake ---------------------------------------------------------------------------

    def ingest(
        self, webhook: AlertmanagerWebhook, route: str, raw: str | dict[str, Any] | None = None
    ) -> IngestResult:
        """Store a validated webhook and one notification per new alert, atomically.

        ``raw`` is the request body (decoded JSON or its serialisation), kept verbatim in
        ``webhooks.payload`` (unknown and newer fields included); without it the normalised
        model is stored there.

        Alerts whose ``(group_key, fingerprint, status, starts_at, ends_at)`` is already stored
        are counted as duplicates and not stored again.

        Raises:
            StoreError: nothing was stored (the caller answers 503 so Alertmanager retries).
        """
        return self.ingest_many([(webhook, route, raw)])[0]

    def ingest_many(self, items: Sequence[IngestItem]) -> list[IngestResult]:
        """Store several webhooks as :meth:`ingest` does, in one transaction (group commit).

        One commit (one ``fsync``) for the lot; either all are stored or none. Alerts repeated
        within ``items`` are stored once, as if the webhooks had come one after the other.

        Returns:
            One :class:`IngestResult` per item, in order.

        Raises:
            StoreError: nothing was stored (the caller answers 503 so Alertmanager retries).
        """
        now = self._now_iso()
        rows = []
        for webhook, route, raw in items:
            if isinstance(raw, str):
                raw_text = raw
            elif raw is None:
                raw_text = json.dumps(webhook.model_dump(mode="json", by_alias=True))
            else:
                raw_text = json.dumps(raw)
            # Serialised by pydantic-core: the same JSON object as json.dumps of model_dump.
            alerts = [alert.model_dump_json(by_alias=True) for alert in webhook.alerts]
            rows.append((webhook, route, raw_text, alerts))
        with self._transaction() as conn:
            return [self._insert_webhook(conn, now, *row) for row in rows]

    @staticmethod
    def _insert_webhook(
        conn: sqlite3.Connection,
        now: str,
        webhook: AlertmanagerWebhook,
        route: str,
        raw_text: str,
        alerts: list[str],
    ) -> IngestResult:
        cur = conn.execute(
            "INSERT INTO webhooks (received_at, route, group_key, receiver, status,"
            " alert_count, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                route,
                webhook.group_key,
                webhook.receiver,
                webhook.status,
                len(webhook.alerts),
                raw_text,
            ),
        )
        webhook_id = int(cur.lastrowid or 0)
        new_ids: list[int] = []
        duplicates = 0
        for alert, stored in zip(webhook.alerts, alerts, strict=True):
            cur = conn.execute(
                "INSERT OR IGNORE INTO notifications (webhook_id, group_key, fingerprint,"
                " status, starts_at, ends_at, alertname, route, receiver, external_url,"
                " alert, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    webhook_id,
                    webhook.group_key,
                    alert.fingerprint,
                    alert.status,
                    alert.starts_at,
                    alert.ends_at,
                    alert.alertname,
                    route,
                    webhook.receiver,
                    webhook.external_url,
                    stored,
                    now,
                    now,
                ),
            )
            if cur.rowcount == 1:
                new_ids.append(int(cur.lastrowid or 0))
            else:
                duplicates += 1
        return IngestResult(webhook_id=webhook_id, new_ids=new_ids, duplicates=duplicates)

    def _insert_synthetic(
        self, conn: sqlite3.Connection, item: SyntheticNotification
    ) -> int | None:
        now = self._now_iso()
        alert = item.alert
        cur = conn.execute(
            "INSERT INTO webhooks (received_at, route, group_key, receiver, status,"
            " alert_count, payload) VALUES (?, ?, ?, ?, ?, 1, ?)",
            (
                now,
                item.route,
                item.group_key,
                item.receiver,
                alert["status"],
                json.dumps({"origin": item.origin, "alerts": [alert]}),
            ),
        )
        webhook_id = int(cur.lastrowid or 0)
        cur = conn.execute(
            "INSERT OR IGNORE INTO notifications (webhook_id, group_key, fingerprint, status,"
            " starts_at, ends_at, alertname, route, receiver, external_url, alert, diagnosis,"
            " created_at, updated_at, origin)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?)",
            (
                webhook_id,
                item.group_key,
                alert["fingerprint"],
                alert["status"],
                alert["startsAt"],
                alert["endsAt"],
                alert["labels"].get("alertname", "unknown"),
                item.route,
                item.receiver,
                json.dumps(alert),
                json.dumps(item.diagnosis),
                now,
                now,
                item.origin,
            ),
        )
        return int(cur.lastrowid or 0) if cur.rowcount == 1 else None

    # --- worker ---------------------------------------------------------------------------

    def due(self, now: float, limit: int = 100) -> list[PendingNotification]:
        """Pending notifications whose ``next_attempt_at`` has come, oldest (lowest id) first."""
        with self._connect() as conn:
            # "+next_attempt_at": walk notifications_pending in id order and stop after
            # ``limit`` rows, rather than collect every due row from notifications_next and sort.
            rows = conn.execute(
                "SELECT id, route, receiver, group_key, external_url, fingerprint, alert,"
                " diagnosis, created_at, origin FROM notifications"
                " WHERE state = 'pending' AND +next_attempt_at <= ? ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [
            PendingNotification(
                id=row["id"],
                route=row["route"],
                receiver=row["receiver"],
                group_key=row["group_key"],
                external_url=row["external_url"],
                fingerprint=row["fingerprint"],
                alert=json.loads(row["alert"]),
                diagnosis=json.loads(row["diagnosis"]) if row["diagnosis"] else None,
                created_ts=parse_iso(row["created_at"]),
                origin=row["origin"],
            )
            for row in rows
        ]

    def pending(self, limit: int = 100) -> list[PendingNotification]:
        """Every ``pending`` notification, due or not, oldest first."""
        return self.due(float("inf"), limit)

    def next_due(self, after: float) -> float | None:
        """The earliest ``next_attempt_at`` later than ``after`` among pending notifications."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT MIN(next_attempt_at) FROM notifications"
                " WHERE state = 'pending' AND next_attempt_at > ?",
                (after,),
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def save_diagnosis(self, notification_id: int, diagnosis: dict[str, Any]) -> None:
        """Cache the diagnosis JSON of a notification (reused after a crash/restart)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE notifications SET diagnosis = ?, updated_at = ? WHERE id = ?",
                (json.dumps(diagnosis), self._now_iso(), notification_id),
            )

    def plan(
        self, notification_id: int, notifiers: Sequence[tuple[str, str]], now: float
    ) -> dict[str, Delivery]:
        """Create the missing delivery rows and return every delivery row of a notification.

        Args:
            notifiers: ``(name, channel)`` of each notifier the notification's route has now;
                a new row is ``pending`` and due at ``now``.

        Returns:
            ``{notifier name: Delivery}``, including rows of notifiers no longer configured.
        """
        stamp = self._now_iso()
        with self._transaction() as conn:
            return self._plan(conn, notification_id, notifiers, now, stamp)

    def prepare(
        self,
        notification_id: int,
        group_key: str,
        fingerprint: str,
        notifiers: Sequence[tuple[str, str]],
        now: float,
        diagnosis: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Delivery], dict[str, float], float | None]:
        """One processing round's start in one transaction: :meth:`save_diagnosis` (when
        ``diagnosis`` is given), :meth:`plan` and :meth:`blocking`.

        Returns:
            ``(plan, blocked, unplanned)`` as :meth:`plan` and :meth:`blocking` return them.
        """
        stamp = self._now_iso()
        with self._transaction() as conn:
            if diagnosis is not None:
                conn.execute(
                    "UPDATE notifications SET diagnosis = ?, updated_at = ? WHERE id = ?",
                    (json.dumps(diagnosis), stamp, notification_id),
                )
            plan = self._plan(conn, notification_id, notifiers, now, stamp)
            blocked, unplanned = self._blocking(conn, notification_id, group_key, fingerprint)
        return plan, blocked, unplanned

    @staticmethod
    def _plan(
        conn: sqlite3.Connection,
        notification_id: int,
        notifiers: Sequence[tuple[str, str]],
        now: float,
        stamp: str,
    ) -> dict[str, Delivery]:
        for name, channel in notifiers:
            conn.execute(
                "INSERT OR IGNORE INTO deliveries (notification_id, notifier, channel, state,"
                " attempts, next_attempt_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?)",
                (notification_id, name, channel, now, stamp),
            )
        rows = conn.execute(
            "SELECT notifier, channel, state, attempts, next_attempt_at FROM deliveries"
            " WHERE notification_id = ? ORDER BY notifier",
            (notification_id,),
        ).fetchall()
        return {
            row["notifier"]: Delivery(
                row["notifier"],
                row["channel"],
                row["state"],
                int(row["attempts"]),
                float(row["next_attempt_at"]),
            )
            for row in rows
        }

    def blocking(
        self, notification_id: int, group_key: str, fingerprint: str
    ) -> tuple[dict[str, float], float | None]:
        """What earlier notifications of the same alert still owe (per-alert ordering).

        Returns:
            ``({notifier: earliest next_attempt_at of an earlier unfinished delivery}, t)``
            where ``t`` is the ``next_attempt_at`` of an earlier pending notification that has
            no delivery row yet (it blocks every notifier), or ``None``.
        """
        with self._connect() as conn:
            return self._blocking(conn, notification_id, group_key, fingerprint)

    @staticmethod
    def _blocking(
        conn: sqlite3.Connection, notification_id: int, group_key: str, fingerprint: str
    ) -> tuple[dict[str, float], float | None]:
        per_notifier = conn.execute(
            "SELECT d.notifier, MIN(d.next_attempt_at) FROM notifications n"
            " JOIN deliveries d ON d.notification_id = n.id"
            " WHERE n.group_key = ? AND n.fingerprint = ? AND n.id < ?"
            " AND n.state = 'pending' AND d.state IN ('pending', 'sending')"
            " GROUP BY d.notifier",
            (group_key, fingerprint, notification_id),
        ).fetchall()
        unplanned = conn.execute(
            "SELECT MIN(n.next_attempt_at) FROM notifications n"
            " WHERE n.group_key = ? AND n.fingerprint = ? AND n.id < ? AND n.state = 'pending'"
            " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id)",
            (group_key, fingerprint, notification_id),
        ).fetchone()[0]
        blocked = {str(row[0]): float(row[1]) for row in per_notifier}
        return blocked, None if unplanned is None else float(unplanned)

    def update_delivery(
        self,
        notification_id: int,
        notifier: str,
        state: str,
        *,
        attempts: int | None = None,
        next_attempt_at: float | None = None,
        error: str | None = None,
        keep_error: bool = False,
    ) -> None:
        """Update the delivery row of one notifier (created by :meth:`plan`).

        Args:
            state: ``pending``, ``sending``, ``delivered``, ``rejected`` or ``dropped``.
            attempts: attempts started so far (unchanged when ``None``).
            next_attempt_at: Unix seconds of the next attempt (unchanged when ``None``).
            error: last error message (must not contain secrets), or ``None``.
            keep_error: leave the stored last error as it is (``error`` is ignored).
        """
        stamp = self._now_iso()
        with self._transaction() as conn:
            conn.execute(
                "UPDATE deliveries SET state = ?, attempts = COALESCE(?, attempts),"
                " next_attempt_at = COALESCE(?, next_attempt_at),"
                " last_error = CASE WHEN ? THEN last_error ELSE ? END,"
                " updated_at = ?, delivered_at = ? WHERE notification_id = ? AND notifier = ?",
                (
                    state,
                    attempts,
                    next_attempt_at,
                    keep_error,
                    error,
                    stamp,
                    stamp if state == "delivered" else None,
                    notification_id,
                    notifier,
                ),
            )

    def record_delivery(
        self, notification_id: int, channel: str, state: str, attempts: int, error: str | None
    ) -> None:
        """Upsert the delivery row of a notifier named like its channel (tests, migrations)."""
        stamp = self._now_iso()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO deliveries (notification_id, notifier, channel, state, attempts,"
                " next_attempt_at, last_error, updated_at, delivered_at)"
                " VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)"
                " ON CONFLICT (notification_id, notifier) DO UPDATE SET state = excluded.state,"
                " attempts = excluded.attempts, last_error = excluded.last_error,"
                " updated_at = excluded.updated_at, delivered_at = excluded.delivered_at",
                (
                    notification_id,
                    channel,
                    channel,
                    state,
                    attempts,
                    error,
                    stamp,
                    stamp if state == "delivered" else None,
                ),
            )

    def finish(self, notification_id: int) -> float | None:
        """Close a processing round of a notification.

        Marks it ``done`` when every delivery row is final, otherwise sets its
        ``next_attempt_at`` to the earliest one of its unfinished deliveries.

        Returns:
            ``None`` when done, else the next attempt time.
        """
        stamp = self._now_iso()
        with self._transaction() as conn:
            next_at = conn.execute(
                "SELECT MIN(next_attempt_at) FROM deliveries"
                " WHERE notification_id = ? AND state IN ('pending', 'sending')",
                (notification_id,),
            ).fetchone()[0]
            if next_at is None:
                conn.execute(
                    "UPDATE notifications SET state = 'done', updated_at = ?, completed_at = ?"
                    " WHERE id = ?",
                    (stamp, stamp, notification_id),
                )
                return None
            conn.execute(
                "UPDATE notifications SET next_attempt_at = ?, updated_at = ? WHERE id = ?",
                (float(next_at), stamp, notification_id),
            )
        return float(next_at)

    def postpone(self, notification_id: int, until: float) -> None:
        """Leave a notification pending but do not look at it again before ``until``."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE notifications SET next_attempt_at = ?, updated_at = ? WHERE id = ?",
                (until, self._now_iso(), notification_id),
            )

    def complete(self, notification_id: int) -> None:
        """Mark a notification ``done`` whatever its deliveries (e.g. unreadable alert)."""
        stamp = self._now_iso()
        with self._transaction() as conn:
            conn.execute(
                "UPDATE notifications SET state = 'done', updated_at = ?, completed_at = ?"
                " WHERE id = ?",
                (stamp, stamp, notification_id),
            )

    # --- observation ----------------------------------------------------------------------

    def delivery_states(self, notification_id: int) -> dict[str, str]:
        """Return ``{notifier: state}`` of the notification's delivery rows."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT notifier, state FROM deliveries WHERE notification_id = ?",
                (notification_id,),
            ).fetchall()
        return {row["notifier"]: row["state"] for row in rows}

    def counts(self) -> dict[str, int]:
        """``{"webhooks", "pending", "done", "failed_deliveries", "unsent_deliveries"}`` counts.

        ``failed_deliveries`` counts deliveries given up (``rejected`` or ``dropped``).
        """
        with self._connect() as conn:
            webhooks = conn.execute("SELECT COUNT(*) FROM webhooks").fetchone()[0]
            states = dict(
                conn.execute("SELECT state, COUNT(*) FROM notifications GROUP BY state").fetchall()
            )
            deliveries = dict(
                conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state").fetchall()
            )
        return {
            "webhooks": int(webhooks),
            "pending": int(states.get("pending", 0)),
            "done": int(states.get("done", 0)),
            "failed_deliveries": int(deliveries.get("rejected", 0) + deliveries.get("dropped", 0)),
            "unsent_deliveries": int(deliveries.get("pending", 0) + deliveries.get("sending", 0)),
        }

    def unsent(self, now: float) -> tuple[int, float]:
        """``(pending notifications, age in seconds of the oldest one or 0)``."""
        with self._connect() as conn:
            count, oldest = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM notifications WHERE state = 'pending'"
            ).fetchone()
        if not count or oldest is None:
            return 0, 0.0
        return int(count), max(0.0, now - parse_iso(oldest))

    def check_writable(self) -> None:
        """Write (and fsync) a row, proving the database accepts writes.

        Raises:
            StoreError: it does not.
        """
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO health (id, checked_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (self._now_iso(),),
            )

    # --- dead man's switch ----------------------------------------------------------------

    @staticmethod
    def _deadman_row(conn: sqlite3.Connection) -> DeadmanState:
        row = conn.execute(
            "SELECT last_heartbeat, heartbeats, alarm_since, alarm_raised_at FROM deadman"
            " WHERE id = 1"
        ).fetchone()
        if row is None:
            return DeadmanState()
        return DeadmanState(
            last_heartbeat=row["last_heartbeat"],
            heartbeats=int(row["heartbeats"]),
            alarm_since=row["alarm_since"],
            alarm_raised_at=row["alarm_raised_at"],
        )

    def deadman_state(self) -> DeadmanState:
        """The persisted dead man's switch state (defaults before the first heartbeat)."""
        with self._connect() as conn:
            return self._deadman_row(conn)

    def deadman_transition(self, transition: DeadmanTransition) -> tuple[DeadmanState, int | None]:
        """Apply ``transition`` atomically: new state and its notification commit together.

        Returns:
            ``(new state, id of the stored notification or None)`` (``None`` also when the
            same notification was already stored).
        """
        with self._transaction() as conn:
            before = self._deadman_row(conn)
            after, synthetic = transition(before)
            notification_id = None
            if synthetic is not None:
                notification_id = self._insert_synthetic(conn, synthetic)
            if after != before:
                conn.execute(
                    "INSERT INTO deadman (id, last_heartbeat, heartbeats, alarm_since,"
                    " alarm_raised_at, updated_at) VALUES (1, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,"
                    " heartbeats = excluded.heartbeats, alarm_since = excluded.alarm_since,"
                    " alarm_raised_at = excluded.alarm_raised_at,"
                    " updated_at = excluded.updated_at",
                    (
                        after.last_heartbeat,
                        after.heartbeats,
                        after.alarm_since,
                        after.alarm_raised_at,
                        self._now_iso(),
                    ),
                )
        return after, notification_id


class IngestQueue:
    """Asynchronous intake in front of :meth:`Store.ingest_many`: group commit.

    A webhook is stored at once when no commit is in progress; webhooks arriving while one is
    form the next transaction (at most ``max_batch`` per transaction), so under load one
    ``fsync`` serves many webhooks instead of each waiting its turn for its own. Each caller
    gets its result only after the transaction holding its webhook has committed, and a failed
    transaction fails every webhook in it (none of them is stored). The blocking SQLite work
    runs in a worker thread (``asyncio.to_thread``), never on the event loop.

    Args:
        store: the store to write to.
        max_batch: most webhooks committed in one transaction.
    """

    def __init__(self, store: Store, max_batch: int = 128) -> None:
        self._store = store
        self._max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[IngestItem, asyncio.Future[IngestResult]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ingest(
        self, webhook: AlertmanagerWebhook, route: str, raw: str | dict[str, Any] | None = None
    ) -> IngestResult:
        """Store a webhook as :meth:`Store.ingest` does; return once it is committed.

        Raises:
            StoreError: the transaction holding it failed; nothing of it was stored.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (an app's lifespan may run more than once)
            self._loop, self._pending, self._flusher = loop, [], None
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._pending.append(((webhook, route, raw), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await asyncio.to_thread(
                    self._store.ingest_many, [item for item, _ in batch]
                )
            except asyncio.CancelledError:
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending = []
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        error = StoreError(str(exc)) if isinstance(exc, StoreError) else exc
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # the caller may have gone (cancelled)
                    future.set_result(result)
