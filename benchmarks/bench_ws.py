"""Benchmark (issue 13): WebSocket market-data streams — throughput, CPU per message, lag
accuracy, memory and time to the stale notification.

Throughput and CPU (figures 1–2). A sender process (``benchmarks/ws_sender.py``, wsproto over
asyncio, on the load core) serves OKX's ``/ws/v5/public`` and Binance's combined ``/stream``
on loopback and, once subscribed, writes pre-generated documented messages as fast as the
reader takes them (TCP backpressure paces it): per market (BTC, ETH and SOL against USDT)
tickers, trades and twice as many one-level book deltas. The books stay consistent forever
(OKX ``prevSeqId``/``seqId`` chained and the documented CRC32 checksum of the top 25 levels on
every message; Binance ``U``/``u`` chained, its REST depth snapshot answered by the sender at
the current update id), so integrity runs at full cost without a single false gap. The receiver
(``benchmarks/ws_receiver.py``) runs alone on the last core: the exporter's own stream code —
the config's ``websocket:`` blocks, ``StreamManager``, ``StreamConnection``/``StreamSession``,
the real dialects, ``exchange_ws_*`` metrics with lag histograms, ``/status`` records, book sync
(Binance's snapshot fetched over HTTP through the probe gate) and a ``/metrics`` rendering every
5 s. After every stream is connected and every book in sync, a 3 s warm-up, then a 10 s window:
messages/s from the streams' own counters, CPU seconds (user + system, ``os.times``) per
message. The same sender then feeds a bare ``websockets`` client that subscribes with the same
frames and only ``await ws.recv()`` in a loop: the library's floor; the ratio of CPU per message
is the exporter's own work. A receiver CPU use well under 100 % of its core means it was not
saturated (the sender, or another process on the machine, set the pace): CPU per message still
holds, and 1 / CPU per message is what a whole core would sustain.

Lag accuracy (figure 3). The sender runs at 5,000 messages/s (2,500 per connection) for 10 s
and stamps each message's documented event-time field (OKX ``ts``, Binance ``E``, epoch ms)
from the wall clock right before writing it, recording that instant in ns. In the receiver
process, without changing the exporter's code, two wrappers record (a) every value the lag
histograms observe and (b) the wall time at which the event loop handed each data frame to the
``websockets`` protocol (``Connection.process_event``, called from ``data_received``). The true
delay of a message is its arrival minus its send time; the error is the exporter's measured lag
minus that delay. It is made of (1) the ms quantisation of the documented field: the stamped
ms is the send time rounded down, so the lag reads 0–1 ms long (mean 0.5 ms) — the exchanges'
own resolution, which no receiver can beat; and (2) event-loop delay: the time from the frame's
arrival to the exporter's ``time.time()`` after ``recv()`` returns (queue hand-off to the reader
task, other ready callbacks, garbage collection). The clock-skew correction is off (same host,
no skew measured). Both parts are reported beside the error.

Memory (figure 4). The exporter runs the shipped demo schedule (``deploy/exporter.demo.yml``,
all five exchanges' REST probes) against ``python -m simulator`` with ``markets`` BTC, ETH and
SOL against each exchange's quote (as far as the simulator lists them), once without and once
with a ``websocket:`` block per exchange (three channels × every market). RSS is the median of
10 one-second ``VmRSS`` samples taken 20 s after every stream is connected and every channel has
delivered; added = with − without.

Stale notification (figure 5). As ``bench_notify.py``: the native stack of ``deploy/stack.py``
with every shipped config (exporter demo config, Prometheus intervals, rules, Alertmanager
routing) and a fake Slack. Each exchange is stalled with ``{"exchange": X, "fault":
"ws_stall"}`` (connection open, pings answered, no data), concurrently but staggered 9 s apart
with a random 0–5 s phase; the last-message time is ``max(exchange_ws_last_message_timestamp_
seconds{exchange=X})`` read from the exporter's ``/metrics`` 2.5 s after the injection; the
figure is the time from it to the first firing ``ExchangeWebSocketStale`` Slack message for X
(also given from the injection). Each exchange is one sample per section whatever ``--runs``
says (five samples); the target takes the worst.

    python benchmarks/bench_ws.py --runs 3     # about 8 minutes (--runs 1: about 4)
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import ws_stale
from benchmarks.common import cores, median, section, target
from benchmarks.common import main as common_main
from benchmarks.ws_memory import memory_run
from benchmarks.ws_runs import (
    LAG_RATE,
    LAG_SECONDS,
    WINDOW_SECONDS,
    lag_run,
    throughput_run,
)

NAME = "ws"
TITLE = "WebSocket streams: throughput, CPU per message, lag accuracy, memory, stale notification"
TARGET_MSGS_PER_S = 20_000.0
TARGET_LAG_ERROR_P99_MS = 2.0
TARGET_ADDED_MIB = 40.0
TARGET_STALE_S = 30.0
RUN_DIR = Path(__file__).resolve().parent.parent / "run" / "bench-ws"
STALE_RUNS = 1
"""Stalls per exchange, whatever ``--runs`` says: each exchange of the demo config is one sample
(five samples), and a second stall of an exchange would first wait minutes for the alert to
resolve."""


def _loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "unknown"


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Key-wise medians of numeric values over runs (text from the first run)."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = median([r[key] for r in runs if isinstance(r.get(key), int | float)])
        else:
            out[key] = value
    return out


def _attempt(what: str, work: Callable[[], Any], notes: list[str]) -> Any:
    try:
        return work()
    except Exception as exc:  # one figure's failure must not lose the others
        notes.append(f"{what} not measured: {type(exc).__name__}: {exc}".strip()[:600])
        return None


def _row(figure: str, value: float, unit: str, detail: str = "") -> dict[str, Any]:
    return {"figure": figure, "value": value, "unit": unit, "detail": detail}


def build_section(
    throughput: dict[str, Any] | None,
    lag: dict[str, Any] | None,
    memory: dict[str, Any] | None,
    stale: dict[str, Any] | None,
    notes: list[str],
    runs: int,
) -> dict[str, Any]:
    """The section from each figure's medians (None: not measured; its target counts as
    missed with a NaN value)."""
    nan = math.nan
    rows: list[dict[str, Any]] = []
    exporter = (throughput or {}).get("exporter", {})
    bare = (throughput or {}).get("bare", {})
    ratio = nan
    if throughput is not None:
        ratio = exporter["cpu_us_per_msg"] / bare["cpu_us_per_msg"]
        rows += [
            _row(
                "exporter streams: messages/s sustained on one core",
                exporter["msgs_per_s"],
                "msg/s",
                f"receiver CPU {exporter['cpu_util']:.0%} of its core; "
                f"{1e6 / exporter['cpu_us_per_msg']:,.0f} msg per CPU-second; gaps "
                f"{exporter['gaps']}, checksum mismatches {exporter['checksum_mismatches']}, "
                f"resyncs {exporter['resyncs']}, reconnects {exporter['reconnects']}",
            ),
            _row("exporter streams: CPU per message", exporter["cpu_us_per_msg"], "µs"),
            _row(
                "bare websockets recv loop: messages/s",
                bare["msgs_per_s"],
                "msg/s",
                f"receiver CPU {bare['cpu_util']:.0%} of its core",
            ),
            _row("bare websockets recv loop: CPU per message", bare["cpu_us_per_msg"], "µs"),
            _row("CPU per message, exporter / bare loop", ratio, "×"),
        ]
    if lag is not None:
        rows += [
            _row(
                f"lag error p50 at {LAG_RATE:,} msg/s",
                lag["error_p50_ms"],
                "ms",
                f"{lag['messages']:,} messages, unpaired {lag['mismatched']}",
            ),
            _row(
                f"lag error p99 at {LAG_RATE:,} msg/s",
                lag["error_p99_ms"],
                "ms",
                f"max {lag['error_max_ms']:.2f} ms",
            ),
            _row(
                "  of which ms quantisation (p99)",
                lag["quantisation_p99_ms"],
                "ms",
                f"p50 {lag['quantisation_p50_ms']:.3f} ms, p99 {lag['quantisation_p99_ms']:.3f} ms",
            ),
            _row(
                "  of which event-loop delay (p99)",
                lag["loop_p99_ms"],
                "ms",
                f"p50 {lag['loop_p50_ms']:.3f} ms, p99 {lag['loop_p99_ms']:.3f} ms",
            ),
            _row(
                "true delay, send → frame arrival (p99)",
                lag["delay_p99_ms"],
                "ms",
                f"p50 {lag['delay_p50_ms']:.3f} ms, p99 {lag['delay_p99_ms']:.3f} ms",
            ),
        ]
    if memory is not None:
        rows += [
            _row(
                "exporter RSS added by the streams",
                memory["added_mib"],
                "MiB",
                f"{memory['rss_with_mib']:.1f} MiB with, {memory['rss_without_mib']:.1f} "
                f"without; peak {memory['peak_with_mib']:.1f} vs {memory['peak_without_mib']:.1f}"
                f"; {memory['connected']} streams connected, "
                f"{memory['channels_flowing']} channel series flowing, "
                f"{memory['subscriptions']} subscriptions",
            )
        ]
    if stale is not None:
        rows += [
            _row(
                "last message → ExchangeWebSocketStale at Slack (worst)",
                stale["max_s"],
                "s",
                f"{stale['samples']} samples: {stale['each']}",
            ),
            _row("  median", stale["median_s"], "s", f"min {stale['min_s']:.1f} s"),
            _row(
                "  from the ws_stall injection (median)",
                stale["from_injection_median_s"],
                "s",
            ),
        ]
    markets = "3" if memory is None or not memory["missing_markets"] else "2–3"
    targets = [
        target(
            "stream messages/s on one core (lag histograms + book integrity on)",
            exporter.get("msgs_per_s", nan),
            ">=",
            TARGET_MSGS_PER_S,
            "msg/s",
        ),
        target(
            f"stream lag measurement error p99 at {LAG_RATE:,} msg/s",
            (lag or {}).get("error_p99_ms", nan),
            "<=",
            TARGET_LAG_ERROR_P99_MS,
            "ms",
        ),
        target(
            f"exporter RSS added by streams (5 exchanges × 3 channels × {markets} markets)",
            (memory or {}).get("added_mib", nan),
            "<=",
            TARGET_ADDED_MIB,
            "MiB",
        ),
        target(
            "last stream message → ExchangeWebSocketStale notification (worst sample)",
            (stale or {}).get("target_value", nan),
            "<=",
            TARGET_STALE_S,
            "s",
        ),
    ]
    return section(NAME, TITLE, rows, targets, notes, runs=runs, cpu_ratio=ratio)


def run(runs: int) -> dict[str, Any]:
    """Measure figures 1–4 ``runs`` times (medians) and figure 5 once per exchange
    (:data:`STALE_RUNS`); return the ``ws`` section."""
    runs = max(1, runs)
    sut, load = cores()
    os.sched_setaffinity(0, load)
    notes: list[str] = [f"load average before: {_loadavg()} ({os.cpu_count()} cores)."]
    throughputs, lags, memories = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as name:
        directory = Path(name)
        for _ in range(runs):
            if (t := _attempt("messages/s", lambda: throughput_run(sut, load), notes)) is not None:
                throughputs.append(t)
            if (lg := _attempt("lag error", lambda: lag_run(sut, load), notes)) is not None:
                lags.append(lg)
            memory = _attempt("RSS", lambda: memory_run(sut, load, directory), notes)
            if memory is not None:
                memories.append(memory)
    throughput = None
    if throughputs:
        throughput = {
            mode: _medians([t[mode] for t in throughputs]) for mode in ("exporter", "bare")
        }
    lag = _medians(lags) if lags else None
    memory_figures = _medians(memories) if memories else None
    os.sched_setaffinity(0, sorted(set(sut) | set(load)))
    stale = None
    if ws_stale.stale_rule() is None:
        notes.append("stale notification not measured: no ExchangeWebSocketStale rule shipped.")
    else:
        measured = _attempt(
            "stale notification", lambda: ws_stale.measure(STALE_RUNS, RUN_DIR), notes
        )
        if measured is not None:
            samples, stale_notes = measured
            notes += stale_notes
            stale = ws_stale.summary(samples)
            notes += [f"stale sample {s.exchange} failed: {s.error}." for s in samples if s.error]
    low, high, terms = ws_stale.expected_seconds()
    notes += [
        f"Figures 1–2: OKX + Binance, {WINDOW_SECONDS:g} s window after a 3 s warm-up; messages "
        "counted by the streams themselves (exporter) or per frame (bare loop); the gaps, "
        "checksum mismatches and resyncs shown must be 0 on the sender's consistent feed.",
        f"Figure 3: {LAG_RATE:,} msg/s for {LAG_SECONDS:g} s over two connections (OKX, Binance; "
        "tickers, trades, book deltas and OKX's book snapshots); every message's lag paired "
        "with its send and arrival times in order per connection.",
        f"Figure 5: expected {low:g}–{high:g} s from the last message = {terms} (the first "
        "channel to go stale fires; Alertmanager groups by alertname and exchange).",
        f"load average after: {_loadavg()}; the cores are shared with whatever else runs on "
        "the machine.",
    ]
    if memory_figures is not None and memory_figures["missing_markets"]:
        notes.append(
            "Figure 4: the simulator does not list "
            + ", ".join(memory_figures["missing_markets"])
            + " yet; those markets were left out ("
            + str(memory_figures["subscriptions"])
            + " subscriptions instead of 45)."
        )
    return build_section(throughput, lag, memory_figures, stale, notes, runs)


def main() -> int:
    """Run standalone (``--runs``, ``--json``) and print the table."""
    return common_main(run, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
