"""Retention: delete notifications finished longer ago than ``RECEIVER_RETENTION_DAYS``.

A background task prunes the store in small batches (:meth:`Store.prune`, one short
transaction each, a pause between them), so intake is never blocked for long, and records the
database's size. A pass runs shortly after start and then every tenth of the retention period
(at most every 10 minutes, at least every second). Each receiver sharing a database prunes; the
deletes are idempotent, so two passes at once only share the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from receiver.metrics import ReceiverMetrics
from receiver.store import Store, StoreError

log = logging.getLogger(__name__)

#: Rows of each kind deleted per transaction.
BATCH = 500
#: Pause between two batches (lets intake's transactions in between).
PAUSE_SECONDS = 0.05
#: First pass this long after start (the receiver settles first).
FIRST_PASS_SECONDS = 5.0


class Retention:
    """Periodic pruning of finished notifications.

    Args:
        store: the store.
        days: the retention period in days (fractions allowed).
        metrics: receiver metrics (rows pruned, database size), optional.
        clock: Unix-seconds clock.
        batch: rows of each kind deleted per transaction.
        pause: seconds between two batches.
    """

    def __init__(
        self,
        store: Store,
        days: float,
        *,
        metrics: ReceiverMetrics | None = None,
        clock: Callable[[], float] = time.time,
        batch: int = BATCH,
        pause: float = PAUSE_SECONDS,
    ) -> None:
        self._store = store
        self.period = days * 86400.0
        self._metrics = metrics
        self._clock = clock
        self._batch = max(1, batch)
        self._pause = max(0.0, pause)
        self._task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        """Seconds between two passes: a tenth of the period, between 1 s and 10 minutes."""
        return min(600.0, max(1.0, self.period / 10))

    async def prune_once(self) -> int:
        """Prune everything older than the period, batch after batch; return rows deleted.

        Raises:
            StoreError: a batch failed (the rows deleted before it stay deleted).
        """
        total = 0
        while True:
            cutoff = self._clock() - self.period
            deleted = await asyncio.to_thread(self._store.prune, cutoff, self._batch)
            total += deleted
            if self._metrics is not None and deleted:
                self._metrics.pruned.inc(deleted)
            if deleted == 0:
                break
            await asyncio.sleep(self._pause)
        if self._metrics is not None:
            self._metrics.database_size.set(await asyncio.to_thread(self._store.size_bytes))
        return total

    async def _run(self) -> None:
        await asyncio.sleep(min(FIRST_PASS_SECONDS, self.interval))
        while True:
            try:
                deleted = await self.prune_once()
                if deleted:
                    log.info(
                        "retention: deleted %d rows finished more than %.6g days ago",
                        deleted,
                        self.period / 86400,
                    )
            except StoreError as exc:
                log.error("retention: cannot prune (will retry): %s", exc)
            except Exception:  # never let the loop die
                log.exception("retention: unexpected error")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Start the periodic passes."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        """Stop the periodic passes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
