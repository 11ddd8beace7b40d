"""Store, dead man's switch, against every backend: the persisted state and atomic transitions
with their synthetic notification."""

from __future__ import annotations

import math
from typing import Any

import pytest

from receiver.store import DeadmanOutcome, DeadmanState, Origin, Store, SyntheticNotification


def test_state_defaults_before_the_first_heartbeat(store: Store) -> None:
    assert store.deadman_state() == DeadmanState()


def test_transition_stores_state_and_notification_together(
    store: Store, synthetic: SyntheticNotification
) -> None:
    beat = DeadmanState(last_heartbeat=1.0, heartbeats=1)
    outcome = store.deadman_transition(lambda s: (beat, synthetic))
    assert isinstance(outcome, DeadmanOutcome)
    assert outcome.state == beat and outcome.notification_id is not None
    assert store.deadman_state() == beat
    (row,) = store.due(math.inf)
    assert row.id == outcome.notification_id
    assert row.origin == Origin.DEADMAN and row.route == "critical"
    assert row.alert == synthetic.alert and row.diagnosis == synthetic.diagnosis
    # The same notification again (same idempotency key) is not stored twice.
    again = store.deadman_transition(lambda s: (s, synthetic))
    assert again == DeadmanOutcome(beat, None)
    assert store.counts()["pending"] == 1


def test_state_survives_reopening(open_store: Any) -> None:
    first: Store = open_store()
    first.init()
    state = DeadmanState(last_heartbeat=5.0, heartbeats=3, alarm_since=5.0, alarm_raised_at=9.0)
    first.deadman_transition(lambda s: (state, None))
    reopened: Store = open_store()
    reopened.init()
    assert reopened.deadman_state() == state


def test_failed_transition_stores_nothing(store: Store) -> None:
    def transition(state: DeadmanState) -> tuple[DeadmanState, SyntheticNotification | None]:
        raise RuntimeError("bug in a transition")

    with pytest.raises(RuntimeError):
        store.deadman_transition(transition)
    assert store.deadman_state() == DeadmanState()
    assert store.counts() == {
        "webhooks": 0,
        "pending": 0,
        "done": 0,
        "failed_deliveries": 0,
        "unsent_deliveries": 0,
    }
