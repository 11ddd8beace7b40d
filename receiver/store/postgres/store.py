"""The PostgreSQL backend: :class:`PostgresStore`, for several receivers on one database.

Connections come from a psycopg 3 pool (``psycopg_pool.ConnectionPool``, opened on first use):
each method is one transaction on one pooled connection, committed before it returns, with
``synchronous_commit=on`` (a webhook is in the server's flushed WAL before the HTTP answer).
Every statement and lock wait is bounded (``statement_timeout``/``lock_timeout``, see
:mod:`.connection`), a connection is awaited at most ``timeout`` seconds, and a connection is
checked before use, so while the server is down every call fails with
:class:`~receiver.store.StoreError` within about ``timeout`` seconds, and works again once it is
back, without reopening the store. Messages never contain the URL or the password.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import SecretStr

from receiver.store.interface import Store, StoreError
from receiver.store.postgres import deadman, deliveries, intake, leases, retention
from receiver.store.postgres.connection import (
    ConnectionSettings,
    RecordingConnection,
    recording_connection_class,
)
from receiver.store.postgres.leader import Leadership
from receiver.store.postgres.migrations import SchemaTooNewError, migrate
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
from receiver.store.sqlite.intake import serialise

Connection = psycopg.Connection[TupleRow]

_MIN_TS = -62_135_596_800.0  # 0001-01-01T00:00:00Z
_MAX_TS = 253_402_300_799.0  # 9999-12-31T23:59:59Z


def _stamp(ts: float) -> datetime:
    """Unix seconds as an aware UTC ``datetime`` (clamped to ``datetime``'s range)."""
    return datetime.fromtimestamp(min(max(ts, _MIN_TS), _MAX_TS), UTC)


class PostgresStore(Store):
    """PostgreSQL store at ``url``.

    Args:
        url: ``postgresql://user:password@host:port/dbname`` (libpq URI; query parameters such
            as ``sslmode`` are passed on). A secret: kept private, never logged or shown.
        clock: Unix-seconds clock for times of record (tests may inject one).
        timeout: seconds to wait for a pooled connection (and for a new one to connect):
            the longest a call waits while the database is unreachable.
        min_size, max_size: connections the pool keeps open / may open.

    Raises:
        StoreError: ``url`` is not a PostgreSQL URL (the message does not repeat it).
    """

    backend = "postgresql"

    def __init__(
        self,
        url: str | SecretStr,
        clock: Callable[[], float] = time.time,
        *,
        timeout: float = 3.0,
        min_size: int = 1,
        max_size: int = 8,
    ) -> None:
        secret = url.get_secret_value() if isinstance(url, SecretStr) else url
        try:
            self._settings = ConnectionSettings(secret, timeout)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        self._clock = clock
        self._timeout = timeout
        self._min_size = min_size
        self._max_size = max(max_size, min_size, 1)
        self._pool: ConnectionPool[RecordingConnection] | None = None
        self._connection_class = recording_connection_class()
        self._pool_lock = threading.Lock()
        self._ready = False
        self._leadership = Leadership(self._settings)

    def _now(self) -> datetime:
        return _stamp(self._clock())

    def _error(self, exc: BaseException) -> StoreError:
        why = self._connection_class.last_failure if isinstance(exc, PoolTimeout) else None
        return StoreError(f"database error: {self._settings.error_message(exc, why)}")

    # --- connections and transactions ------------------------------------------------------

    def _get_pool(self) -> ConnectionPool[RecordingConnection]:
        with self._pool_lock:
            if self._pool is None:
                pool = ConnectionPool(
                    connection_class=self._connection_class,
                    kwargs=self._settings.params,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    timeout=self._timeout,
                    # An empty query before handing out a connection (one round trip, no
                    # measurable cost beside the commit's flush): connections broken by a
                    # server restart are replaced, not failed on.
                    check=ConnectionPool.check_connection,
                    # The pool retries a failed connection with a doubling delay; giving up
                    # soon lets the next call start again at once, so calls work again within
                    # about ``timeout`` seconds once the server is back, however long it was
                    # down (the default, 300 s, would leave delays of a minute).
                    reconnect_timeout=max(5.0, 2 * self._timeout),
                    name="receiver-store",
                    open=False,
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    @contextmanager
    def _transaction(self, *, migrate_first: bool = True) -> Iterator[Connection]:
        """One transaction on a pooled connection: committed when the block ends, rolled back
        on any exception; driver and pool errors are raised as :class:`StoreError`."""
        if migrate_first and not self._ready:
            self.init()
        try:
            with self._get_pool().connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:  # PoolTimeout and PoolClosed included
            raise self._error(exc) from None

    # --- lifecycle ------------------------------------------------------------------------

    def init(self) -> None:
        """See :meth:`Store.init`: applies the missing migrations (:mod:`.migrations`) in one
        transaction under an advisory lock, so receivers started together migrate once."""
        try:
            with self._transaction(migrate_first=False) as conn:
                migrate(conn)
        except SchemaTooNewError as exc:
            raise StoreError(str(exc)) from None
        self._ready = True

    def close(self) -> None:
        """See :meth:`Store.close`: closes the pool and the leadership session (releasing the
        lead); the next call opens a new pool."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=5.0)
        self._leadership.close()

    def describe(self) -> str:
        """See :meth:`Store.describe`: ``postgresql://host:port/dbname``."""
        return self._settings.describe()

    def check_writable(self) -> None:
        """See :meth:`Store.check_writable` (rewrites the ``health`` row)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO health (id, checked_at) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (self._now(),),
            )

    # --- intake ---------------------------------------------------------------------------

    def ingest_many(self, items: Sequence[IngestItem]) -> list[IngestResult]:
        """See :meth:`Store.ingest_many` (one commit for the lot; statements pipelined)."""
        rows = serialise(items)
        now = self._now()
        with self._transaction() as conn:
            return intake.insert_webhooks(conn, now, rows)

    # --- worker ---------------------------------------------------------------------------

    def due(self, now: float, limit: int = 100) -> list[PendingNotification]:
        """See :meth:`Store.due` (leases are ignored: leased notifications are listed too)."""
        with self._transaction() as conn:
            return deliveries.due(conn, now, limit)

    def claim(
        self, now: float, owner: str, lease_seconds: float, limit: int = 100
    ) -> list[PendingNotification]:
        """See :meth:`Store.claim` (``FOR UPDATE SKIP LOCKED``, see :mod:`.leases`)."""
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
        with self._transaction() as conn:
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
        stamp = self._now()
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
        stamp = self._now()
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
        with self._transaction() as conn:
            return deliveries.deliveries(conn, notification_id)

    def set_diagnosis(self, notification_id: int, diagnosis: dict[str, Any]) -> None:
        """See :meth:`Store.set_diagnosis`."""
        stamp = self._now()
        with self._transaction() as conn:
            deliveries.set_diagnosis(conn, stamp, notification_id, diagnosis)

    def finish(self, notification_id: int) -> float | None:
        """See :meth:`Store.finish`."""
        stamp = self._now()
        with self._transaction() as conn:
            return deliveries.finish(conn, stamp, notification_id)

    def postpone(self, notification_id: int, until: float) -> None:
        """See :meth:`Store.postpone`."""
        stamp = self._now()
        with self._transaction() as conn:
            deliveries.postpone(conn, stamp, notification_id, until)

    def complete(self, notification_id: int) -> None:
        """See :meth:`Store.complete`."""
        stamp = self._now()
        with self._transaction() as conn:
            deliveries.complete(conn, stamp, notification_id)

    # --- retention ------------------------------------------------------------------------

    def prune(self, before: float, limit: int = 500) -> int:
        """See :meth:`Store.prune` (rows picked with ``FOR UPDATE SKIP LOCKED``: never waits
        on a worker or another pruner). A pruned notification no longer holds its idempotency
        key, as on SQLite."""
        cutoff: datetime | float = before
        if math.isfinite(before) and _MIN_TS <= before <= _MAX_TS:
            cutoff = _stamp(before)
        elif math.isnan(before):
            cutoff = -math.inf
        with self._transaction() as conn:
            return retention.prune(conn, cutoff, limit)

    def size_bytes(self) -> int:
        """See :meth:`Store.size_bytes` (``pg_database_size(current_database())``)."""
        with self._transaction() as conn:
            return retention.size_bytes(conn)

    # --- observation ----------------------------------------------------------------------

    def unsent(self, now: float) -> Unsent:
        """See :meth:`Store.unsent`."""
        with self._transaction() as conn:
            return deliveries.unsent(conn, now)

    def counts(self) -> dict[str, int]:
        """See :meth:`Store.counts`."""
        with self._transaction() as conn:
            return deliveries.counts(conn)

    # --- dead man's switch ----------------------------------------------------------------

    def lead(self, owner: str, ttl: float) -> bool:
        """See :meth:`Store.lead`: a session advisory lock on a dedicated connection
        (:mod:`.leader`); ``ttl`` bounds how long a hung leader keeps it
        (``idle_session_timeout``)."""
        try:
            return self._leadership.lead(owner, ttl)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def resign(self, owner: str) -> None:
        """See :meth:`Store.resign` (unlocks and closes the leadership session)."""
        self._leadership.resign(owner)

    def deadman_state(self) -> DeadmanState:
        """See :meth:`Store.deadman_state`."""
        with self._transaction() as conn:
            return deadman.read_state(conn)

    def deadman_transition(self, transition: DeadmanTransition) -> DeadmanOutcome:
        """See :meth:`Store.deadman_transition` (the ``deadman`` row is locked ``FOR UPDATE``
        first, so two receivers' transitions run one after the other)."""
        with self._transaction() as conn:
            before = deadman.read_state(conn, for_update=True)
            after, synthetic = transition(before)
            stamp = self._now()
            notification_id = None
            if synthetic is not None:
                notification_id = intake.insert_synthetic(conn, stamp, synthetic)
            if after != before:
                deadman.write_state(conn, stamp, after)
        return DeadmanOutcome(after, notification_id)
