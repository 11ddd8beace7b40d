"""Deterministic-but-moving BTC market shared by all simulated venues.

The reference price is a pure function of wall-clock time (a sum of sines, ~65 000 USD, moving a
few dollars per 100 ms tick), so two simulator processes started at different moments report the
same prices at the same instant and tests are reproducible. Each venue sees the reference price
through a small basis (USD vs USDT, venue premium), on its own tick grid, with its own number
formatting and trade-id / update-id sequences.

Everything is quantised to :data:`TICK_MS` (100 ms): a :class:`VenueView` describes one venue at
one tick and is cached, including the formatted order-book levels, so per-request work is a dict
lookup plus list slicing. Units: times in epoch **ms** (ints) unless a name ends in ``_s``;
prices in quote currency (USD/USDT); quantities in BTC.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = [
    "TICK_MS",
    "VENUES",
    "DayStats",
    "Level",
    "Market",
    "Venue",
    "VenueView",
    "reference_price",
]

TICK_MS = 100
"""Market state granularity in milliseconds: the book/ticker change at most every 100 ms."""

_TAU = 2.0 * math.pi
_REF_BASE = 65_000.0
_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: origin of the trade-id sequences
_DAY_S = 86_400
_SAMPLE_STEP_S = 300  # 24 h statistics are sampled every 5 minutes
_VIEW_CACHE_MAX = 256

Level = tuple[str, str, int, int]
"""One book level: ``(price_str, qty_str, order_count, age_s)``. ``age_s`` (0–59) is how long ago
the level last changed, used for Kraken's per-level timestamp [KR-SPEC depth.yaml]."""


def reference_price(t: float) -> float:
    """Reference BTC/USD mid price at epoch second ``t`` (float, > 0).

    Deterministic: the same ``t`` always yields the same price. Range roughly 63 400–66 600.
    """
    return _REF_BASE * (
        1.0
        + 0.0200 * math.sin(_TAU * t / 21_600.0)
        + 0.0040 * math.sin(_TAU * t / 1_013.0 + 1.3)
        + 0.0008 * math.sin(_TAU * t / 61.0 + 0.7)
        + 0.00015 * math.sin(_TAU * t / 7.3 + 2.1)
    )


@dataclass(frozen=True, slots=True)
class Venue:
    """Static description of how one exchange quotes BTC.

    Attributes:
        name: exchange key (``"binance"`` ...).
        symbol: the venue's own instrument name (``"BTCUSDT"``, ``"BTC-USDT"``, ``"XXBTZUSD"``).
        seed: per-venue RNG seed so venues' books differ.
        basis_bps: price offset vs the reference, in basis points.
        tick_size: price increment (quote currency).
        price_decimals: digits printed after the decimal point for prices.
        qty_decimals: digits printed for quantities.
        trim_qty: strip trailing zeros from quantities (Bybit/OKX print ``"2"``, ``"1.862172"``).
        trade_interval_ms: one simulated trade every this many ms (drives trade ids and counts).
        trade_id_base: trade id at 2024-01-01T00:00Z.
        update_id_base: order-book update id / sequence at tick 0.
        volume_24h: typical rolling 24 h base volume in BTC.
        max_depth: deepest book the venue serves per side.
    """

    name: str
    symbol: str
    seed: int
    basis_bps: float
    tick_size: float
    price_decimals: int
    qty_decimals: int
    trim_qty: bool
    trade_interval_ms: int
    trade_id_base: int
    update_id_base: int
    volume_24h: float
    max_depth: int


VENUES: dict[str, Venue] = {
    "binance": Venue(
        "binance",
        "BTCUSDT",
        11,
        0.0,
        0.01,
        8,
        8,
        False,
        25,
        3_300_000_000,
        40_000_000_000,
        21_000.0,
        5000,
    ),
    "bybit": Venue(
        "bybit",
        "BTCUSDT",
        23,
        0.3,
        0.01,
        2,
        6,
        True,
        100,
        2_290_000_000,
        230_000,
        6_500.0,
        1000,
    ),
    "okx": Venue(
        "okx",
        "BTC-USDT",
        37,
        -0.2,
        0.1,
        1,
        8,
        True,
        80,
        510_000_000,
        9_800_000_000,
        7_200.0,
        400,
    ),
    "coinbase": Venue(
        "coinbase",
        "BTC-USD",
        41,
        2.0,
        0.01,
        2,
        8,
        False,
        150,
        560_000_000,
        80_000_000_000,
        9_800.0,
        1000,
    ),
    "kraken": Venue(
        "kraken",
        "XXBTZUSD",
        53,
        1.5,
        0.1,
        5,
        8,
        False,
        400,
        0,
        0,
        2_600.0,
        500,
    ),
}
"""The five simulated venues, keyed by exchange name. Tick sizes/decimals mimic the documented
examples (Binance 8-decimal strings [BN-REST], OKX ``"41006.8"`` [OKX-MD], Kraken ``"3537.50000"``
[KR-SPEC], Coinbase ``"6268.48"`` [CB-TICKER])."""


@dataclass(frozen=True, slots=True)
class DayStats:
    """Reference-price statistics (before venue basis), sampled every 5 minutes.

    Attributes:
        open_24h / high_24h / low_24h / vwap_24h: rolling 24 h window ending now.
        open_today / high_today / low_today / vwap_today: since 00:00 UTC today.
        sod_utc8: price at the start of the UTC+8 day (OKX ``sodUtc8`` [OKX-MD]).
        day_fraction: fraction (0–1) of the UTC day elapsed.
        volume_factor: multiplier (~0.8–1.2) applied to the venue's typical 24 h volume.
    """

    open_24h: float
    high_24h: float
    low_24h: float
    vwap_24h: float
    open_today: float
    high_today: float
    low_today: float
    vwap_today: float
    sod_utc8: float
    day_fraction: float
    volume_factor: float


def _compute_day_stats(t: float) -> DayStats:
    """Sample :func:`reference_price` over the last 24 h and since midnight UTC."""
    start = t - _DAY_S
    samples = [(s, reference_price(s)) for s in _frange(start, t, _SAMPLE_STEP_S)]
    samples.append((t, reference_price(t)))
    prices = [p for _, p in samples]
    midnight = t - (t % _DAY_S)
    today = [p for s, p in samples if s >= midnight] or [prices[-1]]
    sod8 = midnight - 8 * 3600 if t - midnight < 16 * 3600 else midnight + 16 * 3600
    return DayStats(
        open_24h=prices[0],
        high_24h=max(prices),
        low_24h=min(prices),
        vwap_24h=sum(prices) / len(prices),
        open_today=reference_price(midnight),
        high_today=max(today),
        low_today=min(today),
        vwap_today=sum(today) / len(today),
        sod_utc8=reference_price(sod8),
        day_fraction=(t - midnight) / _DAY_S,
        volume_factor=1.0 + 0.2 * math.sin(_TAU * t / (7 * _DAY_S)),
    )


def _frange(start: float, stop: float, step: float) -> list[float]:
    n = int((stop - start) // step)
    return [start + i * step for i in range(n + 1) if start + i * step < stop]


class VenueView:
    """One venue's market state at one 100 ms tick (immutable once built, cached by Market).

    Attributes (prices are floats already on the venue tick grid; ``*_s`` strings are formatted):
        venue: the :class:`Venue`.
        tick: tick index (``t_ms // TICK_MS``).
        t_ms: epoch ms at which this state was generated (tick start).
        best_bid / best_ask / last: prices; ``bid_qty`` / ``ask_qty`` / ``last_qty``: BTC.
        trade_id: id of the last trade; ``trade_ms``: its epoch-ms time (<= ``t_ms``).
        update_id: order-book update id / sequence (monotonic in ``tick``).
        stats: :class:`DayStats` scaled by the venue basis (see :meth:`scaled`).
        volume_24h / volume_today: base volume in BTC.
        first_trade_id_24h: id of the first trade in the rolling 24 h window.
    """

    __slots__ = (
        "_asks",
        "_bids",
        "_level_seed",
        "_mult",
        "ask_qty",
        "best_ask",
        "best_bid",
        "bid_qty",
        "first_trade_id_24h",
        "last",
        "last_qty",
        "stats",
        "t_ms",
        "tick",
        "trade_id",
        "trade_ms",
        "update_id",
        "venue",
        "volume_24h",
        "volume_today",
    )

    def __init__(self, venue: Venue, tick: int, stats: DayStats) -> None:
        """Build the view for ``venue`` at ``tick`` from reference-price ``stats``."""
        self.venue = venue
        self.tick = tick
        self.t_ms = tick * TICK_MS
        self._mult = 1.0 + venue.basis_bps / 10_000.0
        rng = random.Random(tick * 1_000_003 + venue.seed)
        self._level_seed = rng.getrandbits(32)
        mid_ticks = reference_price(self.t_ms / 1000.0) * self._mult / venue.tick_size
        spread = 1 + rng.randrange(3)
        bid_t = math.floor(mid_ticks - spread / 2.0)
        self.best_bid = bid_t * venue.tick_size
        self.best_ask = (bid_t + spread) * venue.tick_size
        self.last = self.best_ask if rng.random() < 0.5 else self.best_bid
        self.last_qty = round(0.00001 + rng.random() ** 3 * 0.5, min(venue.qty_decimals, 6))
        index = (self.t_ms - _EPOCH_MS) // venue.trade_interval_ms
        self.trade_id = venue.trade_id_base + index
        self.trade_ms = _EPOCH_MS + index * venue.trade_interval_ms
        self.first_trade_id_24h = self.trade_id - _DAY_S * 1000 // venue.trade_interval_ms + 1
        self.update_id = venue.update_id_base + tick * 4 + rng.randrange(4)
        self.stats = stats
        self.volume_24h = venue.volume_24h * stats.volume_factor
        self.volume_today = self.volume_24h * max(stats.day_fraction, 0.001)
        self._bids: list[Level] = []
        self._asks: list[Level] = []
        self.bid_qty = self.ask_qty = 0.0
        self._extend_levels(1)
        self.bid_qty = float(self._bids[0][1])
        self.ask_qty = float(self._asks[0][1])

    # -- formatting -------------------------------------------------------------------------
    def price(self, value: float) -> str:
        """Format a price with the venue's decimals (e.g. Binance ``"65000.01000000"``)."""
        return f"{value:.{self.venue.price_decimals}f}"

    def qty(self, value: float) -> str:
        """Format a BTC quantity with the venue's decimals (trimmed for Bybit/OKX)."""
        text = f"{value:.{self.venue.qty_decimals}f}"
        if self.venue.trim_qty and "." in text:
            text = text.rstrip("0").rstrip(".") or "0"
        return text

    def scaled(self, reference_value: float) -> float:
        """Convert a reference price (e.g. from :attr:`stats`) to this venue, on its tick grid."""
        ts = self.venue.tick_size
        return round(reference_value * self._mult / ts) * ts

    # -- order book -------------------------------------------------------------------------
    def levels(self, depth: int) -> tuple[list[Level], list[Level]]:
        """Return ``(bids, asks)``, best first, each at most ``depth`` (clamped to 1..max_depth)
        :data:`Level` tuples. Lists are shared cache objects: callers must not mutate them."""
        depth = max(1, min(depth, self.venue.max_depth))
        if len(self._bids) < depth:
            self._extend_levels(max(depth, min(2 * len(self._bids), self.venue.max_depth)))
        return self._bids[:depth], self._asks[:depth]

    def _extend_levels(self, depth: int) -> None:
        """(Re)generate ``depth`` levels per side deterministically from the tick seed."""
        venue = self.venue
        rng = random.Random(self._level_seed)
        ts = venue.tick_size
        bid_t = round(self.best_bid / ts)
        ask_t = round(self.best_ask / ts)
        bids: list[Level] = []
        asks: list[Level] = []
        for i in range(depth):
            if i:
                bid_t -= 1 + rng.randrange(3)
                ask_t += 1 + rng.randrange(3)
            scale = 0.05 + 0.02 * i if i < 50 else 1.0
            bq = 0.0001 + rng.random() ** 2 * 2.0 * scale
            aq = 0.0001 + rng.random() ** 2 * 2.0 * scale
            bn, ba, an, aa = (
                rng.randrange(12),
                rng.randrange(60),
                rng.randrange(12),
                rng.randrange(60),
            )
            bids.append((self.price(bid_t * ts), self.qty(bq), 1 + bn, ba))
            asks.append((self.price(ask_t * ts), self.qty(aq), 1 + an, aa))
        self._bids = bids
        self._asks = asks


class Market:
    """Factory and cache of :class:`VenueView` objects; one instance is shared by all venues.

    Thread-safety: meant to be used from the server's event-loop thread only.
    """

    def __init__(self, venues: dict[str, Venue] | None = None) -> None:
        """Create a market for ``venues`` (default :data:`VENUES`)."""
        self.venues: dict[str, Venue] = dict(venues or VENUES)
        self._views: dict[tuple[str, int], VenueView] = {}
        self._stats: dict[int, DayStats] = {}

    def view(self, venue: str, t_ms: float) -> VenueView:
        """Return the state of ``venue`` at epoch ms ``t_ms`` (quantised to :data:`TICK_MS`).

        Raises:
            KeyError: unknown venue name.
        """
        tick = int(t_ms) // TICK_MS
        key = (venue, tick)
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= _VIEW_CACHE_MAX:
                self._views.clear()
            view = VenueView(self.venues[venue], tick, self.day_stats(tick * TICK_MS / 1000.0))
            self._views[key] = view
        return view

    def day_stats(self, t: float) -> DayStats:
        """24 h / today statistics of the reference price at epoch second ``t`` (cached per
        minute, so they move slowly)."""
        minute = int(t) // 60
        stats = self._stats.get(minute)
        if stats is None:
            if len(self._stats) >= 16:
                self._stats.clear()
            stats = _compute_day_stats(minute * 60.0)
            self._stats[minute] = stats
        return stats
