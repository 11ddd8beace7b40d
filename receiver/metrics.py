"""The receiver's own Prometheus metrics, served on ``GET /metrics``.

Labels are bounded: ``result`` is a closed set and ``channel`` is one of the notifier channels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ReceiverMetrics:
    """Counters for intake and delivery, on a registry of their own (one per app).

    - ``alert_receiver_webhooks_total{result}``: webhook requests by outcome, ``result`` ∈
      stored, invalid, too_large, storage_error.
    - ``alert_receiver_deliveries_total{channel, result}``: delivery attempts by outcome,
      ``result`` ∈ delivered, retried, failed.
    """

    WEBHOOK_RESULTS = ("stored", "invalid", "too_large", "storage_error")
    DELIVERY_RESULTS = ("delivered", "retried", "failed")

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhooks = Counter(
            "alert_receiver_webhooks",
            "Alertmanager webhook requests by outcome (stored, invalid, too_large, storage_error).",
            ["result"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "alert_receiver_deliveries",
            "Notification delivery attempts by channel and outcome (delivered, retried, failed).",
            ["channel", "result"],
            registry=self.registry,
        )
        self.heartbeats = Counter(
            "alert_receiver_heartbeats",
            "Watchdog heartbeats received from Alertmanager on POST /heartbeat.",
            registry=self.registry,
        )
        self.last_heartbeat = Gauge(
            "alert_receiver_last_heartbeat_timestamp_seconds",
            "Unix time of the last Watchdog heartbeat (0 before the first).",
            registry=self.registry,
        )
        for result in self.WEBHOOK_RESULTS:
            self.webhooks.labels(result)

    def deliveries_for(self, channels: list[str]) -> None:
        """Create the delivery series of the configured channels at zero."""
        for channel in channels:
            for result in self.DELIVERY_RESULTS:
                self.deliveries.labels(channel, result)
