"""``make bench``: run every benchmark, write ``benchmarks/results/latest.json`` and the tables in
``docs/benchmarks.md``.

Each benchmark runs in its own process (``python benchmarks/bench_<name>.py --runs N --json``),
one after the other, so none disturbs another's measurement; the machine should otherwise be
quiet. A benchmark that fails or times out is reported as such and the others still run.

    python benchmarks/run.py [--runs 3] [--only probe,accuracy]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import format_value  # noqa: E402

BENCHMARKS: dict[str, float] = {
    "probe": 1800,
    "accuracy": 600,
    "scale": 1200,
    "receiver": 900,
    "notify": 2400,
    "llm_budget": 600,
    "soak_faults": 2700,
    "ws": 1500,
    "market": 2700,
    "store": 1800,
    # Every shipped scenario in turn plus a 30-minute quiet run, per run: about 100 min each.
    "detection": 21600,
}
"""Benchmark name (``benchmarks/bench_<name>.py``) → timeout in seconds, in running order."""

MAX_RUNS: dict[str, int] = {"soak_faults": 1, "market": 1, "store": 1}
"""Benchmarks whose figures are long soaks already (minutes per figure): at most this many runs
whatever ``--runs`` says (the section records the runs it took)."""

RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
DOC = ROOT / "docs" / "benchmarks.md"


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, OS and the versions of everything measured."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as handle:
        mem_kib = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    packages = {}
    for name in (
        "exchange-watch",
        "prometheus-client",
        "httptools",
        "httpx",
        "fastapi",
        "uvicorn",
        "numpy",
    ):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    tools = {
        "nginx": _first_line(["nginx", "-v"]),
        "blackbox_exporter": _first_line(["prometheus-blackbox-exporter", "--version"]),
        "tinyproxy": _first_line(["tinyproxy", "-v"]),
        "prometheus": _first_line(["prometheus", "--version"]),
        "alertmanager": _first_line(["prometheus-alertmanager", "--version"]),
    }
    return {
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)),
        "cpu": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": packages,
        "tools": tools,
    }


def _machine_line(m: dict[str, Any]) -> str:
    """``"2 cores (CPU model), 23.5 GiB, Python 3.11.7"``: what makes figures comparable."""
    return f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}"


def run_one(name: str, runs: int, timeout: float) -> dict[str, Any]:
    """Run ``bench_<name>.py`` in a child process; its section, or an error section."""
    script = ROOT / "benchmarks" / f"bench_{name}.py"
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "section.json"
        runs = min(runs, MAX_RUNS.get(name, runs))
        argv = [sys.executable, str(script), "--runs", str(runs), "--json", str(out)]
        began = time.monotonic()
        print(f"\n### {name}: {' '.join(argv[1:3])} ... (up to {timeout / 60:.0f} min)", flush=True)
        try:
            done = subprocess.run(argv, cwd=ROOT, timeout=timeout)
            failed = None if done.returncode == 0 else f"exit status {done.returncode}"
        except subprocess.TimeoutExpired:
            failed = f"timed out after {timeout:.0f} s"
        seconds = time.monotonic() - began
        if failed is None and out.exists():
            result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        else:
            result = {
                "name": name,
                "title": name,
                "rows": [],
                "targets": [],
                "notes": [],
                "error": failed or "no result written",
            }
    result["seconds"] = round(seconds, 1)
    result["method"] = _method(script)
    return result


def _method(script: Path) -> str:
    """The module docstring minus its usage line: how the figures are measured."""
    text = script.read_text(encoding="utf-8")
    match = re.match(r'\s*"""(.*?)"""', text, re.S)
    body = match.group(1) if match else ""
    keep = [p for p in body.strip().split("\n\n") if not p.strip().startswith("python ")]
    return "\n\n".join(keep)


def _cell(value: Any) -> str:
    return format_value(value).replace("|", "\\|")


def render_markdown(report: dict[str, Any]) -> str:
    """``docs/benchmarks.md`` from a report."""
    m = report["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`benchmarks/run.py`); raw figures in "
        "`benchmarks/results/latest.json`. Every figure is the median of "
        f"{report['runs']} runs; ratios are taken within the same run. Do not edit by hand.",
        "",
        f"Run {report['started']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"{m['os']}, Python {m['python']}"
        + (
            f"; re-measured {report['updated']} (the section notes say where)."
            if report.get("updated")
            else "."
        ),
        "",
        "| component | version |",
        "|---|---|",
    ]
    for name, version in {**m["packages"], **m["tools"]}.items():
        lines.append(f"| {name} | {_cell(version)} |")
    lines += ["", "## Targets", "", "| target | measured | limit | |", "|---|---|---|---|"]
    for section in report["sections"]:
        for t in section["targets"]:
            mark = "met" if t["met"] else "**missed**"
            lines.append(
                f"| {t['name']} | {_cell(t['value'])} {t['unit']} | {t['op']} "
                f"{_cell(t['limit'])} {t['unit']} | {mark} |"
            )
        if section.get("error"):
            lines.append(f"| {section['name']} | **{section['error']}** | | |")
    for section in report["sections"]:
        lines += ["", f"## {section['title']}", ""]
        if section.get("method"):
            lines += [section["method"], ""]
        if section.get("error"):
            lines += [f"**Not measured: {section['error']}.**", ""]
        elif section.get("runs", report["runs"]) != report["runs"]:
            lines += [f"_Figures of {section['runs']} run(s), not {report['runs']}._", ""]
        rows = section["rows"]
        if rows:
            columns = list(rows[0])
            lines.append("| " + " | ".join(columns) + " |")
            lines.append("|" + "---|" * len(columns))
            for row in rows:
                cells = ("" if c not in row else _cell(row[c]) for c in columns)
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        for note in section["notes"]:
            lines.append(f"- {note}")
        lines.append(f"\n_{section.get('seconds', 0):.0f} s to measure._")
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    """Run the benchmarks; exit 1 when a benchmark failed (not when a target was missed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--only", default="", help="comma-separated subset of " + ",".join(BENCHMARKS)
    )
    args = parser.parse_args()
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        parser.error(
            f"--only: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}"
        )
    report: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": args.runs,
        "machine": machine(),
        "sections": [],
    }
    here = report["machine"]
    partial = set(chosen) != set(BENCHMARKS) and RESULTS.exists()
    if partial:
        # A partial run updates its sections in the last full report, whose header keeps the
        # machine the other sections were measured on.
        previous = json.loads(RESULTS.read_text(encoding="utf-8"))
        report["machine"] = previous.get("machine", here)
        report["sections"] = [s for s in previous.get("sections", []) if s["name"] not in chosen]
        # The report's runs stay the full run's; a re-measured section records its own.
        report["runs"] = previous.get("runs", args.runs)
        report["updated"] = f"{report['started']} ({', '.join(chosen)})"
        report["started"] = previous.get("started", report["started"])
    for name in chosen:
        section = run_one(name, args.runs, BENCHMARKS[name])
        if partial and _machine_line(here) != _machine_line(report["machine"]):
            section["notes"].append(f"Re-measured on {_machine_line(here)}, not the header's.")
        report["sections"].append(section)
    order = list(BENCHMARKS)
    report["sections"].sort(key=lambda s: order.index(s["name"]) if s["name"] in order else 99)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    DOC.write_text(render_markdown(report), encoding="utf-8")
    print(f"\nwrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")
    missed = [t["name"] for s in report["sections"] for t in s["targets"] if not t["met"]]
    failed = [s["name"] for s in report["sections"] if s.get("error")]
    print(f"targets missed: {', '.join(missed) or 'none'}")
    print(f"benchmarks failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
