"""SQLite storage of received webhooks, per-alert notifications and per-channel deliveries.

Tables (schema version 1, ``PRAGMA user_version``):

* ``webhooks`` - every valid webhook as received (audit trail, one row per POST);
* ``notifications`` - one row per alert notification, unique on Alertmanager's idempotency key
  ``(group_key, fingerprint, status, starts_at, ends_at)``; ``state`` is ``pending`` until every
  channel has been handled, then ``done``; the diagnosis is cached in ``diagnosis`` once made;
* ``deliveries`` - one row per (notification, channel) with ``state`` ``pending`` /
  ``delivered`` / ``failed``, attempt count and last error (never containing secrets).

The database runs in WAL mode with ``synchronous=FULL``: a webhook is on disk before the HTTP
answer. Methods are synchronous and open a short-lived connection each, so they are safe to call
from worker threads (``asyncio.to_thread``). Every SQLite or filesystem failure is raised as
:class:`StoreError`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.models import AlertmanagerWebhook, utc_now_iso

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    route TEXT NOT NULL,
    group_key TEXT NOT NULL,
    receiver TEXT NOT NULL,
    status TEXT NOT NULL,
    alert_count INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
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
    UNIQUE (group_key, fingerprint, status, starts_at, ends_at)
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (state, id);
CREATE TABLE IF NOT EXISTS deliveries (
    notification_id INTEGER NOT NULL REFERENCES notifications(id),
    channel TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at TEXT NOT NULL,
    delivered_at TEXT,
    PRIMARY KEY (notification_id, channel)
);
"""


class StoreError(Exception):
    """The database could not be opened, read or written."""


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
        alert: the alert as stored (wire/alias field names, JSON-decoded).
        diagnosis: cached diagnosis JSON object, or ``None`` if not diagnosed yet.
    """

    id: int
    route: str
    receiver: str
    group_key: str
    external_url: str
    alert: dict[str, Any]
    diagnosis: dict[str, Any] | None


class Store:
    """SQLite store at ``path`` (parent directories are created)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._ready = False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = None
        try:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            if not self._ready:
                self._init_schema(conn)
            yield conn
        except (sqlite3.Error, OSError) as exc:
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise StoreError(f"database error: {exc}") from exc
        finally:
            if conn is not None:
                conn.close()

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot enable WAL journal mode (got {mode})")
        conn.executescript(_SCHEMA)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise sqlite3.OperationalError(
                f"database schema version {version} is newer than supported {SCHEMA_VERSION}"
            )
        self._ready = True

    def init(self) -> None:
        """Create the database, schema and WAL mode if needed.

        Raises:
            StoreError: the database cannot be opened or created.
        """
        with self._connect():
            pass

    def ingest(
        self, webhook: AlertmanagerWebhook, route: str, raw: dict[str, Any] | None = None
    ) -> IngestResult:
        """Store a validated webhook and one notification per new alert, atomically.

        ``raw`` is the decoded request body, kept verbatim in ``webhooks.payload`` (unknown and
        newer fields included); without it the normalised model is stored there.

        Alerts whose ``(group_key, fingerprint, status, starts_at, ends_at)`` is already stored
        are counted as duplicates and not stored again.

        Raises:
            StoreError: nothing was stored (the caller answers 503 so Alertmanager retries).
        """
        now = utc_now_iso()
        payload = webhook.model_dump(mode="json", by_alias=True)
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
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
                    json.dumps(raw if raw is not None else payload),
                ),
            )
            webhook_id = int(cur.lastrowid or 0)
            new_ids: list[int] = []
            duplicates = 0
            for alert, raw in zip(webhook.alerts, payload["alerts"], strict=True):
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
                        json.dumps(raw),
                        now,
                        now,
                    ),
                )
                if cur.rowcount == 1:
                    new_ids.append(int(cur.lastrowid or 0))
                else:
                    duplicates += 1
            conn.execute("COMMIT")
        return IngestResult(webhook_id=webhook_id, new_ids=new_ids, duplicates=duplicates)

    def pending(self, limit: int = 100) -> list[PendingNotification]:
        """Return up to ``limit`` notifications in state ``pending``, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, route, receiver, group_key, external_url, alert, diagnosis"
                " FROM notifications WHERE state = 'pending' ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            PendingNotification(
                id=row["id"],
                route=row["route"],
                receiver=row["receiver"],
                group_key=row["group_key"],
                external_url=row["external_url"],
                alert=json.loads(row["alert"]),
                diagnosis=json.loads(row["diagnosis"]) if row["diagnosis"] else None,
            )
            for row in rows
        ]

    def save_diagnosis(self, notification_id: int, diagnosis: dict[str, Any]) -> None:
        """Cache the diagnosis JSON of a notification (reused after a crash/restart)."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE notifications SET diagnosis = ?, updated_at = ? WHERE id = ?",
                (json.dumps(diagnosis), utc_now_iso(), notification_id),
            )

    def delivery_states(self, notification_id: int) -> dict[str, str]:
        """Return ``{channel: state}`` of the notification's delivery rows."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT channel, state FROM deliveries WHERE notification_id = ?",
                (notification_id,),
            ).fetchall()
        return {row["channel"]: row["state"] for row in rows}

    def record_delivery(
        self, notification_id: int, channel: str, state: str, attempts: int, error: str | None
    ) -> None:
        """Upsert the delivery row of one channel.

        Args:
            state: ``pending`` (still retrying), ``delivered`` or ``failed`` (gave up).
            attempts: attempts made so far.
            error: last error message (must not contain secrets), or ``None``.
        """
        now = utc_now_iso()
        delivered_at = now if state == "delivered" else None
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO deliveries (notification_id, channel, state, attempts, last_error,"
                " updated_at, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (notification_id, channel) DO UPDATE SET state = excluded.state,"
                " attempts = excluded.attempts, last_error = excluded.last_error,"
                " updated_at = excluded.updated_at, delivered_at = excluded.delivered_at",
                (notification_id, channel, state, attempts, error, now, delivered_at),
            )

    def complete(self, notification_id: int) -> None:
        """Mark a notification ``done`` (every channel delivered or given up)."""
        now = utc_now_iso()
        with self._connect() as conn:
            conn.execute(
                "UPDATE notifications SET state = 'done', updated_at = ?, completed_at = ?"
                " WHERE id = ?",
                (now, now, notification_id),
            )

    def counts(self) -> dict[str, int]:
        """Return ``{"webhooks": n, "pending": n, "done": n, "failed_deliveries": n}``."""
        with self._connect() as conn:
            webhooks = conn.execute("SELECT COUNT(*) FROM webhooks").fetchone()[0]
            states = dict(
                conn.execute("SELECT state, COUNT(*) FROM notifications GROUP BY state").fetchall()
            )
            failed = conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE state = 'failed'"
            ).fetchone()[0]
        return {
            "webhooks": int(webhooks),
            "pending": int(states.get("pending", 0)),
            "done": int(states.get("done", 0)),
            "failed_deliveries": int(failed),
        }
