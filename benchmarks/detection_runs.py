"""Playing the shipped scenarios one after another on one running stack, and reading what the
receiver notified (the detection benchmark's measuring half; ``bench_detection.py`` runs it).

Notifications are read from the receiver's JSONL file (``Stack.notify_file``, one line per
notification, :mod:`receiver.notifiers.jsonl`): it carries the alert, its exchange, the
Alertmanager receiver (the route), the diagnosis' ``root_cause_category`` and ``notified_at``.
Lines of another kind (an ``update`` that follows a late LLM diagnosis) are not notifications of
their own and are skipped.

One scenario run: wait until the stack is quiet (every exchange up, no alert firing but the
Watchdog), start the scenario through ``POST /_control/scenario``, wait for the firing
notification of its ``expect`` alert (or a time limit), then stop it and clear every fault and
limit, and wait for that alert's resolved notification. Times are wall-clock seconds from the
scenario's ``started_at`` (the simulator's clock; every process runs on this host).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.stack_bench import StackBench
from receiver.models import parse_rfc3339
from simulator.scenario import parse_duration

QUIET_TIMEOUT = 600.0
"""Seconds a run waits for the stack to be quiet before it starts (then it is a failed run)."""
RESOLVE_TIMEOUT = 900.0
"""Seconds to wait for the expected alert's resolved notification after clearing: past the
longest shipped hold-over (an IP ban's 10 minutes, which the exporter keeps honouring after the
exchange lifts it) and the resolve's own evaluation and notification."""
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Notified:
    """One notification line of the JSONL file.

    Attributes:
        status: ``firing`` or ``resolved``.
        alertname, exchange: the alert (exchange None for a global alert).
        route: the Alertmanager receiver it went through (``exchange-watch-critical``, ...).
        category: the diagnosis' ``root_cause_category`` ("" when none).
        at: ``notified_at`` as Unix seconds.
    """

    status: str
    alertname: str
    exchange: str | None
    route: str
    category: str
    at: float

    def matches(self, alertname: str, exchange: str | None, status: str) -> bool:
        """Whether this is ``status`` for ``alertname`` on ``exchange``."""
        return (self.alertname, self.exchange, self.status) == (alertname, exchange, status)


def parse_line(line: str) -> Notified | None:
    """A :class:`Notified` from one JSONL line; None for an update, a partial or foreign line."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("kind", record.get("type")) == "update":
        return None
    status = record.get("status")
    if status not in ("firing", "resolved") or not isinstance(record.get("alertname"), str):
        return None
    try:
        at = parse_rfc3339(str(record.get("notified_at"))).timestamp()
    except ValueError:
        return None
    diagnosis = record.get("diagnosis") or {}
    return Notified(
        status=status,
        alertname=record["alertname"],
        exchange=record.get("exchange") or None,
        route=str(record.get("receiver") or ""),
        category=str(diagnosis.get("root_cause_category") or "")
        if isinstance(diagnosis, dict)
        else "",
        at=at,
    )


class NotificationLog:
    """Follows the receiver's JSONL file from a position on (the file may not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.seen: list[Notified] = []

    def skip_to_end(self) -> None:
        """Forget everything written so far."""
        self.poll()
        self.seen.clear()

    def poll(self) -> list[Notified]:
        """Read the lines written since the last call; return their notifications (also
        appended to :attr:`seen`)."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        new = [n for raw in lines if (n := parse_line(raw.decode("utf-8", "replace")))]
        self.seen.extend(new)
        return new

    def wait_for(
        self, predicate: Callable[[Notified], bool], timeout: float, abort: Any = None
    ) -> Notified | None:
        """The first notification (already seen or new) satisfying ``predicate``, waiting up to
        ``timeout`` seconds; None when none came (or ``abort`` was set)."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            found = next((n for n in self.seen if predicate(n)), None)
            if found is not None or time.monotonic() >= deadline:
                return found
            if abort is not None and abort.is_set():
                return None
            time.sleep(POLL_SECONDS)


@dataclass
class ScenarioRun:
    """One played scenario (seconds; None when not measured).

    Attributes:
        scenario: its name.
        expect: its ``expect`` block as the simulator reported it.
        first: the first firing notification after the start, of any alert.
        expected: the first firing notification of the expected alert and exchange.
        notify_s: start → ``expected`` (None when it never came).
        resolved_s: clearing → the expected alert's resolved notification.
        others: every other notification (firing or resolved, any alert) between the start
            and the resolved one: ``"<status> <alertname> <exchange>"``.
        error: why the run failed, if it did.
    """

    scenario: str
    expect: dict[str, Any] = field(default_factory=dict)
    first: Notified | None = None
    expected: Notified | None = None
    notify_s: float | None = None
    resolved_s: float | None = None
    others: list[str] = field(default_factory=list)
    error: str | None = None


class ScenarioPlayer:
    """Plays shipped scenarios on a running stack (``bench``: the stack, its clients and the
    abort flag) and reads the results from ``log``."""

    def __init__(self, bench: StackBench, log: NotificationLog) -> None:
        self.bench = bench
        self.log = log

    def quiet_blockers(self, client: httpx.Client) -> list[str]:
        """What keeps the stack from being quiet: exchanges not all up, alerts firing or
        pending (the Watchdog aside). Empty when quiet."""
        reasons = []
        if not self.bench.all_up(client, 5):
            reasons.append("not every exchange is up")
        alerts = self.bench.query(client, 'ALERTS{alertname!="Watchdog"}')
        if alerts is None:
            return ["prometheus did not answer"]
        for alert in alerts:
            labels = alert["metric"]
            where = labels.get("exchange", "-")
            reasons.append(f"{labels.get('alertname')} {where} {labels.get('alertstate')}")
        return reasons

    def wait_quiet(self, client: httpx.Client, timeout: float = QUIET_TIMEOUT) -> list[str]:
        """Wait up to ``timeout`` for :meth:`quiet_blockers` to clear; what still blocks."""
        blocking: list[str] = ["aborted"]

        def quiet() -> bool:
            blocking[:] = self.quiet_blockers(client)
            return not blocking

        return [] if self.bench.wait(quiet, timeout, every=2.0) else blocking or ["aborted"]

    def clear(self, client: httpx.Client) -> None:
        """Stop the scenario and drop every fault and limit it set."""
        simulator = self.bench.stack.urls["simulator"]
        for path in ("/_control/scenario", "/_control/faults", "/_control/limits"):
            with contextlib.suppress(httpx.HTTPError):
                client.delete(f"{simulator}{path}")

    def play(self, name: str) -> ScenarioRun:
        """Play scenario ``name`` once; never raises for a failed run."""
        run = ScenarioRun(name)
        with self.bench.client() as client:
            blocking = self.wait_quiet(client)
            if blocking:
                run.error = f"stack not quiet within {QUIET_TIMEOUT:g} s: {'; '.join(blocking)}"
                return run
            self.log.skip_to_end()
            try:
                response = client.post(
                    f"{self.bench.stack.urls['simulator']}/_control/scenario", json={"name": name}
                )
                response.raise_for_status()
                status = response.json()["scenario"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                run.error = f"starting the scenario failed: {exc!r}"
                return run
            try:
                self._measure(run, status)
            finally:
                cleared = time.time()
                self.clear(client)
            self._resolution(run, cleared)
        return run

    def _measure(self, run: ScenarioRun, status: dict[str, Any]) -> None:
        started = float(status["started_at"])
        expect = run.expect = dict(status.get("expect") or {})
        if not expect:
            run.error = "the scenario has no expect block"
            return
        alertname, exchange = expect["alertname"], expect.get("exchange")
        within = parse_duration(expect["within"])
        length = max((parse_duration(s["at"]) for s in status.get("steps_pending", [])), default=0)
        timeout = max(3 * within, within + 120.0, length)
        found = self.log.wait_for(
            lambda n: n.matches(alertname, exchange, "firing"), timeout, self.bench.abort
        )
        firing = [n for n in self.log.seen if n.status == "firing"]
        run.first = firing[0] if firing else None
        if found is None:
            run.error = f"no firing {alertname} {exchange} notification within {timeout:g} s"
            return
        run.expected = found
        run.notify_s = found.at - started

    def _resolution(self, run: ScenarioRun, cleared: float) -> None:
        if run.expected is not None:
            expected = run.expected
            resolved = self.log.wait_for(
                lambda n: n.matches(expected.alertname, expected.exchange, "resolved"),
                RESOLVE_TIMEOUT,
                self.bench.abort,
            )
            if resolved is not None:
                run.resolved_s = resolved.at - cleared
        run.others = [
            f"{n.status} {n.alertname} {n.exchange or '-'}"
            for n in self.log.seen
            if run.expected is None
            or n.alertname != run.expected.alertname
            or n.exchange != run.expected.exchange
        ]
