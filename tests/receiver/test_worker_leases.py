"""Workers of several receivers on one database: leases, takeover after a crash, release at
stop (the store's own lease tests are in ``tests/receiver/store/test_store_leases.py``)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import Diagnosis
from receiver.models import Alert, AlertmanagerWebhook
from receiver.notifiers.base import Notification, Notifier
from receiver.store import DeliveryState, SQLiteStore, Store
from receiver.worker import Worker
from tests.receiver.test_receiver_app import exchange_payload


class _Shared(Notifier):
    """One notifier instance name on every receiver; records into a shared list."""

    channel = "shared"

    def __init__(self, sent: list[str], hold: asyncio.Event | None = None) -> None:
        super().__init__()
        self._sent = sent
        self._hold = hold

    async def _send(self, notification: Notification) -> None:
        if self._hold is not None:
            await self._hold.wait()  # a receiver that stalls mid-send
        await asyncio.sleep(0.001)
        self._sent.append(notification.alertname)


def _webhooks(count: int) -> list[tuple[AlertmanagerWebhook, str, None]]:
    items = []
    for i in range(count):
        payload = exchange_payload(alertname=f"Lease{i:03d}", fingerprint=f"{i:016x}")
        items.append((AlertmanagerWebhook.model_validate(payload), "", None))
    return items


async def _diagnose(alert: Alert) -> Diagnosis:
    return diagnose_with_rules(alert)


def _worker(store: Store, notifier: Notifier, owner: str, **kwargs: Any) -> Worker:
    options: dict[str, Any] = {"concurrency": 4, "poll_interval": 0.05}
    options.update(kwargs)
    return Worker(store, _diagnose, lambda route: [notifier], owner=owner, **options)


async def _until(predicate: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _open(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store.init()
    return store


def _leased_to(path: Path, owner: str) -> int:
    """Pending notifications leased to ``owner`` (read from the database file)."""
    db = sqlite3.connect(path)
    try:
        query = "SELECT count(*) FROM notifications WHERE state = 'pending' AND lease_owner = ?"
        (count,) = db.execute(query, (owner,)).fetchone()
        return int(count)
    finally:
        db.close()


def test_two_workers_on_one_database_send_each_notification_once(tmp_path: Path) -> None:
    a, b = _open(tmp_path / "r.db"), _open(tmp_path / "r.db")
    a.ingest_many(_webhooks(60))
    sent: list[str] = []

    async def main() -> None:
        workers = [_worker(a, _Shared(sent), "rx-a"), _worker(b, _Shared(sent), "rx-b")]
        for worker in workers:
            worker.start()
        try:
            await _until(lambda: a.counts()["pending"] == 0)
        finally:
            for worker in workers:
                await worker.stop()

    asyncio.run(main())
    counts = Counter(sent)
    assert len(counts) == 60
    assert set(counts.values()) == {1}, [name for name, n in counts.items() if n > 1]


def test_a_stalled_receivers_work_is_taken_over_when_its_lease_expires(tmp_path: Path) -> None:
    a, b = _open(tmp_path / "r.db"), _open(tmp_path / "r.db")
    a.ingest_many(_webhooks(6))
    sent: list[str] = []

    async def main() -> None:
        hold = asyncio.Event()  # never set: receiver A hangs in its sends
        stalled = _worker(a, _Shared(sent, hold), "rx-a", concurrency=3, lease_seconds=1.0)
        stalled.start()
        await _until(lambda: stalled.inflight == 3)
        # Its round ends by giving back what it claimed but did not start: wait for that, or
        # the cancel below could land before the release (under load it did).
        await _until(lambda: _leased_to(tmp_path / "r.db", "rx-a") == 3)
        # A dies without a word: its loops stop, its leases are neither renewed nor released.
        assert stalled._task is not None and stalled._renewer is not None
        stalled._task.cancel()
        stalled._renewer.cancel()
        taken = b.claim(a._clock(), "rx-b", 1.0, 100)
        assert len(taken) == 3  # the three A did not start were never leased for long
        b.release("rx-b", [row.id for row in taken])
        survivor = _worker(b, _Shared(sent), "rx-b", lease_seconds=1.0)
        survivor.start()
        try:
            await _until(lambda: b.counts()["pending"] == 0)
        finally:
            await survivor.stop()
            for task, _ in list(stalled._inflight.values()):
                task.cancel()

    asyncio.run(main())
    assert sorted(sent) == [f"Lease{i:03d}" for i in range(6)]


def test_stop_releases_the_leases_of_unfinished_work(tmp_path: Path) -> None:
    a, b = _open(tmp_path / "r.db"), _open(tmp_path / "r.db")
    a.ingest_many(_webhooks(2))

    async def main() -> None:
        hold = asyncio.Event()
        worker = _worker(a, _Shared([], hold), "rx-a", lease_seconds=600.0)
        worker.start()
        await _until(lambda: worker.inflight == 2)
        await worker.stop(grace=0.0)

    asyncio.run(main())
    # A restarted or other receiver claims them at once, not 10 minutes later; the sends that
    # were interrupted are known to be uncertain ('sending').
    taken = b.claim(b._clock(), "rx-b", 15.0, 100)
    assert len(taken) == 2
    states = {
        delivery.state
        for row in taken
        for delivery in b.prepare(row.id, row.group_key, row.fingerprint, [], 0.0).plan.values()
    }
    assert states == {DeliveryState.SENDING}
