"""Store, worker side, against every backend: due notifications, a round's start in one
transaction (prepare), delivery updates, finishing a round, and the unsent figures."""

from __future__ import annotations

import math
from typing import Any

from receiver.models import AlertmanagerWebhook
from receiver.store import FINAL_STATES, DeliveryState, Origin, RoundStart, Store, Unsent
from tests.receiver.test_receiver_app import exchange_payload


def _webhook(fingerprint: str = "f00d000000000001", **kwargs: Any) -> AlertmanagerWebhook:
    return AlertmanagerWebhook.model_validate(exchange_payload(fingerprint=fingerprint, **kwargs))


def test_prepare_saves_diagnosis_plans_and_reads_blocking_at_once(store: Store) -> None:
    first = AlertmanagerWebhook.model_validate(exchange_payload(status="firing"))
    second = AlertmanagerWebhook.model_validate(
        exchange_payload(status="resolved", ends_at="2026-05-01T10:00:00Z")
    )
    store.ingest_many([(first, "", None), (second, "", None)])
    earlier, later = store.due(math.inf)
    diagnosis: dict[str, Any] = {"summary": "x"}
    plan, blocked, unplanned = store.prepare(
        later.id, later.group_key, later.fingerprint, [("file", "jsonl")], 50.0, diagnosis
    )
    assert list(plan) == ["file"] and plan["file"].state == "pending"
    assert plan["file"].next_attempt_at == 50.0
    assert blocked == {} and unplanned == 0.0  # the firing one has no delivery row yet
    # Planning again creates nothing new and reads the same blocking deliveries.
    again = store.prepare(later.id, later.group_key, later.fingerprint, [("file", "jsonl")], 99.0)
    assert again == RoundStart(plan, blocked, unplanned)
    _, saved = store.due(math.inf)
    assert saved.diagnosis == diagnosis
    store.prepare(earlier.id, earlier.group_key, earlier.fingerprint, [("file", "jsonl")], 60.0)
    assert store.due(math.inf)[0].diagnosis is None
    _, blocked, unplanned = store.prepare(
        later.id, later.group_key, later.fingerprint, [("file", "jsonl")], 70.0
    )
    assert blocked == {"file": 60.0} and unplanned is None


def test_next_due_and_postpone(store: Store) -> None:
    store.ingest_many([(_webhook(), "", None)])
    (row,) = store.due(1e12)
    store.postpone(row.id, 5e11)
    assert store.next_due(0) == 5e11
    assert store.due(1e11) == []


def test_due_reads_the_notification_as_stored(store: Store) -> None:
    store.ingest_many([(_webhook(), "critical", None)])
    (row,) = store.due(math.inf, limit=1)
    assert row.route == "critical" and row.fingerprint == "f00d000000000001"
    assert row.origin == Origin.ALERTMANAGER and row.diagnosis is None and row.created_ts > 0
    assert store.due(math.inf, limit=0) == []


def test_a_round_until_every_delivery_is_final(store: Store) -> None:
    store.ingest_many([(_webhook(), "", None)])
    (row,) = store.due(math.inf)
    notifiers = [("chat", "slack"), ("file", "jsonl")]
    plan, _, _ = store.prepare(row.id, row.group_key, row.fingerprint, notifiers, 10.0)
    assert {d.state for d in plan.values()} == {DeliveryState.PENDING}
    assert store.counts()["unsent_deliveries"] == 2

    store.update_delivery(
        row.id, "chat", DeliveryState.SENDING, attempts=1, next_attempt_at=11.0, error="x"
    )
    store.update_delivery(row.id, "chat", DeliveryState.PENDING, next_attempt_at=40.0, error="e")
    store.update_delivery(row.id, "file", DeliveryState.DELIVERED)
    plan, _, _ = store.prepare(row.id, row.group_key, row.fingerprint, notifiers, 12.0)
    assert plan["chat"].state == DeliveryState.PENDING and plan["chat"].attempts == 1
    assert plan["chat"].next_attempt_at == 40.0
    assert plan["file"].state in FINAL_STATES
    assert store.finish(row.id) == 40.0  # still owed to chat
    assert store.due(39.0) == [] and store.next_due(0) == 40.0

    store.update_delivery(row.id, "chat", DeliveryState.DROPPED, error="gave up")
    assert store.finish(row.id) is None
    counts = store.counts()
    assert counts["pending"] == 0 and counts["done"] == 1
    assert counts["failed_deliveries"] == 1 and counts["unsent_deliveries"] == 0
    assert store.unsent(1e12) == Unsent(0, 0.0)


def test_complete_ends_a_notification_whatever_its_deliveries(store: Store) -> None:
    store.ingest_many([(_webhook(), "", None)])
    (row,) = store.due(math.inf)
    store.prepare(row.id, row.group_key, row.fingerprint, [("file", "jsonl")], 0.0)
    store.complete(row.id)
    assert store.due(math.inf) == []
    assert store.counts()["done"] == 1


def test_unsent_counts_pending_notifications_and_the_oldest_age(open_store: Any) -> None:
    now = 1_800_000_000.0
    store: Store = open_store(lambda: now)
    store.init()
    assert store.unsent(now) == Unsent(0, 0.0)
    store.ingest_many([(_webhook("f00d000000000001"), "", None)])
    store.ingest_many([(_webhook("f00d000000000002"), "", None)])
    count, oldest = store.unsent(now + 30)
    assert count == 2 and abs(oldest - 30) < 0.01


def test_every_delivery_state_is_stored_and_read_back(store: Store) -> None:
    store.ingest_many([(_webhook(), "", None)])
    (row,) = store.due(math.inf)
    store.prepare(row.id, row.group_key, row.fingerprint, [("file", "jsonl")], 0.0)
    for state in DeliveryState:
        store.update_delivery(row.id, "file", state)
        plan, _, _ = store.prepare(row.id, row.group_key, row.fingerprint, [], 0.0)
        assert plan["file"].state is state
