"""A throwaway PostgreSQL server on loopback, for tests, benchmarks and ``make ha``.

:class:`PostgresServer` runs Debian's PostgreSQL binaries (package ``postgresql``; found in
``/usr/lib/postgresql/<major>/bin``, through ``pg_config --bindir`` or on PATH): ``initdb``
once per data directory, then ``postgres`` listening on ``127.0.0.1:<port>`` only (no Unix
socket), with durability left on (``fsync=on``, ``synchronous_commit=on``). The bootstrap
superuser is ``exchange_watch`` with a generated password (``scram-sha-256`` for every
connection), kept in ``<data_dir>/password`` (mode 0600) so that a new ``PostgresServer`` on the
same directory reuses the cluster.

PostgreSQL refuses to run as root (postgres(1)); as root the binaries run as the ``postgres``
user (created by the Debian package); ``data_dir`` is made mode 0755 for it to traverse (its
secrets, ``password``, stay mode 0600). When that user cannot reach ``data_dir`` (pytest's
``/tmp/pytest-of-root`` is mode 0700), the cluster lives in a private directory under the system
temp dir, linked from ``<data_dir>/pgdata`` and removed when the context manager exits.

Layout: ``<data_dir>/pgdata`` (PGDATA), ``<data_dir>/postgres.log`` (the server's stderr),
``<data_dir>/password``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from deploy.stack import StackError, free_port

USER = "exchange_watch"
"""The bootstrap superuser the server is initialised with (the role in :meth:`url`)."""

OS_USER = "postgres"
"""The system account that runs the binaries when we are root (Debian's package creates it)."""

DEBIAN_LIB = Path("/usr/lib/postgresql")
"""Debian's layout: one ``<major>/bin`` per installed server version."""

INSTALL_HINT = "install Debian's postgresql (`apt-get install postgresql`; .ci/run does this)"


def find_bindir() -> Path:
    """Return the directory holding ``initdb`` and ``postgres``.

    Looks in ``/usr/lib/postgresql/<major>/bin`` (newest major first; Debian's layout), then
    ``pg_config --bindir``, then PATH.

    Raises:
        StackError: no PostgreSQL server binaries are installed.
    """
    candidates: list[Path] = []
    if DEBIAN_LIB.is_dir():
        majors = [p for p in DEBIAN_LIB.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(majors, key=lambda p: int(p.name), reverse=True)]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise StackError(f"PostgreSQL server binaries (initdb, postgres) not found; {INSTALL_HINT}")


class PostgresServer:
    """One PostgreSQL cluster in ``data_dir``, served on ``127.0.0.1:port``.

    Args:
        data_dir: where the cluster, its log and its password live (created if missing).
        port: TCP port; 0 picks a free one now (:func:`deploy.stack.free_port`), kept across
            :meth:`restart` and :meth:`kill`/:meth:`start`.
        die_with_parent: ask Linux to stop the server (SIGINT, a fast shutdown) when the thread
            that started it ends (``prctl(PR_SET_PDEATHSIG)`` through util-linux's
            ``setpriv --pdeathsig``), so a test run killed midway leaves no server behind.
            Only for a server started and restarted from a thread that lives as long as it
            should (pytest's main thread): a worker thread's end would stop it.

    Attributes:
        port: the TCP port.
        password: the ``exchange_watch`` role's password (keep it out of logs).
        data_dir: as given; ``log_path``: the server's log.

    Raises (from :meth:`start`):
        StackError: binaries missing, ``initdb`` failed, or the server did not answer in time.
    """

    def __init__(self, data_dir: Path, port: int = 0, *, die_with_parent: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._die_with_parent = die_with_parent
        self.port = port or free_port()
        self.log_path = self.data_dir / "postgres.log"
        self._password_path = self.data_dir / "password"
        self._link = self.data_dir / "pgdata"
        self._external: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0
        self.password = ""

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._external is not None:
            shutil.rmtree(self._external, ignore_errors=True)
            with contextlib.suppress(OSError):
                self._link.unlink()
            self._external = None

    @property
    def running(self) -> bool:
        """True while the postmaster process we started is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Initialise the cluster if needed, start the server and wait until it answers.

        Returns:
            self (so ``with PostgresServer(d) as pg`` and ``pg = PostgresServer(d).start()``).

        Raises:
            StackError: binaries missing, initdb failed, or no answer within ``timeout`` s.
        """
        if self.running:
            return self
        bindir = find_bindir()
        pgdata = self._init_cluster(bindir)
        command = [str(bindir / "postgres"), "-D", str(pgdata), *self._settings()]
        setpriv = shutil.which("setpriv")
        if self._die_with_parent and setpriv:
            # Set after Popen dropped root (a change of credentials clears the setting).
            command = [setpriv, "--pdeathsig", "INT", *command]
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._run_as(),
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit); SIGKILL the
        process group if it has not exited within ``timeout`` seconds. No-op when stopped."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(process)
        self._process = None

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (a crash: nothing is flushed or checkpointed;
        the next :meth:`start` runs WAL recovery). No-op when stopped."""
        process = self._process
        if process is None:
            return
        self._kill_group(process)
        self._process = None

    def restart(self, timeout: float = 60.0) -> PostgresServer:
        """:meth:`stop` then :meth:`start` on the same port and data directory."""
        self.stop()
        return self.start(timeout)

    # -- connections -----------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """``postgresql://exchange_watch:<password>@127.0.0.1:<port>/<dbname>`` (a secret)."""
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally copied from ``template``) and return its URL.

        Raises:
            StackError: the server refused (e.g. the name exists) or is not running.
        """
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        try:
            with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
                conn.execute(statement)
        except psycopg.Error as exc:
            raise StackError(
                f"cannot create database {name!r}: {type(exc).__name__}: {exc.sqlstate}"
            ) from None
        return self.url(name)

    # -- internals -------------------------------------------------------------------------

    def _settings(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]

    def _run_as(self) -> dict[str, Any]:
        """Popen keyword arguments that drop root to the ``postgres`` account."""
        if not self._as_postgres:
            return {}
        return {"user": OS_USER, "group": OS_USER, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self._as_postgres:
            shutil.chown(path, OS_USER, OS_USER)

    def _reachable_by_postgres(self) -> bool:
        probe = subprocess.run(
            ["test", "-x", str(self.data_dir)],
            capture_output=True,
            timeout=10,
            **self._run_as(),
        )
        return probe.returncode == 0

    def _pgdata(self) -> Path:
        """The PGDATA directory, creating it (empty, owned by the server's account) if needed."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._link.is_symlink():
            target = self._link.resolve()
            if target.is_dir():
                return target
            self._link.unlink()
        if self._link.is_dir():
            return self._link
        if self._as_postgres:
            self.data_dir.chmod(0o755)
            if not self._reachable_by_postgres():
                self._external = Path(tempfile.mkdtemp(prefix="exchange-watch-pg-"))
                self._chown(self._external)
                pgdata = self._external / "data"
                pgdata.mkdir(mode=0o700)
                self._chown(pgdata)
                self._link.symlink_to(pgdata)
                return pgdata
        self._link.mkdir(mode=0o700)
        self._chown(self._link)
        return self._link

    def _init_cluster(self, bindir: Path) -> Path:
        pgdata = self._pgdata()
        if (pgdata / "PG_VERSION").is_file():
            if not self.password:
                self.password = self._password_path.read_text(encoding="utf-8").strip()
            return pgdata
        self.password = secrets.token_urlsafe(24)
        self._password_path.write_text(self.password + "\n", encoding="utf-8")
        self._password_path.chmod(0o600)
        with tempfile.NamedTemporaryFile("w", prefix="pwfile-", delete=False) as pwfile:
            pwfile.write(self.password + "\n")
        pw_path = Path(pwfile.name)
        try:
            self._chown(pw_path)
            result = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(pgdata),
                    f"--username={USER}",
                    f"--pwfile={pw_path}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                capture_output=True,
                text=True,
                timeout=300,
                cwd="/",
                **self._run_as(),
            )
        finally:
            pw_path.unlink(missing_ok=True)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-2000:]
            raise StackError(f"initdb failed (exit {result.returncode}):\n{tail}")
        return pgdata

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                raise StackError(
                    f"postgres exited with code {process.returncode}; log:\n{self._log_tail()}"
                )
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error:
                time.sleep(0.1)
        self._kill_group(process)
        self._process = None
        raise StackError(
            f"postgres did not answer on 127.0.0.1:{self.port} within {timeout:g}s; log:\n"
            f"{self._log_tail()}"
        )

    def _kill_group(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the server's process group and wait until it is gone (so the next start
        does not find the old shared memory still attached)."""
        pgid = process.pid  # start_new_session: the postmaster leads its own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
