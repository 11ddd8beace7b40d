"""WebSocket market-data stream health: dialects, book sync, connections and their metrics.

Modules, one job each:

- :mod:`~exporter.streams.events`, :mod:`~exporter.streams.dialect`: the interface between an
  exchange's wire format and the core; :mod:`~exporter.streams.dialects` one module per exchange,
  :mod:`~exporter.streams.book` the shared local book.
- :mod:`~exporter.streams.settings`: the ``websocket:`` config block and the resolved
  :class:`~exporter.streams.settings.StreamPlan`.
- :mod:`~exporter.streams.manager`: one stream per configured exchange, started with the
  scheduler, following reloads, stopped cleanly.
- :mod:`~exporter.streams.connection`: one exchange's connect / reconnect loop (ban gate,
  connection-attempt limiter, backoff); :mod:`~exporter.streams.session`: one open connection
  (subscribe, read, keep alive, staleness, reasons to reconnect).
- :mod:`~exporter.streams.integrity`: book verdicts, resyncs, crossed books, REST snapshots
  (:mod:`~exporter.streams.snapshot`, through the probe gate).
- :mod:`~exporter.streams.backoff`, :mod:`~exporter.streams.limits`: reconnect pacing and rate
  limits; :mod:`~exporter.streams.metrics`: the ``exchange_ws_*`` metrics;
  :mod:`~exporter.streams.status`: the ``/status`` record.
"""
