"""Runs one :class:`~simulator.scenario.Scenario` at a time as an asyncio task on the server loop
(``/_control/scenario``, CLI ``--scenario``).

Steps are applied at ``start + at`` (monotonic loop clock); steps with the same offset are
applied back to back in file order. Starting a scenario stops the running one first. Stopping
(or finishing) never clears faults or limits the scenario set — use ``DELETE /_control/faults``
and ``DELETE /_control/limits`` for that. All methods must be called on the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from simulator.faults import FaultRegistry
from simulator.limits import LimitRegistry
from simulator.scenario import Scenario, Step

__all__ = ["ScenarioRunner"]

log = logging.getLogger("simulator.scenario")


class _Run:
    """State of one started scenario (see :meth:`ScenarioRunner.to_json`)."""

    __slots__ = ("done", "error", "scenario", "started_at", "state", "task")

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.started_at = time.time()
        self.state = "running"
        self.done: list[tuple[Step, float]] = []
        self.error: str | None = None
        self.task: asyncio.Task[None] | None = None


class ScenarioRunner:
    """Applies scenario steps to the shared registries.

    Args:
        faults: the server's :class:`~simulator.faults.FaultRegistry`.
        limits: the server's :class:`~simulator.limits.LimitRegistry`.
    """

    def __init__(self, faults: FaultRegistry, limits: LimitRegistry) -> None:
        """Bind to the registries; nothing runs until :meth:`start`."""
        self.faults = faults
        self.limits = limits
        self._run: _Run | None = None

    def start(self, scenario: Scenario) -> None:
        """Stop any running scenario and start ``scenario`` now (needs a running loop)."""
        self.stop()
        run = _Run(scenario)
        run.task = asyncio.get_running_loop().create_task(
            self._execute(run), name=f"scenario:{scenario.name}"
        )
        self._run = run

    def stop(self) -> bool:
        """Cancel the running scenario (state ``stopped``); True if one was running."""
        run = self._run
        if run is None or run.state != "running":
            return False
        run.state = "stopped"
        if run.task is not None:
            run.task.cancel()
        return True

    async def close(self) -> None:
        """Stop and wait for the task to end (server shutdown)."""
        self.stop()
        task = self._run.task if self._run is not None else None
        if task is not None and not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _execute(self, run: _Run) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for step in run.scenario.steps:
            delay = start + step.at_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                self._apply(step)
            except Exception as exc:  # validated at load; defensive, keep going
                log.exception("scenario %s step %d failed", run.scenario.name, step.index)
                run.error = f"steps[{step.index}]: {exc}"
            run.done.append((step, time.time()))
        run.state = "finished"

    def _apply(self, step: Step) -> None:
        """Apply one step to the registries."""
        spec = step.spec
        if step.action == "fault":
            self.faults.apply(spec)
        elif step.action == "clear":
            if spec == "all":
                self.faults.clear()
            else:
                self.faults.clear(spec["exchange"], spec.get("endpoint"))
        elif step.action == "consume":
            self.limits.consume(spec, time.time())
        else:
            self.limits.configure(spec)

    def to_json(self) -> dict[str, Any] | None:
        """The current/last scenario, or ``None`` if none was started::

        {"name", "description", "source", "state": "running"|"finished"|"stopped",
         "started_at": epoch s, "elapsed_s": s, "steps_total": n,
         "steps_done": [{"index", "at", "<action>": spec, "applied_at": epoch s}],
         "steps_pending": [{"index", "at", "<action>": spec}], "error": str | null,
         "expect": {"alertname", "exchange", "category", "within"} | null}
        """
        run = self._run
        if run is None:
            return None
        scenario = run.scenario
        done = [{**step.to_json(), "applied_at": round(at, 3)} for step, at in run.done]
        pending = [step.to_json() for step in scenario.steps[len(run.done) :]]
        return {
            "name": scenario.name,
            "description": scenario.description,
            "source": scenario.source,
            "state": run.state,
            "started_at": round(run.started_at, 3),
            "elapsed_s": round(time.time() - run.started_at, 3),
            "steps_total": len(scenario.steps),
            "steps_done": done,
            "steps_pending": pending,
            "error": run.error,
            "expect": scenario.expect.to_json() if scenario.expect is not None else None,
        }
