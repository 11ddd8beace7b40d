"""SQLite statements of the worker's side: due notifications, their deliveries, their rounds.

Statements only, on a connection the caller holds (in a write transaction for the writes).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from receiver.store.records import (
    Delivery,
    DeliveryState,
    NotificationState,
    Origin,
    PendingNotification,
    RoundStart,
    Unsent,
)


def parse_iso(text: str) -> float:
    """An ISO-8601 time with offset (as :func:`exchange_common.timestamps.iso_utc` writes it)
    as Unix seconds; ``0.0`` if unparsable."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


#: The columns :func:`record` reads, for every query handing out pending notifications.
PENDING_COLUMNS = (
    "id, route, receiver, group_key, external_url, fingerprint, alert, diagnosis, created_at,"
    " origin"
)


def record(row: sqlite3.Row) -> PendingNotification:
    """A row of :data:`PENDING_COLUMNS` as a :class:`PendingNotification`."""
    return PendingNotification(
        id=row["id"],
        route=row["route"],
        receiver=row["receiver"],
        group_key=row["group_key"],
        external_url=row["external_url"],
        fingerprint=row["fingerprint"],
        alert=json.loads(row["alert"]),
        diagnosis=json.loads(row["diagnosis"]) if row["diagnosis"] else None,
        created_ts=parse_iso(row["created_at"]),
        origin=Origin(row["origin"]),
    )


def due(conn: sqlite3.Connection, now: float, limit: int) -> list[PendingNotification]:
    """Pending notifications with ``next_attempt_at <= now``, lowest id first, at most ``limit``.

    Leases are ignored: a notification leased to a receiver is listed too (see
    :func:`receiver.store.sqlite.leases.claim` for the leasing variant).
    """
    # "+next_attempt_at": walk notifications_pending in id order and stop after ``limit`` rows,
    # rather than collect every due row from notifications_next and sort.
    rows = conn.execute(
        f"SELECT {PENDING_COLUMNS} FROM notifications"
        " WHERE state = 'pending' AND +next_attempt_at <= ? ORDER BY id LIMIT ?",
        (now, limit),
    ).fetchall()
    return [record(row) for row in rows]


def next_due(conn: sqlite3.Connection, after: float) -> float | None:
    """The earliest time later than ``after`` at which a pending notification becomes
    claimable: ``max(next_attempt_at, lease_until)`` (a free lease counts as 0).

    Computed as the smaller of two index walks, so it reads a handful of rows whatever the
    backlog: the earliest ``next_attempt_at`` among rows whose lease (if any) ends no later
    (``notifications_next``), and the earliest ``lease_until`` among rows whose lease ends
    after their next attempt time (``notifications_lease``).
    """
    attempt = conn.execute(
        "SELECT next_attempt_at FROM notifications"
        " WHERE state = 'pending' AND next_attempt_at > ?"
        " AND (lease_until IS NULL OR lease_until <= next_attempt_at)"
        " ORDER BY next_attempt_at LIMIT 1",
        (after,),
    ).fetchone()
    lease = conn.execute(
        "SELECT lease_until FROM notifications"
        " WHERE state = 'pending' AND lease_until > ? AND lease_until > next_attempt_at"
        " ORDER BY lease_until LIMIT 1",
        (after,),
    ).fetchone()
    times = [float(row[0]) for row in (attempt, lease) if row is not None]
    return min(times) if times else None


def prepare(
    conn: sqlite3.Connection,
    stamp: str,
    notification_id: int,
    group_key: str,
    fingerprint: str,
    notifiers: Sequence[tuple[str, str]],
    now: float,
    diagnosis: dict[str, Any] | None,
) -> RoundStart:
    """Cache the diagnosis (when given), plan the deliveries, read the blocking ones.

    ``stamp`` is the ISO time written to ``updated_at``; see :meth:`Store.prepare`.
    """
    if diagnosis is not None:
        conn.execute(
            "UPDATE notifications SET diagnosis = ?, updated_at = ? WHERE id = ?",
            (json.dumps(diagnosis), stamp, notification_id),
        )
    for name, channel in notifiers:
        conn.execute(
            "INSERT OR IGNORE INTO deliveries (notification_id, notifier, channel, state,"
            " attempts, next_attempt_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?)",
            (notification_id, name, channel, now, stamp),
        )
    plan = deliveries(conn, notification_id)
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
    return RoundStart(plan, blocked, None if unplanned is None else float(unplanned))


def deliveries(conn: sqlite3.Connection, notification_id: int) -> dict[str, Delivery]:
    """``{notifier: Delivery}`` of one notification, by notifier name."""
    rows = conn.execute(
        "SELECT notifier, channel, state, attempts, next_attempt_at, message_ref FROM deliveries"
        " WHERE notification_id = ? ORDER BY notifier",
        (notification_id,),
    ).fetchall()
    return {
        row["notifier"]: Delivery(
            row["notifier"],
            row["channel"],
            DeliveryState(row["state"]),
            int(row["attempts"]),
            float(row["next_attempt_at"]),
            row["message_ref"],
        )
        for row in rows
    }


def set_diagnosis(
    conn: sqlite3.Connection, stamp: str, notification_id: int, diagnosis: dict[str, Any]
) -> None:
    """Replace a notification's cached diagnosis; see :meth:`Store.set_diagnosis`."""
    conn.execute(
        "UPDATE notifications SET diagnosis = ?, updated_at = ? WHERE id = ?",
        (json.dumps(diagnosis), stamp, notification_id),
    )


def update_delivery(
    conn: sqlite3.Connection,
    stamp: str,
    notification_id: int,
    notifier: str,
    state: DeliveryState,
    attempts: int | None,
    next_attempt_at: float | None,
    error: str | None,
    keep_error: bool,
    message_ref: str | None = None,
) -> None:
    """Update one delivery row; see :meth:`Store.update_delivery`."""
    conn.execute(
        "UPDATE deliveries SET state = ?, attempts = COALESCE(?, attempts),"
        " next_attempt_at = COALESCE(?, next_attempt_at),"
        " last_error = CASE WHEN ? THEN last_error ELSE ? END,"
        " message_ref = COALESCE(?, message_ref),"
        " updated_at = ?, delivered_at = ? WHERE notification_id = ? AND notifier = ?",
        (
            str(state),
            attempts,
            next_attempt_at,
            keep_error,
            error,
            message_ref,
            stamp,
            stamp if state == DeliveryState.DELIVERED else None,
            notification_id,
            notifier,
        ),
    )


def finish(conn: sqlite3.Connection, stamp: str, notification_id: int) -> float | None:
    """Close a round: ``done`` when every delivery is final, else due at the earliest one."""
    next_at = conn.execute(
        "SELECT MIN(next_attempt_at) FROM deliveries"
        " WHERE notification_id = ? AND state IN ('pending', 'sending')",
        (notification_id,),
    ).fetchone()[0]
    if next_at is None:
        complete(conn, stamp, notification_id)
        return None
    postpone(conn, stamp, notification_id, float(next_at))
    return float(next_at)


def postpone(conn: sqlite3.Connection, stamp: str, notification_id: int, until: float) -> None:
    """Set a notification's ``next_attempt_at`` and end its lease."""
    conn.execute(
        "UPDATE notifications SET next_attempt_at = ?, updated_at = ?,"
        " lease_owner = NULL, lease_until = NULL WHERE id = ?",
        (until, stamp, notification_id),
    )


def complete(conn: sqlite3.Connection, stamp: str, notification_id: int) -> None:
    """Mark a notification ``done`` and end its lease."""
    conn.execute(
        "UPDATE notifications SET state = 'done', updated_at = ?, completed_at = ?,"
        " lease_owner = NULL, lease_until = NULL WHERE id = ?",
        (stamp, stamp, notification_id),
    )


def unsent(conn: sqlite3.Connection, now: float) -> Unsent:
    """Pending notifications and the age of the oldest at ``now``."""
    count, oldest = conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM notifications WHERE state = 'pending'"
    ).fetchone()
    if not count or oldest is None:
        return Unsent(0, 0.0)
    return Unsent(int(count), max(0.0, now - parse_iso(oldest)))


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Counts of webhooks, notifications and deliveries; see :meth:`Store.counts`."""
    webhooks = conn.execute("SELECT COUNT(*) FROM webhooks").fetchone()[0]
    states = dict(conn.execute("SELECT state, COUNT(*) FROM notifications GROUP BY state"))
    deliveries = dict(conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"))
    failed = (DeliveryState.REJECTED, DeliveryState.DROPPED)
    unsent_states = (DeliveryState.PENDING, DeliveryState.SENDING)
    return {
        "webhooks": int(webhooks),
        "pending": int(states.get(NotificationState.PENDING, 0)),
        "done": int(states.get(NotificationState.DONE, 0)),
        "failed_deliveries": sum(int(deliveries.get(state, 0)) for state in failed),
        "unsent_deliveries": sum(int(deliveries.get(state, 0)) for state in unsent_states),
    }
