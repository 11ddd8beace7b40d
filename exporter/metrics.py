"""The exporter's Prometheus metrics. Names are fixed: rules and dashboards depend on them.

All per-probe series are labelled only by ``exchange`` (configured names), ``endpoint``
(:data:`exporter.profiles.ENDPOINT_NAMES`), ``result`` (:class:`exporter.profiles.Result`) and
``window`` (a profile's rate-limit windows), so cardinality is bounded by the config.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from exporter import __version__

LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip
"""Histogram buckets for exchange API latency: dense from 5 ms to 300 ms, where healthy
exchange APIs answer from a nearby region, and coarse up to 10 s for degradations."""

SCHEDULE_LAG_BUCKETS_SECONDS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


class ExporterMetrics:
    """Every metric the exporter publishes, registered on one registry.

    Args:
        registry: where to register; a fresh :class:`CollectorRegistry` by default so that
            several exporters (tests, benchmarks) can live in one process.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram(
            "exchange_api_request_duration_seconds",
            "Time from sending a probe request to receiving the whole response, for probes that "
            "got an HTTP response (transport failures and timeouts are counted in "
            "exchange_api_requests_total only).",
            ["exchange", "endpoint"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.requests = Counter(
            "exchange_api_requests",
            "Probe requests by outcome; result is one of ok, timeout, connect_error, http_error, "
            "rate_limited, banned, api_error, bad_response, maintenance.",
            ["exchange", "endpoint", "result"],
            registry=r,
        )
        self.up = Gauge(
            "exchange_api_up",
            "1 when the last probe of the endpoint succeeded at transport, HTTP and body level, "
            "else 0.",
            ["exchange", "endpoint"],
            registry=r,
        )
        self.consecutive_failures = Gauge(
            "exchange_api_consecutive_failures",
            "Number of probes of the endpoint that failed in a row since the last success.",
            ["exchange", "endpoint"],
            registry=r,
        )
        self.rate_limit_used = Gauge(
            "exchange_rate_limit_used",
            "Request weight (or requests) used in the current rate-limit window, as reported by "
            "the exchange's response headers (Binance X-MBX-USED-WEIGHT-1M, Bybit X-Bapi-Limit-*). "
            "Counts every client on this IP, not only the exporter.",
            ["exchange", "window"],
            registry=r,
        )
        self.rate_limit_limit = Gauge(
            "exchange_rate_limit_limit",
            "The exchange's documented or reported limit for the same window as "
            "exchange_rate_limit_used.",
            ["exchange", "window"],
            registry=r,
        )
        self.clock_skew = Gauge(
            "exchange_clock_skew_seconds",
            "Exchange server time minus local time at the midpoint of the time probe; positive "
            "means the local clock is behind the exchange.",
            ["exchange"],
            registry=r,
        )
        self.last_probe = Gauge(
            "exchange_api_last_probe_timestamp_seconds",
            "Unix time at which the last probe of the endpoint finished.",
            ["exchange", "endpoint"],
            registry=r,
        )
        self.schedule_lag = Histogram(
            "exchange_exporter_schedule_lag_seconds",
            "How late probes start relative to their schedule (event-loop saturation shows here).",
            buckets=SCHEDULE_LAG_BUCKETS_SECONDS,
            registry=r,
        )
        self.build_info = Info(
            "exchange_exporter_build", "exchange-watch exporter version.", registry=r
        )
        self.build_info.info({"version": __version__})

    def declare(self, exchange: str, endpoint: str, results: tuple[str, ...]) -> None:
        """Create the series of one probed endpoint at zero, so that rates and absent()
        behave from the first scrape on instead of appearing with the first failure."""
        self.request_duration.labels(exchange, endpoint)
        for result in results:
            self.requests.labels(exchange, endpoint, result)
        self.consecutive_failures.labels(exchange, endpoint).set(0)
