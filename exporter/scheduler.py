"""Probe scheduling: each endpoint on its own interval, offsets spread, no self-overlap, reloads.

Every (exchange, endpoint) runs in its own task. An exchange's ``n`` endpoints start spread over
their interval (endpoint ``j`` at ``interval × (j + x / N) / n`` for exchange ``x`` of ``N``), so
that one exchange's requests never bunch and exchanges are staggered; a probe never starts
before the previous probe of the same endpoint has finished; missed slots are skipped, not
bunched; at most ``max_concurrency`` probes are in flight. Before each probe the loop consults
the exchange's rate-limit pause (paused → wait it out), its circuit breaker (open → slower;
half-open → one trial) and the endpoint's transport backoff. Wake-ups (an outage sweep, a
recovery: :class:`exporter.state.Wake`) bring a sleeping loop's probe forward; whatever the loop
decides, the prober sends nothing the exchange's probe gate (:mod:`exporter.admission`) does not
admit. The exchanges' WebSocket streams (:mod:`exporter.streams.manager`) and API-key checks
(:mod:`exporter.keys.manager`) start and stop with the probe loops and follow the same reloads.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass

from exporter import __version__
from exporter.canary import ConnectivityCanary
from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.config import ExporterConfig
from exporter.egress import Route
from exporter.http11 import ProbeClient
from exporter.keys.manager import KeyManager
from exporter.market.data import MarketData
from exporter.metrics import ExporterMetrics
from exporter.prober import Prober, ProbeTarget
from exporter.profiles import Result
from exporter.resilience import TRANSPORT_BACKOFF_CAP_SECONDS, transport_backoff
from exporter.state import EndpointState, ExchangeState, LatencyWindow, window_capacity
from exporter.streams.manager import StreamManager

log = logging.getLogger(__name__)


def build_targets(config: ExporterConfig) -> list[ProbeTarget]:
    """Expand the config into one :class:`ProbeTarget` per (exchange, endpoint), each on its
    exchange's egress route."""
    targets: list[ProbeTarget] = []
    for exchange in config.exchanges:
        profile = exchange.make_profile()
        specs = profile.endpoint_specs(exchange.effective_symbol())
        for plan in exchange.endpoint_plan():
            spec = specs[plan.name]
            targets.append(
                ProbeTarget(
                    exchange=exchange.name,
                    profile=profile,
                    endpoint=spec,
                    url=spec.url(exchange.base_url),
                    interval=plan.interval,
                    timeout=plan.timeout,
                    max_body_bytes=config.body_limit(exchange),
                    market=exchange.rest_market() if spec.name == "ticker" else None,
                    route=exchange.route,
                )
            )
    return targets


@dataclass(frozen=True, slots=True)
class _TargetKey:
    exchange: str
    endpoint: str
    url: str
    interval: float
    timeout: float
    max_body_bytes: int
    profile: object
    market: str | None
    route: Route

    @classmethod
    def of(cls, target: ProbeTarget) -> _TargetKey:
        return cls(
            target.exchange,
            target.endpoint.name,
            target.url,
            target.interval,
            target.timeout,
            target.max_body_bytes,
            target.profile.fingerprint(target.endpoint.name),
            target.market,
            target.route,
        )


class ProbeScheduler:
    """Runs every target of the current config until stopped; :meth:`apply` swaps configs.

    Args:
        config: the validated exporter config.
        metrics: where probes are recorded.
        client: a probe client to share; by default one is created (and closed) by :meth:`run`.
        rng: random source for offsets' jitter and backoff jitter.
        clock: time source; must agree with the event loop's ``loop.time()`` (tests run the
            scheduler on a fake clock).
        streams: run the configured WebSocket streams (False: REST probes only, e.g. a test
            of the probe schedule on a virtual clock).
        keys: run the configured API-key checks (False: none, as for ``streams``).
    """

    def __init__(
        self,
        config: ExporterConfig,
        metrics: ExporterMetrics,
        client: ProbeClient | None = None,
        rng: random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
        streams: bool = True,
        keys: bool = True,
    ) -> None:
        self.config = config
        self._with_streams = streams
        self._with_keys = keys
        self.metrics = metrics
        self.states: dict[str, ExchangeState] = {}
        self.targets: list[ProbeTarget] = build_targets(config)
        self._client = client
        self._rng = rng or random.Random()
        self._clock = clock
        self._tasks: dict[tuple[str, str], tuple[_TargetKey, asyncio.Task[None]]] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._semaphore_limit = config.max_concurrency
        self._prober: Prober | None = None
        self._canary: ConnectivityCanary | None = None
        self.streams: StreamManager | None = None
        """The WebSocket streams, while :meth:`run` runs."""
        self.keys: KeyManager | None = None
        """The API-key checks, while :meth:`run` runs."""
        self.market_data = MarketData(metrics.market, clock)
        """Market data of every exchange (prices, volume, announced maintenance)."""
        self._sync_states(config)

    def _sync_states(self, config: ExporterConfig) -> None:
        results = tuple(r.value for r in Result)
        wanted = {e.name: e for e in config.exchanges}
        for name in list(self.states):
            if name not in wanted:
                del self.states[name]
                self.market_data.forget_exchange(name)
                self.metrics.forget_exchange(name)
        for name, exchange in wanted.items():
            plan = exchange.stream_plan(config.body_limit(exchange))
            streamed = {c.value: set(plan.markets) for c in plan.channels} if plan else {}
            self.market_data.configure(
                name,
                exchange.market_groups(),
                ticker_streamed=streamed.get("ticker", ()),
                trades_streamed=streamed.get("trades", ()),
            )
        for name, exchange in wanted.items():
            state = self.states.get(name)
            if state is None:
                state = self.states[name] = ExchangeState.for_config(exchange, self._clock)
                self.metrics.declare_exchange(name)
            else:
                state.configure(exchange)
            planned = {plan.name: plan.interval for plan in exchange.endpoint_plan()}
            removed = [endpoint for endpoint in state.endpoints if endpoint not in planned]
            for endpoint in removed:
                del state.endpoints[endpoint]
                self.metrics.forget_endpoint(name, endpoint)
            if removed:  # a removed endpoint may have been the one reporting maintenance
                self.metrics.maintenance.labels(name).set(1 if state.in_maintenance() else 0)
            for endpoint, interval in planned.items():
                capacity = window_capacity(interval)
                current = state.endpoints.get(endpoint)
                if current is None:
                    state.endpoints[endpoint] = EndpointState(samples=LatencyWindow(capacity))
                    self.metrics.declare(name, endpoint, results)
                elif current.samples.capacity != capacity:
                    current.samples = current.samples.resized(capacity)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Probe (and stream) until ``stop`` is set (or forever), then cancel and await every
        task, streams included."""
        own_client = self._client is None
        client = self._client or ProbeClient(f"exchange-watch/{__version__}")
        self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
        self._semaphore_limit = self.config.max_concurrency
        self._prober = Prober(
            client, self.metrics, self.states, self._semaphore, self._clock, self.market_data
        )
        self._canary = ConnectivityCanary(client, self.metrics)
        self._canary.configure(self.config)
        canary_task = asyncio.create_task(self._canary.run(), name="connectivity-canary")
        self._start_targets(self.targets)
        if self._with_streams:
            self.streams = StreamManager(
                self.metrics, self.states, client, self._rng, market_data=self.market_data
            )
            self.streams.apply(self.config)
        if self._with_keys:
            self.keys = KeyManager(self.metrics, self.states, clock=self._clock, rng=self._rng)
            self.keys.apply(self.config)
        try:
            if stop is None:
                await asyncio.Event().wait()
            else:
                await stop.wait()
        finally:
            canary_task.cancel()
            tasks = [task for _, task in self._tasks.values()] + [canary_task]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.clear()
            if self.streams is not None:
                await self.streams.stop()
                self.streams = None
            if self.keys is not None:
                await self.keys.stop()
                self.keys = None
            if own_client:
                await client.aclose()

    def apply(self, config: ExporterConfig) -> dict[str, int]:
        """Switch to ``config`` while running; must be called on the scheduler's event loop.

        Unchanged endpoints keep their task, state and counters; removed endpoints stop and
        their series are removed; new or changed endpoints (re)start. WebSocket streams follow
        the same rule (:meth:`exporter.streams.manager.StreamManager.apply`).

        Returns:
            Endpoint counts ``{"kept", "started", "stopped"}``, stream counts
            ``{"streams_kept", "streams_started", "streams_stopped"}`` and key-check counts
            ``{"keys_kept", "keys_started", "keys_stopped"}`` (0 before :meth:`run`).
        """
        new_targets = build_targets(config)
        new_keys = {(t.exchange, t.endpoint.name): (_TargetKey.of(t), t) for t in new_targets}
        stopped = kept = 0
        for key, (old_key, task) in list(self._tasks.items()):
            if key in new_keys and new_keys[key][0] == old_key:
                kept += 1
                continue
            task.cancel()
            del self._tasks[key]
            stopped += key not in new_keys
        self.config = config
        self.targets = new_targets
        self._sync_states(config)
        if self._semaphore is not None and config.max_concurrency != self._semaphore_limit:
            self._semaphore = asyncio.Semaphore(config.max_concurrency)
            self._semaphore_limit = config.max_concurrency
            if self._prober is not None:
                self._prober.concurrency = self._semaphore
        if self._canary is not None:
            self._canary.configure(config)
        started = self._start_targets([t for k, (_, t) in new_keys.items() if k not in self._tasks])
        streams = {"kept": 0, "started": 0, "stopped": 0}
        if self.streams is not None:
            streams = self.streams.apply(config)
        keys = {"kept": 0, "started": 0, "stopped": 0}
        if self.keys is not None:
            keys = self.keys.apply(config)
        return {
            "kept": kept,
            "started": started,
            "stopped": stopped,
            **{f"streams_{key}": value for key, value in streams.items()},
            **{f"keys_{key}": value for key, value in keys.items()},
        }

    def _start_targets(self, targets: list[ProbeTarget]) -> int:
        if self._prober is None:
            return 0
        offsets = _offsets(self.targets)
        for target in targets:
            key = (target.exchange, target.endpoint.name)
            task = asyncio.create_task(
                self._loop(target, offsets[key]),
                name=f"probe-{target.exchange}-{target.endpoint.name}",
            )
            self._tasks[key] = (_TargetKey.of(target), task)
        return len(targets)

    async def _loop(self, target: ProbeTarget, offset: float) -> None:
        loop = asyncio.get_running_loop()
        state = self.states[target.exchange]
        endpoint = state.endpoints[target.endpoint.name]
        prober = self._prober
        assert prober is not None
        next_at = loop.time() + offset
        while True:
            delay = next_at - loop.time()
            if delay > 0 and await state.wakeup.sleep(delay):
                if not state.woken(endpoint):
                    continue  # a wake-up for the other endpoints: sleep on
                next_at = loop.time()  # an outage to confirm, or a recovery
            paused = state.gate.remaining()
            if paused > 0:
                # Rate-limited or banned: no request of ours may reach the exchange before
                # the wait is over; resume spread over one interval.
                next_at = loop.time() + paused + self._rng.uniform(0, target.interval)
                continue
            if not state.circuit.allow():
                next_at += state.circuit.interval(target.interval)
                continue
            probe_started = self._clock.monotonic()
            try:
                await prober.probe(target, due=next_at)
            except Exception:  # a bug must not silence the probe loop
                log.exception("probe of %s %s failed", target.exchange, target.endpoint.name)
            # Back off only while the whole exchange is failing (no success anywhere since);
            # a single failing endpoint of an answering exchange keeps its normal interval.
            failing = endpoint.transport_failures if state.circuit.failures else 0
            interval = transport_backoff(target.interval, failing, self._rng)
            slowed = state.circuit.interval(interval)
            next_at += min(slowed, max(target.interval, TRANSPORT_BACKOFF_CAP_SECONDS))
            if endpoint.consecutive_failures and state.recovered_at > probe_started:
                next_at = loop.time()  # the exchange recovered while this probe ran
            behind = loop.time() - next_at
            if behind > 0:
                next_at += math.ceil(behind / target.interval) * target.interval


def _offsets(targets: list[ProbeTarget]) -> dict[tuple[str, str], float]:
    """First-probe offsets (seconds): each exchange's endpoints spread evenly over their
    interval, and the exchanges staggered within that spacing."""
    by_exchange: dict[str, list[ProbeTarget]] = {}
    for target in targets:
        by_exchange.setdefault(target.exchange, []).append(target)
    count = max(len(by_exchange), 1)
    offsets = {}
    for x, members in enumerate(by_exchange.values()):
        n = len(members)
        for j, target in enumerate(members):
            offsets[(target.exchange, target.endpoint.name)] = target.interval * (j + x / count) / n
    return offsets
