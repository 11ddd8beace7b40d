"""The SQLite backend of the store: schema and migrations (:mod:`.schema`), intake
(:mod:`.intake`), deliveries (:mod:`.deliveries`), the dead man's switch (:mod:`.deadman`) and
the :class:`SQLiteStore` that runs them in transactions (:mod:`.store`)."""

from receiver.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
