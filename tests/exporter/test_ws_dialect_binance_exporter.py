"""The exporter's Binance dialect: URL, SUBSCRIBE frames, documented payloads, acks and errors,
event times, and the REST-snapshot book procedure [BN-WS]. Unit tests (no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.streams.dialect import BookVerdict, KeepAlive
from exporter.streams.dialects import DIALECTS, get_dialect
from exporter.streams.dialects.binance import BinanceBook, BinanceDialect
from exporter.streams.events import (
    CHANNELS,
    BookMessage,
    Channel,
    Data,
    Ignored,
    Malformed,
    Notice,
    NoticeKind,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)

# Documented examples, field for field [BN-WS §Trade Streams, §Individual Symbol Ticker Streams,
# §Diff. Depth Stream, §Server Shutdown].
TRADE = {
    "e": "trade",
    "E": 1672515782136,
    "s": "BNBBTC",
    "t": 12345,
    "p": "0.001",
    "q": "100",
    "T": 1672515782136,
    "m": True,
    "M": True,
}
TICKER = {
    "e": "24hrTicker",
    "E": 1672515782136,
    "s": "BNBBTC",
    "p": "0.0015",
    "P": "250.00",
    "w": "0.0018",
    "x": "0.0009",
    "c": "0.0025",
    "Q": "10",
    "b": "0.0024",
    "B": "10",
    "a": "0.0026",
    "A": "100",
    "o": "0.0010",
    "h": "0.0025",
    "l": "0.0010",
    "v": "10000",
    "q": "18",
    "O": 0,
    "C": 86400000,
    "F": 0,
    "L": 18150,
    "n": 18151,
}
DEPTH = {
    "e": "depthUpdate",
    "E": 1672515782136,
    "s": "BNBBTC",
    "U": 157,
    "u": 160,
    "b": [["0.0024", "10"]],
    "a": [["0.0026", "100"]],
}
SUBS = [Subscription(channel, market) for market in ("BNB/BTC", "ETH/USDT") for channel in CHANNELS]


def dialect() -> BinanceDialect:
    d = BinanceDialect()
    d.connect_url("wss://stream.binance.com:9443", SUBS)
    return d


def wrapped(stream: str, data: dict[str, Any]) -> str:
    return json.dumps({"stream": stream, "data": data})


def test_registry() -> None:
    assert set(DIALECTS) == {"binance", "bybit", "okx", "coinbase", "kraken"}
    assert get_dialect("binance") is BinanceDialect
    with pytest.raises(KeyError, match=r"'generic'.*known: binance, bybit, coinbase, kraken, okx"):
        get_dialect("generic")


def test_facts() -> None:
    assert BinanceDialect.keepalive is KeepAlive.SERVER_PING
    assert BinanceDialect.max_lifetime == 24 * 3600
    assert BinanceDialect.max_client_messages_per_second == 5
    (limit,) = BinanceDialect.connect_limits
    assert (limit.attempts, limit.window_seconds) == (300, 300)
    assert all(0 < v <= 10 for v in BinanceDialect.default_stale_after.values())
    assert set(BinanceDialect.default_stale_after) == set(CHANNELS)


def test_symbol_and_url() -> None:
    d = BinanceDialect()
    assert d.symbol("BTC/USDT") == "btcusdt"
    with pytest.raises(ValueError, match="BTCUSDT"):
        d.symbol("BTCUSDT")
    assert d.connect_url("wss://stream.binance.com:9443", SUBS) == (
        "wss://stream.binance.com:9443/stream"
    )
    assert d.connect_url("ws://127.0.0.1:8000/binance/", SUBS) == (
        "ws://127.0.0.1:8000/binance/stream"
    )
    assert d.connect_url("ws://127.0.0.1:8000/binance/ws", SUBS) == (
        "ws://127.0.0.1:8000/binance/ws"
    )


def test_subscribe_frames_split_and_acked_by_id() -> None:
    d = BinanceDialect()
    d.max_subscriptions_per_request = 4  # type: ignore[misc]
    frames = [json.loads(f) for f in d.subscribe_messages(SUBS)]
    assert frames == [
        {
            "method": "SUBSCRIBE",
            "params": ["bnbbtc@ticker", "bnbbtc@trade", "bnbbtc@depth@100ms", "ethusdt@ticker"],
            "id": 1,
        },
        {"method": "SUBSCRIBE", "params": ["ethusdt@trade", "ethusdt@depth@100ms"], "id": 2},
    ]
    assert d.parse('{"result":null,"id":2}') == [Subscribed(s) for s in SUBS[4:]]
    assert d.parse('{"result":null,"id":1}') == [Subscribed(s) for s in SUBS[:4]]
    assert d.parse('{"result":null,"id":1}') == [Ignored("ack of an unknown request")]
    assert isinstance(d.parse('{"result":["btcusdt@aggTrade"],"id":3}')[0], Ignored)


def test_documented_and_observed_errors() -> None:
    d = BinanceDialect()
    d.subscribe_messages(SUBS[:2])
    d.subscribe_messages(SUBS[2:3])
    assert d.parse('{"code":0,"msg":"Unknown property","id":1}') == [
        SubscriptionFailed(s, "code 0: Unknown property") for s in SUBS[:2]
    ]
    assert d.parse('{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}') == [
        SubscriptionFailed(SUBS[2], "code 2: Invalid request: invalid stream")
    ]
    assert d.parse('{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"}') == [
        SubscriptionFailed(None, "code 3: Invalid JSON: expected value at line 1 column 1")
    ]


def test_trade_ticker_depth_payloads_combined_and_raw() -> None:
    d = dialect()
    trade = Data(Channel.TRADES, "BNB/BTC", 1672515782.136, last=0.001, volume=100.0)
    assert d.parse(wrapped("bnbbtc@trade", TRADE)) == [trade]
    assert d.parse(json.dumps(TRADE)) == [trade]
    assert d.parse(wrapped("bnbbtc@ticker", TICKER)) == [
        Data(Channel.TICKER, "BNB/BTC", 1672515782.136, bid=0.0024, ask=0.0026, last=0.0025)
    ]
    (event,) = d.parse(wrapped("bnbbtc@depth@100ms", DEPTH))
    assert event == Data(
        Channel.BOOK,
        "BNB/BTC",
        1672515782.136,
        BookMessage(
            snapshot=False,
            bids=[("0.0024", "10")],
            asks=[("0.0026", "100")],
            first_id=157,
            last_id=160,
        ),
    )


def test_market_data_from_documented_ticker_and_trade() -> None:
    # 24hrTicker b/a/c; trade p/q [BN-WS §Individual Symbol Ticker Streams, §Trade Streams].
    d = dialect()
    (ticker,) = d.parse(wrapped("bnbbtc@ticker", TICKER))
    assert (ticker.bid, ticker.ask, ticker.last, ticker.volume) == (0.0024, 0.0026, 0.0025, 0.0)
    (trade,) = d.parse(wrapped("bnbbtc@trade", TRADE))
    assert (trade.bid, trade.ask, trade.last, trade.volume) == (None, None, 0.001, 100.0)


@pytest.mark.parametrize("bad", [None, "", "abc", "0", "0.00000000", "-1", "NaN", "inf", True, []])
def test_missing_or_malformed_numbers_leave_market_fields_empty(bad: object) -> None:
    d = dialect()
    ticker = {k: v for k, v in TICKER.items() if k not in "bac"}
    if bad is not None:
        ticker.update(b=bad, a=bad, c=bad)
    (event,) = d.parse(wrapped("bnbbtc@ticker", ticker))
    assert isinstance(event, Data) and event.channel is Channel.TICKER
    assert (event.bid, event.ask, event.last, event.volume) == (None, None, None, 0.0)
    trade = dict(TRADE, p=bad, q=bad)
    (event,) = d.parse(wrapped("bnbbtc@trade", trade))
    assert isinstance(event, Data) and event.event_time == 1672515782.136
    assert (event.last, event.volume) == (None, 0.0)


def test_server_shutdown_raw_and_combined() -> None:
    d = dialect()
    raw = {"e": "serverShutdown", "E": 1770123456789}
    assert d.parse(json.dumps(raw)) == [Notice(NoticeKind.SHUTDOWN, "serverShutdown")]
    assert d.parse(wrapped("!serverShutdown", raw)) == [
        Notice(NoticeKind.SHUTDOWN, "serverShutdown")
    ]


def test_malformed_and_unknown() -> None:
    d = dialect()
    assert isinstance(d.parse("not json")[0], Malformed)
    assert isinstance(d.parse("[1,2]")[0], Malformed)
    broken = dict(DEPTH)
    del broken["U"]
    assert isinstance(d.parse(wrapped("bnbbtc@depth@100ms", broken))[0], Malformed)
    other = dict(TRADE, s="XRPUSDT")
    assert isinstance(d.parse(json.dumps(other))[0], Ignored)


def test_snapshot_request_and_resync_strategy() -> None:
    d = dialect()
    assert d.snapshot_request("BTC/USDT") == (
        "/api/v3/depth",
        {"symbol": "BTCUSDT", "limit": "100"},
        5.0,
    )
    assert d.resubscribe_messages(Subscription(Channel.BOOK, "BTC/USDT")) == []
    assert d.resubscribe_messages(Subscription(Channel.TRADES, "BTC/USDT")) is None
    assert isinstance(d.new_book("BTC/USDT"), BinanceBook)


def diff(first: int, last: int, bids: list[tuple[str, str]] | None = None) -> BookMessage:
    return BookMessage(snapshot=False, bids=bids or [], asks=[], first_id=first, last_id=last)


def snapshot(last_update_id: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return {"lastUpdateId": last_update_id, "bids": bids, "asks": asks}


def test_book_buffers_until_snapshot_then_drops_old_and_applies_rest() -> None:
    book = BinanceBook()
    assert book.needs_snapshot
    assert book.apply(diff(157, 160, [("0.0024", "10")])) is BookVerdict.BUFFERED
    assert book.apply(diff(161, 165, [("0.0023", "5")])) is BookVerdict.BUFFERED
    assert book.apply(diff(166, 170, [("0.0024", "0")])) is BookVerdict.BUFFERED
    verdict = book.apply_snapshot(snapshot(162, [["0.0024", "9"]], [["0.0026", "100"]]))
    assert verdict is BookVerdict.OK
    assert not book.needs_snapshot
    # 157-160 dropped (u <= 162); 161-165 applied (162 in [U;u]); 166-170 deletes 0.0024.
    assert book.book.top(5) == ([("0.0023", "5")], [("0.0026", "100")])
    assert book.book_id == 170
    assert book.best() == (0.0023, 0.0026)


def test_snapshot_older_than_first_buffered_u_means_fetch_again() -> None:
    book = BinanceBook()
    book.apply(diff(157, 160))
    assert book.apply_snapshot(snapshot(156, [], [])) is BookVerdict.BUFFERED
    assert book.needs_snapshot
    assert book.apply_snapshot(snapshot(158, [["1", "1"]], [])) is BookVerdict.OK
    assert not book.needs_snapshot and book.book_id == 160


def test_old_events_ignored_in_order_applied_gap_detected() -> None:
    book = BinanceBook()
    assert book.apply_snapshot(snapshot(100, [["10", "1"]], [["11", "1"]])) is BookVerdict.OK
    assert book.apply(diff(90, 99)) is BookVerdict.IGNORED
    assert book.apply(diff(101, 105, [("10.5", "2")])) is BookVerdict.OK
    assert book.apply(diff(106, 106)) is BookVerdict.OK
    assert book.best() == (10.5, 11.0)
    gap = diff(108, 110)
    assert book.apply(gap) is BookVerdict.GAP
    assert book.needs_snapshot and book.best() == (None, None)
    # The stream keeps flowing: buffered again, a new snapshot resynchronises.
    assert book.apply(diff(111, 112)) is BookVerdict.BUFFERED
    assert book.apply_snapshot(snapshot(109, [["9", "1"]], [])) is BookVerdict.OK
    assert book.book_id == 112


def test_snapshot_before_any_event_is_checked_by_the_first_event() -> None:
    """A snapshot fetched before the first diff arrived cannot be compared with a buffered
    ``U``; when the first event does not link, the snapshot was too old: fetch again, no gap."""
    book = BinanceBook()
    assert book.apply_snapshot(snapshot(100, [["10", "1"]], [["11", "1"]])) is BookVerdict.OK
    assert book.apply(diff(105, 107)) is BookVerdict.BUFFERED
    assert book.needs_snapshot and book.best() == (None, None)
    assert book.apply_snapshot(snapshot(106, [["10", "2"]], [["11", "1"]])) is BookVerdict.OK
    assert book.book_id == 107
    # Once an event linked, a later jump is a real gap.
    assert book.apply(diff(110, 111)) is BookVerdict.GAP


def test_gap_right_after_the_snapshot() -> None:
    book = BinanceBook()
    book.apply(diff(150, 155))
    book.apply(diff(158, 160))
    assert book.apply_snapshot(snapshot(155, [], [])) is BookVerdict.GAP
    assert book.needs_snapshot
    assert book.apply_snapshot(snapshot(159, [["1", "1"]], [])) is BookVerdict.OK
    assert book.book_id == 160


def test_crossed_book_visible_through_best_and_reset() -> None:
    book = BinanceBook()
    book.apply_snapshot(snapshot(1, [["100", "1"]], [["101", "1"]]))
    book.apply(BookMessage(False, [("102", "1")], [], first_id=2, last_id=2))
    bid, ask = book.best()
    assert bid is not None and ask is not None and bid >= ask
    book.reset()
    assert book.needs_snapshot and book.best() == (None, None)


@pytest.mark.parametrize(
    "body, field",
    [
        ([], "JSON object"),
        ({"bids": [], "asks": []}, "lastUpdateId"),
        ({"lastUpdateId": "1", "bids": [], "asks": []}, "lastUpdateId"),
        ({"lastUpdateId": 1, "bids": [["1"]], "asks": []}, "bids"),
        ({"lastUpdateId": 1, "bids": [], "asks": "x"}, "asks"),
    ],
)
def test_bad_snapshot_names_the_field(body: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BinanceBook().apply_snapshot(body)


def test_unanswered_requests_are_bounded() -> None:
    from exporter.streams.dialects._common import PENDING_MAX, PendingRequests

    pending = PendingRequests()
    for request_id in range(PENDING_MAX + 10):
        pending.add(request_id, [SUBS[0]])
    assert pending.pop(0) is None and pending.pop(9) is None
    assert pending.pop(10) == [SUBS[0]]
    assert pending.pop(None, oldest=True) == [SUBS[0]]  # request 11
    assert pending.get(12) == [SUBS[0]]
