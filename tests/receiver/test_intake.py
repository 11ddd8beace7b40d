"""Intake through the app: the body stored as received, concurrent webhooks committed together,
and a worker that looks past a long chain of one alert (the store's own intake tests are in
``tests/receiver/store/``)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
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
from receiver.store import IngestItem, IngestResult, SQLiteStore, Store
from receiver.worker import Worker
from tests.receiver.test_receiver_app import exchange_payload, make_settings

_T0 = "2026-05-01T09:00:00Z"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = SQLiteStore(tmp_path / "r.db")
    s.init()
    return s


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


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
