"""The key APIs, one module per exchange; :func:`key_api_for` picks the one for a profile and
its credentials (Coinbase: a private key means Advanced Trade with a CDP key, else the Exchange
API with key, secret and passphrase)."""

from __future__ import annotations

from exporter.keys.exchanges.base import KEY_ENDPOINT, KeyApi
from exporter.keys.model import Credentials

__all__ = ["KEY_ENDPOINT", "KeyApi", "key_api_class", "key_api_for"]


def key_api_class(profile: str, credentials: Credentials) -> type[KeyApi]:
    """The :class:`KeyApi` class for ``profile`` and the kind of ``credentials``.

    Raises:
        ValueError: the profile has no key check (``generic``).
    """
    if profile == "binance":
        from exporter.keys.exchanges.binance import BinanceKeyApi

        return BinanceKeyApi
    if profile == "bybit":
        from exporter.keys.exchanges.bybit import BybitKeyApi

        return BybitKeyApi
    if profile == "okx":
        from exporter.keys.exchanges.okx import OkxKeyApi

        return OkxKeyApi
    if profile == "kraken":
        from exporter.keys.exchanges.kraken import KrakenKeyApi

        return KrakenKeyApi
    if profile == "coinbase":
        if credentials.private_key is not None:
            from exporter.keys.exchanges.coinbase_advanced import CoinbaseAdvancedKeyApi

            return CoinbaseAdvancedKeyApi
        from exporter.keys.exchanges.coinbase_exchange import CoinbaseExchangeKeyApi

        return CoinbaseExchangeKeyApi
    raise ValueError(
        f"profile {profile!r} has no API-key check (binance, bybit, okx, coinbase and kraken do)"
    )


def key_api_for(profile: str, credentials: Credentials) -> KeyApi:
    """A fresh :class:`KeyApi` for one configured key (see :func:`key_api_class`)."""
    return key_api_class(profile, credentials)()
