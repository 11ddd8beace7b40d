"""Shared pieces of the benchmarks: process accounting, pinning, medians and the result shape.

Every benchmark module exposes ``run(runs: int) -> dict`` returning a :func:`section` and can be
run alone (``python benchmarks/bench_x.py --runs 3``); ``benchmarks/run.py`` (``make bench``)
runs them all and writes ``benchmarks/results/latest.json`` and ``docs/benchmarks.md``.

A section is ``{"name", "title", "rows": [...], "targets": [...], "notes": [...]}``: ``rows``
are the table lines (dicts of column → value, each value a median of ``runs`` runs unless the
column name says otherwise), ``targets`` the checks against the issue's targets (see
:func:`target`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by all threads of process ``pid``
    (``/proc/<pid>/stat`` fields utime + stime, converted from clock ticks).

    Raises:
        FileNotFoundError: the process is gone.
    """
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime/stime are fields 14/15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> tuple[int, int]:
    """Current and peak resident set size of ``pid`` in bytes (``VmRSS``, ``VmHWM``)."""
    current = peak = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return current, peak


def pin(pid: int, cpus: Iterable[int]) -> None:
    """Pin every thread of ``pid`` to ``cpus`` (ignored where affinity cannot be set)."""
    wanted = set(cpus) & os.sched_getaffinity(0)
    if not wanted:
        return
    with contextlib.suppress(FileNotFoundError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), wanted)


def cores() -> tuple[list[int], list[int]]:
    """(cores for the system under test, cores for everything else): the last core for the
    process being measured, the rest for load generators and targets (one core: shared)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) == 1:
        return available, available
    return available[-1:], available[:-1]


def median(values: Sequence[float]) -> float:
    """Median of ``values`` (NaN for none)."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100, linear interpolation, as numpy's default)."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def median_rows(runs: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Combine several runs' rows (same order and keys) into one row list of medians; text
    values are taken from the first run."""
    combined: list[dict[str, Any]] = []
    for rows in zip(*runs, strict=True):
        row: dict[str, Any] = {}
        for key, value in rows[0].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
                row[key] = median(values)
            else:
                row[key] = value
        combined.append(row)
    return combined


def target(name: str, value: float, op: str, limit: float, unit: str = "") -> dict[str, Any]:
    """One check against a target: ``value op limit`` with ``op`` one of ``<=`` and ``>=``."""
    met = value <= limit if op == "<=" else value >= limit
    return {"name": name, "value": value, "op": op, "limit": limit, "unit": unit, "met": met}


def section(
    name: str,
    title: str,
    rows: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    notes: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The result of one benchmark module (see the module docstring)."""
    return {
        "name": name,
        "title": title,
        "rows": rows,
        "targets": targets,
        "notes": notes or [],
        **extra,
    }


def print_section(result: dict[str, Any]) -> None:
    """Print a section as a plain table followed by its targets."""
    print(f"\n== {result['title']}")
    rows = result["rows"]
    if rows:
        columns = list(rows[0])
        cells = [[format_value(row.get(c)) for c in columns] for row in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        for r in cells:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    for t in result["targets"]:
        mark = "met" if t["met"] else "MISSED"
        print(
            f"target {t['name']}: {format_value(t['value'])} {t['op']} "
            f"{format_value(t['limit'])} {t['unit']} -> {mark}"
        )
    for note in result["notes"]:
        print(f"note: {note}")


def format_value(value: Any) -> str:
    """Compact text for a table cell."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


@dataclass
class Child:
    """A started child process (its own session, so the whole group can be stopped)."""

    process: subprocess.Popen[bytes]
    name: str

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid


def start(
    argv: list[str],
    name: str,
    env: dict[str, str] | None = None,
    cpus: Iterable[int] | None = None,
    log: Path | None = None,
) -> Child:
    """Start ``argv`` quietly in its own session, optionally pinned to ``cpus`` from exec on;
    with ``log``, its stdout and stderr go to that file (to tell why it died), else nowhere."""
    if cpus is not None:
        argv = ["taskset", "-c", ",".join(str(c) for c in cpus), *argv]
    with contextlib.ExitStack() as files:
        sink: Any = subprocess.DEVNULL
        if log is not None:
            sink = files.enter_context(log.open("wb"))
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    return Child(process, name)


def stop(children: Iterable[Child], timeout: float = 10.0) -> None:
    """SIGTERM each child's process group, then SIGKILL whatever is left after ``timeout``."""
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
    for child in children:
        try:
            child.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.process.wait(timeout=timeout)


@contextlib.contextmanager
def running(*children: Child) -> Iterator[tuple[Child, ...]]:
    """Stop ``children`` on leaving the block, whatever happens."""
    try:
        yield children
    finally:
        stop(children)


def python() -> str:
    """The interpreter running the benchmarks (the project's venv under ``make bench``)."""
    return sys.executable


def settle(seconds: float) -> None:
    """Sleep, so a warm-up or a previous step's tail does not leak into a measurement."""
    time.sleep(seconds)


def main(run: Any, doc: str | None, default_runs: int = 3) -> int:
    """Command line of a benchmark module: ``--runs N`` and ``--json PATH`` (write the section
    there for ``benchmarks/run.py``); prints the table. Exit status 0 even when a target is
    missed: the figures are the product, the runner reports the targets."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=(doc or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=default_runs, help="runs to take medians of")
    parser.add_argument("--json", type=Path, help="also write the section as JSON here")
    args = parser.parse_args()
    result = run(args.runs)
    result.setdefault("runs", args.runs)
    print_section(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return 0
