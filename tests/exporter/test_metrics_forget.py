"""Reloads that drop an endpoint or a whole exchange remove every one of its series."""

from __future__ import annotations

from exporter.config import parse_config
from exporter.metrics import ExporterMetrics
from exporter.scheduler import ProbeScheduler


def config(*names: str):
    bases = {"binance": "https://api.binance.com", "okx": "https://www.okx.com"}
    endpoints = {"binance": ["ping"], "okx": ["time"]}
    return parse_config(
        {
            "exchanges": [
                {"name": n, "profile": n, "base_url": bases[n], "endpoints": endpoints[n]}
                for n in names
            ]
        }
    )


def exchanges_in(metrics: ExporterMetrics) -> set[str]:
    return {
        sample.labels["exchange"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if "exchange" in sample.labels
    }


def test_removing_an_exchange_removes_its_endpoint_series_too() -> None:
    """A last exchange_api_up of 0 left behind would keep ExchangeApiDown firing for an
    exchange nobody probes any more."""
    metrics = ExporterMetrics()
    scheduler = ProbeScheduler(config("binance", "okx"), metrics)
    metrics.up.labels("okx", "time").set(0)
    metrics.requests.labels("okx", "time", "timeout").inc()
    metrics.http_responses.labels("okx", "time", "502").inc()
    assert exchanges_in(metrics) == {"binance", "okx"}
    scheduler.apply(config("binance"))
    assert exchanges_in(metrics) == {"binance"}
