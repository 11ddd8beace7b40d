"""Background worker: diagnose stored notifications and fan them out to every notifier.

The worker is an asyncio task started in the app lifespan. It polls the store for ``pending``
notifications (and is woken immediately by intake), processes at most ``concurrency`` at a
time, and keeps notifications of the same alert (group key + fingerprint) in arrival order, so
a resolved message never overtakes its firing message.

Per notification: reuse the stored diagnosis or make one (and store it), then deliver to each
channel whose delivery row is not yet ``delivered``/``failed``. A failing channel is retried up to
``max_attempts`` times with exponential backoff; an HTTP 429 waits for the target's retry-after
(capped). Progress is written to the ``deliveries`` table after each attempt, so a restart resumes
exactly where the previous process stopped. Nothing a notifier or the LLM does can crash the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from pydantic import ValidationError

from receiver.diagnosis.engine import DiagnosisEngine
from receiver.diagnosis.schema import Diagnosis
from receiver.metrics import ReceiverMetrics
from receiver.models import Alert
from receiver.notifiers.base import (
    Notification,
    Notifier,
    NotifyError,
    PermanentNotifyError,
    RateLimitedError,
)
from receiver.store import PendingNotification, Store, StoreError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class Worker:
    """Processes pending notifications in the background.

    Args:
        store: the SQLite store.
        engine: diagnosis engine.
        notifiers: configured notifiers (may be empty: notifications are then only diagnosed).
        concurrency: notifications processed at once (≥1).
        max_attempts: attempts per channel before the delivery is marked ``failed``.
        retry_base_seconds: first backoff delay; doubles per attempt (±10 % jitter).
        max_retry_after_seconds: cap on a 429 retry-after wait.
        poll_interval: seconds between store polls when nothing wakes the worker.
        min_send_interval: ``{channel: seconds}`` minimum spacing between sends to one channel
            (Slack allows about one message per second per channel).
        sleep: sleep function (tests may replace it).
    """

    def __init__(
        self,
        store: Store,
        engine: DiagnosisEngine,
        notifiers: Sequence[Notifier],
        *,
        concurrency: int = 4,
        max_attempts: int = 4,
        retry_base_seconds: float = 1.0,
        max_retry_after_seconds: float = 60.0,
        poll_interval: float = 5.0,
        min_send_interval: dict[str, float] | None = None,
        sleep: Sleep = asyncio.sleep,
        metrics: ReceiverMetrics | None = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._notifiers = list(notifiers)
        self._concurrency = max(1, concurrency)
        self._max_attempts = max(1, max_attempts)
        self._retry_base = retry_base_seconds
        self._max_retry_after = max_retry_after_seconds
        self._poll_interval = poll_interval
        self._min_interval = dict(min_send_interval or {})
        self._metrics = metrics
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._inflight: dict[int, tuple[asyncio.Task[None], tuple[str, str]]] = {}
        self._channel_locks: dict[str, asyncio.Lock] = {}
        self._last_send: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        """Start the background loop (resumes every pending notification in the store)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="receiver-worker")

    def wake(self) -> None:
        """Ask the loop to poll the store now (called after intake stored something)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop and cancel in-flight work; unfinished rows stay ``pending``."""
        self._stopping = True
        self._wake.set()
        tasks = [t for t, _ in self._inflight.values()]
        if self._task is not None:
            tasks.append(self._task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._schedule()
            except Exception:  # keep the loop alive whatever happens
                log.exception("worker loop error")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)

    async def _schedule(self) -> None:
        free = self._concurrency - len(self._inflight)
        if free <= 0:
            return
        try:
            rows = await asyncio.to_thread(self._store.pending, 500)
        except StoreError as exc:
            log.error("cannot read pending notifications: %s", exc)
            return
        busy = {key for _, key in self._inflight.values()}
        for row in rows:
            if free <= 0:
                break
            key = (row.group_key, str(row.alert.get("fingerprint", "")))
            if row.id in self._inflight or key in busy:
                busy.add(key)  # later rows of the same alert wait for this one
                continue
            busy.add(key)
            task = asyncio.create_task(self._process_guarded(row), name=f"notify-{row.id}")
            self._inflight[row.id] = (task, key)
            free -= 1

    async def _process_guarded(self, row: PendingNotification) -> None:
        try:
            await self._process(row)
            self._wake.set()  # a slot is free and a successor may be waiting
        except asyncio.CancelledError:
            raise
        except StoreError as exc:
            log.error("notification %d: storage error, will retry: %s", row.id, exc)
        except Exception:
            log.exception("notification %d: unexpected processing error", row.id)
        finally:
            self._inflight.pop(row.id, None)

    async def _diagnosis(self, row: PendingNotification, alert: Alert) -> Diagnosis:
        if row.diagnosis is not None:
            try:
                return Diagnosis.model_validate(row.diagnosis)
            except ValidationError:
                log.warning("notification %d: stored diagnosis invalid, redoing it", row.id)
        diagnosis = await self._engine.diagnose(alert)
        await asyncio.to_thread(
            self._store.save_diagnosis, row.id, diagnosis.model_dump(mode="json")
        )
        return diagnosis

    async def _process(self, row: PendingNotification) -> None:
        try:
            alert = Alert.model_validate(row.alert)
        except ValidationError:
            log.error("notification %d: stored alert is unreadable; marking done", row.id)
            await asyncio.to_thread(self._store.complete, row.id)
            return
        diagnosis = await self._diagnosis(row, alert)
        notification = Notification(
            id=row.id,
            route=row.route,
            receiver=row.receiver,
            group_key=row.group_key,
            external_url=row.external_url,
            status=alert.status,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=alert.starts_at,
            ends_at=alert.ends_at,
            generator_url=alert.generator_url,
            fingerprint=alert.fingerprint,
            diagnosis=diagnosis,
        )
        states = await asyncio.to_thread(self._store.delivery_states, row.id)
        todo = [n for n in self._notifiers if states.get(n.channel) not in ("delivered", "failed")]
        results = await asyncio.gather(
            *(self._deliver(n, notification) for n in todo), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result  # e.g. StoreError: the row stays pending and is retried later
        await asyncio.to_thread(self._store.complete, row.id)
        log.info(
            "notification %d (%s %s) processed: diagnosis source=%s, channels=%s",
            row.id,
            alert.status,
            alert.alertname[:100],
            diagnosis.source,
            ",".join(n.channel for n in todo) or "-",
        )

    def _backoff(self, attempt: int) -> float:
        delay: float = self._retry_base * 2.0 ** (attempt - 1)
        return delay * random.uniform(0.9, 1.1)

    async def _send_spaced(self, notifier: Notifier, notification: Notification) -> None:
        interval = self._min_interval.get(notifier.channel, 0.0)
        if interval <= 0:
            await notifier.send(notification)
            return
        lock = self._channel_locks.setdefault(notifier.channel, asyncio.Lock())
        async with lock:
            last = self._last_send.get(notifier.channel)
            if last is not None:
                wait = last + interval - time.monotonic()
                if wait > 0:
                    await self._sleep(wait)
            try:
                await notifier.send(notification)
            finally:
                self._last_send[notifier.channel] = time.monotonic()

    async def _deliver(self, notifier: Notifier, notification: Notification) -> None:
        channel = notifier.channel
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._send_spaced(notifier, notification)
            except asyncio.CancelledError:
                raise
            except PermanentNotifyError as exc:
                log.warning(
                    "notification %d: %s rejected the message, not retrying: %s",
                    notification.id,
                    channel,
                    exc,
                )
                await asyncio.to_thread(
                    self._store.record_delivery,
                    notification.id,
                    channel,
                    "failed",
                    attempt,
                    str(exc),
                )
                self._count(channel, "failed")
                return
            except Exception as exc:
                error = str(exc) if isinstance(exc, NotifyError) else exc.__class__.__name__
                if not isinstance(exc, NotifyError):
                    log.exception("notification %d: %s notifier crashed", notification.id, channel)
                if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                    delay = min(exc.retry_after, self._max_retry_after)
                else:
                    delay = self._backoff(attempt)
                final = attempt >= self._max_attempts
                log.warning(
                    "notification %d: delivery to %s failed (attempt %d/%d)%s: %s",
                    notification.id,
                    channel,
                    attempt,
                    self._max_attempts,
                    "; giving up" if final else f"; retrying in {delay:.1f}s",
                    error,
                )
                await asyncio.to_thread(
                    self._store.record_delivery,
                    notification.id,
                    channel,
                    "failed" if final else "pending",
                    attempt,
                    error[:500],
                )
                self._count(channel, "failed" if final else "retried")
                if final:
                    return
                await self._sleep(delay)
                continue
            await asyncio.to_thread(
                self._store.record_delivery, notification.id, channel, "delivered", attempt, None
            )
            self._count(channel, "delivered")
            return

    def _count(self, channel: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.deliveries.labels(channel, result).inc()
