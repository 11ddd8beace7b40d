"""Asynchronous intake in front of :meth:`Store.ingest_many`: group commit."""

from __future__ import annotations

import asyncio
from typing import Any

from receiver.models import AlertmanagerWebhook
from receiver.store.interface import Store, StoreError
from receiver.store.records import IngestItem, IngestResult


class IngestQueue:
    """Asynchronous intake in front of :meth:`Store.ingest_many`: group commit.

    A webhook is stored at once when no commit is in progress; webhooks arriving while one is
    form the next transaction (at most ``max_batch`` per transaction), so under load one
    ``fsync`` serves many webhooks instead of each waiting its turn for its own. Each caller
    gets its result only after the transaction holding its webhook has committed, and a failed
    transaction fails every webhook in it (none of them is stored). The blocking store call
    runs in a worker thread (``asyncio.to_thread``), never on the event loop.

    Args:
        store: the store to write to.
        max_batch: most webhooks committed in one transaction.
    """

    def __init__(self, store: Store, max_batch: int = 128) -> None:
        self._store = store
        self._max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[IngestItem, asyncio.Future[IngestResult]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ingest(
        self, webhook: AlertmanagerWebhook, route: str, raw: str | dict[str, Any] | None = None
    ) -> IngestResult:
        """Store a webhook as :meth:`Store.ingest_many` does; return once it is committed.

        Args:
            webhook: the validated webhook.
            route: the route it came in on.
            raw: the request body as received (see :data:`receiver.store.IngestItem`).

        Raises:
            StoreError: the transaction holding it failed; nothing of it was stored.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (an app's lifespan may run more than once)
            self._loop, self._pending, self._flusher = loop, [], None
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._pending.append(((webhook, route, raw), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await asyncio.to_thread(
                    self._store.ingest_many, [item for item, _ in batch]
                )
            except asyncio.CancelledError:
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending = []
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        error = StoreError(str(exc)) if isinstance(exc, StoreError) else exc
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # the caller may have gone (cancelled)
                    future.set_result(result)
