"""Fixtures of the store's own tests: a store of every backend, on a fresh database.

A test that takes ``store`` (or ``open_store``) runs once per backend in :data:`BACKENDS`:
SQLite (a file in ``tmp_path``) and PostgreSQL (a fresh database per test on one server per
session, :class:`deploy.postgres.PostgresServer`, started only when a PostgreSQL test runs;
those tests are marked ``e2e``, so ``pytest -m "not e2e"`` runs the SQLite ones only). Tests of
SQLite internals take ``sqlite_store``; PostgreSQL-specific tests take ``postgres_server`` and
``postgres_url``.

The PostgreSQL binaries come from Debian's ``postgresql`` package (``.ci/run`` installs it);
without them the PostgreSQL tests fail, saying so, rather than being skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from deploy.postgres import PostgresServer
from receiver.store import PostgresStore, SQLiteStore, Store, SyntheticNotification

#: ``(clock) -> Store`` on the test's database; calling it again opens the same database.
OpenStore = Callable[..., Store]

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.e2e)]

_DATABASES = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server on a free loopback port for the session (stopped at its end, or
    when the test run is killed: ``die_with_parent``)."""
    with PostgresServer(tmp_path_factory.mktemp("postgres"), die_with_parent=True) as server:
        yield server


def _drop_database(server: PostgresServer, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(server.url(), autocommit=True, connect_timeout=10) as conn,
    ):
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database (dropped after the test)."""
    if not postgres_server.running:  # a test stopped or killed it
        postgres_server.start()
    url = postgres_server.create_database(f"store_{os.getpid()}_{next(_DATABASES)}")
    yield url
    if not postgres_server.running:
        postgres_server.start()
    _drop_database(postgres_server, url)


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens a store on this test's database; each call is a new store on the same data (as
    after a restart). Stores opened are closed after the test."""
    backend = request.param
    opened: list[Store] = []
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else ""

    def open_(clock: Callable[[], float] = time.time) -> Store:
        store: Store
        if backend == "sqlite":
            store = SQLiteStore(tmp_path / "r.db", clock=clock)
        elif backend == "postgres":
            store = PostgresStore(url, clock=clock, timeout=10.0)
        else:  # pragma: no cover
            raise AssertionError(f"unknown backend {backend}")
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


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
