"""Diagnosis metrics, registered on a :class:`prometheus_client.CollectorRegistry` passed in.

Every label is bounded: ``provider`` is ``primary`` or ``secondary`` (never the URL or model),
``result``/``reason``/``kind``/``source`` are closed sets listed below.

* ``alert_receiver_llm_requests_total{provider, result}`` - HTTP requests to an LLM provider;
  ``result`` ∈ :data:`REQUEST_RESULTS` (``ok`` = a reply that validated against the schema).
* ``alert_receiver_llm_request_duration_seconds{provider}`` - histogram of those requests.
* ``alert_receiver_llm_tokens_total{provider, kind}`` - tokens from the replies' ``usage``
  block, ``kind`` ∈ ``prompt``, ``completion``.
* ``alert_receiver_llm_cost_usd_total{provider}`` - estimated cost from ``LLM_PRICES``. Prometheus
  has no base unit for money; the ISO 4217 code ``usd`` is the unit suffix, the prices in the
  config are US dollars per 1000 tokens, and models without a price add nothing (estimate only).
* ``alert_receiver_diagnosis_total{source}`` - diagnoses produced, ``source`` ∈ ``llm``, ``rules``.
* ``alert_receiver_llm_fallbacks_total{reason}`` - firing alerts that fell back to rules although
  an LLM is configured, ``reason`` ∈ :data:`FALLBACK_REASONS`.
* ``alert_receiver_llm_skipped_total{reason}`` - LLM calls avoided by the cost controls,
  ``reason`` ∈ :data:`SKIP_REASONS`.
* ``alert_receiver_context_total{result}`` - Prometheus context fetches, ``result`` ∈ ``ok``,
  ``partial``, ``failed``.
* ``alert_receiver_llm_reachable{provider}`` - 1 when the provider answered its last call or
  probe, 0 when it timed out or could not be reached (:mod:`receiver.diagnosis.reachability`).
"""

from __future__ import annotations

import threading
import weakref

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PROVIDERS = ("primary", "secondary")
REQUEST_RESULTS = (
    "ok",
    "invalid_output",
    "format_rejected",
    "timeout",
    "connect_error",
    "http_error",
    "bad_response",
)
FALLBACK_REASONS = (
    "timeout",
    "connect_error",
    "http_error",
    "bad_response",
    "invalid_output",
    "busy",
    "error",
)
SKIP_REASONS = ("resolved", "repeat", "cache", "coalesced")
CONTEXT_RESULTS = ("ok", "partial", "failed")

_LOCK = threading.Lock()
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, DiagnosisMetrics] = (
    weakref.WeakKeyDictionary()
)


class DiagnosisMetrics:
    """The diagnosis counters and histogram on ``registry``.

    Use :meth:`for_registry` so that two engines on one registry (an app restarted in tests)
    share the collectors instead of failing with "Duplicated timeseries".
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.llm_requests = Counter(
            "alert_receiver_llm_requests",
            "HTTP requests to LLM providers by provider (primary, secondary) and result.",
            ["provider", "result"],
            registry=registry,
        )
        self.llm_duration = Histogram(
            "alert_receiver_llm_request_duration_seconds",
            "Duration of HTTP requests to LLM providers.",
            ["provider"],
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0),
            registry=registry,
        )
        self.llm_tokens = Counter(
            "alert_receiver_llm_tokens",
            "Tokens reported in LLM replies' usage block, by provider and kind (prompt, "
            "completion).",
            ["provider", "kind"],
            registry=registry,
        )
        self.llm_cost = Counter(
            "alert_receiver_llm_cost_usd",
            "Estimated LLM cost in US dollars from LLM_PRICES (USD per 1000 tokens); models "
            "without a configured price add nothing.",
            ["provider"],
            registry=registry,
        )
        self.diagnoses = Counter(
            "alert_receiver_diagnosis",
            "Diagnoses produced, by source (llm, rules).",
            ["source"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "alert_receiver_llm_fallbacks",
            "Firing alerts diagnosed by rules although an LLM is configured, by reason.",
            ["reason"],
            registry=registry,
        )
        self.skipped = Counter(
            "alert_receiver_llm_skipped",
            "LLM calls avoided by cost controls (resolved, repeat, cache, coalesced).",
            ["reason"],
            registry=registry,
        )
        self.llm_reachable = Gauge(
            "alert_receiver_llm_reachable",
            "1 when the LLM provider answered its last call or probe, 0 when it timed out or "
            "could not be reached; absent until judged.",
            ["provider"],
            registry=registry,
        )
        self.context = Counter(
            "alert_receiver_context",
            "Prometheus context fetches by result (ok, partial, failed).",
            ["result"],
            registry=registry,
        )
        for source in ("llm", "rules"):
            self.diagnoses.labels(source)
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason)
        for reason in SKIP_REASONS:
            self.skipped.labels(reason)
        for result in CONTEXT_RESULTS:
            self.context.labels(result)

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None) -> DiagnosisMetrics:
        """The metrics of ``registry`` (created once), or of a private registry when ``None``."""
        if registry is None:
            return cls(CollectorRegistry(auto_describe=True))
        with _LOCK:
            existing = _BY_REGISTRY.get(registry)
            if existing is None:
                existing = cls(registry)
                _BY_REGISTRY[registry] = existing
            return existing

    def declare_provider(self, provider: str) -> None:
        """Create a configured provider's series at zero."""
        for result in REQUEST_RESULTS:
            self.llm_requests.labels(provider, result)
        for kind in ("prompt", "completion"):
            self.llm_tokens.labels(provider, kind)
        self.llm_cost.labels(provider)
        self.llm_duration.labels(provider)
