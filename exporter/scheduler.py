"""Probe scheduling: each endpoint on its own interval, start offsets spread, no self-overlap."""

from __future__ import annotations

import asyncio
import logging
import math

import httpx

from exporter import __version__
from exporter.config import ExporterConfig
from exporter.metrics import ExporterMetrics
from exporter.prober import Prober, ProbeTarget
from exporter.profiles import Result, get_profile

log = logging.getLogger(__name__)


def build_targets(config: ExporterConfig) -> list[ProbeTarget]:
    """Expand the config into one :class:`ProbeTarget` per (exchange, endpoint)."""
    targets: list[ProbeTarget] = []
    for exchange in config.exchanges:
        profile = get_profile(exchange.profile)
        specs = profile.endpoint_specs(exchange.effective_symbol())
        for name in exchange.endpoint_names():
            spec = specs[name]
            targets.append(
                ProbeTarget(
                    exchange=exchange.name,
                    profile=profile,
                    endpoint=spec,
                    url=spec.url(exchange.base_url),
                    interval=exchange.interval,
                    timeout=exchange.timeout,
                )
            )
    return targets


class ProbeScheduler:
    """Runs every target forever on its own interval.

    Target ``i`` of ``n`` first starts at ``interval * i / n`` seconds, spreading load across the
    interval. A target's next probe never starts before its previous one finished; when a probe
    overruns, the missed slots are skipped rather than bunched. At most ``max_concurrency``
    probes are in flight at once.

    Args:
        config: the validated exporter config.
        metrics: where probes are recorded.
        client: an HTTP client to share; by default one is created (and closed) by :meth:`run`.
    """

    def __init__(
        self,
        config: ExporterConfig,
        metrics: ExporterMetrics,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.targets = build_targets(config)
        self._client = client
        results = tuple(r.value for r in Result)
        for target in self.targets:
            metrics.declare(target.exchange, target.endpoint.name, results)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Probe until ``stop`` is set (or forever), then cancel and await every probe loop."""
        own_client = self._client is None
        client = self._client or httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=self.config.max_concurrency,
                max_keepalive_connections=self.config.max_concurrency,
            ),
            headers={"User-Agent": f"exchange-watch/{__version__}"},
            follow_redirects=False,
        )
        prober = Prober(client, self.metrics)
        semaphore = asyncio.Semaphore(self.config.max_concurrency)
        count = len(self.targets)
        tasks = [
            asyncio.create_task(
                self._loop(prober, semaphore, target, target.interval * i / count),
                name=f"probe-{target.exchange}-{target.endpoint.name}",
            )
            for i, target in enumerate(self.targets)
        ]
        try:
            if stop is None:
                await asyncio.gather(*tasks)
            else:
                await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if own_client:
                await client.aclose()

    async def _loop(
        self, prober: Prober, semaphore: asyncio.Semaphore, target: ProbeTarget, offset: float
    ) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + offset
        lag_histogram = self.metrics.schedule_lag
        while True:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            async with semaphore:
                lag_histogram.observe(max(loop.time() - next_at, 0.0))
                try:
                    await prober.probe(target)
                except Exception:  # a bug must not silence the probe loop
                    log.exception("probe of %s %s failed", target.exchange, target.endpoint.name)
            next_at += target.interval
            behind = loop.time() - next_at
            if behind > 0:
                next_at += math.ceil(behind / target.interval) * target.interval
