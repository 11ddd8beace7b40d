"""The simulator's WebSocket transport (wsproto beside h11) driven by a real client library
(``websockets``): handshakes, unknown paths, keep-alive enforcement, the message-rate and lifetime
cuts, ``down``, statistics and a clean shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from simulator.server import SimulatorServer
from simulator.ws.dialects.binance import Dialect as Binance

pytestmark = pytest.mark.e2e

T = TypeVar("T")
TIMEOUT = 30.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one test coroutine with a generous overall timeout."""
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def ws_url(sim: SimulatorServer, path: str) -> str:
    return sim.url.replace("http://", "ws://") + path


def dial(sim: SimulatorServer, path: str, **kw: Any) -> connect:
    kw.setdefault("proxy", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 5)
    return connect(ws_url(sim, path), **kw)


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll ``check`` until it holds (fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def closed_with(ws: ClientConnection, timeout: float = 15.0) -> ConnectionClosed:
    """Read until the server closes the connection; return the exception."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc
    raise AssertionError("unreachable")


def keepalive(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """Shorten Binance's keep-alive rule for this test (read when a connection opens)."""
    monkeypatch.setattr(Binance, "keepalive", dataclasses.replace(Binance.keepalive, **changes))


# -- handshakes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "wrapped"),
    [
        ("/binance/ws/btcusdt@bookTicker", False),
        ("/binance/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker", True),
    ],
)
def test_url_stream_forms_deliver_data(
    sim: SimulatorServer, client: httpx.Client, path: str, wrapped: bool
) -> None:
    async def scenario() -> None:
        async with dial(sim, path) as ws:
            msg = await recv_json(ws)
            if wrapped:
                assert msg["stream"].endswith("@bookTicker")
                msg = msg["data"]
            assert set(msg) == {"u", "s", "b", "B", "a", "A"}

    run(scenario())


@pytest.mark.parametrize("path", ["/binance/ws", "/binance/stream"])
def test_message_forms_accept_subscribe(
    sim: SimulatorServer, client: httpx.Client, path: str
) -> None:
    async def scenario() -> None:
        async with dial(sim, path) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 7}))
            assert await recv_json(ws) == {"result": None, "id": 7}
            msg = await recv_json(ws)
            data = msg["data"] if path.endswith("stream") else msg
            assert data["e"] == "trade"

    run(scenario())


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/binance/nope", 404),
        ("/coinbase/not-a-feed", 404),
        ("/binance/ws/", 404),
        ("/binance/api/v3/ping", 200),  # a REST path answers as REST, no upgrade
    ],
)
def test_paths_no_dialect_serves_are_not_upgraded(
    sim: SimulatorServer, client: httpx.Client, path: str, status: int
) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with dial(sim, path):
                pass
        assert info.value.response.status_code == status

    run(scenario())


def test_handshake_without_key_gets_400(sim: SimulatorServer, client: httpx.Client) -> None:
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    r = httpx.get(sim.url + "/binance/ws", headers=headers, trust_env=False, timeout=10)
    assert r.status_code == 400 and "websocket" in r.json()["error"]


# -- keep-alive and limits --------------------------------------------------------------------


def test_client_that_answers_pings_stays_connected(
    sim: SimulatorServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pongs count against the 5 frames/s limit: 0.3 s pings leave room for our message
    keepalive(monkeypatch, server_ping_interval=0.3, pong_deadline=3.0)

    async def scenario() -> None:
        async with dial(sim, "/binance/ws", ping_interval=None) as ws:
            before = client.get("/_control/stats").json()["websocket"]["binance"]["frames_in"]

            async def pongs_seen() -> bool:
                stats = client.get("/_control/stats").json()["websocket"]["binance"]
                return bool(stats["frames_in"] >= before + 15)

            await until(pongs_seen)  # 15 pings answered (4.5 s), past the pong deadline
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            assert await recv_json(ws) == {"result": [], "id": 1}

    run(scenario())


def test_client_that_ignores_pings_is_disconnected(
    sim: SimulatorServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    keepalive(monkeypatch, server_ping_interval=0.2, pong_deadline=0.6)

    async def scenario() -> None:
        async with dial(sim, "/binance/ws", ping_interval=None) as ws:
            ws.transport.pause_reading()  # pings are never read, so never answered

            async def gone() -> bool:
                stats = client.get("/_control/stats").json()["websocket"]["binance"]
                return bool(stats["open"] == 0)

            await until(gone)
            ws.transport.resume_reading()
            exc = await closed_with(ws)
            assert exc.rcvd is None or exc.rcvd.reason == "Pong timeout"

    run(scenario())


def test_more_than_five_messages_a_second_disconnects(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws", ping_interval=None) as ws:
            for i in range(8):
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            exc = await closed_with(ws)
            assert exc.rcvd is not None and exc.rcvd.reason == "Too many messages"

    run(scenario())


def test_five_messages_a_second_are_allowed(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws", ping_interval=None) as ws:
            for i in range(10):  # 10 messages in ~2.3 s: at most 5 in any second
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                assert await recv_json(ws) == {"result": [], "id": i}
                await asyncio.sleep(0.25)

    run(scenario())


def test_connection_lifetime_is_enforced(
    sim: SimulatorServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    keepalive(monkeypatch, max_lifetime=0.5)

    async def scenario() -> None:
        async with dial(sim, "/binance/ws/btcusdt@bookTicker") as ws:
            exc = await closed_with(ws)
            assert exc.rcvd is not None
            assert (exc.rcvd.code, exc.rcvd.reason) == (1000, "Connection lifetime reached")

    run(scenario())


# -- down, stats, shutdown --------------------------------------------------------------------


def test_down_refuses_new_and_drops_live_connections(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws/btcusdt@bookTicker") as live:
            await recv_json(live)
            client.post("/_control/faults", json={"exchange": "binance", "fault": "down"})
            exc = await closed_with(live)
            assert exc.rcvd is None  # TCP dropped, no close frame
        with pytest.raises((OSError, InvalidHandshake)):
            async with dial(sim, "/binance/ws"):
                pass
        client.post("/_control/faults", json={"exchange": "binance", "fault": "none"})
        async with dial(sim, "/binance/ws/btcusdt@bookTicker") as ws:
            await recv_json(ws)

    run(scenario())


def test_rest_faults_do_not_touch_streams(sim: SimulatorServer, client: httpx.Client) -> None:
    fault = {"exchange": "binance", "fault": "latency", "latency_ms": 20_000}
    assert client.post("/_control/faults", json=fault).status_code == 200

    async def scenario() -> None:
        async with dial(sim, "/binance/ws/btcusdt@bookTicker") as ws:
            for _ in range(3):
                await recv_json(ws, timeout=5)

    run(scenario())


def test_stats_count_connections_and_frames(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws") as ws:
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            await recv_json(ws)
            stats = client.get("/_control/stats").json()["websocket"]["binance"]
            assert stats["connections"] == 1 and stats["open"] == 1
            assert stats["frames_in"] >= 1 and stats["frames_out"] >= 1

    run(scenario())
    assert client.get("/_control/stats").json()["total"] == 0  # upgrades are not requests


def test_stop_ends_sessions_and_leaves_no_tasks() -> None:
    async def scenario() -> None:
        async with asyncio.timeout(TIMEOUT):
            await body()

    async def body() -> None:
        server = SimulatorServer("127.0.0.1", 0)
        await server.start()
        url = f"ws://127.0.0.1:{server.port}"
        clients = [
            await connect(url + "/binance/ws/btcusdt@depth@100ms", proxy=None),
            await connect(url + "/binance/stream?streams=ethusdt@trade", proxy=None),
        ]
        for ws in clients:
            await asyncio.wait_for(ws.recv(), 10)
        assert len(server.ws.sessions) == 2
        await server.stop()
        assert not server.ws.sessions
        for ws in clients:
            await closed_with(ws)
            await ws.wait_closed()
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(scenario())


def test_dialect_registry_loads_lazily_and_tolerates_missing_modules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from simulator.ws import dialects

    monkeypatch.setattr(dialects, "_loaded", {})
    monkeypatch.setitem(dialects.DIALECTS, "nowhere", "simulator.ws.dialects.nowhere")
    assert dialects.dialect_class("nowhere") is None
    assert dialects.find_dialect("nowhere", "/ws") is None
    assert dialects.dialect_class("binance") is Binance
    assert dialects.find_dialect("binance", "/ws/btcusdt@trade") is Binance
    assert dialects.find_dialect("binance", "/stream") is Binance
    assert dialects.find_dialect("binance", "/ws/") is None
    assert dialects.find_dialect("binance", "/streams") is None
