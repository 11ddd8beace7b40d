"""Benchmark (issue 16): the receiver's store on PostgreSQL beside SQLite - durable intake,
takeover of a crashed receiver's deliveries, and the database size under a storm with retention.

* HTTP intake: the real receiver (``python -m receiver.cli``, JSONL notifier, rules diagnosis)
  per backend, a fresh database each, pinned to the last core; this process drives it from the
  other core(s) with ``connections`` keep-alive connections, each posting its next distinct
  webhook (2 alerts) as soon as the previous one is answered (benchmarks/bench_receiver.py's
  load generator), for a fixed window after a warm-up: webhooks/s and ack p50/p99 (request
  written → answer read). The receiver is then killed (SIGKILL) and the webhooks found in its
  database counted against the acknowledged ones. PostgreSQL (deploy/postgres.py: Debian's
  server on loopback, fsync and synchronous_commit on) runs unpinned beside the load generator.
* Store level: ``ingest_many`` of the store class in this process (no HTTP, no worker) with
  batches of 1 and 64 webhooks (one transaction each): webhooks/s of the time spent inside
  ``ingest_many``.
* Takeover: two receivers on one PostgreSQL database, a webhook notifier to a local consumer
  answering after 200 ms (deliveries in flight); webhooks are posted to the first, and once a
  quarter are delivered the receiver holding the most leases is killed (SIGKILL). Figures: from
  the kill until every notification the dead receiver had leased is ``done`` in the database
  (delivered by the survivor; its lease must expire first: ``RECEIVER_LEASE_SECONDS``, default
  15 and a short 3), and until no notification is pending (polled every ~50 ms).
* Storm with retention: a receiver with ``RECEIVER_RETENTION_DAYS`` = 0.0007 (60 s) under a
  sustained open-loop burst; the database size (SQLite: file + WAL; PostgreSQL:
  ``pg_database_size``) and row counts are sampled every few seconds: the size must level off
  once pruning keeps pace.

Durations (environment): ``STORE_BENCH_SECONDS`` (intake window, default 8),
``STORE_BENCH_STORM_SECONDS`` (default 150 per backend), ``STORE_BENCH_STORM_RATE``
(webhooks/s, default 15), ``STORE_BENCH_SAMPLE_SECONDS`` (default 10).

    python benchmarks/bench_store.py --runs 1
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common
from benchmarks.bench_receiver import WebhookRequests, generate_load
from deploy.postgres import PostgresServer
from receiver.models import AlertmanagerWebhook
from receiver.store import SQLiteStore, Store
from receiver.store.postgres import PostgresStore
from testsupport.ha import ReceiverProcess, WebhookSink, receiver_env, write_routing

HOST = "127.0.0.1"
BACKENDS = ("sqlite", "postgresql")
WINDOW = float(os.environ.get("STORE_BENCH_SECONDS", "8"))
WARMUP = 2.0
CONNECTIONS = 16
INGEST_SECONDS = 4.0
"""Seconds spent inside ``ingest_many`` per store-level figure."""
STORM_SECONDS = float(os.environ.get("STORE_BENCH_STORM_SECONDS", "150"))
STORM_RATE = float(os.environ.get("STORE_BENCH_STORM_RATE", "15"))
"""Webhooks/s of the storm: below what the delivery worker sustains here, so notifications get
done and become prunable (pending work is never pruned; a faster storm grows the backlog)."""
SAMPLE_SECONDS = float(os.environ.get("STORE_BENCH_SAMPLE_SECONDS", "10"))
RETENTION_DAYS = 0.0007
TAKEOVER_LEASES = (15.0, 3.0)
TAKEOVER_WEBHOOKS = 80
SINK_DELAY = 0.2
MB = 1024 * 1024


def _log(text: str) -> None:
    print(f"[bench_store {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Databases:
    """A fresh database per measurement: a SQLite file, or a new PostgreSQL database."""

    def __init__(self, tmp: Path, postgres: PostgresServer) -> None:
        self.tmp = tmp
        self.postgres = postgres
        self._n = 0

    def new(self, backend: str) -> dict[str, Any]:
        """``{"db_path": Path}`` or ``{"database_url": str}`` for :func:`receiver_env`."""
        self._n += 1
        if backend == "sqlite":
            return {"db_path": self.tmp / f"bench-{self._n}.db"}
        return {"database_url": self.postgres.create_database(f"bench_{self._n}")}

    def store(self, where: dict[str, Any]) -> Store:
        """The store class over ``where`` (initialised)."""
        store: Store
        if "db_path" in where:
            store = SQLiteStore(where["db_path"])
        else:
            store = PostgresStore(where["database_url"])
        store.init()
        return store


def size_and_rows(where: dict[str, Any]) -> tuple[int, int, int, int]:
    """(bytes on disk, webhooks, notifications, pending notifications) of a receiver's
    database, read from outside (SQLite: the file plus its WAL; PostgreSQL:
    ``pg_database_size``)."""
    counts = (
        "SELECT (SELECT COUNT(*) FROM webhooks), (SELECT COUNT(*) FROM notifications),"
        " (SELECT COUNT(*) FROM notifications WHERE state = 'pending')"
    )
    if "db_path" in where:
        path: Path = where["db_path"]
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            webhooks, notes, pending = conn.execute(counts).fetchone()
        return size, int(webhooks), int(notes), int(pending)
    with psycopg.connect(where["database_url"], connect_timeout=10) as pg:
        row = pg.execute(
            counts.replace("SELECT (", "SELECT pg_database_size(current_database()), (", 1)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


@contextlib.contextmanager
def receiver(
    tmp: Path, where: dict[str, Any], name: str, cpus: list[int] | None = None, **env: Any
) -> Iterator[ReceiverProcess]:
    """A receiver process on ``where`` with a JSONL notifier, pinned to ``cpus``."""
    extra = {k.upper(): str(v) for k, v in env.items()}
    proc = ReceiverProcess(
        receiver_env(instance=name, notify_file=tmp / f"{name}.jsonl", extra=extra, **where),
        tmp / f"{name}.log",
        name=name,
    ).start()
    if cpus:
        common.pin(proc.pid, cpus)
    try:
        yield proc
    finally:
        proc.stop()


def _set_affinity(cpus: set[int]) -> None:
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), cpus)


def http_intake(dbs: Databases, backend: str, sut: list[int]) -> dict[str, float]:
    """Closed-loop intake through ``POST /alerts/critical``: rate, p50/p99, stored/acked."""
    where = dbs.new(backend)
    with receiver(dbs.tmp, where, f"intake-{backend}", sut) as proc:
        requests = WebhookRequests(f"{HOST}:{proc.port}", secrets.token_hex(4))
        load = asyncio.run(
            generate_load(
                HOST,
                proc.port,
                requests,
                connections=CONNECTIONS,
                warmup=WARMUP,
                duration=WINDOW,
                server_pid=proc.pid,
            )
        )
        proc.kill()  # what was acknowledged must already be committed
    _, stored, _, _ = size_and_rows(where)
    return {
        "rate": load.rate,
        "p50": load.latency_ms(50),
        "p99": load.latency_ms(99),
        "stored": stored,
        "acked": load.acked,
        "errors": load.errors,
        "server_cpu": load.server_cpu / WINDOW,
    }


def ingest_rate(dbs: Databases, backend: str, batch: int) -> float:
    """Webhooks/s of ``ingest_many`` with ``batch`` webhooks per call (time inside the calls)."""
    store = dbs.store(dbs.new(backend))
    requests = WebhookRequests(f"{HOST}:0", secrets.token_hex(4))
    spent, done, seq = 0.0, 0, 0
    try:
        while spent < INGEST_SECONDS:
            items = []
            for _ in range(batch):
                body = requests.body(seq)
                seq += 1
                items.append(
                    (AlertmanagerWebhook.model_validate_json(body), "critical", body.decode())
                )
            began = time.perf_counter()
            store.ingest_many(items)
            spent += time.perf_counter() - began
            done += batch
    finally:
        store.close()
    return done / spent


def _takeover_webhook(run: str, i: int) -> dict[str, Any]:
    name = f"Takeover{run}{i:03d}"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "receiver": "bench",
        "groupLabels": {"alertname": name},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": name, "severity": "critical"},
                "annotations": {"summary": "takeover benchmark"},
                "startsAt": "2026-12-06T10:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"{i:016x}",
            }
        ],
    }


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def takeover(dbs: Databases, lease: float) -> dict[str, float]:
    """Kill the receiver holding leases; seconds until its leased work, and all, is delivered."""
    url = dbs.postgres.create_database(f"takeover_{secrets.token_hex(3)}")
    run = secrets.token_hex(2)
    names = {f"Takeover{run}{i:03d}" for i in range(TAKEOVER_WEBHOOKS)}
    tmp = Path(tempfile.mkdtemp(dir=dbs.tmp, prefix="takeover-"))
    routing = write_routing(tmp / "routing.yml", tmp / "notifications.jsonl")
    with WebhookSink(delay=SINK_DELAY) as sink:
        procs = [
            ReceiverProcess(
                receiver_env(
                    instance=name,
                    routing_file=routing,
                    database_url=url,
                    sink_url=sink.url,
                    lease_seconds=lease,
                ),
                tmp / f"{name}.log",
                name=name,
            ).start()
            for name in ("receiver-a", "receiver-b")
        ]
        try:
            with httpx.Client(timeout=30) as client:
                for i in range(TAKEOVER_WEBHOOKS):
                    url_a = f"{procs[0].url}/alerts/critical"
                    client.post(url_a, json=_takeover_webhook(run, i)).raise_for_status()
            _wait(lambda: len(sink.accepted()) >= TAKEOVER_WEBHOOKS // 4, 60)
            by_owner = _leases(url)
            victim_name = max(by_owner, key=lambda o: len(by_owner[o]), default="receiver-a")
            victim = next(p for p in procs if p.name == victim_name)
            victim.kill()
            killed = victim.killed_at or time.monotonic()
            leased = by_owner.get(victim_name, [])
            timeout = 3 * lease + 60
            leased_ok = _wait(lambda: _pending(url, leased) == 0, timeout)
            leased_done = time.monotonic() - killed
            delivered = _wait(lambda: _pending(url) == 0, timeout)
            all_done = time.monotonic() - killed
        finally:
            for proc in procs:
                proc.stop()
    delivered = delivered and leased_ok and {p.alertname for p in sink.accepted()} >= names
    return {
        "leased": len(leased),
        "leased_done": leased_done,
        "all_done": all_done,
        "delivered": float(delivered),
        "duplicates": sink.duplicates(),
    }


def _leases(url: str) -> dict[str, list[int]]:
    """Lease owner → ids of the pending notifications it holds."""
    with psycopg.connect(url, connect_timeout=10) as pg:
        rows = pg.execute(
            "SELECT lease_owner, id FROM notifications"
            " WHERE state = 'pending' AND lease_owner IS NOT NULL"
        ).fetchall()
    out: dict[str, list[int]] = {}
    for owner, notification in rows:
        out.setdefault(str(owner), []).append(int(notification))
    return out


def _pending(url: str, ids: list[int] | None = None) -> int:
    """Pending notifications (among ``ids`` when given)."""
    query = "SELECT COUNT(*) FROM notifications WHERE state = 'pending'"
    with psycopg.connect(url, connect_timeout=10) as pg:
        if ids is None:
            row = pg.execute(query).fetchone()
        else:
            row = pg.execute(query + " AND id = ANY(%s)", (ids,)).fetchone()
    return int(row[0]) if row else -1


def storm(dbs: Databases, backend: str, sut: list[int]) -> dict[str, Any]:
    """Sustained open-loop intake with 60 s retention; the size sampled as it goes."""
    where = dbs.new(backend)
    samples: list[tuple[float, int, int, int, int]] = []
    with receiver(
        dbs.tmp, where, f"storm-{backend}", sut, receiver_retention_days=RETENTION_DAYS
    ) as proc:
        requests = WebhookRequests(f"{HOST}:{proc.port}", secrets.token_hex(4))
        stop = threading.Event()

        def sample() -> None:
            began = time.monotonic()
            while not stop.wait(SAMPLE_SECONDS):
                with contextlib.suppress(Exception):
                    samples.append((time.monotonic() - began, *size_and_rows(where)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        load = asyncio.run(
            generate_load(
                HOST,
                proc.port,
                requests,
                connections=32,
                warmup=0.0,
                duration=STORM_SECONDS,
                rate=STORM_RATE,
            )
        )
        stop.set()
        sampler.join()
        metrics = httpx.get(f"{proc.url}/metrics", timeout=10).text
    pruned = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("alert_receiver_pruned_rows_total")
    )
    return {"samples": samples, "acked": load.acked, "errors": load.errors, "pruned": pruned}


def run(runs: int = 1) -> dict[str, Any]:
    """One pass of every figure (``runs`` is taken as 1: the storm alone takes minutes).

    Returns:
        A :func:`common.section` named ``store``.
    """
    sut, load_cores = common.cores()
    before = os.sched_getaffinity(0)
    load_start = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="bench-store-") as directory,
        PostgresServer(Path(directory) / "pg") as postgres,
    ):
        dbs = Databases(Path(directory), postgres)
        figures: dict[str, dict[str, Any]] = {b: {} for b in BACKENDS}
        _set_affinity(set(load_cores))
        try:
            for backend in BACKENDS:
                _log(f"HTTP intake on {backend}")
                figures[backend]["http"] = http_intake(dbs, backend, sut)
        finally:
            _set_affinity(before)
        for backend in BACKENDS:
            for batch in (1, 64):
                _log(f"ingest_many batch {batch} on {backend}")
                figures[backend][f"ingest{batch}"] = ingest_rate(dbs, backend, batch)
        takeovers = {}
        for lease in TAKEOVER_LEASES:
            _log(f"takeover, lease {lease:g} s")
            takeovers[lease] = takeover(dbs, lease)
        for backend in BACKENDS:
            _log(f"storm on {backend} for {STORM_SECONDS:g} s")
            figures[backend]["storm"] = storm(dbs, backend, sut)
    section = _section(figures, takeovers, sut, load_cores)
    section["notes"].append(
        "Machine load (1/5/15-min load averages) at the start "
        + "/".join(f"{v:.1f}" for v in load_start)
        + ", at the end "
        + "/".join(f"{v:.1f}" for v in os.getloadavg())
        + f" on {os.cpu_count()} cores: other work on the machine slows every figure."
    )
    return section


def _section(
    figures: dict[str, dict[str, Any]],
    takeovers: dict[float, dict[str, float]],
    sut: list[int],
    load_cores: list[int],
) -> dict[str, Any]:
    def row(measurement: str, pick: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        return {"measurement": measurement, **{b: pick(figures[b]) for b in BACKENDS}}

    def storm_mb(f: dict[str, Any], which: str) -> float:
        sizes: list[float] = [s[1] / MB for s in f["storm"]["samples"]]
        if not sizes:
            return float("nan")
        if which == "end":
            return sizes[-1]
        return max(sizes[len(sizes) // 2 :] if which == "second_half_max" else sizes)

    rows = [
        row(f"HTTP intake, webhooks/s ({CONNECTIONS} conns)", lambda f: f["http"]["rate"]),
        row("HTTP ack p50 ms", lambda f: f["http"]["p50"]),
        row("HTTP ack p99 ms", lambda f: f["http"]["p99"]),
        row("receiver CPU, cores busy", lambda f: f["http"]["server_cpu"]),
        row("ingest_many batch 1, webhooks/s", lambda f: f["ingest1"]),
        row("ingest_many batch 64, webhooks/s", lambda f: f["ingest64"]),
        row("storm: database MB, largest sample", lambda f: storm_mb(f, "max")),
        row("storm: database MB, largest in 2nd half", lambda f: storm_mb(f, "second_half_max")),
        row("storm: database MB at the end", lambda f: storm_mb(f, "end")),
        row("storm: rows pruned", lambda f: f["storm"]["pruned"]),
        row(
            "storm: notifications pending at the end",
            lambda f: f["storm"]["samples"][-1][4] if f["storm"]["samples"] else "n/a",
        ),
    ]
    for lease, t in takeovers.items():
        rows.append(
            {
                "measurement": f"takeover, lease {lease:g} s: kill → dead one's leased done s",
                "sqlite": "n/a",
                "postgresql": t["leased_done"],
            }
        )
        rows.append(
            {
                "measurement": f"takeover, lease {lease:g} s: kill → everything done s",
                "sqlite": "n/a",
                "postgresql": t["all_done"],
            }
        )
    notes = [
        f"HTTP intake: receiver pinned to core(s) {sut}, load generator to {load_cores},"
        f" PostgreSQL unpinned; {WINDOW:g} s window after {WARMUP:g} s warm-up; webhooks of 2"
        " alerts. Stored/acked after SIGKILL: "
        + ", ".join(
            f"{b} {figures[b]['http']['stored']}/{figures[b]['http']['acked']}" for b in BACKENDS
        )
        + "; errors: "
        + ", ".join(f"{b} {figures[b]['http']['errors']}" for b in BACKENDS)
        + ".",
        "Takeover: two receivers on PostgreSQL, webhook consumer answering after"
        f" {SINK_DELAY * 1000:g} ms, {TAKEOVER_WEBHOOKS} webhooks; notifications leased to the"
        " killed receiver: "
        + ", ".join(f"lease {k:g} s: {v['leased']}" for k, v in takeovers.items())
        + "; everything delivered: "
        + ", ".join(f"{bool(v['delivered'])}" for v in takeovers.values())
        + "; webhook POSTs repeating an Idempotency-Key (a send in flight at the kill): "
        + ", ".join(f"{v['duplicates']}" for v in takeovers.values())
        + ".",
    ]
    for backend in BACKENDS:
        s = figures[backend]["storm"]
        series = ", ".join(
            f"{t:.0f}s {size / MB:.1f} MB ({w}/{n}/{p})" for t, size, w, n, p in s["samples"]
        )
        notes.append(
            f"Storm on {backend}: {STORM_RATE:g} webhooks/s for {STORM_SECONDS:g} s (acked"
            f" {s['acked']}, errors {s['errors']}), RECEIVER_RETENTION_DAYS={RETENTION_DAYS}"
            f" (≈{RETENTION_DAYS * 86400:.0f} s); elapsed, size (webhooks/notifications/pending"
            f" rows): {series}."
        )
    default = takeovers.get(TAKEOVER_LEASES[0], {}).get("leased_done", float("nan"))
    targets = [
        common.target(
            "takeover of a crashed receiver's leased deliveries, default lease",
            default,
            "<=",
            60.0,
            "s",
        )
    ]
    return common.section(
        name="store",
        title="Receiver store: PostgreSQL beside SQLite (intake, takeover, retention)",
        rows=rows,
        targets=targets,
        notes=notes,
        runs=1,
    )


if __name__ == "__main__":
    raise SystemExit(common.main(run, __doc__, default_runs=1))
