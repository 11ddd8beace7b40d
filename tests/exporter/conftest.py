"""Fixtures of the exporter's tests that probe a real simulator process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.stack import StackError, free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """A simulator subprocess on a free loopback port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/_control/health", 15, process)
    except StackError as exc:
        process.kill()
        raise RuntimeError(f"simulator: {exc}: {process.stderr.read().decode()[-2000:]}") from None
    yield url
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def clean_faults(simulator_url: str) -> Iterator[str]:
    """The simulator with no active faults and fresh request limits before and after."""
    for path in ("faults", "limits", "scenario"):
        httpx.delete(f"{simulator_url}/_control/{path}")
    yield simulator_url
    for path in ("faults", "limits", "scenario"):
        httpx.delete(f"{simulator_url}/_control/{path}")
