"""The simulator's Coinbase Exchange WebSocket feed dialect, driven through a fake session (no
sockets), plus one end-to-end subscription through a real ``websockets`` client."""

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
from simulator.ws.dialect import KeepAliveRule
from simulator.ws.dialects.coinbase import Dialect

T0 = 1_780_000_000_000  # a fixed instant: the market model is a pure function of time


class FakeSession:
    """Records what the dialect sends; the clock and the fault are set by the test."""

    exchange = "coinbase"

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
        raise AssertionError("Coinbase sends no protocol pings here")

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
    return Dialect(session, "/ws", {}), session


def step(dialect: Dialect, session: FakeSession, ticks: int = 1) -> None:
    for _ in range(ticks):
        session.now += TICK_MS
        dialect.on_tick(session.now)


def send(dialect: Dialect, **msg: Any) -> None:
    dialect.on_text(json.dumps(msg))


def of_type(session: FakeSession, kind: str) -> list[dict[str, Any]]:
    return [b for _, b in session.data if b["type"] == kind] + [
        b for b in session.control if b["type"] == kind
    ]


# -- subscribe / ack / error bodies [CB-EX-OV] --------------------------------------------


def test_documented_subscribe_example_and_subscriptions_body(market: Market) -> None:
    dialect, session = make(market)
    send(
        dialect,
        type="subscribe",
        product_ids=["ETH-USD", "BTC-USD"],
        channels=["level2_batch", "heartbeat", {"name": "ticker", "product_ids": ["ETH-USD"]}],
    )
    assert session.control == [
        {
            "type": "subscriptions",
            "channels": [
                {"name": "level2_batch", "product_ids": ["ETH-USD", "BTC-USD"]},
                {"name": "heartbeat", "product_ids": ["ETH-USD", "BTC-USD"]},
                {"name": "ticker", "product_ids": ["ETH-USD"]},
            ],
        }
    ]
    assert dialect.is_subscribed()


@pytest.mark.parametrize(
    ("channel", "kind"),
    [
        ("ticker", "ticker"),
        ("ticker_batch", "ticker"),
        ("matches", "match"),
        ("level2_batch", "snapshot"),
        ("heartbeat", "heartbeat"),
        ("status", "status"),
    ],
)
def test_every_public_channel_sends(market: Market, channel: str, kind: str) -> None:
    dialect, session = make(market)
    send(dialect, type="subscribe", product_ids=["BTC-USD"], channels=[channel])
    assert session.control[0]["type"] == "subscriptions"
    session.control.clear()
    step(dialect, session, 30)
    assert of_type(session, kind)


def test_unsubscribe_whole_channel_and_one_product(market: Market) -> None:
    dialect, session = make(market)
    send(
        dialect,
        type="subscribe",
        product_ids=["ETH-USD", "BTC-USD"],
        channels=["heartbeat", "ticker"],
    )
    send(dialect, type="unsubscribe", channels=["heartbeat"])
    send(dialect, type="unsubscribe", product_ids=["ETH-USD"], channels=["ticker"])
    assert session.control[-1] == {
        "type": "subscriptions",
        "channels": [{"name": "ticker", "product_ids": ["BTC-USD"]}],
    }


def test_resubscribing_level2_batch_sends_a_fresh_snapshot(market: Market) -> None:
    dialect, session = make(market)
    sub = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2_batch"]}
    dialect.on_text(json.dumps(sub))
    step(dialect, session, 5)
    dialect.on_text(json.dumps(sub))
    step(dialect, session, 5)
    dialect.on_text(json.dumps({"type": "unsubscribe", "channels": ["level2_batch"]}))
    dialect.on_text(json.dumps(sub))
    step(dialect, session, 5)
    assert len(of_type(session, "snapshot")) == 3


def test_bad_product_is_the_observed_error(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, type="subscribe", product_ids=["BTC-USDX"], channels=["ticker"])
    assert session.control == [
        {
            "type": "error",
            "message": "Failed to subscribe",
            "reason": "BTC-USDX is not a valid product",
        }
    ]
    assert not dialect.is_subscribed() and dialect.subs == {}


@pytest.mark.parametrize("channel", ["level2", "full", "user", "level3", "rfq_matches"])
def test_authenticated_channels_are_refused(market: Market, channel: str) -> None:
    dialect, session = make(market)
    send(dialect, type="subscribe", product_ids=["BTC-USD"], channels=["ticker", channel])
    (error,) = session.control
    assert error["type"] == "error" and error["message"] == "Failed to subscribe"
    assert channel in error["reason"] and "authentication" in error["reason"]
    assert dialect.subs == {}


def test_bad_message_type_is_an_error(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, type="subscrib", channels=["ticker"])
    dialect.on_text("{")
    assert [e["type"] for e in session.control] == ["error", "error"]


def test_ws_reject_refuses_subscriptions(market: Market) -> None:
    dialect, session = make(market)
    session.current_fault = {"fault": "ws_reject"}
    send(dialect, type="subscribe", product_ids=["BTC-USD"], channels=["ticker"])
    assert session.control == [
        {
            "type": "error",
            "message": "Failed to subscribe",
            "reason": "BTC-USD is not a valid product",
        }
    ]


def test_ws_reject_narrowed_to_book_leaves_other_channels(market: Market) -> None:
    dialect, session = make(market)
    session.current_fault = {"fault": "ws_reject", "channel": "book"}
    send(dialect, type="subscribe", product_ids=["BTC-USD"], channels=["heartbeat", "ticker"])
    send(dialect, type="subscribe", product_ids=["BTC-USD"], channels=["level2_batch"])
    assert [c["type"] for c in session.control] == ["subscriptions", "error"]
    assert set(dialect.subs) == {"heartbeat", "ticker"}


# -- keep-alive [CB-EX-OV §Subscribe] ------------------------------------------------------


def test_subscribe_deadline_rule() -> None:
    assert Dialect.keepalive.subscribe_deadline == 5.0
    assert Dialect.keepalive.idle_timeout is None and Dialect.keepalive.server_ping_interval is None


def test_is_subscribed_stays_true_after_unsubscribing(market: Market) -> None:
    dialect, _ = make(market)
    assert not dialect.is_subscribed()
    send(dialect, type="subscribe", product_ids=["BTC-USD"], channels=["ticker"])
    send(dialect, type="unsubscribe", channels=["ticker"])
    assert dialect.is_subscribed()


# -- data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("product", ["BTC-USD", "ETH-USD"])
def test_level2_batch_keeps_a_correct_local_book(market: Market, product: str) -> None:
    dialect, session = make(market)
    send(dialect, type="subscribe", product_ids=[product], channels=["level2_batch"])
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    updates = 0
    for _ in range(300):
        step(dialect, session)
        for channel, msg in session.data:
            assert channel == "book"
            if msg["type"] == "snapshot":
                bids, asks = dict(map(tuple, msg["bids"])), dict(map(tuple, msg["asks"]))
                continue
            assert msg["type"] == "l2update" and set(msg) == {
                "type",
                "product_id",
                "time",
                "changes",
            }
            updates += 1
            for side, price, size in msg["changes"]:
                book = bids if side == "buy" else asks
                if float(size) == 0:
                    book.pop(price, None)
                else:
                    book[price] = size
        session.data.clear()
        rest_b, rest_a = market.view("coinbase", session.now, product.replace("-", "/")).levels(50)
        assert sorted(bids.items(), key=lambda kv: -float(kv[0])) == [
            (p, q) for p, q, _, _ in rest_b
        ]
        assert sorted(asks.items(), key=lambda kv: float(kv[0])) == [
            (p, q) for p, q, _, _ in rest_a
        ]
    assert updates > 50


def test_matches_heartbeat_and_sequences_agree(market: Market) -> None:
    dialect, session = make(market)
    send(
        dialect,
        type="subscribe",
        product_ids=["BTC-USD"],
        channels=["matches", "heartbeat", "ticker"],
    )
    step(dialect, session, 200)
    matches = of_type(session, "match")
    assert len(matches) > 50
    ids = [m["trade_id"] for m in matches]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert set(matches[0]) == {
        "type", "trade_id", "sequence", "maker_order_id", "taker_order_id", "time",
        "product_id", "size", "price", "side",
    }  # fmt: skip
    beats = of_type(session, "heartbeat")
    assert 18 <= len(beats) <= 21
    assert set(beats[0]) == {"type", "sequence", "last_trade_id", "product_id", "time"}
    # every heartbeat names a trade the matches channel delivered (nothing was missed)
    assert all(b["last_trade_id"] in ids for b in beats if b["last_trade_id"] >= ids[0])
    ordered = [b["sequence"] for _, b in session.data]
    assert ordered == sorted(ordered)
    tickers = of_type(session, "ticker")
    assert tickers[-1]["trade_id"] == ids[-1]


def test_ws_gap_drops_matches_visible_against_heartbeats(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Dialect, "gap_every", 3)
    dialect, session = make(market)
    send(dialect, type="subscribe", product_ids=["BTC-USD"], channels=["matches", "heartbeat"])
    step(dialect, session, 5)
    session.current_fault = {"fault": "ws_gap", "channel": "trades"}
    step(dialect, session, 60)
    ids = [m["trade_id"] for m in of_type(session, "match")]
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))
    beats = [b["last_trade_id"] for b in of_type(session, "heartbeat")]
    assert any(tid not in ids for tid in beats if tid > ids[0])  # heartbeats reveal the drop
    session.current_fault = None
    session.data.clear()
    session.control.clear()
    step(dialect, session, 30)
    ids = [m["trade_id"] for m in of_type(session, "match")]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_ticker_body_and_batch_cadence(market: Market) -> None:
    dialect, session = make(market)
    send(dialect, type="subscribe", product_ids=["ETH-USD"], channels=["ticker_batch"])
    step(dialect, session, 120)
    tickers = of_type(session, "ticker")
    assert 2 <= len(tickers) <= 4
    assert set(tickers[0]) == {
        "type", "sequence", "product_id", "price", "open_24h", "volume_24h", "low_24h",
        "high_24h", "volume_30d", "best_bid", "best_bid_size", "best_ask", "best_ask_size",
        "side", "time", "trade_id", "last_size",
    }  # fmt: skip
    assert tickers[0]["time"].endswith("Z") and len(tickers[0]["time"]) == 27


def test_maintenance_notice_when_status_subscribed(market: Market) -> None:
    dialect, session = make(market)
    assert dialect.maintenance_notice() is None
    send(dialect, type="subscribe", channels=["status"])
    notice = dialect.maintenance_notice()
    assert notice is not None
    body = json.loads(notice)
    assert body["type"] == "status"
    assert {p["id"] for p in body["products"]} == {"BTC-USD", "ETH-USD", "SOL-USD"}
    assert all(p["status"] != "online" and p["cancel_only"] for p in body["products"])
    step(dialect, session, 2)
    (status,) = of_type(session, "status")
    assert all(p["status"] == "online" for p in status["products"])


# -- end to end: a real websockets client against the in-thread simulator ---------------------


def ws_url(sim: SimulatorServer) -> str:
    return sim.url.replace("http://", "ws://", 1) + "/coinbase/ws"


@pytest.mark.e2e
def test_e2e_ticker_trades_and_book(sim: SimulatorServer) -> None:
    with connect(ws_url(sim), open_timeout=30) as ws:
        ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "product_ids": ["BTC-USD"],
                    "channels": ["ticker", "matches", "level2_batch", "heartbeat"],
                }
            )
        )
        kinds: set[str] = set()
        deadline = time.monotonic() + 60
        while (
            not {"subscriptions", "ticker", "match", "snapshot", "l2update", "heartbeat"} <= kinds
        ):
            assert time.monotonic() < deadline, f"only {kinds}"
            kinds.add(json.loads(ws.recv(timeout=60))["type"])


@pytest.mark.e2e
def test_e2e_no_subscribe_is_disconnected(
    sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Dialect, "keepalive", KeepAliveRule(subscribe_deadline=0.5))
    with connect(ws_url(sim), open_timeout=30) as ws, pytest.raises(ConnectionClosed):
        ws.recv(timeout=60)
