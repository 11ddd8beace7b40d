"""Order-book changes over an interval of ticks, cached for every connection of a market.

A diff stream that pushes every 100 ms or every 1000 ms must carry every level that changed at
any tick of its interval (with its value at the end), or a client that applies it to a REST
snapshot taken inside the interval ends up with a level the interval changed and changed back.
:func:`interval_diff` unions the per-tick :func:`simulator.market.book_diff` changes (cached per
market and tick, so a thousand subscribers cost one diff per tick) and takes each touched level's
final quantity.
"""

from __future__ import annotations

from simulator.market import TICK_MS, Market, VenueView

__all__ = ["MAX_INTERVAL_TICKS", "Changes", "interval_diff"]

Changes = list[tuple[str, str]]
"""``[(price_str, qty_str), …]`` best first; a zero quantity removes the level."""

MAX_INTERVAL_TICKS = 50
"""Longest interval (5 s) unioned tick by tick; a longer one (after a ``ws_stall``) is diffed
between its end points only, which is exact for a client whose book is the interval's start
(one that took a REST snapshot inside it may keep a level that came and went)."""

_CACHE_MAX = 8192
_tick_cache: dict[tuple[int, str, str, int, int], tuple[frozenset[str], frozenset[str]]] = {}


def _tick_prices(
    market: Market, exchange: str, name: str, tick: int, depth: int
) -> tuple[frozenset[str], frozenset[str]]:
    """Prices (bids, asks) whose level changed between ``tick - 1`` and ``tick``."""
    key = (id(market), exchange, name, tick, depth)
    cached = _tick_cache.get(key)
    if cached is None:
        prev = market.view(exchange, (tick - 1) * TICK_MS, name)
        cur = market.view(exchange, tick * TICK_MS, name)
        bids, asks = cur.diff_from(prev, depth)
        cached = (frozenset(p for p, _ in bids), frozenset(p for p, _ in asks))
        if len(_tick_cache) >= _CACHE_MAX:
            _tick_cache.clear()
        _tick_cache[key] = cached
    return cached


def interval_diff(
    market: Market, exchange: str, name: str, from_tick: int, to_tick: int, depth: int
) -> tuple[Changes, Changes]:
    """``(bid_changes, ask_changes)`` turning the top ``depth`` levels of market ``name`` of
    ``exchange`` at ``from_tick`` into those at ``to_tick`` (> ``from_tick``), listing every
    level touched at any tick in between with its quantity at ``to_tick`` (the venue's zero
    quantity when gone), best first.

    Raises:
        KeyError: unknown exchange or market.
    """
    end = market.view(exchange, to_tick * TICK_MS, name)
    if to_tick - from_tick > MAX_INTERVAL_TICKS:
        bids, asks = end.diff_from(market.view(exchange, from_tick * TICK_MS, name), depth)
        return bids, asks
    bid_prices: set[str] = set()
    ask_prices: set[str] = set()
    for tick in range(from_tick + 1, to_tick + 1):
        b, a = _tick_prices(market, exchange, name, tick, depth)
        bid_prices |= b
        ask_prices |= a
    return _final(end, bid_prices, depth, True), _final(end, ask_prices, depth, False)


def _final(end: VenueView, prices: set[str], depth: int, bids: bool) -> Changes:
    if not prices:
        return []
    levels = end.levels(depth)[0 if bids else 1]
    now = {lvl[0]: lvl[1] for lvl in levels}
    zero = end.zero_qty
    out = [(p, now.get(p, zero)) for p in prices]
    out.sort(key=lambda change: float(change[0]), reverse=bids)
    return out
