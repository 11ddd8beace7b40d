"""SQLite schema (version 2, ``PRAGMA user_version``) and its migration from version 1.

Tables:

* ``webhooks`` - every valid webhook as received (audit trail, one row per POST), plus one row per
  synthetic notification of the dead man's switch (``receiver = 'alert-receiver'``);
* ``notifications`` - one row per alert notification, unique on Alertmanager's idempotency key
  ``(group_key, fingerprint, status, starts_at, ends_at)``; ``state`` is a
  :class:`~receiver.store.NotificationState`; ``next_attempt_at`` (Unix seconds) is when the
  worker next looks at it; ``origin`` is an :class:`~receiver.store.Origin`; the diagnosis is
  cached in ``diagnosis`` once made;
* ``deliveries`` - one row per (notification, notifier instance): ``state`` is a
  :class:`~receiver.store.DeliveryState`, due at ``next_attempt_at``; attempt count and last
  error (never containing secrets);
* ``deadman`` - a single row: last Watchdog heartbeat, whether the pipeline-down alarm is raised;
* ``health`` - a single row rewritten by the readiness probe to prove the database is writable.
"""

from __future__ import annotations

import sqlite3

#: ``PRAGMA user_version`` of the schema below.
SCHEMA_VERSION = 2

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


def init_schema(conn: sqlite3.Connection) -> None:
    """Switch ``conn``'s database to WAL mode and create (or migrate to) the current schema.

    Raises:
        sqlite3.OperationalError: WAL mode cannot be enabled, or the database's schema is newer
            than :data:`SCHEMA_VERSION`.
        sqlite3.Error: any other database failure (the migration is rolled back).
    """
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
