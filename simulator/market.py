"""Deterministic-but-moving markets (BTC, ETH, SOL per venue) shared by REST and WebSocket feeds.

Each reference price is a pure function of wall-clock time (a sum of sines: BTC ~65 000 USD,
ETH ~3 400 USD, SOL ~150 USD, with different phases), so two simulator processes started at
different moments report the same prices at the same instant and tests are reproducible. Each
venue sees a reference price through a small basis (USD vs USDT, venue premium), on its own
tick grid, with its own number formatting and trade-id / update-id sequences per market.

Everything is quantised to :data:`TICK_MS` (100 ms): a :class:`VenueView` describes one market
of one venue at one tick and is cached. The order book is *persistent*: whether a price level
exists is a fixed property of the price (a hash), and its quantity changes only every
:data:`LEVEL_PERIOD_TICKS` ticks (each level on its own phase), so consecutive books share most
levels and :func:`book_diff` between ticks is small, as an exchange's diff stream is. Units:
times in epoch **ms** (ints) unless a name ends in ``_s``; prices in quote currency; quantities
in the base currency.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulator.book_diff import book_diff
from simulator.market_effects import Effect, MarketEffects
from simulator.market_model import volume_intensity, walk

__all__ = [
    "INSTRUMENTS",
    "LEVEL_PERIOD_TICKS",
    "TICK_MS",
    "VENUES",
    "DayStats",
    "Level",
    "Market",
    "Venue",
    "VenueView",
    "book_diff",
    "reference_price",
]

TICK_MS = 100
"""Market state granularity in milliseconds: the book/ticker change at most every 100 ms."""
LEVEL_PERIOD_TICKS = 50
"""A book level's quantity changes once every this many ticks (5 s), each level on its own
phase, so about 2 % of the levels change per tick (plus those the moving price crosses)."""

_TAU = 2.0 * math.pi
_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: origin of the trade-id sequences
_DAY_S = 86_400
_SAMPLE_STEP_S = 300  # 24 h statistics are sampled every 5 minutes
_VIEW_CACHE_MAX = 512
_LEVEL_CACHE_MAX = 400_000
_M64 = (1 << 64) - 1
_GOLD = 0x9E3779B97F4A7C15

Level = tuple[str, str, int, int]
"""One book level: ``(price_str, qty_str, order_count, age_s)``. ``age_s`` (0–4) is how long ago
the level last changed, used for Kraken's per-level timestamp [KR-SPEC depth.yaml]."""

# (base level, slow swings [(weight, period_s, phase)], random-walk seed, walk volatility)
_REFERENCE: dict[str, tuple[float, tuple[tuple[float, float, float], ...], int, float]] = {
    "BTC": (65_000.0, ((0.0200, 21_600.0, 0.0),), 0xB7C, 1.0),
    "ETH": (3_400.0, ((0.0250, 19_000.0, 0.9),), 0xE7E, 1.2),
    "SOL": (150.0, ((0.0300, 17_000.0, 2.2),), 0x501, 1.5),
}


def reference_price(t: float, base: str = "BTC") -> float:
    """Reference ``base``/USD mid price at epoch second ``t`` (float, > 0).

    A slow multi-hour swing times a deterministic random walk
    (:func:`simulator.market_model.walk`: 1-minute log returns of about 4 bps for BTC, 5 for
    ETH, 6 for SOL). Deterministic: the same ``t`` always yields the same price. BTC roughly
    62 500–67 500, ETH roughly 3 250–3 550, SOL roughly 143–157.

    Raises:
        KeyError: unknown ``base`` (``"BTC"``, ``"ETH"`` and ``"SOL"`` exist).
    """
    level, terms, seed, vol = _REFERENCE[base]
    swing = sum(w * math.sin(_TAU * t / period + ph) for w, period, ph in terms)
    return level * (1.0 + swing) * math.exp(walk(t, seed, vol))


@dataclass(frozen=True, slots=True)
class Venue:
    """Static description of how one exchange quotes one market.

    Attributes:
        name: exchange key (``"binance"`` ...).
        symbol: the venue's own REST instrument name (``"BTCUSDT"``, ``"BTC-USDT"``,
            ``"XXBTZUSD"``).
        seed: per-market RNG seed so venues' books differ.
        basis_bps: price offset vs the reference, in basis points.
        tick_size: price increment (quote currency).
        price_decimals: digits printed after the decimal point for prices.
        qty_decimals: digits printed for quantities.
        trim_qty: strip trailing zeros from quantities (Bybit/OKX print ``"2"``, ``"1.862172"``).
        trade_interval_ms: one simulated trade every this many ms (drives trade ids and counts).
        trade_id_base: trade id at 2024-01-01T00:00Z.
        update_id_base: order-book update id / sequence at tick 0.
        volume_24h: typical rolling 24 h base volume.
        max_depth: deepest book the venue serves per side.
        market: unified market name as ccxt spells it (``"BTC/USDT"``).
        aliases: other REST spellings accepted for this market (Kraken altname ``XBTUSD``).
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
    market: str = "BTC/USDT"
    aliases: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        """Base currency of :attr:`market` (``"BTC"``)."""
        return self.market.partition("/")[0]


INSTRUMENTS: dict[str, tuple[Venue, ...]] = {
    "binance": (
        Venue("binance", "BTCUSDT", 11, 0.0, 0.01, 8, 8, False, 25, 3_300_000_000,
           40_000_000_000, 21_000.0, 5000, "BTC/USDT"),
        Venue("binance", "ETHUSDT", 12, 0.0, 0.01, 8, 8, False, 40, 1_900_000_000,
           30_000_000_000, 310_000.0, 5000, "ETH/USDT"),
        Venue("binance", "SOLUSDT", 13, 0.0, 0.01, 8, 8, False, 60, 900_000_000,
           20_000_000_000, 2_900_000.0, 5000, "SOL/USDT"),
    ),
    "bybit": (
        Venue("bybit", "BTCUSDT", 23, 0.3, 0.01, 2, 6, True, 100, 2_290_000_000, 230_000,
           6_500.0, 1000, "BTC/USDT"),
        Venue("bybit", "ETHUSDT", 24, 0.4, 0.01, 2, 5, True, 120, 1_410_000_000, 170_000,
           95_000.0, 1000, "ETH/USDT"),
        Venue("bybit", "SOLUSDT", 25, 0.5, 0.01, 2, 5, True, 150, 810_000_000, 120_000,
           1_100_000.0, 1000, "SOL/USDT"),
    ),
    "okx": (
        Venue("okx", "BTC-USDT", 37, -0.2, 0.1, 1, 8, True, 80, 510_000_000, 9_800_000_000,
           7_200.0, 400, "BTC/USDT"),
        Venue("okx", "ETH-USDT", 38, -0.3, 0.01, 2, 6, True, 90, 380_000_000, 7_100_000_000,
           120_000.0, 400, "ETH/USDT"),
        Venue("okx", "SOL-USDT", 39, -0.4, 0.01, 2, 6, True, 110, 290_000_000, 5_300_000_000,
           1_400_000.0, 400, "SOL/USDT"),
    ),
    "coinbase": (
        Venue("coinbase", "BTC-USD", 41, 2.0, 0.01, 2, 8, False, 150, 560_000_000,
           80_000_000_000, 9_800.0, 1000, "BTC/USD"),
        Venue("coinbase", "ETH-USD", 42, 2.5, 0.01, 2, 8, False, 160, 470_000_000,
           61_000_000_000, 140_000.0, 1000, "ETH/USD"),
        Venue("coinbase", "SOL-USD", 43, 2.8, 0.01, 2, 8, False, 170, 210_000_000,
           41_000_000_000, 1_600_000.0, 1000, "SOL/USD"),
    ),
    "kraken": (
        Venue("kraken", "XXBTZUSD", 53, 1.5, 0.1, 5, 8, False, 400, 0, 0, 2_600.0, 500,
           "BTC/USD", ("XBTUSD",)),
        Venue("kraken", "XETHZUSD", 54, 1.8, 0.01, 2, 8, False, 450, 0, 0, 41_000.0, 500,
           "ETH/USD", ("ETHUSD",)),
        Venue("kraken", "SOLUSD", 55, 2.1, 0.01, 2, 8, False, 500, 0, 0, 380_000.0, 500,
           "SOL/USD"),
    ),
}  # fmt: skip
"""Every simulated market per exchange, BTC first. Tick sizes/decimals mimic the documented
examples (Binance 8-decimal strings [BN-REST], OKX ``"41006.8"`` [OKX-MD], Kraken
``"3537.50000"`` [KR-SPEC], Coinbase ``"6268.48"`` [CB-TICKER]); ETH and SOL are quoted in
cents. Kraken lists SOL as ``SOLUSD`` (no X/Z prefixes: a newer asset)."""

VENUES: dict[str, Venue] = {name: markets[0] for name, markets in INSTRUMENTS.items()}
"""The BTC market of each of the five simulated venues, keyed by exchange name."""


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


def _compute_day_stats(t: float, base: str = "BTC") -> DayStats:
    """Sample :func:`reference_price` over the last 24 h and since midnight UTC."""
    start = t - _DAY_S
    samples = [(s, reference_price(s, base)) for s in _frange(start, t, _SAMPLE_STEP_S)]
    samples.append((t, reference_price(t, base)))
    prices = [p for _, p in samples]
    midnight = t - (t % _DAY_S)
    today = [p for s, p in samples if s >= midnight] or [prices[-1]]
    sod8 = midnight - 8 * 3600 if t - midnight < 16 * 3600 else midnight + 16 * 3600
    return DayStats(
        open_24h=prices[0],
        high_24h=max(prices),
        low_24h=min(prices),
        vwap_24h=sum(prices) / len(prices),
        open_today=reference_price(midnight, base),
        high_today=max(today),
        low_today=min(today),
        vwap_today=sum(today) / len(today),
        sod_utc8=reference_price(sod8, base),
        day_fraction=(t - midnight) / _DAY_S,
        volume_factor=1.0 + 0.2 * math.sin(_TAU * t / (7 * _DAY_S)),
    )


def _frange(start: float, stop: float, step: float) -> list[float]:
    n = int((stop - start) // step)
    return [start + i * step for i in range(n + 1) if start + i * step < stop]


def _mix(x: int) -> int:
    """64-bit finaliser (murmur3 fmix64): a fast, well-spread integer hash."""
    x = ((x ^ (x >> 33)) * 0xFF51AFD7ED558CCD) & _M64
    x = ((x ^ (x >> 33)) * 0xC4CEB9FE1A85EC53) & _M64
    return x ^ (x >> 33)


class _LevelSource:
    """The persistent book of one market: price ticks → levels, cached across ticks.

    A price tick ``p`` holds a level when its hash says so (5 in 8 ticks); the best bid and ask
    always hold one. Its quantity and order count change at epochs of
    :data:`LEVEL_PERIOD_TICKS` ticks, offset by a per-price phase.
    """

    __slots__ = ("_cache", "venue")

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self._cache: dict[int, tuple[int, int, str, str, int] | None] = {}

    def level(self, p: int, tick: int, forced: bool) -> Level | None:
        """The level at price tick ``p`` at ``tick`` (None if none exists there; ``forced``
        makes one exist: the best bid and ask)."""
        cache = self._cache
        if p in cache:
            entry = cache[p]
            if entry is None and not forced:
                return None
        else:
            entry = None
            h0 = _mix((p * _GOLD + self.venue.seed) & _M64)
            if (h0 >> 40) & 7 >= 5:
                if len(cache) >= _LEVEL_CACHE_MAX:
                    cache.clear()
                cache[p] = None
                if not forced:
                    return None
        if entry is None:
            phase = _mix((p * _GOLD + self.venue.seed) & _M64) % LEVEL_PERIOD_TICKS
            cacheable = cache.get(p, True) is not None
        else:
            phase = entry[0]
            cacheable = True
        shifted = tick + phase
        epoch = shifted // LEVEL_PERIOD_TICKS
        age_s = (shifted % LEVEL_PERIOD_TICKS) * TICK_MS // 1000
        if entry is not None and entry[1] == epoch:
            return (entry[2], entry[3], entry[4], age_s)
        venue = self.venue
        h = _mix((p * _GOLD ^ (epoch * 0xD6E8FEB86659FD93) ^ venue.seed) & _M64)
        u = (h >> 11) / 9007199254740992.0
        qty = f"{0.0001 + u * u * 1.5:.{venue.qty_decimals}f}"
        if venue.trim_qty and "." in qty:
            qty = qty.rstrip("0").rstrip(".") or "0"
        price = f"{p * venue.tick_size:.{venue.price_decimals}f}"
        count = 1 + (h >> 5) % 12
        if cacheable:
            if len(cache) >= _LEVEL_CACHE_MAX:
                cache.clear()
            cache[p] = (phase, epoch, price, qty, count)
        return (price, qty, count, age_s)

    def side(self, start: int, step: int, tick: int, depth: int) -> list[Level]:
        """``depth`` levels from price tick ``start`` (included, always present) walking by
        ``step`` (-1 bids, +1 asks)."""
        out: list[Level] = []
        first = self.level(start, tick, True)
        assert first is not None
        out.append(first)
        p = start + step
        level = self.level
        while len(out) < depth and p > 0:
            lvl = level(p, tick, False)
            if lvl is not None:
                out.append(lvl)
            p += step
        return out


class VenueView:
    """One market of one venue at one 100 ms tick (immutable once built, cached by Market).

    Attributes (prices are floats already on the venue tick grid; ``*_s`` strings are formatted):
        venue: the :class:`Venue` (one market of one exchange).
        tick: tick index (``t_ms // TICK_MS``).
        t_ms: epoch ms at which this state was generated (tick start).
        best_bid / best_ask / last: prices; ``bid_qty`` / ``ask_qty`` / ``last_qty``: base units.
        trade_id: id of the last trade; ``trade_ms``: its epoch-ms time (<= ``t_ms``).
        update_id: order-book update id / sequence, increasing by 2–6 from tick to tick (so
            ``update_id + 1`` still belongs to the next tick's range).
        stats: :class:`DayStats` scaled by the venue basis (see :meth:`scaled`).
        volume_24h / volume_today: base volume (a ``volume_spike`` adds its extra volume).
        volume_mult: traded-volume multiplier at this tick (bursts × ``volume_spike`` ratio):
            trade sizes are scaled by it.
        first_trade_id_24h: id of the first trade in the rolling 24 h window.
    """

    __slots__ = (
        "_ask_t",
        "_asks",
        "_bid_t",
        "_bids",
        "_mult",
        "_source",
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
        "volume_mult",
        "volume_today",
    )

    def __init__(
        self,
        venue: Venue,
        tick: int,
        stats: DayStats,
        source: _LevelSource | None = None,
        effect: Effect | None = None,
        extra_volume: float = 0.0,
    ) -> None:
        """Build the view for ``venue`` at ``tick`` from reference-price ``stats`` (``source``:
        the market's shared level cache; a private one if omitted) under the market faults
        ``effect`` (:mod:`simulator.market_effects`; None = the normal market) and an
        ``extra_volume`` share of a day's volume in the rolling 24 h (a ``volume_spike``)."""
        self.venue = venue
        self.tick = tick
        self.t_ms = tick * TICK_MS
        self._mult = 1.0 + venue.basis_bps / 10_000.0
        self._source = source or _LevelSource(venue)
        price_tick = tick
        factor = 1.0
        crossed = False
        volume = volume_intensity(self.t_ms / 1000.0, venue.seed)
        if effect is not None:
            if effect.freeze_ms is not None:
                price_tick = effect.freeze_ms // TICK_MS
            factor = effect.price_factor
            crossed = effect.crossed
            volume *= effect.volume_factor
        self.volume_mult = volume
        rng = random.Random(price_tick * 1_000_003 + venue.seed)
        mid = reference_price(price_tick * TICK_MS / 1000.0, venue.base)
        mid_ticks = mid * self._mult * factor / venue.tick_size
        spread = 1 + rng.randrange(3)
        self._bid_t = math.floor(mid_ticks - spread / 2.0)
        self._ask_t = self._bid_t + spread
        if crossed:  # book_crossed: the best ask below the best bid by the usual spread
            self._ask_t = max(self._bid_t - spread, 1)
        self.best_bid = self._bid_t * venue.tick_size
        self.best_ask = self._ask_t * venue.tick_size
        self.last = self.best_ask if rng.random() < 0.5 else self.best_bid
        last_qty = 0.00001 + rng.random() ** 3 * 0.5
        if price_tick != tick:  # frozen prices: sizes keep changing
            last_qty = 0.00001 + random.Random(tick * 1_000_003 + venue.seed).random() ** 3 * 0.5
        digits = min(venue.qty_decimals, 6)
        self.last_qty = max(round(last_qty * volume, digits), 10.0**-digits)
        index = (self.t_ms - _EPOCH_MS) // venue.trade_interval_ms
        self.trade_id = venue.trade_id_base + index
        self.trade_ms = _EPOCH_MS + index * venue.trade_interval_ms
        self.first_trade_id_24h = self.trade_id - _DAY_S * 1000 // venue.trade_interval_ms + 1
        self.update_id = venue.update_id_base + tick * 4 + rng.randrange(3)
        self.stats = stats
        self.volume_24h = venue.volume_24h * stats.volume_factor * max(1.0 + extra_volume, 0.01)
        self.volume_today = self.volume_24h * max(stats.day_fraction, 0.001)
        self._bids: list[Level] = []
        self._asks: list[Level] = []
        self._extend_levels(1)
        self.bid_qty = float(self._bids[0][1])
        self.ask_qty = float(self._asks[0][1])

    # -- formatting -------------------------------------------------------------------------
    def price(self, value: float) -> str:
        """Format a price with the venue's decimals (e.g. Binance ``"65000.01000000"``)."""
        return f"{value:.{self.venue.price_decimals}f}"

    def qty(self, value: float) -> str:
        """Format a quantity with the venue's decimals (trimmed for Bybit/OKX)."""
        text = f"{value:.{self.venue.qty_decimals}f}"
        if self.venue.trim_qty and "." in text:
            text = text.rstrip("0").rstrip(".") or "0"
        return text

    @property
    def zero_qty(self) -> str:
        """A zero quantity in the venue's style (``"0.00000000"`` Binance, ``"0"`` Bybit/OKX):
        what a diff stream sends for a removed level."""
        return self.qty(0.0)

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

    def diff_from(self, prev: VenueView, depth: int) -> tuple[list[tuple[str, str]], ...]:
        """``(bid_changes, ask_changes)`` that turn ``prev``'s top ``depth`` levels into this
        view's (see :func:`book_diff`; removed levels carry :attr:`zero_qty`)."""
        pb, pa = prev.levels(depth)
        cb, ca = self.levels(depth)
        zero = self.zero_qty
        return book_diff(pb, cb, zero=zero, descending=True), book_diff(
            pa, ca, zero=zero, descending=False
        )

    def _extend_levels(self, depth: int) -> None:
        """(Re)generate ``depth`` levels per side from the persistent level source."""
        self._bids = self._source.side(self._bid_t, -1, self.tick, depth)
        self._asks = self._source.side(self._ask_t, 1, self.tick, depth)


class Market:
    """Factory and cache of :class:`VenueView` objects; one instance is shared by all venues.

    Thread-safety: meant to be used from the server's event-loop thread only.
    """

    def __init__(self, venues: dict[str, Venue] | None = None) -> None:
        """Create a market for ``venues`` (default: every market of :data:`INSTRUMENTS`; a
        ``venues`` mapping gives one BTC market per exchange)."""
        if venues is None:
            self.instruments: dict[str, tuple[Venue, ...]] = dict(INSTRUMENTS)
        else:
            self.instruments = {name: (v,) for name, v in venues.items()}
        self.venues: dict[str, Venue] = {n: ms[0] for n, ms in self.instruments.items()}
        self._by_market = {(n, v.market): v for n, ms in self.instruments.items() for v in ms}
        self._by_symbol = {
            (n, s): v.market
            for n, ms in self.instruments.items()
            for v in ms
            for s in (v.symbol, *v.aliases)
        }
        self._sources = {key: _LevelSource(v) for key, v in self._by_market.items()}
        self._views: dict[tuple[str, str, int, int], VenueView] = {}
        self.effects = MarketEffects()
        """The market faults' timeline (:mod:`simulator.market_effects`), set through the
        fault registry."""
        self._stats: dict[tuple[str, int], DayStats] = {}

    def markets(self, venue: str) -> tuple[str, ...]:
        """Unified market names of ``venue``, BTC first (``("BTC/USDT", "ETH/USDT")``).

        Raises:
            KeyError: unknown venue name.
        """
        return tuple(v.market for v in self.instruments[venue])

    def instrument(self, venue: str, market: str | None = None) -> Venue:
        """The :class:`Venue` of ``market`` (unified name; None = the first, BTC) on ``venue``.

        Raises:
            KeyError: unknown venue or market.
        """
        if market is None:
            return self.venues[venue]
        return self._by_market[(venue, market)]

    def symbol(self, venue: str, market: str) -> str:
        """The REST spelling of ``market`` on ``venue`` (``BTCUSDT``, ``BTC-USDT``,
        ``BTC-USD``, Kraken's AssetPairs key ``XXBTZUSD``).

        Raises:
            KeyError: unknown venue or market.
        """
        return self._by_market[(venue, market)].symbol

    def market_for_symbol(self, venue: str, symbol: str) -> str | None:
        """The unified market a REST ``symbol`` of ``venue`` names (exact spelling, Kraken
        altnames such as ``XBTUSD`` included), or None if the venue lists no such market."""
        return self._by_symbol.get((venue, symbol))

    def view(self, venue: str, t_ms: float, market: str | None = None) -> VenueView:
        """Return the state of ``market`` (unified name; None = the venue's first market, BTC)
        on ``venue`` at epoch ms ``t_ms`` (quantised to :data:`TICK_MS`).

        Raises:
            KeyError: unknown venue or market.
        """
        tick = int(t_ms) // TICK_MS
        inst = self.venues[venue] if market is None else self._by_market[(venue, market)]
        effects = self.effects
        key = (venue, inst.market, tick, effects.version)
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= _VIEW_CACHE_MAX:
                self._views.clear()
            t_ms = tick * TICK_MS
            stats = self.day_stats(t_ms / 1000.0, inst.base)
            source = self._sources[(venue, inst.market)]
            effect = effects.at(venue, t_ms)
            extra = effects.extra_volume_24h(venue, t_ms)
            view = VenueView(inst, tick, stats, source, effect, extra)
            self._views[key] = view
        return view

    def day_stats(self, t: float, base: str = "BTC") -> DayStats:
        """24 h / today statistics of the ``base`` reference price at epoch second ``t``
        (cached per minute, so they move slowly)."""
        minute = int(t) // 60
        stats = self._stats.get((base, minute))
        if stats is None:
            if len(self._stats) >= 16:
                self._stats.clear()
            stats = _compute_day_stats(minute * 60.0, base)
            self._stats[(base, minute)] = stats
        return stats
