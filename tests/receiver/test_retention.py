"""Retention passes: old finished notifications pruned batch by batch, metrics recorded (the
store's own prune tests are in ``tests/receiver/store/test_store_retention.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from receiver.metrics import ReceiverMetrics
from receiver.models import AlertmanagerWebhook
from receiver.retention import Retention
from receiver.store import SQLiteStore
from tests.receiver.test_receiver_app import exchange_payload


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _value(metrics: ReceiverMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def test_a_pass_prunes_every_old_finished_notification_in_batches(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    store = SQLiteStore(tmp_path / "r.db", clock=clock)
    store.init()
    items = [
        (
            AlertmanagerWebhook.model_validate(
                exchange_payload(alertname=f"Old{i}", fingerprint=f"{i:016x}")
            ),
            "",
            None,
        )
        for i in range(25)
    ]
    ids = [nid for result in store.ingest_many(items) for nid in result.new_ids]
    for nid in ids[:20]:
        store.complete(nid)
    clock.now += 31 * 86400
    metrics = ReceiverMetrics()
    retention = Retention(store, 30, metrics=metrics, clock=clock, batch=3, pause=0)

    deleted = asyncio.run(retention.prune_once())

    assert deleted == 40  # 20 notifications and their 20 webhooks
    counts = store.counts()
    assert (counts["done"], counts["pending"], counts["webhooks"]) == (0, 5, 5)
    assert _value(metrics, "alert_receiver_pruned_rows_total") == 40
    assert _value(metrics, "alert_receiver_database_size_bytes") > 0
    assert asyncio.run(retention.prune_once()) == 0


def test_recent_finished_notifications_are_kept(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    store = SQLiteStore(tmp_path / "r.db", clock=clock)
    store.init()
    payload = exchange_payload(alertname="Recent")
    [result] = store.ingest_many([(AlertmanagerWebhook.model_validate(payload), "", None)])
    store.complete(result.new_ids[0])
    clock.now += 29 * 86400
    assert asyncio.run(Retention(store, 30, clock=clock).prune_once()) == 0
    assert store.counts()["done"] == 1


def test_the_pass_interval_follows_the_period() -> None:
    store = SQLiteStore(Path("unused.db"))
    assert Retention(store, 30).interval == 600.0
    assert Retention(store, 0.001).interval == 8.64
    assert Retention(store, 0.00001).interval == 1.0
