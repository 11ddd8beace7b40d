"""The exporter's Coinbase Exchange feed dialect: subscribe shape, ``subscriptions`` acks,
errors, ticker/match/level2/heartbeat/status messages, trade-id gaps and the level2 book
[CB-EX-OV; CB-EX-CH]."""

from __future__ import annotations

import json
from typing import Any

from exporter.streams.dialect import BookVerdict, KeepAlive
from exporter.streams.dialects.coinbase import CoinbaseBook, CoinbaseDialect
from exporter.streams.events import (
    CHANNELS,
    BookMessage,
    Channel,
    Data,
    Heartbeat,
    Ignored,
    Malformed,
    Notice,
    NoticeKind,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)

# Documented examples, field for field [CB-EX-CH; ccxt pro/coinbaseexchange.py].
HEARTBEAT = {
    "type": "heartbeat",
    "sequence": 90,
    "last_trade_id": 20,
    "product_id": "BTC-USD",
    "time": "2014-11-07T08:19:28.464459Z",
}
TICKER = {
    "type": "ticker",
    "sequence": 7388547310,
    "product_id": "BTC-USD",
    "price": "22345.67",
    "open_24h": "22000",
    "volume_24h": "100",
    "low_24h": "21000",
    "high_24h": "23000",
    "volume_30d": "3000",
    "best_bid": "22345.67",
    "best_bid_size": "0.10647825",
    "best_ask": "22349.68",
    "best_ask_size": "0.03131702",
    "side": "sell",
    "time": "2023-03-04T03:37:20.799258Z",
    "trade_id": 11586478,
    "last_size": "0.00352175",
}
MATCH = {
    "type": "match",
    "trade_id": 10,
    "sequence": 50,
    "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
    "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
    "time": "2014-11-07T08:19:27.028459Z",
    "product_id": "BTC-USD",
    "size": "5.23512",
    "price": "400.23",
    "side": "sell",
}
SNAPSHOT = {
    "type": "snapshot",
    "product_id": "BTC-USD",
    "bids": [["10101.10", "0.45054140"]],
    "asks": [["10102.55", "0.57753524"]],
}
L2UPDATE = {
    "type": "l2update",
    "product_id": "BTC-USD",
    "time": "2019-08-14T20:42:27.265Z",
    "changes": [["buy", "10101.80000000", "0.162567"]],
}
SUBS = [Subscription(channel, m) for m in ("BTC/USD", "ETH/USD") for channel in CHANNELS]


def dialect() -> CoinbaseDialect:
    d = CoinbaseDialect()
    d.subscribe_messages(SUBS)
    return d


def test_facts_and_url() -> None:
    d = CoinbaseDialect()
    assert d.keepalive is KeepAlive.HEARTBEAT and d.ping_message() is None
    (limit,) = d.connect_limits
    assert (limit.attempts, limit.window_seconds) == (8, 1)
    assert all(0 < v <= 10 for v in d.default_stale_after.values())
    assert d.symbol("BTC/USD") == "BTC-USD"
    assert d.connect_url("wss://ws-feed.exchange.coinbase.com", SUBS) == (
        "wss://ws-feed.exchange.coinbase.com"
    )
    assert d.connect_url("ws://127.0.0.1:8000/coinbase/ws", SUBS) == (
        "ws://127.0.0.1:8000/coinbase/ws"
    )


def test_subscribe_shape() -> None:
    d = CoinbaseDialect()
    (frame,) = d.subscribe_messages(SUBS[:3] + SUBS[5:])
    assert json.loads(frame) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD", "ETH-USD"],
        "channels": [
            {"name": "ticker", "product_ids": ["BTC-USD"]},
            {"name": "matches", "product_ids": ["BTC-USD"]},
            {"name": "level2_batch", "product_ids": ["BTC-USD", "ETH-USD"]},
            "heartbeat",
            "status",
        ],
    }
    assert d.subscribe_messages([]) == []


def test_subscriptions_ack_one_event_per_channel_and_market() -> None:
    d = dialect()
    ack = {
        "type": "subscriptions",
        "channels": [
            {"name": "heartbeat", "product_ids": ["BTC-USD", "ETH-USD"]},
            {"name": "ticker", "product_ids": ["BTC-USD", "ETH-USD"]},
            {"name": "matches", "product_ids": ["BTC-USD"]},
            {"name": "level2_batch", "product_ids": ["ETH-USD", "SOL-USD"]},
            {"name": "status", "product_ids": []},
        ],
    }
    assert d.parse(json.dumps(ack)) == [
        Subscribed(Subscription(Channel.TICKER, "BTC/USD")),
        Subscribed(Subscription(Channel.TICKER, "ETH/USD")),
        Subscribed(Subscription(Channel.TRADES, "BTC/USD")),
        Subscribed(Subscription(Channel.BOOK, "ETH/USD")),
    ]
    only_heartbeat = {
        "type": "subscriptions",
        "channels": [{"name": "heartbeat", "product_ids": []}],
    }
    assert isinstance(d.parse(json.dumps(only_heartbeat))[0], Ignored)


def test_errors_answer_the_oldest_request_whole() -> None:
    d = CoinbaseDialect()
    bad = [Subscription(Channel.TICKER, "BTC/USDX"), *SUBS[:1]]
    d.subscribe_messages(bad)
    d.subscribe_messages(SUBS[1:2])
    observed = {
        "type": "error",
        "message": "Failed to subscribe",
        "reason": "BTC-USDX is not a valid product",
    }
    # A refused subscribe changes nothing: both subscriptions of that request failed.
    reason = "Failed to subscribe: BTC-USDX is not a valid product"
    assert d.parse(json.dumps(observed)) == [SubscriptionFailed(sub, reason) for sub in bad]
    ack = {"type": "subscriptions", "channels": [{"name": "matches", "product_ids": ["BTC-USD"]}]}
    assert d.parse(json.dumps(ack)) == [Subscribed(SUBS[1])]
    documented = {"type": "error", "message": "error message"}
    assert d.parse(json.dumps(documented)) == [SubscriptionFailed(None, "error message")]
    # resync: the unsubscribe and the subscribe are answered in order.
    d.resubscribe_messages(SUBS[2])
    assert isinstance(d.parse(json.dumps(documented))[0], Ignored)
    assert d.parse(json.dumps(documented)) == [SubscriptionFailed(SUBS[2], "error message")]


def test_data_messages_and_rfc3339_times() -> None:
    d = dialect()
    assert d.parse(json.dumps(TICKER)) == [
        Data(
            Channel.TICKER,
            "BTC/USD",
            1677901040.799258,
            bid=22345.67,
            ask=22349.68,
            last=22345.67,
        )
    ]
    assert d.parse(json.dumps(MATCH)) == [
        Data(Channel.TRADES, "BTC/USD", 1415348367.028459, last=400.23, volume=5.23512)
    ]
    assert d.parse(json.dumps(HEARTBEAT)) == [Heartbeat(1415348368.464459)]
    (snap,) = d.parse(json.dumps(SNAPSHOT))
    assert snap == Data(
        Channel.BOOK,
        "BTC/USD",
        None,
        BookMessage(True, [("10101.10", "0.45054140")], [("10102.55", "0.57753524")]),
    )
    (update,) = d.parse(json.dumps(L2UPDATE))
    assert update == Data(
        Channel.BOOK,
        "BTC/USD",
        1565815347.265,
        BookMessage(False, [("10101.80000000", "0.162567")], []),
    )
    sell = dict(L2UPDATE, changes=[["sell", "10102.55", "0"]])
    (event,) = d.parse(json.dumps(sell))
    assert isinstance(event, Data) and event.book == BookMessage(False, [], [("10102.55", "0")])
    assert isinstance(
        d.parse(json.dumps(dict(L2UPDATE, changes=[["hold", "1", "1"]])))[0], Malformed
    )
    assert isinstance(d.parse(json.dumps({"type": "match", "product_id": "BTC-USD"}))[0], Malformed)
    assert isinstance(d.parse("]")[0], Malformed)


def test_market_data_from_documented_ticker_and_match() -> None:
    # ticker best_bid/best_ask/price; match price/size [CB-EX-CH].
    d = dialect()
    (ticker,) = d.parse(json.dumps(TICKER))
    assert (ticker.bid, ticker.ask, ticker.last, ticker.volume) == (22345.67, 22349.68, 22345.67, 0)
    (trade,) = d.parse(json.dumps(MATCH))
    assert (trade.bid, trade.ask, trade.last, trade.volume) == (None, None, 400.23, 5.23512)
    # last_match (on subscribe) is history: its price is the last one, its size is not new volume.
    (history,) = d.parse(json.dumps(dict(MATCH, type="last_match", trade_id=11)))
    assert isinstance(history, Data) and (history.last, history.volume) == (400.23, 0.0)


def test_malformed_ticker_and_match_numbers_leave_fields_empty() -> None:
    d = dialect()
    (ticker,) = d.parse(json.dumps(dict(TICKER, best_bid=None, best_ask="", price="1e999")))
    assert isinstance(ticker, Data) and (ticker.bid, ticker.ask, ticker.last) == (None, None, None)
    body = {k: v for k, v in MATCH.items() if k not in ("price", "size")}
    (trade,) = d.parse(json.dumps(body))
    assert isinstance(trade, Data) and (trade.last, trade.volume) == (None, 0.0)
    (trade,) = d.parse(json.dumps(dict(MATCH, trade_id=12, size=5, price=401)))
    assert isinstance(trade, Data) and (trade.last, trade.volume) == (401.0, 5.0)


def match(trade_id: int, kind: str = "match") -> str:
    return json.dumps(dict(MATCH, trade_id=trade_id, type=kind))


def test_match_trade_id_continuity_and_last_match_history() -> None:
    d = dialect()
    (last_match,) = d.parse(match(10, "last_match"))
    assert isinstance(last_match, Data) and last_match.event_time is None and last_match.gap == 0
    gaps = []
    for trade_id in (11, 12, 15, 14, 16):
        (event,) = d.parse(match(trade_id))
        assert isinstance(event, Data)
        gaps.append(event.gap)
    assert gaps == [0, 0, 2, 0, 0]


def status(state: str, cancel_only: bool = False) -> str:
    product: dict[str, Any] = {
        "id": "BTC-USD",
        "base_currency": "BTC",
        "quote_currency": "USD",
        "status": state,
        "status_message": None,
        "post_only": False,
        "limit_only": False,
        "cancel_only": cancel_only,
    }
    return json.dumps({"type": "status", "products": [product], "currencies": []})


def test_status_channel_notices_on_change() -> None:
    d = dialect()
    assert d.parse(status("online")) == [Notice(NoticeKind.ONLINE, "online")]
    assert isinstance(d.parse(status("online"))[0], Ignored)
    assert d.parse(status("online", cancel_only=True)) == [
        Notice(NoticeKind.MAINTENANCE, "BTC-USD cancel_only")
    ]
    assert d.parse(status("offline")) == [Notice(NoticeKind.MAINTENANCE, "BTC-USD offline")]
    assert d.parse(status("online")) == [Notice(NoticeKind.ONLINE, "online")]
    others = {"type": "status", "products": [{"id": "SOL-USD", "status": "offline"}]}
    assert isinstance(d.parse(json.dumps(others))[0], Ignored)


def test_book_snapshot_updates_reset_and_crossed() -> None:
    d = dialect()
    book = d.new_book("BTC/USD")
    assert isinstance(book, CoinbaseBook)
    assert book.apply(BookMessage(False, [("1", "1")], [])) is BookVerdict.IGNORED
    for text in (SNAPSHOT, L2UPDATE):
        (event,) = d.parse(json.dumps(text))
        assert isinstance(event, Data) and event.book is not None
        assert book.apply(event.book) is BookVerdict.OK
    assert book.best() == (10101.8, 10102.55)
    assert book.apply(BookMessage(False, [("10103", "1")], [])) is BookVerdict.OK
    bid, ask = book.best()
    assert bid is not None and ask is not None and bid >= ask
    assert book.apply(BookMessage(True, [("1", "1")], [("2", "1")])) is BookVerdict.RESET
    frames = [json.loads(f) for f in d.resubscribe_messages(SUBS[2]) or []]
    assert frames == [
        {"type": "unsubscribe", "channels": [{"name": "level2_batch", "product_ids": ["BTC-USD"]}]},
        {"type": "subscribe", "channels": [{"name": "level2_batch", "product_ids": ["BTC-USD"]}]},
    ]


def test_rfc3339_and_ms_time_parsing() -> None:
    from datetime import datetime

    from exporter.streams.dialects._common import ms_time, rfc3339_time

    expected = datetime.fromisoformat("2023-10-06T17:35:55.440295+00:00").timestamp()
    assert rfc3339_time("2023-10-06T17:35:55.440295Z") == expected
    assert rfc3339_time("2019-08-14T20:42:27.265Z") == 1565815347.265
    assert rfc3339_time("2014-11-07T08:19:28Z") == 1415348368.0
    # Nanoseconds (Advanced Trade envelopes) keep their sub-µs digits within float precision.
    nanos = rfc3339_time("2023-06-23T20:31:26.122969572Z")
    assert nanos is not None and abs(nanos - 1687552286.122969572) < 1e-6
    assert rfc3339_time("2023-10-06T19:35:55.5+02:00") == rfc3339_time("2023-10-06T17:35:55.5Z")
    assert rfc3339_time("2023-10-06T15:35:55.5-02:00") == rfc3339_time("2023-10-06T17:35:55.5Z")
    for bad in (
        None,
        1,
        "",
        "2023-10-06",
        "2023-10-06T17:35:55.5",
        "2023-13-06T17:35:55Z",
        "x" * 30,
    ):
        assert rfc3339_time(bad) is None
    assert ms_time(1672515782136) == 1672515782.136
    assert ms_time("1597026383085") == 1597026383.085
    assert ms_time("1.5e3") == 1.5
    assert ms_time(None) is None and ms_time("soon") is None and ms_time(True) is None
