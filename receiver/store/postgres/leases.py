"""PostgreSQL statements of work leases: claiming due notifications, renewing and releasing them.

A notification's lease is its ``lease_owner`` and ``lease_until`` columns (both ``NULL`` when
free). :func:`claim` locks the claimable rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and
leases them in the same statement, so concurrent claims (threads, receivers) skip each other's
rows and never hand out the same notification (PostgreSQL manual, "The Locking Clause").

Statements only, on a connection the caller holds in a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.rows import TupleRow

from receiver.store.postgres.deliveries import pending_columns, record
from receiver.store.records import PendingNotification

_CLAIM = (
    "WITH picked AS (SELECT id FROM notifications"
    " WHERE state = 'pending' AND next_attempt_at <= %(now)s"
    " AND (lease_until IS NULL OR lease_until <= %(now)s OR lease_owner = %(owner)s)"
    " ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " UPDATE notifications AS n SET lease_owner = %(owner)s, lease_until = %(until)s"
    " FROM picked WHERE n.id = picked.id"
    f" RETURNING {pending_columns('n')}"
)


def claim(
    conn: psycopg.Connection[TupleRow], now: float, owner: str, until: float, limit: int
) -> list[PendingNotification]:
    """Lease to ``owner`` until ``until`` the claimable notifications, lowest id first.

    Claimable: pending, ``next_attempt_at <= now``, and the lease free, expired
    (``lease_until <= now``) or already ``owner``'s. See :meth:`receiver.store.Store.claim`.
    """
    if limit <= 0:
        return []
    rows = conn.execute(
        _CLAIM, {"now": now, "owner": owner, "until": until, "limit": limit}
    ).fetchall()
    return sorted((record(row) for row in rows), key=lambda n: n.id)


def renew(
    conn: psycopg.Connection[TupleRow], owner: str, ids: Sequence[int], until: float
) -> list[int]:
    """Extend ``owner``'s leases on ``ids`` (pending ones) to ``until``.

    Returns:
        The ids still leased to ``owner``, ascending.
    """
    rows = conn.execute(
        "UPDATE notifications SET lease_until = %s"
        " WHERE id = ANY(%s) AND lease_owner = %s AND state = 'pending' RETURNING id",
        (until, sorted(set(ids)), owner),
    ).fetchall()
    return sorted(int(row[0]) for row in rows)


def release(conn: psycopg.Connection[TupleRow], owner: str, ids: Sequence[int]) -> None:
    """Free ``owner``'s leases on ``ids`` (others' leases are left alone)."""
    conn.execute(
        "UPDATE notifications SET lease_owner = NULL, lease_until = NULL"
        " WHERE id = ANY(%s) AND lease_owner = %s",
        (sorted(set(ids)), owner),
    )
