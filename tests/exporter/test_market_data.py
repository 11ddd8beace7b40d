"""The market-data sink: price groups, source precedence, the volume counter, announced
maintenance, and what a reload forgets."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, parse_config
from exporter.market.data import MarketData
from exporter.market.groups import default_price_group
from exporter.metrics import ExporterMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def sample(metrics: ExporterMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("market", "group"),
    [
        ("BTC/USDT", "BTC/USD"),
        ("BTC/USD", "BTC/USD"),
        ("ETH/USDC", "ETH/USD"),
        ("BTC/FDUSD", "BTC/USD"),
        ("ETH/BTC", "ETH/BTC"),
        ("BTC/EUR", "BTC/EUR"),
    ],
)
def test_default_price_groups_take_dollar_stablecoins_as_one(market: str, group: str) -> None:
    assert default_price_group(market) == group


def make() -> tuple[MarketData, ExporterMetrics, Clock]:
    metrics = ExporterMetrics()
    clock = Clock()
    data = MarketData(metrics.market, clock)
    data.configure(
        "binance",
        {"BTC/USDT": "BTC/USD", "ETH/USDT": "ETH/USD"},
        ticker_streamed={"ETH/USDT"},
        trades_streamed={"ETH/USDT"},
    )
    return data, metrics, clock


LABELS = {"exchange": "binance", "market": "BTC/USDT", "price_group": "BTC/USD"}
ETH = {"exchange": "binance", "market": "ETH/USDT", "price_group": "ETH/USD"}


def test_quotes_set_prices_and_the_update_time() -> None:
    data, metrics, clock = make()
    data.quote("binance", "BTC/USDT", bid=100.0, ask=101.0, last=100.5, source="rest")
    assert sample(metrics, "exchange_market_bid_price", **LABELS) == 100.0
    assert sample(metrics, "exchange_market_ask_price", **LABELS) == 101.0
    assert sample(metrics, "exchange_market_last_price", **LABELS) == 100.5
    assert sample(metrics, "exchange_market_last_update_timestamp_seconds", **LABELS) == clock.now
    clock.now += 5
    data.quote("binance", "BTC/USDT", last=102.0)  # a trade: bid and ask stay
    assert sample(metrics, "exchange_market_bid_price", **LABELS) == 100.0
    assert sample(metrics, "exchange_market_last_price", **LABELS) == 102.0
    assert sample(metrics, "exchange_market_last_update_timestamp_seconds", **LABELS) == clock.now


def test_a_streamed_market_ignores_rest_quotes_and_rest_volume() -> None:
    data, metrics, _ = make()
    data.quote("binance", "ETH/USDT", bid=10.0, ask=11.0, source="stream")
    data.quote("binance", "ETH/USDT", bid=1.0, ask=2.0, last=1.5, source="rest")
    assert sample(metrics, "exchange_market_bid_price", **ETH) == 10.0
    # a price the stream never gave (e.g. Bybit's ticker has no bid/ask) comes from REST
    assert sample(metrics, "exchange_market_last_price", **ETH) == 1.5
    data.quote("binance", "ETH/USDT", last=10.5, source="stream")
    data.quote("binance", "ETH/USDT", last=1.6, source="rest")
    assert sample(metrics, "exchange_market_last_price", **ETH) == 10.5
    data.trade("binance", "ETH/USDT", 0.25)
    data.rolling_volume("binance", "ETH/USDT", 5000.0)
    data.rolling_volume("binance", "ETH/USDT", 6000.0)
    assert sample(metrics, "exchange_market_traded_volume_total", **ETH) == 0.25


def test_rest_volume_counts_increases_of_the_rolling_24h_volume() -> None:
    data, metrics, _ = make()
    data.rolling_volume("binance", "BTC/USDT", 1000.0)  # the baseline
    assert sample(metrics, "exchange_market_traded_volume_total", **LABELS) == 0.0
    data.rolling_volume("binance", "BTC/USDT", 1010.0)
    data.rolling_volume("binance", "BTC/USDT", 1005.0)  # rolled out: no decrease
    data.rolling_volume("binance", "BTC/USDT", 1007.5)
    assert sample(metrics, "exchange_market_traded_volume_total", **LABELS) == 12.5


def test_nonsense_and_unknown_markets_are_ignored() -> None:
    data, metrics, _ = make()
    data.quote("binance", "BTC/USDT", bid=0.0, ask=-1.0)
    assert sample(metrics, "exchange_market_bid_price", **LABELS) is None
    data.quote("binance", "SOL/USDT", bid=1.0)
    data.trade("kraken", "BTC/USD", 1.0)
    data.trade("binance", "BTC/USDT", -1.0)
    text = metrics.render().decode()
    assert "SOL/USDT" not in text and "kraken" not in text


def test_a_reload_forgets_markets_that_left_or_changed_group() -> None:
    data, metrics, _ = make()
    data.quote("binance", "BTC/USDT", bid=100.0)
    data.quote("binance", "ETH/USDT", bid=10.0)
    data.configure("binance", {"BTC/USDT": "BTC/USDT"})
    assert sample(metrics, "exchange_market_bid_price", **LABELS) is None
    assert sample(metrics, "exchange_market_bid_price", **ETH) is None
    assert data.markets("binance") == {"BTC/USDT": "BTC/USDT"}
    data.forget_exchange("binance")
    assert data.markets("binance") == {}


def test_announced_maintenance_is_published_and_cleared() -> None:
    data, metrics, _ = make()
    data.scheduled_maintenance("binance", (1_800_003_600.0, 1_800_007_200.0))
    start = "exchange_maintenance_scheduled_start_timestamp_seconds"
    assert sample(metrics, start, exchange="binance") == 1_800_003_600.0
    assert (
        sample(metrics, "exchange_maintenance_scheduled_end_timestamp_seconds", exchange="binance")
        == 1_800_007_200.0
    )
    data.scheduled_maintenance("binance", None)
    assert sample(metrics, start, exchange="binance") is None


def _config(**extra: object) -> dict[str, object]:
    return {
        "exchanges": [
            {
                "name": "binance",
                "profile": "binance",
                "base_url": "https://api.binance.com",
                "markets": ["BTC/USDT", "BTC/FDUSD"],
                "websocket": {},
                **extra,
            }
        ]
    }


def test_config_groups_with_overrides() -> None:
    config = parse_config(_config(price_groups={"BTC/FDUSD": "BTC/FDUSD"}))
    assert config.exchanges[0].market_groups() == {"BTC/USDT": "BTC/USD", "BTC/FDUSD": "BTC/FDUSD"}


def test_config_refuses_groups_of_markets_not_watched() -> None:
    with pytest.raises(ConfigError, match=r"price_groups: ETH/USDT not watched"):
        parse_config(_config(price_groups={"ETH/USDT": "ETH/USD"}), "exporter.yml")


def test_an_exchange_spelled_symbol_has_no_unified_rest_market() -> None:
    config = parse_config(
        {"exchanges": [{"name": "b", "profile": "binance", "base_url": "https://a.example",
                        "symbol": "ETHBTC"}]}
    )  # fmt: skip
    assert config.exchanges[0].rest_market() is None
    assert config.exchanges[0].market_groups() == {}
