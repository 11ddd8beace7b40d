"""Run the exporter's real stream code against the simulator's WebSocket feeds, and read back
what it measured (issue 13 acceptance tests: ``tests/exporter/test_ws_vs_simulator*.py``).

- :data:`VENUES`: per exchange the market streamed and the simulator paths used.
- :func:`stream_config`: an exporter config whose ``websocket:`` blocks point at a simulator.
- :class:`RunningExporter`: the exporter's own entry point (:class:`ProbeScheduler`, REST probes
  and streams) as an async context manager, with metric readers and the local books.
- :func:`rest_top` / :func:`book_matches_rest`: the simulator's REST depth next to a local book.
- :class:`BareClient`: a WebSocket client (wsproto framing) that does nothing to keep its
  connection alive: it never answers server pings and sends only what it is told to, so the
  simulator's keep-alive rules can be seen cutting it.

Nothing here talks to the internet: every URL is the simulator's loopback address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Event, Request, TextMessage

from exporter.config import ExporterConfig, parse_config
from exporter.metrics import ExporterMetrics
from exporter.scheduler import ProbeScheduler
from exporter.streams.events import CHANNELS, ReconnectReason

__all__ = [
    "CHANNEL_COUNTERS",
    "EXCHANGE_COUNTERS",
    "VENUES",
    "BareClient",
    "Counters",
    "RunningExporter",
    "Venue",
    "book_matches_rest",
    "gather_named",
    "local_top",
    "rest_top",
    "stream_config",
    "until",
]


@dataclass(frozen=True, slots=True)
class Venue:
    """One exchange as the tests stream it from the simulator.

    Attributes:
        market: the unified market streamed (``BTC/USDT``).
        ws_path: the path under the simulator's origin given as the ``websocket.url`` (the
            exporter's dialect appends its documented path; Coinbase's feed lives at the host
            root, so its simulator path is given whole).
        dialect_path: the full path the exporter dials (for a bare client).
        depth_path: the REST depth request for the top levels (path and query).
        ticker_path: a REST ticker request (``nothing else breaks``: REST keeps answering).
    """

    market: str
    ws_path: str
    dialect_path: str
    depth_path: str
    ticker_path: str


VENUES: dict[str, Venue] = {
    "binance": Venue(
        "BTC/USDT",
        "/binance",
        "/binance/stream",
        "/binance/api/v3/depth?symbol=BTCUSDT&limit=5",
        "/binance/api/v3/ticker/24hr?symbol=BTCUSDT",
    ),
    "bybit": Venue(
        "BTC/USDT",
        "/bybit",
        "/bybit/v5/public/spot",
        "/bybit/v5/market/orderbook?category=spot&symbol=BTCUSDT&limit=5",
        "/bybit/v5/market/tickers?category=spot&symbol=BTCUSDT",
    ),
    "okx": Venue(
        "BTC/USDT",
        "/okx",
        "/okx/ws/v5/public",
        "/okx/api/v5/market/books?instId=BTC-USDT&sz=5",
        "/okx/api/v5/market/ticker?instId=BTC-USDT",
    ),
    "coinbase": Venue(
        "BTC/USD",
        "/coinbase/ws",
        "/coinbase/ws",
        "/coinbase/products/BTC-USD/book?level=2",
        "/coinbase/products/BTC-USD/ticker",
    ),
    "kraken": Venue(
        "BTC/USD",
        "/kraken",
        "/kraken/v2",
        "/kraken/0/public/Depth?pair=XBTUSD&count=5",
        "/kraken/0/public/Ticker?pair=XBTUSD",
    ),
}
"""The five exchanges with a stream, BTC against their main quote as each lists it."""


def stream_config(
    sim_url: str,
    exchanges: list[str] | None = None,
    stale_after: float = 4.0,
    rest_interval: str = "30s",
) -> ExporterConfig:
    """An exporter config streaming ``exchanges`` (default: all of :data:`VENUES`) from the
    simulator at ``sim_url`` (``http://127.0.0.1:<port>``), every channel with
    ``stale_after`` seconds, and probing each exchange's REST ticker every ``rest_interval``.

    Raises:
        exporter.config.ConfigError: the config does not validate (names field and value).
    """
    ws_origin = "ws://" + urlsplit(sim_url).netloc
    entries = []
    for name in exchanges or list(VENUES):
        venue = VENUES[name]
        entries.append(
            {
                "name": name,
                "profile": name,
                "base_url": f"{sim_url}/{name}",
                "interval": rest_interval,
                "timeout": "3s",
                "endpoints": ["ticker"],
                "markets": [venue.market],
                "weight_budget": 0.2,
                "websocket": {
                    "url": ws_origin + venue.ws_path,
                    "stale_after": {channel.value: stale_after for channel in CHANNELS},
                },
            }
        )
    return parse_config({"exchanges": entries}, "<ws_harness>")


async def until(
    predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1
) -> float:
    """Poll ``predicate`` every ``every`` s until it holds; return the seconds it took.

    Raises:
        AssertionError: still false after ``timeout`` s (the message names ``what``).
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(every)
    return loop.time() - start


@dataclass(frozen=True, slots=True)
class Counters:
    """Every ``exchange_ws_*`` sample of one exchange at one moment (missing series = 0).

    Attributes:
        values: ``(metric sample name, channel or reason or "")`` → value.
    """

    values: Mapping[tuple[str, str], float]

    def get(self, name: str, label: str = "") -> float:
        """One sample: ``get("exchange_ws_sequence_gaps_total", "book")``."""
        return self.values.get((name, label), 0.0)

    def moved(self, other: Counters, names: list[tuple[str, str]]) -> list[str]:
        """``"name{label} a → b"`` for each of ``names`` whose value differs in ``other``."""
        out = []
        for name, label in names:
            a, b = self.get(name, label), other.get(name, label)
            if a != b:
                out.append(f"{name}{{{label}}} {a:g} → {b:g}")
        return out


CHANNEL_COUNTERS = (
    "exchange_ws_messages_total",
    "exchange_ws_sequence_gaps_total",
    "exchange_ws_checksum_mismatches_total",
    "exchange_ws_subscription_errors_total",
    "exchange_ws_message_lag_seconds_sum",
    "exchange_ws_message_lag_seconds_count",
    "exchange_ws_up",
)
EXCHANGE_COUNTERS = (
    "exchange_ws_connected",
    "exchange_ws_book_resyncs_total",
    "exchange_ws_book_crossed_total",
)


class RunningExporter:
    """The exporter's scheduler (REST probes and WebSocket streams) running ``config`` on the
    current event loop, as an async context manager; stopped and awaited on exit.

    Args:
        config: the exporter config (see :func:`stream_config`).
        stop_timeout: seconds the scheduler may take to stop.
    """

    def __init__(self, config: ExporterConfig, stop_timeout: float = 30.0) -> None:
        self.config = config
        self.metrics = ExporterMetrics()
        self.scheduler = ProbeScheduler(config, self.metrics)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop_timeout = stop_timeout

    async def __aenter__(self) -> RunningExporter:
        self._task = asyncio.create_task(self.scheduler.run(self._stop), name="test-exporter")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, self._stop_timeout)

    def value(self, name: str, **labels: str) -> float:
        """One sample of the exporter's registry (0 when the series does not exist)."""
        found = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def counters(self, exchange: str) -> Counters:
        """Every ``exchange_ws_*`` sample of ``exchange`` now."""
        values: dict[tuple[str, str], float] = {}
        for channel in CHANNELS:
            for name in CHANNEL_COUNTERS:
                values[(name, channel.value)] = self.value(
                    name, exchange=exchange, channel=channel.value
                )
        for reason in ReconnectReason:
            values[("exchange_ws_reconnects_total", reason.value)] = self.value(
                "exchange_ws_reconnects_total", exchange=exchange, reason=reason.value
            )
        for name in EXCHANGE_COUNTERS:
            values[(name, "")] = self.value(name, exchange=exchange)
        return Counters(values)

    def healthy(self, exchange: str) -> bool:
        """Connected, every channel up, and the local book synchronised (both sides known)."""
        if self.value("exchange_ws_connected", exchange=exchange) != 1:
            return False
        for channel in CHANNELS:
            if self.value("exchange_ws_up", exchange=exchange, channel=channel.value) != 1:
                return False
        book = self.book(exchange)
        return book is not None and None not in book.best()

    def stream_status(self, exchange: str) -> Any:
        """The exchange's :class:`~exporter.streams.status.StreamStatus` (``/status``)."""
        return self.scheduler.states[exchange].streams

    def book(self, exchange: str) -> Any:
        """The local :class:`~exporter.streams.dialect.BookSync` of the exchange's market on
        the current connection, or None between connections.

        Reached through the core's objects: ``StreamManager.connection(name).session`` and the
        session's book keeper (``StreamSession._books``, private: the core has no public
        accessor for it yet)."""
        streams = self.scheduler.streams
        connection = streams.connection(exchange) if streams is not None else None
        session = connection.session if connection is not None else None
        keeper = getattr(session, "_books", None) if session is not None else None
        if keeper is None:
            return None
        return keeper.books.get(VENUES[exchange].market)


def _levels(rows: Any, n: int) -> list[tuple[float, float]]:
    return [(float(row[0]), float(row[1])) for row in list(rows)[:n]]


def rest_top(
    exchange: str, body: Any, n: int = 5
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The top ``n`` ``(price, size)`` bids and asks of a REST depth answer
    (:attr:`Venue.depth_path`) in each exchange's documented shape.

    Raises:
        KeyError, IndexError, TypeError, ValueError: the body is not that shape.
    """
    if exchange == "bybit":
        body = body["result"]
        return _levels(body["b"], n), _levels(body["a"], n)
    if exchange == "okx":
        body = body["data"][0]
    elif exchange == "kraken":
        body = next(iter(body["result"].values()))
    return _levels(body["bids"], n), _levels(body["asks"], n)


def local_top(book: Any, n: int = 5) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The top ``n`` ``(price, size)`` bids and asks of a dialect's local book (each
    dialect's BookSync keeps a :class:`~exporter.streams.book.LocalBook` as ``.book``)."""
    bids, asks = book.book.top(n)
    return (
        [(float(p), float(q)) for p, q in bids],
        [(float(p), float(q)) for p, q in asks],
    )


async def book_matches_rest(
    rig: RunningExporter,
    http: httpx.AsyncClient,
    exchange: str,
    levels: int = 5,
    attempts: int = 40,
) -> str:
    """Compare the exchange's local book with the simulator's REST depth: the top ``levels``
    price/size pairs must equal a REST answer fetched just before or just after reading the
    local book (the market moves every 100 ms tick, the stream may trail by one message).

    Returns:
        What matched (for the report).

    Raises:
        AssertionError: no match in ``attempts`` tries (the last local and REST books shown).
    """
    path = VENUES[exchange].depth_path
    last = ""
    for _ in range(attempts):
        before = rest_top(exchange, (await http.get(path)).json(), levels)
        book = rig.book(exchange)
        local = local_top(book, levels) if book is not None else None
        after = rest_top(exchange, (await http.get(path)).json(), levels)
        if local is not None and local in (before, after):
            return f"top {levels} levels equal REST depth"
        last = f"local {local}\nREST before {before}\nREST after {after}"
        await asyncio.sleep(0.05)
    raise AssertionError(f"{exchange}: local book never equalled the REST depth:\n{last}")


class BareClient:
    """A WebSocket client that does nothing to stay connected: it never answers server pings
    (wsproto leaves that to the application, and this one does not), sends only the frames it
    is given, and reads everything the server sends.

    Args:
        url: ``ws://host:port/path``.

    Attributes:
        texts: every text frame received.
        close_code / close_reason: the server's close frame, None / "" if none came.
        opened_at / closed_at: ``time.monotonic()`` of the handshake and of the close (close
            frame or end of the TCP connection), None while open.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.texts: list[str] = []
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.closed_at: float | None = None
        self.opened_at = 0.0
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None

    async def connect(self, timeout: float = 10.0) -> None:
        """Open the TCP connection and complete the handshake.

        Raises:
            ConnectionError: the server refused the upgrade.
            TimeoutError: no answer within ``timeout`` s.
        """
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        self._reader, self._writer = reader, writer
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        writer.write(self._ws.send(Request(host=f"{host}:{port}", target=target)))
        while True:
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                raise ConnectionError(f"{self.url}: closed during the handshake")
            self._ws.receive_data(data)
            events = list(self._ws.events())
            if any(isinstance(e, AcceptConnection) for e in events):
                break
            if events:
                raise ConnectionError(f"{self.url}: upgrade refused: {events!r}")
        self.opened_at = time.monotonic()
        self._reading = asyncio.create_task(self._read(), name="bare-client")

    async def send(self, text: str) -> None:
        """Send one text frame."""
        assert self._writer is not None
        self._writer.write(self._ws.send(TextMessage(data=text)))
        await self._writer.drain()

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self._ws.receive_data(data)
                for event in self._ws.events():
                    self._event(event)
        except (ConnectionError, OSError):
            pass
        if self.closed_at is None:
            self.closed_at = time.monotonic()

    def _event(self, event: Event) -> None:
        if isinstance(event, TextMessage):
            self.texts.append(event.data)
        elif isinstance(event, CloseConnection) and self.closed_at is None:
            self.close_code = event.code
            self.close_reason = event.reason or ""
            self.closed_at = time.monotonic()
        # Ping: deliberately not answered.

    async def wait_closed(self, timeout: float) -> float:
        """Wait until the server closed the connection; return seconds since it opened.

        Raises:
            AssertionError: still open after ``timeout`` s.
        """
        await until(lambda: self.closed_at is not None, timeout, f"the server to close {self.url}")
        assert self.closed_at is not None
        return self.closed_at - self.opened_at

    async def aclose(self) -> None:
        """Drop the connection (no closing handshake) and stop reading."""
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()


async def gather_named(jobs: Mapping[str, Awaitable[Any]]) -> dict[str, Any]:
    """Run ``jobs`` concurrently; their results (or exceptions) by name."""
    names = list(jobs)
    results = await asyncio.gather(*(jobs[n] for n in names), return_exceptions=True)
    return dict(zip(names, results, strict=True))
