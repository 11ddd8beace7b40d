"""Per-thread SQLite connections of one :class:`~receiver.store.SQLiteStore`, which
:meth:`Connections.close_all` can close while other threads are using the store.

Each thread keeps its own connection (opened on first use: opening one costs more than most
statements) and uses it only between :meth:`Connections.checkout` and
:meth:`Connections.checkin`. :meth:`Connections.close_all` closes the idle ones at once and
marks the busy ones, which their own thread closes at check-in: a connection is never closed
while a statement runs on it (Python's ``sqlite3`` may crash if it is).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable


class Connections:
    """The connections of one store.

    Args:
        open_: opens and sets up a new connection (raises ``sqlite3.Error`` or ``OSError``).
    """

    def __init__(self, open_: Callable[[], sqlite3.Connection]) -> None:
        self._open = open_
        self._local = threading.local()  # .conn: this thread's connection
        self._lock = threading.Lock()
        self._live: set[sqlite3.Connection] = set()  # open and not closed by close_all
        self._busy: set[sqlite3.Connection] = set()  # checked out

    def current(self) -> sqlite3.Connection | None:
        """This thread's connection, if it has one (tests look at it)."""
        return getattr(self._local, "conn", None)

    def checkout(self) -> sqlite3.Connection:
        """This thread's connection, opened if it has none (or it was closed by
        :meth:`close_all`), marked busy until :meth:`checkin`.

        Raises:
            sqlite3.Error, OSError: a new connection cannot be opened.
        """
        conn = self.current()
        with self._lock:
            if conn is not None and conn in self._live:
                self._busy.add(conn)
                return conn
        self._local.conn = None
        conn = self._open()  # outside the lock: it may wait for the database's lock
        with self._lock:
            self._live.add(conn)
            self._busy.add(conn)
        self._local.conn = conn
        return conn

    def checkin(self, conn: sqlite3.Connection) -> None:
        """Done with ``conn`` for now; closes it if :meth:`close_all` ran meanwhile."""
        with self._lock:
            self._busy.discard(conn)
            if conn in self._live:
                return
        self._close(conn)

    def discard(self, conn: sqlite3.Connection) -> None:
        """Close this thread's ``conn`` (after an error): the next checkout opens a new one."""
        with self._lock:
            self._busy.discard(conn)
            self._live.discard(conn)
        self._close(conn)

    def close_all(self) -> None:
        """Close every idle connection now, and every busy one when its thread checks it in;
        the next checkout of each thread opens a new one."""
        with self._lock:
            idle = self._live - self._busy
            self._live = set()
            for conn in idle:  # under the lock: no thread can check one out meanwhile
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def _close(self, conn: sqlite3.Connection) -> None:
        if self.current() is conn:
            self._local.conn = None
        with contextlib.suppress(sqlite3.Error):
            conn.close()
