"""Every exchange's private APIs (Coinbase has two: the Exchange API with HMAC keys and
Advanced Trade with CDP keys, under the same ``/coinbase`` prefix)."""

from __future__ import annotations

from simulator.keys.base import PrivateApi
from simulator.keys.binance import BinancePrivateApi
from simulator.keys.bybit import BybitPrivateApi
from simulator.keys.coinbase_advanced import CoinbaseAdvancedPrivateApi
from simulator.keys.coinbase_exchange import CoinbaseExchangePrivateApi
from simulator.keys.kraken import KrakenPrivateApi
from simulator.keys.okx import OkxPrivateApi

__all__ = ["build_private_apis"]


def build_private_apis() -> dict[str, list[PrivateApi]]:
    """``{exchange: [private APIs]}`` for the five exchanges."""
    return {
        "binance": [BinancePrivateApi()],
        "bybit": [BybitPrivateApi()],
        "okx": [OkxPrivateApi()],
        "coinbase": [CoinbaseExchangePrivateApi(), CoinbaseAdvancedPrivateApi()],
        "kraken": [KrakenPrivateApi()],
    }
