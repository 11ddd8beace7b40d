"""Background worker: diagnose stored notifications and deliver them to their route's notifiers.

The worker is an asyncio task started in the app lifespan. It claims ``pending`` notifications
that are due (and is woken immediately by intake and by the dead man's switch), processes at
most ``concurrency`` at a time, and never processes two notifications of the same alert (group
key + fingerprint) at once.

Several receivers may share one database (PostgreSQL): each notification is leased to the
receiver that claimed it (:meth:`Store.claim`, ``lease_seconds``), the lease is renewed every
third of its length while the work goes on and ends when the round is finished. A receiver that
dies (``kill -9``, a lost host) stops renewing: once its leases expire, any other receiver
claims the work and carries on from the delivery states in the database.

Per notification: reuse the stored diagnosis or make one (and store it), create one delivery
row per notifier of its route (``notifiers_for(route)``), then attempt each due delivery:

* a delivery is marked ``sending`` *before* the notifier is called and ``delivered`` after, so
  a crash in between is detected on restart: a notifier that can tell whether the message got
  through (:meth:`~receiver.notifiers.base.Notifier.delivered_before`, e.g. the JSONL file) is
  asked, otherwise the message is sent again (at-least-once; counted as ``uncertain``);
* a failure schedules the next attempt in the database (exponential backoff from
  ``retry_base_seconds``, capped at ``retry_max_seconds``; a 429's retry-after is honoured up to
  ``max_retry_after_seconds`` and pauses that notifier for every notification) until
  ``max_age_seconds`` after the alert was stored (or ``max_attempts``), when it is dropped with
  a log line and a metric; a rejection (4xx other than 429) is final at once;
* per notifier, a later notification of an alert (e.g. resolved) waits until the earlier ones
  (firing) are final for that notifier, so a resolved message never overtakes its firing one;
* delivery state is kept per notifier instance (its ``name``, else its ``channel``), so each
  notifier gets each notification once across crashes, restarts and duplicate webhooks;
* what identifies each delivered message (its time, the platform's message id) is stored with
  the delivery, for a later update.

Pages never wait for the LLM: a firing notification on the ``critical`` route waits for its
diagnosis at most ``critical_budget_seconds`` and then goes out with the rules' diagnosis; the
LLM's late answer follows as an update of the messages (:mod:`receiver.updates`).

Nothing a notifier or the diagnosis does can crash the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError

from receiver.diagnosis.schema import Diagnosis
from receiver.logs import SummarizedLog
from receiver.metrics import ReceiverMetrics
from receiver.models import Alert
from receiver.notifiers.base import (
    MessageIds,
    Notification,
    Notifier,
    NotifyError,
    PermanentNotifyError,
    RateLimitedError,
    SentMessage,
)
from receiver.pacing import Pacer
from receiver.routing import CRITICAL_ROUTE
from receiver.store import (
    FINAL_STATES,
    Delivery,
    DeliveryState,
    PendingNotification,
    Store,
    StoreError,
)
from receiver.updates import LateDiagnoses, notification_of

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
#: The routing seam: the notifiers a notification on ``route`` goes to.
NotifiersFor = Callable[[str], Sequence[Notifier]]
#: The diagnosis seam: never raises (falls back to rules).
Diagnose = Callable[[Alert], Awaitable[Diagnosis]]
#: The bounded rules fast path (``DiagnosisEngine.rules_now``): no I/O, never raises.
RulesNow = Callable[[Alert], Diagnosis]

#: Earliest re-look at a delivery waiting for an earlier one of the same alert.
_DEFER_MIN = 0.05
#: Due rows read per free slot in a scheduling round (rows of an alert already in flight are
#: skipped, so a few per slot): reading hundreds to start a handful cost more than the work.
_DUE_ROWS_PER_SLOT = 16
#: Due rows read when the first ones cannot fill the free slots (they wait for ones in flight).
_DUE_ROWS_MAX = 500


class Worker:
    """Processes pending notifications in the background.

    Args:
        store: the store.
        diagnose: ``async diagnose(alert) -> Diagnosis`` (e.g. ``DiagnosisEngine.diagnose``).
        notifiers_for: ``notifiers_for(route) -> [Notifier]``; may return an empty list
            (notifications are then only diagnosed).
        concurrency: notifications processed at once (≥1).
        max_attempts: attempts per notifier before a delivery is dropped; 0 = no limit.
        retry_base_seconds: first backoff delay; doubles per attempt (±10 % jitter).
        retry_max_seconds: longest backoff.
        max_retry_after_seconds: cap on a 429 retry-after wait.
        max_age_seconds: a delivery still failing this long after the alert was stored is
            dropped.
        poll_interval: longest sleep between two store polls.
        min_send_interval: ``{notifier name or channel: seconds}`` minimum spacing between two
            sends to one notifier, overriding the notifier's own ``min_send_interval`` (Slack
            allows about one message per second per channel).
        owner: this receiver's identity as lease owner (unique per process).
        lease_seconds: how long a claimed notification stays this worker's without renewal.
        metrics: receiver metrics, optional.
        clock: Unix-seconds clock (tests may inject one; the store should share it).
        sleep: sleep function (tests may replace it).
        fallback: the rules fast path (``DiagnosisEngine.rules_now``) when an LLM is configured;
            ``None`` (no LLM) keeps every notification waiting for ``diagnose``.
        critical_budget_seconds: longest a firing notification on ``critical_route`` waits for
            ``diagnose`` before it is sent with ``fallback``'s diagnosis
            (``LLM_CRITICAL_BUDGET_SECONDS``); ``None``: no budget.
        critical_route: the route paged through (``critical``).
        llm_unreachable: ``DiagnosisEngine.llm_unreachable``: no budget wait while it is True.
    """

    def __init__(
        self,
        store: Store,
        diagnose: Diagnose,
        notifiers_for: NotifiersFor,
        *,
        concurrency: int = 4,
        max_attempts: int = 0,
        retry_base_seconds: float = 1.0,
        retry_max_seconds: float = 300.0,
        max_retry_after_seconds: float = 60.0,
        max_age_seconds: float = 86400.0,
        poll_interval: float = 5.0,
        min_send_interval: dict[str, float] | None = None,
        owner: str = "receiver",
        lease_seconds: float = 15.0,
        metrics: ReceiverMetrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        fallback: RulesNow | None = None,
        critical_budget_seconds: float | None = None,
        critical_route: str = CRITICAL_ROUTE,
        llm_unreachable: Callable[[], bool] | None = None,
    ) -> None:
        self._store = store
        self._diagnose = diagnose
        self._notifiers_for = notifiers_for
        self._concurrency = max(1, concurrency)
        self._max_attempts = max(0, max_attempts)
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._max_retry_after = max_retry_after_seconds
        self._max_age = max_age_seconds
        self._poll_interval = poll_interval
        self._pacer = Pacer(min_send_interval, sleep)
        self._owner = owner
        self._lease = max(1.0, lease_seconds)
        self._renewer: asyncio.Task[None] | None = None
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._inflight: dict[int, tuple[asyncio.Task[None], tuple[str, str]]] = {}
        self._paused_until: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # One INFO line per finished notification when quiet, a summary every 10 s under load.
        self._done_log = SummarizedLog(
            log, "%d more notifications done in the last %.0fs (each one at DEBUG)"
        )
        self._late = LateDiagnoses(
            store,
            diagnose,
            fallback,
            critical_budget_seconds,
            route=critical_route,
            notifiers_for=self._route_notifiers,
            send=self._pacer.run,
            count=self._count,
            rounds_of=lambda key: [t for t, k in self._inflight.values() if k == key],
            wake=self.wake,
            max_retry_after=max_retry_after_seconds,
            retry_base=retry_base_seconds,
            sleep=sleep,
            unreachable=llm_unreachable,
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background loop (resumes every pending notification in the store)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="receiver-worker")
            self._renewer = asyncio.create_task(self._renew_leases(), name="receiver-leases")

    @property
    def running(self) -> bool:
        """True while the background loop is alive."""
        return self._task is not None and not self._task.done()

    @property
    def inflight(self) -> int:
        """Notifications being processed now."""
        return len(self._inflight)

    @property
    def late_diagnoses(self) -> int:
        """Pages sent before their LLM diagnosis, whose update is still to come."""
        return self._late.pending

    def wake(self) -> None:
        """Ask the loop to poll the store now (called after something was stored)."""
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the loop; give in-flight work ``grace`` seconds, then cancel it.

        Cancelled work stays ``pending`` (or ``sending``), its leases are released, and it
        resumes at the next start (or on another receiver) at once.
        """
        self._stopping = True
        self._wake.set()
        for background in (self._task, self._renewer):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await background
        self._task = self._renewer = None
        tasks = [t for t, _ in self._inflight.values()]
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        cancelled = [nid for nid, (t, _) in self._inflight.items() if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._late.stop(grace)
        if cancelled:
            try:
                await asyncio.to_thread(self._store.release, self._owner, cancelled)
            except StoreError as exc:
                log.warning("cannot release leases at stop (they expire by themselves): %s", exc)
        self._done_log.flush()

    async def _renew_leases(self) -> None:
        """Renew the leases of the notifications in flight every third of the lease."""
        while True:
            await asyncio.sleep(self._lease / 3)
            ids = list(self._inflight)
            if not ids:
                continue
            try:
                kept = await asyncio.to_thread(
                    self._store.renew, self._owner, ids, self._clock() + self._lease
                )
            except StoreError as exc:
                log.error("cannot renew leases (another receiver may take the work): %s", exc)
                continue
            except Exception:
                log.exception("lease renewal error")
                continue
            lost = sorted(set(ids) - set(kept) & set(self._inflight))
            if lost:
                # Finished meanwhile, or expired and claimed elsewhere (this receiver stalled
                # past its lease): the other receiver carries on from the stored states.
                log.debug("notifications %s are no longer leased to %s", lost, self._owner)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            timeout = self._poll_interval
            try:
                next_due = await self._schedule()
                if next_due is not None:
                    timeout = min(timeout, max(0.0, next_due - self._clock()))
            except Exception:  # keep the loop alive whatever happens
                log.exception("worker loop error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.001))

    async def _schedule(self) -> float | None:
        """Claim due notifications for the free slots and start them; return when the next
        one falls due."""
        now = self._clock()
        try:
            next_due = await asyncio.to_thread(self._store.next_due, now)
            free = self._concurrency - len(self._inflight)
            if free > 0:
                # Claim enough rows to fill the free slots past the ones in flight (still
                # pending, leased to us) and a few successors waiting for them, not hundreds:
                # each row costs a JSON decode. Only when they leave slots free, look further.
                limit = len(self._inflight) + free * _DUE_ROWS_PER_SLOT
                running = len(self._inflight)
                rows = await self._claim(now, limit)
                unstarted = self._start(rows, free)
                free -= len(self._inflight) - running
                if free > 0 and len(rows) == limit:
                    unstarted += self._start(await self._claim(now, _DUE_ROWS_MAX), free)
                # Give back at once what was claimed but not started (another receiver may
                # take it), before the next round claims again.
                unstarted = sorted(set(unstarted) - set(self._inflight))
                if unstarted:
                    await asyncio.to_thread(self._store.release, self._owner, unstarted)
        except StoreError as exc:
            log.error("cannot claim pending notifications: %s", exc)
            return None
        return next_due

    async def _claim(self, now: float, limit: int) -> list[PendingNotification]:
        """Claim up to ``limit`` due notifications (leased to this worker)."""
        return await asyncio.to_thread(self._store.claim, now, self._owner, self._lease, limit)

    def _start(self, rows: Sequence[PendingNotification], free: int) -> list[int]:
        """Start up to ``free`` of the claimed ``rows``, never two of the same alert; return
        the ids of the claimed rows left unstarted (their leases are to be released)."""
        busy = {key for _, key in self._inflight.values()} | self._late.held
        started = 0
        unstarted: list[int] = []
        for row in rows:
            key = (row.group_key, row.fingerprint)
            if row.id in self._inflight:
                busy.add(key)
                continue
            if started >= free or key in busy:
                busy.add(key)  # later rows of the same alert wait for this one
                unstarted.append(row.id)
                continue
            busy.add(key)
            task = asyncio.create_task(self._process_guarded(row), name=f"notify-{row.id}")
            self._inflight[row.id] = (task, key)
            started += 1
        return unstarted

    async def _process_guarded(self, row: PendingNotification) -> None:
        try:
            await self._process(row)
        except asyncio.CancelledError:
            raise
        except StoreError as exc:
            log.error("notification %d: storage error, will retry: %s", row.id, exc)
        except Exception:
            log.exception("notification %d: unexpected processing error", row.id)
            with contextlib.suppress(StoreError):
                until = self._clock() + max(self._retry_base, 1.0)
                await asyncio.to_thread(self._store.postpone, row.id, until)
        finally:
            self._inflight.pop(row.id, None)
            self._wake.set()  # a slot is free and a successor may be waiting

    # --- one notification -----------------------------------------------------------------

    async def _diagnosis(
        self, row: PendingNotification, alert: Alert
    ) -> tuple[Diagnosis, dict[str, Any] | None]:
        """``(diagnosis, its JSON to store or None when it is the stored one)``."""
        if row.diagnosis is not None:
            try:
                return Diagnosis.model_validate(row.diagnosis), None
            except ValidationError:
                log.warning("notification %d: stored diagnosis invalid, redoing it", row.id)
        if self._late.applies(row, alert):
            diagnosis, final = await self._late.diagnose(row, alert)
            return diagnosis, diagnosis.model_dump(mode="json") if final else None
        diagnosis = await self._diagnose(alert)
        return diagnosis, diagnosis.model_dump(mode="json")

    def _route_notifiers(self, route: str) -> dict[str, Notifier]:
        out: dict[str, Notifier] = {}
        for notifier in self._notifiers_for(route):
            name = notifier.name
            if name in out and out[name] is not notifier:
                log.error("two notifiers are named %r on route %r; using the first", name, route)
                continue
            out[name] = notifier
        return out

    async def _process(self, row: PendingNotification) -> None:
        try:
            alert = Alert.model_validate(row.alert)
        except ValidationError:
            log.error("notification %d: stored alert is unreadable; marking done", row.id)
            await asyncio.to_thread(self._store.complete, row.id)
            return
        if alert.status == "resolved":
            self._late.note_resolved(row, alert)
        diagnosis, new_diagnosis = await self._diagnosis(row, alert)
        notification = notification_of(row, alert, diagnosis)
        notifiers = self._route_notifiers(row.route)
        now = self._clock()
        # Diagnosis cached, delivery rows planned and earlier unfinished notifications of the
        # alert read in one transaction (one thread hop, one commit).
        plan, blocked, unplanned = await asyncio.to_thread(
            self._store.prepare,
            row.id,
            row.group_key,
            row.fingerprint,
            [(name, n.channel) for name, n in notifiers.items()],
            now,
            new_diagnosis,
        )
        jobs: list[Awaitable[None]] = []
        for name, delivery in plan.items():
            if delivery.state in FINAL_STATES:
                continue
            notifier = notifiers.get(name)
            if notifier is None:
                jobs.append(self._drop_unconfigured(row.id, delivery))
                continue
            if delivery.next_attempt_at > now:
                continue  # not due yet (backoff)
            waits = [t for t in (blocked.get(name), unplanned) if t is not None]
            paused = self._paused_until.get(name, 0.0)
            if waits or paused > now:
                until = max([*waits, paused, now + _DEFER_MIN])
                jobs.append(self._defer(row.id, delivery, until))
                continue
            jobs.append(self._deliver(notifier, delivery, notification, row.created_ts))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result  # e.g. StoreError: the row stays pending and is retried later
        next_at = await asyncio.to_thread(self._store.finish, row.id)
        if next_at is None:
            self._done_log.log(
                (),
                "notification %d (%s %s) done: diagnosis source=%s, notifiers=%s",
                row.id,
                alert.status,
                alert.alertname[:100],
                diagnosis.source,
                ",".join(plan) or "-",
            )

    async def _defer(self, notification_id: int, delivery: Delivery, until: float) -> None:
        await asyncio.to_thread(
            self._store.update_delivery,
            notification_id,
            delivery.notifier,
            delivery.state,
            next_attempt_at=until,
            keep_error=True,
        )

    async def _drop_unconfigured(self, notification_id: int, delivery: Delivery) -> None:
        log.warning(
            "notification %d: notifier %r is no longer configured for its route; dropping",
            notification_id,
            delivery.notifier,
        )
        await asyncio.to_thread(
            self._store.update_delivery,
            notification_id,
            delivery.notifier,
            DeliveryState.DROPPED,
            error="notifier no longer configured",
        )
        self._count(delivery.channel, delivery.notifier, "dropped")

    # --- one delivery ---------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        delay: float = self._retry_base * 2.0 ** min(attempt - 1, 30)
        return min(self._retry_max, delay * random.uniform(0.9, 1.1))

    async def _already_delivered(self, notifier: Notifier, notification: Notification) -> bool:
        try:
            return await notifier.delivered_before(notification)
        except Exception as exc:
            log.warning(
                "notification %d: cannot tell whether %s got it before the crash (%s)",
                notification.id,
                notifier.name,
                exc.__class__.__name__,
            )
            return False

    async def _deliver(
        self,
        notifier: Notifier,
        delivery: Delivery,
        notification: Notification,
        created_ts: float,
    ) -> None:
        name, channel, nid = delivery.notifier, notifier.channel, notification.id
        update = self._store.update_delivery
        if delivery.state == DeliveryState.SENDING:
            # The previous process died during this send: it may or may not have arrived.
            if await self._already_delivered(notifier, notification):
                log.info("notification %d: %s already had it (before a crash)", nid, name)
                await asyncio.to_thread(update, nid, name, DeliveryState.DELIVERED)
                self._count(channel, name, "recovered")
                return
            log.warning(
                "notification %d: a send to %s was interrupted (crash); sending again, which"
                " may duplicate it",
                nid,
                name,
            )
            self._count(channel, name, "uncertain")
        attempt = delivery.attempts + 1
        await asyncio.to_thread(
            update,
            nid,
            name,
            DeliveryState.SENDING,
            attempts=attempt,
            next_attempt_at=self._clock(),
            keep_error=True,
        )
        try:
            ids: MessageIds | None = await self._pacer.run(
                name, notifier, lambda: notifier.send(notification)
            )
        except asyncio.CancelledError:
            raise  # stays 'sending': resolved as above at the next start
        except PermanentNotifyError as exc:
            log.warning(
                "notification %d: %s rejected the message, not retrying: %s", nid, name, exc
            )
            await asyncio.to_thread(update, nid, name, DeliveryState.REJECTED, error=str(exc)[:500])
            self._count(channel, name, "rejected")
            return
        except Exception as exc:
            await self._failed(notifier, delivery, notification, created_ts, attempt, exc)
            return
        ref = SentMessage(self._clock(), ids or {}).to_json()
        await asyncio.to_thread(
            update, nid, name, DeliveryState.DELIVERED, error=None, message_ref=ref
        )
        self._count(channel, name, "delivered")

    async def _failed(
        self,
        notifier: Notifier,
        delivery: Delivery,
        notification: Notification,
        created_ts: float,
        attempt: int,
        exc: Exception,
    ) -> None:
        name, channel, nid = delivery.notifier, notifier.channel, notification.id
        error = str(exc) if isinstance(exc, NotifyError) else exc.__class__.__name__
        if not isinstance(exc, NotifyError):
            log.exception("notification %d: notifier %s crashed", nid, name)
        now = self._clock()
        retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
        if retry_after is not None:
            delay = min(retry_after, self._max_retry_after)
            self._paused_until[name] = max(self._paused_until.get(name, 0.0), now + delay)
        else:
            delay = self._backoff(attempt)
        deadline = created_ts + self._max_age
        too_many = self._max_attempts > 0 and attempt >= self._max_attempts
        if too_many or now >= deadline:
            reason = f"{attempt} attempts" if too_many else "maximum age reached"
            log.error(
                "notification %d (%s): delivery to %s dropped after %s; last error: %s",
                nid,
                notification.alertname[:100],
                name,
                reason,
                error,
            )
            await asyncio.to_thread(
                self._store.update_delivery, nid, name, DeliveryState.DROPPED, error=error[:500]
            )
            self._count(channel, name, "dropped")
            return
        next_at = min(now + delay, deadline)
        log.warning(
            "notification %d: delivery to %s failed (attempt %d); retrying in %.1fs: %s",
            nid,
            name,
            attempt,
            next_at - now,
            error,
        )
        await asyncio.to_thread(
            self._store.update_delivery,
            nid,
            name,
            DeliveryState.PENDING,
            next_attempt_at=next_at,
            error=error[:500],
        )
        self._count(channel, name, "retried")

    def _count(self, channel: str, notifier: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.notifiers.delivery(channel, notifier, result)
