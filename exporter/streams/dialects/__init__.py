"""One module per exchange: its public WebSocket dialect and book-sync procedure.

:data:`DIALECTS` maps a profile name (``binance``, ``bybit``, ``okx``, ``coinbase``,
``kraken``) to its :class:`~exporter.streams.dialect.StreamDialect` subclass;
:func:`get_dialect` looks one up with a clear error.
"""

from __future__ import annotations

from exporter.streams.dialect import StreamDialect
from exporter.streams.dialects.binance import BinanceDialect
from exporter.streams.dialects.bybit import BybitDialect
from exporter.streams.dialects.coinbase import CoinbaseDialect
from exporter.streams.dialects.kraken import KrakenDialect
from exporter.streams.dialects.okx import OkxDialect

DIALECTS: dict[str, type[StreamDialect]] = {
    dialect.exchange: dialect
    for dialect in (BinanceDialect, BybitDialect, OkxDialect, CoinbaseDialect, KrakenDialect)
}
"""Profile name → dialect class (one per exchange with a documented public WebSocket API)."""


def get_dialect(profile: str) -> type[StreamDialect]:
    """The :class:`StreamDialect` class of exchange profile ``profile`` (e.g. ``"binance"``).

    Raises:
        KeyError: no dialect for ``profile``; the message names the profile and the known ones.
    """
    try:
        return DIALECTS[profile]
    except KeyError:
        known = ", ".join(sorted(DIALECTS)) or "none"
        raise KeyError(
            f"no WebSocket dialect for exchange profile {profile!r} (known: {known})"
        ) from None
