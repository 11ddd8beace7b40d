"""Figures 1–3 of the WebSocket benchmark: the sender (:mod:`benchmarks.ws_sender`) on the load
core(s), the receiver (:mod:`benchmarks.ws_receiver`) alone on the measured core, each its own
process; what one run of each measures.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Child, percentile, python, start, stop

SENDER = ROOT / "benchmarks" / "ws_sender.py"
RECEIVER = ROOT / "benchmarks" / "ws_receiver.py"
WARMUP_SECONDS = 3.0
WINDOW_SECONDS = 10.0
LAG_RATE = 5000
"""Messages per second of the lag-accuracy run (issue 13), over both connections."""
LAG_SECONDS = 10.0
START_TIMEOUT = 30.0
RECEIVER_TIMEOUT = 180.0


class BenchError(RuntimeError):
    """A sender or receiver process failed; the message carries its log tail."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def sender(
    cpus: Sequence[int], directory: Path, rate: float = 0.0, count: int = 0
) -> Iterator[tuple[Child, str, Path]]:
    """A running sender: ``(child, ws://127.0.0.1:PORT, send-log path)``; stopped on exit.

    Raises:
        BenchError: it did not print its port within :data:`START_TIMEOUT`.
    """
    log = directory / f"sender-{time.monotonic_ns()}.log"
    sends = directory / f"sends-{time.monotonic_ns()}.json"
    argv = [python(), str(SENDER), "--listen", "127.0.0.1:0"]
    if rate > 0:
        argv += ["--rate", str(rate), "--count", str(count), "--log", str(sends)]
    child = start(argv, "ws-sender", cpus=cpus, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while port is None:
            text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
            for line in text.splitlines():
                if line.startswith("listening "):
                    port = int(line.split()[1])
            if port is None:
                if child.process.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"sender did not start:\n{_tail(log)}")
                time.sleep(0.05)
        yield child, f"ws://127.0.0.1:{port}", sends
    finally:
        stop([child])


def receive(mode: str, url: str, cpus: Sequence[int], directory: Path, *extra: str) -> Any:
    """Run the receiver in ``mode`` to completion on ``cpus``; its JSON result.

    Raises:
        BenchError: it failed or did not finish within :data:`RECEIVER_TIMEOUT`.
    """
    out = directory / f"receiver-{mode}-{time.monotonic_ns()}.json"
    log = out.with_suffix(".log")
    argv = [python(), str(RECEIVER), "--mode", mode, "--url", url, "--out", str(out), *extra]
    child = start(argv, f"ws-receiver-{mode}", cpus=cpus, log=log)
    try:
        code = child.process.wait(timeout=RECEIVER_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop([child])
        raise BenchError(f"receiver {mode} did not finish:\n{_tail(log)}") from None
    if code != 0 or not out.exists():
        raise BenchError(f"receiver {mode} failed (exit {code}):\n{_tail(log)}")
    return json.loads(out.read_text(encoding="utf-8"))


def throughput_run(sut: Sequence[int], load: Sequence[int]) -> dict[str, Any]:
    """One run of figures 1 and 2: the exporter's streams, then the bare loop, each fed by a
    blasting sender of their own; msgs/s, CPU µs per message, CPU utilisation, integrity."""
    window = ["--warmup", str(WARMUP_SECONDS), "--window", str(WINDOW_SECONDS)]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as name:
        directory = Path(name)
        for mode in ("exporter", "bare"):
            with sender(load, directory) as (_, url, _):
                results[mode] = receive(mode, url, sut, directory, *window)
    return {mode: summarize(r) for mode, r in results.items()}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Add ``msgs_per_s``, ``cpu_us_per_msg`` and ``cpu_util`` to a receiver's window result."""
    messages, seconds, cpu = result["messages"], result["seconds"], result["cpu_seconds"]
    return {
        **result,
        "msgs_per_s": messages / seconds if seconds > 0 else float("nan"),
        "cpu_us_per_msg": cpu / messages * 1e6 if messages else float("nan"),
        "cpu_util": cpu / seconds if seconds > 0 else float("nan"),
    }


@dataclass
class LagErrors:
    """Per-message figures of the lag-accuracy run, milliseconds.

    Attributes:
        error: exporter lag − true delay.
        quantisation: true send time − the ms event time stamped in the message.
        loop: the rest of the error: the exporter's receive time − the frame's arrival.
        delay: the true delay (frame arrival at the receiver's protocol − send).
        mismatched: messages whose event time differs between the sender's log and the frame
            (a pairing error; must be 0).
    """

    error: list[float]
    quantisation: list[float]
    loop: list[float]
    delay: list[float]
    mismatched: int


def lag_errors(
    sent: Sequence[Sequence[int]], arrivals: Sequence[Sequence[int]], lags: Sequence[float]
) -> LagErrors:
    """Pair the i-th sent message (``[send ns, event time ms]``) with the i-th arrival
    (``[arrival ns, event time ms]``) and the i-th lag the exporter observed (seconds) on one
    connection (TCP keeps order; each data frame carries one event time, so one observation).

    Raises:
        ValueError: the three lists differ in length.
    """
    if not len(sent) == len(arrivals) == len(lags):
        raise ValueError(
            f"unpaired lag run: {len(sent)} sent, {len(arrivals)} arrived, {len(lags)} lags"
        )
    out = LagErrors([], [], [], [], 0)
    for (send_ns, ts_ms), (arrive_ns, frame_ms), lag in zip(sent, arrivals, lags, strict=True):
        if ts_ms != frame_ms:
            out.mismatched += 1
            continue
        delay = (arrive_ns - send_ns) / 1e6
        error = lag * 1e3 - delay
        quantisation = send_ns / 1e6 - ts_ms
        out.error.append(error)
        out.delay.append(delay)
        out.quantisation.append(quantisation)
        out.loop.append(error - quantisation)
    return out


def lag_run(sut: Sequence[int], load: Sequence[int]) -> dict[str, Any]:
    """One run of figure 3 at :data:`LAG_RATE` messages/s for :data:`LAG_SECONDS`:
    p50/p99 of the error and its parts (ms), over both exchanges' messages."""
    per_connection = int(LAG_RATE * LAG_SECONDS / 2)
    with tempfile.TemporaryDirectory(prefix="bench-ws-lag-") as name:
        directory = Path(name)
        with sender(load, directory, LAG_RATE, per_connection) as (_, url, sends):
            # OKX sends a book snapshot per market before its feed (3 more event times).
            total = 2 * per_connection + 3
            extra = ["--count", str(total), "--timeout", str(LAG_SECONDS * 6 + 30)]
            result = receive("lag", url, sut, directory, *extra)
            deadline = time.monotonic() + 10
            while not sends.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            sent = json.loads(sends.read_text(encoding="utf-8"))
    merged = LagErrors([], [], [], [], 0)
    for exchange in ("okx", "binance"):
        part = lag_errors(sent[exchange], result["arrivals"][exchange], result["lags"][exchange])
        for field in ("error", "quantisation", "loop", "delay"):
            getattr(merged, field).extend(getattr(part, field))
        merged.mismatched += part.mismatched
    figures: dict[str, Any] = {"messages": len(merged.error), "mismatched": merged.mismatched}
    for field in ("error", "quantisation", "loop", "delay"):
        values = getattr(merged, field)
        figures[f"{field}_p50_ms"] = percentile(values, 50)
        figures[f"{field}_p99_ms"] = percentile(values, 99)
    figures["error_max_ms"] = max(merged.error) if merged.error else float("nan")
    figures["error_min_ms"] = min(merged.error) if merged.error else float("nan")
    figures["gaps"] = result.get("gaps", 0)
    return figures
