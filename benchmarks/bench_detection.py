"""Benchmark (issue 18): detection per incident class, and silence on an ordinary day.

With every shipped config unchanged (the native stack of ``deploy/stack.py``: the exporter
schedule of ``deploy/exporter.demo.yml``, ``prometheus/prometheus.yml``, the rules and
thresholds, ``deploy/alertmanager.yml``; the receiver with its rules diagnosis, no LLM), every
scenario of ``simulator/scenarios/`` is played in turn, each once the stack is quiet again. Per
scenario: the alert it should page as (its ``expect:`` block), the first notification's alert,
its route, the time from the scenario's start to the expected alert's firing notification, the
diagnosis' ``root_cause_category``, and the time from clearing to its resolved notification
(:mod:`benchmarks.detection_runs`). Then a quiet run (default 30 minutes) under ordinary jitter
(:mod:`benchmarks.quiet_jitter`: latency noise, an isolated timeout or 5xx per exchange every few
minutes, a WebSocket stream closed by the exchange now and then) counts every notification: the
Watchdog goes to the receiver's heartbeat endpoint, not to notifiers, so every one counts.

    python benchmarks/bench_detection.py --runs 3                 # ~5 hours
    python benchmarks/bench_detection.py --runs 3 --concurrent    # ~2 hours, 3 stacks at once
    python benchmarks/bench_detection.py --runs 1 --quiet-minutes 0 --scenarios binance-outage
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from benchmarks import common
from benchmarks.detection_runs import NotificationLog, ScenarioPlayer, ScenarioRun
from benchmarks.quiet_jitter import JitterPlayer, plan
from benchmarks.stack_bench import (
    STARTUP_TIMEOUT,
    StackBench,
    join_all,
    run_stack_section,
    slack_only_receiver_env,
)
from deploy.stack import DEMO_EXPORTER_CONFIG, ROOT, Stack, StackError, StackOptions
from exporter.config import load_config
from simulator.scenario import find_scenario, parse_duration, shipped_scenarios
from testsupport.fake_chat import FakeChat

NAME = "detection"
TITLE = "Detection per incident class and silence on an ordinary day (shipped configs)"
RUN_DIR = ROOT / "run" / "bench-detection"
SLACK_PATH = "/slack/T000/B000/bench-detection"
QUIET_MINUTES = 30.0
STAGGER_SECONDS = 20.0
"""Between the starts of concurrent passes."""
QUIET_TAIL_SECONDS = 120.0
"""After the last blip, how long notifications are still counted (an alert's ``for`` and the
warning route's group_wait)."""


def _log(text: str) -> None:
    print(f"[bench_detection {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def quiet_run(
    stack: Stack, player: ScenarioPlayer, log: NotificationLog, minutes: float, seed: int
) -> dict[str, Any]:
    """Jitter for ``minutes`` on a quiet stack; count the notifications meanwhile."""
    config = load_config(DEMO_EXPORTER_CONFIG)
    endpoints = {e.name: [p.name for p in e.endpoint_plan()] for e in config.exchanges}
    seconds = minutes * 60.0
    blips = plan(endpoints, seconds, random.Random(seed))
    with player.bench.client() as client:
        blocking = player.wait_quiet(client)
    if blocking:
        return {"error": f"stack not quiet: {'; '.join(blocking)}", "notifications": []}
    log.skip_to_end()
    jitter = JitterPlayer(stack.urls["simulator"], blips, player.bench.abort)
    _log(f"quiet run: {minutes:g} min, {len(blips)} blips planned")
    jitter.start(list(endpoints))
    player.bench.sleep(seconds + QUIET_TAIL_SECONDS)
    jitter.join(5.0)
    with player.bench.client() as client:
        player.clear(client)
    log.poll()
    notified = [f"{n.status} {n.alertname} {n.exchange or '-'} ({n.route})" for n in log.seen]
    _log(f"quiet run: {len(notified)} notifications: {notified}")
    return {
        "minutes": minutes,
        "blips": len(jitter.applied),
        "blip_kinds": dict(Counter(b.body["fault"] for _, b in jitter.applied)),
        "errors": jitter.errors,
        "notifications": notified,
    }


HISTORY_SECONDS: dict[str, float] = {"ExchangeVolumeSpike": 3600.0 + 120.0}
"""Stack age an alert needs before it can fire, by alert name. ExchangeVolumeSpike compares
the 5m volume rate with the hour before and only fires on a series that existed an hour ago
(``offset 1h`` in prometheus/rules/exchange-market-alerts.yml: no page from a young series),
plus two minutes for the recording rules and its ``for``. Scenarios expecting such an alert
are played last in each pass (after the quiet run), once the stack is that old."""


def _history_needed(name: str) -> float:
    """Seconds of stack age scenario ``name``'s expected alert needs (0: none)."""
    raw = yaml.safe_load(find_scenario(name).read_text(encoding="utf-8")) or {}
    expect = raw.get("expect") or {}
    return HISTORY_SECONDS.get(str(expect.get("alertname")), 0.0)


def play_pass(
    index: int,
    names: Sequence[str],
    quiet_minutes: float,
    abort: threading.Event,
    run_dir: Path,
) -> tuple[dict[str, ScenarioRun], dict[str, Any] | None]:
    """One pass on a stack of its own in ``run_dir``: the scenarios that need no history, the
    quiet run, then those that need the stack's history (:data:`HISTORY_SECONDS`)."""
    needs = {name: _history_needed(name) for name in names}
    order = [n for n in names if not needs[n]] + [n for n in names if needs[n]]
    slack = FakeChat().start()
    runs: dict[str, ScenarioRun] = {}
    quiet: dict[str, Any] | None = None
    try:
        options = StackOptions(
            run_dir=run_dir,
            receiver_env=slack_only_receiver_env(f"{slack.url}{SLACK_PATH}"),
            ports={},
        )
        _log(f"pass {index}: starting the stack in {run_dir}")
        with Stack(options) as stack:
            started = time.monotonic()
            bench = StackBench(stack, slack, abort)
            with bench.client() as client:
                if not bench.wait(lambda: bench.all_up(client, 5), STARTUP_TIMEOUT):
                    raise StackError("not every exchange came up:\n" + stack.log_tail("exporter"))
            log = NotificationLog(stack.notify_file)
            player = ScenarioPlayer(bench, log)
            for name in order:
                if needs[name] and quiet is None and quiet_minutes > 0:
                    quiet = quiet_run(stack, player, log, quiet_minutes, seed=index)
                wait = needs[name] - (time.monotonic() - started)
                if wait > 0:
                    _log(f"pass {index}: {name} needs {needs[name]:g} s of history: {wait:.0f} s")
                    bench.sleep(wait)
                _log(f"pass {index}: {name}")
                runs[name] = player.play(name)
                _log(f"pass {index}: {name}: {_describe(runs[name])}")
            if quiet is None and quiet_minutes > 0:
                quiet = quiet_run(stack, player, log, quiet_minutes, seed=index)
    except BaseException:
        abort.set()
        raise
    finally:
        slack.stop()
    return runs, quiet


def measure(
    runs: int,
    names: Sequence[str],
    quiet_minutes: float,
    concurrent: bool = False,
    run_dir: Path = RUN_DIR,
) -> tuple[dict[str, list[ScenarioRun]], list[dict[str, Any]]]:
    """``runs`` passes of ``names``, each on a stack of its own with a quiet run, one after the
    other or (``concurrent``) all at once in threads. Raises what a pass raised."""
    abort = threading.Event()
    results: dict[str, list[ScenarioRun]] = {name: [] for name in names}
    quiet: list[dict[str, Any]] = []
    passes: list[tuple[dict[str, ScenarioRun], dict[str, Any] | None] | None] = [None] * runs
    failures: list[BaseException] = []

    def one(index: int) -> None:
        try:
            passes[index] = play_pass(
                index + 1, names, quiet_minutes, abort, run_dir / f"pass{index + 1}"
            )
        except BaseException as exc:
            abort.set()
            failures.append(exc)

    if concurrent:
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(runs)]
        for thread in threads:
            thread.start()
            time.sleep(STAGGER_SECONDS)  # the stacks' start-up does not overlap
        join_all(threads, abort, grace=30.0)
    else:
        for index in range(runs):
            one(index)
            if failures:
                break
    if failures:
        raise failures[0]
    for measured in passes:
        if measured is None:
            continue
        for name, run in measured[0].items():
            results[name].append(run)
        if measured[1] is not None:
            quiet.append(measured[1])
    return results, quiet


def _describe(run: ScenarioRun) -> str:
    if run.error and run.notify_s is None:
        return f"failed: {run.error}"
    first = run.first.alertname if run.first else "-"
    return (
        f"notified {run.notify_s:.1f} s (first notification: {first}), category "
        f"{run.expected.category if run.expected else '-'}, resolved "
        f"{'-' if run.resolved_s is None else f'{run.resolved_s:.0f} s'}, "
        f"others {run.others or 'none'}"
    )


def _most_common(values: list[str]) -> str:
    if not values:
        return "-"
    counts = Counter(values).most_common()
    return counts[0][0] if len(counts) == 1 else ", ".join(f"{v} ×{n}" for v, n in counts)


def build_section(
    results: dict[str, list[ScenarioRun]], quiet: list[dict[str, Any]], runs: int
) -> dict[str, Any]:
    """The ``detection`` section (see :func:`common.section`) from the measured runs."""
    rows: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    notes: list[str] = []
    right = 0
    for name, measured in results.items():
        expect = next((r.expect for r in measured if r.expect), {})
        within = parse_duration(expect["within"]) if expect else float("nan")
        # A failed run counts as infinitely late in the median.
        times = [r.notify_s if r.notify_s is not None else float("inf") for r in measured]
        categories = [r.expected.category for r in measured if r.expected]
        firsts = [r.first.alertname for r in measured if r.first]
        ok = bool(measured) and all(
            r.expected is not None
            and r.expected.category == expect.get("category")
            and r.first is not None
            and r.first.alertname == expect.get("alertname")
            for r in measured
        )
        right += ok
        rows.append(
            {
                "scenario": name,
                "expected": f"{expect.get('alertname', '-')} {expect.get('exchange') or ''}",
                "first_notified": _most_common(firsts),
                "route": _most_common([r.expected.route for r in measured if r.expected]),
                "notify_s": common.median(times) if times else float("nan"),
                "each_run_s": ", ".join(
                    f"{t:.1f}" if t != float("inf") else "failed" for t in times
                ),
                "budget_s": within,
                "category": _most_common(categories),
                "expected_category": expect.get("category", "-"),
                "resolved_s": common.median([r.resolved_s for r in measured if r.resolved_s]),
                "other_notifications": sum(len(r.others) for r in measured),
            }
        )
        targets.append(
            common.target(
                f"{name}: {expect.get('alertname')} notified (median)",
                rows[-1]["notify_s"],
                "<=",
                within,
                "s",
            )
        )
        for index, r in enumerate(measured, 1):
            if r.error:
                notes.append(f"{name} run {index}: {r.error}.")
            if r.others:
                notes.append(f"{name} run {index} also notified: {'; '.join(r.others)}.")
    targets.append(
        common.target(
            "scenarios notified first under their expected alert, with the expected category",
            right,
            ">=",
            len(results),
        )
    )
    for index, q in enumerate(quiet, 1):
        rows.append(
            {
                "scenario": f"quiet run {index} ({q.get('minutes', 0):g} min)",
                "expected": "no notification",
                "first_notified": (q["notifications"] or ["-"])[0],
                "other_notifications": len(q["notifications"]),
            }
        )
        notes.append(
            f"quiet run {index}: {q.get('blips', 0)} blips applied "
            f"({q.get('blip_kinds', {})}); notifications: {q['notifications'] or 'none'}"
            + (f"; {q['error']}" if q.get("error") else "")
        )
    if quiet:
        counts = [len(q["notifications"]) if not q.get("error") else float("inf") for q in quiet]
        targets.append(
            common.target(
                "quiet run: notifications besides the Watchdog (median)",
                common.median(counts),
                "<=",
                0,
            )
        )
    notes.append(
        "notify_s runs from the scenario's start (its first step) to the expected alert's "
        "firing notification (the receiver's JSONL line); resolved_s from clearing every fault "
        "and limit to its resolved notification. A run starts once every exchange is up and no "
        "alert but the Watchdog is pending or firing. Shipped configs, rules diagnosis (no LLM)."
    )
    return common.section(NAME, TITLE, rows, targets, notes, runs=runs)


def run(
    runs: int = 3,
    names: Sequence[str] | None = None,
    quiet_minutes: float = QUIET_MINUTES,
    concurrent: bool = False,
) -> dict[str, Any]:
    """Measure ``runs`` passes (at least one); return the section."""
    names = list(names or shipped_scenarios())
    results, quiet = measure(max(1, runs), names, quiet_minutes, concurrent)
    section = build_section(results, quiet, max(1, runs))
    if concurrent:
        section["notes"].append(
            f"The {max(1, runs)} passes ran at once, each on a stack of its own, sharing this "
            "machine's CPUs."
        )
    return section


def main(argv: list[str] | None = None) -> int:
    """Command line; prints the section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="passes (default 3)")
    parser.add_argument("--json", type=Path, help="also write the section as JSON here")
    parser.add_argument(
        "--quiet-minutes",
        type=float,
        default=QUIET_MINUTES,
        help="length of each quiet run (0: none)",
    )
    parser.add_argument("--scenarios", help="comma-separated scenario names (default: all)")
    parser.add_argument(
        "--concurrent",
        action="store_true",
        help="run the passes at once, each on its own stack (about the time of one pass)",
    )
    args = parser.parse_args(argv)
    names = args.scenarios.split(",") if args.scenarios else None
    unknown = sorted(set(names or ()) - set(shipped_scenarios()))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; shipped: {', '.join(shipped_scenarios())}")
    return run_stack_section(
        lambda: run(args.runs, names, args.quiet_minutes, args.concurrent), args.json
    )


if __name__ == "__main__":
    raise SystemExit(main())
