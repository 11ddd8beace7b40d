"""One exchange's stream, for as long as it is configured: wait for a turn, connect, run a
session (:mod:`exporter.streams.session`), count how it ended, back off, again.

Before every connection attempt:

1. the backoff delay of the previous end (:mod:`exporter.streams.backoff`);
2. the exchange's REST rate-limit gate: no attempt while the exchange has banned the IP
   (``ExchangeState.gate.ban_until``, set by the REST prober or a snapshot's answer);
3. the connection-attempt limiter (:class:`exporter.streams.limits.ConnectLimiter`): never more
   than ``weight_budget`` × the documented attempts per window (at least one).

Each replaced connection counts ``exchange_ws_reconnects_total{reason}``, failed attempts
included (reason ``error``).

Connections leave the host the way the exchange's :class:`exporter.egress.Route` says, as its
REST probes do (:func:`websocket_connect_kwargs`): through its HTTP ``CONNECT`` proxy (never a
proxy from the environment), from its source address, over its IP protocol, trusting its CA
bundle and checking its TLS server name. A failed attempt's text never holds the proxy's
credentials.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.client import ClientConnection, connect

from exporter import __version__
from exporter.egress import DIRECT, Route
from exporter.http11 import default_ssl_context
from exporter.market.data import MarketData
from exporter.state import ExchangeState
from exporter.streams.backoff import Backoff
from exporter.streams.dialect import StreamDialect
from exporter.streams.events import ReconnectReason, Subscription
from exporter.streams.integrity import Fetch
from exporter.streams.limits import ConnectLimiter
from exporter.streams.metrics import StreamMetrics
from exporter.streams.session import Cell, SessionEnd, StreamSession
from exporter.streams.settings import StreamPlan
from exporter.streams.status import StreamStatus

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_SECONDS = 3.0
"""How long a closing handshake may take before the TCP connection is dropped (a blackholed
connection never answers it)."""

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest WebSocket message accepted (a 400-level OKX or 1000-level Kraken book snapshot is
well under it)."""

BAN_RECHECK_SECONDS = 5.0
"""While the IP is banned, how often the gate is looked at again (a ban may be extended)."""


def websocket_connect_kwargs(
    route: Route, url: str, ssl_context: ssl.SSLContext | None
) -> dict[str, Any]:
    """Keyword arguments for ``websockets.asyncio.client.connect(url, ...)`` that send the
    connection the way ``route`` says (checked against websockets 17's ``asyncio/client.py``):

    - ``proxy``: :meth:`Route.websocket_proxy_url`, or None — explicitly, since the default (True)
      would take a proxy from the environment (``wss_proxy``/``https_proxy``/``socks_proxy``…,
      ``urllib.request.getproxies``);
    - ``family`` and ``local_addr`` (:meth:`Route.websocket_kwargs`): websockets hands them to
      ``loop.create_connection`` of the TCP connection — to the proxy's address when proxied
      (with the target's name resolved by the proxy), to the target's otherwise;
    - for a ``wss://`` URL, ``ssl`` (``ssl_context``, required then) and ``server_hostname``
      (the route's TLS server name, when set): websockets uses them for the TLS handshake with
      the target, inside the proxy's tunnel when proxied. A ``ws://`` URL gets neither (the
      library refuses ``ssl`` with ``ws://``).

    Raises:
        ValueError: the route's proxy URL is malformed (no credentials in the message).
    """
    kwargs = route.websocket_kwargs()
    if urlsplit(url).scheme.lower() == "wss":
        if ssl_context is None:
            raise ValueError("a wss:// URL needs a TLS context")
        kwargs["ssl"] = ssl_context
        if route.server_name:
            kwargs["server_hostname"] = route.server_name
    return kwargs


def scrub_credentials(text: str, route: Route) -> str:
    """``text`` with the route's proxy credentials replaced by ``***``: the whole proxy URL
    (as configured and as given to websockets), its ``user:password`` part and its password,
    percent-encoded and decoded, and the ``Basic`` token. Scrub before truncating."""
    if route.proxy_url is None:
        return text
    raw = route.proxy_url.get_secret_value()
    secrets = {raw, raw.strip()}
    try:
        normal = route.websocket_proxy_url()
        if normal is not None:
            secrets.add(normal)
        parts = urlsplit(raw.strip())
        userinfo = parts.netloc.rpartition("@")[0]
        password = parts.password
    except ValueError:
        userinfo, password = raw.strip().rpartition("@")[0], None
    for value in (userinfo, password):
        if value:
            secrets.update((value, unquote(value)))
    try:
        proxy = route.proxy
    except ValueError:
        proxy = None
    if proxy is not None and proxy.authorization is not None:
        token = proxy.authorization.get_secret_value()
        secrets.update((token, token.removeprefix("Basic ")))
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _describe(route: Route) -> str:
    try:
        return route.describe()
    except ValueError:  # a malformed proxy URL: say so without it
        return "proxy (malformed URL)"


class StreamConnection:
    """Runs one exchange's stream until cancelled (see the module docstring).

    Args:
        plan: the resolved stream config.
        dialect: the exchange's dialect class (one instance per connection).
        metrics: the ``exchange_ws_*`` metrics.
        state: the exchange's state (rate-limit gate, clock skew, maintenance).
        status: the stream's ``/status`` record.
        limiter: the exchange's connection-attempt limiter (kept across restarts).
        backoff: the exchange's reconnect backoff (kept across restarts).
        fetch: REST snapshot fetch through the probe gate, or None.
        on_maintenance: called when the stream's maintenance flag changes.
        rng: jitter source.
        market_data: where the sessions write ticker prices and trade volume (None: nowhere).
    """

    def __init__(
        self,
        plan: StreamPlan,
        dialect: type[StreamDialect],
        metrics: StreamMetrics,
        state: ExchangeState,
        status: StreamStatus,
        limiter: ConnectLimiter,
        backoff: Backoff,
        fetch: Fetch | None = None,
        on_maintenance: Callable[[], None] | None = None,
        rng: random.Random | None = None,
        market_data: MarketData | None = None,
    ) -> None:
        self.plan = plan
        self._market_data = market_data
        self._dialect = dialect
        self._metrics = metrics
        self._state = state
        self.status = status
        self._limiter = limiter
        self._backoff = backoff
        self._fetch = fetch
        self._on_maintenance = on_maintenance
        self._rng = rng or random.Random()
        self._exchange = metrics.exchange(plan.exchange)
        self._channels = {
            channel: metrics.channel(plan.exchange, channel) for channel in plan.channels
        }
        self.stopped = False
        """Set by :meth:`stop`: no metric is written after it (the series may be gone)."""
        self.attempts = 0
        self.session: StreamSession | None = None
        self._tls: tuple[str | None, ssl.SSLContext] | None = None

    def stop(self) -> None:
        """Set the connection's gauges to 0 and stop writing metrics (call before cancelling
        the task; the manager may remove the series right after)."""
        self._disconnected()
        self.stopped = True

    async def run(self) -> None:
        """Connect, run, reconnect — until cancelled."""
        delay = 0.0
        try:
            while True:
                await self._wait_turn(delay)
                end = await self._connect_once()
                self._ended(end)
                delay = self._backoff.ended(end.healthy_seconds)
        finally:
            self._disconnected()

    async def _wait_turn(self, delay: float) -> None:
        if delay > 0:
            self.status.waiting = f"backoff {delay:.1f}s"
            await asyncio.sleep(delay)
        clock = self._state.clock
        while True:
            banned = self._state.gate.ban_until - clock.time()
            if banned > 0:
                self.status.waiting = f"IP banned until {self._state.gate.ban_until:.0f}"
                await asyncio.sleep(min(banned, BAN_RECHECK_SECONDS))
                continue
            wait = self._limiter.wait()
            if wait > 0:
                self.status.waiting = f"connection-attempt limit: next in {wait:.1f}s"
                await asyncio.sleep(wait)
                continue
            break
        self.status.waiting = "connecting"
        self._limiter.record()
        self.attempts += 1

    async def _connect_once(self) -> SessionEnd:
        plan = self.plan
        dialect = self._dialect()
        subscriptions = [Subscription(c, m) for c in plan.channels for m in plan.markets]
        route = plan.route
        try:
            url = dialect.connect_url(plan.url, subscriptions)
            secure = urlsplit(url).scheme.lower() == "wss"
            egress = websocket_connect_kwargs(route, url, self._tls_context() if secure else None)
            ws: ClientConnection = await connect(
                url,
                open_timeout=plan.open_timeout,
                ping_interval=None,  # keep-alive is the dialect's business (session.py)
                ping_timeout=None,
                close_timeout=CLOSE_TIMEOUT_SECONDS,
                max_size=MAX_MESSAGE_BYTES,
                user_agent_header=f"exchange-watch/{__version__}",
                **egress,  # proxy (None: never the environment's), family, local_addr, ssl…
            )
        except Exception as exc:  # refused, DNS, TLS, proxy, handshake, timeout: try again later
            text = scrub_credentials(str(exc), route)[:200] or type(exc).__name__
            if route != DIRECT:
                text += f" (route: {_describe(route)})"
            return SessionEnd(ReconnectReason.ERROR, f"connect failed: {text}", 0.0)
        cells = {
            channel: Cell(self.status.channels[channel], self._channels[channel])
            for channel in plan.channels
        }
        session = StreamSession(
            ws,
            dialect,
            subscriptions,
            cells,
            self._exchange,
            self._ping_rtt,
            self._state,
            self.status,
            self._fetch,
            self._maintenance_changed,
            self._rng,
            self.plan.skew_resolution,
            market_data=self._market_data,
            exchange_name=plan.exchange,
        )
        self.session = session
        try:
            return await session.run()
        finally:
            self.session = None
            self._disconnected()

    def _tls_context(self) -> ssl.SSLContext:
        """The TLS context for ``wss://``: :func:`exporter.http11.default_ssl_context` with the
        route's CA bundle — certifi's bundle without one, the same trust as the exchange's REST
        probes — built once per connection object (not per reconnect); a bundle that cannot be
        read raises (a connect failure) and is tried again at the next attempt."""
        ca_file = self.plan.route.ca_file
        if self._tls is None or self._tls[0] != ca_file:
            self._tls = (ca_file, default_ssl_context(ca_file))
        return self._tls[1]

    def _ping_rtt(self) -> Any:
        if self.stopped:
            return _NullGauge()
        return self._metrics.ping_rtt.labels(self.plan.exchange)

    def _maintenance_changed(self) -> None:
        if not self.stopped and self._on_maintenance is not None:
            self._on_maintenance()

    def _disconnected(self) -> None:
        status = self.status
        status.connected = False
        status.since = None
        for record in status.channels.values():
            record.up = False
        if self.stopped:
            return
        self._exchange.connected.set(0)
        for children in self._channels.values():
            children.up.set(0)

    def _ended(self, end: SessionEnd) -> None:
        now = time.time()
        self.status.reconnects[end.reason.value] += 1
        self.status.error(end.error, now)
        if not self.stopped:
            self._exchange.reconnects[end.reason].inc()
        log.info("stream %s ended (%s): %s", self.plan.exchange, end.reason.value, end.error)


class _NullGauge:
    """Stands in for a gauge child once the stream is stopped."""

    def set(self, value: float) -> None:
        """Ignore ``value``."""
