"""Shared fixtures: the simulator, a fake chat server and the whole native stack.

Real Prometheus and Alertmanager (Debian packages) run once per test session, on loopback
ports, through the same runner as ``make demo`` (``deploy/stack.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.stack import Stack, StackError, StackOptions, free_port, wait_for_http
from tests.fake_chat import FakeChat
from tests.fake_llm import FakeLLM

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.simulator_fixtures"]  # `sim` and `client` for the simulator's tests

E2E_PROMETHEUS_GLOBAL = {"scrape_interval": "1s", "evaluation_interval": "1s"}
E2E_ALERTMANAGER_TIMING = {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"}
"""The end-to-end stack runs the shipped rules and routing with only intervals shortened."""

TIMINGS_KEY = pytest.StashKey[dict[str, float]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[TIMINGS_KEY] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    timings = terminalreporter.config.stash.get(TIMINGS_KEY, {})
    if timings:
        terminalreporter.section("exchange-watch measured timings")
        for name, seconds in timings.items():
            terminalreporter.write_line(f"{name}: {seconds:.1f} s")


@pytest.fixture(scope="session")
def timings(request: pytest.FixtureRequest) -> dict[str, float]:
    """Figures a test measured, printed at the end of the run."""
    return request.config.stash[TIMINGS_KEY]


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


@pytest.fixture(scope="session")
def fake_chat() -> Iterator[FakeChat]:
    """Local Slack and Discord webhook stand-ins."""
    chat = FakeChat().start()
    yield chat
    chat.stop()


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """A local OpenAI-compatible chat-completions server (the receiver's primary LLM in the
    end-to-end stack); a test may stop it to see the rule-based fallback."""
    llm = FakeLLM().start()
    yield llm
    llm.stop()


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, fake_chat: FakeChat, fake_llm: FakeLLM
) -> Iterator[Stack]:
    """The whole stack (simulator, exporter, receiver, Alertmanager, Prometheus), once."""
    options = StackOptions(
        run_dir=tmp_path_factory.mktemp("stack"),
        prometheus_global=E2E_PROMETHEUS_GLOBAL,
        alertmanager_timing=E2E_ALERTMANAGER_TIMING,
        receiver_env={
            "SLACK_WEBHOOK_URL": f"{fake_chat.url}/slack/T000/B000/XXXX",
            "DISCORD_WEBHOOK_URL": f"{fake_chat.url}/discord/api/webhooks/1/abc",
            "LLM_BASE_URL": fake_llm.url,
            "LLM_MODEL": fake_llm.model,
            "LLM_API_KEY": "sk-e2e-test-key",
            "LLM_TIMEOUT_SECONDS": "3",
            "LLM_CACHE_SECONDS": "0",
        },
        ports={},  # any free ports: never collide with a demo running on this machine
    )
    with Stack(options) as running:
        yield running
