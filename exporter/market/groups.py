"""Which markets are comparable across exchanges: the ``price_group`` label.

By default a market whose quote is a US dollar or a dollar stablecoin (USD, USDT, USDC, FDUSD)
belongs to the group ``<BASE>/USD``: ``BTC/USDT`` on Binance, ``BTC/USD`` on Kraken and
``BTC/USDC`` on Coinbase are compared with each other. This assumes the stablecoins trade at
par with the dollar: a stablecoin's own basis (usually a few basis points, more in a de-peg)
shows up as price deviation of every market quoted in it. Any other market is its own group
(``ETH/BTC``). An exchange's config may set a market's group (``price_groups:``), e.g. to keep
``BTC/FDUSD`` apart.
"""

from __future__ import annotations

from exporter.profiles.base import split_market

USD_QUOTES: frozenset[str] = frozenset({"USD", "USDT", "USDC", "FDUSD"})
"""Quotes taken as one dollar."""


def default_price_group(market: str) -> str:
    """The default ``price_group`` of a unified ``BASE/QUOTE`` market (see the module docstring).

    Raises:
        ValueError: ``market`` is not ``BASE/QUOTE``.
    """
    base, quote = split_market(market)
    return f"{base}/USD" if quote in USD_QUOTES else market
