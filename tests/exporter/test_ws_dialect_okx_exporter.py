"""The exporter's OKX dialect: subscribe/ack/error bodies, text ping/pong, notice 64008,
tickers/trades/books payloads, trade-id gaps, and the prevSeqId/seqId + CRC32 book [OKX-OV;
OKX-MD]."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.streams.dialect import BookVerdict, KeepAlive
from exporter.streams.dialects.okx import OkxBook, OkxDialect
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

# Documented examples, field for field [OKX-MD §WS / Tickers, Trades, Order book channel].
TICKER = {
    "arg": {"channel": "tickers", "instId": "BTC-USDT"},
    "data": [
        {
            "instType": "SPOT",
            "instId": "BTC-USDT",
            "last": "9999.99",
            "lastSz": "0.1",
            "askPx": "9999.99",
            "askSz": "11",
            "bidPx": "8888.88",
            "bidSz": "5",
            "open24h": "9000",
            "high24h": "10000",
            "low24h": "8888.88",
            "volCcy24h": "2222",
            "vol24h": "2222",
            "sodUtc0": "2222",
            "sodUtc8": "2222",
            "ts": "1597026383085",
        }
    ],
}
TRADES = {
    "arg": {"channel": "trades", "instId": "BTC-USDT"},
    "data": [
        {
            "instId": "BTC-USDT",
            "tradeId": "130639474",
            "px": "42219.9",
            "sz": "0.12060306",
            "side": "buy",
            "ts": "1630048897897",
            "count": "3",
            "source": "0",
            "seqId": 1234,
        }
    ],
}
BOOKS = {
    "arg": {"channel": "books", "instId": "BTC-USDT"},
    "action": "update",
    "data": [
        {
            "asks": [["8476.98", "415", "0", "13"]],
            "bids": [["8476.97", "256", "0", "12"]],
            "ts": "1597026383085",
            "checksum": -855196043,
            "prevSeqId": 123456,
            "seqId": 123457,
        }
    ],
}
SUBS = [Subscription(channel, "BTC/USDT") for channel in CHANNELS]


def dialect() -> OkxDialect:
    d = OkxDialect()
    d.subscribe_messages(SUBS)
    return d


def test_facts_url_and_ping() -> None:
    d = OkxDialect()
    assert d.keepalive is KeepAlive.CLIENT_TEXT and d.ping_interval < 30
    (limit,) = d.connect_limits
    assert (limit.attempts, limit.window_seconds) == (3, 1)
    assert all(0 < v <= 10 for v in d.default_stale_after.values())
    assert d.symbol("BTC/USDT") == "BTC-USDT"
    assert d.connect_url("wss://ws.okx.com:8443", SUBS) == "wss://ws.okx.com:8443/ws/v5/public"
    assert d.connect_url("ws://127.0.0.1:8000/okx", SUBS) == "ws://127.0.0.1:8000/okx/ws/v5/public"
    assert d.ping_message() == "ping"
    assert d.parse("pong") == [Pong()]


def test_subscribe_shape_ack_per_arg() -> None:
    d = OkxDialect()
    (frame,) = d.subscribe_messages(SUBS)
    assert json.loads(frame) == {
        "id": "1",
        "op": "subscribe",
        "args": [
            {"channel": "tickers", "instId": "BTC-USDT"},
            {"channel": "trades", "instId": "BTC-USDT"},
            {"channel": "books", "instId": "BTC-USDT"},
        ],
    }
    ack = {
        "id": "1",
        "event": "subscribe",
        "arg": {"channel": "tickers", "instId": "BTC-USDT"},
        "connId": "a4d3ae55",
    }
    assert d.parse(json.dumps(ack)) == [Subscribed(SUBS[0])]
    unsub = {"event": "unsubscribe", "arg": ack["arg"], "connId": "a4d3ae55"}
    assert d.parse(json.dumps(unsub)) == [Ignored("unsubscribe ack")]


def test_errors_by_named_arg_by_request_and_unattributed() -> None:
    d = OkxDialect()
    d.subscribe_messages(SUBS)
    named = {
        "id": "1",
        "event": "error",
        "code": "60018",
        "msg": "Wrong URL or channel:books,instId:BTC-USDT doesn't exist",
        "connId": "a4d3ae55",
    }
    reason = "60018: Wrong URL or channel:books,instId:BTC-USDT doesn't exist"
    assert d.parse(json.dumps(named)) == [SubscriptionFailed(SUBS[2], reason)]
    # OBSERVED: a wrong channel name still names the instId of our request.
    wrong_channel = dict(named, msg="channel:ticker,instId:BTC-USDT doesn't exist")
    failed = d.parse(json.dumps(wrong_channel))
    assert [e.subscription for e in failed if isinstance(e, SubscriptionFailed)] == SUBS[:2]
    d.subscribe_messages(SUBS[:1])
    invalid = {
        "id": "2",
        "event": "error",
        "code": "60012",
        "msg": 'Invalid request: {"op": "subscribe", "argss":[]}',
        "connId": "a4d3ae55",
    }
    assert d.parse(json.dumps(invalid)) == [
        SubscriptionFailed(SUBS[0], '60012: Invalid request: {"op": "subscribe", "argss":[]}')
    ]
    anonymous = {"event": "error", "code": "60014", "msg": "Requests too frequent.", "connId": "x"}
    assert d.parse(json.dumps(anonymous)) == [
        SubscriptionFailed(None, "60014: Requests too frequent.")
    ]


def test_notice_64008_is_shutdown() -> None:
    d = dialect()
    notice = {
        "event": "notice",
        "code": "64008",
        "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
        "connId": "a4d3ae55",
    }
    assert d.parse(json.dumps(notice)) == [
        Notice(
            NoticeKind.SHUTDOWN,
            "64008: The connection will soon be closed for a service upgrade. Please reconnect.",
        )
    ]
    assert isinstance(d.parse(json.dumps(dict(notice, code="64009")))[0], Ignored)


def test_ticker_trades_books_payloads() -> None:
    d = dialect()
    assert d.parse(json.dumps(TICKER)) == [
        Data(Channel.TICKER, "BTC/USDT", 1597026383.085, bid=8888.88, ask=9999.99, last=9999.99)
    ]
    assert d.parse(json.dumps(TRADES)) == [
        Data(Channel.TRADES, "BTC/USDT", 1630048897.897, last=42219.9, volume=0.12060306)
    ]
    (event,) = d.parse(json.dumps(BOOKS))
    assert event == Data(
        Channel.BOOK,
        "BTC/USDT",
        1597026383.085,
        BookMessage(
            snapshot=False,
            bids=[("8476.97", "256")],
            asks=[("8476.98", "415")],
            prev_id=123456,
            last_id=123457,
            checksum=-855196043,
        ),
    )
    assert isinstance(d.parse(json.dumps(dict(BOOKS, data=[{"asks": []}])))[0], Malformed)
    assert isinstance(d.parse("{")[0], Malformed)


def test_market_data_from_documented_ticker_and_trades() -> None:
    # tickers bidPx/askPx/last; trades px/sz (sz covers the `count` aggregated trades) [OKX-MD].
    d = dialect()
    assert OkxDialect.ticker_quotes is True
    (ticker,) = d.parse(json.dumps(TICKER))
    assert (ticker.bid, ticker.ask, ticker.last, ticker.volume) == (8888.88, 9999.99, 9999.99, 0.0)
    body: dict[str, Any] = json.loads(json.dumps(TRADES))
    extra = dict(body["data"][0], tradeId="130639475", count="1", px="42220.1", sz="0.5")
    body["data"].append(extra)
    (trade,) = d.parse(json.dumps(body))
    assert trade.last == 42220.1 and trade.volume == pytest.approx(0.62060306)
    assert trade.bid is None and trade.ask is None


def test_empty_or_malformed_ticker_numbers_leave_fields_empty() -> None:
    # An empty book side is written "" (no best price): None, not an error.
    d = dialect()
    body: dict[str, Any] = json.loads(json.dumps(TICKER))
    body["data"][0].update(bidPx="", askPx=None, last="abc")
    (ticker,) = d.parse(json.dumps(body))
    assert isinstance(ticker, Data) and ticker.event_time == 1597026383.085
    assert (ticker.bid, ticker.ask, ticker.last) == (None, None, None)
    body = json.loads(json.dumps(TRADES))
    body["data"][0].update(px="", sz="x")
    (trade,) = d.parse(json.dumps(body))
    assert isinstance(trade, Data) and (trade.last, trade.volume) == (None, 0.0)


def trades(trade_id: int, count: int) -> str:
    body: dict[str, Any] = json.loads(json.dumps(TRADES))
    body["data"][0].update(tradeId=str(trade_id), count=str(count))
    return json.dumps(body)


def test_trade_id_and_count_gap() -> None:
    d = dialect()
    (first,) = d.parse(trades(123, 3))  # trades 121..123
    assert isinstance(first, Data) and first.gap == 0
    (contiguous,) = d.parse(trades(126, 3))  # 124..126
    assert isinstance(contiguous, Data) and contiguous.gap == 0
    (gapped,) = d.parse(trades(130, 2))  # 129..130: 127, 128 missing
    assert isinstance(gapped, Data) and gapped.gap == 2
    (old,) = d.parse(trades(125, 1))  # out of order: no gap, no rewind
    assert isinstance(old, Data) and old.gap == 0
    (single,) = d.parse(trades(131, 1))
    assert isinstance(single, Data) and single.gap == 0


def book_msg(
    action: str,
    prev: int,
    seq: int,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    checksum: int | None = 0,
) -> BookMessage:
    return BookMessage(
        snapshot=action == "snapshot",
        bids=bids,
        asks=asks,
        prev_id=prev,
        last_id=seq,
        checksum=checksum,
    )


VECTOR_BIDS = [("3366.1", "7"), ("3366", "6")]
VECTOR_ASKS = [("3366.8", "9"), ("3368", "8")]


def test_checksum_match_and_mismatch_and_zero() -> None:
    book = OkxBook()
    snap = book_msg("snapshot", -1, 10, VECTOR_BIDS, VECTOR_ASKS, -1881014294)
    assert book.apply(snap) is BookVerdict.OK
    update = book_msg("update", 10, 15, [("3366", "0")], [("3372", "8")], 831078360)
    assert book.apply(update) is BookVerdict.OK
    assert book.book.top(25) == ([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")])
    # checksum 0 (OBSERVED on the wire since 2026) is never a mismatch.
    assert book.apply(book_msg("update", 15, 16, [("3366.2", "1")], [], 0)) is BookVerdict.OK
    assert book.apply(book_msg("update", 16, 17, [], [], None)) is BookVerdict.OK
    wrong = book_msg("update", 17, 18, [("3366.3", "1")], [], 12345)
    assert book.apply(wrong) is BookVerdict.CHECKSUM
    assert book.best() == (None, None)
    assert book.apply(book_msg("update", 18, 19, [], [])) is BookVerdict.IGNORED


def test_sequence_rules_keepalive_reset_and_gap() -> None:
    book = OkxBook()
    assert book.apply(book_msg("update", 1, 2, [], [])) is BookVerdict.IGNORED
    # The documented chain: (-1→10), (10→15), (15→15), (15→3), (3→5).
    assert book.apply(book_msg("snapshot", -1, 10, VECTOR_BIDS, VECTOR_ASKS)) is BookVerdict.OK
    assert book.apply(book_msg("update", 10, 15, [("3366.5", "1")], [])) is BookVerdict.OK
    assert book.apply(book_msg("update", 15, 15, [], [])) is BookVerdict.OK
    assert book.apply(book_msg("update", 15, 3, [], [("3367", "2")])) is BookVerdict.RESET
    assert book.apply(book_msg("update", 3, 5, [], [])) is BookVerdict.OK
    assert book.best() == (3366.5, 3366.8)
    # prevSeqId not linking → gap, book discarded.
    assert book.apply(book_msg("update", 6, 7, [], [])) is BookVerdict.GAP
    assert book.best() == (None, None)
    assert book.apply(book_msg("update", 7, 8, [], [])) is BookVerdict.IGNORED
    assert book.apply(book_msg("snapshot", -1, 20, VECTOR_BIDS, VECTOR_ASKS)) is BookVerdict.OK
    # A snapshot over a live book is a reset.
    assert book.apply(book_msg("snapshot", -1, 30, VECTOR_BIDS, VECTOR_ASKS)) is BookVerdict.RESET


def test_crossed_through_best_and_resubscribe() -> None:
    book = OkxBook()
    book.apply(book_msg("snapshot", -1, 1, [("10", "1")], [("11", "1")]))
    book.apply(book_msg("update", 1, 2, [("11.5", "1")], []))
    bid, ask = book.best()
    assert bid is not None and ask is not None and bid >= ask
    d = dialect()
    frames = [json.loads(f) for f in d.resubscribe_messages(SUBS[2]) or []]
    assert [(f["op"], f["args"]) for f in frames] == [
        ("unsubscribe", [{"channel": "books", "instId": "BTC-USDT"}]),
        ("subscribe", [{"channel": "books", "instId": "BTC-USDT"}]),
    ]


def test_parsed_frames_drive_the_book_with_the_documented_vectors() -> None:
    d = dialect()
    book = d.new_book("BTC/USDT")
    snapshot = {
        "arg": {"channel": "books", "instId": "BTC-USDT"},
        "action": "snapshot",
        "data": [
            {
                "asks": [["3366.8", "9", "0", "3"], ["3368", "8", "0", "1"]],
                "bids": [["3366.1", "7", "0", "2"], ["3366", "6", "0", "1"]],
                "ts": "1597026383085",
                "checksum": -1881014294,
                "prevSeqId": -1,
                "seqId": 10,
            }
        ],
    }
    update = {
        "arg": {"channel": "books", "instId": "BTC-USDT"},
        "action": "update",
        "data": [
            {
                "asks": [["3372", "8", "0", "1"]],
                "bids": [["3366", "0", "0", "0"]],
                "ts": "1597026383185",
                "checksum": 831078360,
                "prevSeqId": 10,
                "seqId": 11,
            }
        ],
    }
    verdicts = []
    for body in (snapshot, update):
        (event,) = d.parse(json.dumps(body))
        assert isinstance(event, Data) and event.book is not None
        verdicts.append(book.apply(event.book))
    assert verdicts == [BookVerdict.OK, BookVerdict.OK]
