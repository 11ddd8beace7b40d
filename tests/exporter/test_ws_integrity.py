"""Book integrity on a connection, in process: gap and checksum verdicts are counted and resync
the book (resubscribe or reconnect), a crossed book counts once per episode, and a REST
snapshot goes through the exchange's probe gate (fake BookSync from test_ws_fakes)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from prometheus_client import CollectorRegistry
from test_ws_fakes import FakeBook, FakeDialect, exchange_config

from exporter.admission import HoldReason
from exporter.egress import DIRECT, Route
from exporter.http11 import Response
from exporter.profiles import get_profile
from exporter.state import ExchangeState
from exporter.streams.events import CHANNELS, BookMessage, Channel, ReconnectReason
from exporter.streams.integrity import BookKeeper
from exporter.streams.metrics import StreamMetrics
from exporter.streams.snapshot import SnapshotError, SnapshotFetcher
from exporter.streams.status import StreamStatus


class Keeper:
    """A BookKeeper on fresh metrics, recording what it asks the connection to do."""

    def __init__(self, dialect: FakeDialect | None = None, fetch: Any = None) -> None:
        self.registry = CollectorRegistry()
        metrics = StreamMetrics(self.registry)
        metrics.declare("fake", CHANNELS)
        self.status = StreamStatus("ws://x", dict.fromkeys(CHANNELS, 1.0))
        self.sent: list[list[str]] = []
        self.ended: list[tuple[ReconnectReason, str]] = []
        self.keeper = BookKeeper(
            dialect or FakeDialect(),
            ["BTC/USDT"],
            metrics.channel("fake", Channel.BOOK),
            metrics.exchange("fake"),
            self.status,
            self.sent.append,
            lambda reason, why: self.ended.append((reason, why)),
            fetch,
        )

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"exchange": "fake", **labels})


def book(seq: int, bid: str = "100", ask: str = "101", **kw: Any) -> BookMessage:
    return BookMessage(snapshot=kw.pop("snapshot", False), bids=[(bid, "1")],
                       asks=[(ask, "1")], last_id=seq, **kw)  # fmt: skip


def test_a_gap_is_counted_and_resynced_by_resubscribing() -> None:
    k = Keeper()
    k.keeper.apply("BTC/USDT", book(1, snapshot=True))
    k.keeper.apply("BTC/USDT", book(2))
    k.keeper.apply("BTC/USDT", book(4))  # 3 is missing
    assert k.value("exchange_ws_sequence_gaps_total", channel="book") == 1
    assert k.value("exchange_ws_book_resyncs_total") == 1
    assert k.status.book_resyncs == 1 and k.status.channels[Channel.BOOK].gaps == 1
    assert [json.loads(f) for f in k.sent[0]] == [{"op": "resub", "ch": "book", "m": "BTC/USDT"}]
    assert k.ended == []
    assert k.value("exchange_ws_sequence_gaps_total", channel="trades") == 0


def test_a_checksum_mismatch_reconnects_when_the_dialect_cannot_resubscribe() -> None:
    class NoResub(FakeDialect):
        resubscribe: ClassVar[bool] = False

    k = Keeper(NoResub())
    k.keeper.apply("BTC/USDT", book(1, snapshot=True))
    k.keeper.apply("BTC/USDT", book(2, checksum=-1))
    assert k.value("exchange_ws_checksum_mismatches_total", channel="book") == 1
    assert k.value("exchange_ws_book_resyncs_total") == 1
    assert k.ended and k.ended[0][0] is ReconnectReason.RESYNC
    assert k.sent == []


def test_a_crossed_book_counts_once_per_episode() -> None:
    k = Keeper()
    k.keeper.apply("BTC/USDT", book(1, snapshot=True))
    k.keeper.apply("BTC/USDT", book(2, bid="102", ask="101"))  # crossed
    k.keeper.apply("BTC/USDT", book(3, bid="102", ask="101"))  # still the same episode
    assert k.value("exchange_ws_book_crossed_total") == 1
    k.keeper.apply("BTC/USDT", book(4, snapshot=True, bid="100", ask="101"))  # uncrossed
    k.keeper.apply("BTC/USDT", book(5, bid="101", ask="101"))  # bid == ask: crossed again
    assert k.value("exchange_ws_book_crossed_total") == 2
    assert k.status.book_crossed == 2


class SnapshotBook(FakeBook):
    start_needs_snapshot: ClassVar[bool] = True


class SnapshotDialect(FakeDialect):
    book_class: ClassVar[type[FakeBook]] = SnapshotBook
    snapshot: ClassVar[tuple[str, Mapping[str, str], float] | None] = (
        "/api/v3/depth",
        {"symbol": "BTCUSDT", "limit": "5000"},
        250.0,
    )


class FakeClient:
    """Stands in for ProbeClient.get; answers with canned responses and records URLs."""

    def __init__(self, *responses: Response) -> None:
        self.responses = list(responses)
        self.urls: list[str] = []
        self.routes: list[Route] = []

    async def get(
        self, url: str, timeout: float, max_body_bytes: int, route: Route = DIRECT
    ) -> Response:
        self.urls.append(url)
        self.routes.append(route)
        return self.responses.pop(0)


SNAPSHOT = {"lastUpdateId": 7, "bids": [["100", "2"]], "asks": [["101", "3"]]}


def _fetcher(client: FakeClient, state: ExchangeState, held: list[HoldReason]) -> SnapshotFetcher:
    return SnapshotFetcher(
        client,  # type: ignore[arg-type]
        state,
        get_profile("binance"),
        "http://rest.test",
        3.0,
        1 << 20,
        on_hold=held.append,
    )


def test_a_needed_snapshot_is_fetched_through_the_probe_gate() -> None:
    async def body() -> None:
        state = ExchangeState.for_config(exchange_config())
        client = FakeClient(Response(200, {}, json.dumps(SNAPSHOT).encode(), 0.01))
        held: list[HoldReason] = []
        k = Keeper(SnapshotDialect(), _fetcher(client, state, held).fetch)
        k.keeper.start()
        k.keeper.apply("BTC/USDT", book(8))  # buffered until the snapshot arrives
        for _ in range(200):
            if not k.keeper.books["BTC/USDT"].needs_snapshot:
                break
            await asyncio.sleep(0.01)
        assert client.urls == ["http://rest.test/api/v3/depth?symbol=BTCUSDT&limit=5000"]
        fake = k.keeper.books["BTC/USDT"]
        assert isinstance(fake, FakeBook) and fake.snapshots == [SNAPSHOT]
        # The snapshot's weight is in the exchange's budget window, next to the probes'.
        ((_, used),) = state.admission.usage()
        assert used == 250.0
        await k.keeper.close()

    asyncio.run(asyncio.wait_for(body(), 30))


def test_a_snapshot_waits_for_the_gate_and_a_ban_answer_pauses_the_exchange() -> None:
    async def body() -> None:
        state = ExchangeState.for_config(exchange_config())
        held: list[HoldReason] = []
        state.gate.block(0.3)
        client = FakeClient(Response(418, {"retry-after": "120"}, b'{"code":-1003}', 0.01))
        fetch = _fetcher(client, state, held).fetch
        with pytest.raises(SnapshotError, match="418"):
            await fetch("/api/v3/depth", {"symbol": "BTCUSDT"}, 250.0)
        assert held == [HoldReason.PAUSED]  # held while the pause lasted, then sent
        assert state.gate.banned() and state.gate.ban_until > state.clock.time() + 100

    asyncio.run(asyncio.wait_for(body(), 30))


def test_a_book_that_never_syncs_is_resynced(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.streams import integrity

    monkeypatch.setattr(integrity, "UNSYNCED_RESYNC_SECONDS", 0.05)
    k = Keeper(SnapshotDialect())  # waits for a snapshot nobody fetches (no fetch given)
    k.keeper.apply("BTC/USDT", book(1))
    assert k.value("exchange_ws_book_resyncs_total") == 0
    time.sleep(0.1)
    k.keeper.apply("BTC/USDT", book(2))
    assert k.value("exchange_ws_book_resyncs_total") == 1
    assert k.sent  # resubscribed
    assert k.value("exchange_ws_sequence_gaps_total", channel="book") == 0


def test_consecutive_resyncs_back_off_instead_of_storming(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.streams import integrity

    monkeypatch.setattr(integrity, "RESYNC_BACKOFF_BASE_SECONDS", 0.2)

    async def body() -> None:
        k = Keeper()
        k.keeper.apply("BTC/USDT", book(1, snapshot=True))
        k.keeper.apply("BTC/USDT", book(3))  # gap: resync at once
        assert len(k.sent) == 1
        k.keeper.apply("BTC/USDT", book(10))
        k.keeper.apply("BTC/USDT", book(12))  # gap again: this resync waits 0.2 s
        k.keeper.apply("BTC/USDT", book(20))
        k.keeper.apply("BTC/USDT", book(22))  # a gap while waiting: absorbed
        assert len(k.sent) == 1
        assert k.value("exchange_ws_sequence_gaps_total", channel="book") == 3
        assert k.value("exchange_ws_book_resyncs_total") == 2
        await asyncio.sleep(0.4)
        assert len(k.sent) == 2
        await k.keeper.close()

    asyncio.run(asyncio.wait_for(body(), 30))
