"""Per-notifier request metrics, registered on a registry the caller owns.

- ``alert_receiver_notifier_requests_total{notifier, channel, result}``: calls of
  :meth:`receiver.notifiers.base.Notifier.send` (one per delivery attempt) by outcome, ``result``
  ∈ :data:`RESULTS`: ``ok``; ``rate_limited`` (HTTP 429); ``rejected`` (a permanent 4xx: the
  message or the configuration is wrong); ``error`` (5xx, network, I/O - retried).
- ``alert_receiver_notifier_request_duration_seconds{notifier, channel}``: how long each attempt
  took, whatever its outcome.

Label values are bounded: ``notifier`` is an instance name from the routing file (validated
``[A-Za-z0-9_-]``, at most 64 characters), ``channel`` one of the notifier types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

if TYPE_CHECKING:
    from receiver.notifiers.base import Notifier

#: The closed set of ``result`` label values.
RESULTS = ("ok", "rate_limited", "rejected", "error")

#: Histogram buckets (seconds): chat APIs answer in 0.1-1 s; the request timeout is 10 s.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class NotifierMetrics:
    """The per-notifier counters and latency histogram.

    Args:
        registry: where to register the two metric families (e.g. the app's
            ``ReceiverMetrics.registry``); one :class:`NotifierMetrics` per registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "alert_receiver_notifier_requests",
            "Notifier send attempts by notifier instance, channel type and result "
            "(ok, rate_limited, rejected, error).",
            ["notifier", "channel", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "alert_receiver_notifier_request_duration_seconds",
            "Duration of notifier send attempts, by notifier instance and channel type.",
            ["notifier", "channel"],
            buckets=BUCKETS,
            registry=registry,
        )

    def declare(self, notifier: Notifier) -> None:
        """Create ``notifier``'s series at zero so dashboards see them before the first send."""
        for result in RESULTS:
            self.requests.labels(notifier.name, notifier.channel, result)
        self.duration.labels(notifier.name, notifier.channel)

    def observe(self, notifier: Notifier, result: str, seconds: float) -> None:
        """Count one attempt of ``notifier`` with ``result`` (one of :data:`RESULTS`)."""
        if result not in RESULTS:
            result = "error"
        self.requests.labels(notifier.name, notifier.channel, result).inc()
        self.duration.labels(notifier.name, notifier.channel).observe(max(0.0, seconds))
