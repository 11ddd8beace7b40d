"""The simulator's Kraken spot WebSocket v2 dialect, driven through a fake session (no sockets),
plus one end-to-end subscription through a real ``websockets`` client."""

from __future__ import annotations

import itertools
import json
import time
import zlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from websockets.sync.client import connect

from simulator import SimulatorServer
from simulator.market import TICK_MS, Market
from simulator.ws.dialects.kraken import Dialect
from simulator.ws.dialects.kraken_book import kraken_checksum

T0 = 1_780_000_000_000  # a fixed instant: the market model is a pure function of time


class FakeSession:
    """Records what the dialect sends; the clock and the fault are set by the test."""

    exchange = "kraken"

    def __init__(self, market: Market, now_ms: int = T0) -> None:
        self.market = market
        self.now = now_ms
        self.data: list[tuple[str | None, str]] = []
        self.control: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.current_fault: dict[str, object] | None = None

    def send_text(self, text: str, channel: str | None = None) -> None:
        self.data.append((channel, text))

    def send_control_text(self, text: str) -> None:
        self.control.append(json.loads(text))

    def send_ping(self, payload: bytes = b"") -> None:
        raise AssertionError("Kraken sends no protocol pings")

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    def now_ms(self) -> int:
        return self.now

    def fault(self) -> Mapping[str, object] | None:
        return self.current_fault


@pytest.fixture(scope="module")
def market() -> Market:
    return Market()


def make(market: Market) -> tuple[Dialect, FakeSession]:
    session = FakeSession(market)
    dialect = Dialect(session, "/v2", {})
    dialect.on_open()
    return dialect, session


def step(dialect: Dialect, session: FakeSession, ticks: int = 1) -> None:
    for _ in range(ticks):
        session.now += TICK_MS
        dialect.on_tick(session.now)


def send(dialect: Dialect, **msg: Any) -> None:
    dialect.on_text(json.dumps(msg))


def decoded(session: FakeSession, channel: str) -> list[dict[str, Any]]:
    """Data messages of one channel, numbers kept as Decimal (as a careful client parses)."""
    return [
        json.loads(text, parse_float=Decimal)
        for ch, text in session.data
        if json.loads(text)["channel"] == channel
    ]


# -- checksum [KR-CKS2 §Algorithm] ---------------------------------------------------------


def test_checksum_example_step() -> None:
    # price 45285.2 → 452852, qty 0.00100000 → 100000, level string 452852100000
    assert kraken_checksum([], [("45285.2", "0.00100000")]) == zlib.crc32(b"452852100000")


def test_checksum_is_asks_low_to_high_then_bids_high_to_low_top_10() -> None:
    asks = [(f"{100 + i}.5", "0.01000000") for i in range(12)]
    bids = [(f"{99 - i}.5", "1.50000000") for i in range(12)]
    text = "".join(f"{100 + i}5" + "1000000" for i in range(10))
    text += "".join(f"{99 - i}5" + "150000000" for i in range(10))
    assert kraken_checksum(bids, asks) == zlib.crc32(text.encode())
    assert kraken_checksum(bids, asks) >= 0  # unsigned


# -- connect, ping, heartbeat [KR-STATUS2; KR-PING2; KR-HB2] --------------------------------


def test_status_on_connect(market: Market) -> None:
    dialect, session = make(market)
    assert session.control == [
        {
            "channel": "status",
            "type": "update",
            "data": [
                {
                    "api_version": "v2",
                    "connection_id": dialect.connection_id,
                    "system": "online",
                    "version": "2.0.0",
                }
            ],
        }
    ]


def test_ping_pong_with_times(market: Market) -> None:
    dialect, session = make(market)
    session.control.clear()
    send(dialect, method="ping", req_id=101)
    (pong,) = session.control
    assert list(pong) == ["method", "req_id", "time_in", "time_out"]
    assert pong["method"] == "pong" and pong["req_id"] == 101
    assert pong["time_in"].endswith("Z") and pong["time_in"] <= pong["time_out"]


def test_keepalive_requires_nothing() -> None:
    rule = Dialect.keepalive
    assert rule.idle_timeout is None and rule.subscribe_deadline is None
    assert rule.server_ping_interval is None


def test_heartbeat_about_once_a_second_when_idle(market: Market) -> None:
    dialect, session = make(market)
    session.control.clear()
    step(dialect, session, 30)
    assert session.control == []  # nothing subscribed: no heartbeat
    send(
        dialect,
        method="subscribe",
        params={"channel": "trade", "symbol": ["BTC/USD"], "snapshot": False},
    )
    session.control.clear()
    session.current_fault = {"fault": "ws_stall"}
    step(dialect, session, 50)
    beats = [c for c in session.control if c == {"channel": "heartbeat"}]
    assert 4 <= len(beats) <= 5


# -- subscribe / ack / error bodies [KR-BOOK2; KR-TICK2] ------------------------------------


@pytest.mark.parametrize("depth", [10, 25, 100, 500, 1000])
def test_book_ack_one_per_symbol(market: Market, depth: int) -> None:
    dialect, session = make(market)
    session.control.clear()
    send(
        dialect,
        method="subscribe",
        params={
            "channel": "book",
            "symbol": ["BTC/USD", "ETH/USD"],
            "depth": depth,
            "snapshot": True,
        },
    )
    acks = session.control
    assert [list(a) for a in acks] == [["method", "result", "success", "time_in", "time_out"]] * 2
    assert [a["result"] for a in acks] == [
        {"channel": "book", "depth": depth, "snapshot": True, "symbol": "BTC/USD"},
        {"channel": "book", "depth": depth, "snapshot": True, "symbol": "ETH/USD"},
    ]
    assert all(a["method"] == "subscribe" and a["success"] is True for a in acks)


@pytest.mark.parametrize("channel", ["ticker", "trade", "book"])
def test_req_id_is_echoed_and_every_channel_sends(market: Market, channel: str) -> None:
    dialect, session = make(market)
    session.control.clear()
    send(dialect, method="subscribe", params={"channel": channel, "symbol": ["ETH/USD"]}, req_id=7)
    (ack,) = session.control
    assert ack["req_id"] == 7 and ack["success"] is True and ack["result"]["channel"] == channel
    step(dialect, session, 10)
    assert decoded(session, channel)
    kind = {"ticker": "ticker", "trade": "trades", "book": "book"}[channel]
    assert {ch for ch, _ in session.data} == {kind}


def test_unknown_pair_is_the_observed_error(market: Market) -> None:
    dialect, session = make(market)
    session.control.clear()
    send(
        dialect, method="subscribe", params={"channel": "ticker", "symbol": ["XBT/USD", "BTC/USD"]}
    )
    error, ack = session.control
    assert list(error) == ["error", "method", "success", "symbol", "time_in", "time_out"]
    assert error["error"] == "Currency pair not supported XBT/USD"
    assert error["success"] is False and error["symbol"] == "XBT/USD"
    assert ack["success"] is True and ack["result"]["symbol"] == "BTC/USD"


def test_already_subscribed_and_unsubscribe(market: Market) -> None:
    dialect, session = make(market)
    params = {"channel": "ticker", "symbol": ["BTC/USD"]}
    send(dialect, method="subscribe", params=params)
    session.control.clear()
    send(dialect, method="subscribe", params=params)
    assert session.control[0]["error"] == "Already subscribed"
    send(dialect, method="unsubscribe", params=params)
    assert session.control[1]["success"] is True and session.control[1]["method"] == "unsubscribe"
    assert dialect.subs == {}


def test_bad_depth_is_refused(market: Market) -> None:
    dialect, session = make(market)
    session.control.clear()
    send(
        dialect, method="subscribe", params={"channel": "book", "symbol": ["BTC/USD"], "depth": 20}
    )
    assert session.control[0]["success"] is False and dialect.subs == {}


def test_ws_reject(market: Market) -> None:
    dialect, session = make(market)
    session.control.clear()
    session.current_fault = {"fault": "ws_reject"}
    send(dialect, method="subscribe", params={"channel": "book", "symbol": ["BTC/USD"]})
    assert session.control[0]["error"] == "Currency pair not supported BTC/USD"


# -- data ----------------------------------------------------------------------------------


class LocalBook:
    """A client's v2 book per [KR-CKS2 §Maintaining the book]: apply in order, qty 0 removes,
    truncate to the depth, then compare the checksum using the full-precision texts."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, msg: dict[str, Any]) -> bool:
        (data,) = msg["data"]
        if msg["type"] == "snapshot":
            self.bids, self.asks = {}, {}
        for side, rows in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for row in rows:
                if row["qty"] == 0:
                    side.pop(row["price"], None)
                else:
                    side[row["price"]] = row["qty"]
        self.bids = dict(sorted(self.bids.items(), reverse=True)[: self.depth])
        self.asks = dict(sorted(self.asks.items())[: self.depth])
        bids = [(str(p), str(q)) for p, q in self.bids.items()]
        asks = [(str(p), str(q)) for p, q in self.asks.items()]
        return bool(data["checksum"] == kraken_checksum(bids, asks))


@pytest.mark.parametrize(
    ("symbol", "depth"), [("BTC/USD", 10), ("ETH/USD", 25), ("BTC/USD", 100), ("ETH/USD", 1000)]
)
def test_book_stream_keeps_a_correct_local_book(market: Market, symbol: str, depth: int) -> None:
    dialect, session = make(market)
    send(
        dialect, method="subscribe", params={"channel": "book", "symbol": [symbol], "depth": depth}
    )
    book = LocalBook(depth)
    applied = 0
    for _ in range(300):
        step(dialect, session)
        for msg in decoded(session, "book"):
            assert book.apply(msg)
            applied += 1
        session.data.clear()
        rest_b, rest_a = market.view("kraken", session.now, symbol).levels(depth)
        assert [(p, q) for p, q in book.bids.items()] == [
            (Decimal(p), Decimal(q)) for p, q, _, _ in rest_b
        ]
        assert [(p, q) for p, q in book.asks.items()] == [
            (Decimal(p), Decimal(q)) for p, q, _, _ in rest_a
        ]
    assert applied > 30


def test_book_messages_use_full_precision_numbers(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, method="subscribe", params={"channel": "book", "symbol": ["BTC/USD"]})
    step(dialect, session, 30)
    snapshot = json.loads(session.data[0][1])
    assert snapshot["type"] == "snapshot" and list(snapshot["data"][0]) == [
        "symbol",
        "bids",
        "asks",
        "checksum",
    ]
    level = snapshot["data"][0]["bids"][0]
    assert isinstance(level["price"], float) and isinstance(level["qty"], float)
    raw = session.data[0][1]
    qty_text = raw.split('"qty":', 1)[1].split("}", 1)[0]
    assert len(qty_text.partition(".")[2]) == 8  # trailing zeros kept
    price_text = raw.split('"price":', 1)[1].split(",", 1)[0]
    assert len(price_text.partition(".")[2]) == 1  # BTC/USD price precision
    updates = [json.loads(t) for _, t in session.data[1:]]
    assert updates and all(
        list(u["data"][0]) == ["symbol", "bids", "asks", "checksum", "timestamp"] for u in updates
    )


def test_ws_checksum_sends_wrong_checksums(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, method="subscribe", params={"channel": "book", "symbol": ["BTC/USD"]})
    book = LocalBook(10)
    step(dialect, session, 5)
    assert all(book.apply(m) for m in decoded(session, "book"))
    session.data.clear()
    session.current_fault = {"fault": "ws_checksum"}
    step(dialect, session, 40)
    msgs = decoded(session, "book")
    assert msgs and not any(book.apply(m) for m in msgs)


def test_ws_gap_shows_as_a_checksum_mismatch(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Dialect, "gap_every", 1000)  # one lost update
    dialect, session = make(market)
    send(dialect, method="subscribe", params={"channel": "book", "symbol": ["BTC/USD"]})
    book = LocalBook(10)
    step(dialect, session, 5)
    assert all(book.apply(m) for m in decoded(session, "book"))
    session.data.clear()
    session.current_fault = {"fault": "ws_gap", "channel": "book"}
    step(dialect, session, 40)
    results = [book.apply(m) for m in decoded(session, "book")]
    assert results and results[0] is False


def test_trades_snapshot_then_continuous_ids(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, method="subscribe", params={"channel": "trade", "symbol": ["BTC/USD"]})
    step(dialect, session, 200)
    msgs = decoded(session, "trade")
    assert msgs[0]["type"] == "snapshot" and len(msgs[0]["data"]) == 50
    trades = [t for m in msgs for t in m["data"]]
    ids = [t["trade_id"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert list(trades[0]) == [
        "symbol",
        "side",
        "price",
        "qty",
        "ord_type",
        "trade_id",
        "timestamp",
    ]


def test_ws_gap_on_trades_skips_trade_ids(market: Market) -> None:
    dialect, session = make(market)
    send(
        dialect,
        method="subscribe",
        params={"channel": "trade", "symbol": ["BTC/USD"], "snapshot": False},
    )
    step(dialect, session, 10)
    session.current_fault = {"fault": "ws_gap", "channel": "trades"}
    step(dialect, session, 100)
    ids = [t["trade_id"] for m in decoded(session, "trade") for t in m["data"]]
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))


@pytest.mark.parametrize("trigger", ["trades", "bbo"])
def test_ticker_snapshot_then_updates(market: Market, trigger: str) -> None:
    dialect, session = make(market)
    send(
        dialect,
        method="subscribe",
        params={"channel": "ticker", "symbol": ["BTC/USD"], "event_trigger": trigger},
    )
    step(dialect, session, 40)
    msgs = decoded(session, "ticker")
    assert msgs[0]["type"] == "snapshot" and {m["type"] for m in msgs[1:]} == {"update"}
    item = msgs[-1]["data"][0]
    v = market.view("kraken", session.now, "BTC/USD")
    assert item["bid"] == Decimal(v.price(v.best_bid)) and item["symbol"] == "BTC/USD"
    assert {
        "bid",
        "bid_qty",
        "ask",
        "ask_qty",
        "last",
        "volume",
        "vwap",
        "low",
        "high",
        "change",
        "change_pct",
    } <= set(item)


def test_maintenance_notice_is_status_maintenance(market: Market) -> None:
    dialect, _ = make(market)
    notice = dialect.maintenance_notice()
    assert notice is not None
    body = json.loads(notice)
    assert body["channel"] == "status" and body["data"][0]["system"] == "maintenance"


def test_status_online_again_when_maintenance_ends(market: Market) -> None:
    dialect, session = make(market)
    session.control.clear()
    session.current_fault = {"fault": "ws_maintenance_notice"}
    dialect.maintenance_notice()
    step(dialect, session, 3)
    assert session.control == []
    session.current_fault = None
    step(dialect, session)
    (status,) = session.control
    assert status["channel"] == "status" and status["data"][0]["system"] == "online"


def test_two_connections_subscribed_at_different_ticks_both_stay_correct(market: Market) -> None:
    (d1, s1), (d2, s2) = make(market), make(market)
    params = {"channel": "book", "symbol": ["ETH/USD"], "depth": 25}
    send(d1, method="subscribe", params=params)
    books = [LocalBook(25), LocalBook(25)]
    for i in range(120):
        if i == 7:
            send(d2, method="subscribe", params=params)
        for n, (d, s) in enumerate(((d1, s1), (d2, s2))):
            step(d, s)
            for msg in decoded(s, "book"):
                assert books[n].apply(msg)
            s.data.clear()
    assert books[0].bids == books[1].bids and books[0].asks == books[1].asks


# -- end to end: a real websockets client against the in-thread simulator ---------------------


@pytest.mark.e2e
def test_e2e_ticker_trades_and_book(sim: SimulatorServer) -> None:
    url = sim.url.replace("http://", "ws://", 1) + "/kraken/v2"
    with connect(url, open_timeout=30) as ws:
        first = json.loads(ws.recv(timeout=60))
        assert first["channel"] == "status" and first["data"][0]["system"] == "online"
        for channel in ("ticker", "trade", "book"):
            params = {"channel": channel, "symbol": ["BTC/USD", "ETH/USD"]}
            ws.send(json.dumps({"method": "subscribe", "params": params, "req_id": 1}))
        ws.send(json.dumps({"method": "ping", "req_id": 2}))
        acks = 0
        pongs = 0
        seen: set[str] = set()
        books = {"BTC/USD": LocalBook(10), "ETH/USD": LocalBook(10)}
        checked = 0
        deadline = time.monotonic() + 60
        while acks < 6 or not pongs or len(seen) < 3 or checked < 10:
            assert time.monotonic() < deadline, f"{acks} acks, {seen}, {checked} books"
            msg = json.loads(ws.recv(timeout=60), parse_float=Decimal)
            if msg.get("method") == "subscribe":
                assert msg["success"] is True and msg["req_id"] == 1
                acks += 1
            elif msg.get("method") == "pong":
                pongs += 1
            elif msg.get("channel") in ("ticker", "trade", "book"):
                seen.add(msg["channel"])
                if msg["channel"] == "book":
                    assert books[msg["data"][0]["symbol"]].apply(msg)
                    checked += 1


@pytest.mark.parametrize("channel", ["ticker", "trade", "book"])
def test_snapshot_false_sends_updates_only(market: Market, channel: str) -> None:
    dialect, session = make(market)
    params = {"channel": channel, "symbol": ["BTC/USD"], "snapshot": False}
    send(dialect, method="subscribe", params=params)
    assert session.control[-1]["result"]["snapshot"] is False
    step(dialect, session, 60)
    msgs = decoded(session, channel)
    assert msgs and {m["type"] for m in msgs} == {"update"}
