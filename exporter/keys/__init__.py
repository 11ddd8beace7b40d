"""API-key health: one signed, read-only key-info call per configured key per interval.

- :mod:`exporter.keys.model` — results, permissions, facts and the signed request.
- :mod:`exporter.keys.settings` — the ``api_keys:`` config and the secrets it reads.
- :mod:`exporter.keys.exchanges` — one module per exchange: signer, request, classification.
- :mod:`exporter.keys.prober`, :mod:`exporter.keys.manager` — the check loop per key.
- :mod:`exporter.keys.metrics`, :mod:`exporter.keys.status` — ``exchange_api_key_*`` and
  ``/status``.
"""
