"""The five simulated exchanges, one module each, all built on
:class:`simulator.exchanges.base.Exchange`."""

from __future__ import annotations

from simulator.exchanges.base import Exchange, RequestContext, Route
from simulator.exchanges.binance import BinanceExchange
from simulator.exchanges.bybit import BybitExchange
from simulator.exchanges.coinbase import CoinbaseExchange
from simulator.exchanges.kraken import KrakenExchange
from simulator.exchanges.okx import OkxExchange
from simulator.market import Market

__all__ = [
    "EXCHANGE_TYPES",
    "BinanceExchange",
    "BybitExchange",
    "CoinbaseExchange",
    "Exchange",
    "KrakenExchange",
    "OkxExchange",
    "RequestContext",
    "Route",
    "build_exchanges",
]

EXCHANGE_TYPES: tuple[type[Exchange], ...] = (
    BinanceExchange,
    BybitExchange,
    OkxExchange,
    CoinbaseExchange,
    KrakenExchange,
)


def build_exchanges(market: Market) -> dict[str, Exchange]:
    """Instantiate every exchange on the shared ``market``; returns ``{name: exchange}``."""
    return {cls.name: cls(market) for cls in EXCHANGE_TYPES}
