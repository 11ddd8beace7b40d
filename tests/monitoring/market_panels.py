"""The dashboards' "Market integrity" rows (issue 15), for tests/monitoring/test_dashboards.py:
which of their series must return data on a healthy demo stack, and what the rows must show."""

from __future__ import annotations

from typing import Any

from tests.monitoring.rules_contract import promql_metric_names as metric_names

# Market-integrity series (issue 15) that a healthy demo may not have: an announced maintenance
# (only while one is announced), and the recordings that need minutes of history before their
# first point (the 1-minute return: 1 minute; its z-score: 2; the volume ratio: 5 and more).
MARKET_OPTIONAL = {
    "exchange_maintenance_scheduled_start_timestamp_seconds",
    "exchange_maintenance_scheduled_end_timestamp_seconds",
    "exchange_market:exchange_market_mid_price:log_return_1m",
    "exchange_market:exchange_market_mid_price:log_return_stddev_1h",
    "exchange_market:exchange_market_mid_price:log_return_zscore_1m",
    "exchange_market:exchange_market_traded_volume:rate1h_offset5m",
    "exchange_market:exchange_market_traded_volume:ratio_5m_1h",
}
# What the "Market integrity" rows must show: deviation, returns and their z-score, volume
# rate and ratio, the rate-limit forecast and the next announced maintenance.
MARKET_ROW_METRICS = {
    "exchange_market:exchange_market_mid_price:deviation_bps",
    "exchange_market:exchange_market_mid_price:log_return_1m",
    "exchange_market:exchange_market_mid_price:log_return_zscore_1m",
    "exchange_market:exchange_market_traded_volume:rate5m",
    "exchange_market:exchange_market_traded_volume:ratio_5m_1h",
    "exchange_window:exchange_rate_limit_used:forecast",
    "exchange_rate_limit_limit",
    "exchange_maintenance_scheduled_start_timestamp_seconds",
}


def market_query_required(expr: str) -> bool:
    """Whether a panel query must return data on a healthy demo stack (see MARKET_OPTIONAL)."""
    return not metric_names(expr) & MARKET_OPTIONAL


def check_market_row(dashboard: dict[str, Any]) -> None:
    """The "Market integrity" row (issue 15): every panel described and with a unit, and the
    series the alerts read."""
    top = list(dashboard["panels"])
    [row_index] = [
        i for i, p in enumerate(top) if p["type"] == "row" and p["title"] == "Market integrity"
    ]
    following = top[row_index + 1 :]
    end = next((i for i, p in enumerate(following) if p["type"] == "row"), len(following))
    row = {p["title"]: p for p in following[:end]}
    used = set().union(*(metric_names(t["expr"]) for p in row.values() for t in p["targets"]))
    missing = MARKET_ROW_METRICS - used
    assert not missing, f"Market integrity row: metrics without a panel: {sorted(missing)}"
    for panel in row.values():
        assert panel["description"], panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
    deviation = row["Price deviation from the group median"]
    assert deviation["fieldConfig"]["defaults"]["unit"] == "suffix: bps"
    assert row["Next announced maintenance"]["fieldConfig"]["defaults"]["unit"] == "s"
    assert row["Rate-limit forecast (5 min ahead)"]["fieldConfig"]["defaults"]["unit"] == (
        "percentunit"
    )
