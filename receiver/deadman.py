"""Dead man's switch: alarm when Alertmanager's ``Watchdog`` heartbeats stop arriving.

Alertmanager routes the always-firing ``Watchdog`` alert to ``POST /heartbeat`` every minute or
so. :class:`DeadMansSwitch` persists each arrival in SQLite (``deadman`` table) and, when none has
come for ``DEADMAN_TIMEOUT_SECONDS``, stores a synthetic ``AlertingPipelineDown`` notification
(severity critical, diagnosis category ``monitoring``) on the dead man's route, so the critical
route's notifiers hear that the alerting pipeline itself is broken. When heartbeats return it
stores the matching resolved notification with the outage duration.

Each transition and its notification are committed in one transaction, and the notification has
the usual idempotency key (the outage's start time is its ``startsAt``), so a restart neither
forgets an alarm nor sends it twice; the worker delivers it like any other notification
(retries, per-notifier exactly-once, firing before resolved).

Several receivers on one database (PostgreSQL): every receiver records the heartbeats it gets,
but only one, the leader, checks for silence and raises the alarm (:meth:`Store.lead`: a
PostgreSQL advisory lock held by the leader's session, so a crashed leader's lock is freed with
its connection and another receiver takes over at its next check). The transitions are stored
atomically either way, so even two leaders could not raise one outage twice.

Arming: the switch is disarmed until the first heartbeat ever arrives (or, with
``DEADMAN_ARM_AT_START``, from the receiver's start). Silence is measured from the later of the
last heartbeat and this process's start, so a receiver restarted after being down itself gives
Alertmanager one full timeout to deliver the next heartbeat before alarming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from exchange_common.durations import format_duration_compact as format_duration
from exchange_common.timestamps import iso_utc
from receiver.diagnosis.schema import Diagnosis
from receiver.metrics import ReceiverMetrics
from receiver.models import ZERO_TIME
from receiver.store import DeadmanState, Store, StoreError, SyntheticNotification

log = logging.getLogger(__name__)

ALERTNAME = "AlertingPipelineDown"
GROUP_KEY = '{}:{alertname="AlertingPipelineDown"}'
FINGERPRINT = "alert-receiver-deadman"
RECEIVER = "alert-receiver"

#: Values of the ``alert_receiver_deadman_state`` gauge.
STATE_VALUES = {"disarmed": 0, "ok": 1, "alarm": 2}


def _labels() -> dict[str, str]:
    return {
        "alertname": ALERTNAME,
        "severity": "critical",
        "component": "alerting-pipeline",
        "source": RECEIVER,
    }


def firing_notification(
    route: str, since: float, now: float, timeout: float, last_heartbeat: float | None
) -> SyntheticNotification:
    """The ``AlertingPipelineDown`` firing notification for silence since ``since``."""
    silence = format_duration(now - since)
    last = (
        f"the last one arrived at {iso_utc(last_heartbeat)}"
        if last_heartbeat is not None
        else f"none has arrived since the receiver started at {iso_utc(since)}"
    )
    diagnosis = Diagnosis(
        diagnosis=(
            f"Alertmanager's Watchdog heartbeat has not reached the receiver for {silence} "
            f"(timeout {format_duration(timeout)}; {last}). The Watchdog alert always fires, so "
            "its silence means the path Prometheus → Alertmanager → receiver is broken: "
            "Prometheus is down or not evaluating rules; Alertmanager is down or its route for "
            'alertname="Watchdog" no longer reaches /heartbeat; the Watchdog rule was removed or '
            "its rule file failed to load; or the network (DNS, firewall, TLS, credentials) "
            "between Alertmanager and the receiver fails. Real exchange alerts may be lost "
            "until this resolves."
        ),
        impact=(
            "Monitoring is blind: an exchange outage, rate-limit ban or stale market data would "
            "raise no notification while trading bots keep running without their safety net."
        ),
        action_items=[
            "Check Prometheus: is it up (GET /-/healthy), evaluating rules "
            "(prometheus_rule_evaluation_failures_total, promtool check rules) and is "
            'ALERTS{alertname="Watchdog"} present?',
            "Check Alertmanager: is it up (GET /-/healthy), does `amtool alert query "
            "alertname=Watchdog` list the alert, and does its log or "
            'alertmanager_notifications_failed_total{integration="webhook"} show errors '
            "towards the receiver?",
            'Check the route: alertname="Watchdog" must reach the receiver\'s /heartbeat with a '
            "repeat interval shorter than the dead man's timeout; check network, DNS and "
            "credentials (HTTP 401 in Alertmanager's log) between Alertmanager and the receiver.",
            "Until heartbeats return, watch the exchange dashboards and the exporter's /status "
            "by hand.",
        ],
        rollback_plan=(
            "Nothing to roll back here. If a Prometheus or Alertmanager change was made just "
            f"before the silence began ({iso_utc(since)}), revert it. A resolved notification "
            "follows when heartbeats return."
        ),
        estimated_recovery_time="unknown: until the pipeline is repaired",
        root_cause_category="monitoring",
        confidence=0.9,
        source="rules",
    )
    annotations = {
        "summary": (
            f"No Watchdog heartbeat for {silence}: the alerting pipeline is broken and "
            "exchange alerts may not be delivered"
        ),
        "description": (
            "The receiver expects Alertmanager's always-firing Watchdog alert on "
            f"POST /heartbeat at least every {format_duration(timeout)}; {last}."
        ),
    }
    return _synthetic(route, "firing", annotations, since, None, diagnosis)


def resolved_notification(route: str, since: float, now: float) -> SyntheticNotification:
    """The resolved notification when heartbeats return at ``now`` after silence since ``since``."""
    outage = format_duration(now - since)
    diagnosis = Diagnosis(
        diagnosis=(
            f"Watchdog heartbeats resumed at {iso_utc(now)} after {outage} without any "
            f"(silence began {iso_utc(since)}). The alerting pipeline delivers again; alerts "
            "raised during the silence may have been delayed or lost."
        ),
        impact=(
            "Notifications flow again. Alerts that fired and resolved during the silence were "
            "never notified."
        ),
        action_items=[
            f"Review alerts between {iso_utc(since)} and {iso_utc(now)} (Prometheus ALERTS "
            "history, Alertmanager) for anything that was not notified.",
            "Record the cause of the outage (restart, config change, network) so it does not "
            "recur.",
        ],
        rollback_plan="Nothing to roll back.",
        estimated_recovery_time="recovered",
        root_cause_category="monitoring",
        confidence=0.9,
        source="rules",
    )
    annotations = {
        "summary": (
            f"Watchdog heartbeats are back after {outage} of silence: the alerting "
            "pipeline works again"
        ),
    }
    return _synthetic(route, "resolved", annotations, since, now, diagnosis)


def _synthetic(
    route: str,
    status: str,
    annotations: dict[str, str],
    since: float,
    until: float | None,
    diagnosis: Diagnosis,
) -> SyntheticNotification:
    """One ``AlertingPipelineDown`` notification in Alertmanager's alert shape."""
    alert: dict[str, Any] = {
        "status": status,
        "labels": _labels(),
        "annotations": annotations,
        "startsAt": iso_utc(since),
        "endsAt": ZERO_TIME if until is None else iso_utc(until),
        "generatorURL": "",
        "fingerprint": FINGERPRINT,
    }
    return SyntheticNotification(
        route=route,
        group_key=GROUP_KEY,
        receiver=RECEIVER,
        alert=alert,
        diagnosis=diagnosis.model_dump(mode="json"),
    )


class DeadMansSwitch:
    """Persisted Watchdog heartbeat tracking and the pipeline-down alarm.

    Args:
        store: the store (state and notifications).
        timeout: seconds of silence before alarming; 0 disables the alarm (heartbeats are
            still recorded).
        route: route whose notifiers get the notifications (the critical route).
        arm_at_start: alarm even if no heartbeat ever arrived (counting from :meth:`start`).
        clock: Unix-seconds clock (tests inject one).
        metrics: receiver metrics (last heartbeat time, state gauge), optional.
        on_notification: called after a notification was stored (wakes the worker); called
            from the thread that stored it. Settable later.
        owner: this receiver's identity, for leadership (:meth:`Store.lead`).

    The synchronous methods touch the database: call them from a thread in async code.
    """

    def __init__(
        self,
        store: Store,
        *,
        timeout: float,
        route: str,
        arm_at_start: bool = False,
        clock: Callable[[], float] = time.time,
        metrics: ReceiverMetrics | None = None,
        on_notification: Callable[[], None] | None = None,
        owner: str = "receiver",
    ) -> None:
        self._store = store
        self.timeout = timeout
        self.route = route
        self._arm_at_start = arm_at_start
        self._clock = clock
        self._metrics = metrics
        self.on_notification = on_notification
        self.owner = owner
        self.leader = False
        self._started = clock()
        self._state = DeadmanState()
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> DeadmanState:
        """The last state read or written (may lag the database if it became unreadable)."""
        return self._state

    @property
    def check_interval(self) -> float:
        """Seconds between two checks: a tenth of the timeout, between 0.05 and 5."""
        return min(5.0, max(0.05, self.timeout / 10))

    @property
    def lead_ttl(self) -> float:
        """Seconds a leadership lease lasts without renewal (SQLite): three checks, ≥ 10 s."""
        return max(10.0, 3 * self.check_interval)

    def tick(self) -> bool:
        """One periodic step: take or keep the leadership, and check for silence if leader.

        Returns:
            True when this call raised the alarm.

        Raises:
            StoreError: the database is unavailable (this receiver is then not the leader).
        """
        try:
            leader = self._store.lead(self.owner, self.lead_ttl)
        except StoreError:
            self._set_leader(False)
            raise
        self._set_leader(leader)
        if not leader:
            # Follow the leader's writes so /heartbeat and the metrics stay current here too.
            self._publish(self._store.deadman_state())
            return False
        return self.check()

    def _set_leader(self, leader: bool) -> None:
        if leader != self.leader:
            log.info(
                "dead man's switch: %s %s the leader",
                self.owner,
                "is now" if leader else "is no longer",
            )
        self.leader = leader
        if self._metrics is not None:
            self._metrics.deadman_leader.set(1 if leader else 0)

    def status_name(self, state: DeadmanState | None = None) -> str:
        """``disarmed``, ``ok`` or ``alarm``."""
        state = state or self._state
        if state.alarm_since is not None:
            return "alarm"
        if self.timeout <= 0 or (state.last_heartbeat is None and not self._arm_at_start):
            return "disarmed"
        return "ok"

    def _publish(self, state: DeadmanState) -> None:
        self._state = state
        if self._metrics is not None:
            self._metrics.last_heartbeat.set(state.last_heartbeat or 0)
            self._metrics.deadman_state.set(STATE_VALUES[self.status_name(state)])

    def _stored(self, notification_id: int | None) -> None:
        if notification_id is not None and self.on_notification is not None:
            self.on_notification()

    def load(self, restart: bool = True) -> DeadmanState:
        """Read the persisted state; with ``restart``, silence counts from now at the earliest.

        Raises:
            StoreError: the database is unreadable.
        """
        if restart:
            self._started = self._clock()
        state = self._store.deadman_state()
        self._publish(state)
        return state

    def heartbeat(self) -> DeadmanState:
        """Record a heartbeat now; resolve the alarm (storing the resolved notification) if raised.

        Raises:
            StoreError: not recorded (the caller answers 503 so Alertmanager retries).
        """
        now = self._clock()
        resolved: list[float] = []

        def transition(
            before: DeadmanState,
        ) -> tuple[DeadmanState, SyntheticNotification | None]:
            after = replace(
                before,
                last_heartbeat=now,
                heartbeats=before.heartbeats + 1,
                alarm_since=None,
                alarm_raised_at=None,
            )
            if before.alarm_since is None:
                return after, None
            resolved.append(before.alarm_since)
            return after, resolved_notification(self.route, before.alarm_since, now)

        state, notification_id = self._store.deadman_transition(transition)
        if resolved:
            log.warning(
                "dead man's switch: heartbeats are back after %s; resolving %s",
                format_duration(now - resolved[0]),
                ALERTNAME,
            )
        self._publish(state)
        self._stored(notification_id)
        return state

    def check(self) -> bool:
        """Raise the alarm (storing the firing notification) if the silence exceeds the timeout.

        Returns:
            True when this call raised the alarm.

        Raises:
            StoreError: the database is unavailable.
        """
        if self.timeout <= 0:
            return False
        now = self._clock()
        raised: list[float] = []

        def transition(
            before: DeadmanState,
        ) -> tuple[DeadmanState, SyntheticNotification | None]:
            if before.alarm_since is not None:
                return before, None
            if before.last_heartbeat is None and not self._arm_at_start:
                return before, None
            reference = max(before.last_heartbeat or self._started, self._started)
            if now - reference < self.timeout:
                return before, None
            since = before.last_heartbeat if before.last_heartbeat is not None else self._started
            raised.append(since)
            after = replace(before, alarm_since=since, alarm_raised_at=now)
            return after, firing_notification(
                self.route, since, now, self.timeout, before.last_heartbeat
            )

        state, notification_id = self._store.deadman_transition(transition)
        if raised:
            log.error(
                "dead man's switch: no Watchdog heartbeat for %s (timeout %s); notifying route"
                " %r that the alerting pipeline is down",
                format_duration(now - raised[0]),
                format_duration(self.timeout),
                self.route,
            )
        self._publish(state)
        self._stored(notification_id)
        return bool(raised)

    def status(self) -> dict[str, Any]:
        """JSON for ``GET /heartbeat``."""
        state = self._state
        now = self._clock()
        last = state.last_heartbeat
        return {
            "last_heartbeat": last,
            "age_seconds": None if last is None else max(0.0, now - last),
            "heartbeats": state.heartbeats,
            "deadman": {
                "state": self.status_name(state),
                "timeout_seconds": self.timeout,
                "alarm_since": state.alarm_since,
                "leader": self.leader,
                "instance": self.owner,
            },
        }

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except StoreError as exc:
                log.error("dead man's switch: cannot check (will retry): %s", exc)
            except Exception:  # never let the loop die
                log.exception("dead man's switch: unexpected error")
            await asyncio.sleep(self.check_interval)

    def start(self) -> None:
        """Start the periodic check (no-op when the timeout is 0)."""
        if self._task is None and self.timeout > 0:
            self._task = asyncio.create_task(self._run(), name="deadman")

    async def stop(self) -> None:
        """Stop the periodic check and give up the leadership."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leader:
            await asyncio.to_thread(self._store.resign, self.owner)
            self._set_leader(False)
