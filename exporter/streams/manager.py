"""The streams of the running exporter: one :class:`StreamConnection` task per exchange with a
``websocket:`` block, started with the scheduler, following config reloads (unchanged streams
keep running, changed ones restart, removed ones stop and lose their series), stopped cleanly.

Per exchange the manager keeps, across restarts, what must not reset on a reload: the
connection-attempt limiter (a reload cannot buy extra attempts), the backoff, and the
``/status`` record (counts since the exporter started).
"""

from __future__ import annotations

import asyncio
import functools
import random
from dataclasses import dataclass

from exporter.admission import HoldReason
from exporter.config import ExporterConfig
from exporter.http11 import ProbeClient
from exporter.market.data import MarketData
from exporter.metrics import ExporterMetrics
from exporter.profiles import Profile
from exporter.state import ExchangeState
from exporter.streams.backoff import Backoff
from exporter.streams.connection import StreamConnection
from exporter.streams.limits import ConnectLimiter
from exporter.streams.settings import StreamPlan, dialect_for
from exporter.streams.snapshot import SnapshotFetcher
from exporter.streams.status import StreamStatus


@dataclass
class _Stream:
    plan: StreamPlan
    connection: StreamConnection
    task: asyncio.Task[None]
    limiter: ConnectLimiter
    backoff: Backoff


class StreamManager:
    """Starts, reloads and stops the exchanges' streams.

    Args:
        metrics: the exporter's metrics (``metrics.streams`` holds ``exchange_ws_*``).
        states: per-exchange state by name, kept in sync by the scheduler (the streams share
            its rate-limit gate, probe gate and clock skew).
        client: the HTTP client for REST book snapshots (None: books needing one never sync).
        rng: jitter source.
        market_data: where the streams' ticker prices and trade volume go (None: nowhere).
    """

    def __init__(
        self,
        metrics: ExporterMetrics,
        states: dict[str, ExchangeState],
        client: ProbeClient | None,
        rng: random.Random | None = None,
        market_data: MarketData | None = None,
    ) -> None:
        self.market_data = market_data
        self._metrics = metrics
        self._states = states
        self._client = client
        self._rng = rng or random.Random()
        self._streams: dict[str, _Stream] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self.statuses: dict[str, StreamStatus] = {}
        """``/status`` records by exchange name (configured streams only)."""

    def apply(self, config: ExporterConfig) -> dict[str, int]:
        """Switch to ``config``'s streams; call on the event loop.

        Returns:
            ``{"kept", "started", "stopped"}`` stream counts (a restart counts as started).
        """
        plans = config.stream_plans()
        exchanges = {e.name: e for e in config.exchanges}
        kept = started = stopped = 0
        for name in list(self._streams):
            if name not in plans:
                self._retire(name)
                self._metrics.streams.forget_exchange(name)
                self.statuses.pop(name, None)
                stopped += 1
        for name, plan in plans.items():
            current = self._streams.get(name)
            if current is not None and current.plan == plan and not current.task.done():
                kept += 1
                continue
            old_plan = current.plan if current is not None else None
            if current is not None:
                self._retire(name)
            self._start(plan, exchanges[name].make_profile(), old_plan)
            started += 1
        return {"kept": kept, "started": started, "stopped": stopped}

    def _start(self, plan: StreamPlan, profile: Profile, old: StreamPlan | None) -> None:
        name = plan.exchange
        dialect = dialect_for(plan.profile)
        if dialect is None:  # config validation refuses this; be explicit anyway
            raise ValueError(f"{name}: profile {plan.profile!r} has no WebSocket dialect")
        state = self._states[name]
        metrics = self._metrics.streams
        if old is not None:
            for channel in old.channels:
                if channel not in plan.channels:
                    metrics.forget_channel(name, channel)
        metrics.declare(name, plan.channels)
        status = self.statuses.get(name)
        if status is None:
            status = self.statuses[name] = StreamStatus(plan.public_url(), plan.stale_map)
        else:
            status.configure(plan.public_url(), plan.stale_map)
        state.streams = status
        previous = self._streams.get(name)
        if previous is not None:
            limiter, backoff = previous.limiter, previous.backoff
            limiter.configure(dialect.connect_limits, plan.weight_budget)
        else:
            limiter = ConnectLimiter(
                dialect.connect_limits, plan.weight_budget, state.clock.monotonic
            )
            backoff = Backoff(rng=self._rng)
        fetcher = None
        if self._client is not None:
            fetcher = SnapshotFetcher(
                self._client,
                state,
                profile,
                plan.rest_base_url,
                plan.rest_timeout,
                plan.max_body_bytes,
                on_hold=functools.partial(self._held, name),
                route=plan.route,
            ).fetch
        connection = StreamConnection(
            plan,
            dialect,
            metrics,
            state,
            status,
            limiter,
            backoff,
            fetch=fetcher,
            on_maintenance=functools.partial(self._maintenance, name),
            rng=self._rng,
            market_data=self.market_data,
        )
        task = asyncio.create_task(connection.run(), name=f"stream-{name}")
        self._streams[name] = _Stream(plan, connection, task, limiter, backoff)

    def _retire(self, name: str) -> None:
        stream = self._streams.pop(name)
        stream.connection.stop()
        stream.task.cancel()
        self._retiring.add(stream.task)
        stream.task.add_done_callback(self._retiring.discard)
        state = self._states.get(name)
        if state is not None and state.streams is stream.connection.status:
            state.streams = None

    def _held(self, name: str, reason: HoldReason) -> None:
        if name in self._streams:
            self._metrics.probes_held.labels(name, reason.value).inc()

    def _maintenance(self, name: str) -> None:
        state = self._states.get(name)
        if state is not None and name in self._streams:
            self._metrics.maintenance.labels(name).set(1 if state.in_maintenance() else 0)

    def connection(self, name: str) -> StreamConnection | None:
        """The running connection object of ``name`` (tests and diagnostics)."""
        stream = self._streams.get(name)
        return stream.connection if stream is not None else None

    def tasks(self) -> list[asyncio.Task[None]]:
        """Every stream task still running, retiring ones included."""
        return [s.task for s in self._streams.values()] + list(self._retiring)

    async def stop(self) -> None:
        """Stop every stream and wait until their tasks have finished (connections closed)."""
        for name in list(self._streams):
            self._retire(name)
        tasks = list(self._retiring)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._retiring.clear()
