"""One simulated WebSocket connection: wsproto framing, the receive loop, fault-aware sending
and keep-alive enforcement. Implements :class:`simulator.ws.dialect.WsSession`.

The transport's write buffer is the writer queue: every frame is encoded by wsproto and written
at once (a data frame under ``ws_lag`` is written ``lag_ms`` later by a loop timer, in order). A
client that lets more than :data:`MAX_WRITE_BUFFER` bytes pile up is dropped (a slow consumer).
The feed clock (:class:`simulator.ws.hub.WsHub`) calls :meth:`Session.tick` every
:data:`~simulator.market.TICK_MS`; the connection's own task runs :meth:`Session.run`.

What the session does for each fault of its exchange (see :mod:`simulator.faults`):
``ws_stall`` / ``ws_lag`` in :meth:`Session.send_text`; ``ws_blackhole`` everywhere (nothing is
sent, no rule enforced); ``ws_disconnect`` and ``ws_maintenance_notice`` once per fault (set in
:meth:`Session.apply_fault`); ``ws_gap``, ``ws_checksum`` and ``ws_reject`` are the dialect's
(through :meth:`Session.fault`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wsproto import WSConnection
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from simulator.faults import Fault, FaultRegistry
from simulator.market import Market
from simulator.ws.dialect import KeepAliveRule, WsDialect

if TYPE_CHECKING:
    from simulator.stats import RequestStats

__all__ = ["CLOSE_GRACE_S", "MAX_WRITE_BUFFER", "Session"]

log = logging.getLogger("simulator.ws")

MAX_WRITE_BUFFER = 16 * 1024 * 1024
"""Bytes a client may leave unread before the simulator drops it as a slow consumer."""
CLOSE_GRACE_S = 2.0
"""Seconds the server waits for the client's close frame after sending its own."""
_READ_SIZE = 65_536


class Session:
    """One WebSocket connection of one exchange, served by a dialect.

    Args:
        exchange: the exchange name; ``dialect_cls`` serves ``path`` with ``query``.
        market: the shared market; ``faults`` the shared registry; ``stats`` the counters.
        ws: the wsproto connection, already past the handshake (``AcceptConnection`` sent).
        writer: the asyncio stream writer of the TCP connection.

    Attributes:
        exchange / market: see :class:`~simulator.ws.dialect.WsSession`.
        dialect: the dialect instance of this connection.
        rule: the :class:`~simulator.ws.dialect.KeepAliveRule` enforced (read from the dialect
            class when the connection opens, so tests can shorten it per test).
        closed: True once the TCP connection is gone or going.
    """

    def __init__(
        self,
        exchange: str,
        dialect_cls: type[WsDialect],
        path: str,
        query: Mapping[str, str],
        *,
        market: Market,
        faults: FaultRegistry,
        stats: RequestStats,
        ws: WSConnection,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Create the session and its dialect (no I/O yet; see :meth:`run`)."""
        self.exchange = exchange
        self.market = market
        self._faults = faults
        self._ws = ws
        self._writer = writer
        self._transport = writer.transport
        self._counters = stats.ws(exchange)
        self.rule: KeepAliveRule = dialect_cls.keepalive
        now = time.monotonic()
        self.opened = now
        self.opened_wall = time.time()
        self._last_client = now
        self._last_ping = now
        self._pending_pings: dict[bytes, float] = {}
        self._incoming: deque[float] = deque()
        self._parts: list[str] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._delayed: deque[tuple[float, bytes]] = deque()  # (due monotonic s, frame)
        self._drain_timer: asyncio.TimerHandle | None = None
        self._handled: Fault | None = None
        self._fault_obj: Fault | None = None
        self._fault_view: dict[str, Any] | None = None
        self._ping_seq = 0
        self.closing = False
        self.closed = False
        self.dialect = dialect_cls(self, path, query)

    # -- WsSession ------------------------------------------------------------------------
    def send_text(self, text: str, channel: str | None = None) -> None:
        """See :meth:`simulator.ws.dialect.WsSession.send_text`."""
        if self.closing:
            return
        fault = self._faults.websocket(self.exchange)
        if fault is not None:
            kind = fault.kind
            if kind == "ws_blackhole":
                return
            narrowed = fault.params.get("channel")
            if narrowed is None or narrowed == channel:
                if kind == "ws_stall":
                    return
                if kind == "ws_lag" and fault.params["lag_ms"] > 0:
                    self._delay(fault.params["lag_ms"] / 1000.0, self._frame(text))
                    return
        if self._delayed:
            # Frames delayed by a ws_lag that has just cleared go first: never reorder data.
            self._delay(0.0, self._frame(text))
            return
        self._write(self._frame(text))

    def send_control_text(self, text: str) -> None:
        """See :meth:`simulator.ws.dialect.WsSession.send_control_text`."""
        if self.closing or self._blackholed():
            return
        self._write(self._frame(text))

    def send_ping(self, payload: bytes = b"") -> None:
        """See :meth:`simulator.ws.dialect.WsSession.send_ping`."""
        if self.closing or self._blackholed():
            return
        self._write(self._ws.send(Ping(payload=payload)))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """See :meth:`simulator.ws.dialect.WsSession.close`. Idempotent."""
        if self.closing:
            return
        self.closing = True
        self._cancel_timers()
        try:
            self._write(self._ws.send(CloseConnection(code=code, reason=reason or None)))
        except LocalProtocolError:
            self.drop()
            return
        loop = asyncio.get_running_loop()
        self._timers.add(loop.call_later(CLOSE_GRACE_S, self.drop))

    def now_ms(self) -> int:
        """See :meth:`simulator.ws.dialect.WsSession.now_ms`."""
        skew = self._faults.effective(self.exchange, None)
        if skew is not None and skew.kind == "clock_skew":
            return int(time.time() * 1000.0 + skew.params["skew_ms"])
        return int(time.time() * 1000.0)

    def fault(self) -> Mapping[str, object] | None:
        """See :meth:`simulator.ws.dialect.WsSession.fault`."""
        fault = self._faults.websocket(self.exchange)
        if fault is None:
            return None
        if fault is not self._fault_obj:
            self._fault_obj = fault
            self._fault_view = {"fault": fault.kind, **fault.params}
        return self._fault_view

    # -- transport ------------------------------------------------------------------------
    def drop(self) -> None:
        """End the TCP connection at once, without a close frame (clients see 1006)."""
        self.closing = True
        self.closed = True
        self._cancel_timers()
        self._transport.abort()

    def _blackholed(self) -> bool:
        fault = self._faults.websocket(self.exchange)
        return fault is not None and fault.kind == "ws_blackhole"

    def _frame(self, text: str) -> bytes:
        return self._ws.send(TextMessage(data=text))

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if self.closed or transport.is_closing():
            return
        transport.write(data)
        self._counters["frames_out"] += 1
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.info("%s: dropping a slow WebSocket consumer", self.exchange)
            self.drop()

    def _delay(self, delay_s: float, data: bytes) -> None:
        """Queue a data frame for ``delay_s`` from now behind every frame already delayed (one
        FIFO per session, drained by one timer), so a lag that changes or clears never
        reorders the stream."""
        due = max(time.monotonic() + delay_s, self._delayed[-1][0] if self._delayed else 0.0)
        self._delayed.append((due, data))
        if self._drain_timer is None:
            self._schedule_drain()

    def _schedule_drain(self) -> None:
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._delayed[0][0] - time.monotonic())
        handle = loop.call_later(wait, self._drain)
        self._drain_timer = handle
        self._timers.add(handle)

    def _drain(self) -> None:
        if self._drain_timer is not None:
            self._timers.discard(self._drain_timer)
            self._drain_timer = None
        now = time.monotonic()
        delayed = self._delayed
        while delayed and delayed[0][0] <= now and not self.closing:
            self._write(delayed.popleft()[1])
        if delayed and not self.closing:
            self._schedule_drain()

    def _cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    # -- receive loop ---------------------------------------------------------------------
    async def run(self, reader: asyncio.StreamReader, trailing: bytes) -> None:
        """Serve the connection until either side closes it: ``on_open``, the fault effects
        due at connect, then every client frame. Returns when the TCP connection is done."""
        try:
            self.dialect.on_open()
            self.apply_fault(time.monotonic())
            if trailing:
                self._receive(trailing)
            while not self.closed:
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                self._receive(data)
        finally:
            self.closing = self.closed = True
            self._cancel_timers()

    def _receive(self, data: bytes) -> None:
        try:
            self._ws.receive_data(data)
            for event in self._ws.events():
                self._on_event(event)
                if self.closed:
                    return
        except RemoteProtocolError as exc:
            log.info("%s: WebSocket protocol error from client: %s", self.exchange, exc)
            self.drop()

    def _on_event(self, event: Event) -> None:
        counters = self._counters
        if isinstance(event, TextMessage):
            counters["frames_in"] += 1
            self._client_frame()
            self._parts.append(event.data)
            if event.message_finished:
                text = "".join(self._parts)
                self._parts.clear()
                if not self.closing:
                    try:
                        self.dialect.on_text(text)
                    except Exception:  # a dialect bug must not kill the connection loop
                        log.exception("%s dialect failed on %r", self.exchange, text[:200])
        elif isinstance(event, Ping):
            counters["frames_in"] += 1
            self._client_frame()
            if not self.closing and not self._blackholed():
                self._write(self._ws.send(event.response()))
        elif isinstance(event, Pong):
            counters["frames_in"] += 1
            self._client_frame()
            sent = self._pending_pings.pop(bytes(event.payload), None)
            if sent is not None:  # a matching pong answers this ping and every older one
                for payload, at in list(self._pending_pings.items()):
                    if at <= sent:
                        del self._pending_pings[payload]
        elif isinstance(event, BytesMessage):
            counters["frames_in"] += 1
            self._client_frame()
        elif isinstance(event, CloseConnection):
            counters["frames_in"] += 1
            if not self.closing:
                self.closing = True
                self._cancel_timers()
                with contextlib.suppress(LocalProtocolError):
                    self._write(self._ws.send(event.response()))
            self.closed = True
            self._transport.close()

    def _client_frame(self) -> None:
        now = time.monotonic()
        self._last_client = now
        limit = self.rule.max_incoming_per_s
        if limit is None or self.closing:
            return
        incoming = self._incoming
        incoming.append(now)
        while incoming and incoming[0] <= now - 1.0:
            incoming.popleft()
        if len(incoming) > limit:
            self.close(self.rule.close_code, "Too many messages")

    # -- clock ----------------------------------------------------------------------------
    def apply_fault(self, now: float) -> None:
        """Act once on a newly set ``ws_disconnect`` (close with ``close_code``, or drop the
        TCP connection without one; with ``once``, only sessions opened before it was set) or
        ``ws_maintenance_notice`` (send the dialect's notice)."""
        fault = self._faults.websocket(self.exchange)
        if fault is None or fault is self._handled or self.closing:
            return
        if fault.kind == "ws_disconnect":
            self._handled = fault
            if fault.params.get("once") and self.opened_wall >= fault.created_at:
                return  # opened after a one-off close: the reconnect lands on a healthy server
            code = fault.params.get("close_code")
            if code is None:
                self.drop()
            else:
                self.close(code, "Simulated disconnect")
        elif fault.kind == "ws_maintenance_notice":
            self._handled = fault
            notice = self.dialect.maintenance_notice()
            if notice is not None:
                self.send_control_text(notice)

    def tick(self, now_ms: int, now: float) -> None:
        """One feed-clock step: fault effects, keep-alive rules, then the dialect's data for
        ``now_ms`` (epoch ms, real time). ``now`` is :func:`time.monotonic`."""
        if self.closing:
            return
        self.apply_fault(now)
        if self.closing:
            return
        if not self._blackholed():
            self._enforce(now)
            if self.closing:
                return
        try:
            self.dialect.on_tick(now_ms)
        except Exception:
            log.exception("%s dialect failed on tick", self.exchange)

    def _enforce(self, now: float) -> None:
        """Close the connection when the client broke a :class:`KeepAliveRule` (or the
        connection reached its lifetime); send the server's ping when due."""
        rule = self.rule
        code = rule.close_code
        if rule.max_lifetime is not None and now - self.opened >= rule.max_lifetime:
            self.close(code, "Connection lifetime reached")
            return
        if self._pending_pings and rule.pong_deadline is not None:
            oldest = min(self._pending_pings.values())
            if now - oldest >= rule.pong_deadline:
                self.close(code, "Pong timeout")
                return
        if rule.idle_timeout is not None and now - self._last_client >= rule.idle_timeout:
            self.close(code, "Idle timeout")
            return
        deadline = rule.subscribe_deadline
        expired = deadline is not None and now - self.opened >= deadline
        if expired and not self.dialect.is_subscribed():
            self.close(code, "No subscription")
            return
        interval = rule.server_ping_interval
        if interval is not None and now - self._last_ping >= interval:
            self._last_ping = now
            self._ping_seq += 1
            payload = b"%d" % (int(time.time() * 1000) * 100 + self._ping_seq % 100)
            self._pending_pings[payload] = now
            self.send_ping(payload)
