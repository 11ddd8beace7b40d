"""SQLite statements of the dead man's switch leadership: the single ``leader`` row.

SQLite has no session locks that outlive a transaction, so leadership is a lease: the row names
an ``owner`` and ``until`` (Unix seconds); a receiver takes it when it is empty, expired or its
own, and renews it. A crashed leader is replaced once its lease runs out.

Statements only, on a connection the caller holds in a write transaction.
"""

from __future__ import annotations

import sqlite3


def lead(conn: sqlite3.Connection, stamp: str, owner: str, now: float, ttl: float) -> bool:
    """Take or renew the lead for ``owner`` until ``now + ttl`` when it is free, expired
    (``until <= now``) or ``owner``'s already (``stamp``: ISO time of the change).

    Returns:
        Whether ``owner`` leads.
    """
    conn.execute(
        "INSERT INTO leader (id, owner, until, updated_at) VALUES (1, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, until = excluded.until,"
        " updated_at = excluded.updated_at"
        " WHERE leader.owner IS NULL OR leader.until IS NULL OR leader.until <= ?"
        " OR leader.owner = excluded.owner",
        (owner, now + ttl, stamp, now),
    )
    row = conn.execute("SELECT owner FROM leader WHERE id = 1").fetchone()
    return row is not None and row[0] == owner


def resign(conn: sqlite3.Connection, stamp: str, owner: str) -> None:
    """Free the lead if ``owner`` holds it."""
    conn.execute(
        "UPDATE leader SET owner = NULL, until = NULL, updated_at = ? WHERE id = 1 AND owner = ?",
        (stamp, owner),
    )
