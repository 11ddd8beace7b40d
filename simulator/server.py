"""The simulator's HTTP/1.1 server: asyncio streams + h11, keep-alive and pipelining.

Request flow: parse with h11 → ``/_control/...`` goes to :class:`~simulator.control.ControlAPI`;
a ``GET`` with ``Upgrade: websocket`` on a path an exchange's WebSocket dialect serves
(:mod:`simulator.ws.dialects`: ``/binance/ws``, ``/binance/stream`` …) becomes a WebSocket
session (:class:`~simulator.ws.hub.WsHub`: wsproto beside h11); ``/<exchange>/<real path>`` is
routed to that exchange. The effective fault is looked up once;
transport faults are applied here (``down``: TCP RST or a hang, before any accounting — the
request never reached the exchange; ``latency``: an asyncio sleep that never blocks other
connections, reported in the ``X-Simulator-Latency-Ms`` header as the time the request was
actually held, so benchmarks can compare measured with injected latency). Then the exchange
accounts the request against its per-IP limits (:meth:`Exchange.on_request`, which may answer
429/418/403 itself) and builds the reply with :meth:`Exchange.respond`. Streamed
(``huge_body``) and paced (``slow_body``) bodies are written part by part with a drain after
each, so memory stays small.

In-process use::

    server = SimulatorServer("127.0.0.1", 0)
    await server.start()          # server.port is the bound port
    ...
    await server.stop()           # cancels hung connections, leaves no tasks behind

or from synchronous code (tests, benchmarks)::

    server, stop = run_in_thread()
    httpx.get(f"{server.url}/binance/api/v3/ping")
    stop()

    with simulator_in_thread() as server: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import h11

from simulator.bodies import slices
from simulator.control import CONTROL_PREFIX, ControlAPI
from simulator.exchanges import build_exchanges
from simulator.exchanges.base import Exchange, RequestContext
from simulator.faults import FaultRegistry
from simulator.keys.apis import build_private_apis
from simulator.keys.request import PrivateRequest
from simulator.keys.store import KeyStore
from simulator.limits import LimitRegistry
from simulator.maintenance import MaintenanceSchedule
from simulator.market import Market
from simulator.responses import Reply, json_reply, reason_phrase
from simulator.scenario_runner import ScenarioRunner
from simulator.stats import RequestStats
from simulator.timefmt import http_date_now
from simulator.ws.dialects import find_dialect
from simulator.ws.hub import WsHub, reset_connection

__all__ = ["SimulatorServer", "run_in_thread", "simulator_in_thread"]

log = logging.getLogger("simulator")

INJECTED_LATENCY_HEADER = b"X-Simulator-Latency-Ms"
"""Response header on requests held by a ``latency`` fault: milliseconds actually held (not a
header of any exchange; only present while the fault is active)."""

_READ_SIZE = 65_536
_REASONS: dict[int, bytes] = {s: reason_phrase(s).encode() for s in range(100, 600)}


def _parse_query(qs: str) -> dict[str, str]:
    """Decode a query string into a dict (last value wins); fast path without escapes."""
    if not qs:
        return {}
    if "%" in qs or "+" in qs:
        return dict(parse_qsl(qs, keep_blank_values=True))
    out: dict[str, str] = {}
    for part in qs.split("&"):
        if part:
            key, _, value = part.partition("=")
            out[key] = value
    return out


def _wants_websocket(request: h11.Request) -> bool:
    """True for a request carrying ``Upgrade: websocket`` (case-insensitive)."""
    return any(
        name == b"upgrade" and value.strip().lower() == b"websocket"
        for name, value in request.headers
    )


class SimulatorServer:
    """Exchange simulator bound to ``host:port`` (``port=0`` picks a free port).

    Args:
        host / port: address to bind.
        market: shared market (default: a new :class:`~simulator.market.Market`).
        backlog: listen backlog.
        limits: enforce the per-IP request limits (Binance weight, Bybit IP window; see
            :mod:`simulator.limits`). ``False`` = CLI ``--no-limits`` (benchmarks): usage is
            still counted and reported, never refused. ``DELETE /_control/limits`` restores this.

    Attributes:
        market: the shared :class:`~simulator.market.Market`.
        exchanges: ``{name: Exchange}``.
        faults: the :class:`~simulator.faults.FaultRegistry` (loop-thread only).
        limits: the :class:`~simulator.limits.LimitRegistry` (loop-thread only).
        scenarios: the :class:`~simulator.scenario_runner.ScenarioRunner` (loop-thread only).
        maintenance: the announced windows, :class:`~simulator.maintenance.MaintenanceSchedule`.
        ws: the :class:`~simulator.ws.hub.WsHub` serving WebSocket upgrades (loop-thread only).
        stats: the :class:`~simulator.stats.RequestStats`.
        port: the bound TCP port, valid after :meth:`start`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        market: Market | None = None,
        backlog: int = 2048,
        limits: bool = True,
    ) -> None:
        """Prepare (but do not bind) a server; see class docstring."""
        self.host = host
        self.port = port
        self._backlog = backlog
        self.market = market or Market()
        self.exchanges: dict[str, Exchange] = build_exchanges(self.market)
        self.keys = KeyStore()
        for name, apis in build_private_apis().items():
            self.exchanges[name].attach_private(apis)
        self.faults = FaultRegistry(
            {name: ex.endpoints for name, ex in self.exchanges.items()},
            validators={name: ex.fault_params for name, ex in self.exchanges.items()},
            json_statuses={name: ex.json_gateway_statuses for name, ex in self.exchanges.items()},
            effects=self.market.effects,
        )
        self.maintenance = MaintenanceSchedule(
            tuple(self.exchanges),
            [name for name, ex in self.exchanges.items() if "status" in ex.endpoints],
        )
        self.limits = LimitRegistry(
            {name: ex.limiter for name, ex in self.exchanges.items() if ex.limiter is not None},
            tuple(self.exchanges),
        )
        self.limits.set_enabled(limits)
        self.scenarios = ScenarioRunner(self.faults, self.limits)
        self.stats = RequestStats(tuple(self.exchanges))
        self.control = ControlAPI(
            self.faults,
            self.stats,
            self._extra_stats,
            limits=self.limits,
            scenarios=self.scenarios,
            keys=self.keys,
            maintenance=self.maintenance,
        )
        self.ws = WsHub(self.market, self.faults, self.stats)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def url(self) -> str:
        """Base URL, e.g. ``"http://127.0.0.1:8000"`` (IPv6 hosts are bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start accepting connections; sets :attr:`port`.

        Raises:
            OSError: the address cannot be bound (in use, bad host).
        """
        self._closing = False
        self._server = await asyncio.start_server(
            self._on_connection,
            self.host,
            self.port,
            backlog=self._backlog,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("exchange-simulator listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening, cancel every open connection (hung ones included) and wait for
        their tasks to finish. Idempotent."""
        server, self._server = self._server, None
        self._closing = True
        await self.scenarios.close()
        await self.ws.close()
        if server is not None:
            server.close()
        for _ in range(10):  # connections accepted during shutdown exit at their first step
            tasks = [t for t in self._conns if t is not asyncio.current_task()]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> SimulatorServer:
        """``async with SimulatorServer() as s:`` starts and stops the server."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the server (see :meth:`stop`)."""
        await self.stop()

    def _extra_stats(self) -> dict[str, Any]:
        now = time.time()
        limiters = self.limits.limiters
        return {
            f"{name}_{key}": limiter.used(now)
            for name, key in (("binance", "used_weight_1m"), ("bybit", "requests_5s"))
            if (limiter := limiters.get(name)) is not None
        }

    # -- connection handling ----------------------------------------------------------------
    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one client connection until it closes, a fault ends it, or :meth:`stop`."""
        task = asyncio.current_task()
        if self._closing or task is None:
            writer.transport.abort()
            return
        self._conns.add(task)
        try:
            await self._serve(reader, writer)
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        except Exception:  # pragma: no cover - defensive: never kill the server on a bug
            log.exception("connection handler failed")
        finally:
            self._conns.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_READ_SIZE)
        request: h11.Request | None = None
        body: list[bytes] = []
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._protocol_error(conn, writer, exc)
                return
            if event is h11.NEED_DATA:
                data = await reader.read(_READ_SIZE)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
                body = []
            elif isinstance(event, h11.Data):
                body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                if not await self._handle(conn, request, b"".join(body), reader, writer):
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
            else:  # ConnectionClosed or PAUSED
                return

    async def _protocol_error(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, exc: h11.RemoteProtocolError
    ) -> None:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            reply = json_reply(exc.error_status_hint, {"error": f"request: {exc}"})
            reply.headers.append((b"Connection", b"close"))
            with contextlib.suppress(h11.LocalProtocolError):
                await self._send(conn, writer, reply, head=False)

    async def _handle(
        self,
        conn: h11.Connection,
        request: h11.Request,
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one request. Returns False when the connection must end (``down`` fault)."""
        target = request.target.decode("latin-1")
        path, _, qs = target.partition("?")
        method = request.method.decode("ascii", "replace")
        head = method == "HEAD"
        if path.startswith(CONTROL_PREFIX):
            await self._send(conn, writer, self.control.handle(method, path, body), head)
            return True
        slash = path.find("/", 1)
        exchange = self.exchanges.get(path[1:slash] if slash > 0 else path[1:])
        if exchange is None:
            reply = json_reply(
                404,
                {
                    "error": f"path: {path!r} is not under /<exchange>/ "
                    f"({', '.join(self.exchanges)}) or /_control/"
                },
            )
            await self._send(conn, writer, reply, head)
            return True
        sub = path[slash:] if slash > 0 else "/"
        if method == "GET" and _wants_websocket(request):
            dialect = find_dialect(exchange.name, sub)
            if dialect is not None:
                query = _parse_query(qs)
                await self.ws.serve(
                    exchange.name, dialect, request, conn, reader, writer, sub, query
                )
                return False
        private = None
        route = exchange.resolve_private(method, sub)
        if route is not None:
            private = self._private_request(request, method, path, sub, qs, body, writer)
            private.key_fault = self.faults.key_fault(exchange.name)
        elif method == "GET" or head:
            route = exchange.resolve(sub)
        endpoint = route.endpoint if route is not None else None
        fault = self.faults.effective(exchange.name, endpoint)
        now = time.time()
        if fault is None:  # inside an announced window: as under the maintenance fault
            fault = self.maintenance.fault_for(exchange.name, now)
        ctx = RequestContext(
            private=private,
            route=route,
            path=sub,
            query=_parse_query(qs),
            now=now,
            fault=fault,
            market=self.market,
            venue=exchange.venue,
            window=self.maintenance.window(exchange.name),
        )
        self.stats.request(exchange.name, endpoint)
        if fault is not None and fault.kind == "down":
            mode = fault.params["mode"]
            self.stats.outcome(exchange.name, mode)
            if mode == "reset":
                reset_connection(writer)
            else:
                await self._hang(reader)
            return False
        limited = exchange.on_request(ctx)
        delay_started: float | None = None
        if fault is not None and fault.kind == "latency":
            delay_started = time.perf_counter()
            await asyncio.sleep(fault.delay_s())
            ctx.now = time.time()
        try:
            if limited is not None:
                self.stats.limited(exchange.name, limited.status)
                exchange.decorate(ctx, limited)
                reply = limited
            else:
                reply = exchange.respond(ctx)
        except Exception:
            log.exception("handler failed for %s %s", method, target)
            reply = exchange.error_body(ctx, 500)
        self.stats.outcome(exchange.name, reply.status)
        if delay_started is not None:
            # What this request was actually held for (the sleep plus this loop's own lag), so
            # benchmarks can compare a prober's measured latency with the injected one.
            held_ms = (time.perf_counter() - delay_started) * 1000
            reply = dataclasses.replace(
                reply, headers=[*reply.headers, (INJECTED_LATENCY_HEADER, b"%.3f" % held_ms)]
            )
        if reply.stream is not None or reply.bytes_per_second:
            await self._send_streamed(conn, writer, reply, head)
        else:
            await self._send(conn, writer, reply, head)
        return True

    def _private_request(
        self,
        request: h11.Request,
        method: str,
        path: str,
        sub: str,
        qs: str,
        body: bytes,
        writer: asyncio.StreamWriter,
    ) -> PrivateRequest:
        """What a private endpoint sees of ``request`` (see :class:`PrivateRequest`)."""
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in request.headers
        }
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        return PrivateRequest(
            method=method,
            path=sub,
            full_path=path,
            raw_query=qs,
            headers=headers,
            body=body,
            client_ip=client_ip,
            host=headers.get("host", ""),
            keys=self.keys,
            key_fault=None,
        )

    @staticmethod
    async def _send(
        conn: h11.Connection, writer: asyncio.StreamWriter, reply: Reply, head: bool
    ) -> None:
        headers = [
            (b"Content-Type", reply.content_type),
            (b"Content-Length", b"%d" % len(reply.body)),
            (b"Date", http_date_now()),
            *reply.headers,
        ]
        status = reply.status
        data = conn.send(
            h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))
        )
        if not head:
            data += conn.send(h11.Data(data=reply.body))
        data += conn.send(h11.EndOfMessage())
        writer.write(data)
        await writer.drain()

    @staticmethod
    async def _send_streamed(
        conn: h11.Connection, writer: asyncio.StreamWriter, reply: Reply, head: bool
    ) -> None:
        """Send headers at once, then the body part by part (``reply.stream``), paced to
        ``reply.bytes_per_second`` in slices one ``pace_interval_s`` apart when set."""
        length = reply.stream_length if reply.stream is not None else len(reply.body)
        headers = [
            (b"Content-Type", reply.content_type),
            (b"Content-Length", b"%d" % length),
            (b"Date", http_date_now()),
            *reply.headers,
        ]
        status = reply.status
        response = h11.Response(
            status_code=status, headers=headers, reason=_REASONS.get(status, b"")
        )
        writer.write(conn.send(response))
        await writer.drain()
        if not head:
            parts = reply.stream if reply.stream is not None else iter((reply.body,))
            interval = reply.pace_interval_s
            if reply.bytes_per_second:
                parts = slices(parts, max(int(reply.bytes_per_second * interval), 1))
            for part in parts:
                if reply.bytes_per_second:
                    await asyncio.sleep(interval)
                writer.write(conn.send(h11.Data(data=part)))
                await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    @staticmethod
    async def _hang(reader: asyncio.StreamReader) -> None:
        """Never answer: drain input until the client closes (or the task is cancelled)."""
        while await reader.read(_READ_SIZE):
            pass


def run_in_thread(
    host: str = "127.0.0.1", port: int = 0, *, timeout: float = 10.0, limits: bool = True
) -> tuple[SimulatorServer, Callable[[], None]]:
    """Start a :class:`SimulatorServer` on its own event loop in a daemon thread.

    ``limits=False`` disables request-limit enforcement (see :class:`SimulatorServer`).

    Returns:
        ``(server, stop)``: ``server.port`` / ``server.url`` are ready; ``stop()`` stops the
        server, closes the loop and joins the thread (idempotent).

    Raises:
        OSError: binding failed. TimeoutError: the server did not start within ``timeout`` s.
    """
    loop = asyncio.new_event_loop()
    server = SimulatorServer(host, port, limits=limits)
    started = threading.Event()
    errors: list[BaseException] = []

    def runner() -> None:
        """Thread body: start the server, run the loop until ``stop``, then close it."""
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # reported to the caller
            errors.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=runner, name="exchange-simulator", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise TimeoutError("exchange simulator did not start")
    if errors:
        thread.join(timeout)
        raise errors[0]

    def stop() -> None:
        """Stop the server, close its loop and join the thread; no-op if already stopped.

        Raises:
            TimeoutError: the server did not stop within ``timeout`` seconds.
        """
        if not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(server.stop(), loop)
        future.result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    return server, stop


@contextlib.contextmanager
def simulator_in_thread(
    host: str = "127.0.0.1", port: int = 0, *, limits: bool = True
) -> Iterator[SimulatorServer]:
    """Context-manager form of :func:`run_in_thread`: yields the running server."""
    server, stop = run_in_thread(host, port, limits=limits)
    try:
        yield server
    finally:
        stop()
