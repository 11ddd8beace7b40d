"""Helpers of the high-availability tests and benchmarks (issue 16): receivers as processes, a
webhook sink that records ``Idempotency-Key`` headers, a routing file, and a real Alertmanager
cluster gossiping on loopback.

* :class:`ReceiverProcess`: ``python -m receiver.cli --listen 127.0.0.1:PORT`` with a given
  environment (see :func:`receiver_env`), its output in a log file; ``kill()`` is SIGKILL.
* :class:`WebhookSink`: a local HTTP server standing in for a consumer of the receiver's generic
  webhook notifier (receiver/notifiers/webhook.py): it records every POST *when it arrives*,
  then answers 200 after ``delay`` seconds (so deliveries are in flight), and deduplicates on
  the ``Idempotency-Key`` header as a consumer should (:meth:`WebhookSink.accepted`).
* :func:`write_routing`: a routing file (receiver/routing.py) whose every route notifies a JSONL
  file and the sink (``type: webhook`` with ``url_env``).
* :class:`AlertmanagerCluster`: ``prometheus-alertmanager`` nodes with ``--cluster.peer`` to
  each other and short gossip intervals, one route whose receiver has one ``webhook_configs``
  entry per given URL (Alertmanager 0.25 flags, ``prometheus-alertmanager --help``).
* :func:`start_process` / :func:`stop_process`: any other component (simulator, exporter,
  Prometheus) started in its own session with its output in a log, ready once a URL answers.
* :func:`jsonl_records`, :func:`repeated`, :func:`am_alert`: reading the JSONL channel,
  counting repeats, and an alert as Prometheus posts it to Alertmanager.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from deploy.stack import StackError, find_binary, free_port, wait_for_http

REPO = Path(__file__).resolve().parents[1]
SINK_URL_ENV = "HA_SINK_URL"
"""The environment variable the routing file of :func:`write_routing` reads the sink URL from."""

_SCRUBBED_PREFIXES = ("SLACK_", "DISCORD_", "LLM_", "NOTIFY_", "RECEIVER_", "DEADMAN_", "HA_")
_SCRUBBED = ("PROMETHEUS_URL", "WORKER_CONCURRENCY", "MAX_BODY_BYTES")


def receiver_env(
    *,
    instance: str,
    routing_file: Path | None = None,
    notify_file: Path | None = None,
    database_url: str | None = None,
    db_path: Path | None = None,
    sink_url: str | None = None,
    lease_seconds: float | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one receiver process: this process's environment without any
    receiver, notifier or LLM setting, plus the given ones.

    Args:
        instance: ``RECEIVER_INSTANCE`` (the lease owner).
        routing_file: ``RECEIVER_ROUTING_FILE``.
        notify_file: ``NOTIFY_FILE`` (used when there is no routing file).
        database_url: ``RECEIVER_DATABASE_URL`` (PostgreSQL); else SQLite at ``db_path``.
        db_path: ``RECEIVER_DB_PATH``.
        sink_url: the :class:`WebhookSink` URL, as :data:`SINK_URL_ENV`.
        lease_seconds: ``RECEIVER_LEASE_SECONDS``.
        extra: anything else (wins over the above).

    Returns:
        A complete environment for :class:`subprocess.Popen`. Retries are fast
        (``NOTIFY_RETRY_BASE_SECONDS`` 0.2, max 1 s), the dead man's switch is off and
        ``WORKER_CONCURRENCY`` is 4 unless ``extra`` says otherwise.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED
    }
    env.update(
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
        RECEIVER_INSTANCE=instance,
        WORKER_CONCURRENCY="4",
        NOTIFY_RETRY_BASE_SECONDS="0.2",
        NOTIFY_RETRY_MAX_SECONDS="1",
        DEADMAN_TIMEOUT_SECONDS="0",
    )
    if routing_file is not None:
        env["RECEIVER_ROUTING_FILE"] = str(routing_file)
    if notify_file is not None:
        env["NOTIFY_FILE"] = str(notify_file)
    if database_url is not None:
        env["RECEIVER_DATABASE_URL"] = database_url
    if db_path is not None:
        env["RECEIVER_DB_PATH"] = str(db_path)
    if sink_url is not None:
        env[SINK_URL_ENV] = sink_url
    if lease_seconds is not None:
        env["RECEIVER_LEASE_SECONDS"] = f"{lease_seconds:g}"
    env.update(extra or {})
    return env


def write_routing(path: Path, jsonl: Path) -> Path:
    """Write a routing file notifying, on every route, the JSONL file ``jsonl`` (instance
    ``log``) and the sink whose URL is in :data:`SINK_URL_ENV` (instance ``hooks``).

    Returns:
        ``path``.
    """
    routing = {
        "notifiers": {
            "hooks": {"type": "webhook", "url_env": SINK_URL_ENV, "timeout_seconds": 10},
            "log": {"type": "jsonl", "path": str(jsonl)},
        },
        "routes": {"default": ["hooks", "log"]},
    }
    path.write_text(yaml.safe_dump(routing, sort_keys=False), encoding="utf-8")
    return path


class ReceiverProcess:
    """``python -m receiver.cli --listen 127.0.0.1:PORT``, stdout and stderr in ``log``.

    Args:
        env: the complete environment (see :func:`receiver_env`).
        log: the log file (appended to, so a restart keeps the first run's lines).
        port: the port to listen on (0: a free one is chosen, and kept by :meth:`start`).
        name: for messages.

    Attributes:
        url: ``http://127.0.0.1:PORT`` once started.
        killed_at: ``time.monotonic()`` of the last :meth:`kill`, else ``None``.
    """

    def __init__(self, env: dict[str, str], log: Path, port: int = 0, name: str = "receiver"):
        self.env = env
        self.log = log
        self.port = port or free_port()
        self.name = name
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed_at: float | None = None
        self._offset = 0

    def start(self, timeout: float = 60.0) -> ReceiverProcess:
        """:meth:`spawn` then :meth:`wait_started`.

        Raises:
            StackError: see :meth:`wait_started`.
        """
        return self.spawn().wait_started(timeout)

    def spawn(self) -> ReceiverProcess:
        """Start the process without waiting (start several, then wait for each: receivers
        started together must migrate the schema safely)."""
        with self.log.open("ab") as out:
            self._offset = out.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "receiver.cli", "--listen", f"127.0.0.1:{self.port}"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_started(self, timeout: float = 60.0) -> ReceiverProcess:
        """Wait for the ``alert-receiver listening on`` line of the last :meth:`spawn`.

        Raises:
            StackError: it exited or did not announce itself within ``timeout`` seconds (the
                process is stopped; the message holds the log's tail).
        """
        assert self.proc is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log.open("rb") as handle:
                handle.seek(self._offset)
                if b"alert-receiver listening on " in handle.read():
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise StackError(f"{self.name} did not start:\n{self.log_tail()}")

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        """The process id (raises ``AssertionError`` before :meth:`start`)."""
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log."""
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; records :attr:`killed_at`."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.killed_at = time.monotonic()
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass(frozen=True)
class SinkPost:
    """One POST the sink received.

    Attributes:
        key: its ``Idempotency-Key`` header ("" when missing).
        alertname: ``alert.alertname`` of the body.
        fingerprint: ``alert.fingerprint`` of the body.
        status: ``status`` of the body (firing, resolved).
        arrived: ``time.monotonic()`` when the request arrived.
    """

    key: str
    alertname: str
    fingerprint: str
    status: str
    arrived: float


class WebhookSink:
    """A loopback consumer of the receiver's webhook notifier.

    Every POST is recorded when it arrives (as a consumer processes it), then answered
    ``status`` after ``delay`` seconds. Use as a context manager.

    Args:
        delay: seconds before answering each POST.
        status: the HTTP status answered.

    Attributes:
        url: ``http://127.0.0.1:PORT/hook`` once started.
    """

    def __init__(self, delay: float = 0.05, status: int = 200) -> None:
        self.delay = delay
        self.status = status
        self._posts: list[SinkPost] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                    alert = body.get("alert") or {}
                except ValueError:
                    body, alert = {}, {}
                post = SinkPost(
                    key=self.headers.get("Idempotency-Key", ""),
                    alertname=str(alert.get("alertname", "")),
                    fingerprint=str(alert.get("fingerprint", "")),
                    status=str(body.get("status", "")),
                    arrived=time.monotonic(),
                )
                with sink._lock:
                    sink._posts.append(post)
                time.sleep(sink.delay)
                with contextlib.suppress(OSError):
                    self.send_response(sink.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def posts(self) -> list[SinkPost]:
        """Every POST received so far, in arrival order."""
        with self._lock:
            return list(self._posts)

    def accepted(self) -> list[SinkPost]:
        """The first POST of each ``Idempotency-Key``: what a deduplicating consumer keeps."""
        seen: dict[str, SinkPost] = {}
        for post in self.posts():
            seen.setdefault(post.key, post)
        return list(seen.values())

    def duplicates(self) -> int:
        """POSTs repeating an ``Idempotency-Key`` already received."""
        return len(self.posts()) - len(self.accepted())


def jsonl_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(every parseable line of a JSONL notification file, number of unparseable lines)."""
    if not path.exists():
        return [], 0
    records, torn = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            torn += 1
    return records, torn


def repeated(keys: Iterable[Any]) -> int:
    """How many items of ``keys`` repeat an earlier one."""
    return sum(count - 1 for count in Counter(keys).values() if count > 1)


def am_alert(
    name: str, labels: Mapping[str, str] | None = None, starts_at: str | None = None
) -> dict[str, Any]:
    """A firing alert for Alertmanager's ``POST /api/v2/alerts``.

    ``startsAt`` is set, as Prometheus sets it (the rule's ``activeAt``), to ``starts_at`` or
    now (RFC 3339): without it each Alertmanager stamps its own arrival time, and the same alert
    posted to two nodes would reach the receivers as two incidents (the idempotency key holds
    ``startsAt``). ``endsAt`` is left to Alertmanager's ``resolve_timeout``.
    """
    if starts_at is None:
        starts_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "labels": {"alertname": name, "severity": "critical", **(labels or {})},
        "annotations": {"summary": f"HA test alert {name}"},
        "startsAt": starts_at,
        "generatorURL": "http://prometheus.local/graph",
    }


class AlertmanagerCluster:
    """Alertmanager nodes clustered on loopback, all routing every alert to one receiver with
    one webhook per URL of ``webhooks``. Use as a context manager.

    Args:
        run_dir: where configs, data and logs go.
        webhooks: webhook URLs (e.g. each receiver's ``/alerts/critical``).
        nodes: how many Alertmanagers.
        group_by: the route's ``group_by``.
        group_wait, group_interval: the route's timing (Alertmanager durations).
        peer_timeout: ``--cluster.peer-timeout``: how long node *n* waits for the nodes before
            it to notify (Alertmanager's default 15 s).

    Attributes:
        urls: each node's ``http://127.0.0.1:PORT`` once started.
    """

    def __init__(
        self,
        run_dir: Path,
        webhooks: Sequence[str],
        nodes: int = 2,
        group_by: Sequence[str] = ("alertname",),
        group_wait: str = "1s",
        group_interval: str = "10s",
        peer_timeout: str = "1s",
    ) -> None:
        self.run_dir = run_dir
        self.webhooks = list(webhooks)
        self.nodes = nodes
        self.group_by = list(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.peer_timeout = peer_timeout
        self.urls: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []

    def config(self) -> dict[str, Any]:
        """The Alertmanager configuration all nodes run."""
        return {
            "route": {
                "receiver": "receivers",
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": "4h",
            },
            "receivers": [
                {
                    "name": "receivers",
                    "webhook_configs": [
                        {"url": url, "send_resolved": True} for url in self.webhooks
                    ],
                }
            ],
        }

    def __enter__(self) -> AlertmanagerCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> AlertmanagerCluster:
        """Start every node and wait until each is ready and sees all nodes as peers.

        Raises:
            StackError: the binary is missing, a node exits, or the cluster does not form
                within ``timeout`` seconds (whatever started is stopped).
        """
        binary = find_binary("prometheus-alertmanager", "alertmanager")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")
        web = [free_port() for _ in range(self.nodes)]
        gossip = [free_port() for _ in range(self.nodes)]
        self.urls = [f"http://127.0.0.1:{port}" for port in web]
        try:
            for n in range(self.nodes):
                peers = [f"--cluster.peer=127.0.0.1:{p}" for i, p in enumerate(gossip) if i != n]
                argv = [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={self.run_dir / f'data-{n}'}",
                    f"--web.listen-address=127.0.0.1:{web[n]}",
                    f"--web.external-url={self.urls[n]}",
                    f"--cluster.listen-address=127.0.0.1:{gossip[n]}",
                    f"--cluster.advertise-address=127.0.0.1:{gossip[n]}",
                    *peers,
                    "--cluster.gossip-interval=50ms",
                    "--cluster.pushpull-interval=1s",
                    "--cluster.probe-interval=200ms",
                    "--cluster.reconnect-interval=1s",
                    "--cluster.settle-timeout=10s",
                    f"--cluster.peer-timeout={self.peer_timeout}",
                    "--log.level=warn",
                ]
                with (self.run_dir / f"alertmanager-{n}.log").open("wb") as log:
                    self._procs.append(
                        subprocess.Popen(
                            argv,
                            cwd=REPO,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
            for url, proc in zip(self.urls, self._procs, strict=True):
                wait_for_http(f"{url}/-/ready", timeout, proc)
            self._wait_clustered(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_clustered(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            for url in self.urls:
                while True:
                    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                        cluster = client.get(f"{url}/api/v2/status").json()["cluster"]
                        if (
                            cluster.get("status") == "ready"
                            and len(cluster.get("peers") or []) >= self.nodes
                        ):
                            break
                    if time.monotonic() > deadline:
                        raise StackError(
                            f"Alertmanager cluster did not form within {timeout:g}s:\n"
                            + self.log_tail()
                        )
                    time.sleep(0.2)

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of every node's log."""
        parts = []
        for n in range(self.nodes):
            path = self.run_dir / f"alertmanager-{n}.log"
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            parts.append(f"--- alertmanager-{n}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]], batch: int = 50) -> None:
        """POST ``alerts`` to every node's ``/api/v2/alerts`` (as a Prometheus HA pair, which
        sends every alert to every Alertmanager), in batches of ``batch``.

        Raises:
            httpx.HTTPStatusError: a node refused them.
        """
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            for start in range(0, len(alerts), batch):
                chunk = list(alerts[start : start + batch])
                for url in self.urls:
                    client.post(f"{url}/api/v2/alerts", json=chunk).raise_for_status()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every node, SIGKILL those still running after ``timeout`` seconds."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()


def start_process(
    argv: Sequence[str],
    log: Path,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` (cwd: the repository; its output in ``log``; its own session) and wait
    until ``ready_url`` answers 200.

    Args:
        env: added to this process's environment (``PYTHONPATH`` is the repository).

    Raises:
        StackError: it exited first or did not answer within ``timeout`` seconds (it is stopped;
            the message holds the log's tail).
    """
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(ready_url, timeout, proc)
    except StackError as exc:
        stop_process(proc)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise StackError(f"{argv[0]} {' '.join(argv[1:3])}: {exc}\n{tail}") from None
    return proc


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM ``proc``, SIGKILL it after ``timeout`` seconds; no-op when it has exited."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
