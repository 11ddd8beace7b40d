"""The SQLite backend: :class:`SQLiteStore`, the embedded single-node store.

The database runs in WAL mode with ``synchronous=FULL``: a webhook is on disk before the HTTP
answer. Methods are synchronous and safe to call from worker threads (``asyncio.to_thread``):
each thread keeps its own connection (opened on first use, replaced after an error), and write
transactions of one process queue on a lock instead of in SQLite's busy handler (which sleeps
1-100 ms between retries). Every SQLite or filesystem failure is raised as
:class:`~receiver.store.StoreError`.

SQLite is the single-node backend: the database is a file on one machine's disk. Several
processes on one file are correct (SQLite's locks serialise their writes, work is handed out
with leases and the dead man's switch has a leader row), but they share that machine and disk,
so this is not high availability: that needs :class:`~receiver.store.PostgresStore`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from exchange_common.timestamps import iso_utc
from receiver.store.interface import Store, StoreError
from receiver.store.records import (
    DeadmanOutcome,
    DeadmanState,
    DeadmanTransition,
    Delivery,
    DeliveryState,
    IngestItem,
    IngestResult,
    PendingNotification,
    RoundStart,
    Unsent,
)
from receiver.store.sqlite import deadman, deliveries, intake, leader, leases, retention
from receiver.store.sqlite.connections import Connections
from receiver.store.sqlite.schema import init_schema


class SQLiteStore(Store):
    """SQLite store at ``path`` (parent directories are created).

    Args:
        path: database file.
        clock: Unix-seconds clock for timestamps, leader leases (tests may inject one).
    """

    backend = "sqlite"

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._ready = False
        self._conns = Connections(self._open)
        self._write_lock = threading.Lock()

    def _now_iso(self) -> str:
        return iso_utc(self._clock())

    # --- connections and transactions ------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False only so close() may close an idle one from another thread;
        # each connection is otherwise used by the thread that opened it (.connections).
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            if not self._ready:
                init_schema(conn)
                self._ready = True
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _rollback(conn: sqlite3.Connection | None) -> None:
        with contextlib.suppress(sqlite3.Error):  # also raised by a closed connection
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, opened on first use and kept for the next call (opening
        one costs more than most statements); after a database error it is closed, so the next
        call starts afresh."""
        conn: sqlite3.Connection | None = None
        try:
            conn = self._conns.checkout()
            yield conn
        except (sqlite3.Error, OSError) as exc:
            self._rollback(conn)
            if conn is not None:
                self._conns.discard(conn)
                conn = None
            raise StoreError(f"database error: {exc}") from exc
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            if conn is not None:
                self._conns.checkin(conn)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error).

        Writers of this process take turns on a lock: waiting in SQLite's busy handler instead
        would sleep 1-100 ms between attempts, long after the lock was free.
        """
        with self._write_lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                self._rollback(conn)
                raise
            conn.execute("COMMIT")

    # --- lifecycle ------------------------------------------------------------------------

    def init(self) -> None:
        """See :meth:`Store.init` (WAL mode; a version 1 to 3 database is migrated in place, in
        one transaction)."""
        with self._connect():
            pass

    def close(self) -> None:
        """See :meth:`Store.close`: closes every thread's connection, those in use as soon as
        their call ends; each thread's next call opens a new one."""
        self._conns.close_all()

    def describe(self) -> str:
        """See :meth:`Store.describe`: ``sqlite:<path>``."""
        return f"sqlite:{self.path}"

    def check_writable(self) -> None:
        """See :meth:`Store.check_writable` (rewrites the ``health`` row)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO health (id, checked_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (self._now_iso(),),
            )

    # --- intake ---------------------------------------------------------------------------

    def ingest_many(self, items: Sequence[IngestItem]) -> list[IngestResult]:
        """See :meth:`Store.ingest_many` (one ``fsync`` for the lot)."""
        now = self._now_iso()
        rows = intake.serialise(items)
        with self._transaction() as conn:
            return [intake.insert_webhook(conn, now, row) for row in rows]

    # --- worker ---------------------------------------------------------------------------

    def due(self, now: float, limit: int = 100) -> list[PendingNotification]:
        """See :meth:`Store.due` (leases are ignored: leased notifications are listed too)."""
        with self._connect() as conn:
            return deliveries.due(conn, now, limit)

    def claim(
        self, now: float, owner: str, lease_seconds: float, limit: int = 100
    ) -> list[PendingNotification]:
        """See :meth:`Store.claim` (one ``BEGIN IMMEDIATE`` transaction: claims are serialised
        by the database's write lock, across threads and processes)."""
        with self._transaction() as conn:
            return leases.claim(conn, now, owner, now + lease_seconds, limit)

    def renew(self, owner: str, ids: Sequence[int], until: float) -> list[int]:
        """See :meth:`Store.renew` (ids returned ascending)."""
        if not ids:
            return []
        with self._transaction() as conn:
            return leases.renew(conn, owner, ids, until)

    def release(self, owner: str, ids: Sequence[int]) -> None:
        """See :meth:`Store.release`."""
        if not ids:
            return
        with self._transaction() as conn:
            leases.release(conn, owner, ids)

    def next_due(self, after: float) -> float | None:
        """See :meth:`Store.next_due`."""
        with self._connect() as conn:
            return deliveries.next_due(conn, after)

    def prepare(
        self,
        notification_id: int,
        group_key: str,
        fingerprint: str,
        notifiers: Sequence[tuple[str, str]],
        now: float,
        diagnosis: dict[str, Any] | None = None,
    ) -> RoundStart:
        """See :meth:`Store.prepare`."""
        stamp = self._now_iso()
        with self._transaction() as conn:
            return deliveries.prepare(
                conn, stamp, notification_id, group_key, fingerprint, notifiers, now, diagnosis
            )

    def update_delivery(
        self,
        notification_id: int,
        notifier: str,
        state: DeliveryState,
        *,
        attempts: int | None = None,
        next_attempt_at: float | None = None,
        error: str | None = None,
        keep_error: bool = False,
        message_ref: str | None = None,
    ) -> None:
        """See :meth:`Store.update_delivery`."""
        stamp = self._now_iso()
        with self._transaction() as conn:
            deliveries.update_delivery(
                conn,
                stamp,
                notification_id,
                notifier,
                state,
                attempts,
                next_attempt_at,
                error,
                keep_error,
                message_ref,
            )

    def deliveries(self, notification_id: int) -> dict[str, Delivery]:
        """See :meth:`Store.deliveries`."""
        with self._connect() as conn:
            return deliveries.deliveries(conn, notification_id)

    def set_diagnosis(self, notification_id: int, diagnosis: dict[str, Any]) -> None:
        """See :meth:`Store.set_diagnosis`."""
        stamp = self._now_iso()
        with self._transaction() as conn:
            deliveries.set_diagnosis(conn, stamp, notification_id, diagnosis)

    def finish(self, notification_id: int) -> float | None:
        """See :meth:`Store.finish`."""
        stamp = self._now_iso()
        with self._transaction() as conn:
            return deliveries.finish(conn, stamp, notification_id)

    def postpone(self, notification_id: int, until: float) -> None:
        """See :meth:`Store.postpone`."""
        with self._transaction() as conn:
            deliveries.postpone(conn, self._now_iso(), notification_id, until)

    def complete(self, notification_id: int) -> None:
        """See :meth:`Store.complete`."""
        stamp = self._now_iso()
        with self._transaction() as conn:
            deliveries.complete(conn, stamp, notification_id)

    # --- retention ------------------------------------------------------------------------

    def prune(self, before: float, limit: int = 500) -> int:
        """See :meth:`Store.prune`.

        Times are compared as stored (ISO text, see :func:`.retention.cutoff`). A notification
        pruned no longer holds its idempotency key: the same alert sent again afterwards is
        stored as new (it is older than the retention, and Alertmanager does not resend that
        late).
        """
        with self._transaction() as conn:
            return retention.prune(conn, before, limit)

    def size_bytes(self) -> int:
        """See :meth:`Store.size_bytes` (the file and its ``-wal`` file)."""
        try:
            return retention.size_bytes(self.path)
        except OSError as exc:
            raise StoreError(f"cannot read the database size: {exc}") from exc

    # --- observation ----------------------------------------------------------------------

    def unsent(self, now: float) -> Unsent:
        """See :meth:`Store.unsent`."""
        with self._connect() as conn:
            return deliveries.unsent(conn, now)

    def counts(self) -> dict[str, int]:
        """See :meth:`Store.counts`."""
        with self._connect() as conn:
            return deliveries.counts(conn)

    # --- dead man's switch ----------------------------------------------------------------

    def lead(self, owner: str, ttl: float) -> bool:
        """See :meth:`Store.lead`: the ``leader`` row, taken when free, expired or ``owner``'s
        and renewed until the store's clock plus ``ttl``."""
        now = self._clock()
        with self._transaction() as conn:
            return leader.lead(conn, iso_utc(now), owner, now, ttl)

    def resign(self, owner: str) -> None:
        """See :meth:`Store.resign` (a database error is ignored: the lease then expires)."""
        with contextlib.suppress(StoreError), self._transaction() as conn:
            leader.resign(conn, self._now_iso(), owner)

    def deadman_state(self) -> DeadmanState:
        """See :meth:`Store.deadman_state`."""
        with self._connect() as conn:
            return deadman.read_state(conn)

    def deadman_transition(self, transition: DeadmanTransition) -> DeadmanOutcome:
        """See :meth:`Store.deadman_transition`."""
        with self._transaction() as conn:
            before = deadman.read_state(conn)
            after, synthetic = transition(before)
            stamp = self._now_iso()
            notification_id = None
            if synthetic is not None:
                notification_id = intake.insert_synthetic(conn, stamp, synthetic)
            if after != before:
                deadman.write_state(conn, stamp, after)
        return DeadmanOutcome(after, notification_id)
