"""SQLite schema (version 4, ``PRAGMA user_version``) and its migrations from versions 1 to 3.

Tables:

* ``webhooks`` - every valid webhook as received (audit trail, one row per POST), plus one row per
  synthetic notification of the dead man's switch (``receiver = 'alert-receiver'``);
* ``notifications`` - one row per alert notification, unique on Alertmanager's idempotency key
  ``(group_key, fingerprint, status, starts_at, ends_at)``; ``state`` is a
  :class:`~receiver.store.NotificationState`; ``next_attempt_at`` (Unix seconds) is when the
  worker next looks at it; ``origin`` is an :class:`~receiver.store.Origin`; the diagnosis is
  cached in ``diagnosis`` once made; ``lease_owner`` and ``lease_until`` (Unix seconds) say
  which receiver holds it (:meth:`~receiver.store.Store.claim`), both ``NULL`` when free;
* ``deliveries`` - one row per (notification, notifier instance): ``state`` is a
  :class:`~receiver.store.DeliveryState`, due at ``next_attempt_at``; attempt count and last
  error (never containing secrets); ``message_ref`` (nullable) what identifies the sent message
  for a later update (when it was sent, the platform's message id: Discord message id,
  Telegram ``message_id``, Slack ``ts``), so a late LLM diagnosis can still edit it after a
  restart;
* ``deadman`` - a single row: last Watchdog heartbeat, whether the pipeline-down alarm is raised;
* ``leader`` - a single row: which receiver raises the dead man's switch (``owner``) and until
  when (``until``, Unix seconds) without renewing (:meth:`~receiver.store.Store.lead`);
* ``health`` - a single row rewritten by the readiness probe to prove the database is writable.

Times written as text (``received_at``, ``created_at``, ``completed_at``...) are
:func:`exchange_common.timestamps.iso_utc` strings: fixed width (``2026-11-21T07:22:00.568Z``)
for years 1000-9999, so they sort (and compare) as the times they write.

Migrations run in the one ``BEGIN IMMEDIATE`` transaction that reads the version, so receivers
started together migrate once and the others find the new version: 1 -> 2 (``next_attempt_at``,
``origin``, one delivery per notifier instance), then 2 -> 3 (leases, ``leader``, the retention
indexes), then 3 -> 4 (``deliveries.message_ref``, ``NULL`` for the rows already there).
"""

from __future__ import annotations

import contextlib
import sqlite3

#: ``PRAGMA user_version`` of the schema below.
SCHEMA_VERSION = 4

_WEBHOOKS = """CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    route TEXT NOT NULL,
    group_key TEXT NOT NULL,
    receiver TEXT NOT NULL,
    status TEXT NOT NULL,
    alert_count INTEGER NOT NULL,
    payload TEXT NOT NULL
)"""

_NOTIFICATIONS = """CREATE TABLE IF NOT EXISTS notifications (
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
    lease_owner TEXT,
    lease_until REAL,
    UNIQUE (group_key, fingerprint, status, starts_at, ends_at)
)"""

_DELIVERIES = """CREATE TABLE IF NOT EXISTS deliveries (
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
    message_ref TEXT,
    PRIMARY KEY (notification_id, notifier)
)"""

#: The deliveries table of versions 2 and 3 (what 1 -> 2 creates; 3 -> 4 adds a column to it).
_DELIVERIES_V2 = """CREATE TABLE IF NOT EXISTS deliveries (
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
)"""

_DEADMAN = """CREATE TABLE IF NOT EXISTS deadman (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_heartbeat REAL,
    heartbeats INTEGER NOT NULL DEFAULT 0,
    alarm_since REAL,
    alarm_raised_at REAL,
    updated_at TEXT NOT NULL
)"""

_LEADER = """CREATE TABLE IF NOT EXISTS leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT,
    until REAL,
    updated_at TEXT NOT NULL
)"""

_HEALTH = """CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TEXT NOT NULL
)"""

_INDEXES = [
    # due and claim walk the pending rows in id order.
    "CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (state, id)",
    "CREATE INDEX IF NOT EXISTS notifications_alert ON notifications (group_key, fingerprint, id)",
    # next_due: the earliest retry among pending rows, without reading every pending row...
    "CREATE INDEX IF NOT EXISTS notifications_next ON notifications (state, next_attempt_at)",
    # ... and the earliest end of a lease that delays one.
    "CREATE INDEX IF NOT EXISTS notifications_lease ON notifications (state, lease_until)",
    # prune: done notifications by completion time, webhooks by reception time, and whether a
    # notification still refers to a webhook.
    "CREATE INDEX IF NOT EXISTS notifications_completed ON notifications (state, completed_at)",
    "CREATE INDEX IF NOT EXISTS notifications_webhook ON notifications (webhook_id)",
    "CREATE INDEX IF NOT EXISTS webhooks_received ON webhooks (received_at)",
]

_TABLES = [_WEBHOOKS, _NOTIFICATIONS, _DELIVERIES, _DEADMAN, _LEADER, _HEALTH, *_INDEXES]

_MIGRATE_1_TO_2 = [
    "ALTER TABLE notifications ADD COLUMN next_attempt_at REAL NOT NULL DEFAULT 0",
    "ALTER TABLE notifications ADD COLUMN origin TEXT NOT NULL DEFAULT 'alertmanager'",
    "ALTER TABLE deliveries RENAME TO deliveries_v1",
    _DELIVERIES_V2,
    # Version 1 had one delivery per channel type (its name) and gave up for good ('failed').
    "INSERT INTO deliveries (notification_id, notifier, channel, state, attempts,"
    " next_attempt_at, last_error, updated_at, delivered_at)"
    " SELECT notification_id, channel, channel,"
    " CASE state WHEN 'failed' THEN 'dropped' ELSE state END,"
    " attempts, 0, last_error, updated_at, delivered_at FROM deliveries_v1",
    "DROP TABLE deliveries_v1",
]

_MIGRATE_2_TO_3 = [
    "ALTER TABLE notifications ADD COLUMN lease_owner TEXT",
    "ALTER TABLE notifications ADD COLUMN lease_until REAL",
    *_TABLES,  # the leader table, the new indexes (and anything a version 1 lacked)
]

_MIGRATE_3_TO_4 = [
    "ALTER TABLE deliveries ADD COLUMN message_ref TEXT",
]


def _statements(version: int) -> list[str]:
    """The statements taking a database at ``version`` (0: empty) to :data:`SCHEMA_VERSION`."""
    if version == 0:
        return list(_TABLES)
    statements: list[str] = []
    if version <= 1:
        statements += _MIGRATE_1_TO_2
    if version <= 2:
        statements += _MIGRATE_2_TO_3
    if version <= 3:
        statements += _MIGRATE_3_TO_4
    return statements


def init_schema(conn: sqlite3.Connection) -> None:
    """Switch ``conn``'s database to WAL mode and create (or migrate to) the current schema.

    Everything happens in one ``BEGIN IMMEDIATE`` transaction: a failed migration leaves the
    database as it was, and a second process opening it meanwhile waits and finds it migrated.

    Raises:
        sqlite3.OperationalError: WAL mode cannot be enabled, or the database's schema is newer
            than :data:`SCHEMA_VERSION`.
        sqlite3.Error: any other database failure (the migration is rolled back).
    """
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot enable WAL journal mode (got {mode})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.OperationalError(
                f"database schema version {version} is newer than supported {SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION:
            for statement in _statements(version):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        raise
