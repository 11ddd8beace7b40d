"""The sent message's reference kept with a delivery (``deliveries.message_ref``), the late
diagnosis stored on a done notification, and the migrations that add the column (SQLite 3 -> 4,
PostgreSQL migration 2) keeping older rows readable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from receiver.models import AlertmanagerWebhook
from receiver.store import Delivery, DeliveryState, PostgresStore, SQLiteStore, Store
from receiver.store.postgres import migrations
from tests.receiver.store.conftest import OpenStore
from tests.receiver.test_receiver_app import exchange_payload

REF = '{"sent_at":1795000000.0,"ids":{"message_id":"1234567890"}}'


def _one(store: Store) -> int:
    webhook = AlertmanagerWebhook.model_validate(exchange_payload())
    (result,) = store.ingest_many([(webhook, "critical", None)])
    return result.new_ids[0]


def test_message_ref_is_kept_with_the_delivery_and_survives_a_restart(
    open_store: OpenStore,
) -> None:
    store = open_store()
    store.init()
    nid = _one(store)
    (row,) = store.claim(1e12, "a", 10)
    store.prepare(nid, row.group_key, row.fingerprint, [("chat", "discord"), ("log", "jsonl")], 0)
    store.update_delivery(nid, "chat", DeliveryState.DELIVERED, message_ref=REF)
    store.update_delivery(nid, "log", DeliveryState.PENDING, next_attempt_at=5.0)
    store.update_delivery(nid, "chat", DeliveryState.DELIVERED)  # None: left as it is
    assert store.finish(nid) == 5.0
    store.set_diagnosis(nid, {"source": "llm", "diagnosis": "late"})
    again = open_store()  # as after a restart
    deliveries = again.deliveries(nid)
    assert deliveries["chat"] == Delivery("chat", "discord", DeliveryState.DELIVERED, 0, 0.0, REF)
    assert deliveries["log"].message_ref is None
    (pending,) = again.due(1e12)
    assert pending.diagnosis == {"source": "llm", "diagnosis": "late"}
    assert again.deliveries(nid + 1000) == {}


def test_a_version_3_sqlite_database_gets_the_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    fresh = SQLiteStore(path)
    fresh.init()
    nid = _one(fresh)
    (row,) = fresh.claim(1e12, "a", 10)
    fresh.prepare(nid, row.group_key, row.fingerprint, [("chat", "slack")], 0)
    fresh.update_delivery(nid, "chat", DeliveryState.DELIVERED)
    fresh.close()
    db = sqlite3.connect(path, isolation_level=None)  # back to version 3, as deployed before
    db.execute("ALTER TABLE deliveries DROP COLUMN message_ref")
    db.execute("PRAGMA user_version = 3")
    db.close()
    store = SQLiteStore(path)
    store.init()
    assert store.deliveries(nid) == {
        "chat": Delivery("chat", "slack", DeliveryState.DELIVERED, 0, 0.0, None)
    }
    store.update_delivery(nid, "chat", DeliveryState.DELIVERED, message_ref=REF)
    assert store.deliveries(nid)["chat"].message_ref == REF
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 4
    db.close()


@pytest.mark.e2e
def test_a_postgres_database_at_migration_1_gets_the_column_and_keeps_its_rows(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        old = PostgresStore(postgres_url, timeout=10.0)
        old.init()  # the schema of the receiver before message_ref
        nid = _one(old)
        old.close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            "INSERT INTO deliveries (notification_id, notifier, channel, state, attempts,"
            " next_attempt_at, updated_at, delivered_at) VALUES (%s, 'chat', 'discord',"
            " 'delivered', 1, 0, now(), now())",
            (nid,),
        )
    store = PostgresStore(postgres_url, timeout=10.0)
    try:
        store.init()
        assert store.deliveries(nid) == {
            "chat": Delivery("chat", "discord", DeliveryState.DELIVERED, 1, 0.0, None)
        }
        assert store.counts()["pending"] == 1
        store.update_delivery(nid, "chat", DeliveryState.DELIVERED, message_ref=REF)
        assert store.deliveries(nid)["chat"].message_ref == REF
        with psycopg.connect(postgres_url) as conn:
            versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert versions == [(1,), (2,)]
    finally:
        store.close()
