"""The interface each simulated exchange's WebSocket dialect implements.

The transport (:mod:`simulator.ws.session`, wsproto over the simulator's h11 server) owns the
socket, frames, the fault lookup and the feed clock; a :class:`WsDialect` owns everything the
exchange documents: which paths it serves, the stream/channel names it accepts (every documented
form), subscribe/ack/error bodies, keep-alive rules, and the text of every data message, built
from the same :class:`~simulator.market.Market` as the REST API.

One dialect instance per connection (it may keep per-connection state: subscriptions, sequence
numbers, the last book it sent).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from simulator.market import Market


class WsSession(Protocol):
    """What a dialect may do with its connection (implemented by the transport,
    :class:`simulator.ws.session.Session`).

    Attributes:
        exchange: the exchange this connection belongs to (``"binance"``).
        market: the simulator's shared :class:`~simulator.market.Market` (REST reads the same).
    """

    exchange: str
    market: Market

    def send_text(self, text: str, channel: str | None = None) -> None:
        """Queue one market-data text frame of ``channel`` (``"ticker"``, ``"trades"`` or
        ``"book"``): dropped while ``ws_stall`` or ``ws_blackhole`` holds, delivered ``lag_ms``
        late under ``ws_lag``. A fault narrowed to a ``channel`` only applies to frames sent
        with that channel (frames sent without one see only un-narrowed faults); see
        :meth:`send_control_text` for frames that are not market data."""

    def send_control_text(self, text: str) -> None:
        """Queue a text frame that is not market data (acks, errors, pongs, notices): sent during
        ``ws_stall`` and ``ws_lag`` (not delayed), dropped during ``ws_blackhole``."""

    def send_ping(self, payload: bytes = b"") -> None:
        """Send a protocol ping frame (dropped during ``ws_blackhole``)."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with a close frame (the exchange's documented code); the TCP
        connection ends when the client answers, or after a short grace period."""

    def now_ms(self) -> int:
        """The exchange's clock in epoch milliseconds (an exchange-wide ``clock_skew`` fault
        applied): call it when building each message, so event times are exact."""

    def fault(self) -> Mapping[str, object] | None:
        """The effective ``ws_*`` fault of this exchange as ``{"fault": kind, **params}``
        (``channel``, ``lag_ms``, ``close_code`` when given), or None."""


@dataclass(frozen=True, slots=True)
class KeepAliveRule:
    """A documented keep-alive rule the simulator enforces by closing the connection.

    Attributes:
        server_ping_interval: seconds between server ping frames (Binance 20), or None.
        pong_deadline: seconds the client has to answer a server ping with a pong carrying the
            same payload (Binance 60); unsolicited pongs do not count.
        idle_timeout: seconds without any client message (pings included) before the server
            closes (OKX 30 "No data received in 30s", Bybit 600); None = not enforced.
        subscribe_deadline: seconds after connect within which a subscribe must arrive
            (Coinbase 5; the session asks :meth:`WsDialect.is_subscribed`); None = not enforced.
        close_code: the close code used when a rule is broken (OKX 4004), else 1000/1006.
        max_incoming_per_s: more client frames than this within any second (text, binary,
            ping and pong frames alike) → close (Binance 5); None = not enforced.
        max_lifetime: seconds after which the server closes the connection (Binance 24 h);
            None = never.

    No rule is enforced while ``ws_blackhole`` holds (the server answers nothing).
    """

    server_ping_interval: float | None = None
    pong_deadline: float | None = None
    idle_timeout: float | None = None
    subscribe_deadline: float | None = None
    close_code: int = 1000
    max_incoming_per_s: float | None = None
    max_lifetime: float | None = None


class WsDialect(ABC):
    """One exchange's public market-data WebSocket API as the simulator serves it."""

    exchange: ClassVar[str]
    paths: ClassVar[tuple[str, ...]]
    """Paths served under ``/<exchange>`` (``/ws``, ``/stream``, ``/v5/public/spot`` …); a path
    ending in ``/`` is a prefix (Binance ``/ws/<streamName>``)."""
    keepalive: ClassVar[KeepAliveRule]

    def __init__(self, session: WsSession, path: str, query: Mapping[str, str]) -> None:
        self.session = session
        self.path = path
        self.query = query

    def on_open(self) -> None:  # noqa: B027 - optional hook
        """Called once after the handshake (Kraken sends ``status``; Binance raw streams
        subscribe from the path)."""

    @abstractmethod
    def on_text(self, text: str) -> None:
        """Handle one client text frame (subscribe, unsubscribe, ping …), answering through
        the session."""

    @abstractmethod
    def on_tick(self, now_ms: int) -> None:
        """Emit the data due at ``now_ms`` for every subscription (called every
        :data:`simulator.market.TICK_MS`)."""

    def is_subscribed(self) -> bool:
        """True once the client holds a subscription (checked against
        :attr:`KeepAliveRule.subscribe_deadline`). Default: a non-empty ``subscriptions``
        (or ``subs``) attribute of the dialect, if it has one; override when the state lives
        elsewhere."""
        for name in ("subscriptions", "subs"):
            value = getattr(self, name, None)
            if value is not None:
                return bool(value)
        return False

    def active_fault(self, kind: str, channel: str | None) -> Mapping[str, object] | None:
        """The session's ``ws_*`` fault if it is ``kind`` and applies to ``channel`` (a fault
        narrowed to another channel does not; ``channel`` None matches any), else None."""
        fault = self.session.fault()
        if fault is None or fault.get("fault", fault.get("kind")) != kind:
            return None
        narrowed = fault.get("channel")
        if narrowed is not None and channel is not None and narrowed != channel:
            return None
        return fault

    def maintenance_notice(self) -> str | None:
        """The documented notice text sent for ``ws_maintenance_notice`` (Binance
        ``serverShutdown``, OKX ``64008``, Kraken ``status`` maintenance, Bybit
        ``system.status``, Coinbase ``status``), or None."""
        return None
