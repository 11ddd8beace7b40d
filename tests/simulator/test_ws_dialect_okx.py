"""The simulator's OKX v5 public WebSocket dialect, driven through a fake session (no sockets),
plus one end-to-end subscription through a real ``websockets`` client."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from simulator import SimulatorServer
from simulator.market import TICK_MS, Market
from simulator.ws.dialects.okx import Dialect, okx_checksum

T0 = 1_780_000_000_000  # a fixed instant: the market model is a pure function of time


class FakeSession:
    """Records what the dialect sends; the clock and the fault are set by the test."""

    exchange = "okx"

    def __init__(self, market: Market, now_ms: int = T0) -> None:
        self.market = market
        self.now = now_ms
        self.data: list[tuple[str | None, dict[str, Any]]] = []
        self.control: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.current_fault: dict[str, object] | None = None

    def send_text(self, text: str, channel: str | None = None) -> None:
        self.data.append((channel, json.loads(text)))

    def send_control_text(self, text: str) -> None:
        self.control.append(text)

    def send_ping(self, payload: bytes = b"") -> None:
        raise AssertionError("OKX sends no protocol pings")

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
    return Dialect(session, "/ws/v5/public", {}), session


def step(dialect: Dialect, session: FakeSession, ticks: int = 1) -> None:
    for _ in range(ticks):
        session.now += TICK_MS
        dialect.on_tick(session.now)


def control(session: FakeSession) -> list[Any]:
    out = [text if text == "pong" else json.loads(text) for text in session.control]
    session.control.clear()
    return out


def subscribe(dialect: Dialect, *args: dict[str, str], req_id: str | None = None) -> None:
    msg: dict[str, Any] = {"op": "subscribe", "args": list(args)}
    if req_id is not None:
        msg["id"] = req_id
    dialect.on_text(json.dumps(msg))


# -- checksum vectors [OKX-MD §Checksum] ---------------------------------------------------


def test_checksum_vectors_from_the_docs() -> None:
    assert okx_checksum([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]) == (
        -1881014294
    )
    assert (
        okx_checksum([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")])
        == 831078360
    )


def test_checksum_uses_only_the_top_25_levels() -> None:
    bids = [(f"{100 - i}", "1") for i in range(30)]
    asks = [(f"{200 + i}", "1") for i in range(30)]
    assert okx_checksum(bids, asks) == okx_checksum(bids[:25], asks[:25])


# -- subscribe / ack / error bodies [OKX-OV §Subscribe; OKX-ERR] ---------------------------


@pytest.mark.parametrize("channel", ["tickers", "trades", "books", "books5", "bbo-tbt"])
@pytest.mark.parametrize("inst", ["BTC-USDT", "ETH-USDT"])
def test_every_channel_form_is_acknowledged(market: Market, channel: str, inst: str) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": channel, "instId": inst}, req_id="1512")
    assert control(session) == [
        {
            "id": "1512",
            "event": "subscribe",
            "arg": {"channel": channel, "instId": inst},
            "connId": dialect.conn_id,
        }
    ]
    step(dialect, session, 3)
    assert session.data, "a subscribed channel sends data"
    assert all(body["arg"] == {"channel": channel, "instId": inst} for _, body in session.data)


def test_one_ack_per_arg_and_no_id_when_none_given(market: Market) -> None:
    dialect, session = make(market)
    subscribe(
        dialect,
        {"channel": "tickers", "instId": "BTC-USDT"},
        {"channel": "books", "instId": "ETH-USDT"},
    )
    acks = control(session)
    assert [a["arg"]["channel"] for a in acks] == ["tickers", "books"]
    assert all("id" not in a and a["event"] == "subscribe" for a in acks)
    assert len(dialect.conn_id) == 8


def test_unsubscribe_ack_and_data_stops(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "tickers", "instId": "BTC-USDT"})
    dialect.on_text(
        json.dumps({"op": "unsubscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]})
    )
    assert control(session)[-1] == {
        "event": "unsubscribe",
        "arg": {"channel": "tickers", "instId": "BTC-USDT"},
        "connId": dialect.conn_id,
    }
    step(dialect, session, 3)
    assert session.data == []


def test_unknown_channel_or_instrument_is_error_60018(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "ticker", "instId": "BTC-USDT"}, req_id="7")
    subscribe(dialect, {"channel": "tickers", "instId": "BTC-USDX"})
    assert control(session) == [
        {
            "id": "7",
            "event": "error",
            "code": "60018",
            "msg": "Wrong URL or channel:ticker,instId:BTC-USDT doesn't exist",
            "connId": dialect.conn_id,
        },
        {
            "event": "error",
            "code": "60018",
            "msg": "Wrong URL or channel:tickers,instId:BTC-USDX doesn't exist",
            "connId": dialect.conn_id,
        },
    ]


def test_bad_request_is_error_60012(market: Market) -> None:
    dialect, session = make(market)
    text = '{"op": "subscribe", "argss": []}'
    dialect.on_text(text)
    dialect.on_text("not json")
    assert control(session) == [
        {
            "event": "error",
            "code": "60012",
            "msg": f"Invalid request: {text}",
            "connId": dialect.conn_id,
        },
        {
            "event": "error",
            "code": "60012",
            "msg": "Invalid request: not json",
            "connId": dialect.conn_id,
        },
    ]


@pytest.mark.parametrize("channel", ["books-l2-tbt", "books50-l2-tbt"])
def test_login_books_need_a_login(market: Market, channel: str) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": channel, "instId": "BTC-USDT"})
    assert control(session) == [
        {"event": "error", "code": "60011", "msg": "Please log in", "connId": dialect.conn_id}
    ]


def test_ws_reject_refuses_with_60018(market: Market) -> None:
    dialect, session = make(market)
    session.current_fault = {"fault": "ws_reject", "channel": "book"}
    subscribe(
        dialect,
        {"channel": "tickers", "instId": "BTC-USDT"},
        {"channel": "books", "instId": "BTC-USDT"},
    )
    acks = control(session)
    assert acks[0]["event"] == "subscribe"
    assert acks[1]["event"] == "error" and acks[1]["code"] == "60018"
    assert list(dialect.subs) == [("tickers", "BTC-USDT")]


# -- keep-alive [OKX-OV §Connect; OKX-ERR §Close Frame] ------------------------------------


def test_ping_pong_text() -> None:
    dialect, session = make(Market())
    dialect.on_text("ping")
    assert session.control == ["pong"]


def test_keepalive_rule_values() -> None:
    assert Dialect.keepalive.close_code == 4004
    assert Dialect.keepalive.idle_timeout is None  # enforced by the dialect: pushes, not pings
    assert Dialect.idle_close_s == 30.0


def test_no_subscription_for_30s_closes_4004(market: Market) -> None:
    dialect, session = make(market)
    for _ in range(290):
        step(dialect, session)
        dialect.on_text("ping") if session.now % 10_000 == 0 else None
    assert session.closed is None
    step(dialect, session, 20)
    assert session.closed == (4004, "No data received in 30s")


def test_quiet_connection_closes_4004_unless_pinged(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "tickers", "instId": "BTC-USDT"})
    session.current_fault = {"fault": "ws_stall"}  # nothing pushed: only pings keep it up
    for i in range(400):
        step(dialect, session)
        if i % 200 == 0:
            dialect.on_text("ping")
    assert session.closed is None
    step(dialect, session, 310)
    assert session.closed == (4004, "No data received in 30s")


def test_busy_stream_stays_up_without_pings(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "tickers", "instId": "BTC-USDT"})
    step(dialect, session, 700)
    assert session.closed is None


def test_blackhole_enforces_nothing(market: Market) -> None:
    dialect, session = make(market)
    session.current_fault = {"fault": "ws_blackhole"}
    step(dialect, session, 700)
    assert session.closed is None


# -- data ------------------------------------------------------------------------------------


class LocalBook:
    """A client's ``books`` book following [OKX-MD §Sequence ID, §Checksum]."""

    def __init__(self) -> None:
        self.bids: dict[str, list[str]] = {}
        self.asks: dict[str, list[str]] = {}
        self.seq: int | None = None

    def apply(self, msg: dict[str, Any]) -> tuple[bool, bool]:
        """Apply one message; returns (sequence ok, checksum ok)."""
        data = msg["data"][0]
        if msg["action"] == "snapshot":
            self.bids = {lv[0]: lv for lv in data["bids"]}
            self.asks = {lv[0]: lv for lv in data["asks"]}
            seq_ok = data["prevSeqId"] == -1
        else:
            seq_ok = data["prevSeqId"] == self.seq
            for side, rows in ((self.bids, data["bids"]), (self.asks, data["asks"])):
                for row in rows:
                    if float(row[1]) == 0:
                        side.pop(row[0], None)
                    else:
                        side[row[0]] = row
        self.seq = data["seqId"]
        bids, asks = self.sorted()
        return seq_ok, data["checksum"] in (0, okx_checksum(bids, asks))

    def sorted(self) -> tuple[list[list[str]], list[list[str]]]:
        bids = sorted(self.bids.values(), key=lambda r: -float(r[0]))
        asks = sorted(self.asks.values(), key=lambda r: float(r[0]))
        return bids, asks


def books_messages(session: FakeSession) -> list[dict[str, Any]]:
    out = [b for ch, b in session.data if b["arg"]["channel"] == "books"]
    assert all(ch == "book" for ch, b in session.data if b["arg"]["channel"] == "books")
    return out


@pytest.mark.parametrize("inst", ["BTC-USDT", "ETH-USDT"])
def test_books_stream_keeps_a_correct_local_book(market: Market, inst: str) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "books", "instId": inst})
    book = LocalBook()
    checked = 0
    for _ in range(300):
        step(dialect, session)
        for msg in books_messages(session):
            assert book.apply(msg) == (True, True)
            assert msg["data"][0]["checksum"] != 0
            checked += 1
        session.data.clear()
        rest_bids, rest_asks = market.view("okx", session.now, inst.replace("-", "/")).levels(400)
        bids, asks = book.sorted()
        assert [r[:2] for r in bids] == [[p, q] for p, q, _, _ in rest_bids]
        assert [r[:2] for r in asks] == [[p, q] for p, q, _, _ in rest_asks]
    assert checked > 100


def test_books_messages_carry_documented_fields(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "books", "instId": "BTC-USDT"})
    step(dialect, session, 30)
    first, *rest = books_messages(session)
    assert first["action"] == "snapshot" and first["data"][0]["prevSeqId"] == -1
    assert len(first["data"][0]["bids"]) == 400
    assert set(first["data"][0]) == {"asks", "bids", "ts", "checksum", "prevSeqId", "seqId"}
    assert first["data"][0]["ts"] == str(T0 + TICK_MS)
    level = first["data"][0]["bids"][0]
    assert len(level) == 4 and level[2] == "0" and all(isinstance(x, str) for x in level)
    assert rest and all(m["action"] == "update" for m in rest)


def test_checksum_zero_mode(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Dialect, "checksum_zero", True)
    dialect, session = make(market)
    subscribe(dialect, {"channel": "books", "instId": "BTC-USDT"})
    step(dialect, session, 20)
    assert {m["data"][0]["checksum"] for m in books_messages(session)} == {0}


def test_ws_checksum_sends_wrong_nonzero_checksums(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "books", "instId": "BTC-USDT"})
    book = LocalBook()
    step(dialect, session, 5)
    for msg in books_messages(session):
        assert book.apply(msg) == (True, True)
    session.data.clear()
    session.current_fault = {"fault": "ws_checksum"}
    step(dialect, session, 10)
    msgs = books_messages(session)
    assert msgs
    for msg in msgs:
        seq_ok, checksum_ok = book.apply(msg)
        assert seq_ok and not checksum_ok and msg["data"][0]["checksum"] != 0


def test_ws_gap_breaks_the_seq_chain(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Dialect, "gap_every", 5)
    dialect, session = make(market)
    subscribe(dialect, {"channel": "books", "instId": "BTC-USDT"})
    book = LocalBook()
    step(dialect, session, 5)
    for msg in books_messages(session):
        assert book.apply(msg) == (True, True)
    session.data.clear()
    session.current_fault = {"fault": "ws_gap", "channel": "book"}
    step(dialect, session, 50)
    results = [book.apply(m)[0] for m in books_messages(session)]
    assert results.count(False) >= 5 and results[0] is False
    # Cleared: a resubscribe yields a fresh snapshot and a clean chain again.
    session.current_fault = None
    session.data.clear()
    dialect.on_text(
        json.dumps({"op": "unsubscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]})
    )
    subscribe(dialect, {"channel": "books", "instId": "BTC-USDT"})
    step(dialect, session, 30)
    fresh = LocalBook()
    assert all(fresh.apply(m) == (True, True) for m in books_messages(session))


def test_ws_gap_on_ticker_leaves_books_alone(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "books", "instId": "BTC-USDT"})
    session.current_fault = {"fault": "ws_gap", "channel": "ticker"}
    book = LocalBook()
    step(dialect, session, 40)
    assert all(book.apply(m) == (True, True) for m in books_messages(session))


def test_trades_ids_and_counts_are_continuous(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "trades", "instId": "BTC-USDT"})
    step(dialect, session, 200)
    trades = [b["data"][0] for _, b in session.data]
    assert len(trades) > 100
    for prev, cur in itertools.pairwise(trades):
        assert int(cur["tradeId"]) - int(cur["count"]) == int(prev["tradeId"])
    assert set(trades[0]) == {
        "instId",
        "tradeId",
        "px",
        "sz",
        "side",
        "ts",
        "count",
        "source",
        "seqId",
    }
    assert all(ch == "trades" for ch, _ in session.data)


def test_ws_gap_on_trades_skips_trade_ids(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "trades", "instId": "BTC-USDT"})
    step(dialect, session, 10)
    session.current_fault = {"fault": "ws_gap", "channel": "trades"}
    step(dialect, session, 30)
    trades = [b["data"][0] for _, b in session.data]
    jumps = [
        int(c["tradeId"]) - int(c["count"]) != int(p["tradeId"])
        for p, c in itertools.pairwise(trades)
    ]
    assert any(jumps)


def test_tickers_match_rest_fields(market: Market) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": "tickers", "instId": "ETH-USDT"})
    step(dialect, session)
    channel, body = session.data[0]
    item = body["data"][0]
    v = market.view("okx", session.now, "ETH/USDT")
    assert channel == "ticker"
    assert item["instId"] == "ETH-USDT" and item["instType"] == "SPOT"
    assert item["bidPx"] == v.price(v.best_bid) and item["askPx"] == v.price(v.best_ask)
    assert item["ts"] == str(session.now)


@pytest.mark.parametrize(("channel", "depth"), [("books5", 5), ("bbo-tbt", 1)])
def test_snapshot_books(market: Market, channel: str, depth: int) -> None:
    dialect, session = make(market)
    subscribe(dialect, {"channel": channel, "instId": "BTC-USDT"})
    step(dialect, session, 20)
    seqs = []
    for _, body in session.data:
        data = body["data"][0]
        assert set(data) == {"asks", "bids", "instId", "ts", "seqId"}
        assert len(data["bids"]) == depth == len(data["asks"])
        seqs.append(data["seqId"])
    v = market.view("okx", session.now, "BTC/USDT")
    bids, _ = v.levels(depth)
    assert session.data[-1][1]["data"][0]["bids"][0][:2] == [bids[0][0], bids[0][1]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_maintenance_notice_body(market: Market) -> None:
    dialect, _ = make(market)
    notice = dialect.maintenance_notice()
    assert notice is not None
    assert json.loads(notice) == {
        "event": "notice",
        "code": "64008",
        "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
        "connId": dialect.conn_id,
    }


def test_two_connections_subscribed_at_different_ticks_both_stay_correct(market: Market) -> None:
    (d1, s1), (d2, s2) = make(market), make(market)
    subscribe(d1, {"channel": "books", "instId": "BTC-USDT"})
    books = [LocalBook(), LocalBook()]
    for i in range(120):
        if i == 7:
            subscribe(d2, {"channel": "books", "instId": "BTC-USDT"})
        for n, (d, s) in enumerate(((d1, s1), (d2, s2))):
            step(d, s)
            for msg in books_messages(s):
                assert books[n].apply(msg) == (True, True)
            s.data.clear()
    assert books[0].sorted() == books[1].sorted() and books[1].seq is not None


# -- end to end: a real websockets client against the in-thread simulator ---------------------


def ws_url(sim: SimulatorServer) -> str:
    return sim.url.replace("http://", "ws://", 1) + "/okx/ws/v5/public"


@pytest.mark.e2e
def test_e2e_ticker_trades_and_book(sim: SimulatorServer) -> None:
    args = [
        {"channel": "tickers", "instId": "BTC-USDT"},
        {"channel": "trades", "instId": "BTC-USDT"},
        {"channel": "books", "instId": "ETH-USDT"},
    ]
    with connect(ws_url(sim), open_timeout=30) as ws:
        ws.send(json.dumps({"id": "1", "op": "subscribe", "args": args}))
        acks: list[dict[str, Any]] = []
        seen: set[str] = set()
        book = LocalBook()
        books = 0
        deadline = time.monotonic() + 60
        while len(seen) < 3 or books < 10:
            assert time.monotonic() < deadline, f"only {seen} / {books} books messages"
            msg = json.loads(ws.recv(timeout=60))
            if "event" in msg:
                acks.append(msg)
                continue
            seen.add(msg["arg"]["channel"])
            if msg["arg"]["channel"] == "books":
                assert book.apply(msg) == (True, True)
                books += 1
        assert [a["event"] for a in acks] == ["subscribe"] * 3
        ws.send("ping")
        deadline = time.monotonic() + 30
        while ws.recv(timeout=30) != "pong":
            assert time.monotonic() < deadline


@pytest.mark.e2e
def test_e2e_no_subscription_is_closed_4004(
    sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Dialect, "idle_close_s", 1.0)
    with connect(ws_url(sim), open_timeout=30) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=60)
        assert ws.close_code == 4004 and ws.close_reason == "No data received in 30s"
