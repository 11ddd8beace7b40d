"""Which store a receiver runs on: PostgreSQL when a database URL is configured, else SQLite."""

from __future__ import annotations

import time
from collections.abc import Callable

from receiver.settings import Settings
from receiver.store.interface import Store
from receiver.store.sqlite import SQLiteStore


def open_store(settings: Settings, clock: Callable[[], float] = time.time) -> Store:
    """The store the settings select, not yet initialised (call :meth:`Store.init`).

    ``RECEIVER_DATABASE_URL`` (or its ``_FILE``) selects
    :class:`~receiver.store.postgres.PostgresStore`, waiting at most
    ``RECEIVER_DB_TIMEOUT_SECONDS`` for a connection; otherwise
    :class:`~receiver.store.SQLiteStore` at ``RECEIVER_DB_PATH``.

    Args:
        settings: the receiver's settings.
        clock: Unix-seconds clock for the store's timestamps.

    Returns:
        The store; nothing is opened until its first call.
    """
    url = settings.database_url
    if url is not None:
        from receiver.store.postgres import PostgresStore  # psycopg loads only when used

        return PostgresStore(url, clock=clock, timeout=settings.receiver_db_timeout_seconds)
    return SQLiteStore(settings.receiver_db_path, clock=clock)
