"""A fake exchange for the stream core's tests: a tiny JSON WebSocket protocol (a dialect and a
loopback ``websockets`` server speaking it), a fake BookSync, and helpers to build a stream.

Protocol (one JSON object per text frame):

- client → server: ``{"op":"sub","ch":"ticker","m":"BTC/USDT"}`` (one per subscription),
  ``{"op":"ping"}``, ``{"op":"resub","ch":"book","m":...}``;
- server → client: ``{"ack":ch,"m":m}``, ``{"err":text,"ch":ch,"m":m}``, ``{"pong":1}``,
  ``{"hb":1}``, ``{"notice":"shutdown"|"maintenance"|"online"}``, data
  ``{"ch":ch,"m":m,"t":event_time_s}`` (optionally with market data ``bid``, ``ask``,
  ``last``, ``vol``) and book data with ``snap``, ``b``, ``a``, ``seq``, ``cs`` (checksum:
  ``-1`` means "mismatch").

Imported by the ``test_ws_*`` modules (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from exporter.config import ExchangeConfig
from exporter.market.data import MarketData
from exporter.state import ExchangeState
from exporter.streams.backoff import Backoff
from exporter.streams.connection import StreamConnection
from exporter.streams.dialect import BookSync, BookVerdict, ConnectLimit, KeepAlive, StreamDialect
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
    StreamEvent,
    Subscribed,
    Subscription,
    SubscriptionFailed,
)
from exporter.streams.integrity import Fetch
from exporter.streams.limits import ConnectLimiter
from exporter.streams.metrics import StreamMetrics
from exporter.streams.settings import StreamPlan
from exporter.streams.status import StreamStatus


class FakeBook(BookSync):
    """A book whose messages must come with ``last_id`` = previous + 1 (else ``gap``) and whose
    checksum ``-1`` means mismatch; ``needs_snapshot`` books wait for ``apply_snapshot``."""

    start_needs_snapshot: ClassVar[bool] = False

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.last: int | None = None
        self.needs_snapshot = self.start_needs_snapshot
        self.snapshots: list[object] = []

    def apply(self, message: BookMessage) -> BookVerdict:
        if self.needs_snapshot:
            return BookVerdict.BUFFERED
        if message.snapshot:
            self.bids.clear()
            self.asks.clear()
        elif (
            self.last is not None
            and message.last_id is not None
            and message.last_id != self.last + 1
        ):
            return BookVerdict.GAP
        if message.last_id is not None:
            self.last = message.last_id
        for side, levels in ((self.bids, message.bids), (self.asks, message.asks)):
            for price, qty in levels:
                if float(qty) == 0:
                    side.pop(float(price), None)
                else:
                    side[float(price)] = float(qty)
        if message.checksum == -1:
            return BookVerdict.CHECKSUM
        return BookVerdict.RESET if message.snapshot else BookVerdict.OK

    def apply_snapshot(self, body: object) -> BookVerdict:
        assert isinstance(body, dict)
        self.snapshots.append(body)
        self.bids = {float(p): float(q) for p, q in body["bids"]}
        self.asks = {float(p): float(q) for p, q in body["asks"]}
        self.last = int(body["lastUpdateId"])
        self.needs_snapshot = False
        return BookVerdict.OK

    def best(self) -> tuple[float | None, float | None]:
        return (max(self.bids) if self.bids else None, min(self.asks) if self.asks else None)

    def reset(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.last = None
        self.needs_snapshot = self.start_needs_snapshot


class FakeDialect(StreamDialect):
    """The tiny JSON protocol above; subclass to change the class attributes."""

    exchange: ClassVar[str] = "binance"
    default_url: ClassVar[str] = "ws://127.0.0.1:9"
    keepalive: ClassVar[KeepAlive] = KeepAlive.CLIENT_TEXT
    ping_interval: ClassVar[float] = 0.3
    pong_timeout: ClassVar[float] = 2.0
    connect_limits: ClassVar[tuple[ConnectLimit, ...]] = (ConnectLimit(1000, 1.0, "[TEST]"),)
    max_lifetime: ClassVar[float | None] = None
    max_client_messages_per_second: ClassVar[float | None] = None
    default_stale_after: ClassVar[Mapping[Channel, float]] = dict.fromkeys(CHANNELS, 1.0)
    book_class: ClassVar[type[FakeBook]] = FakeBook
    resubscribe: ClassVar[bool] = True
    snapshot: ClassVar[tuple[str, Mapping[str, str], float] | None] = None

    def symbol(self, market: str) -> str:
        base, sep, quote = market.partition("/")
        if not sep:
            raise ValueError(f"market {market!r} is not BASE/QUOTE")
        return (base + quote).lower()

    def connect_url(self, url: str, subscriptions: Sequence[Subscription]) -> str:
        return f"{url.rstrip('/')}/fake"

    def subscribe_messages(self, subscriptions: Sequence[Subscription]) -> list[str]:
        return [
            json.dumps({"op": "sub", "ch": s.channel.value, "m": s.market}) for s in subscriptions
        ]

    def resubscribe_messages(self, subscription: Subscription) -> list[str] | None:
        if not self.resubscribe:
            return None
        return [json.dumps({"op": "resub", "ch": "book", "m": subscription.market})]

    def ping_message(self) -> str | None:
        return json.dumps({"op": "ping"})

    def parse(self, text: str) -> list[StreamEvent]:
        try:
            msg = json.loads(text)
        except ValueError:
            return [Malformed("not JSON", text[:50])]
        if "ch" in msg and "t" in msg:
            channel = Channel(msg["ch"])
            book = None
            if channel is Channel.BOOK:
                book = BookMessage(
                    snapshot=bool(msg.get("snap")),
                    bids=[tuple(x) for x in msg.get("b", [])],  # type: ignore[misc]
                    asks=[tuple(x) for x in msg.get("a", [])],  # type: ignore[misc]
                    last_id=msg.get("seq"),
                    checksum=msg.get("cs"),
                )
            return [
                Data(
                    channel,
                    msg["m"],
                    msg["t"],
                    book,
                    gap=msg.get("gap", 0),
                    bid=msg.get("bid"),
                    ask=msg.get("ask"),
                    last=msg.get("last"),
                    volume=msg.get("vol", 0.0),
                )
            ]
        if "ack" in msg:
            return [Subscribed(Subscription(Channel(msg["ack"]), msg["m"]))]
        if "err" in msg:
            sub = Subscription(Channel(msg["ch"]), msg["m"]) if "ch" in msg else None
            return [SubscriptionFailed(sub, msg["err"])]
        if "pong" in msg:
            return [Pong()]
        if "hb" in msg:
            return [Heartbeat()]
        if "notice" in msg:
            return [Notice(NoticeKind(msg["notice"]), "fake notice")]
        return [Ignored("unknown")]

    def new_book(self, market: str) -> BookSync:
        return self.book_class()

    def snapshot_request(self, market: str) -> tuple[str, Mapping[str, str], float] | None:
        return self.snapshot


class FakeExchange:
    """A loopback WebSocket server speaking the fake protocol.

    Attributes (change them while running):
        channels: channels it sends data on (every ``period`` seconds per subscription).
        reject: channels whose subscriptions it refuses.
        answer_pings: whether it answers ``{"op":"ping"}``.
        send_data: whether any data flows (False: a stalled feed).
        lag: seconds subtracted from the event time it stamps.
        market_fields: per channel, extra fields of every data frame (``bid``, ``ask``,
            ``last``, ``vol``: market data).
        connections: every connection's open time (monotonic).
        received: every client frame.
    """

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.channels: set[Channel] = set(CHANNELS)
        self.reject: set[Channel] = set()
        self.answer_pings = True
        self.send_data = True
        self.lag = 0.0
        self.market_fields: dict[Channel, dict[str, float]] = {}
        self.connections: list[float] = []
        self.received: list[str] = []
        self.open: set[ServerConnection] = set()
        self.book_frames: Callable[[str, int], dict[str, Any]] | None = None
        self._server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeExchange:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def close_all(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every open connection from the server side."""
        for ws in list(self.open):
            await ws.close(code, reason)

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Send one frame to every open connection."""
        for ws in list(self.open):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps(message))

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections.append(time.monotonic())
        self.open.add(ws)
        subs: list[tuple[str, str]] = []
        feeder = asyncio.create_task(self._feed(ws, subs))
        try:
            async for frame in ws:
                assert isinstance(frame, str)
                self.received.append(frame)
                msg = json.loads(frame)
                if msg["op"] == "sub":
                    if Channel(msg["ch"]) in self.reject:
                        await ws.send(
                            json.dumps({"err": "refused", "ch": msg["ch"], "m": msg["m"]})
                        )
                    else:
                        subs.append((msg["ch"], msg["m"]))
                        await ws.send(json.dumps({"ack": msg["ch"], "m": msg["m"]}))
                elif msg["op"] == "ping" and self.answer_pings:
                    await ws.send(json.dumps({"pong": 1}))
        except ConnectionClosed:
            pass
        finally:
            feeder.cancel()
            self.open.discard(ws)

    async def _feed(self, ws: ServerConnection, subs: list[tuple[str, str]]) -> None:
        seq = 0
        try:
            while True:
                await asyncio.sleep(self.period)
                if not self.send_data:
                    continue
                seq += 1
                for channel, market in list(subs):
                    if Channel(channel) not in self.channels:
                        continue
                    msg: dict[str, Any] = {"ch": channel, "m": market, "t": time.time() - self.lag}
                    msg.update(self.market_fields.get(Channel(channel), {}))
                    if channel == "book":
                        if self.book_frames is not None:
                            msg.update(self.book_frames(market, seq))
                        else:
                            msg.update({"snap": seq == 1, "b": [["100", "1"]], "a": [["101", "1"]],
                                        "seq": seq})  # fmt: skip
                    await ws.send(json.dumps(msg))
        except ConnectionClosed:
            pass


def exchange_config(**extra: Any) -> ExchangeConfig:
    """A binance ExchangeConfig for building an ExchangeState (no websocket block)."""
    return ExchangeConfig.model_validate(
        {"name": "fake", "profile": "binance", "base_url": "http://127.0.0.1:9", **extra}
    )


def make_plan(
    url: str,
    channels: Sequence[Channel] = CHANNELS,
    markets: Sequence[str] = ("BTC/USDT",),
    stale_after: float = 1.0,
    weight_budget: float = 0.1,
) -> StreamPlan:
    """A stream plan for exchange ``fake``."""
    return StreamPlan(
        exchange="fake",
        profile="binance",
        url=url,
        channels=tuple(channels),
        markets=tuple(markets),
        stale_after=tuple((c, stale_after) for c in channels),
        open_timeout=5.0,
        weight_budget=weight_budget,
        rest_base_url="http://127.0.0.1:9",
        rest_timeout=3.0,
        max_body_bytes=1 << 20,
    )


class Rig:
    """A StreamConnection on a fresh registry, with everything a test reads."""

    def __init__(
        self,
        plan: StreamPlan,
        dialect: type[StreamDialect] = FakeDialect,
        fetch: Fetch | None = None,
        state: ExchangeState | None = None,
        market_data: MarketData | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.metrics = StreamMetrics(self.registry)
        self.metrics.declare(plan.exchange, plan.channels)
        self.state = state or ExchangeState.for_config(exchange_config())
        self.status = StreamStatus(plan.public_url(), plan.stale_map)
        self.state.streams = self.status
        self.limiter = ConnectLimiter(dialect.connect_limits, plan.weight_budget)
        self.backoff = Backoff(base=0.05, cap=0.2)
        self.connection = StreamConnection(
            plan,
            dialect,
            self.metrics,
            self.state,
            self.status,
            self.limiter,
            self.backoff,
            fetch=fetch,
            market_data=market_data,
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Rig:
        self.task = asyncio.create_task(self.connection.run())
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.connection.stop()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"exchange": "fake", **labels})


async def until(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``condition`` every 20 ms until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)


def test_fake_dialect_round_trips_its_protocol() -> None:
    dialect = FakeDialect()
    frames = dialect.subscribe_messages([Subscription(Channel.TICKER, "BTC/USDT")])
    assert json.loads(frames[0]) == {"op": "sub", "ch": "ticker", "m": "BTC/USDT"}
    (event,) = dialect.parse('{"ch": "trades", "m": "BTC/USDT", "t": 1.5}')
    assert isinstance(event, Data) and event.channel is Channel.TRADES and event.event_time == 1.5
    assert isinstance(dialect.parse("nope")[0], Malformed)
