"""Market data as metrics: each configured market's bid, ask and last price and traded volume,
from the exchange's WebSocket stream where one runs, else from its REST ticker, with the
``price_group`` that says which markets of different exchanges are comparable.

- :mod:`exporter.market.groups` — the default price groups (the stablecoin-basis assumption).
- :mod:`exporter.market.metrics` — ``exchange_market_*`` and the scheduled-maintenance gauges.
- :mod:`exporter.market.data` — :class:`~exporter.market.data.MarketData`, the sink the
  stream sessions and the REST prober write to.
"""
