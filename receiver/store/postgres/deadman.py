"""PostgreSQL statements of the dead man's switch: its single ``deadman`` row.

:func:`read_state` with ``for_update`` locks the row (``SELECT ... FOR UPDATE``) until the
transaction ends, so two receivers applying a transition at once (heartbeats reaching both)
run one after the other, each seeing the other's result.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import TupleRow

from receiver.store.records import DeadmanState


def read_state(conn: psycopg.Connection[TupleRow], for_update: bool = False) -> DeadmanState:
    """The persisted state (defaults before the first heartbeat)."""
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(
        "SELECT last_heartbeat, heartbeats, alarm_since, alarm_raised_at FROM deadman"
        f" WHERE id = 1{lock}"
    ).fetchone()
    if row is None:
        return DeadmanState()
    return DeadmanState(
        last_heartbeat=row[0],
        heartbeats=int(row[1]),
        alarm_since=row[2],
        alarm_raised_at=row[3],
    )


def write_state(conn: psycopg.Connection[TupleRow], stamp: datetime, state: DeadmanState) -> None:
    """Write the state (``stamp``: time of the change); the caller holds the transaction."""
    conn.execute(
        "INSERT INTO deadman (id, last_heartbeat, heartbeats, alarm_since, alarm_raised_at,"
        " updated_at) VALUES (1, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,"
        " heartbeats = excluded.heartbeats, alarm_since = excluded.alarm_since,"
        " alarm_raised_at = excluded.alarm_raised_at, updated_at = excluded.updated_at",
        (state.last_heartbeat, state.heartbeats, state.alarm_since, state.alarm_raised_at, stamp),
    )
