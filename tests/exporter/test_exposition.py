"""The fast /metrics renderer writes exactly the samples generate_latest would (minus _created),
and the latency window keeps what /status needs."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import TextRenderer
from exporter.metrics import ExporterMetrics
from exporter.profiles import Result
from exporter.state import LatencyWindow, window_capacity


def samples(text: bytes) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    out = []
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            value = "nan" if math.isnan(s.value) else s.value
            out.append((s.name, tuple(sorted(s.labels.items())), value))
    return sorted(out, key=repr)


def populated() -> ExporterMetrics:
    m = ExporterMetrics()
    results = tuple(r.value for r in Result)
    for i in range(7):
        exchange = f"ex{i}"
        m.declare_exchange(exchange)
        for endpoint in ("time", "ticker"):
            m.declare(exchange, endpoint, results)
            for seconds in (0.0001, 0.02, 0.3, 12.0):
                m.request_duration.labels(exchange, endpoint).observe(seconds)
            m.requests.labels(exchange, endpoint, "ok").inc(3)
            m.up.labels(exchange, endpoint).set(1)
            m.last_probe.labels(exchange, endpoint).set(time.time())
            m.http_responses.labels(exchange, endpoint, "200").inc()
            m.errors.labels(exchange, endpoint, "-1003").inc()
        m.clock_skew.labels(exchange).set(-0.25)
        m.rate_limit_used.labels(exchange, "1m").set(31)
        m.market_data_age.labels(exchange, "ticker").set(float("inf"))
    m.schedule_lag.observe(0.0007)
    m.connectivity_up.set(1)
    m.dns_up.labels("ex0").set(0)
    return m


def test_same_samples_as_generate_latest() -> None:
    m = populated()
    fast = m.render()
    assert samples(fast) == samples(generate_latest(m.registry))
    assert m._renderer.fallbacks == 0
    assert b"_created" not in fast
    # Lines keep generate_latest's label order (sorted), which tests and tools grep for.
    assert b'exchange_api_requests_total{endpoint="time",exchange="ex0",result="ok"} 3.0\n' in fast
    assert b'le="+Inf"' in fast and b"exchange_exporter_build_info{version=" in fast


def test_escaping_and_unlabelled_metrics() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("odd_gauge", "help with \\ and\nnewline", ["name"], registry=registry)
    gauge.labels('quote " back \\ slash\nnl').set(float("nan"))
    counter = Counter("plain", "no labels", registry=registry)
    counter.inc(2)
    histogram = Histogram("lat_seconds", "h", buckets=(0.1, 1.0), registry=registry)
    histogram.observe(0.5)
    info = Info("build", "b", registry=registry)
    info.info({"version": "1"})
    text = TextRenderer([gauge, counter, histogram, info], registry).render()
    assert samples(text) == samples(generate_latest(registry))
    assert b"# HELP odd_gauge help with \\\\ and\\nnewline\n" in text


def test_unknown_collector_falls_back_to_generate_latest() -> None:
    registry = CollectorRegistry()

    class Odd:
        def collect(self):  # a summary family: not rendered by the fast path
            from prometheus_client.core import SummaryMetricFamily

            yield SummaryMetricFamily("odd", "o", count_value=1, sum_value=2)

    odd = Odd()
    registry.register(odd)
    renderer = TextRenderer([odd], registry)
    assert renderer.render() == generate_latest(registry)
    assert renderer.fallbacks == 1


def test_latency_window_keeps_recent_samples_only() -> None:
    window = LatencyWindow(4)
    for i in range(6):
        window.add(float(i), i / 10)
    assert len(window) == 4 and window.capacity == 4
    assert sorted(window.since(0.0)) == pytest.approx([0.2, 0.3, 0.4, 0.5])
    assert sorted(window.since(4.0)) == pytest.approx([0.4, 0.5])
    bigger = window.resized(8)
    assert sorted(bigger.since(0.0)) == pytest.approx([0.2, 0.3, 0.4, 0.5])
    smaller = window.resized(2)
    assert sorted(smaller.since(0.0)) == pytest.approx([0.4, 0.5])
    assert isinstance(window.since(0.0), np.ndarray)


def test_window_capacity_covers_five_minutes() -> None:
    assert window_capacity(5.0) == 76
    assert window_capacity(1.0) == 316
    assert window_capacity(0.01) == 2048
