"""The SQLite backend of the store, the embedded single-node one: schema and migrations
(:mod:`.schema`), intake (:mod:`.intake`), deliveries (:mod:`.deliveries`), work leases
(:mod:`.leases`), retention (:mod:`.retention`), the dead man's switch (:mod:`.deadman`) and its
leader (:mod:`.leader`), per-thread connections (:mod:`.connections`) and the
:class:`SQLiteStore` that runs them in transactions (:mod:`.store`)."""

from receiver.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
