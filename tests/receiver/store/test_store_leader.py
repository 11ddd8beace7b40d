"""Store leadership of the dead man's switch, against every backend: one leader among
receivers (one store each, as separate processes would have), kept while it renews, handed over
on resign and, on SQLite, once the leader's lease expires. PostgreSQL's leader holds a session
lock until it resigns or its connection ends (tested with the PostgreSQL backend's own tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from receiver.store import Store

T = 1_800_000_000.0  # the tests' start, Unix seconds


class Clock:
    """A clock the test moves (``clock.now = ...``)."""

    def __init__(self, now: float = T) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The clock of both receivers' stores."""
    return Clock()


@pytest.fixture
def pair(open_store: Any, clock: Clock) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database (two receivers), closed after the test."""
    stores: list[Store] = []
    try:
        for _ in range(2):
            stores.append(open_store(clock))
            stores[-1].init()
        yield stores[0], stores[1]
    finally:
        for s in stores:
            s.close()


def test_one_leader_until_it_resigns(pair: tuple[Store, Store]) -> None:
    first, second = pair
    assert first.lead("a", 30)
    assert not second.lead("b", 30)
    assert first.lead("a", 30)  # the leader stays the leader
    second.resign("b")  # not the leader: nothing changes
    assert not second.lead("b", 30)
    assert first.lead("a", 30)
    first.resign("a")
    assert second.lead("b", 30)
    assert not first.lead("a", 30)
    second.resign("b")
    second.resign("b")  # twice: still fine
    assert first.lead("a", 30)


def test_the_lead_passes_when_the_leader_stops_renewing(
    pair: tuple[Store, Store], clock: Clock
) -> None:
    first, second = pair
    if first.backend != "sqlite":
        pytest.skip("PostgreSQL holds the lead for the session, whatever the ttl")
    assert first.lead("a", 30)
    clock.now = T + 20
    assert first.lead("a", 30)  # renewed until T + 50
    clock.now = T + 49
    assert not second.lead("b", 30)
    clock.now = T + 50  # a's lease has run out
    assert second.lead("b", 30)
    assert not first.lead("a", 30)
