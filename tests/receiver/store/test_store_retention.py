"""Store retention, against every backend: prune deletes done notifications completed before
the cut-off (with their deliveries) and old webhooks no notification refers to, keeps pending
and recent ones, works in batches of ``limit``; and the database's size.

A pruned notification no longer holds its idempotency key: the same alert sent again is stored
as new. That is by design: the rows are older than the retention (30 days by default), far
past any Alertmanager retry, and keeping keys forever would keep the table growing.
"""

from __future__ import annotations

import math
from typing import Any

from receiver.models import AlertmanagerWebhook
from receiver.store import DeliveryState, Store
from tests.receiver.test_receiver_app import exchange_payload

T = 1_800_000_000.0  # the tests' start, Unix seconds
DAY = 86_400.0


class Clock:
    """A clock the test moves (``clock.now = ...``)."""

    def __init__(self, now: float = T) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _webhook(fingerprint: str) -> AlertmanagerWebhook:
    return AlertmanagerWebhook.model_validate(exchange_payload(fingerprint=fingerprint))


def _ingest(store: Store, fingerprint: str) -> list[int]:
    (result,) = store.ingest_many([(_webhook(fingerprint), "", None)])
    return result.new_ids


def _clocked_store(open_store: Any) -> tuple[Store, Clock]:
    clock = Clock()
    store: Store = open_store(clock)
    store.init()
    return store, clock


def test_prune_deletes_only_old_finished_rows(open_store: Any) -> None:
    store, clock = _clocked_store(open_store)
    (old_done,) = _ingest(store, "0000000000000001")
    _ingest(store, "0000000000000001")  # a duplicate: a webhook without notification
    (old_pending,) = _ingest(store, "0000000000000002")
    (done_late,) = _ingest(store, "0000000000000003")  # received early, completed late
    (row, *_) = store.due(T)
    store.prepare(row.id, row.group_key, row.fingerprint, [("file", "jsonl")], T)
    store.update_delivery(old_done, "file", DeliveryState.DROPPED, error="gave up")
    assert store.finish(old_done) is None
    clock.now = T + 10 * DAY
    store.complete(done_late)
    (recent,) = _ingest(store, "0000000000000004")
    store.complete(recent)
    before = store.counts()
    assert before["webhooks"] == 5 and before["done"] == 3 and before["pending"] == 1
    assert before["failed_deliveries"] == 1

    # Cut-off at T + 5 days: old_done, its webhook and the duplicate's webhook go.
    assert store.prune(T + 5 * DAY) == 3
    after = store.counts()
    assert after["webhooks"] == 3  # old_pending's, done_late's and recent's
    assert after["pending"] == 1 and after["done"] == 2
    assert after["failed_deliveries"] == 0  # old_done's delivery went with it
    assert [row.id for row in store.due(math.inf)] == [old_pending]
    assert store.prune(T + 5 * DAY) == 0

    # The pruned notification's idempotency key is free: the same alert is stored as new.
    (again,) = _ingest(store, "0000000000000001")
    assert again > old_done
    # A pending notification is never pruned, however old, nor its webhook.
    assert store.prune(T + 100 * DAY) == 4  # done_late, recent and their webhooks
    final = store.counts()
    assert final["pending"] == 2 and final["done"] == 0 and final["webhooks"] == 2


def test_prune_works_in_batches_of_limit(open_store: Any) -> None:
    store, clock = _clocked_store(open_store)
    for i in range(7):
        (nid,) = _ingest(store, f"{i:016x}")
        store.complete(nid)
    clock.now = T + DAY
    # Three notifications, then the three webhooks they leave unreferenced.
    assert store.prune(T + DAY, limit=3) == 6
    deleted = [store.prune(T + DAY, limit=3) for _ in range(3)]
    assert deleted == [6, 2, 0]
    assert store.counts()["webhooks"] == 0 and store.counts()["done"] == 0
    assert store.prune(T + DAY, limit=0) == 0


def test_prune_cut_off_is_exclusive(open_store: Any) -> None:
    store, _ = _clocked_store(open_store)
    (nid,) = _ingest(store, "0000000000000001")
    store.complete(nid)
    assert store.prune(T) == 0  # completed and received at T, not before it
    assert store.prune(T + 1) == 2


def test_size_bytes_is_positive(store: Store) -> None:
    size = store.size_bytes()
    assert isinstance(size, int) and size > 0
