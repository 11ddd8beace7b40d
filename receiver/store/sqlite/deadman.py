"""SQLite statements of the dead man's switch: its single ``deadman`` row."""

from __future__ import annotations

import sqlite3

from receiver.store.records import DeadmanState


def read_state(conn: sqlite3.Connection) -> DeadmanState:
    """The persisted state, defaults before the first heartbeat."""
    row = conn.execute(
        "SELECT last_heartbeat, heartbeats, alarm_since, alarm_raised_at FROM deadman WHERE id = 1"
    ).fetchone()
    if row is None:
        return DeadmanState()
    return DeadmanState(
        last_heartbeat=row["last_heartbeat"],
        heartbeats=int(row["heartbeats"]),
        alarm_since=row["alarm_since"],
        alarm_raised_at=row["alarm_raised_at"],
    )


def write_state(conn: sqlite3.Connection, stamp: str, state: DeadmanState) -> None:
    """Write the state (``stamp``: ISO time of the change); the caller holds the transaction."""
    conn.execute(
        "INSERT INTO deadman (id, last_heartbeat, heartbeats, alarm_since,"
        " alarm_raised_at, updated_at) VALUES (1, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,"
        " heartbeats = excluded.heartbeats, alarm_since = excluded.alarm_since,"
        " alarm_raised_at = excluded.alarm_raised_at,"
        " updated_at = excluded.updated_at",
        (
            state.last_heartbeat,
            state.heartbeats,
            state.alarm_since,
            state.alarm_raised_at,
            stamp,
        ),
    )
