"""The market-integrity contract of issue 15, shared by tests/monitoring/test_rules.py,
test_market_rules.py and test_dashboards.py: the series the exporter publishes for the market
rules (exporter/market/metrics.py) and the alerts those rules define."""

from __future__ import annotations

# The market-integrity series of issue 15 (exporter/market/metrics.py), names and labels; the
# market rules (exchange-market-*.yml), their tests and the dashboards' "Market integrity" rows
# are written against this contract, and test_exporter_publishes_the_market_metrics checks it
# against the exporter's registry.
MARKET_METRICS: dict[str, tuple[str, ...]] = {
    "exchange_market_bid_price": ("exchange", "market", "price_group"),
    "exchange_market_ask_price": ("exchange", "market", "price_group"),
    "exchange_market_last_price": ("exchange", "market", "price_group"),
    "exchange_market_traded_volume_total": ("exchange", "market", "price_group"),
    "exchange_market_last_update_timestamp_seconds": ("exchange", "market", "price_group"),
    "exchange_maintenance_scheduled_start_timestamp_seconds": ("exchange",),
    "exchange_maintenance_scheduled_end_timestamp_seconds": ("exchange",),
}
MARKET_ALERTS = {
    "ExchangePriceDeviation",
    "ExchangePriceSpike",
    "ExchangeVolumeSpike",
    "ExchangeBookCrossed",
    "ExchangeRateLimitExhaustionPredicted",
    "ExchangeMaintenanceScheduled",
}
