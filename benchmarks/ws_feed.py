"""The market-data feed the WebSocket benchmark's sender blasts: valid OKX and Binance messages
in their documented shapes, whose order books stay consistent forever (no false gap, no
checksum mismatch, never crossed).

Each market's book is a :class:`BookCycle`: a fixed 30-level book and a cycle of
``2 × CYCLE_LEVELS`` one-level deltas (change a quantity and put it back, delete a level and
re-insert it), so the book after delta ``m`` depends on ``m % cycle`` only and a snapshot at any
update id can be produced on demand (Binance's REST ``GET /api/v3/depth``). The message text is
pre-generated per market and kind (templates); only ids and event times are filled in at send
time, so the sender spends a few microseconds per message.

Shapes, all from the exchanges' documentation:

- OKX ``tickers``, ``trades`` (``tradeId`` +1, ``count`` 1) and ``books`` (snapshot with
  ``prevSeqId`` -1, then updates with ``prevSeqId`` = the previous ``seqId`` and the documented
  signed CRC32 ``checksum`` of the top 25 levels), event time ``ts`` in ms as a string
  [OKX-MD §WS / Tickers channel, §WS / Trades channel, §WS / Order book channel, §Checksum];
  subscribe acknowledgement ``{"id","event":"subscribe","arg","connId"}`` [OKX-OV §Subscribe].
- Binance combined-stream payloads ``{"stream","data"}`` of ``24hrTicker``, ``trade`` and
  ``depthUpdate`` (``U`` = ``u`` = previous ``u`` + 1), event time ``E`` in ms [BN-WS §General
  WSS information, §Individual Symbol Ticker Streams, §Trade Streams, §Diff. Depth Stream];
  acknowledgement ``{"result":null,"id":n}`` [BN-WS §Live Subscribing/Unsubscribing]; the REST
  snapshot ``{"lastUpdateId","bids","asks"}`` [BN-WS §How to manage a local order book
  correctly].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from exporter.streams.checksums import okx_checksum

MARKETS: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
"""Markets each feed carries (unified names)."""

BOOK_LEVELS = 30
"""Levels per side of every book (more than the 25 the OKX checksum covers)."""

CYCLE_LEVELS = 10
"""Levels the delta cycle touches; the cycle is twice as long (change, then restore)."""

_PRICES: dict[str, tuple[float, float, int]] = {
    "BTC": (60000.0, 0.1, 1),
    "ETH": (3000.0, 0.01, 2),
    "SOL": (150.0, 0.01, 2),
}
"""Base: (mid price, tick, decimals)."""

Level = tuple[str, str]


def _qty(index: int, alternate: bool = False) -> str:
    return f"{0.5 + index * 0.125 + (0.375 if alternate else 0.0):.8f}"


class BookCycle:
    """One market's deterministic book (see the module docstring).

    Args:
        base: the base asset (``BTC``, ``ETH``, ``SOL``; others price like SOL).

    Attributes:
        bids / asks: the base book, best first, as ``(price, qty)`` strings.
        cycle: deltas per cycle.
        okx_checksums: OKX checksum of the book after ``m % cycle`` deltas.
    """

    def __init__(self, base: str) -> None:
        mid, tick, decimals = _PRICES.get(base, _PRICES["SOL"])
        self.bids: list[Level] = [
            (f"{mid - tick * (i + 1):.{decimals}f}", _qty(i)) for i in range(BOOK_LEVELS)
        ]
        self.asks: list[Level] = [
            (f"{mid + tick * (i + 1):.{decimals}f}", _qty(i)) for i in range(BOOK_LEVELS)
        ]
        self.cycle = 2 * CYCLE_LEVELS
        self.okx_checksums = [okx_checksum(*self.book_after(m)) for m in range(self.cycle)]

    def delta(self, m: int) -> tuple[list[Level], list[Level]]:
        """``(bid changes, ask changes)`` of delta number ``m`` (1, 2, …): even levels change
        quantity and change back, odd levels are deleted (quantity ``0``) and re-inserted."""
        k = (m - 1) % self.cycle
        level, restore = divmod(k, 2)
        bid, ask = self.bids[level], self.asks[level]
        if level % 2 == 0:
            if restore:
                return [bid], [ask]
            return [(bid[0], _qty(level, True))], [(ask[0], _qty(level, True))]
        if restore:
            return [bid], [ask]
        return [(bid[0], "0")], [(ask[0], "0")]

    def book_after(self, m: int) -> tuple[list[Level], list[Level]]:
        """``(bids, asks)`` after ``m`` deltas (``m`` = 0: the base book), best first, with
        deleted levels left out."""
        bids, asks = list(self.bids), list(self.asks)
        if m % self.cycle:
            bid_changes, ask_changes = self.delta(m)
            level = ((m - 1) % self.cycle) // 2
            for side, changes in ((bids, bid_changes), (asks, ask_changes)):
                if changes[0][1] == "0":
                    del side[level]
                else:
                    side[level] = changes[0]
        return bids, asks


def _okx_levels(levels: Sequence[Level]) -> str:
    return json.dumps(
        [[p, q, "0", "1" if q != "0" else "0"] for p, q in levels], separators=(",", ":")
    )


def _binance_levels(levels: Sequence[Level]) -> str:
    return json.dumps([[p, q] for p, q in levels], separators=(",", ":"))


@dataclass
class MarketFeed:
    """One market's counters and templates on one exchange.

    Attributes:
        market: unified name.
        book: its :class:`BookCycle`.
        deltas: book deltas sent so far (update number ``m``).
        trades: trades sent so far.
        first_id: the update / sequence id of the base book (``seqId`` of the OKX snapshot,
            ``lastUpdateId`` before Binance's first diff).
    """

    market: str
    book: BookCycle
    deltas: int = 0
    trades: int = 0
    first_id: int = 1_000_000
    templates: dict[str, str] = field(default_factory=dict)


class OkxFeed:
    """OKX v5 public messages for :data:`MARKETS` (see the module docstring)."""

    def __init__(self, markets: Sequence[str] = MARKETS) -> None:
        self.markets = {m: MarketFeed(m, BookCycle(m.split("/")[0])) for m in markets}
        for feed in self.markets.values():
            inst = feed.market.replace("/", "-")
            arg = '{"arg":{"channel":"%s","instId":"' + inst + '"}'
            bid, ask = feed.book.bids[0][0], feed.book.asks[0][0]
            feed.templates["ticker"] = (
                arg % "tickers" + ',"data":[{"instType":"SPOT","instId":"' + inst + '","last":"'
                f'{bid}","lastSz":"0.1","askPx":"{ask}","askSz":"11","bidPx":"{bid}",'
                '"bidSz":"5","open24h":"'
                + bid
                + '","high24h":"'
                + ask
                + '","low24h":"'
                + bid
                + '","volCcy24h":"2222","vol24h":"2222","sodUtc0":"'
                + bid
                + '","sodUtc8":"'
                + bid
                + '","ts":"%d"}]}'
            )
            feed.templates["trade"] = (
                arg % "trades"
                + ',"data":[{"instId":"'
                + inst
                + '","tradeId":"%d","px":"'
                + bid
                + '","sz":"0.12060306","side":"buy","ts":"%d","count":"1",'
                '"source":"0","seqId":%d}]}'
            )
            feed.templates["book"] = (
                arg % "books" + ',"action":"update","data":[{"asks":%s,"bids":%s,"ts":"%d",'
                '"checksum":%d,"prevSeqId":%d,"seqId":%d}]}'
            )
        self._deltas = {
            m: [
                (_okx_levels(f.book.delta(k)[1]), _okx_levels(f.book.delta(k)[0]))
                for k in range(1, f.book.cycle + 1)
            ]
            for m, f in self.markets.items()
        }

    @staticmethod
    def ack(request_id: str, channel: str, inst_id: str) -> str:
        """The subscribe acknowledgement of one arg [OKX-OV §Subscribe]."""
        arg = json.dumps({"channel": channel, "instId": inst_id}, separators=(",", ":"))
        return f'{{"id":"{request_id}","event":"subscribe","arg":{arg},"connId":"bench001"}}'

    def snapshot(self, market: str, ts_ms: int) -> str:
        """The ``books`` snapshot at the feed's current sequence (``prevSeqId`` -1)."""
        feed = self.markets[market]
        bids, asks = feed.book.book_after(feed.deltas)
        checksum = feed.book.okx_checksums[feed.deltas % feed.book.cycle]
        inst = market.replace("/", "-")
        return (
            f'{{"arg":{{"channel":"books","instId":"{inst}"}},"action":"snapshot","data":[{{'
            f'"asks":{_okx_levels(asks)},"bids":{_okx_levels(bids)},"ts":"{ts_ms}",'
            f'"checksum":{checksum},"prevSeqId":-1,"seqId":{feed.first_id + feed.deltas}}}]}}'
        )

    def message(self, market: str, kind: str, ts_ms: int) -> str:
        """The next ``kind`` message (``ticker``, ``trade``, ``book``) of ``market``."""
        feed = self.markets[market]
        if kind == "ticker":
            return feed.templates["ticker"] % ts_ms
        if kind == "trade":
            feed.trades += 1
            trade_id = feed.first_id + feed.trades
            return feed.templates["trade"] % (trade_id, ts_ms, trade_id)
        feed.deltas += 1
        m = feed.deltas
        asks, bids = self._deltas[market][(m - 1) % feed.book.cycle]
        seq = feed.first_id + m
        return feed.templates["book"] % (
            asks,
            bids,
            ts_ms,
            feed.book.okx_checksums[m % feed.book.cycle],
            seq - 1,
            seq,
        )


class BinanceFeed:
    """Binance spot combined-stream messages for :data:`MARKETS` (see the module docstring)."""

    def __init__(self, markets: Sequence[str] = MARKETS) -> None:
        self.markets = {m: MarketFeed(m, BookCycle(m.split("/")[0])) for m in markets}
        self.by_symbol = {m.replace("/", ""): f for m, f in self.markets.items()}
        for feed in self.markets.values():
            symbol = feed.market.replace("/", "")
            lower = symbol.lower()
            bid, ask = feed.book.bids[0][0], feed.book.asks[0][0]
            feed.templates["ticker"] = (
                '{"stream":"'
                + lower
                + '@ticker","data":{"e":"24hrTicker","E":%d,"s":"'
                + symbol
                + '","p":"0.0015","P":"250.00","w":"'
                + bid
                + '","x":"'
                + bid
                + '","c":"'
                + bid
                + '","Q":"10","b":"'
                + bid
                + '","B":"10","a":"'
                + ask
                + '","A":"100","o":"'
                + bid
                + '","h":"'
                + ask
                + '","l":"'
                + bid
                + '","v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":%d,"n":%d}}'
            )
            feed.templates["trade"] = (
                '{"stream":"'
                + lower
                + '@trade","data":{"e":"trade","E":%d,"s":"'
                + symbol
                + '","t":%d,"p":"'
                + bid
                + '","q":"0.12060306","T":%d,"m":true,"M":true}}'
            )
            feed.templates["book"] = (
                '{"stream":"'
                + lower
                + '@depth@100ms","data":{"e":"depthUpdate","E":%d,"s":"'
                + symbol
                + '","U":%d,"u":%d,"b":%s,"a":%s}}'
            )
        self._deltas = {
            m: [
                (_binance_levels(f.book.delta(k)[0]), _binance_levels(f.book.delta(k)[1]))
                for k in range(1, f.book.cycle + 1)
            ]
            for m, f in self.markets.items()
        }

    @staticmethod
    def ack(request_id: object) -> str:
        """The subscribe acknowledgement [BN-WS §Live Subscribing/Unsubscribing]."""
        return json.dumps({"result": None, "id": request_id}, separators=(",", ":"))

    def snapshot(self, symbol: str, limit: int = 100) -> dict[str, object]:
        """The REST ``GET /api/v3/depth`` body at the feed's current update id.

        Raises:
            KeyError: unknown symbol (``BTCUSDT`` spelling).
        """
        feed = self.by_symbol[symbol.upper()]
        bids, asks = feed.book.book_after(feed.deltas)
        return {
            "lastUpdateId": feed.first_id + feed.deltas,
            "bids": [[p, q] for p, q in bids[:limit]],
            "asks": [[p, q] for p, q in asks[:limit]],
        }

    def message(self, market: str, kind: str, ts_ms: int) -> str:
        """The next ``kind`` message (``ticker``, ``trade``, ``book``) of ``market``."""
        feed = self.markets[market]
        if kind == "ticker":
            return feed.templates["ticker"] % (ts_ms, feed.first_id + feed.trades, feed.trades)
        if kind == "trade":
            feed.trades += 1
            return feed.templates["trade"] % (ts_ms, feed.first_id + feed.trades, ts_ms)
        feed.deltas += 1
        m = feed.deltas
        bids, asks = self._deltas[market][(m - 1) % feed.book.cycle]
        update = feed.first_id + m
        return feed.templates["book"] % (ts_ms, update, update, bids, asks)


ROUND: tuple[str, ...] = ("ticker", "trade", "book", "book")
"""Message kinds per market per round: half of the messages are book deltas."""


def schedule(markets: Sequence[str]) -> list[tuple[str, str]]:
    """One round of ``(market, kind)`` pairs, markets interleaved: every market gets
    :data:`ROUND` once per round."""
    return [(market, kind) for kind in ROUND for market in markets]
