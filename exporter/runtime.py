"""The running exporter: config file, scheduler, reloads and the ``/status`` document."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter import __version__
from exporter.config import ConfigError, ExporterConfig, load_config
from exporter.metrics import ExporterMetrics
from exporter.resilience import CircuitState
from exporter.scheduler import ProbeScheduler

log = logging.getLogger(__name__)


class ExporterRuntime:
    """Owns the scheduler and knows how to reload the config file it came from.

    Args:
        config_path: the YAML file (re-read on reload).
        config: its already-validated content.
        metrics: the exporter's metrics.
    """

    def __init__(self, config_path: Path, config: ExporterConfig, metrics: ExporterMetrics):
        self.config_path = config_path
        self.metrics = metrics
        self.scheduler = ProbeScheduler(config, metrics)
        metrics.set_location(config.location)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.after_reload: Callable[[], None] | None = None
        """Called after each successful reload (the CLI settles the heap there)."""
        metrics.config_reload_success.set(1)
        metrics.config_reload_timestamp.set(time.time())

    async def run(self, stop: asyncio.Event) -> None:
        """Probe until ``stop`` is set."""
        self.loop = asyncio.get_running_loop()
        await self.scheduler.run(stop)

    def reload(self) -> dict[str, Any]:
        """Re-read the config file and apply it; call on the event loop.

        Returns:
            ``{"status": "ok", "kept", "started", "stopped"}`` or, when the new file is
            invalid (the old config keeps running), ``{"status": "error", "error": message}``.
        """
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            self.metrics.config_reload_success.set(0)
            log.error("config reload failed; keeping the running config:\n%s", exc)
            return {"status": "error", "error": str(exc)}
        counts = self.scheduler.apply(config)
        self.metrics.set_location(config.location)
        self.metrics.config_reload_success.set(1)
        self.metrics.config_reload_timestamp.set(time.time())
        log.info("config reloaded from %s: %s", self.config_path, counts)
        if self.after_reload is not None:
            self.after_reload()
        return {"status": "ok", **counts}

    def status(self) -> dict[str, Any]:
        """The ``/status`` JSON document; call on the event loop.

        Shape: ``{"version", "config_file", "location", "connectivity_up",
        "exchanges": {name: {"circuit",
        "maintenance", "maintenance_message", "clock_skew_seconds",
        "rate_limits": {window: {"used", "limit"}}, "probe_budget": {limit name: {"used",
        "cap", "window_seconds"}}, "backoff_until", "ip_ban_until",
        "backoff_remaining_seconds", "egress", "endpoints": {endpoint: {"last_result",
        "last_error", "last_probe_at", "last_success_at", "consecutive_failures",
        "interval_seconds", "latency_seconds": {"p50", "p95", "p99", "count"},
        "phase_seconds": {phase: seconds} (the last answered probe's resolve, connect, tls,
        processing and transfer; empty before one)}},
        "streams": None | {"url", "connected", "since", "waiting", "reconnects": {reason: n},
        "ping_rtt_seconds", "channels": {channel: {"up", "messages", "last_message_at",
        "stale_after_seconds", "lag_seconds": {"p50", "p99", "count"}, "sequence_gaps",
        "checksum_mismatches", "subscription_errors"}}, "sequence_gaps",
        "checksum_mismatches", "book_resyncs", "book_crossed", "subscription_errors",
        "maintenance", "maintenance_message", "last_error", "last_error_at"},
        "api_keys": {key: :meth:`exporter.keys.status.KeyStatus.document`}}}}``; times are
        Unix seconds, latencies seconds over the last 5 minutes, ``location`` the config's
        (None without one), stream lag over the last
        1,024 messages of the channel; ``streams`` is None for an exchange without a stream;
        ``egress`` is :meth:`exporter.egress.Route.describe` of the exchange's route (``direct``,
        or e.g. ``proxy http://10.0.0.2:3128, ip4``: never a credential).
        """
        intervals = {(t.exchange, t.endpoint.name): t.interval for t in self.scheduler.targets}
        keys = self.scheduler.keys
        key_statuses = keys.statuses if keys is not None else {}
        routes = {exchange.name: exchange.route for exchange in self.scheduler.config.exchanges}
        exchanges: dict[str, Any] = {}
        for name, state in self.scheduler.states.items():
            exchanges[name] = {
                "circuit": CircuitState(state.circuit.state).name.lower().replace("_", "-"),
                "maintenance": state.in_maintenance(),
                "maintenance_message": state.maintenance_message(),
                "clock_skew_seconds": state.clock_skew,
                "rate_limits": {
                    window: {"used": used, "limit": limit}
                    for window, (used, limit) in state.rate_limits.items()
                },
                "probe_budget": {
                    window.rule.name: {
                        "used": used,
                        "cap": window.cap,
                        "window_seconds": window.span_seconds,
                    }
                    for window, used in state.admission.usage()
                },
                "backoff_until": state.gate.until,
                "ip_ban_until": state.gate.ban_until,
                "backoff_remaining_seconds": round(state.gate.remaining(), 3),
                "egress": routes[name].describe() if name in routes else None,
                "endpoints": {
                    endpoint: {
                        "last_result": ep.last_result,
                        "last_error": ep.last_error,
                        "last_probe_at": ep.last_probe_at or None,
                        "last_success_at": ep.last_success_at or None,
                        "consecutive_failures": ep.consecutive_failures,
                        "interval_seconds": intervals.get((name, endpoint)),
                        "latency_seconds": ep.percentiles(),
                        "phase_seconds": dict(ep.phases),
                    }
                    for endpoint, ep in state.endpoints.items()
                },
                "streams": state.streams.document() if state.streams is not None else None,
                "api_keys": {
                    key: status.document() for key, status in key_statuses.get(name, {}).items()
                },
            }
        connectivity = self.metrics.registry.get_sample_value("exchange_exporter_connectivity_up")
        return {
            "version": __version__,
            "config_file": str(self.config_path),
            "location": self.metrics.location,
            "connectivity_up": None if connectivity is None else connectivity == 1,
            "exchanges": exchanges,
        }

    def call(self, func: Any, timeout: float = 10.0) -> Any:
        """Run ``func()`` on the event loop from another thread and return its result."""
        if self.loop is None:
            raise RuntimeError("the exporter is not running yet")

        async def invoke() -> Any:
            return func()

        return asyncio.run_coroutine_threadsafe(invoke(), self.loop).result(timeout)
