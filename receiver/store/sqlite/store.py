"""The SQLite backend: :class:`SQLiteStore`.

The database runs in WAL mode with ``synchronous=FULL``: a webhook is on disk before the HTTP
answer. Methods are synchronous and safe to call from worker threads (``asyncio.to_thread``):
each thread keeps its own connection (opened on first use, replaced after an error), and write
transactions of one process queue on a lock instead of in SQLite's busy handler (which sleeps
1-100 ms between retries). Every SQLite or filesystem failure is raised as
:class:`~receiver.store.StoreError`. One receiver process per database file.
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
    DeliveryState,
    IngestItem,
    IngestResult,
    PendingNotification,
    RoundStart,
    Unsent,
)
from receiver.store.sqlite import deadman, deliveries, intake
from receiver.store.sqlite.schema import init_schema


class SQLiteStore(Store):
    """SQLite store at ``path`` (parent directories are created).

    Args:
        path: database file.
        clock: Unix-seconds clock for timestamps (tests may inject one).
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._ready = False
        self._local = threading.local()  # .conn: this thread's connection
        self._write_lock = threading.Lock()

    def _now_iso(self) -> str:
        return iso_utc(self._clock())

    # --- connections and transactions ------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
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
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._open()
                self._local.conn = conn
            yield conn
        except (sqlite3.Error, OSError) as exc:
            self._rollback(conn)
            self._local.conn = None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            raise StoreError(f"database error: {exc}") from exc
        except BaseException:
            self._rollback(conn)
            raise

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
        """See :meth:`Store.init` (WAL mode; a version-1 database is migrated in place)."""
        with self._connect():
            pass

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
        """See :meth:`Store.due`."""
        with self._connect() as conn:
            return deliveries.due(conn, now, limit)

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
            )

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
