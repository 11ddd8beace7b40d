"""The WebSocket side of the simulator: upgrades, the live sessions and the shared feed clock.

:meth:`WsHub.serve` turns an h11-parsed ``GET`` with ``Upgrade: websocket`` into a wsproto
connection (``initiate_upgrade_connection`` → ``AcceptConnection``; h11's trailing bytes are fed
to it) and runs a :class:`~simulator.ws.session.Session` until it ends. One clock task, started
with the first session and ended with the last, ticks every session every
:data:`~simulator.market.TICK_MS` ms, a couple of ms after each tick boundary so the market view
of the new tick is what the dialects send. An exchange-wide ``down`` fault refuses new
connections (TCP reset or hang, as for REST) and drops the live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
import time
from collections.abc import Mapping

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.utilities import RemoteProtocolError

from simulator.faults import FaultRegistry
from simulator.market import TICK_MS, Market
from simulator.stats import RequestStats
from simulator.ws.dialect import WsDialect
from simulator.ws.session import Session

__all__ = ["TICK_OFFSET_MS", "WsHub"]

log = logging.getLogger("simulator.ws")

TICK_OFFSET_MS = 2
"""The clock fires this many ms after each tick boundary."""
_LINGER_RST = struct.pack("ii", 1, 0)


class WsHub:
    """Live WebSocket sessions of one simulator and their clock (event-loop thread only).

    Args:
        market / faults / stats: the server's shared market, fault registry and counters.

    Attributes:
        sessions: the live :class:`~simulator.ws.session.Session` objects.
    """

    def __init__(self, market: Market, faults: FaultRegistry, stats: RequestStats) -> None:
        """Create an empty hub (no task until the first session)."""
        self.market = market
        self.faults = faults
        self.stats = stats
        self.sessions: set[Session] = set()
        self._clock: asyncio.Task[None] | None = None

    async def serve(
        self,
        exchange: str,
        dialect_cls: type[WsDialect],
        request: h11.Request,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        path: str,
        query: Mapping[str, str],
    ) -> None:
        """Complete the upgrade of ``request`` (already parsed by ``conn``) and serve the
        session until it ends. A request wsproto refuses (no ``Sec-WebSocket-Key``, wrong
        version) is answered 400 with the reason; an exchange-wide ``down`` fault resets the
        TCP connection (``mode: reset``) or never answers (``hang``)."""
        fault = self.faults.effective(exchange, None)
        if fault is not None and fault.kind == "down":
            self.stats.outcome(exchange, fault.params["mode"])
            if fault.params["mode"] == "reset":
                reset_connection(writer)
            else:
                while await reader.read(65_536):
                    pass
            return
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.initiate_upgrade_connection(list(request.headers), request.target)
            events = list(ws.events())
        except RemoteProtocolError as exc:
            await _bad_request(conn, writer, f"websocket: {exc}")
            return
        if not events or not isinstance(events[0], Request):
            await _bad_request(conn, writer, "websocket: not a WebSocket upgrade request")
            return
        writer.write(ws.send(AcceptConnection()))
        session = Session(
            exchange,
            dialect_cls,
            path,
            query,
            market=self.market,
            faults=self.faults,
            stats=self.stats,
            ws=ws,
            writer=writer,
        )
        counters = self.stats.ws(exchange)
        counters["connections"] += 1
        counters["open"] += 1
        self.sessions.add(session)
        if self._clock is None:
            self._clock = asyncio.create_task(self._run_clock(), name="ws-feed-clock")
        try:
            await session.run(reader, conn.trailing_data[0])
        finally:
            self.sessions.discard(session)
            counters["open"] -= 1

    async def close(self) -> None:
        """Stop the clock task (the server cancels the sessions' own connection tasks)."""
        clock, self._clock = self._clock, None
        if clock is not None:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock

    def tick(self, now_ms: int) -> None:
        """One clock step for every session at epoch ms ``now_ms``: sessions of an exchange
        under an exchange-wide ``down`` fault are dropped, the others ticked."""
        now = time.monotonic()
        down: dict[str, bool] = {}
        for session in list(self.sessions):
            exchange = session.exchange
            is_down = down.get(exchange)
            if is_down is None:
                fault = self.faults.effective(exchange, None)
                is_down = down[exchange] = fault is not None and fault.kind == "down"
            if is_down:
                session.drop()
            else:
                session.tick(now_ms, now)

    async def _run_clock(self) -> None:
        try:
            while self.sessions:
                now_ms = time.time() * 1000.0
                due = (now_ms // TICK_MS + 1) * TICK_MS + TICK_OFFSET_MS
                await asyncio.sleep((due - now_ms) / 1000.0)
                try:
                    self.tick(int(time.time() * 1000.0))
                except Exception:  # pragma: no cover - defensive: keep the clock alive
                    log.exception("WebSocket feed clock step failed")
        finally:
            if self._clock is asyncio.current_task():
                self._clock = None


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER {1, 0}: the kernel sends a TCP RST instead of a FIN (the
    simulator's ``down`` fault, for HTTP and WebSocket connections alike)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


async def _bad_request(conn: h11.Connection, writer: asyncio.StreamWriter, message: str) -> None:
    """Answer 400 with a JSON ``{"error": message}`` through h11."""
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"%d" % len(body)),
        (b"Connection", b"close"),
    ]
    with contextlib.suppress(h11.LocalProtocolError):
        data = conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request"))
        data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        writer.write(data)
        await writer.drain()
