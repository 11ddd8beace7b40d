"""Pages never wait for the LLM: the critical budget, and the update that follows a late diagnosis.

A *firing* notification on the ``critical`` route waits for its diagnosis (Prometheus context
and the LLM chain, :meth:`~receiver.diagnosis.engine.DiagnosisEngine.diagnose`) at most
``LLM_CRITICAL_BUDGET_SECONDS`` (default 2 s). If the diagnosis is not done by then, the page
goes out at once with the rules' diagnosis
(:meth:`~receiver.diagnosis.engine.DiagnosisEngine.rules_now`: no I/O, with the context only if
it was already fetched), and the diagnosis keeps running in the background, bounded by the
engine's own ``LLM_TIMEOUT_SECONDS``/``LLM_TOTAL_TIMEOUT_SECONDS``. Warning and info routes,
resolved notifications, and receivers without an LLM wait for the diagnosis as before.
While an earlier page's diagnosis is still running past its budget (the LLM is hung or slow
right now), a critical page does not wait at all: in an incident that pages several times,
only the first page pays the budget; waiting resumes once that diagnosis has ended. Nor does it
wait while the first LLM provider is known not to answer (``unreachable``: its last call or
probe timed out or could not connect, :mod:`receiver.diagnosis.reachability`), so with a hung
LLM no page pays the budget once the receiver has noticed.

When the late diagnosis comes:

1. it is stored as the notification's diagnosis (deliveries still to be made, e.g. retries,
   carry it);
2. if it is an LLM diagnosis (not the rules again) and the alert has not resolved meanwhile,
   every delivery already ``delivered`` gets an update through
   :meth:`~receiver.notifiers.base.Notifier.send_update`, using what was recorded of its first
   message (:class:`~receiver.notifiers.base.SentMessage`, kept durably in
   ``deliveries.message_ref``): Discord and Telegram edit the message, Slack with a bot token
   replies in its thread, Slack webhooks, LINE and the generic webhook send a follow-up naming
   it, JSONL appends an ``update`` record, PagerDuty and Apprise send nothing (see each module).

While the update runs, no round of the same alert (group key + fingerprint) starts, and it
starts only after the round that sent the page has ended, so every message sent with the rules'
diagnosis is known and a resolved message is never overtaken. Updates are paced like sends
(the notifier's ``min_send_interval``), retried up to :data:`UPDATE_ATTEMPTS` times on transient
errors (a 429's retry-after honoured up to the worker's cap), and counted as delivery results
``updated`` / ``update_failed`` of ``alert_receiver_deliveries_total``.

Durability: the page is never delayed or lost by any of this (it is stored and delivered as
every notification). The update is not durable: a crash or stop between the page and the
LLM's answer loses the update of the messages already delivered (their ids are stored, but
nothing records that an update is owed). A notification whose page was sent with the rules'
diagnosis keeps no stored diagnosis until the late one comes, so if it is still pending at a
restart (a delivery retrying), the next round diagnoses it again, and an LLM answer then
updates the messages delivered before the restart through their stored ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from receiver.diagnosis.schema import Diagnosis
from receiver.models import Alert
from receiver.notifiers.base import (
    Notification,
    Notifier,
    NotifyError,
    PermanentNotifyError,
    RateLimitedError,
    SentMessage,
    UpdateKind,
)
from receiver.store import Delivery, DeliveryState, PendingNotification, Store, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts per update of one message (transient errors only; a rejection is final).
UPDATE_ATTEMPTS = 3
#: Resolved incidents remembered (so a late diagnosis does not follow the resolved message).
RESOLVED_SIZE = 4096

AlertKey = tuple[str, str]
#: ``(name, notifier, call) -> call's result``: the worker's paced send (one notifier at a time).
SendPaced = Callable[[str, Notifier, Callable[[], Awaitable[T]]], Awaitable[T]]
#: ``(channel, notifier, result)``: count a delivery result.
Count = Callable[[str, str, str], None]


def notification_of(row: PendingNotification, alert: Alert, diagnosis: Diagnosis) -> Notification:
    """The :class:`Notification` every notifier renders, from a stored row and its alert."""
    return Notification(
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


class LateDiagnoses:
    """The critical budget and the updates of late diagnoses (see the module docstring).

    Args:
        store: the store.
        diagnose: the full diagnosis (``DiagnosisEngine.diagnose``).
        fallback: the bounded rules fast path (``DiagnosisEngine.rules_now``), or ``None``
            when no LLM is configured: then nothing here applies.
        budget: seconds a critical firing notification waits for ``diagnose`` (≥ 0), or
            ``None`` for no budget.
        route: the route the budget applies to (``critical``).
        notifiers_for: ``route -> {name: Notifier}`` (the worker's, names deduplicated).
        send: the worker's paced send.
        count: counts a delivery result.
        rounds_of: ``alert key -> tasks`` of the worker's rounds of that alert in flight.
        wake: asks the worker to poll (an alert's rounds may start again).
        max_retry_after: cap on a 429's retry-after wait, seconds.
        retry_base: first backoff between update attempts, seconds (doubles).
        sleep: sleep function (tests may replace it).
        unreachable: ``() -> bool``, True while the first LLM provider is known not to answer
            (``DiagnosisEngine.llm_unreachable``); then pages do not wait.
    """

    def __init__(
        self,
        store: Store,
        diagnose: Callable[[Alert], Awaitable[Diagnosis]],
        fallback: Callable[[Alert], Diagnosis] | None,
        budget: float | None,
        *,
        route: str,
        notifiers_for: Callable[[str], Mapping[str, Notifier]],
        send: SendPaced[UpdateKind],
        count: Count,
        rounds_of: Callable[[AlertKey], list[asyncio.Task[None]]],
        wake: Callable[[], None],
        max_retry_after: float,
        retry_base: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        unreachable: Callable[[], bool] | None = None,
    ) -> None:
        self._store = store
        self._unreachable = unreachable
        self._diagnose = diagnose
        self._fallback = fallback
        self._budget = None if budget is None else max(0.0, budget)
        self._route = route
        self._notifiers_for = notifiers_for
        self._send = send
        self._count = count
        self._rounds_of = rounds_of
        self._wake = wake
        self._max_retry_after = max_retry_after
        self._retry_base = max(0.01, retry_base)
        self._sleep = sleep
        self._tasks: dict[int, asyncio.Task[None]] = {}
        #: Diagnoses still running past their budget: while any is, pages do not wait.
        self._overdue: set[asyncio.Task[Diagnosis]] = set()
        self._locks: dict[AlertKey, tuple[asyncio.Lock, int]] = {}
        self._resolved: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        #: Alerts whose update is being sent: the worker starts no round of them meanwhile.
        self.held: set[AlertKey] = set()

    @property
    def pending(self) -> int:
        """Late diagnoses still awaited (or their updates being sent)."""
        return len(self._tasks)

    def applies(self, row: PendingNotification, alert: Alert) -> bool:
        """Whether ``row``'s diagnosis is bounded by the budget: a firing notification on the
        critical route, with an LLM configured."""
        return (
            self._fallback is not None
            and self._budget is not None
            and alert.status == "firing"
            and row.route == self._route
        )

    def note_resolved(self, row: PendingNotification, alert: Alert) -> None:
        """Remember that the incident of ``row`` (a resolved notification) has resolved."""
        if self._fallback is None:
            return
        self._resolved[(row.group_key, row.fingerprint, alert.starts_at)] = None
        while len(self._resolved) > RESOLVED_SIZE:
            self._resolved.popitem(last=False)

    def _rules(self, alert: Alert) -> Diagnosis:
        assert self._fallback is not None
        return self._fallback(alert)

    async def diagnose(self, row: PendingNotification, alert: Alert) -> tuple[Diagnosis, bool]:
        """The diagnosis to send ``row`` with, within the budget (call when :meth:`applies`).

        Returns:
            ``(diagnosis, final)``: ``final`` is False for the rules' diagnosis sent because the
            full one is late (it is then not to be stored: the late one will be).
        """
        if row.id in self._tasks:  # a later round (a retry) while its LLM still works
            return self._rules(alert), False
        task: asyncio.Task[Diagnosis] = asyncio.create_task(
            self._full(alert), name=f"diagnose-{row.id}"
        )
        overdue = bool(self._overdue)
        unreachable = self._unreachable is not None and self._unreachable()
        budget = 0.0 if overdue or unreachable else self._budget
        try:
            done, _ = await asyncio.wait({task}, timeout=budget)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if done:
            return task.result(), True
        provisional = self._rules(alert)
        if unreachable:
            log.info(
                "notification %d (%s): the LLM does not answer; paging at once with the rules'"
                " diagnosis, the LLM's follows as an update if it answers",
                row.id,
                alert.alertname[:100],
            )
        elif not overdue:
            log.info(
                "notification %d (%s): diagnosis not done within %.1fs; paging with the rules'"
                " diagnosis, the LLM's follows as an update",
                row.id,
                alert.alertname[:100],
                budget or 0.0,
            )
        else:
            log.info(
                "notification %d (%s): an earlier diagnosis is still running past its budget;"
                " paging at once with the rules' diagnosis, the LLM's follows as an update",
                row.id,
                alert.alertname[:100],
            )
        self._overdue.add(task)
        task.add_done_callback(self._overdue.discard)
        follow = self._follow(row, alert, task, provisional)
        self._tasks[row.id] = asyncio.create_task(follow, name=f"late-diagnosis-{row.id}")
        return provisional, False

    async def _full(self, alert: Alert) -> Diagnosis:
        return await self._diagnose(alert)

    async def stop(self, grace: float) -> None:
        """Give late diagnoses ``grace`` seconds, then cancel them (their updates are lost)."""
        tasks = list(self._tasks.values())
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if [t for t in tasks if t.cancelled()]:
            log.warning("stopped with late diagnoses pending: their updates are not sent")

    async def _hold(self, key: AlertKey) -> None:
        """Wait until no round of the alert ``key`` is in flight, then hold it (no await
        between the last check and :attr:`held`)."""
        while True:
            running = [t for t in self._rounds_of(key) if t is not asyncio.current_task()]
            if not running:
                break
            await asyncio.wait(running)
        self.held.add(key)

    async def _follow(
        self,
        row: PendingNotification,
        alert: Alert,
        task: asyncio.Task[Diagnosis],
        provisional: Diagnosis,
    ) -> None:
        try:
            try:
                late = await task
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception:
                log.exception("notification %d: the late diagnosis failed", row.id)
                return
            key = (row.group_key, row.fingerprint)
            lock, users = self._locks.get(key, (asyncio.Lock(), 0))
            self._locks[key] = (lock, users + 1)
            try:
                async with lock:
                    await self._hold(key)
                    try:
                        await self._apply(row, alert, late, provisional)
                    finally:
                        self.held.discard(key)
                        self._wake()
            finally:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
        except StoreError as exc:
            log.error("notification %d: cannot store the late diagnosis: %s", row.id, exc)
        finally:
            self._tasks.pop(row.id, None)

    async def _apply(
        self, row: PendingNotification, alert: Alert, late: Diagnosis, provisional: Diagnosis
    ) -> None:
        """Store the late diagnosis and update the messages already delivered."""
        await asyncio.to_thread(self._store.set_diagnosis, row.id, late.model_dump(mode="json"))
        if late.source != "llm" or provisional.source == "llm":
            log.info("notification %d: the late diagnosis is %s; no update", row.id, late.source)
            return
        if (row.group_key, row.fingerprint, alert.starts_at) in self._resolved:
            log.info("notification %d: resolved before the LLM answered; no update", row.id)
            return
        deliveries = await asyncio.to_thread(self._store.deliveries, row.id)
        notifiers = self._notifiers_for(row.route)
        notification = notification_of(row, alert, late)
        jobs = [
            self._update(notifiers[name], delivery, notification)
            for name, delivery in deliveries.items()
            if delivery.state == DeliveryState.DELIVERED and name in notifiers
        ]
        await asyncio.gather(*jobs)

    async def _update(self, notifier: Notifier, delivery: Delivery, n: Notification) -> None:
        """Send one update, retrying transient errors; log and count the outcome."""
        name, channel = delivery.notifier, notifier.channel
        sent = SentMessage.from_json(delivery.message_ref)
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            try:
                kind = await self._send(name, notifier, lambda: notifier.send_update(n, sent))
            except asyncio.CancelledError:
                raise
            except PermanentNotifyError as exc:
                log.warning("notification %d: %s refused the update: %s", n.id, name, exc)
                break
            except Exception as exc:
                error = str(exc) if isinstance(exc, NotifyError) else exc.__class__.__name__
                if not isinstance(exc, NotifyError):
                    log.exception("notification %d: notifier %s crashed on the update", n.id, name)
                    break
                if attempt == UPDATE_ATTEMPTS:
                    log.warning(
                        "notification %d: update to %s failed %d times, giving up: %s",
                        n.id,
                        name,
                        attempt,
                        error,
                    )
                    break
                delay = self._retry_base * 2.0 ** (attempt - 1)
                if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                    delay = min(exc.retry_after, self._max_retry_after)
                await self._sleep(delay)
                continue
            if kind == "unsupported":
                log.debug("notification %d: %s cannot be updated", n.id, name)
                return
            log.info("notification %d: %s %s with the LLM diagnosis", n.id, name, kind)
            self._count(channel, name, "updated")
            return
        self._count(channel, name, "update_failed")
