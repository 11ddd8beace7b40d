"""The exporter process: --check-config, config errors, /status, /healthz, reloads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.stack import free_port, wait_for_http

pytestmark = pytest.mark.e2e  # runs the exporter as a process, against a simulator process

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_check_config_prints_the_effective_config() -> None:
    result = run_cli("--config", "deploy/exporter.yml", "--check-config")
    assert result.returncode == 0, result.stderr
    assert "valid; effective configuration" in result.stdout
    assert "weight_budget: 0.1" in result.stdout
    assert "name: status\n    interval: 60s" in result.stdout  # OKX status, per endpoint


def test_broken_config_exits_non_zero_with_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        "exchanges:\n"
        "  - name: binance\n    profile: binanse\n    base_url: https://api.binance.com\n"
        "  - name: okx\n    profile: okx\n    base_url: ftp://okx\n    interval: 5x\n"
    )
    result = run_cli("--config", str(path), "--check-config")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith(f"{path}: exchanges[0].profile: unknown profile")
    assert "'binanse'" in lines[0]
    assert all(line.startswith(str(path)) for line in lines)


def write_config(path: Path, simulator_url: str, endpoints: str) -> None:
    path.write_text(
        "exchanges:\n"
        f"  - name: binance\n    profile: binance\n    base_url: {simulator_url}/binance\n"
        f"    interval: 1s\n    timeout: 500ms\n    endpoints: {endpoints}\n"
    )


@pytest.fixture
def exporter_process(tmp_path: Path, clean_faults: str) -> Iterator[tuple[str, Path, int]]:
    config = tmp_path / "exporter.yml"
    write_config(config, clean_faults, "[time, ticker]")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter.cli",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthz", 15, process)
    yield url, config, process.pid
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def metric(url: str, series: str) -> float | None:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


TIME_OK = 'exchange_api_requests_total{endpoint="time",exchange="binance",result="ok"}'
TICKER_UP = 'exchange_api_up{endpoint="ticker",exchange="binance"}'
PING_UP = 'exchange_api_up{endpoint="ping",exchange="binance"}'


def test_status_and_healthz(exporter_process: tuple[str, Path, int]) -> None:
    url, _, _ = exporter_process
    wait_until(lambda: (metric(url, TIME_OK) or 0) >= 2)
    status = httpx.get(f"{url}/status", timeout=5).json()
    binance = status["exchanges"]["binance"]
    assert binance["circuit"] == "closed"
    assert binance["rate_limits"]["1m"]["limit"] == 6000
    time_ep = binance["endpoints"]["time"]
    assert time_ep["last_result"] == "ok" and time_ep["interval_seconds"] == 1.0
    latency = time_ep["latency_seconds"]
    assert latency["count"] >= 2 and 0 < latency["p50"] <= latency["p99"] < 0.5
    assert status["connectivity_up"] is True
    budget = binance["probe_budget"]["REQUEST_WEIGHT per IP"]
    assert budget["cap"] == pytest.approx(6000 * 0.1) and budget["window_seconds"] == 60
    assert 2 <= budget["used"] <= budget["cap"]
    assert binance["ip_ban_until"] == 0 and binance["maintenance_message"] == ""


def test_reload_keeps_unchanged_counters(exporter_process: tuple[str, Path, int]) -> None:
    url, config, pid = exporter_process
    simulator_url = config.read_text().split("base_url: ")[1].split("/binance")[0]
    wait_until(lambda: (metric(url, TIME_OK) or 0) >= 2)
    before = metric(url, TIME_OK)
    write_config(config, simulator_url, "[time, ping]")
    response = httpx.post(f"{url}/-/reload", timeout=10)
    assert response.status_code == 200 and response.json()["kept"] == 1, response.text
    assert metric(url, TIME_OK) >= before  # not reset
    assert metric(url, TICKER_UP) is None  # removed endpoint's series are gone
    wait_until(lambda: metric(url, PING_UP) == 1)
    # A broken file is refused; the running config stays.
    config.write_text("exchanges: nope\n")
    response = httpx.post(f"{url}/-/reload", timeout=10)
    assert response.status_code == 400 and "exchanges" in response.json()["error"]
    assert metric(url, "exchange_exporter_config_last_reload_successful") == 0
    # SIGHUP reloads too.
    write_config(config, simulator_url, "[time]")
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: metric(url, PING_UP) is None)
    assert metric(url, "exchange_exporter_config_last_reload_successful") == 1
    assert metric(url, TIME_OK) >= before
