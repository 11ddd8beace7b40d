"""SQLite statements of retention: pruning old finished rows, and the database's size.

Statements only (:func:`prune` on a connection the caller holds in a write transaction).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from exchange_common.timestamps import iso_utc

# iso_utc writes fixed-width text only for years 1-9999 (``datetime``'s range); a cut-off
# outside is clamped to it, which compares the same against every stored time.
_MIN_TS = -62_135_596_800.0  # 0001-01-01T00:00:00Z
_MAX_TS = 253_402_300_799.0  # 9999-12-31T23:59:59Z


def cutoff(before: float) -> str:
    """``before`` (Unix seconds) as the ISO text stored times are compared with.

    Stored times are :func:`~exchange_common.timestamps.iso_utc` strings, fixed width
    (``YYYY-MM-DDTHH:MM:SS.mmmZ``), so text order is time order.
    """
    return iso_utc(min(max(before, _MIN_TS), _MAX_TS))


def prune(conn: sqlite3.Connection, before: float, limit: int) -> int:
    """Delete at most ``limit`` done notifications completed before ``before`` (with their
    deliveries), then at most ``limit`` webhooks received before ``before`` that no
    notification refers to; see :meth:`receiver.store.Store.prune`.

    Returns:
        Notifications plus webhooks deleted.
    """
    if limit <= 0:
        return 0
    stamp = cutoff(before)
    ids = [
        (int(row[0]),)
        for row in conn.execute(
            "SELECT id FROM notifications WHERE state = 'done' AND completed_at < ?"
            " ORDER BY completed_at LIMIT ?",
            (stamp, limit),
        )
    ]
    conn.executemany("DELETE FROM deliveries WHERE notification_id = ?", ids)
    conn.executemany("DELETE FROM notifications WHERE id = ?", ids)
    webhooks = conn.execute(
        "DELETE FROM webhooks WHERE id IN (SELECT w.id FROM webhooks w"
        " WHERE w.received_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.webhook_id = w.id)"
        " ORDER BY w.received_at LIMIT ?)",
        (stamp, limit),
    ).rowcount
    return len(ids) + max(0, webhooks)


def size_bytes(path: Path) -> int:
    """The database file's size plus its write-ahead log's (``<path>-wal``, when present).

    Raises:
        OSError: the database file cannot be read.
    """
    size = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    with contextlib.suppress(FileNotFoundError):
        size += wal.stat().st_size
    return size
