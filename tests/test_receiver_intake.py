"""Intake storage: group commit (IngestQueue, Store.ingest_many), reused connections, the write
lock, and the payload kept verbatim."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from receiver.app import create_app
from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import Diagnosis
from receiver.models import Alert, AlertmanagerWebhook
from receiver.notifiers.base import Notification, Notifier
from receiver.settings import Settings
from receiver.store import (
    DeadmanState,
    IngestItem,
    IngestQueue,
    IngestResult,
    Store,
    StoreError,
    SyntheticNotification,
)
from receiver.worker import Worker
from tests.test_receiver_app import exchange_payload, make_settings

_T0 = "2026-05-01T09:00:00Z"


def _webhook(fingerprint: str, status: str = "firing") -> AlertmanagerWebhook:
    return AlertmanagerWebhook.model_validate(
        exchange_payload(fingerprint=fingerprint, status=status)
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "r.db")
    s.init()
    return s


def test_ingest_many_stores_all_in_order_as_if_one_after_the_other(store: Store) -> None:
    first, second = _webhook("f00d000000000001"), _webhook("f00d000000000002")
    results = store.ingest_many([(first, "a", None), (second, "b", None), (first, "c", None)])
    assert [len(r.new_ids) for r in results] == [1, 1, 0]
    assert [r.duplicates for r in results] == [0, 0, 1]
    assert results[0].webhook_id < results[1].webhook_id < results[2].webhook_id
    assert store.counts()["webhooks"] == 3
    assert store.counts()["pending"] == 2
    assert [row.route for row in store.pending()] == ["a", "b"]


def test_ingest_keeps_the_raw_text_verbatim(store: Store, tmp_path: Path) -> None:
    raw = json.dumps(exchange_payload(), indent=3)
    store.ingest(_webhook("f00dfeed00000001"), "", raw)
    db = sqlite3.connect(tmp_path / "r.db")
    assert db.execute("SELECT payload FROM webhooks").fetchone()[0] == raw


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_ingest_queue_commits_concurrent_webhooks_in_one_transaction(store: Store) -> None:
    batches: list[int] = []
    release = threading.Event()
    real = store.ingest_many

    def recording(items: list[IngestItem]) -> list[IngestResult]:
        batches.append(len(items))
        if len(batches) == 1:
            release.wait(5)  # hold the first commit while the others queue up
        return real(items)

    store.ingest_many = recording  # type: ignore[method-assign]
    queue = IngestQueue(store)

    async def main() -> list[IngestResult]:
        first = asyncio.create_task(queue.ingest(_webhook("f00d000000000000"), "r"))
        await asyncio.sleep(0.05)  # the first transaction is in progress
        rest = [
            asyncio.create_task(queue.ingest(_webhook(f"f00d00000000000{i}"), "r"))
            for i in range(1, 6)
        ]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *rest)

    results = _run(main())
    assert batches == [1, 5]
    assert len({r.webhook_id for r in results}) == 6
    assert all(len(r.new_ids) == 1 for r in results)
    assert store.counts()["webhooks"] == 6


def test_ingest_queue_failed_transaction_fails_every_webhook_in_it(store: Store) -> None:
    calls = 0
    real = store.ingest_many

    def failing_once(items: list[IngestItem]) -> list[IngestResult]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreError("database error: disk I/O error")
        return real(items)

    store.ingest_many = failing_once  # type: ignore[method-assign]
    queue = IngestQueue(store)

    async def main() -> tuple[list[Any], IngestResult]:
        tasks = [queue.ingest(_webhook(f"f00d00000000000{i}"), "") for i in range(3)]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        again = await queue.ingest(_webhook("f00d000000000009"), "")
        return outcomes, again

    outcomes, again = _run(main())
    assert all(isinstance(o, StoreError) for o in outcomes)
    assert len(again.new_ids) == 1
    assert store.counts()["webhooks"] == 1  # only the webhook after the failure


def test_ingest_queue_works_across_event_loops(store: Store) -> None:
    queue = IngestQueue(store)
    first = _run(queue.ingest(_webhook("f00d000000000001"), ""))
    second = _run(queue.ingest(_webhook("f00d000000000002"), ""))
    assert second.webhook_id == first.webhook_id + 1


def test_connection_is_reused_and_replaced_after_a_database_error(store: Store) -> None:
    store.counts()
    conn = store._local.conn
    store.counts()
    assert store._local.conn is conn  # reused
    conn.close()  # the next statement fails: "Cannot operate on a closed database"
    with pytest.raises(StoreError):
        store.counts()
    assert store.counts()["webhooks"] == 0  # a fresh connection
    assert store._local.conn is not conn


def test_failed_transaction_rolls_back_and_leaves_the_connection_usable(store: Store) -> None:
    synthetic = SyntheticNotification(
        route="critical",
        group_key="deadman",
        receiver="alert-receiver",
        alert={
            "status": "firing",
            "labels": {"alertname": "AlertingPipelineDown"},
            "startsAt": "2026-05-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "deadman",
        },
        diagnosis={},
    )

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


def test_concurrent_writers_from_many_threads_all_succeed(store: Store) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(20):
                store.ingest(_webhook(f"{i:08x}{j:08x}"), "")
                store.check_writable()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.counts()["webhooks"] == 120


def test_next_due_has_an_index(store: Store, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "r.db")
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT MIN(next_attempt_at) FROM notifications"
        " WHERE state = 'pending' AND next_attempt_at > 0"
    ).fetchall()
    assert "notifications_next" in str(plan)
    store.ingest(_webhook("f00d000000000001"), "")
    (row,) = store.due(1e12)
    store.postpone(row.id, 5e11)
    assert store.next_due(0) == 5e11
    assert store.due(1e11) == []


def test_app_stores_the_body_as_received(tmp_path: Path) -> None:
    settings: Settings = make_settings(tmp_path)
    body = json.dumps(exchange_payload(), indent=2, ensure_ascii=False).encode()
    with TestClient(create_app(settings, start_worker=False)) as c:
        resp = c.post("/alerts", content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 200
    db = sqlite3.connect(settings.receiver_db_path)
    assert db.execute("SELECT payload FROM webhooks").fetchone()[0] == body.decode()


def test_app_stores_a_utf16_body_reserialised(tmp_path: Path) -> None:
    settings: Settings = make_settings(tmp_path)
    payload = exchange_payload()
    body = json.dumps(payload).encode("utf-16")
    with TestClient(create_app(settings, start_worker=False)) as c:
        resp = c.post("/alerts", content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 200
    db = sqlite3.connect(settings.receiver_db_path)
    assert json.loads(db.execute("SELECT payload FROM webhooks").fetchone()[0]) == payload


def test_app_commits_concurrent_webhooks_together(tmp_path: Path) -> None:
    settings: Settings = make_settings(tmp_path)
    app = create_app(settings, start_worker=False)
    store: Store = app.state.store
    batches: list[int] = []
    real = store.ingest_many

    def recording(items: list[IngestItem]) -> list[IngestResult]:
        batches.append(len(items))
        return real(items)

    store.ingest_many = recording  # type: ignore[method-assign]

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as c:
            posts = [
                c.post("/alerts", json=exchange_payload(fingerprint=f"c0ffee00000000{i:02d}"))
                for i in range(20)
            ]
            return await asyncio.gather(*posts)

    responses = _run(main())
    assert [r.status_code for r in responses] == [200] * 20
    assert sorted(r.json()["new"] for r in responses) == [1] * 20
    assert sum(batches) == 20 and len(batches) < 20  # some shared a transaction
    assert store.counts()["pending"] == 20


class _RecordingNotifier(Notifier):
    """Records the alertname of each notification; alert A takes a while per message."""

    channel = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    async def _send(self, notification: Notification) -> None:
        if notification.alertname == "ChainA":
            await asyncio.sleep(0.01)
        self.sent.append(notification.alertname)


def _alert_webhook(alertname: str, fingerprint: str, starts_at: str) -> AlertmanagerWebhook:
    payload = exchange_payload(alertname=alertname, fingerprint=fingerprint)
    payload["alerts"][0]["startsAt"] = starts_at
    return AlertmanagerWebhook.model_validate(payload)


def test_worker_looks_past_a_long_chain_of_one_alert(store: Store) -> None:
    # 40 notifications of one alert (they go one at a time, in order), then another alert:
    # the other alert must not wait for the whole chain although it is beyond the first rows.
    chain = [
        (_alert_webhook("ChainA", "aaaa000000000001", f"2026-05-01T10:00:{i:02d}Z"), "", None)
        for i in range(40)
    ]
    store.ingest_many([*chain, (_alert_webhook("Other", "bbbb000000000001", _T0), "", None)])
    notifier = _RecordingNotifier()

    async def diagnose(alert: Alert) -> Diagnosis:
        return diagnose_with_rules(alert)

    async def main() -> None:
        worker = Worker(store, diagnose, lambda route: [notifier], concurrency=2)
        worker.start()
        try:
            for _ in range(500):
                if "Other" in notifier.sent:
                    break
                await asyncio.sleep(0.01)
        finally:
            await worker.stop()

    _run(main())
    assert "Other" in notifier.sent
    assert notifier.sent.index("Other") < 5, notifier.sent
