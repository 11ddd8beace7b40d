"""Soak: the shipped exporter schedule against the simulator's real request limits.

Runs ``exchange-exporter`` with ``deploy/exporter.demo.yml`` (the same schedule as
``deploy/exporter.yml``) against an ``exchange-simulator`` that enforces Binance's 6000 weight
per minute and Bybit's 600 requests per 5 s, for ``--minutes`` (default 10). Halfway through, an
external consumer (the trading bot on the same IP) spends the rest of Binance's minute; the
exporter must back off and resume by itself. Prints what each exchange received and how often a
limit was hit.

    python benchmarks/soak_budget.py --minutes 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import start, stop  # noqa: E402
from deploy.stack import free_port, wait_for_http  # noqa: E402
from exporter.config import load_config  # noqa: E402
from exporter.profiles import get_profile  # noqa: E402


def _metric(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def soak(minutes: float) -> dict[str, Any]:
    """Run the soak; return the figures."""
    sim_port, exp_port = free_port(), free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    exp = f"http://127.0.0.1:{exp_port}"
    config_path = ROOT / "deploy" / "exporter.demo.yml"
    processes = [
        start([sys.executable, "-m", "simulator.cli", "--listen", f"127.0.0.1:{sim_port}"], "sim")
    ]
    try:
        wait_for_http(f"{sim}/_control/health")
        processes.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "exporter.cli",
                    "--config",
                    str(config_path),
                    "--listen",
                    f"127.0.0.1:{exp_port}",
                ],
                "exporter",
                {"SIMULATOR_URL": sim},
            )
        )
        wait_for_http(f"{exp}/healthz")
        httpx.delete(f"{sim}/_control/stats")
        started = time.monotonic()
        duration = minutes * 60
        consumed_at = started + duration / 2
        consumed = False
        paused_seen = resumed_after = None
        while time.monotonic() - started < duration:
            now = time.monotonic()
            if not consumed and now >= consumed_at:
                httpx.post(f"{sim}/_control/consume", json={"exchange": "binance", "weight": 6000})
                consumed, consumed_mono = True, now
            if consumed and resumed_after is None:
                text = httpx.get(f"{exp}/metrics", timeout=5).text
                until = _metric(
                    text,
                    'exchange_rate_limit_backoff_until_timestamp_seconds{exchange="binance"}',
                )
                if until and until > time.time():
                    paused_seen = max(paused_seen or 0.0, until - time.time())
                up = _metric(text, 'exchange_api_up{endpoint="time",exchange="binance"}')
                if paused_seen is not None and up == 1:
                    resumed_after = now - consumed_mono
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        stats = httpx.get(f"{sim}/_control/stats", timeout=5).json()
    finally:
        stop(list(reversed(processes)))
    config = load_config(config_path)
    rows = []
    for exchange in config.exchanges:
        profile = get_profile(exchange.profile)
        specs = profile.endpoint_specs(exchange.effective_symbol())
        received = stats["requests"].get(exchange.name, {})
        for rule in profile.limits:
            covered = [p.name for p in exchange.endpoint_plan() if rule.applies_to(p.name)]
            weight = sum(received.get(name, 0) * specs[name].weight for name in covered)
            per_window = weight * rule.window_seconds / elapsed
            rows.append(
                {
                    "exchange": exchange.name,
                    "limit": f"{rule.name} {rule.limit:g}/{rule.window_seconds:g}s",
                    "used_per_window": per_window,
                    "share_of_limit": per_window / rule.limit,
                    "budget": exchange.weight_budget,
                }
            )
    return {
        "elapsed_s": elapsed,
        "rows": rows,
        "limit_responses": stats["limit_responses"],
        "binance_paused_for_s": paused_seen,
        "binance_resumed_after_s": resumed_after,
    }


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def main() -> int:
    """Print the soak figures; exit 1 if a budget was exceeded or a limit was hit outside the
    external consumer's burst."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    figures = soak(args.minutes)
    print(f"soak: {figures['elapsed_s']:.0f} s at the shipped schedule, simulator limits on")
    print(f"{'exchange':<10} {'limit':<42} {'used/window':>12} {'share':>7} {'budget':>7}")
    over = False
    for row in figures["rows"]:
        over |= row["share_of_limit"] > row["budget"]
        print(
            f"{row['exchange']:<10} {row['limit']:<42} {row['used_per_window']:>12.3f} "
            f"{row['share_of_limit']:>7.2%} {row['budget']:>7.0%}"
        )
    print(f"limit responses (429/418/403) per exchange: {figures['limit_responses']}")
    paused, resumed = figures["binance_paused_for_s"], figures["binance_resumed_after_s"]
    print(
        "external consumer spent Binance's minute: exporter paused "
        f"{_seconds(paused)}, probes ok again {_seconds(resumed)} after the burst"
    )
    banned = any(v.get("418", 0) or v.get("403", 0) for v in figures["limit_responses"].values())
    return 1 if over or banned or figures["binance_resumed_after_s"] is None else 0


if __name__ == "__main__":
    raise SystemExit(main())
