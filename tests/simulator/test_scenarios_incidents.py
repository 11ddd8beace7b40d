"""Every shipped simulator scenario produces its incident on every run.

Each scenario of :func:`simulator.scenario.shipped_scenarios` is played against the real exporter
scheduler with the shipped schedule (``deploy/exporter.demo.yml``), and the incident is read from
the exporter's own metrics. One in-thread simulator per play, so the plays run concurrently in
one event loop; each stops as soon as its incident is seen. In the all-scenarios test the first
step is applied before the exporter starts, so every probe of the play meets the incident. The
``bybit-ip-ban`` test starts the scenario while the exporter runs, shortly before a 5 s window
boundary (where a consume without a hold used to miss the next request), 20 times.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from exporter.config import ExporterConfig, load_config
from exporter.metrics import ExporterMetrics
from exporter.scheduler import ProbeScheduler
from simulator import SimulatorServer, simulator_in_thread
from simulator.market import Market
from simulator.scenario import shipped_scenarios

pytestmark = pytest.mark.e2e  # in-thread simulators probed by the exporter

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "deploy" / "exporter.demo.yml"
INCIDENT_TIMEOUT_S = 45.0
"""Generous: the slowest incident (Kraken's first probe, 16 s into the shipped schedule) shows
in under 20 s."""
POLL_S = 0.1
BAN_PLAYS = 20
BAN_LANES = 10
"""``bybit-ip-ban`` is played :data:`BAN_PLAYS` times on :data:`BAN_LANES` simulators at once."""
PLAYS_AT_ONCE = 6
"""Scenarios played concurrently in :func:`test_every_shipped_scenario_produces_its_incident`."""
BYBIT_WINDOW_S = 5.0  # 600 requests per 5-second window per IP [BY-RL]
BYBIT_BAN_S = 600.0  # the simulator's default Bybit ban_seconds ("at least 10 minutes" [BY-RL])
WARM_UP_S = 1.0
"""The exporter runs this long (at least) before the scenario starts in the ban test: its Bybit
probes are then in their steady rhythm (one about every 1.25 s)."""


@dataclass
class Play:
    """One scenario played on its own simulator by a fresh exporter scheduler."""

    scenario: str
    server: SimulatorServer
    config: ExporterConfig
    metrics: ExporterMetrics = field(default_factory=ExporterMetrics)
    seen_after_s: float | None = None
    applied_at: float | None = None

    def value(self, name: str, **labels: str) -> float | None:
        """One sample of the exporter's registry (``None`` if the series does not exist)."""
        return self.metrics.registry.get_sample_value(name, labels)

    def endpoints(self, exchange: str) -> list[str]:
        """The endpoints the config probes on ``exchange``."""
        for config in self.config.exchanges:
            if config.name == exchange:
                return [plan.name for plan in config.endpoint_plan()]
        raise AssertionError(f"{exchange} is not in {DEMO_CONFIG.name}")

    def requests(self, exchange: str, result: str) -> float:
        """``exchange_api_requests_total{result}`` summed over the exchange's endpoints."""
        return sum(
            self.value("exchange_api_requests_total", exchange=exchange, endpoint=e, result=result)
            or 0.0
            for e in self.endpoints(exchange)
        )

    def results(self, exchange: str) -> dict[str, float]:
        """Non-zero request counts of ``exchange`` by result (for failure messages)."""
        counts: dict[str, float] = {}
        for metric in self.metrics.registry.collect():
            for sample in metric.samples:
                labels = sample.labels
                if (
                    sample.name == "exchange_api_requests_total"
                    and labels.get("exchange") == exchange
                    and sample.value
                ):
                    counts[labels["result"]] = counts.get(labels["result"], 0.0) + sample.value
        return counts


def _all_up_zero(exchange: str) -> Callable[[Play], bool]:
    def check(play: Play) -> bool:
        return all(
            play.value("exchange_api_up", exchange=exchange, endpoint=e) == 0
            for e in play.endpoints(exchange)
        )

    return check


def _counted(exchange: str, result: str) -> Callable[[Play], bool]:
    def check(play: Play) -> bool:
        return play.requests(exchange, result) > 0

    return check


def _ip_banned(exchange: str) -> Callable[[Play], bool]:
    """A probe counted a ban answer, or a ban pause is in force (a key check may meet the ban
    first: it pauses the exchange and moves the ban gauge the same way)."""

    def check(play: Play) -> bool:
        until = play.value("exchange_ip_ban_until_timestamp_seconds", exchange=exchange) or 0.0
        return play.requests(exchange, "banned") > 0 or until > time.time()

    return check


def _clock_skew(exchange: str, seconds: float, tolerance: float) -> Callable[[Play], bool]:
    def check(play: Play) -> bool:
        skew = play.value("exchange_clock_skew_seconds", exchange=exchange)
        return skew is not None and abs(skew - seconds) <= tolerance

    return check


def _data_age_at_least(exchange: str, seconds: float) -> Callable[[Play], bool]:
    def check(play: Play) -> bool:
        ages = (
            play.value("exchange_market_data_age_seconds", exchange=exchange, endpoint=e)
            for e in play.endpoints(exchange)
        )
        return any(age is not None and age >= seconds for age in ages)

    return check


def _latency_at_least(exchange: str, seconds: float) -> Callable[[Play], bool]:
    """Some endpoint's mean request duration is at least ``seconds`` (every probe of a play
    runs under the scenario, so the mean is the scenario's latency)."""

    def check(play: Play) -> bool:
        for e in play.endpoints(exchange):
            labels = {"exchange": exchange, "endpoint": e}
            count = play.value("exchange_api_request_duration_seconds_count", **labels)
            total = play.value("exchange_api_request_duration_seconds_sum", **labels)
            if count and total is not None and total / count >= seconds:
                return True
        return False

    return check


def _maintenance(exchange: str) -> Callable[[Play], bool]:
    def check(play: Play) -> bool:
        return play.value("exchange_maintenance", exchange=exchange) == 1

    return check


WS_CHANNELS = ("ticker", "trades", "book")


def _ws_stale(exchange: str, hold_s: float = 3.0) -> Callable[[Play], bool]:
    """Connected and subscribed, yet every channel is down for lack of data, for ``hold_s``
    seconds in a row (a healthy stream brings its first ticker within a second)."""
    since: dict[int, float] = {}

    def check(play: Play) -> bool:
        connected = play.value("exchange_ws_connected", exchange=exchange) == 1
        ups = [play.value("exchange_ws_up", exchange=exchange, channel=c) for c in WS_CHANNELS]
        if not connected or any(up != 0 for up in ups):
            since.pop(id(play), None)
            return False
        first = since.setdefault(id(play), time.monotonic())
        return time.monotonic() - first >= hold_s

    return check


def _ws_gaps(exchange: str, channel: str) -> Callable[[Play], bool]:
    def check(play: Play) -> bool:
        gaps = play.value("exchange_ws_sequence_gaps_total", exchange=exchange, channel=channel)
        return bool(gaps)

    return check


def _ws_lag_at_least(exchange: str, seconds: float) -> Callable[[Play], bool]:
    """Some channel's mean message lag is at least ``seconds``."""

    def check(play: Play) -> bool:
        for channel in WS_CHANNELS:
            labels = {"exchange": exchange, "channel": channel}
            count = play.value("exchange_ws_message_lag_seconds_count", **labels)
            total = play.value("exchange_ws_message_lag_seconds_sum", **labels)
            if count and total is not None and total / count >= seconds:
                return True
        return False

    return check


def _mid(play: Play, exchange: str, market: str) -> float | None:
    """The exporter's mid price of ``market`` on ``exchange`` (None until it has a quote)."""
    labels = {"exchange": exchange, "market": market, "price_group": market.split("/")[0] + "/USD"}
    bid = play.value("exchange_market_bid_price", **labels)
    ask = play.value("exchange_market_ask_price", **labels)
    return None if not bid or not ask else (bid + ask) / 2.0


BTC_MARKETS = {
    "binance": "BTC/USDT",
    "bybit": "BTC/USDT",
    "okx": "BTC/USDT",
    "coinbase": "BTC/USD",
    "kraken": "BTC/USD",
}


def _below_others(exchange: str, bps: float) -> Callable[[Play], bool]:
    """``exchange``'s BTC mid is at least ``bps`` below the median of the others' (a flash
    crash the exporter reports in ``exchange_market_*``)."""

    def check(play: Play) -> bool:
        mine = _mid(play, exchange, BTC_MARKETS[exchange])
        others = [_mid(play, ex, m) for ex, m in BTC_MARKETS.items() if ex != exchange]
        known = sorted(o for o in others if o is not None)
        if mine is None or len(known) < 3:
            return False
        median = known[len(known) // 2] if len(known) % 2 else sum(known[1:3]) / 2.0
        return (1.0 - mine / median) * 1e4 >= bps

    return check


def _price_stuck(exchange: str, hold_s: float = 8.0) -> Callable[[Play], bool]:
    """``exchange``'s BTC bid and ask stay the same for ``hold_s`` seconds in a row while every
    other exchange's BTC mid moved in that time (a stuck price, not a market at rest)."""
    seen: dict[int, tuple[float, tuple[float | None, ...], dict[str, set[float]]]] = {}

    def check(play: Play) -> bool:
        mine = _mid(play, exchange, BTC_MARKETS[exchange])
        if mine is None:
            return False
        others = {ex: _mid(play, ex, m) for ex, m in BTC_MARKETS.items() if ex != exchange}
        state = seen.get(id(play))
        if state is None or state[1] != (mine,):
            seen[id(play)] = (time.monotonic(), (mine,), {ex: set() for ex in others})
            return False
        for ex, mid in others.items():
            if mid is not None:
                state[2][ex].add(mid)
        moved = all(len(values) >= 2 for values in state[2].values())
        return moved and time.monotonic() - state[0] >= hold_s

    return check


def _normal_volume(exchange: str, market: str, t0: float, t1: float) -> float:
    """Base volume the simulator's *normal* market trades on ``market`` of ``exchange`` between
    epoch seconds ``t0`` and ``t1``: every trade of each 100 ms tick has that tick's size."""
    model = Market()
    total = 0.0
    first = int(t0 * 10)
    prev = model.view(exchange, first * 100, market)
    for tick in range(first + 1, int(t1 * 10) + 1):
        view = model.view(exchange, tick * 100, market)
        total += (view.trade_id - prev.trade_id) * view.last_qty
        prev = view
    return total


def _volume_surge(exchange: str, ratio: float, span_s: float = 10.0) -> Callable[[Play], bool]:
    """The exporter's ``exchange_market_traded_volume_total`` of ``exchange``'s BTC market grows,
    over ``span_s`` seconds or more, at least ``ratio`` × what the normal market trades in that
    time (the model is deterministic, so the normal volume is computed, not guessed)."""
    market = BTC_MARKETS[exchange]
    labels = {"exchange": exchange, "market": market, "price_group": "BTC/USD"}
    start: dict[int, tuple[float, float]] = {}

    def check(play: Play) -> bool:
        total = play.value("exchange_market_traded_volume_total", **labels)
        if not total:
            return False
        now = time.time()
        first = start.setdefault(id(play), (now, total))
        if now - first[0] < span_s:
            return False
        normal = _normal_volume(exchange, market, first[0], now)
        return total - first[1] >= ratio * normal

    return check


INCIDENTS: dict[str, Callable[[Play], bool]] = {
    "binance-outage": _all_up_zero("binance"),
    "binance-weight-exhausted": _counted("binance", "rate_limited"),
    "bybit-ip-ban": _ip_banned("bybit"),
    "bybit-rate-limited": _counted("bybit", "rate_limited"),
    "clock-skew": _clock_skew("binance", 1.5, 0.25),
    "coinbase-stale": _data_age_at_least("coinbase", 55.0),
    "flash-spike": _below_others("binance", 100.0),  # -400 bps, decaying over 2 minutes
    "kraken-latency": _latency_at_least("kraken", 0.6),  # 800 ms ± 200 ms
    "okx-hang": _counted("okx", "timeout"),
    "okx-maintenance": _maintenance("okx"),
    "stuck-price": _price_stuck("kraken"),
    "ws-gap": _ws_gaps("binance", "book"),
    "ws-lag": _ws_lag_at_least("binance", 2.0),  # 3 s
    "ws-stall": _ws_stale("binance"),
    "volume-surge": _volume_surge("bybit", 3.0),  # ratio 8
}
"""What each shipped scenario must make the exporter report. A new scenario file needs an
entry here (the test fails until it has one)."""


def demo_config(
    monkeypatch: pytest.MonkeyPatch, server: SimulatorServer, *, streams: bool = True
) -> ExporterConfig:
    """The shipped demo config pointed at ``server`` (it reads SIMULATOR_URL once per load);
    ``streams=False`` drops the ``websocket:`` blocks (REST-only plays: several in-thread
    simulators then share this process's one core without also serving 30 feeds each)."""
    monkeypatch.setenv("SIMULATOR_URL", server.url)
    config = load_config(DEMO_CONFIG)
    assert all(e.base_url.startswith(server.url) for e in config.exchanges)
    if not streams:
        exchanges = [e.model_copy(update={"websocket": None}) for e in config.exchanges]
        config = config.model_copy(update={"exchanges": exchanges})
    return config


async def start_scenario(client: httpx.AsyncClient, name: str, deadline: float) -> float:
    """Start shipped scenario ``name``; wait until its first step is applied (epoch s)."""
    r = await client.post("/_control/scenario", json={"name": name})
    assert r.status_code == 200, r.text
    while True:
        done = (await client.get("/_control/scenario")).json()["scenario"]["steps_done"]
        if done:
            return float(done[0]["applied_at"])
        assert time.monotonic() < deadline, f"{name}: first step not applied"
        await asyncio.sleep(0.01)


def seconds_until(before_boundary_s: float, window_s: float, at_least: float) -> float:
    """Seconds from now to the first instant, ``at_least`` seconds away or more, that is
    ``before_boundary_s`` before a multiple of ``window_s`` (epoch time)."""
    now = time.time()
    boundary = math.ceil((now + at_least + before_boundary_s) / window_s) * window_s
    return boundary - before_boundary_s - now


async def play(
    item: Play,
    *,
    before_boundary_s: float | None = None,
    timeout: float = INCIDENT_TIMEOUT_S,
) -> Play:
    """Play ``item.scenario``; stop as soon as its incident shows (or at ``timeout``).

    By default the scenario's first step is applied, then the exporter starts. With
    ``before_boundary_s`` the exporter starts first and the scenario starts that long before a
    Bybit window boundary, :data:`WARM_UP_S` or more later. Sets ``item.applied_at`` (epoch s of
    the first step) and, if the incident was seen, ``item.seen_after_s`` (seconds after the
    exporter started).
    """
    incident = INCIDENTS[item.scenario]
    deadline = time.monotonic() + timeout
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=item.server.url, timeout=5.0, trust_env=False) as c:
        if before_boundary_s is None:
            item.applied_at = await start_scenario(c, item.scenario, deadline)
        task = asyncio.create_task(ProbeScheduler(item.config, item.metrics).run(stop))
        started = time.monotonic()
        try:
            if before_boundary_s is not None:
                await asyncio.sleep(seconds_until(before_boundary_s, BYBIT_WINDOW_S, WARM_UP_S))
                item.applied_at = await start_scenario(c, item.scenario, deadline)
            while time.monotonic() < deadline:
                if incident(item):
                    item.seen_after_s = time.monotonic() - started
                    break
                await asyncio.sleep(POLL_S)
        finally:
            stop.set()
            await task
    return item


def failure(item: Play) -> str:
    """Why a play failed: the exporter's request counts per exchange."""
    counts = {ex.name: item.results(ex.name) for ex in item.config.exchanges}
    return f"{item.scenario}: no incident within {INCIDENT_TIMEOUT_S:g} s; requests: {counts}"


def test_incident_checks_need_probes() -> None:
    """An exporter that has not probed yet shows none of the incidents."""
    config = load_config(DEMO_CONFIG)
    server = SimulatorServer("127.0.0.1", 0)
    for name, incident in INCIDENTS.items():
        assert not incident(Play(name, server, config)), name


def test_every_shipped_scenario_produces_its_incident(
    monkeypatch: pytest.MonkeyPatch, timings: dict[str, float]
) -> None:
    names = shipped_scenarios()
    missing = sorted(set(names) - set(INCIDENTS))
    assert not missing, f"shipped scenarios without an expected incident in INCIDENTS: {missing}"
    assert sorted(INCIDENTS) == names, "INCIDENTS names a scenario that is not shipped"

    async def play_all(plays: list[Play]) -> list[Play]:
        return await asyncio.gather(*(play(p) for p in plays))

    started = time.monotonic()
    plays: list[Play] = []
    # In batches: every play is an in-thread simulator plus a whole exporter (REST probes and
    # five streams) in this one process, which shares one core under the GIL.
    for first in range(0, len(names), PLAYS_AT_ONCE):
        batch = names[first : first + PLAYS_AT_ONCE]
        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(simulator_in_thread()) for _ in batch]
            batch_plays = [
                Play(name, server, demo_config(monkeypatch, server))
                for name, server in zip(batch, servers, strict=True)
            ]
            asyncio.run(play_all(batch_plays))
        plays += batch_plays
    timings["scenario incidents: all shipped, in batches (wall)"] = time.monotonic() - started
    for item in plays:
        if item.seen_after_s is not None:
            timings[f"scenario incidents: {item.scenario} seen after"] = item.seen_after_s
    failed = [failure(item) for item in plays if item.seen_after_s is None]
    assert not failed, "\n".join(failed)


def test_bybit_ip_ban_bans_every_time(
    monkeypatch: pytest.MonkeyPatch, timings: dict[str, float]
) -> None:
    """20 plays, each on a fresh simulator state (scenario, faults and limits reset) with a fresh
    scheduler, each starting the scenario 0.02-0.6 s before a 5 s window boundary while the
    exporter runs: the worst case for a consume without a hold (the next Bybit request often
    lands in the next window). 20 of 20 must be banned."""
    leads = [0.02 + 0.58 * i / (BAN_PLAYS - 1) for i in range(BAN_PLAYS)]
    played: list[Play] = []
    crossed = 0  # plays whose ban came in a later 5 s window than the consume

    async def lane(server: SimulatorServer, config: ExporterConfig, mine: list[float]) -> None:
        nonlocal crossed
        async with httpx.AsyncClient(base_url=server.url, timeout=5.0, trust_env=False) as c:
            for lead in mine:
                for path in ("scenario", "faults", "limits"):
                    assert (await c.delete(f"/_control/{path}")).status_code == 200
                item = await play(Play("bybit-ip-ban", server, config), before_boundary_s=lead)
                played.append(item)
                bybit = (await c.get("/_control/limits")).json()["limits"]["bybit"]
                if bybit["banned_until"] is not None and item.applied_at is not None:
                    banned_at = bybit["banned_until"] - BYBIT_BAN_S
                    window = BYBIT_WINDOW_S
                    crossed += banned_at // window != item.applied_at // window

    async def lanes(servers: list[SimulatorServer], configs: list[ExporterConfig]) -> None:
        await asyncio.gather(
            *(
                lane(server, config, leads[i::BAN_LANES])
                for i, (server, config) in enumerate(zip(servers, configs, strict=True))
            )
        )

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(simulator_in_thread()) for _ in range(BAN_LANES)]
        configs = [demo_config(monkeypatch, server, streams=False) for server in servers]
        asyncio.run(lanes(servers, configs))
    wall = time.monotonic() - started
    timings[f"scenario incidents: bybit-ip-ban x{BAN_PLAYS}, {crossed} across a window (wall)"] = (
        wall
    )
    assert len(played) == BAN_PLAYS
    banned = sum(item.seen_after_s is not None for item in played)
    failed = [failure(item) for item in played if item.seen_after_s is None]
    assert banned == BAN_PLAYS, f"{banned} of {BAN_PLAYS} plays banned:\n" + "\n".join(failed)
    # The plays did exercise the race: some ban came after the window the consume landed in.
    assert crossed > 0, "no play's first Bybit request crossed a window boundary"
