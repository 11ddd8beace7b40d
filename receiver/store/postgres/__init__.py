"""The PostgreSQL backend of the store: connections and secrets (:mod:`.connection`), versioned
migrations (:mod:`.migrations`), intake (:mod:`.intake`), deliveries (:mod:`.deliveries`),
leases (:mod:`.leases`), retention (:mod:`.retention`), the dead man's switch (:mod:`.deadman`)
and its leadership (:mod:`.leader`), and the :class:`PostgresStore` that runs them in
transactions (:mod:`.store`)."""

from receiver.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
