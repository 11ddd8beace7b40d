"""Registry of the simulated exchanges' WebSocket dialects, loaded lazily.

:data:`DIALECTS` maps an exchange to the module implementing its public market-data WebSocket API;
each module exposes a :class:`~simulator.ws.dialect.WsDialect` subclass named ``Dialect``. A module
that does not exist (yet) means that exchange serves no WebSocket: its upgrade requests get the
exchange's 404 like any unknown path.
"""

from __future__ import annotations

import importlib
import logging

from simulator.ws.dialect import WsDialect

__all__ = ["DIALECTS", "dialect_class", "find_dialect"]

log = logging.getLogger("simulator.ws")

DIALECTS: dict[str, str] = {
    "binance": "simulator.ws.dialects.binance",
    "bybit": "simulator.ws.dialects.bybit",
    "okx": "simulator.ws.dialects.okx",
    "coinbase": "simulator.ws.dialects.coinbase",
    "kraken": "simulator.ws.dialects.kraken",
}
"""Exchange → module path of its dialect."""

_loaded: dict[str, type[WsDialect] | None] = {}


def dialect_class(exchange: str) -> type[WsDialect] | None:
    """The ``Dialect`` class of ``exchange``, or None when the exchange has no dialect module
    (unknown exchange, or its module is not written yet). Cached after the first call.

    Raises:
        TypeError: the module exists but its ``Dialect`` is not a ``WsDialect`` subclass.
        ImportError: the module exists but fails to import (a bug in it, not an absence).
    """
    if exchange in _loaded:
        return _loaded[exchange]
    module_name = DIALECTS.get(exchange)
    cls: type[WsDialect] | None = None
    if module_name is not None:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            log.info("no WebSocket dialect for %s (%s missing)", exchange, module_name)
        else:
            found = getattr(module, "Dialect", None)
            if not (isinstance(found, type) and issubclass(found, WsDialect)):
                raise TypeError(f"{module_name}.Dialect must be a WsDialect subclass")
            cls = found
    _loaded[exchange] = cls
    return cls


def find_dialect(exchange: str, path: str) -> type[WsDialect] | None:
    """The dialect serving ``path`` (under ``/<exchange>``, without query) for ``exchange``:
    one of its ``paths`` matches exactly, or a path ending in ``/`` is a prefix of it (with
    something after it: Binance ``/ws/<streamName>``). None when nothing serves it."""
    cls = dialect_class(exchange)
    if cls is None:
        return None
    for served in cls.paths:
        if served.endswith("/"):
            if path.startswith(served) and len(path) > len(served):
                return cls
        elif path == served:
            return cls
    return None
