"""PostgreSQL schema as versioned migrations, applied by :func:`migrate`.

Tables (the SQLite schema's, see :mod:`receiver.store.sqlite.schema`, with PostgreSQL types):

* ``schema_migrations`` - one row per applied migration (``version``, ``applied_at``);
* ``webhooks`` - every valid webhook as received (``payload`` verbatim), plus one row per
  synthetic notification of the dead man's switch;
* ``notifications`` - one row per alert notification, unique on Alertmanager's idempotency key
  ``(group_key, fingerprint, status, starts_at, ends_at)``; ``next_attempt_at`` and
  ``lease_until`` are Unix seconds (``double precision``); ``lease_owner`` names the receiver
  holding it (both ``NULL`` when free);
* ``deliveries`` - one row per (notification, notifier instance); ``message_ref`` (migration 2,
  nullable) identifies the sent message for a later update (as in SQLite);
* ``deadman`` - a single row (``id = 1``, created by the migration so it can be locked with
  ``SELECT ... FOR UPDATE``);
* ``health`` - a single row rewritten by the readiness probe.

Times of record (``received_at``, ``created_at``, ``updated_at``, ``completed_at``,
``delivered_at``) are ``timestamptz``. Leadership needs no table: it is an advisory lock
(:mod:`receiver.store.postgres.leader`).

Receivers started together: :func:`migrate` runs in one transaction that first takes
``pg_advisory_xact_lock(MIGRATION_LOCK)``, so one migrates and the others, waiting on the
lock, then find every version applied.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

MIGRATION_LOCK = 0x6577_0000_0000_0001
"""Advisory lock key (bigint space) serialising migrations ("ew" + 1)."""

_V1 = [
    """CREATE TABLE webhooks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at timestamptz NOT NULL,
        route text NOT NULL,
        group_key text NOT NULL,
        receiver text NOT NULL,
        status text NOT NULL,
        alert_count integer NOT NULL,
        payload text NOT NULL
    )""",
    """CREATE TABLE notifications (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        webhook_id bigint NOT NULL REFERENCES webhooks (id),
        group_key text NOT NULL,
        fingerprint text NOT NULL,
        status text NOT NULL,
        starts_at text NOT NULL,
        ends_at text NOT NULL,
        alertname text NOT NULL,
        route text NOT NULL,
        receiver text NOT NULL,
        external_url text NOT NULL,
        alert text NOT NULL,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
        diagnosis text,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        completed_at timestamptz,
        next_attempt_at double precision NOT NULL DEFAULT 0,
        origin text NOT NULL DEFAULT 'alertmanager',
        lease_owner text,
        lease_until double precision,
        CONSTRAINT notifications_key UNIQUE (group_key, fingerprint, status, starts_at, ends_at)
    )""",
    """CREATE TABLE deliveries (
        notification_id bigint NOT NULL REFERENCES notifications (id),
        notifier text NOT NULL,
        channel text NOT NULL,
        state text NOT NULL
            CHECK (state IN ('pending', 'sending', 'delivered', 'rejected', 'dropped')),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at double precision NOT NULL DEFAULT 0,
        last_error text,
        updated_at timestamptz NOT NULL,
        delivered_at timestamptz,
        PRIMARY KEY (notification_id, notifier)
    )""",
    """CREATE TABLE deadman (
        id integer PRIMARY KEY CHECK (id = 1),
        last_heartbeat double precision,
        heartbeats bigint NOT NULL DEFAULT 0,
        alarm_since double precision,
        alarm_raised_at double precision,
        updated_at timestamptz NOT NULL
    )""",
    "INSERT INTO deadman (id, heartbeats, updated_at) VALUES (1, 0, now())",
    """CREATE TABLE health (
        id integer PRIMARY KEY CHECK (id = 1),
        checked_at timestamptz NOT NULL
    )""",
    # due and claim walk the pending rows in id order.
    "CREATE INDEX notifications_pending ON notifications (id) WHERE state = 'pending'",
    # prepare: earlier notifications of the same alert.
    "CREATE INDEX notifications_alert ON notifications (group_key, fingerprint, id)",
    # next_due: the earliest retry, and the earliest end of a lease, among pending rows.
    "CREATE INDEX notifications_next ON notifications (next_attempt_at) WHERE state = 'pending'",
    "CREATE INDEX notifications_lease ON notifications (lease_until) WHERE state = 'pending'",
    # prune: done notifications by completion time, webhooks by reception time, and whether a
    # notification still refers to a webhook.
    "CREATE INDEX notifications_completed ON notifications (completed_at) WHERE state = 'done'",
    "CREATE INDEX notifications_webhook ON notifications (webhook_id)",
    "CREATE INDEX webhooks_received ON webhooks (received_at)",
]

#: The sent message's reference, for an update after a late LLM diagnosis (``NULL`` for the rows
#: already there: they are updated by a follow-up message, or not at all).
_V2 = ["ALTER TABLE deliveries ADD COLUMN message_ref text"]

MIGRATIONS: list[tuple[int, list[str]]] = [(1, _V1), (2, _V2)]
"""``(version, statements)`` in order; a new schema change is one more entry, never an edit."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
"""The newest version this code knows."""


class SchemaTooNewError(Exception):
    """The database has a migration newer than :data:`SCHEMA_VERSION` (a newer receiver)."""


def migrate(conn: psycopg.Connection[TupleRow]) -> list[int]:
    """Apply the missing migrations, in the caller's transaction, under the migration lock.

    Returns:
        The versions applied now (empty when the schema was current).

    Raises:
        SchemaTooNewError: the database's newest version is above :data:`SCHEMA_VERSION`.
        psycopg.Error: a statement failed (the caller rolls the transaction back).
    """
    # Migrations may take longer than a request's statement timeout, and waiting for another
    # receiver's migration is expected.
    conn.execute("SET LOCAL statement_timeout = 0")
    conn.execute("SET LOCAL lock_timeout = '120s'")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}
    newest = max(applied, default=0)
    if newest > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"database schema version {newest} is newer than supported {SCHEMA_VERSION}"
        )
    done = []
    for version, statements in MIGRATIONS:
        if version in applied:
            continue
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        done.append(version)
    return done
