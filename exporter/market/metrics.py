"""The ``exchange_market_*`` metrics and the scheduled-maintenance gauges. Names are fixed by
issue 15: rules and dashboards use them.

Labels: ``exchange`` (configured name), ``market`` (unified ``BASE/QUOTE``) and ``price_group``
(:mod:`exporter.market.groups`): bounded by the config. Prices are in quote-currency units,
volume in base-currency units.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

MARKET_LABELS = ["exchange", "market", "price_group"]


class MarketMetrics:
    """Every market-data metric, registered on the exporter's registry.

    Args:
        registry: the exporter's registry (``ExporterMetrics.registry``).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.bid = Gauge(
            "exchange_market_bid_price",
            "Best bid of the market in quote-currency units, from the exchange's WebSocket "
            "ticker where one runs, else from its REST ticker.",
            MARKET_LABELS,
            registry=r,
        )
        self.ask = Gauge(
            "exchange_market_ask_price",
            "Best ask of the market in quote-currency units (same sources as the bid).",
            MARKET_LABELS,
            registry=r,
        )
        self.last = Gauge(
            "exchange_market_last_price",
            "Last traded price of the market in quote-currency units (same sources).",
            MARKET_LABELS,
            registry=r,
        )
        self.volume = Counter(
            "exchange_market_traded_volume",
            "Traded volume in base-currency units: summed from the WebSocket trade stream "
            "where one runs; without one, the positive changes of the REST ticker's rolling "
            "24 h volume between probes (coarser: it lags, and volume rolling out of the 24 h "
            "window hides new trades of the same size).",
            MARKET_LABELS,
            registry=r,
        )
        self.updated = Gauge(
            "exchange_market_last_update_timestamp_seconds",
            "Unix time of the last price update of the market (any of bid, ask, last); rules "
            "count a quote as fresh while this is recent.",
            MARKET_LABELS,
            registry=r,
        )
        self.scheduled_start = Gauge(
            "exchange_maintenance_scheduled_start_timestamp_seconds",
            "Start (Unix time) of the next maintenance the exchange announces in a "
            "machine-readable form (OKX and Bybit system status, Kraken SystemStatus; see "
            "docs/maintenance-sources.md); absent when none is announced.",
            ["exchange"],
            registry=r,
        )
        self.scheduled_end = Gauge(
            "exchange_maintenance_scheduled_end_timestamp_seconds",
            "End (Unix time) of the announced maintenance whose start is "
            "exchange_maintenance_scheduled_start_timestamp_seconds; absent when none.",
            ["exchange"],
            registry=r,
        )

    def all(self) -> list[Any]:
        """Every metric object, in exposition order."""
        return [
            self.bid,
            self.ask,
            self.last,
            self.volume,
            self.updated,
            self.scheduled_start,
            self.scheduled_end,
        ]

    def forget_market(self, exchange: str, market: str) -> None:
        """Remove every series of one market of an exchange."""
        for metric in self.all()[:5]:
            metric.remove_by_labels({"exchange": exchange, "market": market})

    def forget_exchange(self, exchange: str) -> None:
        """Remove every series of an exchange."""
        for metric in self.all():
            metric.remove_by_labels({"exchange": exchange})
