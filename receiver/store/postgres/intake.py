"""PostgreSQL intake: webhooks and their notifications, and the dead man's synthetic
notifications.

Statements only, on a connection the caller holds in a transaction (:meth:`PostgresStore.
ingest_many`, :meth:`PostgresStore.deadman_transition`). Batches go through ``executemany``,
which psycopg runs in libpq's pipeline mode (one network round trip for many statements).
Measured on loopback, that beat one set-based ``INSERT ... SELECT FROM unnest(arrays)``
statement per batch (7.5 ms against 14 ms for 64 webhooks, best of 40): psycopg's array
dumping costs more than the pipelined statements.

Per-alert order: notification ids come from a sequence, so two intake transactions running
at once could commit a later id first. Before inserting, :func:`insert_webhooks` locks each of
its alerts (``pg_advisory_xact_lock`` on a hash of ``(group_key, fingerprint)``, in sorted
order so two batches cannot deadlock): a second notification of the same alert is numbered
only after the first has committed, so ids of one alert increase in storage order, as the
worker's per-alert ordering needs (see :meth:`receiver.store.Store.prepare`).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg.rows import TupleRow

from receiver.store.records import IngestResult, SyntheticNotification
from receiver.store.sqlite.intake import SerialisedWebhook

ALERT_LOCK_CLASS = 0x6577
"""First key of the per-alert advisory locks (two-int4 key space, apart from the bigint keys
of the migration and leader locks)."""

_INSERT_WEBHOOK = (
    "INSERT INTO webhooks (received_at, route, group_key, receiver, status, alert_count,"
    " payload) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id"
)

_INSERT_NOTIFICATION = (
    "INSERT INTO notifications (webhook_id, group_key, fingerprint, status, starts_at, ends_at,"
    " alertname, route, receiver, external_url, alert, diagnosis, created_at, updated_at,"
    " origin) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT ON CONSTRAINT notifications_key DO NOTHING RETURNING id"
)


def text(value: str) -> str:
    """``value`` storable in a PostgreSQL ``text`` column, which refuses NUL characters
    (SQLite keeps them): each becomes U+FFFD."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def alert_lock_key(group_key: str, fingerprint: str) -> int:
    """The second (int4) key of an alert's advisory lock: a CRC-32 of its identity."""
    digest = zlib.crc32(f"{group_key}\x1f{fingerprint}".encode())
    return digest - (1 << 32) if digest >= 1 << 31 else digest


def lock_alerts(conn: psycopg.Connection[TupleRow], keys: set[int]) -> None:
    """Take the per-alert advisory locks ``keys`` until the transaction ends, in sorted order."""
    if keys:
        conn.execute(
            "SELECT count(pg_advisory_xact_lock(%s, k)) FROM unnest(%s::int4[]) AS k",
            (ALERT_LOCK_CLASS, sorted(keys)),
        )


def insert_webhooks(
    conn: psycopg.Connection[TupleRow], now: datetime, rows: Sequence[SerialisedWebhook]
) -> list[IngestResult]:
    """Insert webhooks and a notification per alert not stored yet (``now``: the time of
    record); see :meth:`receiver.store.Store.ingest_many`.

    Three round trips whatever the batch size: the per-alert locks, the webhooks
    (``executemany``, pipelined), their notifications (``executemany``, pipelined;
    ``ON CONFLICT DO NOTHING RETURNING id`` returns no row for a duplicate).
    """
    if not rows:
        return []
    lock_alerts(
        conn,
        {
            alert_lock_key(text(row.webhook.group_key), text(alert.fingerprint))
            for row in rows
            for alert in row.webhook.alerts
        },
    )
    with conn.cursor() as cur:
        cur.executemany(
            _INSERT_WEBHOOK,
            [
                (
                    now,
                    text(row.route),
                    text(row.webhook.group_key),
                    text(row.webhook.receiver),
                    row.webhook.status,
                    len(row.webhook.alerts),
                    row.raw_text,
                )
                for row in rows
            ],
            returning=True,
        )
        webhook_ids = [int(i) for i in _returned(cur) if i is not None]
        params = [
            (
                webhook_id,
                text(row.webhook.group_key),
                text(alert.fingerprint),
                alert.status,
                text(alert.starts_at),
                text(alert.ends_at),
                text(alert.alertname),
                text(row.route),
                text(row.webhook.receiver),
                text(row.webhook.external_url),
                stored,
                None,
                now,
                now,
                "alertmanager",
            )
            for webhook_id, row in zip(webhook_ids, rows, strict=True)
            for alert, stored in zip(row.webhook.alerts, row.alerts, strict=True)
        ]
        inserted: list[int | None] = []
        if params:
            cur.executemany(_INSERT_NOTIFICATION, params, returning=True)
            inserted = _returned(cur)
    results = []
    position = 0
    for webhook_id, row in zip(webhook_ids, rows, strict=True):
        count = len(row.alerts)
        new_ids = [i for i in inserted[position : position + count] if i is not None]
        position += count
        results.append(IngestResult(webhook_id, new_ids, count - len(new_ids)))
    return results


def insert_synthetic(
    conn: psycopg.Connection[TupleRow], now: datetime, item: SyntheticNotification
) -> int | None:
    """Insert a synthetic notification (and its audit webhook row) with its diagnosis.

    Returns:
        The new notification's id, ``None`` when its idempotency key was already stored.
    """
    alert = item.alert
    row = conn.execute(
        _INSERT_WEBHOOK,
        (
            now,
            text(item.route),
            text(item.group_key),
            text(item.receiver),
            alert["status"],
            1,
            json.dumps({"origin": item.origin, "alerts": [alert]}),
        ),
    ).fetchone()
    assert row is not None
    inserted = conn.execute(
        _INSERT_NOTIFICATION,
        (
            int(row[0]),
            text(item.group_key),
            text(alert["fingerprint"]),
            alert["status"],
            text(alert["startsAt"]),
            text(alert["endsAt"]),
            text(alert["labels"].get("alertname", "unknown")),
            text(item.route),
            text(item.receiver),
            "",
            json.dumps(alert),
            json.dumps(item.diagnosis),
            now,
            now,
            str(item.origin),
        ),
    ).fetchone()
    return None if inserted is None else int(inserted[0])


def _returned(cur: psycopg.Cursor[TupleRow]) -> list[int | None]:
    """The ``RETURNING id`` of each statement of an ``executemany(..., returning=True)``, in
    order; ``None`` where a statement returned no row (a conflict)."""
    ids: list[int | None] = []
    while True:
        row = cur.fetchone()
        ids.append(None if row is None else int(row[0]))
        if not cur.nextset():
            return ids
