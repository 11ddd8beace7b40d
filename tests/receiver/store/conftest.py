"""Fixtures of the store's own tests: a store of every backend, on a fresh database.

A test that takes ``store`` (or ``open_store``) runs once per backend in :data:`BACKENDS`; a
second backend adds one entry there. Tests of SQLite internals take ``sqlite_store``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from receiver.store import SQLiteStore, Store, SyntheticNotification

#: ``(clock) -> Store`` on the test's database; calling it again opens the same database.
OpenStore = Callable[..., Store]

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> OpenStore:
    """Opens a store on this test's database; each call is a new store on the same data (as
    after a restart)."""
    backend = request.param

    def open_(clock: Callable[[], float] = time.time) -> Store:
        if backend == "sqlite":
            return SQLiteStore(tmp_path / "r.db", clock=clock)
        raise AssertionError(f"unknown backend {backend}")  # pragma: no cover

    return open_


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    """An initialised store of each backend on a fresh database."""
    s = open_store()
    s.init()
    return s


@pytest.fixture
def sqlite_store(tmp_path: Path) -> SQLiteStore:
    """An initialised SQLite store at ``tmp_path / "r.db"``."""
    s = SQLiteStore(tmp_path / "r.db")
    s.init()
    return s


@pytest.fixture
def synthetic() -> SyntheticNotification:
    """A dead man's switch notification (firing ``AlertingPipelineDown`` on ``critical``)."""
    return SyntheticNotification(
        route="critical",
        group_key="deadman",
        receiver="alert-receiver",
        alert={
            "status": "firing",
            "labels": {"alertname": "AlertingPipelineDown"},
            "startsAt": "2026-05-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "deadman",
        },
        diagnosis={"summary": "the pipeline is down"},
    )
