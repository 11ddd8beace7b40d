"""The simulated exchanges' private (signed) endpoints and the API keys they accept.

- :mod:`simulator.keys.store` — keys managed through ``/_control/keys``.
- :mod:`simulator.keys.request` — what a private handler sees of one request.
- :mod:`simulator.keys.base` — the :class:`~simulator.keys.base.PrivateApi` interface.
- one module per exchange (``binance``, ``bybit``, ``okx``, ``kraken``, ``coinbase_exchange``,
  ``coinbase_advanced``): signature, timestamp and nonce checks exactly as the exchange
  documents them, every documented error body, and the key-info answer in its own words.
"""
