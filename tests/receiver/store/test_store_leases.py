"""Store work leases, against every backend: claim hands out due notifications lowest id
first and leases them, another owner gets them only once the lease expires, renew and release,
the end of a lease with finish/postpone/complete, next_due counting lease ends, and concurrent
claims (threads on one store, and one store per thread as separate receivers would have) that
never hand out a notification twice."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from receiver.models import AlertmanagerWebhook
from receiver.store import DeliveryState, Store
from tests.receiver.test_receiver_app import exchange_payload

T = 1_800_000_000.0  # the tests' "now", Unix seconds


def _ingest(store: Store, count: int, start: int = 0) -> list[int]:
    """Store ``count`` webhooks of one alert each (distinct fingerprints); their ids."""
    items = [
        (
            AlertmanagerWebhook.model_validate(exchange_payload(fingerprint=f"{start + i:016x}")),
            "",
            None,
        )
        for i in range(count)
    ]
    return [nid for result in store.ingest_many(items) for nid in result.new_ids]


def _ids(rows: list[Any]) -> list[int]:
    return [row.id for row in rows]


def test_claim_leases_due_rows_lowest_id_first(store: Store) -> None:
    one, two, three, later = _ingest(store, 4)
    store.postpone(later, T + 100)  # not due yet
    claimed = store.claim(T, "a", 10, limit=2)
    assert _ids(claimed) == [one, two]
    # The records are those due() builds.
    assert claimed == [row for row in store.due(math.inf) if row.id in (one, two)]
    assert _ids(store.claim(T, "b", 10)) == [three]
    assert store.claim(T + 1, "c", 10) == []  # everything due is leased to someone else
    assert _ids(store.claim(T + 1, "a", 10)) == [one, two]  # own re-claim: until T + 11
    assert _ids(store.claim(T + 10, "c", 10)) == [three]  # b's lease ended at T + 10
    assert _ids(store.claim(T + 11, "c", 10)) == [one, two, three]  # a's too; c's own
    assert store.claim(T, "d", 10, limit=0) == []


def test_due_ignores_leases(store: Store) -> None:
    ids = _ingest(store, 2)
    store.claim(T, "a", 10)
    assert _ids(store.due(T)) == ids


def test_renew_extends_only_the_owners_leases(store: Store) -> None:
    one, two = _ingest(store, 2)
    store.claim(T, "a", 10)
    assert store.renew("a", [two, one], T + 30) == [one, two]
    assert store.claim(T + 20, "b", 10) == []  # renewed past T + 10
    assert store.renew("b", [one], T + 99) == []  # not b's
    assert _ids(store.claim(T + 30, "b", 10)) == [one, two]  # expired, then b's
    assert store.renew("a", [one, two], T + 60) == []  # lost to b
    assert store.renew("b", [], T + 60) == []
    assert store.renew("b", [one, 10**9], T + 60) == [one]  # an unknown id is not b's


def test_release_frees_only_the_owners_leases(store: Store) -> None:
    one, two = _ingest(store, 2)
    store.claim(T, "a", 60)
    store.release("b", [one, two])  # not b's: nothing changes
    assert store.claim(T, "b", 60) == []
    store.release("a", [one])
    store.release("a", [])
    assert _ids(store.claim(T, "b", 60)) == [one]
    assert store.renew("a", [one, two], T + 60) == [two]


def test_finish_postpone_and_complete_end_the_lease(store: Store) -> None:
    retried, postponed, completed = _ingest(store, 3)
    rows = store.claim(T, "a", 100)
    assert _ids(rows) == [retried, postponed, completed]
    first = rows[0]
    store.prepare(first.id, first.group_key, first.fingerprint, [("file", "jsonl")], T)
    store.update_delivery(first.id, "file", DeliveryState.PENDING, next_attempt_at=T + 5)
    assert store.finish(retried) == T + 5
    store.postpone(postponed, T + 5)
    store.complete(completed)
    assert store.renew("a", [retried, postponed, completed], T + 200) == []
    assert store.claim(T + 4, "b", 10) == []  # not due before T + 5
    # a's lease would have run until T + 100: b gets them as soon as they are due again.
    assert _ids(store.claim(T + 5, "b", 10)) == [retried, postponed]
    store.update_delivery(retried, "file", DeliveryState.DELIVERED)
    assert store.finish(retried) is None  # done: no longer claimable nor renewable
    assert store.renew("b", [retried, postponed], T + 200) == [postponed]


def test_next_due_accounts_for_lease_ends(store: Store) -> None:
    one, two = _ingest(store, 2)  # due at once (next attempt in the past)
    assert store.next_due(T) is None
    store.claim(T, "a", 10)
    assert store.next_due(T) == T + 10  # claimable again when the leases end
    store.postpone(two, T + 5)  # ends two's lease: due at T + 5
    assert store.next_due(T) == T + 5
    assert store.next_due(T + 5) == T + 10
    assert store.next_due(T + 10) is None  # a lease in the past delays nothing
    store.release("a", [one])
    assert store.next_due(T + 5) is None
    store.claim(T + 5, "b", 30)  # both: lease until T + 35, past two's next attempt
    assert store.next_due(T) == T + 35


def _claim_concurrently(stores: list[Store]) -> list[list[int]]:
    """Each store in its own thread, all started together, claims 5 at a time (as owner
    ``owner<i>``) and completes what it got (as a worker would: its own leases would otherwise
    be claimed again), until nothing is left; the ids each got, in claim order."""
    start = threading.Barrier(len(stores))

    def claim_all(store: Store, owner: str) -> list[int]:
        start.wait(30)
        got: list[int] = []
        while batch := store.claim(T, owner, 300, limit=5):
            got.extend(row.id for row in batch)
            for row in batch:
                store.complete(row.id)
        return got

    with ThreadPoolExecutor(len(stores)) as pool:
        futures = [pool.submit(claim_all, s, f"owner{i}") for i, s in enumerate(stores)]
        return [future.result(timeout=120) for future in futures]


def test_concurrent_claims_on_one_store_never_hand_out_twice(store: Store) -> None:
    ids = _ingest(store, 100)
    results = _claim_concurrently([store] * 4)
    claimed = [nid for result in results for nid in result]
    assert sorted(claimed) == sorted(ids)  # all of them, none twice
    assert all(result == sorted(result) for result in results)  # lowest id first


def test_concurrent_claims_from_separate_stores_never_hand_out_twice(open_store: Any) -> None:
    first: Store = open_store()
    first.init()
    ids = _ingest(first, 100)
    stores: list[Store] = [first]
    try:
        for _ in range(3):
            stores.append(open_store())
            stores[-1].init()
        results = _claim_concurrently(stores)
    finally:
        for s in stores:
            s.close()
    claimed = [nid for result in results for nid in result]
    assert sorted(claimed) == sorted(ids)
