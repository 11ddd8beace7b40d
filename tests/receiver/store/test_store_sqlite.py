"""The SQLite backend's own properties: the payload kept verbatim, reused per-thread
connections replaced after an error, rollback leaving the connection usable, an index for
next_due, and the schema version and its migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from receiver.models import AlertmanagerWebhook
from receiver.store import (
    DeadmanState,
    Delivery,
    DeliveryState,
    Origin,
    SQLiteStore,
    StoreError,
    SyntheticNotification,
)
from receiver.store.sqlite.schema import SCHEMA_VERSION
from tests.receiver.test_receiver_app import V1_SCHEMA, exchange_payload


def _webhook(fingerprint: str) -> AlertmanagerWebhook:
    return AlertmanagerWebhook.model_validate(exchange_payload(fingerprint=fingerprint))


def test_ingest_keeps_the_raw_text_verbatim(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    raw = json.dumps(exchange_payload(), indent=3)
    sqlite_store.ingest_many([(_webhook("f00dfeed00000001"), "", raw)])
    db = sqlite3.connect(tmp_path / "r.db")
    assert db.execute("SELECT payload FROM webhooks").fetchone()[0] == raw


def test_connection_is_reused_and_replaced_after_a_database_error(
    sqlite_store: SQLiteStore,
) -> None:
    store = sqlite_store
    store.counts()
    conn = store._local.conn
    store.counts()
    assert store._local.conn is conn  # reused
    conn.close()  # the next statement fails: "Cannot operate on a closed database"
    with pytest.raises(StoreError):
        store.counts()
    assert store.counts()["webhooks"] == 0  # a fresh connection
    assert store._local.conn is not conn


def test_failed_transaction_rolls_back_and_leaves_the_connection_usable(
    sqlite_store: SQLiteStore, synthetic: SyntheticNotification
) -> None:
    store = sqlite_store

    def transition(state: DeadmanState) -> tuple[DeadmanState, SyntheticNotification | None]:
        raise RuntimeError("bug in a transition")

    with pytest.raises(RuntimeError):
        store.deadman_transition(transition)
    assert not store._local.conn.in_transaction
    state, notification_id = store.deadman_transition(
        lambda s: (DeadmanState(last_heartbeat=1.0, heartbeats=1), synthetic)
    )
    assert state.heartbeats == 1 and notification_id is not None
    assert store.counts()["pending"] == 1


def test_next_due_has_an_index(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "r.db")
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT MIN(next_attempt_at) FROM notifications"
        " WHERE state = 'pending' AND next_attempt_at > 0"
    ).fetchall()
    assert "notifications_next" in str(plan)


def test_wal_full_sync_and_schema_version(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    sqlite_store.counts()
    conn = sqlite_store._local.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "r.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than supported"):
        SQLiteStore(tmp_path / "r.db").init()


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    db.executescript(V1_SCHEMA)
    now = "2026-11-21T07:22:01.000Z"
    alert = json.dumps(exchange_payload()["alerts"][0])
    db.execute("INSERT INTO webhooks VALUES (1, ?, '', 'g', 'r', 'firing', 1, '{}')", (now,))
    for nid, state in ((1, "done"), (2, "pending")):
        db.execute(
            "INSERT INTO notifications (id, webhook_id, group_key, fingerprint, status, starts_at,"
            " ends_at, alertname, route, receiver, external_url, alert, state, created_at,"
            " updated_at) VALUES (?, 1, 'g', ?, 'firing', 's', 'e', 'X', '', 'r', '', ?, ?, ?, ?)",
            (nid, f"fp{nid}", alert, state, now, now),
        )
    db.execute("INSERT INTO deliveries VALUES (1, 'slack', 'failed', 4, 'boom', ?, NULL)", (now,))
    db.execute("INSERT INTO deliveries VALUES (2, 'slack', 'delivered', 1, NULL, ?, ?)", (now, now))
    db.close()
    store = SQLiteStore(tmp_path / "r.db")
    store.init()
    (row,) = store.due(0.0)  # next_attempt_at 0: due at once
    assert row.id == 2 and row.origin == Origin.ALERTMANAGER
    plan, _, _ = store.prepare(row.id, row.group_key, row.fingerprint, [], 0.0)
    assert plan["slack"] == Delivery("slack", "slack", DeliveryState.DELIVERED, 1, 0.0)
    assert store.counts()["failed_deliveries"] == 1  # 'failed' became 'dropped'
    db = sqlite3.connect(tmp_path / "r.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
