"""The key checks of the running exporter: one :class:`~exporter.keys.prober.KeyProber` task
per configured key, started with the scheduler, following config reloads (unchanged keys keep
running, changed ones restart, removed ones stop and lose their series), stopped cleanly.

Each check leaves the host on its exchange's egress route (proxy, source address, IP protocol,
TLS trust and name: :class:`exporter.keys.transport.RouteTransport`), as the probes do: an
IP-bound key answers only from its bound IPs. A changed route restarts the exchange's checks.

A key's ``/status`` record survives a restart of its check (a reload that changes its interval),
so the facts of its last accepted answer stay available to classify the next one.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import httpx

from exporter import __version__
from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.config import ExchangeConfig, ExporterConfig
from exporter.egress import DIRECT, Route
from exporter.keys.exchanges import key_api_for
from exporter.keys.prober import KeyProber
from exporter.keys.settings import ApiKeyConfig
from exporter.keys.status import KeyStatus
from exporter.keys.transport import RouteTransport
from exporter.metrics import ExporterMetrics
from exporter.state import ExchangeState


@dataclass
class _Check:
    config: ApiKeyConfig
    profile: str
    base_url: str
    route: Route
    prober: KeyProber
    task: asyncio.Task[None]


class KeyManager:
    """Starts, reloads and stops the key checks.

    Args:
        metrics: the exporter's metrics (``metrics.keys`` holds ``exchange_api_key_*``).
        states: per-exchange state by name, kept in sync by the scheduler.
        client: the HTTP client for every key check, whatever its route (tests); by default
            one per egress route is created when a check needs it (and closed by :meth:`stop`,
            or by :meth:`apply` once no check uses the route).
        clock: the time source.
        rng: jitter source.
    """

    def __init__(
        self,
        metrics: ExporterMetrics,
        states: dict[str, ExchangeState],
        client: httpx.AsyncClient | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._metrics = metrics
        self._states = states
        self._client = client
        self._clients: dict[Route, httpx.AsyncClient] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._clock = clock
        self._rng = rng or random.Random()
        self._checks: dict[tuple[str, str], _Check] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self.statuses: dict[str, dict[str, KeyStatus]] = {}
        """``/status`` records by exchange and key name (configured keys only)."""

    def apply(self, config: ExporterConfig) -> dict[str, int]:
        """Switch to ``config``'s keys; call on the event loop.

        Returns:
            ``{"kept", "started", "stopped"}`` key-check counts (a restart counts as started).
        """
        wanted: dict[tuple[str, str], tuple[ExchangeConfig, ApiKeyConfig]] = {
            (exchange.name, key.name): (exchange, key)
            for exchange in config.exchanges
            for key in exchange.api_keys
        }
        kept = started = stopped = 0
        for ident in list(self._checks):
            if ident not in wanted:
                self._retire(ident)
                self._metrics.keys.forget_key(*ident)
                self.statuses.get(ident[0], {}).pop(ident[1], None)
                if not self.statuses.get(ident[0]):
                    self.statuses.pop(ident[0], None)
                stopped += 1
        for ident, (exchange, key) in wanted.items():
            base_url = (key.base_url or exchange.base_url).rstrip("/")
            current = self._checks.get(ident)
            if (
                current is not None
                and current.config == key
                and current.profile == exchange.profile
                and current.base_url == base_url
                and current.route == exchange.route
                and not current.task.done()
            ):
                kept += 1
                continue
            if current is not None:
                self._retire(ident)
            self._start(exchange, key, base_url)
            started += 1
        self._close_unused({check.route for check in self._checks.values()})
        return {"kept": kept, "started": started, "stopped": stopped}

    def _start(self, exchange: ExchangeConfig, key: ApiKeyConfig, base_url: str) -> None:
        api = key_api_for(exchange.profile, key.credentials)
        statuses = self.statuses.setdefault(exchange.name, {})
        status = statuses.get(key.name)
        if status is None or status.api != api.api:
            status = statuses[key.name] = KeyStatus(api=api.api, interval=key.interval)
        status.interval = key.interval
        self._metrics.keys.declare(exchange.name, key.name)
        prober = KeyProber(
            exchange.name,
            key,
            base_url,
            api,
            exchange.make_profile(),
            self._states[exchange.name],
            self._metrics,
            status,
            self._http(exchange.route),
            self._clock,
            self._rng,
        )
        task = asyncio.create_task(prober.run(), name=f"api-key-{exchange.name}-{key.name}")
        self._checks[(exchange.name, key.name)] = _Check(
            key, exchange.profile, base_url, exchange.route, prober, task
        )

    def _http(self, route: Route) -> httpx.AsyncClient:
        if self._client is not None:
            return self._client
        client = self._clients.get(route)
        if client is None:
            client = self._clients[route] = httpx.AsyncClient(
                headers={"User-Agent": f"exchange-watch/{__version__}"},
                trust_env=False,
                follow_redirects=False,
                transport=None if route == DIRECT else RouteTransport(route),
            )
        return client

    def _close_unused(self, used: set[Route]) -> None:
        """Close the clients of routes no check uses any more (in the background: a retired
        check may still be unwinding on it)."""
        for route in [r for r in self._clients if r not in used]:
            task = asyncio.create_task(self._clients.pop(route).aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _retire(self, ident: tuple[str, str]) -> None:
        check = self._checks.pop(ident)
        check.task.cancel()
        self._retiring.add(check.task)
        check.task.add_done_callback(self._retiring.discard)

    def prober(self, exchange: str, key: str) -> KeyProber | None:
        """The running prober of one key (tests and diagnostics)."""
        check = self._checks.get((exchange, key))
        return check.prober if check is not None else None

    def tasks(self) -> list[asyncio.Task[None]]:
        """Every key-check task still running, retiring ones included."""
        return [c.task for c in self._checks.values()] + list(self._retiring)

    async def stop(self) -> None:
        """Stop every check, wait for the tasks, close the clients that are ours."""
        for ident in list(self._checks):
            self._retire(ident)
        await asyncio.gather(*list(self._retiring), return_exceptions=True)
        self._retiring.clear()
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients), *list(self._closing))
