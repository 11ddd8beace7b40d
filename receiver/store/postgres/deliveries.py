"""PostgreSQL statements of the worker's side: due notifications, their deliveries, their
rounds, and the figures of :meth:`~receiver.store.Store.unsent` and
:meth:`~receiver.store.Store.counts`.

Statements only, on a connection the caller holds in a transaction. The same semantics as
:mod:`receiver.store.sqlite.deliveries`; records are built the same way, ``created_ts`` from
``created_at`` (``timestamptz``, microseconds).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from receiver.store.records import (
    Delivery,
    DeliveryState,
    NotificationState,
    Origin,
    PendingNotification,
    RoundStart,
    Unsent,
)


def pending_columns(alias: str = "") -> str:
    """The columns :func:`record` reads, for every query handing out pending notifications
    (``alias``: the table's alias in that query, e.g. ``"n"``)."""
    p = f"{alias}." if alias else ""
    return (
        f"{p}id, {p}route, {p}receiver, {p}group_key, {p}external_url, {p}fingerprint,"
        f" {p}alert, {p}diagnosis, extract(epoch FROM {p}created_at)::float8, {p}origin"
    )


def record(row: TupleRow) -> PendingNotification:
    """A row of :func:`pending_columns` as a :class:`PendingNotification`."""
    return PendingNotification(
        id=int(row[0]),
        route=row[1],
        receiver=row[2],
        group_key=row[3],
        external_url=row[4],
        fingerprint=row[5],
        alert=json.loads(row[6]),
        diagnosis=json.loads(row[7]) if row[7] else None,
        created_ts=float(row[8]),
        origin=Origin(row[9]),
    )


def due(conn: psycopg.Connection[TupleRow], now: float, limit: int) -> list[PendingNotification]:
    """Pending notifications with ``next_attempt_at <= now``, lowest id first, at most
    ``limit`` (leases ignored)."""
    if limit <= 0:
        return []
    rows = conn.execute(
        f"SELECT {pending_columns()} FROM notifications"
        " WHERE state = 'pending' AND next_attempt_at <= %s ORDER BY id LIMIT %s",
        (now, limit),
    ).fetchall()
    return [record(row) for row in rows]


def next_due(conn: psycopg.Connection[TupleRow], after: float) -> float | None:
    """The earliest ``max(next_attempt_at, lease_until)`` later than ``after`` among pending
    notifications (a free lease counts as 0); two index walks, as in SQLite."""
    row = conn.execute(
        "SELECT LEAST("
        " (SELECT min(next_attempt_at) FROM notifications"
        "  WHERE state = 'pending' AND next_attempt_at > %s"
        "  AND (lease_until IS NULL OR lease_until <= next_attempt_at)),"
        " (SELECT min(lease_until) FROM notifications"
        "  WHERE state = 'pending' AND lease_until > %s AND lease_until > next_attempt_at))",
        (after, after),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def prepare(
    conn: psycopg.Connection[TupleRow],
    stamp: datetime,
    notification_id: int,
    group_key: str,
    fingerprint: str,
    notifiers: Sequence[tuple[str, str]],
    now: float,
    diagnosis: dict[str, Any] | None,
) -> RoundStart:
    """Cache the diagnosis (when given), plan the deliveries, read the blocking ones; see
    :meth:`receiver.store.Store.prepare`."""
    if diagnosis is not None:
        conn.execute(
            "UPDATE notifications SET diagnosis = %s, updated_at = %s WHERE id = %s",
            (json.dumps(diagnosis), stamp, notification_id),
        )
    if notifiers:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO deliveries (notification_id, notifier, channel, state, attempts,"
                " next_attempt_at, updated_at) VALUES (%s, %s, %s, 'pending', 0, %s, %s)"
                " ON CONFLICT (notification_id, notifier) DO NOTHING",
                [(notification_id, name, channel, now, stamp) for name, channel in notifiers],
            )
    plan = deliveries(conn, notification_id)
    per_notifier = conn.execute(
        "SELECT d.notifier, min(d.next_attempt_at) FROM notifications n"
        " JOIN deliveries d ON d.notification_id = n.id"
        " WHERE n.group_key = %s AND n.fingerprint = %s AND n.id < %s"
        " AND n.state = 'pending' AND d.state IN ('pending', 'sending')"
        " GROUP BY d.notifier",
        (group_key, fingerprint, notification_id),
    ).fetchall()
    unplanned = conn.execute(
        "SELECT min(n.next_attempt_at) FROM notifications n"
        " WHERE n.group_key = %s AND n.fingerprint = %s AND n.id < %s AND n.state = 'pending'"
        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id)",
        (group_key, fingerprint, notification_id),
    ).fetchone()
    blocked = {str(row[0]): float(row[1]) for row in per_notifier}
    first = None if unplanned is None or unplanned[0] is None else float(unplanned[0])
    return RoundStart(plan, blocked, first)


def deliveries(conn: psycopg.Connection[TupleRow], notification_id: int) -> dict[str, Delivery]:
    """``{notifier: Delivery}`` of one notification, by notifier name."""
    rows = conn.execute(
        "SELECT notifier, channel, state, attempts, next_attempt_at, message_ref FROM deliveries"
        " WHERE notification_id = %s ORDER BY notifier",
        (notification_id,),
    ).fetchall()
    return {
        row[0]: Delivery(row[0], row[1], DeliveryState(row[2]), int(row[3]), float(row[4]), row[5])
        for row in rows
    }


def set_diagnosis(
    conn: psycopg.Connection[TupleRow],
    stamp: datetime,
    notification_id: int,
    diagnosis: dict[str, Any],
) -> None:
    """Replace a notification's cached diagnosis; see
    :meth:`receiver.store.Store.set_diagnosis`."""
    conn.execute(
        "UPDATE notifications SET diagnosis = %s, updated_at = %s WHERE id = %s",
        (json.dumps(diagnosis), stamp, notification_id),
    )


def update_delivery(
    conn: psycopg.Connection[TupleRow],
    stamp: datetime,
    notification_id: int,
    notifier: str,
    state: DeliveryState,
    attempts: int | None,
    next_attempt_at: float | None,
    error: str | None,
    keep_error: bool,
    message_ref: str | None = None,
) -> None:
    """Update one delivery row; see :meth:`receiver.store.Store.update_delivery`."""
    conn.execute(
        "UPDATE deliveries SET state = %s, attempts = COALESCE(%s::integer, attempts),"
        " next_attempt_at = COALESCE(%s::float8, next_attempt_at),"
        " last_error = CASE WHEN %s::boolean THEN last_error ELSE %s::text END,"
        " message_ref = COALESCE(%s::text, message_ref),"
        " updated_at = %s, delivered_at = %s WHERE notification_id = %s AND notifier = %s",
        (
            str(state),
            attempts,
            next_attempt_at,
            keep_error,
            None if error is None else error.replace("\x00", "\ufffd"),
            None if message_ref is None else message_ref.replace("\x00", "\ufffd"),
            stamp,
            stamp if state == DeliveryState.DELIVERED else None,
            notification_id,
            notifier,
        ),
    )


def finish(
    conn: psycopg.Connection[TupleRow], stamp: datetime, notification_id: int
) -> float | None:
    """Close a round: ``done`` when every delivery is final, else due at the earliest one."""
    row = conn.execute(
        "SELECT min(next_attempt_at) FROM deliveries"
        " WHERE notification_id = %s AND state IN ('pending', 'sending')",
        (notification_id,),
    ).fetchone()
    if row is None or row[0] is None:
        complete(conn, stamp, notification_id)
        return None
    postpone(conn, stamp, notification_id, float(row[0]))
    return float(row[0])


def postpone(
    conn: psycopg.Connection[TupleRow], stamp: datetime, notification_id: int, until: float
) -> None:
    """Set a notification's ``next_attempt_at`` and end its lease."""
    conn.execute(
        "UPDATE notifications SET next_attempt_at = %s, updated_at = %s,"
        " lease_owner = NULL, lease_until = NULL WHERE id = %s",
        (until, stamp, notification_id),
    )


def complete(conn: psycopg.Connection[TupleRow], stamp: datetime, notification_id: int) -> None:
    """Mark a notification ``done`` and end its lease."""
    conn.execute(
        "UPDATE notifications SET state = 'done', updated_at = %s, completed_at = %s,"
        " lease_owner = NULL, lease_until = NULL WHERE id = %s",
        (stamp, stamp, notification_id),
    )


def unsent(conn: psycopg.Connection[TupleRow], now: float) -> Unsent:
    """Pending notifications and the age of the oldest at ``now``."""
    row = conn.execute(
        "SELECT count(*), extract(epoch FROM min(created_at))::float8 FROM notifications"
        " WHERE state = 'pending'"
    ).fetchone()
    if row is None or not row[0] or row[1] is None:
        return Unsent(0, 0.0)
    return Unsent(int(row[0]), max(0.0, now - float(row[1])))


def counts(conn: psycopg.Connection[TupleRow]) -> dict[str, int]:
    """Counts of webhooks, notifications and deliveries; see :meth:`receiver.store.Store.counts`."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM webhooks),"
        " (SELECT count(*) FROM notifications WHERE state = %s),"
        " (SELECT count(*) FROM notifications WHERE state = %s),"
        " (SELECT count(*) FROM deliveries WHERE state IN (%s, %s)),"
        " (SELECT count(*) FROM deliveries WHERE state IN (%s, %s))",
        (
            str(NotificationState.PENDING),
            str(NotificationState.DONE),
            str(DeliveryState.REJECTED),
            str(DeliveryState.DROPPED),
            str(DeliveryState.PENDING),
            str(DeliveryState.SENDING),
        ),
    ).fetchone()
    assert row is not None
    webhooks, pending, done, failed, unsent_ = (int(value) for value in row)
    return {
        "webhooks": webhooks,
        "pending": pending,
        "done": done,
        "failed_deliveries": failed,
        "unsent_deliveries": unsent_,
    }
