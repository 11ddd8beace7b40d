"""Crash test: ``kill -9`` the real receiver in the middle of a webhook burst, restart it, and
check every acknowledged alert is notified exactly once per channel.

The receiver runs as ``python -m receiver.cli`` with a SQLite database, a JSONL file and a local
fake Slack that answers slowly (50 ms per message, recording each one when it *arrives*, as
Slack would post it), so notification work is pending when the process dies. The test sends N
distinct webhooks (plus repeats) concurrently, kills the receiver with SIGKILL once half are
acknowledged, restarts it on the same database, re-sends every webhook whose acknowledgement
never came (as Alertmanager does on errors), and waits until everything is delivered.

Figures (alerts sent, acknowledged, received per channel, duplicates, pending at restart) are
printed (``pytest -s``) and written to ``crash_figures.json`` in the test's tmp directory.

Honest limit: a message the platform accepted just before the kill, whose success the database
had not recorded yet, is sent again after the restart. JSONL avoids that by design (the worker
asks the notifier whether the line is already in the file); Slack has no idempotency key, so
up to one duplicate per Slack send in flight at the kill (≤ ``WORKER_CONCURRENCY``) is possible.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from testsupport.fake_slack import FakeSlack

pytestmark = pytest.mark.e2e  # starts the receiver as a process, twice

REPO = Path(__file__).resolve().parents[3]
ALERTS = 200
REPEATS = 40
CONCURRENCY = 4
KILL_AFTER_ACKS = ALERTS // 2
_FIRING = re.compile(r"FIRING: (Crash\d{4})")


class Receiver:
    """``python -m receiver.cli`` on a free loopback port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver.cli", "--listen", "127.0.0.1:0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("alert-receiver listening on "):
            self.stop()
            raise AssertionError(f"receiver did not start: {line!r} {self.stderr()[-2000:]}")
        self.url = line.rsplit(" ", 1)[1]
        self._stderr: list[str] = []
        # Drain stderr (logs) so the pipe never fills up and blocks the receiver.
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def stderr(self) -> str:
        if self.proc.poll() is not None and self.proc.stderr is not None:
            try:
                return self.proc.stderr.read()
            except ValueError:
                pass
        return "".join(getattr(self, "_stderr", []))

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def webhook(i: int) -> dict[str, Any]:
    name = f"Crash{i:04d}"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": "firing",
        "receiver": "crash-test",
        "groupLabels": {"alertname": name},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": name, "exchange": "binance", "severity": "critical"},
                "annotations": {"summary": f"crash test alert {i}"},
                "startsAt": "2026-11-21T07:22:00.568Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": f"{i:016x}",
            }
        ],
    }


def receiver_env(tmp_path: Path, slack_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DISCORD_", "LLM_", "NOTIFY_", "RECEIVER_", "DEADMAN_"))
        and k not in ("PROMETHEUS_URL", "WORKER_CONCURRENCY", "MAX_BODY_BYTES")
    }
    env.update(
        PYTHONPATH=str(REPO),
        RECEIVER_DB_PATH=str(tmp_path / "receiver.db"),
        NOTIFY_FILE=str(tmp_path / "notifications.jsonl"),
        SLACK_WEBHOOK_URL=slack_url,
        SLACK_MIN_INTERVAL_SECONDS="0",
        WORKER_CONCURRENCY=str(CONCURRENCY),
        NOTIFY_RETRY_BASE_SECONDS="0.2",
        NOTIFY_RETRY_MAX_SECONDS="1",
        DEADMAN_TIMEOUT_SECONDS="0",
    )
    return env


def jsonl_alertnames(path: Path) -> tuple[list[str], int]:
    """(alertname of every parseable line, number of torn/unparseable lines)."""
    if not path.exists():
        return [], 0
    names, torn = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            names.append(json.loads(line)["alertname"])
        except (ValueError, KeyError):
            torn += 1
    return names, torn


def pending_count(db_path: Path) -> int:
    db = sqlite3.connect(db_path)
    try:
        return int(
            db.execute("SELECT COUNT(*) FROM notifications WHERE state = 'pending'").fetchone()[0]
        )
    finally:
        db.close()


@pytest.fixture
def slow_slack() -> Iterator[FakeSlack]:
    with FakeSlack(delay=0.05) as slack:
        yield slack


def test_kill_9_mid_burst_loses_nothing_and_duplicates_nothing_on_jsonl(
    tmp_path: Path, slow_slack: FakeSlack
) -> None:
    env = receiver_env(tmp_path, slow_slack.url)
    jsonl = tmp_path / "notifications.jsonl"
    bodies = {i: webhook(i) for i in range(ALERTS)}
    # The burst: every alert once plus repeats of some (Alertmanager HA peers, retries).
    sends = list(range(ALERTS)) + [i * 5 for i in range(REPEATS)]
    random.Random(5).shuffle(sends)
    acked: set[int] = set()
    ack_count = 0
    acked_as_duplicate = 0
    failed_sends = 0
    lock = threading.Lock()
    kill_now = threading.Event()

    started = time.monotonic()
    first = Receiver(env)
    client = httpx.Client(timeout=10.0)

    def send(i: int, base: str) -> None:
        nonlocal ack_count, failed_sends, acked_as_duplicate
        try:
            resp = client.post(f"{base}/alerts/critical", json=bodies[i])
        except httpx.HTTPError:
            with lock:
                failed_sends += 1
            return
        with lock:
            if resp.status_code == 200:
                acked.add(i)
                ack_count += 1
                acked_as_duplicate += resp.json()["duplicates"]
                if ack_count >= KILL_AFTER_ACKS:
                    kill_now.set()
            else:
                failed_sends += 1

    def killer() -> None:
        kill_now.wait(timeout=30)
        first.kill()

    kill_thread = threading.Thread(target=killer)
    kill_thread.start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: send(i, first.url), sends))
    kill_thread.join()
    acked_before_kill = set(acked)
    acks_before_kill = ack_count
    pending_at_restart = pending_count(tmp_path / "receiver.db")
    slack_at_kill = len(slow_slack.texts())
    jsonl_at_kill = len(jsonl_alertnames(jsonl)[0])

    # Restart on the same database; re-send what was never acknowledged.
    second = Receiver(env)
    try:
        missing = [i for i in range(ALERTS) if i not in acked]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda i: send(i, second.url), missing))
        assert acked == set(range(ALERTS)), "the restarted receiver must acknowledge everything"

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names, _ = jsonl_alertnames(jsonl)
            slack_names = {m.group(1) for t in slow_slack.texts() if (m := _FIRING.search(t))}
            if (
                len(set(names)) >= ALERTS
                and len(slack_names) >= ALERTS
                and pending_count(tmp_path / "receiver.db") == 0
            ):
                break
            time.sleep(0.1)
        time.sleep(0.3)  # anything still in flight would show up as a duplicate now
        metrics = client.get(f"{second.url}/metrics").text
    finally:
        second.stop()
        client.close()

    names, torn = jsonl_alertnames(jsonl)
    slack_names = [m.group(1) for t in slow_slack.texts() if (m := _FIRING.search(t))]
    expected = {f"Crash{i:04d}" for i in acked}
    jsonl_counts, slack_counts = Counter(names), Counter(slack_names)
    uncertain = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("alert_receiver_deliveries_total") and 'result="uncertain"' in line
    )
    recovered = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("alert_receiver_deliveries_total") and 'result="recovered"' in line
    )
    figures = {
        "alerts_distinct": ALERTS,
        "webhook_posts_first_run": len(sends),
        "acknowledged_before_kill": len(acked_before_kill),
        "acks_before_kill_including_repeats": acks_before_kill,
        "posts_without_ack_first_run": failed_sends,
        "resent_after_restart": len(missing),
        "acknowledged_total": len(acked),
        "acknowledged_as_duplicate": acked_as_duplicate,
        "pending_notifications_at_restart": pending_at_restart,
        "slack_messages_at_kill": slack_at_kill,
        "jsonl_lines_at_kill": jsonl_at_kill,
        "received_jsonl_distinct": len(set(names) & expected),
        "received_slack_distinct": len(set(slack_names) & expected),
        "duplicates_jsonl": sum(c - 1 for c in jsonl_counts.values() if c > 1),
        "duplicates_slack": sum(c - 1 for c in slack_counts.values() if c > 1),
        "torn_jsonl_lines": torn,
        "interrupted_sends_resent_after_restart": uncertain,
        "interrupted_sends_found_delivered": recovered,
        "seconds": round(time.monotonic() - started, 1),
    }
    print("\ncrash test figures:", json.dumps(figures, indent=2))
    (tmp_path / "crash_figures.json").write_text(json.dumps(figures, indent=2))

    assert pending_at_restart > 0, "the kill should leave work pending"
    assert set(names) >= expected, "every acknowledged alert reaches JSONL"
    assert set(slack_names) >= expected, "every acknowledged alert reaches Slack"
    assert figures["duplicates_jsonl"] == 0
    assert torn == 0
    # Slack: at most one duplicate per Slack send in flight when the process died.
    assert figures["duplicates_slack"] <= CONCURRENCY
    assert figures["duplicates_slack"] <= uncertain
