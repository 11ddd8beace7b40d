"""Store intake, against every backend: webhooks stored in order with duplicates counted, the
stored alert JSON, group commit (IngestQueue in front of Store.ingest_many) and concurrent
writers."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from typing import Any

from receiver.models import AlertmanagerWebhook
from receiver.store import IngestItem, IngestQueue, IngestResult, Store, StoreError
from tests.receiver.test_receiver_app import exchange_payload


def _webhook(fingerprint: str, status: str = "firing") -> AlertmanagerWebhook:
    return AlertmanagerWebhook.model_validate(
        exchange_payload(fingerprint=fingerprint, status=status)
    )


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_ingest_many_stores_all_in_order_as_if_one_after_the_other(store: Store) -> None:
    first, second = _webhook("f00d000000000001"), _webhook("f00d000000000002")
    results = store.ingest_many([(first, "a", None), (second, "b", None), (first, "c", None)])
    assert [len(r.new_ids) for r in results] == [1, 1, 0]
    assert [r.duplicates for r in results] == [0, 0, 1]
    assert results[0].webhook_id < results[1].webhook_id < results[2].webhook_id
    assert store.counts()["webhooks"] == 3
    assert store.counts()["pending"] == 2
    assert [row.route for row in store.due(math.inf)] == ["a", "b"]


def test_stored_alert_json_is_the_model_dump(store: Store) -> None:
    payload = exchange_payload(annotations={"summary": "bïnance ✓"})
    webhook = AlertmanagerWebhook.model_validate(payload)
    store.ingest_many([(webhook, "", None)])
    (row,) = store.due(math.inf)
    assert row.alert == webhook.alerts[0].model_dump(mode="json", by_alias=True)


def test_ingest_queue_commits_concurrent_webhooks_in_one_transaction(store: Store) -> None:
    batches: list[int] = []
    release = threading.Event()
    real = store.ingest_many

    def recording(items: Sequence[IngestItem]) -> list[IngestResult]:
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

    def failing_once(items: Sequence[IngestItem]) -> list[IngestResult]:
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


def test_concurrent_writers_from_many_threads_all_succeed(store: Store) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(20):
                store.ingest_many([(_webhook(f"{i:08x}{j:08x}"), "", None)])
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
