"""The receiver's own Prometheus metrics, served on ``GET /metrics``.

Labels are bounded: ``result`` is a closed set, ``channel`` is a notifier type and ``notifier``
a configured notifier instance name. Other receiver components (the diagnosis engine's LLM
metrics) register their collectors on the same :attr:`ReceiverMetrics.registry`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from receiver.notifiers.metrics import DELIVERY_RESULTS, NotifierMetrics

log = logging.getLogger(__name__)

#: ``() -> (pending notifications, age in seconds of the oldest)``; may raise.
UnsentSource = Callable[[], tuple[int, float]]


class _UnsentCollector(Collector):
    """Stored-but-unsent gauges, read from the database at scrape time."""

    def __init__(self) -> None:
        self.source: UnsentSource | None = None

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "alert_receiver_unsent_notifications",
                "Stored notifications not yet delivered to every notifier (pending).",
            ),
            GaugeMetricFamily(
                "alert_receiver_oldest_unsent_age_seconds",
                "Age of the oldest pending notification (0 when none).",
            ),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        count, age = self._families()
        if self.source is not None:
            try:
                pending, oldest = self.source()
            except Exception as exc:  # a broken database must not break /metrics
                log.warning("cannot read unsent notifications for /metrics: %s", exc)
            else:
                count.add_metric([], float(pending))
                age.add_metric([], float(oldest))
        yield count
        yield age


class ReceiverMetrics:
    """Counters and gauges of intake, delivery and the dead man's switch, on their own registry.

    - ``alert_receiver_webhooks_total{result}``: webhook requests (``POST /alerts``,
      ``/alerts/{route}``, ``/heartbeat``) by outcome: ``accepted`` (stored, at least one new
      alert; or a heartbeat recorded), ``duplicate`` (every alert already stored), ``rejected``
      (invalid input, 4xx), ``too_large`` (413), ``unauthorized`` (401), ``storage_error`` (503).
    - ``alert_receiver_deliveries_total{channel, notifier, result}`` (recorded with the other
      send metrics in :attr:`notifiers`, a :class:`~receiver.notifiers.metrics.NotifierMetrics`):
      delivery outcomes:
      ``delivered``, ``retried`` (failed attempt, retried later), ``rejected`` (the target
      refused the message: not retried), ``dropped`` (given up: too old, too many attempts or
      notifier removed), ``recovered`` (an attempt interrupted by a crash turned out delivered),
      ``uncertain`` (an attempt interrupted by a crash is sent again: possible duplicate).
    - ``alert_receiver_unsent_notifications``, ``alert_receiver_oldest_unsent_age_seconds``:
      computed from the database at scrape time.
    - ``alert_receiver_heartbeats_total``, ``alert_receiver_last_heartbeat_timestamp_seconds``:
      Watchdog heartbeats.
    - ``alert_receiver_deadman_state``: 0 disarmed, 1 armed and heartbeats arriving, 2 alarm
      raised (``AlertingPipelineDown`` notified); ``alert_receiver_deadman_timeout_seconds``;
      ``alert_receiver_deadman_leader``: 1 on the receiver that checks for silence.
    - ``alert_receiver_pruned_rows_total``, ``alert_receiver_database_size_bytes``: retention.
    """

    WEBHOOK_RESULTS = (
        "accepted",
        "duplicate",
        "rejected",
        "too_large",
        "unauthorized",
        "storage_error",
    )
    DELIVERY_RESULTS = DELIVERY_RESULTS

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhooks = Counter(
            "alert_receiver_webhooks",
            "Alertmanager webhook requests by outcome (accepted, duplicate, rejected, too_large,"
            " unauthorized, storage_error).",
            ["result"],
            registry=self.registry,
        )
        #: The send metrics (attempts and delivery outcomes), one label order for all.
        self.notifiers = NotifierMetrics(self.registry)
        self.deliveries = self.notifiers.deliveries
        self.heartbeats = Counter(
            "alert_receiver_heartbeats",
            "Watchdog heartbeats received from Alertmanager on POST /heartbeat.",
            registry=self.registry,
        )
        self.last_heartbeat = Gauge(
            "alert_receiver_last_heartbeat_timestamp_seconds",
            "Unix time of the last Watchdog heartbeat (0 before the first; survives restarts).",
            registry=self.registry,
        )
        self.deadman_state = Gauge(
            "alert_receiver_deadman_state",
            "Dead man's switch: 0 disarmed, 1 armed and heartbeats arriving, 2 alarm raised.",
            registry=self.registry,
        )
        self.deadman_leader = Gauge(
            "alert_receiver_deadman_leader",
            "1 while this receiver is the one that raises the dead man's switch (of those"
            " sharing a database), else 0.",
            registry=self.registry,
        )
        self.pruned = Counter(
            "alert_receiver_pruned_rows_total",
            "Rows deleted by retention (notifications finished longer ago than"
            " RECEIVER_RETENTION_DAYS, with their deliveries, and their webhooks).",
            registry=self.registry,
        )
        self.database_size = Gauge(
            "alert_receiver_database_size_bytes",
            "Size of the receiver's database on disk, measured at each retention pass.",
            registry=self.registry,
        )
        self.deadman_timeout = Gauge(
            "alert_receiver_deadman_timeout_seconds",
            "Silence after which the dead man's switch alarms (0: disabled).",
            registry=self.registry,
        )
        self._unsent = _UnsentCollector()
        self.registry.register(self._unsent)
        for result in self.WEBHOOK_RESULTS:
            self.webhooks.labels(result)

    def set_unsent_source(self, source: UnsentSource | None) -> None:
        """Where the unsent gauges read from at scrape time (``None``: no samples)."""
        self._unsent.source = source

    def deliveries_for(self, notifiers: Iterable[tuple[str, str]]) -> None:
        """Create the delivery series of the configured ``(channel, notifier)`` pairs at zero."""
        self.notifiers.declare_deliveries(notifiers)
