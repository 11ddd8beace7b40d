"""Dead man's switch: persisted heartbeats, the AlertingPipelineDown alarm and its resolution."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from receiver.app import create_app
from receiver.deadman import ALERTNAME, DeadMansSwitch, format_duration
from receiver.metrics import ReceiverMetrics
from receiver.notifiers.base import Notification, Notifier
from receiver.settings import Settings
from receiver.store import SQLiteStore, Store
from receiver.worker import NotifiersFor
from tests.receiver.test_receiver_app import make_settings, wait_for


class Clock:
    """A settable Unix-seconds clock."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder(Notifier):
    """A notifier that records what it is sent."""

    channel = "recorder"

    def __init__(self, name: str) -> None:
        self._label = name
        self.sent: list[Notification] = []

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._label

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    async def _send(self, notification: Notification) -> None:  # pragma: no cover
        self.sent.append(notification)


def switch(store: Store, clock: Clock, **kwargs: Any) -> DeadMansSwitch:
    options: dict[str, Any] = {"timeout": 300.0, "route": "critical", "clock": clock}
    options.update(kwargs)
    deadman = DeadMansSwitch(store, **options)
    deadman.load()
    return deadman


def deadman_rows(db_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(db_path)
    db.row_factory = sqlite3.Row
    rows = db.execute(
        "SELECT status, starts_at, ends_at, route, origin, alert, diagnosis FROM notifications"
        " WHERE origin = 'deadman' ORDER BY id"
    ).fetchall()
    return [dict(r) for r in rows]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = SQLiteStore(tmp_path / "r.db")
    s.init()
    return s


def test_format_duration() -> None:
    assert format_duration(0) == "0s"
    assert format_duration(59.6) == "1m"
    assert format_duration(312) == "5m 12s"
    assert format_duration(3725) == "1h 2m 5s"
    assert format_duration(90000) == "1d 1h"


def test_disarmed_until_first_heartbeat(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    deadman = switch(store, clock)
    clock.advance(10_000)
    assert deadman.check() is False
    assert deadman.status_name() == "disarmed"
    assert deadman_rows(tmp_path / "r.db") == []


def test_alarm_once_then_resolved_with_outage_duration(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    deadman = switch(store, clock)
    deadman.heartbeat()
    first_beat = clock.now
    assert deadman.status_name() == "ok"
    clock.advance(299)
    assert deadman.check() is False
    clock.advance(2)
    assert deadman.check() is True
    assert deadman.status_name() == "alarm"
    clock.advance(60)
    assert deadman.check() is False  # already raised: not sent again
    (firing,) = deadman_rows(tmp_path / "r.db")
    assert firing["status"] == "firing" and firing["route"] == "critical"
    alert = json.loads(firing["alert"])
    assert alert["labels"]["alertname"] == ALERTNAME
    assert alert["labels"]["severity"] == "critical"
    assert "5m 1s" in alert["annotations"]["summary"]
    diagnosis = json.loads(firing["diagnosis"])
    assert diagnosis["root_cause_category"] == "monitoring"
    text = json.dumps(diagnosis)
    for cause in ("Prometheus", "Alertmanager", "Watchdog rule", "network"):
        assert cause in text

    clock.advance(600)
    deadman.heartbeat()  # heartbeats are back
    assert deadman.status_name() == "ok"
    firing, resolved = deadman_rows(tmp_path / "r.db")
    assert resolved["status"] == "resolved"
    assert resolved["starts_at"] == firing["starts_at"]  # same alert: ordered after firing
    outage = clock.now - first_beat
    assert format_duration(outage) == "16m 1s"
    assert "16m 1s" in json.loads(resolved["alert"])["annotations"]["summary"]
    assert json.loads(resolved["diagnosis"])["root_cause_category"] == "monitoring"
    deadman.heartbeat()
    assert len(deadman_rows(tmp_path / "r.db")) == 2


def test_state_survives_restart_without_resending(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    deadman = switch(store, clock)
    deadman.heartbeat()
    beat = clock.now
    clock.advance(400)
    assert deadman.check() is True

    # Restart: a new store and switch on the same database.
    restarted = switch(SQLiteStore(tmp_path / "r.db"), clock)
    assert restarted.state.last_heartbeat == beat
    assert restarted.status_name() == "alarm"
    clock.advance(400)
    assert restarted.check() is False
    assert len(deadman_rows(tmp_path / "r.db")) == 1
    restarted.heartbeat()
    assert [r["status"] for r in deadman_rows(tmp_path / "r.db")] == ["firing", "resolved"]


def test_restart_gives_one_timeout_of_grace(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    deadman = switch(store, clock)
    deadman.heartbeat()
    clock.advance(3600)  # the receiver itself was down for an hour
    restarted = switch(SQLiteStore(tmp_path / "r.db"), clock)
    assert restarted.check() is False  # Alertmanager gets a full timeout to deliver one
    clock.advance(301)
    assert restarted.check() is True
    (firing,) = deadman_rows(tmp_path / "r.db")
    assert "1h 5m 1s" in json.loads(firing["alert"])["annotations"]["summary"]


def test_arm_at_start(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    deadman = switch(store, clock, arm_at_start=True, timeout=60)
    assert deadman.status_name() == "ok"
    clock.advance(61)
    assert deadman.check() is True
    (firing,) = deadman_rows(tmp_path / "r.db")
    assert "none has arrived" in json.loads(firing["alert"])["annotations"]["description"]


def test_timeout_zero_disables(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    deadman = switch(store, clock, timeout=0, arm_at_start=True)
    deadman.heartbeat()
    clock.advance(10**6)
    assert deadman.check() is False
    assert deadman.status_name() == "disarmed"


# --- through the app ----------------------------------------------------------------------


def routed(critical: Recorder, other: Recorder) -> Any:
    def factory(
        settings: Settings, client: httpx.AsyncClient, metrics: ReceiverMetrics
    ) -> tuple[NotifiersFor, Sequence[Notifier]]:
        def notifiers_for(route: str) -> list[Notifier]:
            return [critical] if route == "critical" else [other]

        return notifiers_for, [critical, other]

    return factory


def test_app_heartbeat_persisted_and_alarm_goes_to_critical_route(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, deadman_timeout_seconds=0.8, notify_file=None)
    critical, other = Recorder("pager"), Recorder("chat")
    app = create_app(settings, notifier_factory=routed(critical, other))
    with TestClient(app) as c:
        assert c.post("/heartbeat", json={"alerts": []}).status_code == 200
        assert c.get("/heartbeat").json()["deadman"]["state"] == "ok"
        wait_for(lambda: len(critical.sent) == 1, timeout=5)
        assert c.get("/heartbeat").json()["deadman"]["state"] == "alarm"
        metrics = c.get("/metrics").text
        assert "alert_receiver_deadman_state 2.0" in metrics
        assert "alert_receiver_deadman_timeout_seconds 0.8" in metrics
        # Heartbeats return: resolved notification with the outage duration.
        assert c.post("/heartbeat").status_code == 200
        wait_for(lambda: len(critical.sent) == 2, timeout=5)
        assert "alert_receiver_deadman_state 1.0" in c.get("/metrics").text
    firing, resolved = critical.sent
    assert firing.alertname == ALERTNAME and firing.status == "firing"
    assert firing.severity == "critical"
    assert firing.diagnosis.root_cause_category == "monitoring"
    assert resolved.status == "resolved" and "silence" in (resolved.summary or "")
    assert other.sent == []

    # After a restart the last heartbeat is remembered and nothing is re-sent.
    critical2, other2 = Recorder("pager"), Recorder("chat")
    with TestClient(create_app(settings, notifier_factory=routed(critical2, other2))) as c:
        status = c.get("/heartbeat").json()
        assert status["last_heartbeat"] is not None and status["heartbeats"] == 2
        assert c.get("/readyz").status_code == 200
        time.sleep(0.2)
    assert critical2.sent == []
