"""High availability end to end (issue 16): two clustered Alertmanagers, two receivers, one
PostgreSQL.

Topology (all on loopback, helpers in testsupport/ha.py): a PostgreSQL server
(deploy/postgres.py); two receivers (``python -m receiver.cli``, ``RECEIVER_INSTANCE``
receiver-a / receiver-b, ``RECEIVER_LEASE_SECONDS`` 3) on one database, sharing one JSONL file
and one generic webhook notifier pointed at a local sink that answers after 100 ms (so
deliveries are in flight) and records every POST's ``Idempotency-Key``; a real two-node
Alertmanager cluster (gossip on loopback) whose one route has two ``webhook_configs``, one per
receiver, grouped per alertname.

1. 200 distinct alerts, with the ``startsAt`` Prometheus would set, are posted to both
   Alertmanagers' ``/api/v2/alerts`` (as a Prometheus HA pair does); both nodes notify
   (``--cluster.peer-timeout=0s``, see :data:`PEER_TIMEOUT`). Once the sink has seen a third of
   them, receiver-a is killed (SIGKILL). Every alert must reach the JSONL file exactly once per
   (fingerprint, status) and the sink under exactly one ``Idempotency-Key`` (the sink
   deduplicates on it, as a consumer should; the raw POST count and its repeats are figures);
   receiver-a held leased, unfinished notifications at the kill, and receiver-b must finish
   them (every notification ``done`` in the database). The takeover time (kill → the dead
   receiver's leased notifications done) is a figure.
2. PostgreSQL is stopped for a few seconds during a burst sent straight to a receiver's
   ``POST /alerts/critical`` (as Alertmanager does). While it is down, intake answers 503 within
   a few seconds (never hanging towards Alertmanager's webhook timeout) and ``/readyz`` answers
   503 naming the database; 503s are retried, as Alertmanager does; every webhook answered 200
   is delivered after the restart.

Figures are printed (``pytest -s``) and written to ``ha_figures.json`` /
``pg_restart_figures.json`` in the test's tmp directory.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from deploy.postgres import PostgresServer
from testsupport.ha import (
    AlertmanagerCluster,
    ReceiverProcess,
    WebhookSink,
    am_alert,
    jsonl_records,
    receiver_env,
    repeated,
    write_routing,
)

pytestmark = pytest.mark.e2e  # PostgreSQL, two Alertmanagers and two receivers as processes

ALERTS = 200
LEASE_SECONDS = 3
SINK_DELAY = 0.1
DELIVERY_TIMEOUT = 90.0
PEER_TIMEOUT = "0s"
"""``--cluster.peer-timeout``: 0 makes both Alertmanagers notify at once, as when the gossip
fails open (a partition), so exactly-once per channel rests on the receivers alone (with the
default 15 s the second node usually finds the first one's notification log and stays quiet)."""
RESTART_WEBHOOKS = 150
DOWN_SECONDS = 4.0
MAX_ANSWER_SECONDS = 10.0
"""Intake must answer well before Alertmanager gives up on a webhook (0.25 has no webhook
timeout and waits up to group_interval; 0.28+ ``timeout:`` is usually set to ~10 s)."""


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    with PostgresServer(tmp_path / "pg") as server:
        yield server


def _wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{logs()}")
        time.sleep(0.1)


def _leased_to(url: str, owner: str) -> list[int]:
    """Ids of the pending notifications leased to ``owner`` in the receivers' database (its
    unfinished work, once it is dead)."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT id FROM notifications WHERE state = 'pending' AND lease_owner = %s", (owner,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def _pending(url: str, ids: list[int] | None = None) -> int:
    """Pending notifications in the receivers' database (among ``ids`` when given)."""
    query = "SELECT COUNT(*) FROM notifications WHERE state = 'pending'"
    with psycopg.connect(url, connect_timeout=5) as conn:
        if ids is None:
            row = conn.execute(query).fetchone()
        else:
            row = conn.execute(query + " AND id = ANY(%s)", (ids,)).fetchone()
    return int(row[0]) if row else -1


def _write_figures(tmp_path: Path, name: str, figures: dict[str, Any]) -> None:
    text = json.dumps(figures, indent=2)
    print(f"\n{name}:", text)
    (tmp_path / f"{name}.json").write_text(text)


def test_alertmanager_cluster_two_receivers_kill_9_mid_burst(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.create_database("ha")
    jsonl = tmp_path / "notifications.jsonl"
    routing = write_routing(tmp_path / "routing.yml", jsonl)
    with WebhookSink(delay=SINK_DELAY) as sink:
        receivers = {
            name: ReceiverProcess(
                receiver_env(
                    instance=name,
                    routing_file=routing,
                    database_url=url,
                    sink_url=sink.url,
                    lease_seconds=LEASE_SECONDS,
                ),
                tmp_path / f"{name}.log",
                name=name,
            )
            for name in ("receiver-a", "receiver-b")
        }
        for receiver in receivers.values():  # together: concurrent schema migration
            receiver.spawn()
        victim, survivor = receivers["receiver-a"], receivers["receiver-b"]
        cluster = AlertmanagerCluster(
            tmp_path / "alertmanager",
            [f"{r.url}/alerts/critical" for r in receivers.values()],
            peer_timeout=PEER_TIMEOUT,
        )

        def logs() -> str:
            return "\n".join(
                [f"--- {r.name}\n{r.log_tail()}" for r in receivers.values()] + [cluster.log_tail()]
            )

        try:
            for receiver in receivers.values():
                receiver.wait_started()
            cluster.start()
            names = [f"Ha{i:03d}" for i in range(ALERTS)]
            started = time.monotonic()
            leased_at_kill: list[int] = []

            def killer() -> None:
                deadline = time.monotonic() + 60
                while len(sink.accepted()) < ALERTS // 3 and time.monotonic() < deadline:
                    time.sleep(0.005)
                # Kill while the victim holds leased work in flight (a send takes the sink's
                # delay), so the takeover is what the test sees, however the load falls.
                while not _leased_to(url, victim.name) and time.monotonic() < deadline:
                    time.sleep(0.002)
                victim.kill()
                leased_at_kill.extend(_leased_to(url, victim.name))

            kill_thread = threading.Thread(target=killer)
            kill_thread.start()
            cluster.post_alerts([am_alert(name) for name in names])
            kill_thread.join()
            assert victim.killed_at is not None
            at_kill = {p.alertname for p in sink.accepted() if p.arrived <= victim.killed_at}

            leased_done_at: list[float] = []

            def all_delivered() -> bool:
                if not leased_done_at and _pending(url, leased_at_kill) == 0:
                    leased_done_at.append(time.monotonic())
                records, _ = jsonl_records(jsonl)
                return (
                    bool(leased_done_at)
                    and {r["alertname"] for r in records} >= set(names)
                    and {p.alertname for p in sink.accepted()} >= set(names)
                    and _pending(url) == 0
                )

            _wait_for(all_delivered, DELIVERY_TIMEOUT, "every alert on both channels", logs)
            done_at = time.monotonic()
            time.sleep(2 * SINK_DELAY + 1.0)  # a late duplicate would show up now
            survivor_metrics = httpx.get(f"{survivor.url}/metrics", timeout=10).text
            survivor_alive, victim_alive = survivor.alive, victim.alive
            am_sent = [
                httpx.get(f"{u}/metrics", timeout=10).text for u in cluster.urls
            ]  # per node: notifications it sent
        finally:
            cluster.stop()
            for receiver in receivers.values():
                receiver.stop()

    records, torn = jsonl_records(jsonl)
    posts = sink.posts()
    accepted = sink.accepted()
    keys_per_alert: dict[str, set[str]] = defaultdict(set)
    for post in posts:
        keys_per_alert[post.alertname].add(post.key)
    after_kill = [p for p in accepted if p.arrived > victim.killed_at]
    figures: dict[str, Any] = {
        "alerts": ALERTS,
        "alertmanagers": len(cluster.urls),
        "receivers": len(receivers),
        "lease_seconds": LEASE_SECONDS,
        "alertmanager_webhooks_sent_per_node": [
            _metric_sum(text, "alertmanager_notifications_total", 'integration="webhook"')
            for text in am_sent
        ],
        "sink_accepted_at_kill": len(at_kill),
        "pending_leased_to_victim_at_kill": len(leased_at_kill),
        "jsonl_lines": len(records),
        "jsonl_distinct_alerts": len({r["alertname"] for r in records}),
        "jsonl_duplicates": repeated((r["fingerprint"], r["status"]) for r in records),
        "jsonl_torn_lines": torn,
        "webhook_posts_raw": len(posts),
        "webhook_accepted": len(accepted),
        "webhook_duplicate_posts_same_key": sink.duplicates(),
        "webhook_alerts_with_several_keys": sum(len(k) > 1 for k in keys_per_alert.values()),
        "delivered_after_kill": len(after_kill),
        "takeover_seconds_kill_to_victims_leased_done": round(
            leased_done_at[0] - victim.killed_at, 2
        ),
        "seconds_kill_to_everything_done": round(done_at - victim.killed_at, 2),
        "alertmanager_webhooks_failed_per_node": [
            _metric_sum(text, "alertmanager_notifications_failed_total", 'integration="webhook"')
            for text in am_sent
        ],
        "survivor_webhooks_stored": _metric_sum(
            survivor_metrics, "alert_receiver_webhooks_total", 'result="accepted"'
        ),
        "survivor_webhooks_all_duplicates": _metric_sum(
            survivor_metrics, "alert_receiver_webhooks_total", 'result="duplicate"'
        ),
        "seconds": round(time.monotonic() - started, 1),
    }
    _write_figures(tmp_path, "ha_figures", figures)

    assert {r["alertname"] for r in records} == set(names)
    assert figures["jsonl_duplicates"] == 0, "JSONL: each alert exactly once"
    assert torn == 0
    assert {p.alertname for p in accepted} == set(names)
    assert figures["webhook_alerts_with_several_keys"] == 0, "one Idempotency-Key per alert"
    assert all(p.key for p in posts), "every webhook POST carries an Idempotency-Key"
    assert len(accepted) == ALERTS, "webhook: exactly one accepted delivery per alert"
    assert len(at_kill) < ALERTS, "the kill must come before everything was delivered"
    assert after_kill, "the surviving receiver delivered after the kill"
    assert leased_at_kill, "the killed receiver held leased, unfinished work"
    # ... which the survivor finished (every notification done, every alert delivered above).
    assert survivor_alive and not victim_alive


def _metric_sum(text: str, name: str, selector: str = "") -> float:
    """Sum of the samples of ``name`` whose label set contains ``selector``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not selector or selector in line):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except ValueError:
                continue
    return total


def _webhook(i: int) -> dict[str, Any]:
    name = f"Restart{i:04d}"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "receiver": "ha-test",
        "groupLabels": {"alertname": name},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": name, "exchange": "binance", "severity": "critical"},
                "annotations": {"summary": f"PostgreSQL restart test alert {i}"},
                "startsAt": "2026-12-06T10:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"{i:016x}",
            }
        ],
    }


def test_postgres_restart_intake_answers_503_and_loses_nothing_acknowledged(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.create_database("restart")
    jsonl = tmp_path / "notifications.jsonl"
    routing = write_routing(tmp_path / "routing.yml", jsonl)
    with WebhookSink(delay=0.01) as sink:
        receiver = ReceiverProcess(
            receiver_env(
                instance="receiver-a",
                routing_file=routing,
                database_url=url,
                sink_url=sink.url,
                lease_seconds=LEASE_SECONDS,
                extra={"RECEIVER_DB_TIMEOUT_SECONDS": "3"},
            ),
            tmp_path / "receiver.log",
        ).start()
        lock = threading.Lock()
        acked: set[int] = set()
        answers: list[tuple[float, int, bool]] = []  # (seconds, status, while down)
        down = threading.Event()
        readyz_down: list[tuple[int, dict[str, Any]]] = []
        gave_up: list[int] = []
        client = httpx.Client(timeout=30.0)
        started = time.monotonic()
        interval = 0.05  # 150 webhooks over 7.5 s; the database stops at ~2 s for 4 s

        def send(i: int) -> None:
            time.sleep(max(0.0, started + i * interval - time.monotonic()))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                was_down = down.is_set()
                began = time.monotonic()
                try:
                    status = client.post(f"{receiver.url}/alerts/critical", json=_webhook(i))
                    code = status.status_code
                except httpx.HTTPError:
                    code = 0
                with lock:
                    answers.append((time.monotonic() - began, code, was_down or down.is_set()))
                    if code == 200:
                        acked.add(i)
                        return
                time.sleep(0.5)  # Alertmanager retries with a backoff
            with lock:
                gave_up.append(i)

        def outage() -> None:
            time.sleep(2.0)
            postgres.stop()
            down.set()
            went_down = time.monotonic()
            while time.monotonic() - went_down < DOWN_SECONDS:
                try:
                    resp = httpx.get(f"{receiver.url}/readyz", timeout=10)
                    readyz_down.append((resp.status_code, resp.json()))
                except (httpx.HTTPError, ValueError):
                    readyz_down.append((0, {}))
                time.sleep(0.5)
            postgres.start()
            down.clear()

        try:
            outage_thread = threading.Thread(target=outage)
            outage_thread.start()
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(send, range(RESTART_WEBHOOKS)))
            outage_thread.join()

            def delivered() -> bool:
                records, _ = jsonl_records(jsonl)
                wanted = {f"Restart{i:04d}" for i in acked}
                return (
                    {r["alertname"] for r in records} >= wanted
                    and {p.alertname for p in sink.accepted()} >= wanted
                    and _pending(url) == 0
                )

            _wait_for(delivered, DELIVERY_TIMEOUT, "every acknowledged alert", receiver.log_tail)
            time.sleep(1.0)
            ready_after = httpx.get(f"{receiver.url}/readyz", timeout=10).status_code
        finally:
            client.close()
            receiver.stop()

    records, torn = jsonl_records(jsonl)
    wanted = {f"Restart{i:04d}" for i in acked}
    while_down = [a for a in answers if a[2]]
    figures: dict[str, Any] = {
        "webhooks": RESTART_WEBHOOKS,
        "database_down_seconds": DOWN_SECONDS,
        "posts": len(answers),
        "acknowledged": len(acked),
        "gave_up": len(gave_up),
        "answers_503": sum(1 for a in answers if a[1] == 503),
        "answers_no_response": sum(1 for a in answers if a[1] == 0),
        "answers_while_down": len(while_down),
        "max_answer_seconds": round(max(a[0] for a in answers), 2),
        "max_answer_seconds_while_down": round(max((a[0] for a in while_down), default=0), 2),
        "readyz_while_down": sorted({code for code, _ in readyz_down}),
        "readyz_reasons_while_down": sorted(
            {r for _, body in readyz_down for r in body.get("reasons", [])}
        )[:5],
        "readyz_after_restart": ready_after,
        "acknowledged_lost_jsonl": len(wanted - {r["alertname"] for r in records}),
        "acknowledged_lost_webhook": len(wanted - {p.alertname for p in sink.accepted()}),
        "jsonl_duplicates": repeated((r["fingerprint"], r["status"]) for r in records),
        "webhook_duplicate_posts_same_key": sink.duplicates(),
        "seconds": round(time.monotonic() - started, 1),
    }
    _write_figures(tmp_path, "pg_restart_figures", figures)

    assert figures["answers_503"] > 0, "intake must answer 503 while the database is down"
    assert figures["max_answer_seconds"] < MAX_ANSWER_SECONDS
    assert readyz_down and all(code == 503 for code, _ in readyz_down)
    assert any(
        "database" in r.lower() or "postgres" in r.lower()
        for _, body in readyz_down
        for r in body.get("reasons", [])
    ), "/readyz names the database"
    assert ready_after == 200
    secret = postgres.password
    assert secret not in json.dumps(readyz_down), "/readyz never shows the database password"
    assert secret not in receiver.log.read_text(errors="replace"), "nor do the logs"
    assert not gave_up and len(acked) == RESTART_WEBHOOKS, "503s retried until stored"
    assert figures["acknowledged_lost_jsonl"] == 0
    assert figures["acknowledged_lost_webhook"] == 0
    assert figures["jsonl_duplicates"] == 0
    assert torn == 0
