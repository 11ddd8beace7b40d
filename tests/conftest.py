"""Shared fixtures: the fake chat and LLM servers and the whole native stack (end-to-end tests
in ``tests/e2e/`` and the dashboards' live check), and the measured timings.

Real Prometheus and Alertmanager (Debian packages) run once per test session, on loopback
ports, through the same runner as ``make demo`` (``deploy/stack.py``). Fixtures of one folder
live in that folder's ``conftest.py`` (the simulator subprocess: ``tests/exporter/``; an
in-thread simulator: ``tests/simulator/``; the store backends: ``tests/receiver/store/``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.stack import Stack, StackOptions
from testsupport.fake_chat import FakeChat
from testsupport.fake_llm import FakeLLM

E2E_PROMETHEUS_GLOBAL = {"scrape_interval": "1s", "evaluation_interval": "1s"}
E2E_ALERTMANAGER_TIMING = {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"}
"""The end-to-end stack runs the shipped rules and routing with only intervals shortened."""

TIMINGS_KEY = pytest.StashKey[dict[str, float]]()


SERVER_FIXTURES = frozenset(
    {
        "stack",
        "fake_chat",
        "fake_llm",
        "simulator_url",
        "clean_faults",
        "sim",
        "http_server",
        "alertmanager_url",
        "promtool",
        "amtool",
        "alertmanager_bin",
    }
)
"""Fixtures that start a process or a server (or name a tool binary a test runs): a test that
uses one must be marked ``e2e``."""


def pytest_configure(config: pytest.Config) -> None:
    config.stash[TIMINGS_KEY] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuses a test that starts a server through a fixture without the ``e2e`` marker, so
    ``pytest -m "not e2e"`` stays in-process (tests that start one themselves carry it too)."""
    unmarked = [
        item.nodeid
        for item in items
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("e2e") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "mark these e2e (they use a fixture that starts a server): " + ", ".join(unmarked)
        )


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
