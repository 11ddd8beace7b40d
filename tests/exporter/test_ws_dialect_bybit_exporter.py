"""The exporter's Bybit dialect: topics, subscribe splitting (10 args), acks and errors, pongs,
``ts`` as number or string, and the snapshot/delta book procedure [BY-CONNECT; BY-OB]."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.streams.dialect import BookVerdict, KeepAlive
from exporter.streams.dialects.bybit import BybitBook, BybitDialect
from exporter.streams.events import (
    CHANNELS,
    BookMessage,
    Channel,
    Data,
    Ignored,
    Malformed,
    Notice,
    NoticeKind,
    Pong,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)

# Documented examples, field for field [BY-OB §Response Parameters; BY-TICKER; BY-TRADE].
BOOK_DELTA = {
    "topic": "orderbook.50.BTCUSDT",
    "type": "delta",
    "ts": 1687940967466,
    "data": {
        "s": "BTCUSDT",
        "b": [["30247.20", "30.028"], ["30240.00", "0"]],
        "a": [["30248.70", "0"]],
        "u": 177400507,
        "seq": 66544703342,
    },
    "cts": 1687940967464,
}
TICKER = {
    "topic": "tickers.BTCUSDT",
    "ts": 1673853746003,
    "type": "snapshot",
    "cs": 2588407389,
    "data": {
        "symbol": "BTCUSDT",
        "lastPrice": "21109.77",
        "highPrice24h": "21426.99",
        "lowPrice24h": "20575",
        "prevPrice24h": "20704.93",
        "volume24h": "6780.866843",
        "turnover24h": "142944834.75",
        "price24hPcnt": "0.0196",
        "usdIndexPrice": "21120.2400136",
    },
}
TRADE = {
    "topic": "publicTrade.BTCUSDT",
    "type": "snapshot",
    "ts": 1672304486868,
    "data": [
        {
            "T": 1672304486865,
            "s": "BTCUSDT",
            "S": "Buy",
            "v": "0.001",
            "p": "16578.50",
            "L": "PlusTick",
            "i": "20f43950-d8dd-5b31-9112-a178eb6023af",
            "BT": False,
            "seq": 1783284617,
        }
    ],
}
MARKETS = [f"C{i}/USDT" for i in range(4)]
SUBS = [Subscription(channel, market) for market in MARKETS for channel in CHANNELS]


def dialect() -> BybitDialect:
    d = BybitDialect()
    d.subscribe_messages([Subscription(c, "BTC/USDT") for c in CHANNELS])
    return d


def test_facts_and_url() -> None:
    d = BybitDialect()
    assert d.keepalive is KeepAlive.CLIENT_TEXT and d.ping_interval == 20
    assert d.max_subscriptions_per_request == 10
    (limit,) = d.connect_limits
    assert (limit.attempts, limit.window_seconds) == (500, 300)
    assert all(0 < v <= 10 for v in d.default_stale_after.values())
    assert d.symbol("BTC/USDT") == "BTCUSDT"
    assert d.connect_url("wss://stream.bybit.com", SUBS) == "wss://stream.bybit.com/v5/public/spot"
    assert d.connect_url("ws://127.0.0.1:8000/bybit", SUBS) == (
        "ws://127.0.0.1:8000/bybit/v5/public/spot"
    )
    assert json.loads(d.ping_message()) == {"req_id": "1", "op": "ping"}


def test_subscribe_split_at_ten_args_and_acks_by_req_id() -> None:
    d = BybitDialect()
    frames = [json.loads(f) for f in d.subscribe_messages(SUBS)]
    assert [len(f["args"]) for f in frames] == [10, 2]
    assert frames[0] == {
        "req_id": "1",
        "op": "subscribe",
        "args": [
            "tickers.C0USDT",
            "publicTrade.C0USDT",
            "orderbook.50.C0USDT",
            "tickers.C1USDT",
            "publicTrade.C1USDT",
            "orderbook.50.C1USDT",
            "tickers.C2USDT",
            "publicTrade.C2USDT",
            "orderbook.50.C2USDT",
            "tickers.C3USDT",
        ],
    }
    spot_ack = {
        "success": True,
        "ret_msg": "subscribe",
        "conn_id": "2324d924-1f2a",
        "req_id": "2",
        "op": "subscribe",
    }
    assert d.parse(json.dumps(spot_ack)) == [Subscribed(s) for s in SUBS[10:]]
    # Linear-style ack with an empty req_id: answers come in order → the oldest request.
    linear_ack = {
        "success": True,
        "ret_msg": "",
        "conn_id": "3cd8",
        "req_id": "",
        "op": "subscribe",
    }
    assert d.parse(json.dumps(linear_ack)) == [Subscribed(s) for s in SUBS[:10]]
    assert isinstance(d.parse(json.dumps(linear_ack))[0], Ignored)


def test_observed_errors() -> None:
    d = BybitDialect()
    d.subscribe_messages(SUBS[:3])
    bad_symbol = {
        "success": False,
        "ret_msg": "Invalid symbol :[orderbook.50.C0USDT]",
        "conn_id": "c1",
        "op": "subscribe",
    }
    assert d.parse(json.dumps(bad_symbol)) == [
        SubscriptionFailed(SUBS[2], "Invalid symbol :[orderbook.50.C0USDT]")
    ]
    d.subscribe_messages(SUBS[3:4])
    bad_op = {
        "success": False,
        "ret_msg": "error:invalid op",
        "conn_id": "c1",
        "request": {"op": "subscribe", "args": None},
    }
    assert d.parse(json.dumps(bad_op)) == [SubscriptionFailed(SUBS[3], "error:invalid op")]
    ping_error = dict(bad_op, request={"op": "", "args": None})
    assert isinstance(d.parse(json.dumps(ping_error))[0], Malformed)
    unknown = {"success": False, "ret_msg": "boom", "conn_id": "c1", "op": "subscribe"}
    assert d.parse(json.dumps(unknown)) == [SubscriptionFailed(None, "boom")]


def test_pongs_spot_and_option_forms() -> None:
    d = dialect()
    spot = {"success": True, "ret_msg": "pong", "conn_id": "0970e817-426e", "op": "ping"}
    assert d.parse(json.dumps(spot)) == [Pong(None, None)]
    assert d.parse(json.dumps(dict(spot, req_id="7"))) == [Pong("7", None)]
    assert d.parse('{"args":["1672916271846"],"op":"pong"}') == [Pong(None, 1672916271.846)]


def test_data_messages_and_ts_number_or_string() -> None:
    d = dialect()
    assert d.parse(json.dumps(TICKER)) == [
        Data(Channel.TICKER, "BTC/USDT", 1673853746.003, last=21109.77)
    ]
    assert d.parse(json.dumps(TRADE)) == [
        Data(Channel.TRADES, "BTC/USDT", 1672304486.868, last=16578.5, volume=0.001)
    ]
    quoted = dict(TICKER, ts="1772694601512")
    assert d.parse(json.dumps(quoted)) == [
        Data(Channel.TICKER, "BTC/USDT", 1772694601.512, last=21109.77)
    ]
    (event,) = d.parse(json.dumps(BOOK_DELTA))
    assert event == Data(
        Channel.BOOK,
        "BTC/USDT",
        1687940967.466,
        BookMessage(
            snapshot=False,
            bids=[("30247.20", "30.028"), ("30240.00", "0")],
            asks=[("30248.70", "0")],
            last_id=177400507,
            prev_id=66544703342,
        ),
    )
    assert isinstance(
        d.parse(json.dumps(dict(BOOK_DELTA, topic="orderbook.50.XRPUSDT")))[0], Ignored
    )
    broken: dict[str, Any] = dict(BOOK_DELTA, data={"s": "BTCUSDT", "b": []})
    assert isinstance(d.parse(json.dumps(broken))[0], Malformed)
    assert isinstance(d.parse("nope")[0], Malformed)


def test_system_status_notices() -> None:
    d = dialect()
    ongoing = {"topic": "system.status", "ts": 1, "data": [{"id": "x", "state": "ongoing"}]}
    assert d.parse(json.dumps(ongoing))[0].__class__ is Notice
    assert d.parse(json.dumps(ongoing)) == [Notice(NoticeKind.MAINTENANCE, "system.status ongoing")]
    done = {"topic": "system.status", "ts": 1, "data": [{"id": "x", "state": "completed"}]}
    assert d.parse(json.dumps(done))[0] == Notice(NoticeKind.ONLINE, "system.status completed")


def test_resubscribe_is_unsubscribe_then_subscribe() -> None:
    d = dialect()
    sub = Subscription(Channel.BOOK, "BTC/USDT")
    frames = [json.loads(f) for f in d.resubscribe_messages(sub) or []]
    assert [(f["op"], f["args"]) for f in frames] == [
        ("unsubscribe", ["orderbook.50.BTCUSDT"]),
        ("subscribe", ["orderbook.50.BTCUSDT"]),
    ]
    assert d.parse('{"success":true,"ret_msg":"","conn_id":"c","req_id":"2","op":"unsubscribe"}')[
        0
    ] == Ignored("unsubscribe ack")


def msg(
    snapshot: bool, u: int, seq: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
) -> BookMessage:
    return BookMessage(snapshot=snapshot, bids=bids, asks=asks, last_id=u, prev_id=seq)


def test_book_snapshot_delta_reset_and_seq_drop() -> None:
    book = BybitBook()
    assert book.apply(msg(False, 5, 50, [("1", "1")], [])) is BookVerdict.IGNORED
    assert (
        book.apply(msg(True, 10, 100, [("100", "1"), ("99", "2")], [("101", "1")]))
        is BookVerdict.OK
    )
    assert book.apply(msg(False, 11, 105, [("99", "0")], [("100.5", "3")])) is BookVerdict.OK
    assert book.best() == (100.0, 100.5)
    # seq decreasing → dropped.
    assert book.apply(msg(False, 12, 104, [("100.4", "1")], [])) is BookVerdict.IGNORED
    assert book.best() == (100.0, 100.5)
    # u not contiguous is not a gap (undocumented for orderbook.50).
    assert book.apply(msg(False, 20, 110, [], [])) is BookVerdict.OK
    # A new snapshot resets the book.
    assert book.apply(msg(True, 30, 120, [("90", "1")], [("91", "1")])) is BookVerdict.RESET
    assert book.book.top(5) == ([("90", "1")], [("91", "1")])
    # u == 1: service restart, the message overwrites the book.
    assert book.apply(msg(False, 1, 5, [("80", "1")], [("81", "1")])) is BookVerdict.RESET
    assert book.book.top(5) == ([("80", "1")], [("81", "1")])
    assert book.apply(msg(False, 2, 6, [("80.5", "1")], [])) is BookVerdict.OK
    assert book.best() == (80.5, 81.0)


def test_book_truncated_to_fifty_and_crossed_visible() -> None:
    book = BybitBook()
    bids = [(str(1000 - i), "1") for i in range(60)]
    asks = [(str(2000 + i), "1") for i in range(60)]
    book.apply(msg(True, 1, 1, bids, asks))
    assert len(book.book.bids) == 50 and len(book.book.asks) == 50
    book.apply(msg(False, 2, 2, [("2000.5", "1")], []))
    bid, ask = book.best()
    assert bid is not None and ask is not None and bid >= ask
    book.reset()
    assert book.best() == (None, None)
    assert book.apply(msg(False, 3, 3, [], [])) is BookVerdict.IGNORED


def test_contiguous_u_rule_is_on_by_default() -> None:
    assert isinstance(BybitDialect().new_book("BTC/USDT"), BybitBook)
    assert BybitDialect().new_book("BTC/USDT").contiguous_u
    book = BybitBook(contiguous_u=True)
    assert book.apply(msg(True, 10, 100, [("100", "1")], [("101", "1")])) is BookVerdict.OK
    assert book.apply(msg(False, 11, 101, [("100.5", "1")], [])) is BookVerdict.OK
    assert book.apply(msg(False, 11, 102, [], [])) is BookVerdict.IGNORED
    assert book.apply(msg(False, 13, 103, [], [])) is BookVerdict.GAP
    assert book.best() == (None, None)
    assert book.apply(msg(False, 14, 104, [], [])) is BookVerdict.IGNORED
    assert book.apply(msg(True, 20, 110, [("90", "1")], [])) is BookVerdict.OK
    assert book.apply(msg(False, 1, 111, [("80", "1")], [])) is BookVerdict.RESET
    assert book.apply(msg(False, 2, 112, [], [])) is BookVerdict.OK


def test_market_data_from_documented_ticker_and_trades() -> None:
    # Spot ticker: lastPrice only, no best bid/ask [BY-TICKER]; trades p/v [BY-TRADE].
    d = dialect()
    assert BybitDialect.ticker_quotes is False
    (ticker,) = d.parse(json.dumps(TICKER))
    assert (ticker.bid, ticker.ask, ticker.last, ticker.volume) == (None, None, 21109.77, 0.0)
    second = dict(TRADE["data"][0], v="0.25", p="16579.00")  # type: ignore[index]
    batch = dict(TRADE, data=[TRADE["data"][0], second])  # type: ignore[index]
    (trade,) = d.parse(json.dumps(batch))
    assert trade.last == 16579.0  # the last trade of the message
    assert trade.volume == pytest.approx(0.251)
    (book,) = d.parse(json.dumps(BOOK_DELTA))
    assert (book.bid, book.ask, book.last, book.volume) == (None, None, None, 0.0)


def test_malformed_market_numbers_leave_fields_empty() -> None:
    d = dialect()
    (ticker,) = d.parse(json.dumps(dict(TICKER, data={"symbol": "BTCUSDT", "lastPrice": "x"})))
    assert isinstance(ticker, Data) and ticker.last is None
    (ticker,) = d.parse(json.dumps(dict(TICKER, data=["not", "a", "dict"])))
    assert isinstance(ticker, Data) and ticker.last is None
    good = TRADE["data"][0]  # type: ignore[index]
    bad = [dict(good, v="", p="16577"), "junk", dict(good, v="-3", p="?"), dict(good, v="2")]
    (trade,) = d.parse(json.dumps(dict(TRADE, data=bad)))
    assert (trade.last, trade.volume) == (16578.5, 2.0)
    bad = [dict(good, v="1", p="16577"), dict(good, v="nan", p="0")]
    (trade,) = d.parse(json.dumps(dict(TRADE, data=bad)))
    assert (trade.last, trade.volume) == (16577.0, 1.0)
    (trade,) = d.parse(json.dumps(dict(TRADE, data={"not": "a list"})))
    assert isinstance(trade, Data) and (trade.last, trade.volume) == (None, 0.0)
