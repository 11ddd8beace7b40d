"""The exporter's Kraken v2 dialect: subscribe per channel, one ack per symbol, errors, pong
with server time, heartbeat, status notices, trade-id gaps, and the CRC32-checked depth-10 book
with full-precision numbers [KR-BOOK2; KR-CKS2; KR-PING2; KR-STATUS2; KR-TRADE2]."""

from __future__ import annotations

import json
import zlib

from exporter.streams.dialect import BookVerdict, KeepAlive
from exporter.streams.dialects.kraken import KrakenBook, KrakenDialect
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
    Pong,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)

# Documented examples, verbatim (numbers as the wire spells them) [KR-BOOK2; KR-TICK2;
# KR-TRADE2; KR-PING2; KR-STATUS2].
ACK = (
    '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,'
    '"symbol":"ALGO/USD"},"success":true,"time_in":"2023-10-06T17:35:55.219022Z",'
    '"time_out":"2023-10-06T17:35:55.219067Z"}'
)
ERROR = (
    '{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,'
    '"symbol":"XBT/USD","time_in":"2023-10-06T17:35:55.219022Z",'
    '"time_out":"2023-10-06T17:35:55.219067Z"}'
)
TICKER = (
    '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":108359.8,'
    '"bid_qty":0.01362603,"ask":108359.9,"ask_qty":17.17988863,"last":108359.8,'
    '"volume":2158.32346723,"vwap":108894.5,"low":106824,"high":111300,"change":-2679.9,'
    '"change_pct":-2.41}]}'
)
TRADE = (
    '{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell",'
    '"price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,'
    '"timestamp":"2023-09-25T07:49:37.708706Z"}]}'
)
BOOK_UPDATE = (
    '{"channel":"book","type":"update","data":[{"symbol":"MATIC/USD","bids":[{"price":0.5657,'
    '"qty":1098.3947558}],"asks":[],"checksum":2114181697,'
    '"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
)
PONG = (
    '{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",'
    '"time_out":"2023-09-24T14:10:23.799703Z"}'
)
STATUS = (
    '{"channel":"status","type":"update","data":[{"api_version":"v2",'
    '"connection_id":13834774380200032777,"system":"%s","version":"2.0.0"}]}'
)
MARKETS = ("ALGO/USD", "MATIC/USD", "BTC/USD")
SUBS = [Subscription(channel, market) for market in MARKETS for channel in CHANNELS]


def dialect() -> KrakenDialect:
    d = KrakenDialect()
    d.subscribe_messages(SUBS)
    return d


def test_facts_url_and_ping() -> None:
    d = KrakenDialect()
    assert d.keepalive is KeepAlive.HEARTBEAT and d.pong_timeout == 5
    (limit,) = d.connect_limits
    assert (limit.attempts, limit.window_seconds) == (150, 600)
    assert all(0 < v <= 10 for v in d.default_stale_after.values())
    assert d.symbol("BTC/USD") == "BTC/USD"
    assert d.connect_url("wss://ws.kraken.com", SUBS) == "wss://ws.kraken.com/v2"
    assert d.connect_url("ws://127.0.0.1:8000/kraken", SUBS) == "ws://127.0.0.1:8000/kraken/v2"
    assert json.loads(d.ping_message()) == {"method": "ping", "req_id": 1}
    assert d.parse(PONG) == [Pong("101", 1695564623.799703)]


def test_subscribe_one_request_per_channel() -> None:
    d = KrakenDialect()
    frames = [json.loads(f) for f in d.subscribe_messages(SUBS)]
    assert frames == [
        {
            "method": "subscribe",
            "params": {"channel": "ticker", "symbol": list(MARKETS)},
            "req_id": 1,
        },
        {
            "method": "subscribe",
            "params": {"channel": "trade", "symbol": list(MARKETS), "snapshot": False},
            "req_id": 2,
        },
        {
            "method": "subscribe",
            "params": {"channel": "book", "symbol": list(MARKETS), "depth": 10, "snapshot": True},
            "req_id": 3,
        },
    ]


def test_one_ack_per_symbol_and_errors() -> None:
    d = dialect()
    assert d.parse(ACK) == [Subscribed(Subscription(Channel.BOOK, "ALGO/USD"))]
    # OBSERVED error without req_id: attributed to the first waiting subscription of the symbol.
    d2 = KrakenDialect()
    d2.subscribe_messages([Subscription(Channel.TICKER, "XBT/USD")])
    assert d2.parse(ERROR) == [
        SubscriptionFailed(
            Subscription(Channel.TICKER, "XBT/USD"), "Currency pair not supported XBT/USD"
        )
    ]
    # With req_id the channel of that request is known.
    d3 = KrakenDialect()
    d3.subscribe_messages([Subscription(c, "XBT/USD") for c in CHANNELS])
    with_id = json.loads(ERROR) | {"req_id": 3}
    assert d3.parse(json.dumps(with_id)) == [
        SubscriptionFailed(
            Subscription(Channel.BOOK, "XBT/USD"), "Currency pair not supported XBT/USD"
        )
    ]
    unknown = {"error": "Already subscribed", "method": "subscribe", "success": False}
    assert d3.parse(json.dumps(unknown)) == [SubscriptionFailed(None, "Already subscribed")]
    assert isinstance(d.parse('{"method":"unsubscribe","success":true}')[0], Ignored)


def test_data_heartbeat_status() -> None:
    d = dialect()
    quote = {"bid": 108359.8, "ask": 108359.9, "last": 108359.8}
    assert d.parse(TICKER) == [Data(Channel.TICKER, "BTC/USD", None, **quote)]
    with_time = TICKER.replace(
        '"change_pct":-2.41', '"change_pct":-2.41,"timestamp":"2023-10-06T17:35:55.440295Z"'
    )
    assert d.parse(with_time) == [Data(Channel.TICKER, "BTC/USD", 1696613755.440295, **quote)]
    assert d.parse(TRADE) == [
        Data(Channel.TRADES, "MATIC/USD", 1695628177.708706, last=0.5117, volume=40.0)
    ]
    (event,) = d.parse(BOOK_UPDATE)
    assert event == Data(
        Channel.BOOK,
        "MATIC/USD",
        1696613755.440295,
        BookMessage(False, [("0.5657", "1098.3947558")], [], checksum=2114181697),
    )
    assert d.parse('{"channel":"heartbeat"}') == [Heartbeat()]
    assert d.parse(STATUS % "online") == [Notice(NoticeKind.ONLINE, "system online")]
    assert isinstance(d.parse(STATUS % "online")[0], Ignored)
    assert d.parse(STATUS % "maintenance") == [Notice(NoticeKind.MAINTENANCE, "system maintenance")]
    assert d.parse(STATUS % "cancel_only") == [Notice(NoticeKind.MAINTENANCE, "system cancel_only")]
    assert d.parse(STATUS % "post_only") == [Notice(NoticeKind.MAINTENANCE, "system post_only")]
    assert d.parse(STATUS % "online") == [Notice(NoticeKind.ONLINE, "system online")]
    assert isinstance(
        d.parse('{"channel":"book","type":"update","data":[{"symbol":"MATIC/USD"}]}')[0], Malformed
    )
    assert isinstance(
        d.parse('{"channel":"trade","type":"update","data":[{"symbol":"DOGE/USD","trade_id":1}]}')[
            0
        ],
        Ignored,
    )
    assert isinstance(d.parse("nope")[0], Malformed)


def test_market_data_from_documented_ticker_and_trades() -> None:
    # ticker bid/ask/last; trade price/qty, JSON numbers kept as decimal strings or integers
    # by the decoder [KR-TICK2; KR-TRADE2; KR-INTRO §Websockets v2].
    d = dialect()
    (ticker,) = d.parse(TICKER)
    assert (ticker.bid, ticker.ask, ticker.last, ticker.volume) == (108359.8, 108359.9, 108359.8, 0)
    (integers,) = d.parse(TICKER.replace("108359.8", "108360"))
    assert (integers.bid, integers.last) == (108360.0, 108360.0)
    two = TRADE.replace(
        '"timestamp":"2023-09-25T07:49:37.708706Z"}',
        '"timestamp":"2023-09-25T07:49:37.708706Z"},{"symbol":"MATIC/USD","side":"buy",'
        '"price":0.5118,"qty":2.50000000,"ord_type":"limit","trade_id":4665907,'
        '"timestamp":"2023-09-25T07:49:37.709000Z"}',
    )
    (trades,) = d.parse(two)
    assert trades.last == 0.5118 and trades.volume == 42.5 and trades.gap == 0
    # One message for two symbols: one event each, with its own numbers.
    both = TRADE.replace(
        "}]}", '},{"symbol":"ALGO/USD","side":"buy","price":0.1,"qty":7,"ord_type":"limit",'
        '"trade_id":9,"timestamp":"2023-09-25T07:49:37.709000Z"}]}',
    )  # fmt: skip
    events = {e.market: (e.last, e.volume) for e in d.parse(both) if isinstance(e, Data)}
    assert events == {"MATIC/USD": (0.5117, 40.0), "ALGO/USD": (0.1, 7.0)}


def test_trade_snapshot_is_history_and_bad_numbers_are_empty() -> None:
    d = dialect()
    (history,) = d.parse(trade(100, "snapshot"))
    assert isinstance(history, Data) and (history.last, history.volume) == (None, 0.0)
    (bad,) = d.parse(TRADE.replace('"price":0.5117,"qty":40.0', '"price":"x","qty":null'))
    assert isinstance(bad, Data) and (bad.last, bad.volume) == (None, 0.0)
    (ticker,) = d.parse(TICKER.replace('"bid":108359.8', '"bid":0').replace('"ask":108359.9,', ""))
    assert isinstance(ticker, Data) and (ticker.bid, ticker.ask, ticker.last) == (
        None,
        None,
        108359.8,
    )


def trade(trade_id: int, kind: str = "update") -> str:
    return TRADE.replace("4665906", str(trade_id)).replace('"type":"update"', f'"type":"{kind}"')


def test_trade_id_continuity() -> None:
    d = dialect()
    gaps = []
    for text in (trade(100, "snapshot"), trade(101), trade(104), trade(103), trade(105)):
        (event,) = d.parse(text)
        assert isinstance(event, Data)
        gaps.append(event.gap)
    assert gaps == [0, 0, 2, 0, 0]
    second = (
        '{"symbol":"MATIC/USD","side":"buy","price":0.5118,"qty":1.0,"ord_type":"limit",'
        '"trade_id":108,"timestamp":"2023-09-25T07:49:38.000000Z"}'
    )
    two = TRADE.replace("}]}", "}," + second + "]}").replace("4665906", "106")
    (event,) = d.parse(two)  # 106 follows 105; 107 is missing before 108
    assert isinstance(event, Data) and event.gap == 1 and event.event_time == 1695628178.0
    (snapshot,) = d.parse(trade(90, "snapshot"))
    assert isinstance(snapshot, Data) and snapshot.event_time is None and snapshot.gap == 0


SNAPSHOT = (
    '{"channel":"book","type":"snapshot","data":[{"symbol":"ALGO/USD",'
    '"bids":[{"price":0.5657,"qty":1098.39475580},{"price":0.5655,"qty":0.00100000}],'
    '"asks":[{"price":0.5660,"qty":10.00000000},{"price":0.5661,"qty":5.12300000}],'
    '"checksum":%d}]}'
)
UPDATE = (
    '{"channel":"book","type":"update","data":[{"symbol":"ALGO/USD",'
    '"bids":[{"price":0.5656,"qty":2.00000000}],"asks":[{"price":0.5660,"qty":0.00000000}],'
    '"checksum":%d,"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
)


def crc(text: str) -> int:
    return zlib.crc32(text.encode())


def test_full_precision_strings_drive_the_checksum() -> None:
    d = dialect()
    book = d.new_book("ALGO/USD")
    assert isinstance(book, KrakenBook)
    # asks low→high, then bids high→low; "." removed, leading zeros stripped [KR-CKS2].
    snap_sum = crc("56601000000000566151230000056571098394755805655100000")
    (event,) = d.parse(SNAPSHOT % snap_sum)
    assert isinstance(event, Data) and event.book is not None
    assert event.book.bids[0] == ("0.5657", "1098.39475580")
    assert event.book.asks[0] == ("0.5660", "10.00000000")
    assert book.apply(event.book) is BookVerdict.OK
    update_sum = crc("5661512300000565710983947558056562000000005655100000")
    (event,) = d.parse(UPDATE % update_sum)
    assert isinstance(event, Data) and event.book is not None
    assert book.apply(event.book) is BookVerdict.OK
    assert book.best() == (0.5657, 0.5661)
    (event,) = d.parse(UPDATE % (update_sum ^ 1))
    assert isinstance(event, Data) and event.book is not None
    assert book.apply(event.book) is BookVerdict.CHECKSUM
    assert book.best() == (None, None)
    assert book.apply(event.book) is BookVerdict.IGNORED
    (event,) = d.parse(SNAPSHOT % (snap_sum ^ 1))
    assert isinstance(event, Data) and event.book is not None
    assert book.apply(event.book) is BookVerdict.CHECKSUM


def test_book_truncates_to_depth_ten_before_the_checksum() -> None:
    book = KrakenBook()
    bids = [(f"{100 - i}.0", "1.0") for i in range(12)]
    asks = [(f"{200 + i}.0", "1.0") for i in range(12)]
    top_asks = "".join(f"{200 + i}010" for i in range(10))
    top_bids = "".join(f"{100 - i}010" for i in range(10))
    assert (
        book.apply(BookMessage(True, bids, asks, checksum=crc(top_asks + top_bids)))
        is BookVerdict.OK
    )
    assert len(book.book.bids) == 10 and len(book.book.asks) == 10
    # A better bid pushes 91.0 out; no delete is sent for it [KR-CKS2 §Maintaining the book].
    new_bids = "100.510" + "".join(f"{100 - i}010" for i in range(9))
    message = BookMessage(
        False, [("100.5", "1.0")], [], checksum=crc(top_asks + new_bids.replace("100.5", "1005"))
    )
    assert book.apply(message) is BookVerdict.OK
    assert book.book.top(20)[0][-1] == ("92.0", "1.0")
    crossed = BookMessage(True, [("10", "1")], [("9", "1")])
    assert book.apply(crossed) is BookVerdict.RESET
    bid, ask = book.best()
    assert bid is not None and ask is not None and bid >= ask


def test_resubscribe_book() -> None:
    d = dialect()
    frames = [
        json.loads(f) for f in d.resubscribe_messages(Subscription(Channel.BOOK, "BTC/USD")) or []
    ]
    assert [(f["method"], f["params"]) for f in frames] == [
        ("unsubscribe", {"channel": "book", "symbol": ["BTC/USD"], "depth": 10, "snapshot": True}),
        ("subscribe", {"channel": "book", "symbol": ["BTC/USD"], "depth": 10, "snapshot": True}),
    ]
