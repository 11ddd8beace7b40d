"""The PostgreSQL launcher (deploy/postgres.py): a real server on loopback, initialised once,
password-protected, durable across a crash, restartable on the same port."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

import deploy.postgres as pgmod
from deploy.postgres import PostgresServer
from deploy.stack import StackError


def test_missing_binaries_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pgmod, "DEBIAN_LIB", tmp_path / "nowhere")
    monkeypatch.setattr(pgmod.shutil, "which", lambda name: None)
    with pytest.raises(StackError, match="install Debian's postgresql"):
        PostgresServer(tmp_path / "pg").start()


def test_url_shape_before_start(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "pg", port=54999)
    server.password = "s3cret"
    assert server.url() == "postgresql://exchange_watch:s3cret@127.0.0.1:54999/postgres"
    assert server.url("db").endswith("/db")
    assert not server.running


@pytest.mark.e2e
def test_server_lifecycle_keeps_committed_data(tmp_path: Path) -> None:
    with PostgresServer(tmp_path / "pg") as server:
        assert server.running
        assert server.password
        password_file = tmp_path / "pg" / "password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        url = server.create_database("lifecycle")
        assert url == server.url("lifecycle")
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (42)")
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("on",)
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        # Password authentication is enforced (scram-sha-256), on loopback TCP only.
        wrong = url.replace(server.password, "wrong")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(wrong, connect_timeout=5).close()

        port = server.port
        server.kill()  # SIGKILL: WAL recovery at the next start
        assert not server.running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2).close()
        server.start()
        assert server.port == port
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]

        server.restart()
        assert server.running
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        with pytest.raises(StackError, match="lifecycle"):
            server.create_database("lifecycle")
        server.stop()
        assert not server.running

        # A new launcher on the same directory reuses the cluster and its password.
        again = PostgresServer(tmp_path / "pg", port=port).start()
        try:
            assert again.password == server.password
            with psycopg.connect(again.url("lifecycle")) as conn:
                assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]
        finally:
            again.stop()
    assert (tmp_path / "pg" / "postgres.log").is_file()


@pytest.mark.e2e
def test_a_data_dir_the_server_account_can_reach_holds_the_cluster_itself() -> None:
    # As root, a directory the postgres account can traverse holds PGDATA directly (pytest's
    # tmp_path cannot: the cluster then lives in a private temp dir, removed on exit).
    base = Path(tempfile.mkdtemp(prefix="pg-launcher-test-"))
    try:
        base.chmod(0o755)
        with PostgresServer(base / "run" / "pg") as server:
            assert (base / "run" / "pg" / "pgdata" / "PG_VERSION").is_file()
            assert not (base / "run" / "pg" / "pgdata").is_symlink()
            with psycopg.connect(server.url(), connect_timeout=10) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        shutil.rmtree(base, ignore_errors=True)


_STARTER = """
import sys, time
from pathlib import Path
from deploy.postgres import PostgresServer
server = PostgresServer(Path(sys.argv[1]), die_with_parent=True).start()
print(server.port, flush=True)
time.sleep(120)
"""


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="util-linux's setpriv is missing")
def test_die_with_parent_stops_the_server_when_its_starter_is_killed(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", _STARTER, str(tmp_path / "pg")],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert starter.stdout is not None
        port = int(starter.stdout.readline())
        password = (tmp_path / "pg" / "password").read_text().strip()
        url = f"postgresql://exchange_watch:{password}@127.0.0.1:{port}/postgres"
        psycopg.connect(url, connect_timeout=10).close()
        starter.kill()  # SIGKILL: no cleanup of its own
        starter.wait(10)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
            except psycopg.OperationalError:
                break  # the server went with its starter
            assert time.monotonic() < deadline, "the server outlived its starter"
            time.sleep(0.2)
    finally:
        if starter.poll() is None:
            starter.kill()
        link = tmp_path / "pg" / "pgdata"
        if link.is_symlink():  # the starter could not clean up its private cluster dir
            shutil.rmtree(link.resolve().parent, ignore_errors=True)
