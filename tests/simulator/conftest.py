"""Fixtures of the simulator's tests: one in-thread simulator per module and a reset client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulator import SimulatorServer, run_in_thread

_RESET = ("/_control/faults", "/_control/limits", "/_control/scenario", "/_control/keys")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    """One simulator per module, on a free port, in a background thread."""
    server, stop = run_in_thread()
    try:
        yield server
    finally:
        stop()


@pytest.fixture
def client(sim: SimulatorServer) -> Iterator[httpx.Client]:
    """A keep-alive client; faults, limits, scenario and stats are reset around each test."""
    with httpx.Client(base_url=sim.url, timeout=5.0, trust_env=False) as c:
        for path in _RESET:
            c.delete(path)
        c.delete("/_control/stats")
        yield c
        for path in _RESET:
            c.delete(path)
