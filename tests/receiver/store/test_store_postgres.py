"""PostgreSQL backend specifics: versioned migrations run once by receivers started together,
concurrent claims from separate stores, lease takeover, leadership through an advisory lock,
bounded failures while the server is down (and recovery without reopening the store), secrets
kept out of errors, and no committed webhook lost to a ``kill -9`` of the server.

The generic contract runs on PostgreSQL through the ``store`` fixture (``conftest.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from pydantic import SecretStr

from deploy.postgres import PostgresServer
from receiver.models import AlertmanagerWebhook
from receiver.store import DeliveryState, IngestItem, PostgresStore, StoreError
from receiver.store.postgres.connection import ConnectionSettings
from receiver.store.postgres.migrations import MIGRATIONS, SCHEMA_VERSION
from tests.receiver.test_receiver_app import exchange_payload

T = 1_800_000_000.0


def _items(start: int, count: int, alertname: str = "ExchangeApiDown") -> list[IngestItem]:
    return [
        (
            AlertmanagerWebhook.model_validate(
                exchange_payload(alertname=alertname, fingerprint=f"{start + i:016x}")
            ),
            "critical",
            None,
        )
        for i in range(count)
    ]


def _query(url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute(statement).fetchall()  # type: ignore[call-overload, no-any-return]


# --- no server ------------------------------------------------------------------------------


def test_secrets_stay_out_of_descriptions_and_messages() -> None:
    url = "postgresql://exchange_watch:p%40ss-w0rd@db.example:6543/alerts?sslmode=require"
    settings = ConnectionSettings(url, timeout=3.0)
    assert settings.describe() == "postgresql://db.example:6543/alerts"
    message = settings.scrub(f"could not parse {url} (password p@ss-w0rd, p%40ss-w0rd)")
    assert "p@ss-w0rd" not in message and "p%40ss-w0rd" not in message and url not in message
    assert settings.scrub("see postgres://someone:else@host/db") == "see postgres://***@host/db"
    assert settings.params["connect_timeout"] == "3" and settings.params["sslmode"] == "require"
    assert "statement_timeout=5000" in settings.params["options"]
    store = PostgresStore(SecretStr(url))
    assert store.describe() == "postgresql://db.example:6543/alerts"
    assert store.backend == "postgresql"
    assert PostgresStore("postgresql:///alerts").describe() == "postgresql://localhost:5432/alerts"


def test_a_malformed_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore("host=db password=hunter2 nonsense")
    assert "hunter2" not in str(caught.value)


# --- on the session's server ----------------------------------------------------------------


@pytest.mark.e2e
def test_receivers_started_together_migrate_once(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, timeout=30.0) for _ in range(4)]
    barrier = threading.Barrier(len(stores))

    def init(store: PostgresStore) -> None:
        barrier.wait()
        store.init()

    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(init, stores))  # re-raises any error
        versions = _query(postgres_url, "SELECT version FROM schema_migrations ORDER BY version")
        assert versions == [(version,) for version, _ in MIGRATIONS]
        assert versions[-1] == (SCHEMA_VERSION,)
        assert all(store.counts()["webhooks"] == 0 for store in stores)
        stores[0].ingest_many(_items(0, 1))
        assert stores[3].counts()["pending"] == 1
    finally:
        for store in stores:
            store.close()


@pytest.mark.e2e
def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        store.init()
        with psycopg.connect(postgres_url) as conn:
            conn.execute(
                "INSERT INTO schema_migrations (version) VALUES (%s)", (SCHEMA_VERSION + 1,)
            )
        with pytest.raises(StoreError, match="newer"):
            PostgresStore(postgres_url).init()
    finally:
        store.close()


@pytest.mark.e2e
def test_sessions_are_bounded_and_durable(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        store.init()
        with store._get_pool().connection() as conn:
            settings = conn.execute(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
                " current_setting('synchronous_commit'), current_setting('fsync')"
            ).fetchone()
        assert settings == ("5s", "5s", "on", "on")
        indexes = {
            row[0]
            for row in _query(
                postgres_url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            )
        }
        assert {
            "notifications_pending",
            "notifications_alert",
            "notifications_completed",
        } <= indexes
    finally:
        store.close()


@pytest.mark.e2e
def test_separate_stores_claiming_at_once_never_share_a_notification(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, timeout=30.0) for _ in range(2)]
    try:
        stores[0].init()
        # Overlapping batches in opposite orders: the per-alert locks never deadlock.
        items = _items(0, 150)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(stores[0].ingest_many, [items[:100], items[50:][::-1]]))
        expected = {row.id for row in stores[0].due(float("inf"), limit=1000)}
        assert len(expected) == 150
        claimed: list[list[int]] = [[] for _ in range(4)]
        barrier = threading.Barrier(4)

        def worker(k: int) -> None:
            store = stores[k % 2]
            barrier.wait()
            while batch := store.claim(T, f"receiver-{k}", 60, limit=3):
                claimed[k] += [row.id for row in batch]
                for row in batch:
                    store.complete(row.id)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(worker, range(4)))
        everything = [i for ids in claimed for i in ids]
        assert sorted(everything) == sorted(expected)  # each exactly once
        assert all(ids == sorted(ids) for ids in claimed)
    finally:
        for store in stores:
            store.close()


@pytest.mark.e2e
def test_a_crashed_receivers_lease_is_taken_over_once_it_expires(postgres_url: str) -> None:
    crashed, survivor = PostgresStore(postgres_url), PostgresStore(postgres_url)
    try:
        crashed.init()
        crashed.ingest_many(_items(0, 3))
        taken = [row.id for row in crashed.claim(T, "crashed", 15)]
        crashed.close()  # the process is gone; its leases stay until they expire
        assert survivor.claim(T + 14, "survivor", 15) == []
        assert survivor.next_due(T) == T + 15
        assert [row.id for row in survivor.claim(T + 15, "survivor", 15)] == taken
        assert crashed.renew("crashed", taken, T + 60) == []  # it lost them
    finally:
        crashed.close()
        survivor.close()


@pytest.mark.e2e
def test_leadership_passes_when_the_leaders_session_ends(postgres_url: str) -> None:
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    try:
        first.init()
        assert first.lead("first", 30)
        assert first.lead("first", 30)  # kept while the session lives
        assert not second.lead("second", 30)
        assert not first.lead("other-owner", 30)  # one owner per store
        pid = first._leadership.backend_pid
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))  # as if it crashed
        deadline = time.monotonic() + 30
        while not second.lead("second", 30):
            assert time.monotonic() < deadline, "the lead did not pass"
            time.sleep(0.1)
        assert not first.lead("first", 30)  # noticed its session broke; the lock is taken
        second.resign("second")
        assert first.lead("first", 30)
        first.close()  # closing releases it too
        assert second.lead("second", 30)
    finally:
        first.close()
        second.close()


@pytest.mark.e2e
def test_nul_characters_are_stored_not_refused(postgres_url: str) -> None:
    # PostgreSQL's text refuses NUL; a webhook carrying one must not be refused for ever.
    payload = exchange_payload(fingerprint="f00d\x000001", alertname="Bad\x00Name")
    webhook = AlertmanagerWebhook.model_validate(payload)
    store = PostgresStore(postgres_url)
    try:
        (result,) = store.ingest_many([(webhook, "crit\x00ical", None)])
        assert len(result.new_ids) == 1
        (row,) = store.due(float("inf"))
        assert row.fingerprint == "f00d\ufffd0001" and row.route == "crit\ufffdical"
        assert row.alert["labels"]["alertname"] == "Bad\x00Name"  # the JSON keeps it escaped
        (again,) = store.ingest_many([(webhook, "", None)])
        assert again.duplicates == 1
        store.update_delivery(row.id, "x", DeliveryState.PENDING, error="bad\x00error")
    finally:
        store.close()


# --- on a server of their own (stopped and killed) ------------------------------------------


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A server these tests may stop and kill without disturbing the session's."""
    with PostgresServer(tmp_path_factory.mktemp("own-postgres"), die_with_parent=True) as server:
        yield server


@pytest.mark.e2e
def test_server_down_fails_fast_and_recovers_without_reopening(
    own_server: PostgresServer,
) -> None:
    url = own_server.create_database("outage")
    store = PostgresStore(url, timeout=2.0)
    try:
        store.init()
        store.ingest_many(_items(0, 1))
        assert store.lead("me", 30)
        own_server.stop()
        calls = {
            "ingest_many": lambda: store.ingest_many(_items(1, 1)),
            "check_writable": store.check_writable,
            "claim": lambda: store.claim(T, "me", 15),
            "counts": store.counts,
            "lead": lambda: store.lead("me", 30),
        }
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(StoreError) as caught:
                call()
            elapsed = time.monotonic() - started
            # Bounded by the pool's wait (2 s), never a hang: a wide margin for a slow machine.
            assert elapsed < 20, f"{name} took {elapsed:.1f}s"
            message = str(caught.value)
            assert own_server.password not in message and url not in message
            assert "postgresql://127.0.0.1" in message  # where, without who
        own_server.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                store.ingest_many(_items(2, 1))
                break
            except StoreError:
                assert time.monotonic() < deadline, "the store did not recover"
                time.sleep(0.2)
        assert store.counts()["webhooks"] == 2
        assert store.lead("me", 30)
    finally:
        store.close()
        if not own_server.running:
            own_server.start()


@pytest.mark.e2e
def test_wrong_password_is_a_store_error_without_the_password(
    own_server: PostgresServer,
) -> None:
    url = own_server.url().replace(own_server.password, "Not-The-Password-42")
    store = PostgresStore(url, timeout=2.0)
    try:
        with pytest.raises(StoreError) as caught:
            store.init()
        assert "Not-The-Password-42" not in str(caught.value)
        assert "password authentication failed" in str(caught.value)
    finally:
        store.close()


@pytest.mark.e2e
def test_kill_9_of_the_server_loses_no_committed_webhook(own_server: PostgresServer) -> None:
    url = own_server.create_database("crash")
    store = PostgresStore(url, timeout=2.0, max_size=4)
    acknowledged: list[int] = []
    notified: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        store.init()

        def writer(k: int) -> None:
            i = 0
            while not stop.is_set():
                try:
                    (result,) = store.ingest_many(_items(k * 100_000 + i, 1))
                except StoreError:
                    time.sleep(0.01)
                    continue
                with lock:  # acknowledged: the commit returned
                    acknowledged.append(result.webhook_id)
                    notified.extend(result.new_ids)
                i += 1

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        own_server.kill()  # mid-burst: SIGKILL to the postmaster and every backend
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(30)
        assert len(acknowledged) >= 150
        own_server.start()  # WAL recovery
        stored = {row[0] for row in _query(url, "SELECT id FROM webhooks")}
        assert set(acknowledged) <= stored
        pending = {row[0] for row in _query(url, "SELECT id FROM notifications")}
        assert set(notified) <= pending
    finally:
        stop.set()
        store.close()
        if not own_server.running:
            own_server.start()


def test_server_tests_are_marked(request: pytest.FixtureRequest) -> None:
    """Every test here that starts or uses a server carries ``e2e`` (the file's own check)."""
    module = request.module
    for name in dir(module):
        func = getattr(module, name)
        if name.startswith("test_") and callable(func):
            params = func.__code__.co_varnames[: func.__code__.co_argcount]
            uses_server = {"postgres_url", "own_server", "postgres_server"} & set(params)
            marks = {m.name for m in getattr(func, "pytestmark", [])}
            assert not uses_server or "e2e" in marks, name
