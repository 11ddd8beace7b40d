"""Leadership of the dead man's switch on PostgreSQL: a session-level advisory lock held on a
dedicated connection (not the pool's: a pooled session is shared and reset).

``pg_try_advisory_lock(LEADER_LOCK)`` succeeds for one session of the database at a time; the
lock lasts until ``pg_advisory_unlock`` or the end of that session (PostgreSQL manual,
"Advisory Locks"). A crashed receiver's connection closes with its process, releasing the lock.
A receiver that hangs or is cut off is handled by the server: the connection's
``idle_session_timeout`` is the leader's ``ttl`` (it calls :meth:`Leadership.lead` at least every
``ttl / 3`` seconds, so a live leader is never idle that long), and TCP keepalives end the
session of a vanished host.
"""

from __future__ import annotations

import contextlib
import math
import threading

import psycopg
from psycopg.rows import TupleRow

from receiver.store.postgres.connection import ConnectionSettings

LEADER_LOCK = 0x6577_0000_0000_0002
"""Advisory lock key (bigint space) of the dead man's switch leader ("ew" + 2)."""


class Leadership:
    """Who, among the receivers on one database, raises the dead man's switch.

    One instance per store; thread-safe. Leadership belongs to one ``owner`` at a time per
    instance: another owner asking through the same instance is refused.
    """

    def __init__(self, settings: ConnectionSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._owner: str | None = None
        self._idle_ms: int | None = None

    def lead(self, owner: str, ttl: float) -> bool:
        """Take or keep the lock for ``owner``; see :meth:`receiver.store.Store.lead`.

        While held, checks that the session is alive (``SELECT 1``); when it broke, the lock
        went with it: a new session tries to take it again.

        Raises:
            psycopg.Error: the database cannot be reached (the caller is not the leader).
        """
        with self._lock:
            if self._owner is not None and self._owner != owner:
                return False
            if self._conn is not None:
                try:
                    self._set_idle_timeout(self._conn, ttl)
                    if self._owner == owner:
                        self._conn.execute("SELECT 1")
                        return True
                    return self._try_lock(self._conn, owner)
                except psycopg.Error:
                    self._drop()
            conn = psycopg.connect(autocommit=True, **self._settings.params)
            try:
                self._set_idle_timeout(conn, ttl)
                self._conn = conn
                return self._try_lock(conn, owner)
            except psycopg.Error:
                self._drop()
                raise

    def resign(self, owner: str) -> None:
        """Release the lock if ``owner`` holds it and close the session; never raises."""
        with self._lock:
            if self._owner != owner or self._conn is None:
                return
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK,))
            self._drop()

    def close(self) -> None:
        """Close the session (releasing the lock, if held)."""
        with self._lock:
            self._drop()

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the leadership session, ``None`` without one (tests)."""
        with self._lock:
            return None if self._conn is None else self._conn.info.backend_pid

    def _try_lock(self, conn: psycopg.Connection[TupleRow], owner: str) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
        held = bool(row and row[0])
        if held:
            self._owner = owner
        return held

    def _set_idle_timeout(self, conn: psycopg.Connection[TupleRow], ttl: float) -> None:
        if not math.isfinite(ttl) or ttl <= 0:
            return
        idle_ms = max(1000, math.ceil(ttl * 1000))
        if idle_ms != self._idle_ms or conn is not self._conn:
            conn.execute("SELECT set_config('idle_session_timeout', %s, false)", (str(idle_ms),))
            self._idle_ms = idle_ms

    def _drop(self) -> None:
        conn, self._conn, self._owner, self._idle_ms = self._conn, None, None, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
