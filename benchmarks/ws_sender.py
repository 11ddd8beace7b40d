"""The WebSocket benchmark's sender: a loopback server speaking just enough of OKX's and
Binance's public WebSocket APIs to feed the exporter's stream code, as fast as it will read or at
a fixed rate with every send time recorded.

``ws://HOST:PORT/ws/v5/public`` is OKX (subscribe → one acknowledgement per arg, a ``books``
snapshot, then the feed; text ``ping`` → ``pong``) and ``ws://HOST:PORT/stream`` is Binance's
combined stream (``SUBSCRIBE`` → ``{"result":null,"id"}``, then the feed); ``GET
/api/v3/depth?symbol=…`` answers Binance's REST book snapshot at the feed's current update id,
so the exporter's documented snapshot-plus-diff sync runs as against the exchange. Messages come
from :mod:`benchmarks.ws_feed`. HTTP is parsed by h11, WebSocket frames by wsproto; protocol
pings are answered with the payload copied.

Modes (``--rate``):

- 0 (blast): per connection, batches of :data:`BATCH` messages are written as soon as the
  socket drains (TCP backpressure paces the sender to the reader), event times stamped per batch.
- N > 0: N messages per second over all connections (each connection N / connections), each
  message stamped with the wall clock right before it is written, ``--count`` messages per
  connection; the (send ns, event-time ms) of every data message go to ``--log`` (JSON, one
  list per exchange) once every connection has sent its count.

    python benchmarks/ws_sender.py --listen 127.0.0.1:0 [--rate 5000 --count 25000 --log F]

Prints ``listening PORT`` (flushed) once bound; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    TextMessage,
)

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ws_feed import BinanceFeed, OkxFeed, schedule

BATCH = 32
"""Messages per write in blast mode."""

OKX_PATH = "/ws/v5/public"
BINANCE_PATH = "/stream"


class SenderState:
    """What every connection of one sender shares: the feeds (one per exchange, so a REST
    snapshot and the stream agree), the mode and the send logs.

    Args:
        rate: messages per second over all connections; 0 = blast.
        count: messages per connection in rate mode.
        connections: connections the rate is split over.
        log: where to write the send log in rate mode.
    """

    def __init__(self, rate: float, count: int, connections: int, log: Path | None) -> None:
        self.okx = OkxFeed()
        self.binance = BinanceFeed()
        self.rate = rate
        self.count = count
        self.connections = connections
        self.log_path = log
        self.logs: dict[str, list[tuple[int, int]]] = {"okx": [], "binance": []}
        self.finished: set[str] = set()

    def finish(self, exchange: str) -> None:
        """Record that ``exchange``'s connection sent its count; write the log after the last."""
        self.finished.add(exchange)
        if self.log_path is not None and len(self.finished) >= self.connections:
            self.log_path.write_text(json.dumps(self.logs), encoding="utf-8")
            print("sent", flush=True)


class FeedConnection:
    """One accepted WebSocket connection (OKX or Binance, by path)."""

    def __init__(
        self,
        state: SenderState,
        exchange: str,
        ws: WSConnection,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.state = state
        self.exchange = exchange
        self.ws = ws
        self.writer = writer
        self.markets: list[str] = []
        self.subscribed = asyncio.Event()
        self.closed = False

    def send(self, text: str) -> None:
        """Encode and write one text message."""
        self.writer.write(self.ws.send(TextMessage(data=text)))

    def on_text(self, text: str) -> None:
        """Answer a client message: subscribe requests and OKX's ``ping``."""
        if text == "ping":
            self.send("pong")
            return
        try:
            request: Any = json.loads(text)
        except ValueError:
            return
        if not isinstance(request, dict):
            return
        if self.exchange == "okx" and request.get("op") == "subscribe":
            books = []
            for arg in request.get("args") or []:
                inst = str(arg.get("instId"))
                self.send(OkxFeed.ack(str(request.get("id")), str(arg.get("channel")), inst))
                market = inst.replace("-", "/")
                if market in self.state.okx.markets and market not in self.markets:
                    self.markets.append(market)
                if arg.get("channel") == "books" and market in self.state.okx.markets:
                    books.append(market)
            for market in books:
                sent_ns = time.time_ns()
                self.send(self.state.okx.snapshot(market, sent_ns // 1_000_000))
                if self.state.rate > 0:  # the snapshot carries an event time too
                    self.state.logs["okx"].append((sent_ns, sent_ns // 1_000_000))
            self.subscribed.set()
        elif self.exchange == "binance" and request.get("method") == "SUBSCRIBE":
            for stream in request.get("params") or []:
                symbol = str(stream).split("@", 1)[0].upper()
                feed = self.state.binance.by_symbol.get(symbol)
                if feed is not None and feed.market not in self.markets:
                    self.markets.append(feed.market)
            self.send(BinanceFeed.ack(request.get("id")))
            self.subscribed.set()

    async def read(self, reader: asyncio.StreamReader) -> None:
        """Read client frames until the connection closes."""
        try:
            while not self.closed:
                data = await reader.read(65536)
                if not data:
                    break
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, TextMessage):
                        self.on_text(event.data)
                    elif isinstance(event, Ping):
                        self.writer.write(self.ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        with contextlib.suppress(Exception):
                            self.writer.write(self.ws.send(event.response()))
                        self.closed = True
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True

    async def feed(self) -> None:
        """Send the feed (blast or rate mode) once subscribed."""
        await self.subscribed.wait()
        await asyncio.sleep(0.05)  # let a multi-request subscription finish
        feed: OkxFeed | BinanceFeed = (
            self.state.okx if self.exchange == "okx" else self.state.binance
        )
        order = schedule(self.markets)
        try:
            if self.state.rate > 0:
                await self._paced(feed, order)
            else:
                await self._blast(feed, order)
        except (ConnectionError, OSError):
            self.closed = True

    async def _blast(self, feed: OkxFeed | BinanceFeed, order: list[tuple[str, str]]) -> None:
        encode, message, writer = self.ws.send, feed.message, self.writer
        size = len(order)
        index = 0
        while not self.closed:
            ts_ms = time.time_ns() // 1_000_000
            chunks = []
            for _ in range(BATCH):
                market, kind = order[index % size]
                index += 1
                chunks.append(encode(TextMessage(data=message(market, kind, ts_ms))))
            writer.write(b"".join(chunks))
            await writer.drain()

    async def _paced(self, feed: OkxFeed | BinanceFeed, order: list[tuple[str, str]]) -> None:
        rate = self.state.rate / max(1, self.state.connections)
        log = self.state.logs[self.exchange]
        encode, message, write = self.ws.send, feed.message, self.writer.write
        size = len(order)
        began = time.perf_counter()
        for index in range(self.state.count):
            due = began + index / rate
            ahead = due - time.perf_counter()
            if ahead > 0.0005:
                await asyncio.sleep(ahead)
            elif index % 64 == 0:
                await asyncio.sleep(0)  # let the reader answer pings
            if self.closed:
                return
            market, kind = order[index % size]
            sent_ns = time.time_ns()
            ts_ms = sent_ns // 1_000_000
            write(encode(TextMessage(data=message(market, kind, ts_ms))))
            log.append((sent_ns, ts_ms))
        await self.writer.drain()
        self.state.finish(self.exchange)


class Sender:
    """The server (see the module docstring)."""

    def __init__(self, state: SenderState) -> None:
        self.state = state
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One TCP connection: HTTP requests (h11) until a WebSocket upgrade."""
        http = h11.Connection(h11.SERVER)
        try:
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    http.receive_data(data)
                    if not data:
                        return
                    continue
                if not isinstance(event, h11.Request):
                    return
                headers = {k.lower(): v for k, v in event.headers}
                path = event.target.decode("ascii", "replace")
                if headers.get(b"upgrade", b"").lower() == b"websocket":
                    await self._websocket(event, path, http, reader, writer)
                    return
                self._rest(http, writer, path)
                while http.next_event() not in (h11.NEED_DATA, h11.PAUSED):
                    pass
                if http.our_state is h11.MUST_CLOSE:
                    return
                http.start_next_cycle()
        except (ConnectionError, OSError, h11.ProtocolError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _rest(self, http: h11.Connection, writer: asyncio.StreamWriter, target: str) -> None:
        url = urlsplit(target)
        query = parse_qs(url.query)
        status, body = 404, b'{"code":-1,"msg":"not found"}'
        if url.path == "/api/v3/depth":
            try:
                limit = int(query.get("limit", ["100"])[0])
                snapshot = self.state.binance.snapshot(query.get("symbol", [""])[0], limit)
                status, body = 200, json.dumps(snapshot).encode()
            except (KeyError, ValueError):
                status, body = 400, b'{"code":-1121,"msg":"Invalid symbol."}'
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        writer.write(http.send(h11.Response(status_code=status, headers=headers)) or b"")
        writer.write(http.send(h11.Data(data=body)) or b"")
        writer.write(http.send(h11.EndOfMessage()) or b"")

    async def _websocket(
        self,
        request: h11.Request,
        path: str,
        http: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        exchange = {OKX_PATH: "okx", BINANCE_PATH: "binance"}.get(urlsplit(path).path)
        ws = WSConnection(ConnectionType.SERVER)
        ws.initiate_upgrade_connection(list(request.headers), request.target)
        if exchange is None:
            return
        writer.write(ws.send(AcceptConnection()))
        trailing, _ = http.trailing_data
        connection = FeedConnection(self.state, exchange, ws, writer)
        if trailing:
            ws.receive_data(trailing)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        feeder = asyncio.create_task(connection.feed())
        try:
            await connection.read(reader)
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder


async def serve(host: str, port: int, state: SenderState) -> None:
    """Listen, print ``listening PORT``, serve until SIGTERM/SIGINT."""
    sender = Sender(state)
    server = await asyncio.start_server(sender.handle, host, port)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()  # asyncio.run cancels the connections' tasks on return


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0 = blast")
    parser.add_argument("--count", type=int, default=0, help="messages per connection (rate)")
    parser.add_argument("--connections", type=int, default=2, help="connections (rate)")
    parser.add_argument("--log", type=Path, help="send log (rate mode)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    state = SenderState(args.rate, args.count, args.connections, args.log)
    asyncio.run(serve(host, int(port), state))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
