"""Send metrics: every notifier attempt and every delivery outcome, in one place.

All three families are labelled ``{channel, notifier[, result]}``, in that order:

- ``alert_receiver_notifier_requests_total{channel, notifier, result}``: calls of
  :meth:`receiver.notifiers.base.Notifier.send` (one per delivery attempt) by outcome, ``result``
  ∈ :data:`RESULTS`: ``ok``; ``rate_limited`` (HTTP 429); ``rejected`` (a permanent 4xx: the
  message or the configuration is wrong); ``error`` (5xx, network, I/O - retried).
- ``alert_receiver_notifier_request_duration_seconds{channel, notifier}``: how long each attempt
  took, whatever its outcome.
- ``alert_receiver_deliveries_total{channel, notifier, result}``: what the worker made of each
  delivery, ``result`` ∈ :data:`DELIVERY_RESULTS` (see :class:`receiver.metrics.ReceiverMetrics`).

Label values are bounded: ``notifier`` is an instance name from the routing file (validated
``[A-Za-z0-9_-]``, at most 64 characters), ``channel`` one of the notifier types. This module
imports nothing from the notifiers: they record through it.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

#: The closed set of ``result`` label values of the request counter.
RESULTS = ("ok", "rate_limited", "rejected", "error")
#: The closed set of ``result`` label values of the delivery counter.
DELIVERY_RESULTS = (
    "delivered",
    "retried",
    "rejected",
    "dropped",
    "recovered",
    "uncertain",
    # A late LLM diagnosis sent as an update of a delivered message (receiver/updates.py).
    "updated",
    "update_failed",
)
#: The label names, in the one order every family uses.
LABELS = ("channel", "notifier")

#: Histogram buckets (seconds): chat APIs answer in 0.1-1 s; the request timeout is 10 s.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class NotifierMetrics:
    """The send metrics of every notifier instance.

    Args:
        registry: where to register the metric families (the app's
            ``ReceiverMetrics.registry``, which creates one of these as its ``notifiers``);
            one :class:`NotifierMetrics` per registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "alert_receiver_notifier_requests",
            "Notifier send attempts by channel type, notifier instance and result "
            "(ok, rate_limited, rejected, error).",
            [*LABELS, "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "alert_receiver_notifier_request_duration_seconds",
            "Duration of notifier send attempts, by channel type and notifier instance.",
            list(LABELS),
            buckets=BUCKETS,
            registry=registry,
        )
        self.deliveries = Counter(
            "alert_receiver_deliveries",
            "Notification deliveries by notifier and outcome (delivered, retried, rejected,"
            " dropped, recovered, uncertain).",
            [*LABELS, "result"],
            registry=registry,
        )

    def declare(self, channel: str, notifier: str) -> None:
        """Create the request series of one notifier at zero, so dashboards see them before the
        first send."""
        for result in RESULTS:
            self.requests.labels(channel, notifier, result)
        self.duration.labels(channel, notifier)

    def declare_deliveries(self, notifiers: Iterable[tuple[str, str]]) -> None:
        """Create the delivery series of the configured ``(channel, notifier)`` pairs at zero."""
        for channel, notifier in notifiers:
            for result in DELIVERY_RESULTS:
                self.deliveries.labels(channel, notifier, result)

    def attempt(self, channel: str, notifier: str, result: str, seconds: float) -> None:
        """Count one send attempt with ``result`` (one of :data:`RESULTS`) and its duration."""
        if result not in RESULTS:
            result = "error"
        self.requests.labels(channel, notifier, result).inc()
        self.duration.labels(channel, notifier).observe(max(0.0, seconds))

    def delivery(self, channel: str, notifier: str, result: str) -> None:
        """Count one delivery outcome (one of :data:`DELIVERY_RESULTS`)."""
        self.deliveries.labels(channel, notifier, result).inc()
