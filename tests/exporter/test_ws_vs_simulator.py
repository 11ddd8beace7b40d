"""Issue 13 acceptance: every exchange × every WebSocket fault, the exporter's real stream code
(the scheduler's :class:`~exporter.streams.manager.StreamManager`) against the simulator's feeds.

For each fault one *episode* runs the exporter for all five exchanges at once against one
in-thread simulator (faults are per exchange, so the exchanges do not disturb each other): each
exchange waits until healthy (connected, every channel up, local book synchronised), gets the
fault through ``POST /_control/faults``, and the exporter's metrics registry is polled until the
documented metric moves; meanwhile the counters that must not move are watched and a REST ticker
GET must still answer 200; after the fault is cleared the stream must be healthy again. The
episode runs once, with the first case of its fault; every (fault, exchange) case then asserts
its own exchange's outcome. ``ws_gap`` also compares each local book, after its resync, with the
simulator's REST depth (acceptance: "book sync including a resync after a gap").

Timing: ``stale_after`` is 4 s on every channel (the shipped defaults are 5–10 s), so a
silent connection is replaced after 8 s (``STALE_CONNECTION_FACTOR`` × stale_after). The client
ping dialects' ``pong_timeout`` (Binance, Bybit, OKX: 10 s, our choice, see their dialects) is
shortened to 3 s so that a blackholed link is told from a stalled feed (reason ``ping_timeout``)
before the stale limit; Coinbase's and Kraken's 5 s silence limit is kept as shipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from exporter.streams.dialects.binance import BinanceDialect
from exporter.streams.dialects.bybit import BybitDialect
from exporter.streams.dialects.okx import OkxDialect
from exporter.streams.events import CHANNELS
from simulator import SimulatorServer, simulator_in_thread
from testsupport.ws_harness import (
    VENUES,
    Counters,
    RunningExporter,
    book_matches_rest,
    gather_named,
    stream_config,
    until,
)

pytestmark = pytest.mark.e2e  # an in-thread simulator and the exporter's stream loops

FAULTS = (
    "ws_stall",
    "ws_blackhole",
    "ws_disconnect",
    "ws_lag",
    "ws_gap",
    "ws_checksum",
    "ws_reject",
    "ws_maintenance_notice",
)
CHECKSUM_EXCHANGES = ("okx", "kraken")
"""Books with a checksum: OKX CRC32 top 25 [OKX-MD §Checksum], Kraken CRC32 top 10 [KR-CKS2]."""

STALE_AFTER = 4.0
PONG_TIMEOUT = 3.0
LAG_MS = 1500
HEALTHY_TIMEOUT = 45.0
"""Generous: after a fault the reconnect backoff (full jitter, up to 2^n s) and a book resync
backoff (2, 4, 8 … s) may both have to run out."""
EPISODE_TIMEOUT = 150.0
STALL_DROPS_SNAPSHOTS = True
"""The simulator drops every data frame while ``ws_stall`` holds, a new connection's book
snapshot included (Bybit, OKX, Coinbase, Kraken send theirs on the stream), and resumes with
deltas when it clears. A connection opened during the stall (the exporter replaces the silent
one, reason ``stale``) therefore never gets its snapshot: the exporter's unsynchronised-book
watch (:data:`exporter.streams.integrity.UNSYNCED_RESYNC_SECONDS`, 15 s) resynchronises it —
one counted resync after clearing is the documented recovery, not a fault of its own."""
LAG_CLEAR_REORDERS = False
"""When ``ws_lag`` clears, the simulator sends the frames still delayed first (one FIFO per
session), as TCP would: counters after clearing are asserted like every other fault's."""

GAPS = [("exchange_ws_sequence_gaps_total", c.value) for c in CHANNELS]
CHECKSUMS = [("exchange_ws_checksum_mismatches_total", c.value) for c in CHANNELS]
SUB_ERRORS = [("exchange_ws_subscription_errors_total", c.value) for c in CHANNELS]
CROSSED = [("exchange_ws_book_crossed_total", "")]
RESYNCS = [("exchange_ws_book_resyncs_total", "")]


def reconnects(*reasons: str) -> list[tuple[str, str]]:
    """Reconnect counter keys for ``reasons``."""
    return [("exchange_ws_reconnects_total", reason) for reason in reasons]


ALL_RECONNECTS = reconnects(
    "closed_by_server", "ping_timeout", "stale", "error", "resync", "scheduled", "maintenance"
)


@dataclass
class Outcome:
    """What one exchange showed under one fault (for the assertion and the report)."""

    observed: list[str] = field(default_factory=list)
    book: str = ""


class Case:
    """One exchange inside an episode: helpers over the running exporter and the simulator."""

    def __init__(self, rig: RunningExporter, http: httpx.AsyncClient, exchange: str) -> None:
        self.rig = rig
        self.http = http
        self.exchange = exchange
        self.outcome = Outcome()

    def counters(self) -> Counters:
        """Every ``exchange_ws_*`` sample of this exchange now."""
        return self.rig.counters(self.exchange)

    def value(self, name: str, **labels: str) -> float:
        """One sample of this exchange."""
        return self.rig.value(name, exchange=self.exchange, **labels)

    def ups(self) -> list[float]:
        """``exchange_ws_up`` of every channel."""
        return [self.value("exchange_ws_up", channel=c.value) for c in CHANNELS]

    def note(self, text: str) -> None:
        """Record an observation for the report."""
        self.outcome.observed.append(text)

    async def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``predicate``; seconds it took (fails naming the exchange and ``what``)."""
        return await until(predicate, timeout, f"{self.exchange}: {what}")

    async def healthy(self, what: str) -> float:
        """Wait until connected, every channel up, the book synchronised."""
        return await self.wait(lambda: self.rig.healthy(self.exchange), HEALTHY_TIMEOUT, what)

    async def fault(self, kind: str, **params: Any) -> httpx.Response:
        """Set a fault on this exchange; the simulator's answer."""
        body = {"exchange": self.exchange, "fault": kind, **params}
        return await self.http.post("/_control/faults", json=body)

    async def inject(self, kind: str, **params: Any) -> None:
        """Set a fault that must be accepted."""
        reply = await self.fault(kind, **params)
        assert reply.status_code == 200, f"{self.exchange} {kind}: {reply.text}"

    async def rest_answers(self) -> None:
        """The REST side keeps working: a ticker GET answers 200."""
        reply = await self.http.get(VENUES[self.exchange].ticker_path)
        assert reply.status_code == 200, f"{self.exchange}: REST ticker {reply.status_code}"

    async def recover(
        self,
        before: Counters,
        forbidden: list[tuple[str, str]],
        reordered: bool = False,
        may_resync: bool = False,
    ) -> None:
        """Check nothing else moved during the fault, REST answers, clear the fault, wait until
        the stream is healthy again, and check that ``forbidden`` counters and the crossed-book
        counter did not move after clearing either.

        ``reordered``: the simulator reorders frames when the fault clears (``ws_lag``: see
        :data:`LAG_CLEAR_REORDERS`); what moves after clearing is then only noted.
        ``may_resync``: one resync after clearing is legitimate (``ws_stall``, and
        ``ws_blackhole`` when a reconnect fell inside it: see :data:`STALL_DROPS_SNAPSHOTS`);
        it is noted, not refused.
        """
        during = self.counters()
        moved = before.moved(during, forbidden)
        assert not moved, f"{self.exchange}: unexpected counters moved during the fault: {moved}"
        await self.rest_answers()
        await self.inject("none")
        seconds = await self.healthy("healthy again after the fault cleared")
        self.note(f"healthy {seconds:.1f}s after clearing")
        watched = forbidden + [key for key in CROSSED if key not in forbidden]
        if may_resync:
            resynced = during.moved(self.counters(), RESYNCS)
            if resynced:
                self.note(f"resync after clearing (snapshot lost in the stall): {resynced}")
            watched = [key for key in watched if key not in RESYNCS]
        later = during.moved(self.counters(), watched)
        if reordered:
            if later:
                self.note(f"after clearing (simulator reorders frames): {later}")
            return
        assert not later, f"{self.exchange}: unexpected counters moved after clearing: {later}"


def grew(before: Counters, now: Counters, keys: list[tuple[str, str]]) -> bool:
    """Every counter of ``keys`` is above its value in ``before``."""
    return all(now.get(*key) > before.get(*key) for key in keys)


def deltas(before: Counters, now: Counters, keys: list[tuple[str, str]]) -> str:
    """``name{label} +n`` for each of ``keys``."""
    parts = []
    for name, label in keys:
        delta = now.get(name, label) - before.get(name, label)
        parts.append(f"{name.removeprefix('exchange_ws_')}{{{label}}} +{delta:g}")
    return ", ".join(parts)


# -- one check per fault --------------------------------------------------------------------


async def stall(case: Case) -> None:
    """Open, pongs answered, no data: every channel down while still connected, then the
    silent connection is replaced (reason ``stale``); up again after the fault clears."""
    await case.healthy("healthy before the fault")
    before = case.counters()
    await case.inject("ws_stall")
    t = await case.wait(
        lambda: case.ups() == [0.0, 0.0, 0.0] and case.value("exchange_ws_connected") == 1,
        STALE_AFTER * 4,
        "every channel down while connected",
    )
    case.note(f"up 0 on every channel with connected 1 after {t:.1f}s")
    key = reconnects("stale")
    t = await case.wait(lambda: grew(before, case.counters(), key), 30, "reconnect reason stale")
    case.note(f"then reconnects{{stale}} +1 after {t:.1f}s more")
    # Clear only once the replacement is subscribed under the stall, so every run takes the
    # same path (see STALL_DROPS_SNAPSHOTS).
    await case.wait(lambda: case.value("exchange_ws_connected") == 1, 20, "reconnected")
    forbidden = GAPS + CHECKSUMS + SUB_ERRORS + CROSSED + RESYNCS
    forbidden += reconnects("closed_by_server", "ping_timeout", "error", "resync", "maintenance")
    await case.recover(before, forbidden, may_resync=STALL_DROPS_SNAPSHOTS)


async def blackhole(case: Case) -> None:
    """Nothing at all (no data, no pongs): the link is declared dead (``ping_timeout``),
    channels down, not connected."""
    await case.healthy("healthy before the fault")
    before = case.counters()
    await case.inject("ws_blackhole")
    key = reconnects("ping_timeout")
    t = await case.wait(lambda: grew(before, case.counters(), key), 30, "reason ping_timeout")
    case.note(f"reconnects{{ping_timeout}} +1 after {t:.1f}s")
    await case.wait(
        lambda: case.ups() == [0.0, 0.0, 0.0] and case.value("exchange_ws_connected") == 0,
        15,
        "channels down and not connected",
    )
    case.note("up 0 on every channel, connected 0")
    forbidden = GAPS + CHECKSUMS + SUB_ERRORS + CROSSED + RESYNCS + reconnects("stale")
    # A reconnect made while the blackhole still holds loses its book snapshot exactly as in a
    # stall (STALL_DROPS_SNAPSHOTS): whether one happens before clearing is a race.
    await case.recover(before, forbidden, may_resync=STALL_DROPS_SNAPSHOTS)


async def disconnect(case: Case) -> None:
    """A close frame from the server: ``closed_by_server``, then connected again."""
    await case.healthy("healthy before the fault")
    before = case.counters()
    await case.inject("ws_disconnect", close_code=1012)
    key = reconnects("closed_by_server")
    t = await case.wait(lambda: grew(before, case.counters(), key), 15, "closed_by_server")
    case.note(f"reconnects{{closed_by_server}} +1 after {t:.1f}s (close code 1012)")
    forbidden = GAPS + CHECKSUMS + SUB_ERRORS + CROSSED + RESYNCS
    forbidden += reconnects("ping_timeout", "stale", "maintenance", "resync")
    await case.recover(before, forbidden)


async def lag(case: Case) -> None:
    """Data delivered ``LAG_MS`` late: the lag histogram's new observations average ≥ 1.4 s,
    and every channel stays up (stale_after 4 s > 1.5 s)."""
    await case.healthy("healthy before the fault")
    before = case.counters()
    await case.inject("ws_lag", lag_ms=LAG_MS)
    # Frames sent before the fault arrived on time; later ones arrive LAG_MS late, so nothing
    # arrives in the first LAG_MS: a baseline taken inside that window holds only delayed
    # frames after it.
    await asyncio.sleep(0.5)
    base = case.counters()
    downs: list[list[float]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + 4.5
    while loop.time() < end:
        ups = case.ups()
        if ups != [1.0, 1.0, 1.0]:
            downs.append(ups)
        await asyncio.sleep(0.1)
    now = case.counters()
    means = {}
    for channel in CHANNELS:
        c = channel.value
        count = now.get("exchange_ws_message_lag_seconds_count", c) - base.get(
            "exchange_ws_message_lag_seconds_count", c
        )
        total = now.get("exchange_ws_message_lag_seconds_sum", c) - base.get(
            "exchange_ws_message_lag_seconds_sum", c
        )
        if count >= 3:
            means[c] = (total / count, int(count))
    assert means, f"{case.exchange}: no lag observations under ws_lag"
    low = {c: m for c, (m, _) in means.items() if m < 1.4}
    assert not low, f"{case.exchange}: mean lag below 1.4 s under {LAG_MS} ms: {means}"
    assert not downs, f"{case.exchange}: a channel went down under ws_lag: {downs[:3]}"
    shown = ", ".join(f"{c} {m:.2f}s/{n}" for c, (m, n) in means.items())
    case.note(f"lag mean (s/observations) {shown}; channels stayed up")
    forbidden = GAPS + CHECKSUMS + SUB_ERRORS + CROSSED + RESYNCS + ALL_RECONNECTS
    await case.recover(before, forbidden, reordered=LAG_CLEAR_REORDERS)


GAP_METRICS: dict[str, list[tuple[str, str]]] = {
    # Binance diff depth: U > book id + 1 [BN-WS §How to manage a local order book correctly].
    "binance": [("exchange_ws_sequence_gaps_total", "book"), *RESYNCS],
    # Bybit orderbook u jumps (the dialect checks u contiguity) [BY-OB].
    "bybit": [("exchange_ws_sequence_gaps_total", "book"), *RESYNCS],
    # OKX prevSeqId != previous seqId [OKX-MD §Sequence ID].
    "okx": [("exchange_ws_sequence_gaps_total", "book"), *RESYNCS],
    # Coinbase level2_batch has no sequence; dropped matches show as trade_id jumps
    # [CB-EX-OV §Sequence Numbers; CB-EX-CH §Heartbeat Channel].
    "coinbase": [("exchange_ws_sequence_gaps_total", "trades")],
    # Kraken has no sequence numbers: a lost book update is a checksum mismatch, a lost trade a
    # trade_id jump [KR-CKS2 §Algorithm; KR-TRADE2].
    "kraken": [
        ("exchange_ws_checksum_mismatches_total", "book"),
        *RESYNCS,
        ("exchange_ws_sequence_gaps_total", "trades"),
    ],
}


async def gap(case: Case) -> None:
    """Skipped sequence numbers: the documented gap metric moves, the book resyncs, and once
    the fault clears the local book equals the REST depth."""
    await case.healthy("healthy before the fault")
    before = case.counters()
    await case.inject("ws_gap")
    expected = GAP_METRICS[case.exchange]
    t = await case.wait(lambda: grew(before, case.counters(), expected), 20, f"{expected} grow")
    case.note(f"{deltas(before, case.counters(), expected)} after {t:.1f}s")
    forbidden = SUB_ERRORS + CROSSED + reconnects("ping_timeout", "stale", "closed_by_server")
    if case.exchange != "kraken":
        forbidden += CHECKSUMS
    await case.recover(before, forbidden)
    case.outcome.book = await book_matches_rest(case.rig, case.http, case.exchange)


async def checksum(case: Case) -> None:
    """Wrong book checksums (OKX, Kraken): mismatches counted, the book resyncs."""
    await case.healthy("healthy before the fault")
    before = case.counters()
    await case.inject("ws_checksum")
    expected = [("exchange_ws_checksum_mismatches_total", "book"), *RESYNCS]
    t = await case.wait(lambda: grew(before, case.counters(), expected), 20, f"{expected} grow")
    case.note(f"{deltas(before, case.counters(), expected)} after {t:.1f}s")
    forbidden = GAPS + SUB_ERRORS + CROSSED
    forbidden += reconnects("ping_timeout", "stale", "closed_by_server")
    await case.recover(before, forbidden)


async def reject(case: Case) -> None:
    """Subscriptions refused with the documented error. A live subscription is not affected,
    so the server first closes the connection (``ws_disconnect``), and the exporter's next
    connection subscribes under ``ws_reject``: errors counted, not connected."""
    await case.healthy("healthy before the fault")
    before = case.counters()
    await case.inject("ws_disconnect", close_code=1012)
    key = reconnects("closed_by_server")
    await case.wait(lambda: grew(before, case.counters(), key), 15, "closed_by_server")
    await case.inject("ws_reject")

    def refused() -> bool:
        now = case.counters()
        errors = sum(now.get(*k) - before.get(*k) for k in SUB_ERRORS)
        return errors > 0 and (now.get("exchange_ws_connected") == 0 or 0.0 in case.ups())

    t = await case.wait(refused, 30, "subscription errors with connected 0 or a channel down")
    now = case.counters()
    case.note(
        f"{deltas(before, now, SUB_ERRORS)} after {t:.1f}s, "
        f"connected {now.get('exchange_ws_connected'):g}"
    )
    await case.recover(before, GAPS + CHECKSUMS + CROSSED)


async def maintenance(case: Case) -> None:
    """The exchange's maintenance notice: Binance ``serverShutdown`` and OKX 64008 → reconnect
    (reason ``maintenance``); Kraken ``status`` and Coinbase ``status`` → the stream reports
    maintenance (``/status`` and ``exchange_maintenance``) and stays connected; Bybit's notice
    lives on the separate ``/v5/public/misc/status`` stream, which the exporter's spot stream
    does not subscribe: nothing happens on the spot stream (maintenance comes from the REST
    status probe)."""
    await case.healthy("healthy before the fault")
    before = case.counters()
    status = case.rig.stream_status(case.exchange)
    await case.inject("ws_maintenance_notice")
    if case.exchange in ("binance", "okx"):
        key = reconnects("maintenance")
        t = await case.wait(lambda: grew(before, case.counters(), key), 15, "maintenance")
        case.note(f"reconnects{{maintenance}} +1 after {t:.1f}s")
        await case.recover(before, GAPS + CHECKSUMS + CROSSED + SUB_ERRORS)
        return
    if case.exchange == "bybit":
        await asyncio.sleep(3.0)
        assert not status.maintenance, f"bybit: unexpected maintenance {status.maintenance_message}"
        case.note("spot stream: no notice, no reaction (status stream not subscribed)")
        await case.recover(before, GAPS + CHECKSUMS + CROSSED + SUB_ERRORS + ALL_RECONNECTS)
        return

    def flagged() -> bool:
        gauge = case.rig.value("exchange_maintenance", exchange=case.exchange)
        return bool(status.maintenance) and gauge == 1

    t = await case.wait(flagged, 15, "maintenance flagged in the stream status")
    case.note(f"stream status maintenance ({status.maintenance_message!r}) after {t:.1f}s")
    await case.recover(before, GAPS + CHECKSUMS + CROSSED + SUB_ERRORS + ALL_RECONNECTS)
    await case.wait(lambda: not status.maintenance, 15, "maintenance flag cleared")
    case.note("maintenance flag cleared after the fault")


CHECKS: dict[str, Callable[[Case], Awaitable[None]]] = {
    "ws_stall": stall,
    "ws_blackhole": blackhole,
    "ws_disconnect": disconnect,
    "ws_lag": lag,
    "ws_gap": gap,
    "ws_checksum": checksum,
    "ws_reject": reject,
    "ws_maintenance_notice": maintenance,
}


async def checksum_refused(http: httpx.AsyncClient, exchange: str) -> Outcome:
    """``ws_checksum`` on an exchange whose books carry no checksum is refused (400) with an
    error naming the fault and the exchange."""
    body = {"exchange": exchange, "fault": "ws_checksum"}
    reply = await http.post("/_control/faults", json=body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert "ws_checksum" in error and exchange in error, error
    return Outcome([f"refused 400: {error}"])


async def run_episode(fault: str, sim_url: str) -> dict[str, Outcome | BaseException]:
    """One fault on every exchange at once, the exporter streaming all of them."""
    exchanges = list(CHECKSUM_EXCHANGES) if fault == "ws_checksum" else list(VENUES)
    results: dict[str, Outcome | BaseException] = {}
    async with httpx.AsyncClient(base_url=sim_url, timeout=10.0, trust_env=False) as http:
        await http.delete("/_control/faults")
        if fault == "ws_checksum":
            for name in VENUES:
                if name not in exchanges:
                    try:
                        results[name] = await checksum_refused(http, name)
                    except AssertionError as exc:
                        results[name] = exc
        try:
            async with RunningExporter(stream_config(sim_url, exchanges, STALE_AFTER)) as rig:
                cases = {name: Case(rig, http, name) for name in exchanges}
                done = await gather_named({n: CHECKS[fault](c) for n, c in cases.items()})
                for name, result in done.items():
                    results[name] = result if result is not None else cases[name].outcome
        finally:
            await http.delete("/_control/faults")
    return results


@pytest.fixture(scope="module")
def ws_sim() -> Iterator[SimulatorServer]:
    """One in-thread simulator for the module (faults are cleared around each episode)."""
    with simulator_in_thread() as server:
        yield server


@pytest.fixture(scope="module")
def episodes() -> dict[str, dict[str, Outcome | BaseException]]:
    """Episode outcomes by fault, filled by the first case of each fault."""
    return {}


def outcome_of(
    fault: str,
    exchange: str,
    ws_sim: SimulatorServer,
    episodes: dict[str, dict[str, Outcome | BaseException]],
    monkeypatch: pytest.MonkeyPatch,
) -> Outcome:
    """The outcome of ``exchange`` under ``fault``, running the fault's episode if needed."""
    if fault not in episodes:
        for dialect in (BinanceDialect, BybitDialect, OkxDialect):
            monkeypatch.setattr(dialect, "pong_timeout", PONG_TIMEOUT)  # shipped: 10 s
        try:
            episodes[fault] = asyncio.run(
                asyncio.wait_for(run_episode(fault, ws_sim.url), EPISODE_TIMEOUT)
            )
        except Exception as exc:  # the whole episode failed: every case of it reports it
            episodes[fault] = dict.fromkeys(VENUES, exc)
    result = episodes[fault][exchange]
    if isinstance(result, BaseException):
        raise result
    print(f"\n{exchange} × {fault}: {'; '.join(result.observed)}")
    return result


KNOWN_BUGS: dict[tuple[str, str], str] = {}
"""(fault, exchange) cases that fail for a known, described bug (strict xfail)."""
CASES = [
    pytest.param(
        fault,
        exchange,
        id=f"{fault}-{exchange}",
        marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[(fault, exchange)])]
        if (fault, exchange) in KNOWN_BUGS
        else [],
    )
    for fault in FAULTS
    for exchange in VENUES
]


@pytest.mark.parametrize(("fault", "exchange"), CASES)
def test_fault_moves_the_documented_metric(
    fault: str,
    exchange: str,
    ws_sim: SimulatorServer,
    episodes: dict[str, dict[str, Outcome | BaseException]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome = outcome_of(fault, exchange, ws_sim, episodes, monkeypatch)
    assert outcome.observed


@pytest.mark.parametrize("exchange", list(VENUES))
def test_book_equals_rest_depth_after_a_gap_resync(
    exchange: str,
    ws_sim: SimulatorServer,
    episodes: dict[str, dict[str, Outcome | BaseException]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome = outcome_of("ws_gap", exchange, ws_sim, episodes, monkeypatch)
    assert outcome.book, f"{exchange}: the book was not compared with REST"
    print(f"{exchange}: {outcome.book}")
