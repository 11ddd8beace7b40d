"""Soak under faults: the shipped schedule must never make things worse when one endpoint fails.

For each failure kind — ``http_error`` 502, ``reset`` (``down`` mode reset), ``hang``,
``rate_limited``, ``banned`` (Binance, Bybit, Kraken: the simulator has no ban answer for OKX
and Coinbase), ``api_error`` (a documented non-rate-limit code: Binance -1000, Bybit 10016, OKX
50026, Kraken ``EGeneral:Internal error``, Coinbase 500), ``maintenance`` (``endpoint: status``;
not Coinbase, which has no status API), ``slow_body`` (64 B/s) — and a healthy baseline, a fresh
simulator (``python -m simulator.cli``, request limits ON) and a fresh ``exchange-exporter
--config deploy/exporter.demo.yml`` (``SIMULATOR_URL`` pointing at it) are started, so limits
and bans never carry over. Every exchange gets normal latency jitter (exchange-wide ``latency``
40 ms ± 30 ms). After a 10 s healthy warm-up the simulator's counters are zeroed and the fault
is set on ONE endpoint of EACH exchange at once (``ticker``; ``status`` for ``maintenance``);
the exchanges are independent, so one pair measures all five. Faults do not stack: the faulted
endpoint loses the jitter. Then the pair runs for ``--minutes`` (default 3) per kind.

Measured from ``GET /_control/stats`` (polled every 0.2 s; control calls are not counted):
requests/min per exchange (all its endpoints) and of the faulted endpoint; the ratio to the
healthy baseline's requests/min of the same exchange (goal ≤ 1.5×); the usage of each limit
the exporter's profile documents (``LimitRule``: weight = ``endpoint_specs`` weight × requests
of the endpoints it covers) as a share of the limit — the average (weight per window at the
mean rate) and the peak over any sliding window, taken between two polls at least one window
apart (so a window up to one poll gap longer than the limit's, the notes give the longest: an
upper bound; ``n/a`` when the measurement is shorter than the window) — the row shows the limit
with the highest share; and
the limit answers of the simulator's own limiters (Binance 6000 weight/min → 429/418, Bybit
600 requests/5 s → 403; goal 0). The stats keep those apart from the answers a fault injects
(``limit_responses`` counts only the limiters'; injected 429/418/403 appear in ``outcomes``
only), so the ``rate_limited`` and ``banned`` kinds do not count against that goal. OKX,
Coinbase and Kraken have no simulated limiter (``n/a``): their limits show only as shares.

    python benchmarks/bench_soak_faults.py [--minutes 3] [--parallel 1] [--runs 1] [--json F]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.common import (
    ROOT,
    Child,
    cpu_seconds,
    median_rows,
    print_section,
    python,
    section,
    start,
    stop,
    target,
)
from deploy.stack import StackError, free_port, wait_for_http
from exporter.config import ExchangeConfig, load_config
from exporter.profiles import get_profile
from simulator.failure_kinds import FAILURE_KINDS, endpoint_fault

CONFIG = ROOT / "deploy" / "exporter.demo.yml"
LATENCY_MS, JITTER_MS = 40.0, 30.0
WARMUP_S = 10.0
SAMPLE_S = 0.2
RATIO_GOAL = 1.5
HEALTHY = "healthy"
STARTS = 2
"""Attempts to start a pair (a port picked free can be taken by another pair's client socket
before the child binds it)."""

LIMITED = frozenset({"binance", "bybit"})
"""Exchanges with a simulated limiter (the others never answer a limit by themselves)."""

KINDS: tuple[str, ...] = (HEALTHY, *FAILURE_KINDS)


def fault_for(kind: str, exchange: str) -> dict[str, Any] | None:
    """The endpoint fault (``POST /_control/faults`` body) of ``kind`` for ``exchange`` on its
    ticker (:func:`simulator.failure_kinds.endpoint_fault`), or ``None`` where the kind does not
    apply (the healthy baseline, a kind the exchange lacks)."""
    return None if kind == HEALTHY else endpoint_fault(kind, exchange, "ticker")


@dataclass
class Sample:
    """One poll of ``/_control/stats``: seconds since the counters were zeroed, and the
    requests per exchange per endpoint so far."""

    at: float
    requests: dict[str, dict[str, int]]


@dataclass
class Soak:
    """What one simulator/exporter pair recorded for one failure kind."""

    kind: str
    elapsed_s: float
    samples: list[Sample]
    stats: dict[str, Any]
    faults: dict[str, dict[str, Any]]
    exporter_cpu_s: float
    errors: list[str] = field(default_factory=list)


def _post_fault(client: httpx.Client, sim: str, spec: Mapping[str, Any]) -> None:
    """Set one fault; a refused spec is a bug of this benchmark, so raise with the answer."""
    answer = client.post(f"{sim}/_control/faults", json=dict(spec))
    if answer.status_code != 200:
        raise RuntimeError(f"simulator refused fault {dict(spec)}: {answer.text}")


def _tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a child's log, for an error message."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"


def soak_one(kind: str, minutes: float, exchanges: Sequence[ExchangeConfig]) -> Soak:
    """Run one fresh simulator + exporter pair with ``kind`` on one endpoint of each exchange
    for ``minutes`` after the warm-up; return the polled counters.

    Raises:
        RuntimeError: a child died before answering, or the simulator refused a fault.
    """
    failures = []
    for _ in range(STARTS):
        with tempfile.TemporaryDirectory(prefix=f"soak-{kind}-") as directory:
            logs = Path(directory)
            try:
                return _soak(kind, minutes, exchanges, logs)
            except StackError as exc:
                detail = "; ".join(f"{p.stem}: {_tail(p)}" for p in sorted(logs.glob("*.log")))
                failures.append(f"{exc} ({detail})")
    raise RuntimeError(f"{kind}: no simulator/exporter pair started: {'; '.join(failures)}")


def _soak(kind: str, minutes: float, exchanges: Sequence[ExchangeConfig], logs: Path) -> Soak:
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    argv = [python(), "-m", "simulator.cli", "--listen", f"127.0.0.1:{sim_port}"]
    children: list[Child] = [start(argv, "simulator", log=logs / "simulator.log")]
    try:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            wait_for_http(f"{sim}/_control/health", timeout=20, process=children[0].process)
            for exchange in exchanges:
                jitter = {"latency_ms": LATENCY_MS, "jitter_ms": JITTER_MS}
                _post_fault(client, sim, {"exchange": exchange.name, "fault": "latency", **jitter})
            exp_port = free_port()  # late: another pair's client sockets take ports too
            exp = f"http://127.0.0.1:{exp_port}"
            argv = [python(), "-m", "exporter.cli", "--config", str(CONFIG)]
            argv += ["--listen", f"127.0.0.1:{exp_port}"]
            env = {"SIMULATOR_URL": sim}
            exporter = start(argv, "exporter", env, log=logs / "exporter.log")
            children.append(exporter)
            wait_for_http(f"{exp}/healthz", timeout=20, process=exporter.process)
            time.sleep(WARMUP_S)
            faults = {}
            for exchange in exchanges:
                spec = fault_for(kind, exchange.name)
                if spec is not None and spec["endpoint"] in exchange.endpoint_names():
                    faults[exchange.name] = spec
            cpu_before = cpu_seconds(exporter.pid)
            stats = client.delete(f"{sim}/_control/stats").json()
            began = time.monotonic()
            for spec in faults.values():
                _post_fault(client, sim, spec)
            samples = [Sample(0.0, stats["requests"])]
            duration = minutes * 60.0
            while samples[-1].at < duration:
                time.sleep(SAMPLE_S)
                stats = client.get(f"{sim}/_control/stats").json()
                samples.append(Sample(time.monotonic() - began, stats["requests"]))
            cpu = cpu_seconds(exporter.pid) - cpu_before
            errors = []
            if exporter.process.poll() is not None:
                errors.append(f"{kind}: exporter exited with {exporter.process.returncode}")
    finally:
        stop(list(reversed(children)))
    return Soak(kind, samples[-1].at, samples, stats, faults, cpu, errors)


def peak_in_window(times: Sequence[float], totals: Sequence[float], window: float) -> float:
    """Largest increase of the cumulative ``totals`` (sampled at ``times``) between two samples
    at least ``window`` seconds apart, the pair chosen as close to ``window`` as the sampling
    allows (an upper bound of the busiest window); NaN if the samples span less than it."""
    best = math.nan
    j = 0
    for i, now in enumerate(times):
        if now - times[0] < window:
            continue
        while times[j + 1] <= now - window:
            j += 1
        increase = totals[i] - totals[j]
        best = increase if math.isnan(best) else max(best, increase)
    return best


def _limit_label(endpoints: frozenset[str] | None, limit: float, window: float) -> str:
    scope = "all" if endpoints is None else ",".join(sorted(endpoints))
    return f"{scope} {limit:g}/{window:g}s"


def exchange_figures(soak: Soak, exchange: ExchangeConfig) -> dict[str, Any]:
    """Requests/min, per-endpoint requests/min, each documented limit's average and peak share,
    and the limiter's own answers for ``exchange`` in one soak."""
    name = exchange.name
    minutes = soak.elapsed_s / 60.0
    final = soak.samples[-1].requests.get(name, {})
    profile = get_profile(exchange.profile)
    specs = profile.endpoint_specs(exchange.effective_symbol())
    times = [s.at for s in soak.samples]
    limits = []
    for rule in profile.limits:

        def weighted(counts: Mapping[str, int], rule: Any = rule) -> float:
            return float(
                sum(
                    n * (specs[ep].weight if ep in specs else 1)
                    for ep, n in counts.items()
                    if rule.applies_to(ep)
                )
            )

        totals = [weighted(s.requests.get(name, {})) for s in soak.samples]
        average = totals[-1] * rule.window_seconds / soak.elapsed_s
        peak = peak_in_window(times, totals, rule.window_seconds)
        limits.append(
            {
                "limit": _limit_label(rule.endpoints, rule.limit, rule.window_seconds),
                "rule": rule.name,
                "average_per_window": average,
                "peak_per_window": peak,
                "average_share": average / rule.limit,
                "peak_share": peak / rule.limit,
            }
        )
    answered = soak.stats.get("limit_responses", {}).get(name, {})
    return {
        "requests_per_min": sum(final.values()) / minutes,
        "endpoints_per_min": {ep: n / minutes for ep, n in sorted(final.items())},
        "limits": limits,
        "limiter_answers": sum(answered.values()) if name in LIMITED else math.nan,
        "limiter_answers_by_status": answered,
        "outcomes": soak.stats.get("outcomes", {}).get(name, {}),
    }


def _worst(limits: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The limit with the highest peak share (the average share where no peak was measured)."""

    def key(item: Mapping[str, Any]) -> float:
        peak: float = item["peak_share"]
        if math.isnan(peak):
            average: float = item["average_share"]
            return average
        return peak

    return max(limits, key=key)


def rows_of_run(
    soaks: Mapping[str, Soak], exchanges: Sequence[ExchangeConfig]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Table rows (one per kind × faulted exchange; the baseline's too) and the details of one
    run; ratios are taken against this run's healthy baseline."""
    baseline = {e.name: exchange_figures(soaks[HEALTHY], e) for e in exchanges}
    rows: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    for kind, soak in soaks.items():
        gaps = [b.at - a.at for a, b in zip(soak.samples, soak.samples[1:], strict=False)]
        details[kind] = {
            "elapsed_s": soak.elapsed_s,
            "longest_poll_gap_s": max(gaps, default=math.nan),
            "exporter_cpu_percent": 100.0 * soak.exporter_cpu_s / soak.elapsed_s,
            "faults": soak.faults,
            "errors": soak.errors,
            "exchanges": {},
        }
        for exchange in exchanges:
            name = exchange.name
            spec = soak.faults.get(name)
            if kind != HEALTHY and spec is None:
                continue
            figures = baseline[name] if kind == HEALTHY else exchange_figures(soak, exchange)
            details[kind]["exchanges"][name] = figures
            healthy = baseline[name]["requests_per_min"]
            endpoint = spec["endpoint"] if spec is not None else "ticker"
            worst = _worst(figures["limits"])
            rows.append(
                {
                    "kind": kind,
                    "exchange": name,
                    "endpoint": endpoint if spec is not None else "-",
                    "req_per_min": figures["requests_per_min"],
                    "healthy_req_per_min": healthy,
                    "ratio_vs_healthy": figures["requests_per_min"] / healthy
                    if healthy
                    else math.nan,
                    "endpoint_req_per_min": figures["endpoints_per_min"].get(endpoint, 0.0),
                    "tightest_limit": worst["limit"],
                    "avg_share": worst["average_share"],
                    "peak_share": worst["peak_share"],
                    "limiter_answers": figures["limiter_answers"],
                }
            )
    return rows, details


def run(
    runs: int = 1,
    minutes: float = 3.0,
    parallel: int = 1,
    kinds: Sequence[str] = KINDS,
) -> dict[str, Any]:
    """Soak every kind ``runs`` times (``parallel`` pairs at once); return the ``soak_faults``
    section (medians over runs; ratios within a run)."""
    config = load_config(CONFIG)
    exchanges = list(config.exchanges)
    kinds = [HEALTHY, *(k for k in kinds if k != HEALTHY)]
    jobs = [(r, k) for r in range(runs) for k in kinds]
    lock = threading.Lock()

    def job(item: tuple[int, str]) -> Soak:
        index, kind = item
        with lock:
            print(f"soak run {index + 1}/{runs}: {kind} for {minutes:g} min ...", flush=True)
        return soak_one(kind, minutes, exchanges)

    with ThreadPoolExecutor(max_workers=max(parallel, 1)) as pool:
        results = list(pool.map(job, jobs))
    per_run_rows, per_run = [], []
    for index in range(runs):
        soaks = {s.kind: s for (r, _), s in zip(jobs, results, strict=True) if r == index}
        rows, details = rows_of_run(soaks, exchanges)
        per_run_rows.append(rows)
        per_run.append(details)
    rows = median_rows(per_run_rows)
    targets = []
    for kind in kinds:
        ratios = [r["ratio_vs_healthy"] for r in rows if r["kind"] == kind]
        if kind != HEALTHY and ratios:
            worst = max(ratios, key=lambda v: -math.inf if math.isnan(v) else v)
            name = f"soak {kind}: worst exchange requests/min vs healthy"
            targets.append(target(name, worst, "<=", RATIO_GOAL, "×"))
    answers = sum(r["limiter_answers"] for r in rows if not math.isnan(r["limiter_answers"]))
    targets.append(target("soak: limit answers from the simulator's limiters", answers, "<=", 0))
    errors = [e for d in per_run for v in d.values() for e in v["errors"]]
    gap = max(v["longest_poll_gap_s"] for d in per_run for v in d.values())
    notes = [
        f"{minutes:g} min per kind after a {WARMUP_S:g} s warm-up, fresh simulator and exporter "
        f"per kind ({parallel} pair(s) at once on {_cores()} core(s)); jitter: exchange-wide "
        f"latency {LATENCY_MS:g} ms ± {JITTER_MS:g} ms, replaced by the fault on the faulted "
        "endpoint",
        "req_per_min: every endpoint of the exchange; endpoint_req_per_min: the faulted one "
        "(the healthy rows show ticker's); tightest_limit: the documented limit (LimitRule of "
        "the exporter's profile: endpoints covered, limit per window) with the highest share",
        "avg_share = weight per window at the mean rate / limit; peak_share = busiest sliding "
        f"window between two stats polls / limit; polls every {SAMPLE_S:g} s (longest gap "
        f"{gap:.2f} s), so a window may be that much longer than the limit's (an upper "
        "bound); n/a = run shorter than the window",
        "limiter_answers: 429/418/403 from the simulator's own limiters (stats "
        "limit_responses); injected 429/418/403 of the rate_limited and banned faults are not "
        "in it (they are only in outcomes, see the JSON); n/a = no simulated limiter (OKX, "
        "Coinbase, Kraken)",
        "banned: no fault on OKX and Coinbase (the simulator has no ban answer for them); "
        "maintenance: none on Coinbase (no status API); those pairs ran unfaulted and are not "
        "rows",
        *(f"error: {e}" for e in errors),
    ]
    return section(
        "soak_faults",
        "Soak: request rate and limit usage with one endpoint failing per exchange "
        "(shipped schedule, simulator)",
        rows,
        targets,
        notes,
        minutes=minutes,
        parallel=parallel,
        per_run=per_run,
    )


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def main() -> int:
    """``python benchmarks/bench_soak_faults.py``: run, print the table, optionally write
    ``--json`` (exit 0 even when a target is missed, like the other benchmarks)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=1, help="runs to take medians of")
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes per failure kind")
    parser.add_argument(
        "--parallel", type=int, default=1, help="simulator/exporter pairs running at once"
    )
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS[1:]),
        help="comma-separated failure kinds (the healthy baseline always runs)",
    )
    parser.add_argument("--json", type=Path, help="also write the section as JSON here")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"--kinds: unknown {', '.join(unknown)}; known: {', '.join(KINDS)}")
    result = run(args.runs, args.minutes, args.parallel, kinds)
    result.setdefault("runs", args.runs)
    print_section(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
