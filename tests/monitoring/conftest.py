"""Session fixtures of the monitoring tests: the real Prometheus tools on PATH (a missing one
fails with what to install; see :func:`tests.monitoring.rules_contract._tool`)."""

from __future__ import annotations

import pytest

from tests.monitoring.rules_contract import _tool


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _tool("amtool")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    # Debian renames the upstream `alertmanager` binary.
    return _tool("prometheus-alertmanager", "alertmanager")
