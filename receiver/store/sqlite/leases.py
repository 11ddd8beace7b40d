"""SQLite statements of work leases: claiming due notifications, renewing and releasing them.

A notification's lease is its ``lease_owner`` and ``lease_until`` columns (both ``NULL`` when
free). SQLite has no row locks: :func:`claim` runs inside the caller's ``BEGIN IMMEDIATE``
transaction, which holds the database's write lock from its first statement, so two claims
(threads of one process, or several processes on one file) run one after the other and never
hand out the same notification. :meth:`~receiver.store.Store.finish`,
:meth:`~receiver.store.Store.postpone` and :meth:`~receiver.store.Store.complete` end the lease
(:mod:`receiver.store.sqlite.deliveries`).

Statements only, on a connection the caller holds in a write transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from receiver.store.records import PendingNotification
from receiver.store.sqlite.deliveries import PENDING_COLUMNS, record

#: Most ids bound in one statement (SQLite's default limit is 32766 variables).
_CHUNK = 500


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), _CHUNK):
        yield unique[start : start + _CHUNK]


def claim(
    conn: sqlite3.Connection, now: float, owner: str, until: float, limit: int
) -> list[PendingNotification]:
    """Lease to ``owner`` until ``until`` the claimable notifications, lowest id first.

    Claimable: pending, ``next_attempt_at <= now``, and the lease free, expired
    (``lease_until <= now``) or already ``owner``'s. See :meth:`receiver.store.Store.claim`.
    """
    if limit <= 0:
        return []
    # "+next_attempt_at": walk notifications_pending in id order and stop after ``limit`` rows
    # (as deliveries.due does).
    rows = conn.execute(
        f"SELECT {PENDING_COLUMNS} FROM notifications"
        " WHERE state = 'pending' AND +next_attempt_at <= ?"
        " AND (lease_until IS NULL OR lease_until <= ? OR lease_owner = ?)"
        " ORDER BY id LIMIT ?",
        (now, now, owner, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE notifications SET lease_owner = ?, lease_until = ? WHERE id = ?",
        [(owner, until, row["id"]) for row in rows],
    )
    return [record(row) for row in rows]


def renew(conn: sqlite3.Connection, owner: str, ids: Sequence[int], until: float) -> list[int]:
    """Extend ``owner``'s leases on ``ids`` (pending ones) to ``until``.

    Returns:
        The ids still leased to ``owner``, ascending.
    """
    renewed: list[int] = []
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            f"UPDATE notifications SET lease_until = ? WHERE id IN ({marks})"
            " AND lease_owner = ? AND state = 'pending' RETURNING id",
            (until, *chunk, owner),
        ).fetchall()
        renewed.extend(int(row[0]) for row in rows)
    return sorted(renewed)


def release(conn: sqlite3.Connection, owner: str, ids: Sequence[int]) -> None:
    """Free ``owner``'s leases on ``ids`` (others' leases are left alone)."""
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        conn.execute(
            "UPDATE notifications SET lease_owner = NULL, lease_until = NULL"
            f" WHERE id IN ({marks}) AND lease_owner = ?",
            (*chunk, owner),
        )
