"""The exporter's Prometheus metrics. Names are fixed: rules and dashboards depend on them.

All per-probe series are labelled only by ``exchange`` (configured names), ``endpoint``
(:data:`exporter.profiles.ENDPOINT_NAMES`), ``result`` (:class:`exporter.profiles.Result`) and
``window`` (a profile's rate-limit windows), so cardinality is bounded by the config. An
exporter with a ``location`` (config) adds ``location="<value>"`` to every series it renders
(:meth:`ExporterMetrics.set_location`); the registry itself never holds that label.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from exporter import __version__
from exporter.admission import HoldReason
from exporter.egress import PHASES
from exporter.exposition import TextRenderer
from exporter.keys.metrics import KeyMetrics
from exporter.market.metrics import MarketMetrics
from exporter.streams.metrics import StreamMetrics

LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip
"""Histogram buckets for exchange API latency: dense from 5 ms to 300 ms, where healthy
exchange APIs answer from a nearby region, and coarse up to 10 s for degradations."""

SCHEDULE_LAG_BUCKETS_SECONDS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


class EndpointSeries:
    """The labelled series one probe of an (exchange, endpoint) writes, looked up once.

    ``labels()`` costs a lock and a tuple key per call, and a probe writes about fifteen series:
    at 1,000 probes/s that was a tenth of the exporter's CPU. Children are cached here and
    dropped with the endpoint's series (:meth:`ExporterMetrics.forget_endpoint`,
    :meth:`ExporterMetrics.forget_exchange`), so a forgotten series is never written again.

    Attributes:
        duration: ``exchange_api_request_duration_seconds`` child.
        up, consecutive_failures, last_probe: the gauges' children.
        phases: ``(phase, child)`` of ``exchange_api_request_phase_seconds``, in
            :data:`exporter.egress.PHASES` order.
        maintenance, circuit_state: the exchange's gauges' children.
    """

    __slots__ = (
        "_metrics",
        "_requests",
        "_responses",
        "circuit_state",
        "consecutive_failures",
        "duration",
        "endpoint",
        "exchange",
        "last_probe",
        "maintenance",
        "phases",
        "up",
    )

    def __init__(self, metrics: ExporterMetrics, exchange: str, endpoint: str) -> None:
        self._metrics = metrics
        self.exchange = exchange
        self.endpoint = endpoint
        self.duration = metrics.request_duration.labels(exchange, endpoint)
        self.up = metrics.up.labels(exchange, endpoint)
        self.consecutive_failures = metrics.consecutive_failures.labels(exchange, endpoint)
        self.last_probe = metrics.last_probe.labels(exchange, endpoint)
        self.maintenance = metrics.maintenance.labels(exchange)
        self.circuit_state = metrics.circuit_state.labels(exchange)
        self.phases: tuple[tuple[str, Any], ...] = tuple(
            (phase, metrics.request_phase.labels(exchange, endpoint, phase)) for phase in PHASES
        )
        self._requests: dict[str, Any] = {}
        self._responses: dict[int, Any] = {}

    def requests(self, result: str) -> Any:
        """The ``exchange_api_requests_total`` child for ``result``."""
        child = self._requests.get(result)
        if child is None:
            child = self._requests[result] = self._metrics.requests.labels(
                self.exchange, self.endpoint, result
            )
        return child

    def responses(self, status: int) -> Any:
        """The ``exchange_api_http_responses_total`` child for HTTP ``status``."""
        child = self._responses.get(status)
        if child is None:
            child = self._responses[status] = self._metrics.http_responses.labels(
                self.exchange, self.endpoint, str(status)
            )
        return child


class ExporterMetrics:
    """Every metric the exporter publishes, registered on one registry.

    Args:
        registry: where to register; a fresh :class:`CollectorRegistry` by default so that
            several exporters (tests, benchmarks) can live in one process.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self._series: dict[tuple[str, str], EndpointSeries] = {}
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
            "Probe requests by outcome; result is one of ok, timeout, dns_error, tls_error, "
            "connect_error, http_error, rate_limited, banned, api_error, bad_response, "
            "maintenance.",
            ["exchange", "endpoint", "result"],
            registry=r,
        )
        self.request_phase = Gauge(
            "exchange_api_request_phase_seconds",
            "Seconds the endpoint's last answered probe spent in each phase, as "
            "blackbox_exporter's "
            "probe_http_duration_seconds: resolve, connect (TCP, plus the proxy's CONNECT), tls "
            "(handshake), processing (request written to first byte) and transfer (first to last "
            "byte); resolve, connect and tls are 0 on a reused keep-alive connection.",
            ["exchange", "endpoint", "phase"],
            registry=r,
        )
        self.tls_cert_expiry = Gauge(
            "exchange_tls_cert_expiry_timestamp_seconds",
            "Unix time of the earliest notAfter of the TLS certificate chain the exchange (or a "
            "TLS-inspecting proxy in the path) presented on the last new probe connection.",
            ["exchange"],
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
        self.http_responses = Counter(
            "exchange_api_http_responses",
            "Probe responses by HTTP status code.",
            ["exchange", "endpoint", "code"],
            registry=r,
        )
        self.errors = Counter(
            "exchange_api_errors",
            "Error codes in the exchange's own error envelope (Binance code, Bybit retCode, OKX "
            "code, Kraken error string, Coinbase HTTP status); codes the profile does not "
            'document are counted as code="other".',
            ["exchange", "endpoint", "code"],
            registry=r,
        )
        self.maintenance = Gauge(
            "exchange_maintenance",
            "1 while the exchange reports maintenance (status endpoint or a maintenance error "
            "code), else 0.",
            ["exchange"],
            registry=r,
        )
        self.market_data_age = Gauge(
            "exchange_market_data_age_seconds",
            "Age of the market data in the last ticker/order-book response: exchange time (from "
            "local time corrected by the measured clock skew) minus the data's own timestamp. "
            "Only for endpoints whose body carries a timestamp.",
            ["exchange", "endpoint"],
            registry=r,
        )
        self.backoff_until = Gauge(
            "exchange_rate_limit_backoff_until_timestamp_seconds",
            "Unix time until which probes of the exchange are paused after a rate-limit or ban "
            "answer (Retry-After or the documented ban length); in the past when not paused.",
            ["exchange"],
            registry=r,
        )
        self.ban_until = Gauge(
            "exchange_ip_ban_until_timestamp_seconds",
            "Unix time until which probes of the exchange are paused after an IP-ban answer "
            "(Binance 418, Bybit 403, Kraken lockout); 0 or in the past when no ban is in "
            "force. A later rate-limit pause moves only "
            "exchange_rate_limit_backoff_until_timestamp_seconds.",
            ["exchange"],
            registry=r,
        )
        self.probes_held = Counter(
            "exchange_exporter_probes_held",
            "Times the exchange's probe gate held a probe back before sending it, by reason: "
            "schedule (the endpoint already used its requests for the interval), budget (the "
            "exporter's share of a documented limit is used for the window), paused (a "
            "rate-limit or ban pause).",
            ["exchange", "reason"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "exchange_circuit_state",
            "Circuit breaker of the exchange: 0 closed (normal), 1 open (repeated failures; "
            "probes slowed), 2 half-open (a trial probe decides).",
            ["exchange"],
            registry=r,
        )
        self.connectivity_up = Gauge(
            "exchange_exporter_connectivity_up",
            "1 when the exporter's own connectivity canary passes (DNS resolution of every "
            "configured host, and the canary URL when configured), else 0.",
            registry=r,
        )
        self.dns_up = Gauge(
            "exchange_exporter_dns_up",
            "1 when the configured host of the exchange resolves, else 0.",
            ["exchange"],
            registry=r,
        )
        self.config_reload_success = Gauge(
            "exchange_exporter_config_last_reload_successful",
            "1 if the last configuration (re)load succeeded, else 0.",
            registry=r,
        )
        self.config_reload_timestamp = Gauge(
            "exchange_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load.",
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
        self.streams = StreamMetrics(r)
        """The ``exchange_ws_*`` metrics of the WebSocket streams."""
        self.keys = KeyMetrics(r)
        """The ``exchange_api_key_*`` metrics of the API-key checks."""
        self.market = MarketMetrics(r)
        """The ``exchange_market_*`` metrics and the scheduled-maintenance gauges."""
        self._renderer = TextRenderer(
            [
                self.request_duration,
                self.request_phase,
                self.tls_cert_expiry,
                self.requests,
                self.up,
                self.consecutive_failures,
                self.rate_limit_used,
                self.rate_limit_limit,
                self.clock_skew,
                self.http_responses,
                self.errors,
                self.maintenance,
                self.market_data_age,
                self.backoff_until,
                self.ban_until,
                self.probes_held,
                self.circuit_state,
                self.connectivity_up,
                self.dns_up,
                self.config_reload_success,
                self.config_reload_timestamp,
                self.last_probe,
                self.schedule_lag,
                self.build_info,
                *self.streams.all(),
                *self.keys.all(),
                *self.market.all(),
            ],
            r,
        )

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (``exporter.exposition``)."""
        return self._renderer.render()

    @property
    def location(self) -> str | None:
        """The ``location`` label added to every rendered series, or None."""
        return self._renderer.const_labels.get("location")

    def set_location(self, location: str | None) -> None:
        """Label every series of the next scrapes ``location="<location>"`` (the config's
        ``location``, already validated as a label value); None renders without it."""
        self._renderer.set_const_labels({"location": location} if location else {})

    def declare(self, exchange: str, endpoint: str, results: tuple[str, ...]) -> None:
        """Create the series of one probed endpoint at zero, so that rates and absent()
        behave from the first scrape on instead of appearing with the first failure."""
        self.request_duration.labels(exchange, endpoint)
        for result in results:
            self.requests.labels(exchange, endpoint, result)
        self.consecutive_failures.labels(exchange, endpoint).set(0)

    def declare_exchange(self, exchange: str) -> None:
        """Create the per-exchange gauges at their resting values."""
        self.maintenance.labels(exchange).set(0)
        self.backoff_until.labels(exchange).set(0)
        self.ban_until.labels(exchange).set(0)
        self.circuit_state.labels(exchange).set(0)
        for reason in HoldReason:
            self.probes_held.labels(exchange, reason.value)

    def endpoint(self, exchange: str, endpoint: str) -> EndpointSeries:
        """The cached series of one (exchange, endpoint) that every probe writes."""
        series = self._series.get((exchange, endpoint))
        if series is None:
            series = self._series[(exchange, endpoint)] = EndpointSeries(self, exchange, endpoint)
        return series

    def forget_endpoint(self, exchange: str, endpoint: str) -> None:
        """Remove every series of an endpoint that is no longer configured (after a reload)."""
        self._series.pop((exchange, endpoint), None)
        for metric in (
            self.request_duration,
            self.request_phase,
            self.requests,
            self.up,
            self.consecutive_failures,
            self.market_data_age,
            self.last_probe,
            self.http_responses,
            self.errors,
        ):
            metric.remove_by_labels({"exchange": exchange, "endpoint": endpoint})

    def forget_exchange(self, exchange: str) -> None:
        """Remove every series of an exchange that is no longer configured (its endpoints'
        and its stream's and keys' too: a last ``exchange_api_up`` 0 left behind would keep
        ExchangeApiDown firing)."""
        for key in [key for key in self._series if key[0] == exchange]:
            del self._series[key]
        self.streams.forget_exchange(exchange)
        self.keys.forget_exchange(exchange)
        self.market.forget_exchange(exchange)
        for metric in (
            self.request_duration,
            self.request_phase,
            self.tls_cert_expiry,
            self.requests,
            self.up,
            self.consecutive_failures,
            self.http_responses,
            self.errors,
            self.market_data_age,
            self.last_probe,
            self.maintenance,
            self.backoff_until,
            self.ban_until,
            self.circuit_state,
            self.clock_skew,
            self.dns_up,
            self.rate_limit_used,
            self.rate_limit_limit,
            self.probes_held,
        ):
            metric.remove_by_labels({"exchange": exchange})
