"""The dead man's switch with several receivers on one database: one leader checks for silence
and raises the alarm; the others record heartbeats and follow its state."""

from __future__ import annotations

import asyncio
from pathlib import Path

from receiver.deadman import DeadMansSwitch
from receiver.metrics import ReceiverMetrics
from receiver.store import SQLiteStore
from tests.receiver.test_deadman import Clock, deadman_rows


def _switch(path: Path, clock: Clock, owner: str, metrics: ReceiverMetrics) -> DeadMansSwitch:
    store = SQLiteStore(path, clock=clock)
    store.init()
    deadman = DeadMansSwitch(
        store, timeout=300.0, route="critical", clock=clock, metrics=metrics, owner=owner
    )
    deadman.load()
    return deadman


def test_only_the_leader_raises_the_alarm(tmp_path: Path) -> None:
    clock = Clock()
    metrics_a, metrics_b = ReceiverMetrics(), ReceiverMetrics()
    a = _switch(tmp_path / "r.db", clock, "rx-a", metrics_a)
    b = _switch(tmp_path / "r.db", clock, "rx-b", metrics_b)
    a.tick()
    b.tick()
    assert (a.leader, b.leader) == (True, False)
    assert metrics_a.registry.get_sample_value("alert_receiver_deadman_leader") == 1
    assert metrics_b.registry.get_sample_value("alert_receiver_deadman_leader") == 0
    b.heartbeat()  # heartbeats reach either receiver
    for _ in range(59):  # the leader keeps its lease by checking every 5 s
        clock.advance(5)
        assert a.tick() is False
    clock.advance(6)
    assert b.tick() is False  # silent for 301 s, but not the leader: never raises
    assert a.tick() is True
    assert len(deadman_rows(tmp_path / "r.db")) == 1
    b.tick()
    assert b.status()["deadman"]["state"] == "alarm"  # follows the leader's state
    assert b.status()["deadman"]["leader"] is False
    assert a.status()["deadman"] == {
        "state": "alarm",
        "timeout_seconds": 300.0,
        "alarm_since": clock.now - 301,
        "leader": True,
        "instance": "rx-a",
    }


def test_the_leadership_moves_when_the_leader_stops(tmp_path: Path) -> None:
    clock = Clock()
    a = _switch(tmp_path / "r.db", clock, "rx-a", ReceiverMetrics())
    b = _switch(tmp_path / "r.db", clock, "rx-b", ReceiverMetrics())
    a.tick()
    b.tick()
    assert a.leader and not b.leader
    asyncio.run(a.stop())  # resigns
    assert not a.leader
    b.tick()
    assert b.leader


def test_a_silent_leaders_lease_expires(tmp_path: Path) -> None:
    clock = Clock()
    a = _switch(tmp_path / "r.db", clock, "rx-a", ReceiverMetrics())
    b = _switch(tmp_path / "r.db", clock, "rx-b", ReceiverMetrics())
    a.tick()
    clock.advance(a.lead_ttl + 1)  # rx-a died without resigning (SQLite: a lease)
    b.tick()
    assert b.leader
