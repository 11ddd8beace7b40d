"""The simulated Binance spot streams through a real client (``websockets``): control-message
bodies, every stream-name form, and the documented REST-snapshot-plus-diff book sync."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from simulator.market import TICK_MS
from simulator.server import SimulatorServer
from simulator.ws.dialects.binance import STREAM_NAME
from simulator.ws.dialects.binance import Dialect as Binance

pytestmark = pytest.mark.e2e

T = TypeVar("T")
TIMEOUT = 40.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def dial(sim: SimulatorServer, path: str) -> connect:
    url = sim.url.replace("http://", "ws://") + path
    return connect(url, proxy=None, open_timeout=10, close_timeout=5, max_queue=None)


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def reply(ws: ClientConnection, request: dict[str, Any] | str) -> Any:
    """Send a control message and return the first answer carrying an ``id``."""
    await ws.send(request if isinstance(request, str) else json.dumps(request))
    while True:
        msg = await recv_json(ws)
        if isinstance(msg, dict) and "id" in msg:
            return msg


async def quiet(ws: ClientConnection, seconds: float) -> list[Any]:
    """Everything received within ``seconds``."""
    got: list[Any] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                got.append(json.loads(await ws.recv()))
    except TimeoutError:
        return got


# -- control messages -------------------------------------------------------------------------


def test_subscribe_list_unsubscribe_bodies(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws") as ws:
            sub = {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@depth"], "id": 1}
            assert await reply(ws, sub) == {"result": None, "id": 1}
            listed = await reply(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
            assert listed == {"result": ["btcusdt@aggTrade", "btcusdt@depth"], "id": 3}
            unsub = {"method": "UNSUBSCRIBE", "params": ["btcusdt@depth"], "id": 312}
            assert await reply(ws, unsub) == {"result": None, "id": 312}
            await asyncio.sleep(1.1)  # stay under 5 messages per second
            listed = await reply(ws, {"method": "LIST_SUBSCRIPTIONS", "id": "abc36"})
            assert listed == {"result": ["btcusdt@aggTrade"], "id": "abc36"}

    run(scenario())


INVALID_STREAM = "Invalid request: invalid stream"
BOOLEAN = "Invalid value type: expected Boolean"


@pytest.mark.parametrize(
    ("request_text", "code", "msg_start", "req_id"),
    [
        ('{"method":"SUBSCRIBE","params":["btcusdt@nope"],"id":2}', 2, INVALID_STREAM, 2),
        ('{"method":"SUBSCRIBE","params":["BTCUSDT@trade"],"id":4}', 2, INVALID_STREAM, 4),
        ('{"method":"SUBSCRIBE","params":[5],"id":5}', 2, "Invalid request:", 5),
        ('{"method":"FETCH","id":6}', 2, "Invalid request: unknown variant `FETCH`", 6),
        ('{"params":[],"id":7}', 2, "Invalid request: missing field `method`", 7),
        ('{"method":"LIST_SUBSCRIPTIONS","id":true}', 2, "Invalid request: invalid `id`", None),
        ('{"method":"LIST_SUBSCRIPTIONS","id":"' + "a" * 37 + '"}', 2, "Invalid request", None),
        ('{"method": SUBSCRIBE}', 3, "Invalid JSON: expected value at line 1 column", None),
        ('{"method":"GET_PROPERTY","params":["speed"],"id":8}', 0, "Unknown property", 8),
        ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":9}', 1, BOOLEAN, 9),
    ],
)
def test_error_bodies(
    sim: SimulatorServer,
    client: httpx.Client,
    request_text: str,
    code: int,
    msg_start: str,
    req_id: Any,
) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws") as ws:
            answer = await reply(ws, request_text)
            assert set(answer) == {"error", "id"} and answer["id"] == req_id
            assert answer["error"]["code"] == code
            assert answer["error"]["msg"].startswith(msg_start)
            listed = await reply(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
            assert listed["result"] == []  # nothing was subscribed

    run(scenario())


def test_combined_property_switches_the_payload_form(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws") as ws:
            got = await reply(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 1})
            assert got == {"result": False, "id": 1}
            assert await reply(
                ws, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 2}
            ) == {"result": None, "id": 2}
            await reply(ws, {"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 3})
            msg = await recv_json(ws)
            assert msg["stream"] == "ethusdt@bookTicker" and msg["data"]["s"] == "ETHUSDT"
        async with dial(sim, "/binance/stream") as ws:
            got = await reply(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 1})
            assert got == {"result": True, "id": 1}

    run(scenario())


def test_unknown_symbol_is_accepted_and_silent(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws") as ws:
            sub = {"method": "SUBSCRIBE", "params": ["dogeusdt@trade", "dogeusdt@depth@100ms"]}
            assert await reply(ws, {**sub, "id": 1}) == {"result": None, "id": 1}
            assert await quiet(ws, 1.5) == []

    run(scenario())


# -- streams ----------------------------------------------------------------------------------

TICKER_KEYS = set("eEspPwxcQbBaAohlvqOCFLn")


def check_shape(name: str, data: dict[str, Any]) -> None:
    """Assert the documented payload of stream ``name``."""
    match = STREAM_NAME.fullmatch(name)
    assert match is not None
    kind = match["kind"]
    symbol = match["sym"].upper()
    if kind == "trade":
        assert {"e", "E", "s", "t", "p", "q", "T", "m", "M"} <= set(data)
        assert data["e"] == "trade" and data["s"] == symbol and data["T"] <= data["E"]
    elif kind == "aggTrade":
        assert data["e"] == "aggTrade" and data["f"] <= data["l"]
    elif kind == "ticker":
        assert set(data) == TICKER_KEYS and data["e"] == "24hrTicker"
    elif kind == "bookTicker":
        assert set(data) == {"u", "s", "b", "B", "a", "A"}  # no event time
    elif match["levels"]:
        assert set(data) == {"lastUpdateId", "bids", "asks"}  # no E, no symbol
        assert len(data["bids"]) == len(data["asks"]) == int(match["levels"])
    else:
        assert data["e"] == "depthUpdate" and data["U"] <= data["u"] and data["s"] == symbol
        assert {"E", "b", "a"} <= set(data)


ALL_FORMS = [
    "btcusdt@trade",
    "ethusdt@aggTrade",
    "btcusdt@ticker",
    "ethusdt@bookTicker",
    "btcusdt@depth5",
    "ethusdt@depth10@100ms",
    "btcusdt@depth20@1000ms",
    "ethusdt@depth",
    "btcusdt@depth@100ms",
    "ethusdt@depth@1000ms",
]


def test_every_stream_form_emits_its_documented_shape(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    async def scenario() -> None:
        path = "/binance/stream?streams=" + "/".join(ALL_FORMS)
        seen: set[str] = set()
        async with dial(sim, path) as ws:
            async with asyncio.timeout(15):
                while seen != set(ALL_FORMS):
                    msg = await recv_json(ws)
                    check_shape(msg["stream"], msg["data"])
                    seen.add(msg["stream"])

    run(scenario())


def test_event_times_are_send_times(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws/btcusdt@trade") as ws:
            for _ in range(20):
                data = await recv_json(ws)
                received_ms = time.time() * 1000
                assert data["E"] <= received_ms + 1  # never in the future
                assert isinstance(data["E"], int)

    run(scenario())


def test_trade_ids_are_consecutive(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws/ethusdt@trade") as ws:
            ids = [(await recv_json(ws))["t"] for _ in range(30)]
            assert ids == list(range(ids[0], ids[0] + 30))

    run(scenario())


# -- book sync --------------------------------------------------------------------------------


def apply(book: dict[str, str], changes: list[list[str]]) -> None:
    for price, qty in changes:
        if float(qty) == 0:
            book.pop(price, None)
        else:
            book[price] = qty


async def synced_book(
    sim: SimulatorServer, symbol: str, speed: str, depth: int, events_after: int
) -> None:
    """Follow [BN-WS §How to manage a local order book correctly] and compare the local book
    with a later REST snapshot at the same update id."""
    stream = f"{symbol.lower()}@depth{speed}"
    async with (
        dial(sim, f"/binance/ws/{stream}") as ws,
        httpx.AsyncClient(base_url=sim.url, trust_env=False, timeout=10) as http,
    ):
        buffered = [await recv_json(ws)]
        first_u = buffered[0]["U"]
        while True:
            snap = (await http.get(f"/binance/api/v3/depth?symbol={symbol}&limit={depth}")).json()
            if snap["lastUpdateId"] >= first_u:
                break
        last_id = snap["lastUpdateId"]
        bids = {p: q for p, q in snap["bids"]}
        asks = {p: q for p, q in snap["asks"]}
        # the snapshot's id belongs to the first event after it
        while buffered[-1]["u"] <= last_id:
            buffered.append(await recv_json(ws))
        events = [e for e in buffered if e["u"] > last_id]
        assert events[0]["U"] <= last_id <= events[0]["u"]
        book_id = last_id
        applied = 0
        while applied < events_after:
            event = events.pop(0) if events else await recv_json(ws)
            if book_id != last_id:
                assert event["U"] == book_id + 1  # no gap
            apply(bids, event["b"])
            apply(asks, event["a"])
            book_id = event["u"]
            applied += 1
        # a REST snapshot whose id is this event's u + 1 has exactly this book
        while True:
            later = (await http.get(f"/binance/api/v3/depth?symbol={symbol}&limit={depth}")).json()
            if later["lastUpdateId"] - 1 < book_id:
                await asyncio.sleep(0.02)
                continue
            while later["lastUpdateId"] - 1 > book_id:  # catch the stream up with the snapshot
                event = await recv_json(ws)
                assert event["U"] == book_id + 1
                apply(bids, event["b"])
                apply(asks, event["a"])
                book_id = event["u"]
            if later["lastUpdateId"] - 1 == book_id:
                break
            # Under load one diff event can carry several updates, and the snapshot's id fell
            # inside its U..u range: no event ends there, so compare with a newer snapshot.
        assert later["lastUpdateId"] - 1 == book_id
        local_bids = sorted(bids.items(), key=lambda x: -float(x[0]))[:depth]
        local_asks = sorted(asks.items(), key=lambda x: float(x[0]))[:depth]
        assert [list(x) for x in local_bids] == later["bids"]
        assert [list(x) for x in local_asks] == later["asks"]


@pytest.mark.parametrize(
    ("symbol", "speed", "depth"),
    [
        ("BTCUSDT", "@100ms", Binance.diff_depth),
        ("ETHUSDT", "@100ms", Binance.diff_depth),
        ("ETHUSDT", "", Binance.diff_depth),
    ],
)
def test_rest_snapshot_plus_diffs_match_later_snapshot(
    sim: SimulatorServer, client: httpx.Client, symbol: str, speed: str, depth: int
) -> None:
    run(synced_book(sim, symbol, speed, depth, events_after=3 if speed == "" else 15))


def test_diff_event_ids_follow_the_market(sim: SimulatorServer, client: httpx.Client) -> None:
    async def scenario() -> None:
        async with dial(sim, "/binance/ws/btcusdt@depth@100ms") as ws:
            event = await recv_json(ws)
            tick = event["E"] // TICK_MS
            ids = {sim.market.view("binance", (tick + d) * TICK_MS).update_id for d in (-1, 0)}
            assert event["u"] in ids

    run(scenario())
