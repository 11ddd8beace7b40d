"""Checks for the market-integrity rules of issue 15 (prometheus/rules/exchange-market-*.yml):
the exporter publishes the series they read, and their alerts keep the labels that name the
market. Everything else (promtool tests, metadata, thresholds, routing and inhibition) is
checked for every rule in tests/monitoring/test_rules.py."""

from __future__ import annotations

from tests.monitoring.market_contract import MARKET_ALERTS, MARKET_METRICS
from tests.monitoring.market_panels import market_query_required
from tests.monitoring.rules_contract import (
    ALERT_NAMES,
    ALERT_TESTS,
    EXPORTER_SELECTOR,
    _exporter_label_names,
    _exporter_metric_names,
    _rel,
)


def test_exporter_publishes_the_market_metrics() -> None:
    """The exporter's registry has every market series the market rules and dashboards use
    (issue 15), with the documented labels where the registry already holds a child."""
    missing = set(MARKET_METRICS) - _exporter_metric_names()
    assert not missing, (
        f"the exporter does not publish {sorted(missing)}: prometheus/rules/"
        "exchange-market-*.yml and the dashboards' Market integrity rows use them"
    )
    labels = _exporter_label_names()
    for name, expected in MARKET_METRICS.items():
        if labels.get(name):
            assert labels[name] == set(expected), f"{name}: labels {sorted(labels[name])}"


def test_market_alerts_carry_their_labels() -> None:
    """The market alerts keep `market` and `price_group` (the forecast `window`, the
    maintenance announcement the exchange only), so that one notification names the market.
    The forecast also keeps `location` when the exporters set one (per egress IP)."""
    expected = {
        "ExchangePriceDeviation": {"exchange", "market", "price_group"},
        "ExchangePriceSpike": {"exchange", "market", "price_group"},
        "ExchangeVolumeSpike": {"exchange", "market", "price_group"},
        "ExchangeBookCrossed": {"exchange", "market", "price_group"},
        "ExchangeRateLimitExhaustionPredicted": {"exchange", "window"},
        "ExchangeMaintenanceScheduled": {"exchange"},
    }
    assert set(expected) == MARKET_ALERTS <= set(ALERT_NAMES)
    for path, entry in ALERT_TESTS:
        if entry["alertname"] not in MARKET_ALERTS:
            continue
        for alert in entry.get("exp_alerts") or []:
            labels = set(alert["exp_labels"]) - {"alertname", "severity"}
            if entry["alertname"] == "ExchangeRateLimitExhaustionPredicted":
                labels.discard("location")  # per location when the exporters set one (issue 16)
            assert labels == expected[entry["alertname"]], f"{_rel(path)}: {alert}"


def test_market_query_required() -> None:
    mid = "exchange_market:exchange_market_mid_price:deviation_bps"
    assert market_query_required(f'{mid}{{exchange="binance"}}')
    maintenance = (
        f"max(exchange_maintenance_scheduled_start_timestamp_seconds{{{EXPORTER_SELECTOR}}})"
    )
    assert not market_query_required(maintenance)
    assert not market_query_required(
        "exchange_market:exchange_market_traded_volume:ratio_5m_1h > 1"
    )
