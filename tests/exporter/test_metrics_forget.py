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


def test_removing_the_endpoint_that_reported_maintenance_clears_the_exchange_gauge() -> None:
    """The prober writes ``exchange_maintenance`` only when an endpoint's maintenance flag
    changes; an endpoint removed by a reload while reporting maintenance must not leave the
    exchange marked in maintenance."""

    def okx(*endpoints: str):
        return parse_config(
            {
                "exchanges": [
                    {
                        "name": "okx",
                        "profile": "okx",
                        "base_url": "https://www.okx.com",
                        "endpoints": list(endpoints),
                        "weight_budget": 1.0,
                    }
                ]
            }
        )

    metrics = ExporterMetrics()
    scheduler = ProbeScheduler(okx("time", "status"), metrics)
    scheduler.states["okx"].endpoints["status"].maintenance = True
    metrics.maintenance.labels("okx").set(1)
    scheduler.apply(okx("time"))
    assert metrics.registry.get_sample_value("exchange_maintenance", {"exchange": "okx"}) == 0
