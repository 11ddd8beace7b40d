"""PostgreSQL statements of retention: pruning old finished rows, and the database's size.

Statements only, on a connection the caller holds in a transaction. Rows are chosen with
``FOR UPDATE SKIP LOCKED`` so two receivers pruning at once, or a worker finishing a
notification, never wait on each other.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import TupleRow


def prune(conn: psycopg.Connection[TupleRow], before: datetime | float, limit: int) -> int:
    """Delete at most ``limit`` done notifications completed before ``before`` (with their
    deliveries), then at most ``limit`` webhooks received before ``before`` that no
    notification refers to; see :meth:`receiver.store.Store.prune`.

    Args:
        before: the cut-off, as a ``datetime`` or as ``±inf`` (every row / none).

    Returns:
        Notifications plus webhooks deleted.
    """
    if limit <= 0:
        return 0
    # A float cut-off is ±inf: PostgreSQL's 'infinity' timestamps compare as expected.
    cutoff = before if isinstance(before, datetime) else ("infinity" if before > 0 else "-infinity")
    ids = [
        int(row[0])
        for row in conn.execute(
            "SELECT id FROM notifications WHERE state = 'done' AND completed_at < %s::timestamptz"
            " ORDER BY completed_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (cutoff, limit),
        )
    ]
    if ids:
        conn.execute("DELETE FROM deliveries WHERE notification_id = ANY(%s)", (ids,))
        conn.execute("DELETE FROM notifications WHERE id = ANY(%s)", (ids,))
    webhooks = conn.execute(
        "DELETE FROM webhooks WHERE id IN (SELECT w.id FROM webhooks w"
        " WHERE w.received_at < %s::timestamptz"
        " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.webhook_id = w.id)"
        " ORDER BY w.received_at LIMIT %s FOR UPDATE SKIP LOCKED)",
        (cutoff, limit),
    ).rowcount
    return len(ids) + max(0, webhooks)


def size_bytes(conn: psycopg.Connection[TupleRow]) -> int:
    """``pg_database_size(current_database())``: the database's files, in bytes."""
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])
