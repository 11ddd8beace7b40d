"""A local order book shared by the exchanges' :class:`~exporter.streams.dialect.BookSync` classes.

Each side keeps a price-sorted key list (bisect, best first: bids are stored under the negated
price) beside a dict key → ``(price string, quantity string)``: the exchange's own strings are
kept because the checksums (OKX, Kraken) are computed over them, while the float key only orders
levels and finds the same level under another spelling (``"100.0"`` and ``"100.00"`` are one
level; the latest spelling received is kept). Applying a level costs one bisect and one list
insert/delete; nothing ever re-sorts a whole side, and top-N reads are slices.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

Level = tuple[str, str]
"""``(price, quantity)`` as the exchange spelled them."""


class BookSide:
    """One side of a book: levels sorted best first.

    ``descending`` = True for bids (highest price first), False for asks (lowest first).
    """

    __slots__ = ("_keys", "_levels", "_sign")

    def __init__(self, descending: bool) -> None:
        self._sign = -1.0 if descending else 1.0
        self._keys: list[float] = []
        self._levels: dict[float, Level] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        """Remove every level."""
        self._keys.clear()
        self._levels.clear()

    def replace(self, levels: Iterable[Sequence[str]]) -> None:
        """Make the side exactly ``levels`` (a snapshot); zero quantities are skipped.

        Raises:
            ValueError: a price or quantity is not a number.
        """
        sign = self._sign
        table: dict[float, Level] = {}
        for level in levels:
            price, qty = level[0], level[1]
            if float(qty) != 0.0:
                table[sign * float(price)] = (price, qty)
        self._levels = table
        self._keys = sorted(table)

    def apply(self, price: str, qty: str) -> None:
        """Set one level: a zero quantity (any spelling: ``0``, ``0.00000000``, ``0E-8``) deletes
        it (a delete of an absent level is ignored), any other replaces or inserts it.

        Raises:
            ValueError: ``price`` or ``qty`` is not a number.
        """
        key = self._sign * float(price)
        levels = self._levels
        if float(qty) == 0.0:
            if levels.pop(key, None) is not None:
                keys = self._keys
                del keys[bisect_left(keys, key)]
            return
        if key not in levels:
            keys = self._keys
            keys.insert(bisect_left(keys, key), key)
        levels[key] = (price, qty)

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels."""
        keys = self._keys
        if len(keys) > depth:
            levels = self._levels
            for key in keys[depth:]:
                del levels[key]
            del keys[depth:]

    def top(self, n: int) -> list[Level]:
        """The best ``n`` levels (fewer when the side is shorter), best first."""
        return list(map(self._levels.__getitem__, self._keys[:n]))

    def best(self) -> float | None:
        """The best price, None when the side is empty."""
        keys = self._keys
        return self._sign * keys[0] if keys else None


class LocalBook:
    """A local order book: bids (high → low) and asks (low → high) of ``(price, qty)`` strings.

    Args:
        max_depth: levels kept per side after every change (Kraken: the subscribed depth, as
            [KR-CKS2 §Maintaining the book] requires; elsewhere a memory bound), None = all.
    """

    __slots__ = ("asks", "bids", "max_depth")

    def __init__(self, max_depth: int | None = None) -> None:
        if max_depth is not None and max_depth < 1:
            raise ValueError(f"max_depth must be at least 1, got {max_depth!r}")
        self.max_depth = max_depth
        self.bids = BookSide(descending=True)
        self.asks = BookSide(descending=False)

    def __bool__(self) -> bool:
        return bool(len(self.bids) or len(self.asks))

    def clear(self) -> None:
        """Forget every level."""
        self.bids.clear()
        self.asks.clear()

    def replace(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        """Replace the whole book with a snapshot (levels in any order), then truncate.

        Raises:
            ValueError: a price or quantity is not a number.
        """
        self.bids.replace(bids)
        self.asks.replace(asks)
        if self.max_depth is not None:
            self.bids.truncate(self.max_depth)
            self.asks.truncate(self.max_depth)

    def apply(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        """Apply delta levels in the order given (zero quantity deletes), then truncate.

        Raises:
            ValueError: a price or quantity is not a number (levels before it are applied).
        """
        side = self.bids
        for level in bids:
            side.apply(level[0], level[1])
        side = self.asks
        for level in asks:
            side.apply(level[0], level[1])
        if self.max_depth is not None:
            self.bids.truncate(self.max_depth)
            self.asks.truncate(self.max_depth)

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """``(best n bids high → low, best n asks low → high)``."""
        return self.bids.top(n), self.asks.top(n)

    def best(self) -> tuple[float | None, float | None]:
        """``(best bid, best ask)`` prices, None for an empty side; crossed when bid ≥ ask."""
        return self.bids.best(), self.asks.best()
