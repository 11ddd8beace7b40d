"""Helpers shared by the exporter and the receiver, with no dependency on either.

- :mod:`exchange_common.retry_after`: the HTTP ``Retry-After`` header (RFC 9110 §10.2.3);
- :mod:`exchange_common.durations`: seconds in words for people;
- :mod:`exchange_common.timestamps`: RFC 3339 UTC timestamps with a ``Z`` suffix.

Nothing here imports ``exporter``, ``receiver`` or ``simulator``; they import from here.
"""
