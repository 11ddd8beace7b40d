"""Exchange profiles: one module per exchange, all behind one interface (``base.Profile``)."""

from __future__ import annotations

from exporter.profiles.base import ENDPOINT_NAMES, EndpointSpec, Profile, Result, Verdict
from exporter.profiles.binance import BinanceProfile
from exporter.profiles.bybit import BybitProfile
from exporter.profiles.coinbase import CoinbaseProfile
from exporter.profiles.generic import GenericEndpoint, GenericProfile
from exporter.profiles.kraken import KrakenProfile
from exporter.profiles.okx import OkxProfile

PROFILES: dict[str, type[Profile]] = {
    cls.name: cls
    for cls in (
        BinanceProfile,
        BybitProfile,
        OkxProfile,
        CoinbaseProfile,
        KrakenProfile,
        GenericProfile,
    )
}
"""Built-in profiles by name, as written in the exporter config's ``profile`` field."""


def get_profile(name: str) -> Profile:
    """Return a new instance of the built-in profile ``name``.

    Raises:
        KeyError: no such profile (the message lists the known ones).
    """
    try:
        return PROFILES[name]()
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise KeyError(f"unknown profile {name!r}; known profiles: {known}") from None


__all__ = [
    "ENDPOINT_NAMES",
    "PROFILES",
    "EndpointSpec",
    "GenericEndpoint",
    "GenericProfile",
    "Profile",
    "Result",
    "Verdict",
    "get_profile",
]
