"""Each ``ws_*`` fault's effect on the simulated Binance streams, seen by a real client
(``websockets``), and the validation of WebSocket fault bodies."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from simulator.exchanges import build_exchanges
from simulator.failure_kinds import WS_FAULT_KINDS, WS_LAG_MS, ws_fault
from simulator.faults import WS_FAULT_KINDS as REGISTRY_WS_KINDS
from simulator.faults import FaultError, FaultRegistry
from simulator.market import Market
from simulator.server import SimulatorServer

pytestmark = pytest.mark.e2e

T = TypeVar("T")
TIMEOUT = 40.0
EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def dial(sim: SimulatorServer, path: str) -> connect:
    url = sim.url.replace("http://", "ws://") + path
    return connect(url, proxy=None, open_timeout=10, close_timeout=5, ping_interval=None)


def set_fault(client: httpx.Client, **body: Any) -> None:
    r = client.post("/_control/faults", json={"exchange": "binance", **body})
    assert r.status_code == 200, r.text


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def drain(ws: ClientConnection, seconds: float) -> list[Any]:
    """Everything received within ``seconds``."""
    got: list[Any] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                got.append(json.loads(await ws.recv()))
    except TimeoutError:
        return got


async def pong_within(ws: ClientConnection, seconds: float) -> bool:
    waiter = await ws.ping()
    try:
        await asyncio.wait_for(waiter, seconds)
    except TimeoutError:
        return False
    return True


async def closed(ws: ClientConnection, timeout: float = 10.0) -> ConnectionClosed:
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc
    raise AssertionError("unreachable")


COMBINED = "/binance/stream?streams=btcusdt@trade/btcusdt@depth@100ms/btcusdt@bookTicker"


def streams(messages: list[Any]) -> set[str]:
    return {m["stream"] for m in messages if isinstance(m, dict) and "stream" in m}


# -- data faults ------------------------------------------------------------------------------


def test_ws_stall_keeps_control_traffic_and_stops_data(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    async def scenario() -> None:
        async with dial(sim, COMBINED) as ws:
            await recv_json(ws)
            set_fault(client, fault="ws_stall")
            await drain(ws, 0.5)  # frames already on the wire
            assert streams(await drain(ws, 1.0)) == set()
            assert await pong_within(ws, 5)
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            answer = await recv_json(ws)
            assert answer["id"] == 1 and len(answer["result"]) == 3
            set_fault(client, fault="none")
            assert streams(await drain(ws, 1.0)) == {
                "btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@bookTicker"
            }  # fmt: skip

    run(scenario())


def test_diff_stream_resumes_without_gap_after_a_stall(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws/ethusdt@depth@100ms") as ws:
            await recv_json(ws)
            set_fault(client, fault="ws_stall")
            before = await drain(ws, 0.5)
            assert await drain(ws, 0.5) == []
            set_fault(client, fault="none")
            after = await drain(ws, 1.0)
            events = before + after
            assert len(after) >= 3
            assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(events))

    run(scenario())


def test_ws_stall_narrowed_to_one_channel(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        async with dial(sim, COMBINED) as ws:
            set_fault(client, fault="ws_stall", channel="book")
            await drain(ws, 0.5)
            assert streams(await drain(ws, 1.0)) == {"btcusdt@trade", "btcusdt@bookTicker"}

    run(scenario())


def test_ws_blackhole_answers_nothing_and_keeps_tcp_open(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    async def scenario() -> None:
        async with dial(sim, COMBINED) as ws:
            await recv_json(ws)
            set_fault(client, fault="ws_blackhole")
            await drain(ws, 0.5)
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            assert not await pong_within(ws, 1.0)
            assert await drain(ws, 0.5) == []
            set_fault(client, fault="none")
            assert streams(await drain(ws, 1.0))  # the same connection carries data again

    run(scenario())


@pytest.mark.parametrize("close_code", [4000, 1001])
def test_ws_disconnect_closes_live_and_new_sessions(
    sim: SimulatorServer, client: httpx.Client, close_code: int
) -> None:
    async def scenario() -> None:
        async with dial(sim, COMBINED) as ws:
            await recv_json(ws)
            set_fault(client, fault="ws_disconnect", close_code=close_code)
            exc = await closed(ws)
            assert exc.rcvd is not None and exc.rcvd.code == close_code
        async with dial(sim, "/binance/ws") as again:  # accepted, then closed at once
            exc = await closed(again)
            assert exc.rcvd is not None and exc.rcvd.code == close_code
        set_fault(client, fault="none")
        async with dial(sim, "/binance/ws/btcusdt@bookTicker") as fine:
            await recv_json(fine)

    run(scenario())


def test_ws_disconnect_once_closes_live_sessions_and_serves_new_ones(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    """``once``: a one-off close (a server restart); the client's reconnect is served while
    the fault still holds."""

    async def scenario() -> None:
        async with dial(sim, COMBINED) as ws:
            await recv_json(ws)
            set_fault(client, fault="ws_disconnect", close_code=1001, once=True, duration_s=30)
            exc = await closed(ws)
            assert exc.rcvd is not None and exc.rcvd.code == 1001
        async with dial(sim, COMBINED) as again:
            await recv_json(again)
            await drain(again, 0.5)  # several feed ticks: still open
            await recv_json(again)

    run(scenario())


def test_ws_disconnect_without_code_drops_tcp(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        async with dial(sim, COMBINED) as ws:
            await recv_json(ws)
            set_fault(client, fault="ws_disconnect")
            exc = await closed(ws)
            assert exc.rcvd is None  # no close frame: what clients report as 1006
            assert ws.close_code == 1006

    run(scenario())


def test_ws_lag_delays_data_not_control(sim: SimulatorServer, client: httpx.Client) -> None:
    lag_ms = 1500

    async def scenario() -> None:
        async with dial(sim, "/binance/ws/btcusdt@trade") as ws:
            set_fault(client, fault="ws_lag", lag_ms=lag_ms)
            await drain(ws, 0.5)  # what was sent before the fault
            sent_ms = time.time() * 1000
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            while True:
                msg = await recv_json(ws)
                if msg.get("id") == 1:
                    break
                assert msg["E"] < sent_ms  # only data older than the request comes first
            older = [m for m in await drain(ws, lag_ms / 1000) if m["E"] < sent_ms]
            assert older, "the ack did not overtake the lagged trades generated before it"
            for _ in range(5):
                trade = await recv_json(ws)
                delay = time.time() * 1000 - trade["E"]
                assert delay >= lag_ms - 100  # event times stay the true ones

    run(scenario())


def test_ws_gap_makes_update_and_trade_ids_jump(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        path = "/binance/stream?streams=btcusdt@depth@100ms/btcusdt@trade"
        async with dial(sim, path) as ws:
            set_fault(client, fault="ws_gap")
            await drain(ws, 0.5)
            got = [m["data"] for m in await drain(ws, 1.5)]
            diffs = [d for d in got if d.get("e") == "depthUpdate"]
            trades = [d["t"] for d in got if d.get("e") == "trade"]
            assert any(b["U"] > a["u"] + 1 for a, b in itertools.pairwise(diffs))
            assert any(b > a + 1 for a, b in itertools.pairwise(trades))
            set_fault(client, fault="none")
            await drain(ws, 0.5)
            got = [m["data"] for m in await drain(ws, 1.0)]
            diffs = [d for d in got if d.get("e") == "depthUpdate"]
            assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(diffs))

    run(scenario())


def test_ws_reject_refuses_subscriptions(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        set_fault(client, fault="ws_reject", channel="book")
        async with dial(sim, "/binance/ws") as ws:
            sub = {"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 5}
            await ws.send(json.dumps(sub))
            assert await recv_json(ws) == {
                "error": {"code": 2, "msg": "Invalid request: invalid stream"},
                "id": 5,
            }
            await ws.send(json.dumps({**sub, "params": ["btcusdt@trade"], "id": 6}))
            assert await recv_json(ws) == {"result": None, "id": 6}  # another channel
        set_fault(client, fault="ws_reject")
        async with dial(sim, "/binance/ws/btcusdt@bookTicker") as ws:
            assert await recv_json(ws) == {
                "error": {"code": 2, "msg": "Invalid request: invalid stream"},
                "id": None,
            }

    run(scenario())


@pytest.mark.parametrize(
    ("path", "wrapped"), [("/binance/ws/btcusdt@depth5", False), ("/binance/stream", True)]
)
def test_ws_maintenance_notice_sends_server_shutdown(
    sim: SimulatorServer, client: httpx.Client, path: str, wrapped: bool
) -> None:
    def is_notice(msg: Any) -> bool:
        if wrapped:
            return bool(msg.get("stream") == "!serverShutdown") and is_event(msg["data"])
        return is_event(msg)

    def is_event(data: Any) -> bool:
        return data.get("e") == "serverShutdown" and isinstance(data.get("E"), int)

    async def scenario() -> None:
        async with dial(sim, path) as live:
            set_fault(client, fault="ws_maintenance_notice")
            assert sum(map(is_notice, await drain(live, 1.0))) == 1  # once per session
            async with dial(sim, path) as new:
                assert sum(map(is_notice, await drain(new, 1.0))) == 1

    run(scenario())


# -- scope and validation -----------------------------------------------------------------


def test_ws_faults_live_beside_rest_faults(sim: SimulatorServer, client: httpx.Client) -> None:
    set_fault(client, fault="http_error", status=502)
    set_fault(client, fault="ws_stall")
    listed = client.get("/_control/faults").json()["faults"]
    assert {f["fault"] for f in listed} == {"http_error", "ws_stall"}
    assert client.get("/binance/api/v3/ping").status_code == 502
    set_fault(client, fault="none")
    assert client.get("/_control/faults").json()["faults"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"fault": "ws_stall", "endpoint": "ticker"}, "endpoint"),
        ({"fault": "ws_lag"}, "lag_ms"),
        ({"fault": "ws_lag", "lag_ms": -1}, "lag_ms"),
        ({"fault": "ws_lag", "lag_ms": 600_001}, "lag_ms"),
        ({"fault": "ws_disconnect", "close_code": 999}, "close_code"),
        ({"fault": "ws_disconnect", "close_code": 1006}, "close_code"),
        ({"fault": "ws_disconnect", "close_code": 2000}, "close_code"),
        ({"fault": "ws_disconnect", "close_code": "4000"}, "close_code"),
        ({"fault": "ws_disconnect", "close_code": 1001, "once": "yes"}, "once"),
        ({"fault": "ws_gap", "channel": "candles"}, "channel"),
        ({"fault": "ws_blackhole", "channel": "book"}, "channel"),
        ({"fault": "ws_checksum"}, "fault"),
        ({"fault": "ws_stall", "lag_ms": 5}, "lag_ms"),
    ],
)
def test_invalid_ws_fault_bodies_are_refused(
    sim: SimulatorServer, client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    r = client.post("/_control/faults", json={"exchange": "binance", **body})
    assert r.status_code == 400
    assert r.json()["error"].startswith(f"{field}:"), r.json()


def test_failure_kinds_catalogue_is_accepted_everywhere() -> None:
    market = Market()
    exchanges = build_exchanges(market)
    registry = FaultRegistry({name: ex.endpoints for name, ex in exchanges.items()})
    assert WS_FAULT_KINDS == REGISTRY_WS_KINDS
    for exchange in EXCHANGES:
        for kind in WS_FAULT_KINDS:
            body = ws_fault(kind, exchange)
            if body is None:
                assert kind == "ws_checksum" and exchange in ("binance", "bybit", "coinbase")
                with pytest.raises(FaultError, match=r"^fault: 'ws_checksum'"):
                    registry.validate({"exchange": exchange, "fault": kind})
                continue
            fault = registry.apply(body)
            assert fault is not None and registry.websocket(exchange) is fault
            assert registry.effective(exchange, None) is None  # not a REST fault
    assert ws_fault("ws_lag", "okx") == {"exchange": "okx", "fault": "ws_lag", "lag_ms": WS_LAG_MS}
    with pytest.raises(ValueError, match="ws_nope"):
        ws_fault("ws_nope", "okx")
