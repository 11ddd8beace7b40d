"""The SQLite backend's own properties: the payload kept verbatim, reused per-thread
connections replaced after an error and closed by close(), rollback leaving the connection
usable, indexes for the worker's and retention's queries, the size with the WAL, the fixed-width
time text retention compares, and the schema version and its migrations (1 -> 3, 2 -> 3: in
place, in one transaction, safe when several stores open the database together)."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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
from receiver.store.sqlite.retention import cutoff
from receiver.store.sqlite.schema import SCHEMA_VERSION
from tests.receiver.test_receiver_app import V1_SCHEMA, exchange_payload


def _conn(store: SQLiteStore) -> sqlite3.Connection:
    """The calling thread's connection of ``store``."""
    conn = store._conns.current()
    assert conn is not None
    return conn


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
    conn = _conn(store)
    store.counts()
    assert _conn(store) is conn  # reused
    conn.close()  # the next statement fails: "Cannot operate on a closed database"
    with pytest.raises(StoreError):
        store.counts()
    assert store.counts()["webhooks"] == 0  # a fresh connection
    assert _conn(store) is not conn


def test_failed_transaction_rolls_back_and_leaves_the_connection_usable(
    sqlite_store: SQLiteStore, synthetic: SyntheticNotification
) -> None:
    store = sqlite_store

    def transition(state: DeadmanState) -> tuple[DeadmanState, SyntheticNotification | None]:
        raise RuntimeError("bug in a transition")

    with pytest.raises(RuntimeError):
        store.deadman_transition(transition)
    assert not _conn(store).in_transaction
    state, notification_id = store.deadman_transition(
        lambda s: (DeadmanState(last_heartbeat=1.0, heartbeats=1), synthetic)
    )
    assert state.heartbeats == 1 and notification_id is not None
    assert store.counts()["pending"] == 1


def test_worker_and_retention_queries_use_indexes(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    """Every statement claim, renew, release, next_due and prune run searches an index (no
    full table scan): they run often, and the tables grow to the retention's size."""
    store = sqlite_store
    for i in range(3):
        store.ingest_many([(_webhook(f"f00dfeed0000000{i}"), "", None)])
    store.counts()
    statements: list[str] = []
    _conn(store).set_trace_callback(statements.append)  # expanded SQL, values bound
    rows = store.claim(1e12, "a", 10, limit=2)
    store.renew("a", [row.id for row in rows], 2e12)
    store.release("a", [rows[0].id])
    store.next_due(0.0)
    store.complete(rows[1].id)
    store.prune(3e12)
    _conn(store).set_trace_callback(None)
    db = sqlite3.connect(tmp_path / "r.db")
    planned = 0
    for statement in statements:
        if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            continue
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}")]
        planned += 1
        scans = [d for d in plan if d.startswith("SCAN ") and " USING " not in d]
        assert not scans, (statement, plan)
    assert planned >= 8
    for query, index in (
        ("SELECT id FROM notifications WHERE state = 'pending' ORDER BY id", "pending"),
        (
            "SELECT next_attempt_at FROM notifications WHERE state = 'pending'"
            " AND next_attempt_at > 0 ORDER BY next_attempt_at LIMIT 1",
            "next",
        ),
    ):
        assert f"notifications_{index}" in str(db.execute(f"EXPLAIN QUERY PLAN {query}").fetchall())


def test_retention_cut_off_text_is_fixed_width_and_sorts_as_time() -> None:
    times = [-1e13, 0.0, 0.0005, 1.5, 999_999_999.999, 1_800_000_000.25, 253_402_300_799.0, 1e20]
    texts = [cutoff(t) for t in times]
    assert {len(text) for text in texts} == {24}
    assert texts == sorted(texts)
    assert cutoff(1_800_000_000.25) == "2027-01-15T08:00:00.250Z"
    assert cutoff(math.inf) == cutoff(1e20) and cutoff(-math.inf) == cutoff(-1e13)


def test_size_counts_the_file_and_its_wal(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    sqlite_store.ingest_many([(_webhook("f00dfeed00000001"), "", None)])
    db, wal = tmp_path / "r.db", tmp_path / "r.db-wal"
    assert wal.stat().st_size > 0  # not checkpointed yet
    assert sqlite_store.size_bytes() == db.stat().st_size + wal.stat().st_size
    sqlite_store.close()  # the last connection checkpoints and removes the WAL
    assert sqlite_store.size_bytes() == db.stat().st_size


def test_size_of_a_missing_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="size"):
        SQLiteStore(tmp_path / "nothing.db").size_bytes()


def test_describe_names_the_file(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    assert sqlite_store.backend == "sqlite"
    assert sqlite_store.describe() == f"sqlite:{tmp_path / 'r.db'}"


def test_close_closes_every_threads_connection_and_the_store_stays_usable(
    sqlite_store: SQLiteStore,
) -> None:
    store = sqlite_store
    store.counts()
    mine = _conn(store)
    theirs: list[sqlite3.Connection] = []

    def use() -> None:
        store.counts()
        theirs.append(_conn(store))

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    store.close()
    for conn in (mine, *theirs):
        with pytest.raises(sqlite3.ProgrammingError):  # closed
            conn.execute("SELECT 1")
    assert store.counts()["webhooks"] == 0  # a new connection
    assert _conn(store) is not mine


def test_close_waits_for_a_connection_in_use_to_be_done(
    sqlite_store: SQLiteStore, synthetic: SyntheticNotification
) -> None:
    """A call in flight when close() runs (a worker thread at shutdown) completes; its
    connection is closed when it ends, not under it."""
    store = sqlite_store
    inside, closed = threading.Event(), threading.Event()
    used: list[sqlite3.Connection] = []

    def transition(state: DeadmanState) -> tuple[DeadmanState, SyntheticNotification | None]:
        used.append(_conn(store))
        inside.set()
        assert closed.wait(30)
        return DeadmanState(last_heartbeat=1.0, heartbeats=1), synthetic

    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(store.deadman_transition, transition)
        assert inside.wait(30)
        store.close()
        closed.set()
        assert outcome.result(30).notification_id is not None
    with pytest.raises(sqlite3.ProgrammingError):  # closed once its call ended
        used[0].execute("SELECT 1")
    assert store.deadman_state().heartbeats == 1 and store.counts()["pending"] == 1


def test_wal_full_sync_and_schema_version(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    sqlite_store.counts()
    conn = _conn(sqlite_store)
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
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert _schema(tmp_path / "r.db") == _fresh_schema(tmp_path)
    assert store.claim(0.0, "a", 10) == [row]  # version 3 works: leases...
    assert store.lead("a", 30)  # ... and the leader row


#: The version 2 schema (as the receiver created it before leases and retention).
V2_SCHEMA = """
CREATE TABLE webhooks (id INTEGER PRIMARY KEY, received_at TEXT NOT NULL, route TEXT NOT NULL,
    group_key TEXT NOT NULL, receiver TEXT NOT NULL, status TEXT NOT NULL,
    alert_count INTEGER NOT NULL, payload TEXT NOT NULL);
CREATE TABLE notifications (id INTEGER PRIMARY KEY,
    webhook_id INTEGER NOT NULL REFERENCES webhooks(id), group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL, status TEXT NOT NULL, starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL, alertname TEXT NOT NULL, route TEXT NOT NULL, receiver TEXT NOT NULL,
    external_url TEXT NOT NULL, alert TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')), diagnosis TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, completed_at TEXT,
    next_attempt_at REAL NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT 'alertmanager',
    UNIQUE (group_key, fingerprint, status, starts_at, ends_at));
CREATE INDEX notifications_pending ON notifications (state, id);
CREATE INDEX notifications_alert ON notifications (group_key, fingerprint, id);
CREATE INDEX notifications_next ON notifications (state, next_attempt_at);
CREATE TABLE deliveries (notification_id INTEGER NOT NULL REFERENCES notifications(id),
    notifier TEXT NOT NULL, channel TEXT NOT NULL, state TEXT NOT NULL
        CHECK (state IN ('pending', 'sending', 'delivered', 'rejected', 'dropped')),
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT, updated_at TEXT NOT NULL, delivered_at TEXT,
    PRIMARY KEY (notification_id, notifier));
CREATE TABLE deadman (id INTEGER PRIMARY KEY CHECK (id = 1), last_heartbeat REAL,
    heartbeats INTEGER NOT NULL DEFAULT 0, alarm_since REAL, alarm_raised_at REAL,
    updated_at TEXT NOT NULL);
CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at TEXT NOT NULL);
PRAGMA user_version = 2;
"""


def _schema(path: Path) -> dict[str, Any]:
    """Tables with their columns ``(name, type, not null, default, pk)``, and index names."""
    db = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        indexes = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name"
            )
        ]
        return {
            "tables": {
                table: [tuple(col[1:]) for col in db.execute(f"PRAGMA table_info({table})")]
                for table in tables
            },
            "indexes": indexes,
        }
    finally:
        db.close()


def _fresh_schema(tmp_path: Path) -> dict[str, Any]:
    fresh = SQLiteStore(tmp_path / "fresh" / "r.db")
    fresh.init()
    fresh.close()
    return _schema(tmp_path / "fresh" / "r.db")


def _v2_database(path: Path) -> None:
    """A version 2 database with a webhook, a done and a pending notification, a delivery and
    the dead man's switch row."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(V2_SCHEMA)
    now = "2026-11-21T07:22:01.000Z"
    alert = json.dumps(exchange_payload()["alerts"][0])
    db.execute("INSERT INTO webhooks VALUES (1, ?, '', 'g', 'r', 'firing', 1, '{}')", (now,))
    for nid, state, next_at in ((1, "done", 0.0), (2, "pending", 5.0)):
        db.execute(
            "INSERT INTO notifications (id, webhook_id, group_key, fingerprint, status, starts_at,"
            " ends_at, alertname, route, receiver, external_url, alert, state, created_at,"
            " updated_at, completed_at, next_attempt_at) VALUES (?, 1, 'g', ?, 'firing', 's',"
            " 'e', 'X', 'critical', 'r', '', ?, ?, ?, ?, ?, ?)",
            (nid, f"fp{nid}", alert, state, now, now, now if state == "done" else None, next_at),
        )
    db.execute(
        "INSERT INTO deliveries VALUES (2, 'chat', 'slack', 'pending', 1, 5.0, 'e', ?, NULL)",
        (now,),
    )
    db.execute("INSERT INTO deadman VALUES (1, 7.0, 3, NULL, NULL, ?)", (now,))
    db.close()


def test_a_version_2_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    _v2_database(path)
    store = SQLiteStore(path, clock=lambda: 1_800_000_000.0)
    store.init()
    assert _schema(path) == _fresh_schema(tmp_path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    db.close()
    # Every row is kept and reads as before.
    assert store.counts() == {
        "webhooks": 1,
        "pending": 1,
        "done": 1,
        "failed_deliveries": 0,
        "unsent_deliveries": 1,
    }
    assert store.deadman_state() == DeadmanState(last_heartbeat=7.0, heartbeats=3)
    assert store.due(4.0) == [] and store.next_due(0.0) == 5.0
    (row,) = store.claim(5.0, "a", 10)  # free lease (NULL) after the migration
    assert row.id == 2 and row.route == "critical" and row.origin == Origin.ALERTMANAGER
    assert store.next_due(5.0) == 15.0
    plan, _, _ = store.prepare(row.id, row.group_key, row.fingerprint, [], 5.0)
    assert plan["chat"] == Delivery("chat", "slack", DeliveryState.PENDING, 1, 5.0)
    assert store.lead("a", 30)
    assert store.prune(2_000_000_000.0) == 1  # the old done notification (its webhook: in use)
    assert store.counts()["done"] == 0 and store.counts()["webhooks"] == 1


def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    _v2_database(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("ALTER TABLE notifications ADD COLUMN lease_until REAL")  # 2 -> 3 fails on it
    db.close()
    before = _schema(path)
    with pytest.raises(StoreError, match="duplicate column"):
        SQLiteStore(path).init()
    assert _schema(path) == before  # no lease_owner, no leader table, no new index
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] == 2


def test_stores_opening_an_old_database_together_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    _v2_database(path)
    stores = [SQLiteStore(path) for _ in range(4)]
    start = threading.Barrier(len(stores))

    def init(store: SQLiteStore) -> dict[str, int]:
        start.wait(30)
        store.init()
        return store.counts()

    with ThreadPoolExecutor(len(stores)) as pool:
        counts = list(pool.map(init, stores))
    assert all(c["pending"] == 1 and c["done"] == 1 for c in counts)
    assert _schema(path) == _fresh_schema(tmp_path)
    for store in stores:
        store.close()
