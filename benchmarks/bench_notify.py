"""Benchmark 5 (issue 7): time to notify with the shipped default intervals and routing.

From a fault injected into the simulator to the notification at a local fake Slack, through the
real Prometheus and Alertmanager, for three incidents:

* hard outage: Bybit drops every connection (the simulator's ``down`` fault, TCP reset, as in
  the ``binance-outage`` demo scenario) → ``ExchangeApiDown``;
* rate-limit ban: Binance answers HTTP 418 -1003 "IP banned until …" with ``Retry-After: 120``
  (its documented minimum ban) → ``ExchangeIpBanned``;
* latency degradation: every Coinbase answer is delayed by 800 ms → ``ExchangeApiLatencyDegraded``.

The stack is the native runner's (``deploy/stack.py``) with every shipped config unchanged: the
exporter schedule of ``deploy/exporter.demo.yml`` (the shipped schedule pointed at the
simulator), ``prometheus/prometheus.yml`` intervals, the rules and thresholds of
``prometheus/rules/``, and ``deploy/alertmanager.yml`` routing, grouping and inhibition. The
receiver diagnoses with its built-in rules (no LLM configured) and posts to a fake Slack
incoming webhook on loopback that timestamps every POST.

The stack starts once. The three scenarios run concurrently, one exchange each (Alertmanager
groups by alertname and exchange, and inhibits only within one exchange, so they cannot mute or
delay each other); each scenario runs ``runs`` times in a row. A run waits until the exchange is
healthy and its alert inactive, sleeps a random 0–5 s (so the injection lands at a different
phase of the probe, scrape and evaluation schedules each time), injects the fault, waits for
the firing Slack message of that alert and exchange, clears the fault and waits for the resolved
message. Time to notify runs from the return of the injecting ``POST /_control/faults`` to the
arrival of the firing message; every wait has a time limit, and a limit reached is a failed run.

    python benchmarks/bench_notify.py --runs 3     # about 16 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common
from benchmarks.notify_bounds import (
    Bounds,
    Scenario,
    expected_bounds,
    shipped_timing,
)
from benchmarks.slack_messages import SLACK_PATH, wait_for_message
from benchmarks.stack_bench import (
    HTTP_TIMEOUT,
    STARTUP_TIMEOUT,
    StackBench,
    join_all,
    run_stack_section,
    slack_only_receiver_env,
)
from deploy.stack import (
    ROOT,
    Stack,
    StackError,
    StackOptions,
)
from testsupport.fake_chat import FakeChat

NAME = "notify"
TITLE = "Time to notify: simulator fault → fake Slack, shipped intervals and routing"
TARGET_SECONDS = 30.0
"""Issue 7: a hard outage is notified within 30 s (median) with the shipped defaults."""

RUN_DIR = ROOT / "run" / "bench-notify"

PHASE_JITTER_SECONDS = 5.0
"""Random delay before each injection: one scrape/evaluation/probe interval."""
READY_TIMEOUT = 240.0
"""A run waits at most this long for its exchange to be healthy and its alert inactive."""


def _log(text: str) -> None:
    print(f"[bench_notify {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- scenarios -------------------------------------------------------------------------------


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        key="hard_outage",
        title="hard outage",
        alertname="ExchangeApiDown",
        exchange="bybit",
        fault={"exchange": "bybit", "fault": "down", "mode": "reset"},
        fault_text=(
            "simulator fault `down` (TCP reset after the request, the binance-outage demo "
            "scenario's fault) on every Bybit endpoint"
        ),
        detection="sweep",
        notify_timeout=90.0,
        resolve_timeout=180.0,
    ),
    Scenario(
        key="ip_ban",
        title="rate-limit ban",
        alertname="ExchangeIpBanned",
        exchange="binance",
        fault={"exchange": "binance", "fault": "banned", "retry_after": 120},
        fault_text=(
            "simulator fault `banned` on Binance: HTTP 418 -1003 'IP banned until …' with "
            "Retry-After 120 (the documented minimum ban); the exporter pauses Binance for 120 s"
        ),
        detection="first_probe",
        notify_timeout=60.0,
        # The rule holds while a ban answer is within its 5m window: ~5 min after the injection.
        resolve_timeout=480.0,
    ),
    Scenario(
        key="latency",
        title="latency degradation",
        alertname="ExchangeApiLatencyDegraded",
        exchange="coinbase",
        fault={"exchange": "coinbase", "fault": "latency", "latency_ms": 800},
        fault_text=(
            "simulator fault `latency` 800 ms (the kraken-latency scenario's mean, without its "
            "±200 ms jitter so the p99 stays under ExchangeApiLatencyHigh's 1 s) on every "
            "Coinbase endpoint: ~0.8 s against a loopback baseline of a few ms"
        ),
        detection="median_window",
        notify_timeout=240.0,
        resolve_timeout=240.0,
        window=60.0,  # the rule compares exchange:...:p50_1m with its 6-hour baseline
        # A run keeps Coinbase slow for ~130 s. Two runs closer than 150 s would put more than
        # half of a 5m window in slow answers, lift the recorded 5m median and, on a stack only
        # minutes old, the 6-hour baseline it is compared with: wait that out.
        min_gap=160.0,
        # A full 1m window of healthy answers before the first run (as on a long-running stack).
        warmup=70.0,
    ),
)


# -- measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """One run of one scenario (seconds; None when not measured).

    Attributes:
        notify_s: injection → firing message at the fake Slack.
        in_prometheus_s: injection → the alert firing in Prometheus (the message's startsAt).
        resolved_s: fault cleared → resolved message at the fake Slack.
        error: why the run failed, if it did.
    """

    notify_s: float | None
    in_prometheus_s: float | None = None
    resolved_s: float | None = None
    error: str | None = None


class NotifyBench(StackBench):
    """The stack bench with benchmark 5's scenario runs: readiness, injection, the firing and
    resolved messages."""

    def blockers(self, client: httpx.Client, scenario: Scenario) -> list[str]:
        """What keeps ``scenario`` from starting a run: an endpoint of its exchange down, its
        alert pending or firing, another alert of the exchange firing (it might inhibit), or
        (latency) no baseline yet. Empty when ready."""
        exchange = scenario.exchange
        up = self.query(
            client, f'min(exchange_api_up{{job="exchange-exporter",exchange="{exchange}"}})'
        )
        if not up:
            return ["prometheus has no exchange_api_up"]
        reasons = []
        if float(up[0]["value"][1]) != 1:
            reasons.append(f"an endpoint of {exchange} is down")
        alerts = self.query(client, f'ALERTS{{exchange="{exchange}"}}') or []
        for alert in alerts:
            labels = alert["metric"]
            if labels.get("alertname") == scenario.alertname or labels["alertstate"] == "firing":
                reasons.append(f"{labels.get('alertname')} is {labels['alertstate']}")
        if scenario.detection == "median_window":
            baseline = self.query(
                client,
                "exchange:exchange_api_request_duration_seconds:p50_5m_avg_6h"
                f'{{exchange="{exchange}"}}',
            )
            if not baseline:
                reasons.append("no latency baseline yet")
        return reasons

    def run_scenario(self, scenario: Scenario, runs: int, started: float) -> list[RunResult]:
        """Run ``scenario`` ``runs`` times in a row; never raises for a failed run."""
        results: list[RunResult] = []
        with self.client() as client:
            self.sleep(started + scenario.warmup - time.monotonic())
            last_clear: float | None = None
            for index in range(runs):
                if self.abort.is_set():
                    results.append(RunResult(None, error="aborted"))
                    continue
                label = f"{scenario.key} run {index + 1}/{runs}"
                if last_clear is not None:
                    self.sleep(last_clear + scenario.min_gap - time.monotonic())
                blocking = self.wait_ready(client, scenario)
                if blocking:
                    error = f"not ready within {READY_TIMEOUT:g} s: {'; '.join(blocking)}"
                    _log(f"{label}: {error}")
                    results.append(RunResult(None, error=error))
                    continue
                result, last_clear = self._one_run(client, scenario, label)
                results.append(result)
        return results

    def wait_ready(self, client: httpx.Client, scenario: Scenario) -> list[str]:
        """Wait up to :data:`READY_TIMEOUT` for :meth:`blockers` to clear; return what still
        blocks (empty when ready; ``aborted`` when aborted)."""
        blocking: list[str] = ["aborted"]

        def ready() -> bool:
            blocking[:] = self.blockers(client, scenario)
            return not blocking

        return [] if self.wait(ready, READY_TIMEOUT) else blocking or ["aborted"]

    def _one_run(
        self, client: httpx.Client, scenario: Scenario, label: str
    ) -> tuple[RunResult, float]:
        self.sleep(self.rng.uniform(0, PHASE_JITTER_SECONDS))
        clear = {"exchange": scenario.exchange, "fault": "none"}
        try:
            try:
                self.fault(client, scenario.fault)
            except httpx.HTTPError as exc:
                _log(f"{label}: injecting failed: {exc!r}")
                return RunResult(None, error=f"injecting failed: {exc!r}"), time.monotonic()
            injected, injected_wall = time.monotonic(), time.time()
            _log(f"{label}: injected {scenario.fault}")
            firing = wait_for_message(
                self.slack,
                lambda m: m.matches(scenario.alertname, scenario.exchange, "firing"),
                injected,
                scenario.notify_timeout,
                self.abort,
            )
        finally:
            with contextlib.suppress(httpx.HTTPError):
                self.fault(client, clear)
        cleared = time.monotonic()
        if firing is None:
            error = f"no firing {scenario.alertname} message within {scenario.notify_timeout:g} s"
            _log(f"{label}: {error}")
            # Let the alert run its course before the next run (readiness checks it too).
            self.wait(lambda: not self.blockers(client, scenario), scenario.resolve_timeout)
            return RunResult(None, error=error), cleared
        firing_post, firing_message = firing
        notify = firing_post.arrived - injected
        starts_at = firing_message.starts_at
        in_prometheus = starts_at - injected_wall if starts_at is not None else None
        _log(f"{label}: firing at the fake Slack after {notify:.1f} s; fault cleared")
        resolved = wait_for_message(
            self.slack,
            lambda m: m.matches(scenario.alertname, scenario.exchange, "resolved"),
            firing_post.arrived,
            scenario.resolve_timeout,
            self.abort,
        )
        if resolved is None:
            _log(f"{label}: no resolved message within {scenario.resolve_timeout:g} s")
            return RunResult(notify, in_prometheus, None), cleared
        resolved_s = resolved[0].arrived - cleared
        _log(f"{label}: resolved at the fake Slack {resolved_s:.1f} s after the fault cleared")
        return RunResult(notify, in_prometheus, resolved_s), cleared


def measure(runs: int, run_dir: Path = RUN_DIR) -> dict[str, list[RunResult]]:
    """Start the stack and a fake Slack, run every scenario ``runs`` times, stop everything.

    Raises:
        StackError: the stack did not start, or the exchanges did not come up.
    """
    abort = threading.Event()
    slack = FakeChat().start()
    results: dict[str, list[RunResult]] = {}
    try:
        options = StackOptions(
            run_dir=run_dir,
            receiver_env=slack_only_receiver_env(f"{slack.url}{SLACK_PATH}"),
            ports={},  # free ports: never collide with a demo or another benchmark
        )
        _log(f"starting the stack in {run_dir}")
        with Stack(options) as stack:
            bench = NotifyBench(stack, slack, abort)
            with bench.client() as client:
                if not bench.wait(lambda: bench.all_up(client, 5), STARTUP_TIMEOUT):
                    raise StackError(
                        f"not every exchange was up within {STARTUP_TIMEOUT:g} s:\n"
                        + stack.log_tail("exporter")
                    )
            started = time.monotonic()
            _log("every exchange is up; running the scenarios")
            threads = []
            for scenario in SCENARIOS:

                def work(scenario: Scenario = scenario) -> None:
                    try:
                        results[scenario.key] = bench.run_scenario(scenario, runs, started)
                    except Exception as exc:  # a bug must not hang the others
                        _log(f"{scenario.key}: {exc!r}")
                        results[scenario.key] = [RunResult(None, error=repr(exc))] * runs

                thread = threading.Thread(target=work, name=f"bench-{scenario.key}", daemon=True)
                thread.start()
                threads.append(thread)
            join_all(threads, abort, grace=HTTP_TIMEOUT * 3)
            _log("done; stopping the stack")
    finally:
        slack.stop()
    return results


# -- the result ------------------------------------------------------------------------------


def _values(results: Sequence[RunResult], attribute: str) -> list[float]:
    return [v for r in results if (v := getattr(r, attribute)) is not None]


def build_section(
    results: Mapping[str, Sequence[RunResult]],
    bounds: Mapping[str, Bounds],
    runs: int,
    scenarios: Sequence[Scenario] = SCENARIOS,
) -> dict[str, Any]:
    """The benchmark's section (see :func:`common.section`) from measured runs.

    Rows hold medians, minimum and maximum of the successful runs; the target takes the median
    over all runs of the hard outage with a failed run counted as infinitely late.
    """
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    outage_all: list[float] = []
    for scenario in scenarios:
        measured = list(results.get(scenario.key, []))
        measured += [RunResult(None, error="not run")] * (runs - len(measured))
        notify = _values(measured, "notify_s")
        bound = bounds[scenario.key]
        rows.append(
            {
                "scenario": scenario.title,
                "alert": scenario.alertname,
                "exchange": scenario.exchange,
                "runs": f"{len(notify)}/{len(measured)}",
                "median_s": common.median(notify),
                "min_s": min(notify) if notify else math.nan,
                "max_s": max(notify) if notify else math.nan,
                "each_run_s": ", ".join(
                    f"{r.notify_s:.1f}" if r.notify_s is not None else "failed" for r in measured
                ),
                "in_prometheus_median_s": common.median(_values(measured, "in_prometheus_s")),
                "delivery_median_s": common.median(
                    [
                        r.notify_s - r.in_prometheus_s
                        for r in measured
                        if r.notify_s is not None and r.in_prometheus_s is not None
                    ]
                ),
                "resolved_median_s": common.median(_values(measured, "resolved_s")),
                "expected_s": f"{bound.low:.0f}-{bound.high:.0f}",
            }
        )
        if scenario.key == "hard_outage":
            outage_all = [r.notify_s if r.notify_s is not None else math.inf for r in measured]
        notes.append(f"{scenario.title}: {scenario.fault_text} → {scenario.alertname}.")
        notes.append(
            f"{scenario.title} expected {bound.low:g}-{bound.high:g} s (midpoint "
            f"{bound.midpoint:g} s) = {bound.terms}: a fixed {bound.low:g} s plus up to "
            f"{bound.high - bound.low:g} s of schedule phase; when the alert re-fires while "
            f"Alertmanager still holds its group (Prometheus re-sends the resolved alert for "
            f"15 min), group_wait is replaced by waiting for the group's next group_interval tick: "
            f"{bound.refire_low:g}-{bound.refire_high:g} s."
        )
        for index, r in enumerate(measured, 1):
            if r.error:
                notes.append(f"{scenario.title} run {index} failed: {r.error}.")
    notes += [
        "Shipped configs unchanged (native stack, deploy/stack.py): exporter schedule "
        "deploy/exporter.demo.yml, prometheus/prometheus.yml intervals, prometheus/rules/ and "
        "thresholds.yml, deploy/alertmanager.yml routing, grouping and inhibition; receiver with "
        "the rules diagnosis (no LLM) and the Slack notifier pointed at a local fake Slack.",
        "Time to notify: from the return of POST /_control/faults to the arrival of the first "
        "firing Slack message of that alert and exchange. in_prometheus = until the alert fired "
        "in Prometheus (the message's startsAt); delivery = the rest (Alertmanager group_wait or "
        "group_interval tick + receiver + Slack). resolved = from clearing the fault to the "
        "resolved Slack message (informational).",
        "One stack for all runs; the scenarios run concurrently on three exchanges (groups and "
        "inhibition are per exchange), each run after its exchange is healthy and its alert "
        "inactive, with a random 0-5 s delay before the injection. Scrape and evaluation keep "
        "their relative phase for the life of a stack (the exporter re-phases an exchange's "
        "probes when it recovers), so a fresh stack can land elsewhere within the expected "
        "range. On the critical route group_wait, group_interval and the evaluation interval "
        "are all 5 s, so its delivery share is ~5 s whether or not the group was still alive.",
        "Resolution: ExchangeApiDown resolves once a probe succeeds again (the circuit breaker "
        "and transport backoff space the probes of a failing exchange up to 60 s) + scrape + "
        "evaluation + the critical route's 5 s group_interval; ExchangeIpBanned holds while a ban "
        "answer is inside its 5m window (the exporter also pauses Binance for the 120 s "
        "Retry-After), so ~5 min; ExchangeApiLatencyDegraded once half of the 1m window is fast "
        "again + the warning route's 1 m group_interval. Resolved messages leave on the "
        "Alertmanager group's group_interval ticks, which are phase-locked to the firing "
        "message, so resolved times come out as near-multiples of 5 s (critical) or 1 m "
        "(warning).",
    ]
    value = common.median(outage_all) if outage_all else math.nan
    return common.section(
        name=NAME,
        title=TITLE,
        rows=rows,
        targets=[
            common.target("hard outage time to notify (median)", value, "<=", TARGET_SECONDS, "s")
        ],
        notes=notes,
    )


def run(runs: int = 3) -> dict[str, Any]:
    """Measure every scenario ``runs`` times (at least one) on one stack; return the section."""
    runs = max(1, runs)
    bounds = {s.key: expected_bounds(s, shipped_timing(s)) for s in SCENARIOS}
    for scenario in SCENARIOS:
        bound = bounds[scenario.key]
        _log(f"{scenario.title}: expected {bound.low:g}-{bound.high:g} s ({bound.terms})")
    return build_section(measure(runs), bounds, runs)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--runs N`` (default 3); prints the section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (default 3)")
    parser.add_argument("--json", type=Path, help="also write the section as JSON here")
    args = parser.parse_args(argv)
    return run_stack_section(lambda: run(args.runs), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
