"""The simulator's Bybit v5 public spot WebSocket dialect, driven through a fake session (no
sockets), plus one end-to-end subscription through a real ``websockets`` client."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
from websockets.sync.client import connect

from simulator import SimulatorServer
from simulator.market import TICK_MS, Market
from simulator.ws.dialects.bybit import Dialect

T0 = 1_780_000_000_000  # a fixed instant: the market model is a pure function of time


class FakeSession:
    """Records what the dialect sends; the clock and the fault are set by the test."""

    exchange = "bybit"

    def __init__(self, market: Market, now_ms: int = T0) -> None:
        self.market = market
        self.now = now_ms
        self.data: list[tuple[str | None, dict[str, Any]]] = []
        self.control: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.current_fault: dict[str, object] | None = None

    def send_text(self, text: str, channel: str | None = None) -> None:
        self.data.append((channel, json.loads(text)))

    def send_control_text(self, text: str) -> None:
        self.control.append(json.loads(text))

    def send_ping(self, payload: bytes = b"") -> None:
        raise AssertionError("Bybit sends no protocol pings")

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    def now_ms(self) -> int:
        return self.now

    def fault(self) -> Mapping[str, object] | None:
        return self.current_fault


@pytest.fixture(scope="module")
def market() -> Market:
    return Market()


def make(market: Market, path: str = "/v5/public/spot") -> tuple[Dialect, FakeSession]:
    session = FakeSession(market)
    return Dialect(session, path, {}), session


def step(dialect: Dialect, session: FakeSession, ticks: int = 1) -> None:
    for _ in range(ticks):
        session.now += TICK_MS
        dialect.on_tick(session.now)


def send(dialect: Dialect, **msg: Any) -> None:
    dialect.on_text(json.dumps(msg))


def topic_data(session: FakeSession, topic: str) -> list[dict[str, Any]]:
    return [b for _, b in session.data if b["topic"] == topic]


# -- subscribe / ack / error bodies [BY-CONNECT] -------------------------------------------

TOPICS = [
    "tickers.BTCUSDT",
    "tickers.ETHUSDT",
    "publicTrade.BTCUSDT",
    "publicTrade.ETHUSDT",
    "orderbook.1.BTCUSDT",
    "orderbook.50.BTCUSDT",
    "orderbook.200.ETHUSDT",
    "orderbook.1000.BTCUSDT",
]


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_form_is_acknowledged(market: Market, topic: str) -> None:
    dialect, session = make(market)
    send(dialect, req_id="test", op="subscribe", args=[topic])
    assert session.control == [
        {
            "success": True,
            "ret_msg": "subscribe",
            "conn_id": dialect.conn_id,
            "req_id": "test",
            "op": "subscribe",
        }
    ]
    step(dialect, session, 12)
    assert topic_data(session, topic), "a subscribed topic sends data"


def test_one_ack_for_a_multi_topic_request_and_no_req_id_when_none(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, op="subscribe", args=TOPICS)
    assert session.control == [
        {"success": True, "ret_msg": "subscribe", "conn_id": dialect.conn_id, "op": "subscribe"}
    ]
    assert set(dialect.topics) == set(TOPICS)


def test_unsubscribe(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, op="subscribe", args=["tickers.BTCUSDT"])
    send(dialect, op="unsubscribe", args=["tickers.BTCUSDT"], req_id="customised_id")
    assert session.control[-1] == {
        "success": True,
        "ret_msg": "unsubscribe",
        "conn_id": dialect.conn_id,
        "req_id": "customised_id",
        "op": "unsubscribe",
    }
    step(dialect, session, 3)
    assert session.data == []


@pytest.mark.parametrize(
    "topic",
    ["orderbook.50.NOTREALUSDT", "orderbook.25.BTCUSDT", "tickers.BTC-USDT", "kline.1.BTCUSDT"],
)
def test_bad_topic_is_the_observed_invalid_symbol_error(market: Market, topic: str) -> None:
    dialect, session = make(market)
    send(dialect, op="subscribe", args=[topic])
    assert session.control == [
        {
            "success": False,
            "ret_msg": f"Invalid symbol :[{topic}]",
            "conn_id": dialect.conn_id,
            "op": "subscribe",
        }
    ]
    assert dialect.topics == {}


def test_bad_op_is_the_observed_invalid_op_error(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, op="")
    assert session.control == [
        {
            "success": False,
            "ret_msg": "error:invalid op",
            "conn_id": dialect.conn_id,
            "request": {"op": "", "args": None},
        }
    ]


def test_spot_allows_at_most_10_args(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, op="subscribe", args=[f"orderbook.{d}.BTCUSDT" for d in (1, 50, 200)] * 4)
    assert session.control[0]["success"] is False
    assert dialect.topics == {}


def test_ws_reject_narrowed_to_book_refuses_requests_naming_a_book(market: Market) -> None:
    dialect, session = make(market)
    session.current_fault = {"fault": "ws_reject", "channel": "book"}
    send(dialect, op="subscribe", args=["tickers.BTCUSDT"])
    send(dialect, op="subscribe", args=["publicTrade.BTCUSDT", "orderbook.50.BTCUSDT"])
    assert [c["success"] for c in session.control] == [True, False]
    assert session.control[1]["ret_msg"] == "Invalid symbol :[orderbook.50.BTCUSDT]"
    assert list(dialect.topics) == ["tickers.BTCUSDT"]


def test_ws_reject_refuses_subscriptions(market: Market) -> None:
    dialect, session = make(market)
    session.current_fault = {"fault": "ws_reject"}
    send(dialect, op="subscribe", args=["tickers.BTCUSDT"])
    assert session.control == [
        {
            "success": False,
            "ret_msg": "Invalid symbol :[tickers.BTCUSDT]",
            "conn_id": dialect.conn_id,
            "op": "subscribe",
        }
    ]


# -- keep-alive [BY-CONNECT §How to Send the Heartbeat Packet] ------------------------------


def test_ping_pong_spot_body(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, req_id="100001", op="ping")
    assert session.control == [
        {"success": True, "ret_msg": "pong", "conn_id": dialect.conn_id, "op": "ping"}
    ]


def test_keepalive_rule_values() -> None:
    assert Dialect.idle_close_s == 600.0
    assert Dialect.keepalive.idle_timeout is None  # enforced by the dialect: pings or data


def test_no_ping_and_no_data_for_10_minutes_closes(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Dialect, "idle_close_s", 3.0)
    dialect, session = make(market)
    step(dialect, session, 25)
    send(dialect, op="ping")
    step(dialect, session, 25)
    assert session.closed is None
    step(dialect, session, 10)
    assert session.closed == (1000, "")


def test_data_alone_keeps_the_connection(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Dialect, "idle_close_s", 3.0)
    dialect, session = make(market)
    send(dialect, op="subscribe", args=["tickers.BTCUSDT"])
    step(dialect, session, 100)
    assert session.closed is None
    session.current_fault = {"fault": "ws_stall"}  # no data delivered, no pings: cut
    step(dialect, session, 40)
    assert session.closed == (1000, "")


# -- data ----------------------------------------------------------------------------------


class LocalBook:
    """A client's book: a ``snapshot`` replaces it, a ``delta`` applies (size 0 deletes)."""

    def __init__(self) -> None:
        self.b: dict[str, str] = {}
        self.a: dict[str, str] = {}
        self.u: int | None = None

    def apply(self, msg: dict[str, Any]) -> bool:
        """Apply; True when ``u`` follows the previous one (+1, or a snapshot)."""
        data = msg["data"]
        if msg["type"] == "snapshot":
            ok = self.u is None or data["u"] in (self.u, self.u + 1)
            self.b = dict(map(tuple, data["b"]))
            self.a = dict(map(tuple, data["a"]))
        else:
            ok = data["u"] == (self.u or 0) + 1
            for side, rows in ((self.b, data["b"]), (self.a, data["a"])):
                for price, size in rows:
                    if float(size) == 0:
                        side.pop(price, None)
                    else:
                        side[price] = size
        self.u = data["u"]
        return ok

    def levels(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        return (
            sorted(self.b.items(), key=lambda kv: -float(kv[0])),
            sorted(self.a.items(), key=lambda kv: float(kv[0])),
        )


@pytest.mark.parametrize(("depth", "every"), [(50, 1), (200, 1), (1000, 2)])
def test_orderbook_stream_keeps_a_correct_local_book(
    market: Market, depth: int, every: int
) -> None:
    dialect, session = make(market)
    topic = f"orderbook.{depth}.BTCUSDT"
    send(dialect, op="subscribe", args=[topic])
    book = LocalBook()
    seqs: list[int] = []
    applied = 0
    for _ in range(300):
        step(dialect, session)
        for msg in topic_data(session, topic):
            assert book.apply(msg), msg["data"]["u"]
            assert msg["ts"] == session.now and msg["cts"] <= msg["ts"]
            seqs.append(msg["data"]["seq"])
            applied += 1
        session.data.clear()
        if session.now // TICK_MS % every == 0 and applied:
            rest_b, rest_a = market.view("bybit", session.now, "BTC/USDT").levels(depth)
            bids, asks = book.levels()
            assert bids == [(p, q) for p, q, _, _ in rest_b]
            assert asks == [(p, q) for p, q, _, _ in rest_a]
    assert applied > 300 // every // 2
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_first_book_message_is_a_snapshot_then_deltas(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, op="subscribe", args=["orderbook.50.ETHUSDT"])
    step(dialect, session, 20)
    msgs = topic_data(session, "orderbook.50.ETHUSDT")
    assert msgs[0]["type"] == "snapshot" and len(msgs[0]["data"]["b"]) == 50
    assert {m["type"] for m in msgs[1:]} == {"delta"}
    assert set(msgs[0]) == {"topic", "type", "ts", "data", "cts"}
    assert set(msgs[0]["data"]) == {"s", "b", "a", "u", "seq"}
    assert msgs[0]["data"]["s"] == "ETHUSDT" and msgs[0]["data"]["u"] != 1
    assert all(ch == "book" for ch, _ in session.data)


def test_level1_is_snapshot_only_and_repushed_with_the_same_u(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, op="subscribe", args=["orderbook.1.BTCUSDT"])
    step(dialect, session, 300)
    msgs = topic_data(session, "orderbook.1.BTCUSDT")
    assert {m["type"] for m in msgs} == {"snapshot"}
    book = LocalBook()
    assert all(book.apply(m) for m in msgs)
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(msgs)]
    assert max(gaps) <= 3000


def test_ws_gap_makes_u_jump(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Dialect, "gap_every", 4)
    dialect, session = make(market)
    send(dialect, op="subscribe", args=["orderbook.50.BTCUSDT"])
    book = LocalBook()
    step(dialect, session, 5)
    assert all(book.apply(m) for m in topic_data(session, "orderbook.50.BTCUSDT"))
    session.data.clear()
    session.current_fault = {"fault": "ws_gap", "channel": "book"}
    step(dialect, session, 40)
    msgs = topic_data(session, "orderbook.50.BTCUSDT")
    results = [book.apply(m) for m in msgs]
    assert results[0] is False and results.count(False) >= 5
    us = [m["data"]["u"] for m in msgs]
    assert {b - a for a, b in itertools.pairwise(us)} == {1, 2}  # one delta lost each


def test_trades_are_continuous_and_documented(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, op="subscribe", args=["publicTrade.BTCUSDT"])
    step(dialect, session, 100)
    trades = [t for b in topic_data(session, "publicTrade.BTCUSDT") for t in b["data"]]
    assert len(trades) > 50
    ids = [int(t["i"]) for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert set(trades[0]) == {"T", "s", "S", "v", "p", "L", "i", "BT", "seq"}
    assert all(
        t["T"] <= b["ts"] for b in topic_data(session, "publicTrade.BTCUSDT") for t in b["data"]
    )
    assert all(ch == "trades" for ch, _ in session.data)


def test_ticker_matches_rest_values(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, op="subscribe", args=["tickers.ETHUSDT"])
    step(dialect, session)
    ((channel, body),) = session.data
    v = market.view("bybit", session.now, "ETH/USDT")
    assert channel == "ticker" and body["type"] == "snapshot" and body["ts"] == session.now
    assert body["data"]["symbol"] == "ETHUSDT" and body["data"]["lastPrice"] == v.price(v.last)
    assert isinstance(body["cs"], int)


def test_maintenance_notice_on_the_status_stream_only(market: Market) -> None:
    spot, _ = make(market)
    assert spot.maintenance_notice() is None
    status, session = make(market, "/v5/public/misc/status")
    send(status, op="subscribe", args=["system.status"])
    assert session.control[0]["success"] is True
    notice = status.maintenance_notice()
    assert notice is not None
    body = json.loads(notice)
    assert body["topic"] == "system.status" and body["ts"] == session.now
    (record,) = body["data"]
    assert record["state"] == "ongoing" and 5 in record["serviceTypes"]
    assert set(record) == {
        "id", "title", "state", "begin", "end", "href", "serviceTypes", "product",
        "uidSuffix", "maintainType", "env",
    }  # fmt: skip


def test_two_connections_subscribed_at_different_ticks_both_stay_correct(market: Market) -> None:
    (d1, s1), (d2, s2) = make(market), make(market)
    send(d1, op="subscribe", args=["orderbook.200.ETHUSDT"])
    books = [LocalBook(), LocalBook()]
    for i in range(120):
        if i == 7:
            send(d2, op="subscribe", args=["orderbook.200.ETHUSDT"])
        for n, (d, s) in enumerate(((d1, s1), (d2, s2))):
            step(d, s)
            for msg in topic_data(s, "orderbook.200.ETHUSDT"):
                assert books[n].apply(msg)
            s.data.clear()
    assert books[0].levels() == books[1].levels()


# -- end to end: a real websockets client against the in-thread simulator ---------------------


@pytest.mark.e2e
def test_e2e_ticker_trades_and_book(sim: SimulatorServer) -> None:
    url = sim.url.replace("http://", "ws://", 1) + "/bybit/v5/public/spot"
    topics = ["tickers.BTCUSDT", "publicTrade.BTCUSDT", "orderbook.50.ETHUSDT"]
    with connect(url, open_timeout=30) as ws:
        ws.send(json.dumps({"req_id": "e2e", "op": "subscribe", "args": topics}))
        ws.send(json.dumps({"req_id": "p", "op": "ping"}))
        control: list[dict[str, Any]] = []
        seen: set[str] = set()
        book = LocalBook()
        books = 0
        deadline = time.monotonic() + 60
        while len(seen) < 3 or books < 10 or len(control) < 2:
            assert time.monotonic() < deadline, f"only {seen} / {books} book messages"
            msg = json.loads(ws.recv(timeout=60))
            if "topic" not in msg:
                control.append(msg)
                continue
            seen.add(msg["topic"])
            if msg["topic"] == "orderbook.50.ETHUSDT":
                assert book.apply(msg)
                books += 1
        assert [(c["op"], c["success"]) for c in control] == [("subscribe", True), ("ping", True)]
