"""Market-model faults as a timeline: what the market of one exchange looks like at a tick.

The market faults (``price_offset``, ``price_spike``, ``price_freeze``, ``volume_spike``,
``book_crossed``; validated in :mod:`simulator.faults`) change the *market* an exchange quotes,
not one REST answer: REST tickers and books and every WebSocket channel read the same
:class:`~simulator.market.VenueView`, so they all show the effect. Each set fault becomes a
:class:`Span` of ticks ``[start_tick, end_tick)``: it starts at the next 100 ms tick boundary
after it is set and ends at the tick boundary after it is cleared or replaced (or when its
``duration_s`` runs out). Ended spans are kept (the last :data:`KEEP_S` seconds), so a view of
a past tick rebuilt after a cache eviction is the one first served: a diff stream that crosses
the moment a fault is set or cleared stays consistent with the client's book.

Effects at one tick (:meth:`MarketEffects.at`), composed:

* price factor = Π ``(1 + bps/10000)`` of ``price_offset`` (with ``ramp_s``: moving linearly
  from the offset shown when it was set to ``bps`` over ``ramp_s``, so a scenario can ramp an
  offset up and back down to 0 without a jump) and of ``price_spike`` (its shape at the tick,
  :func:`spike_shape`);
* ``price_freeze``: the price part of the view (mid, spread, last side) is that of the tick the
  freeze started at, while times, ids and book quantities move on;
* ``book_crossed``: the best ask is put below the best bid (bid > ask);
* volume factor = ``volume_spike`` ``ratio`` (trade sizes, and the REST rolling 24 h volume
  through :meth:`MarketEffects.extra_volume_24h`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KEEP_S",
    "MARKET_FAULT_KINDS",
    "Effect",
    "MarketEffects",
    "Span",
    "spike_shape",
]

MARKET_FAULT_KINDS: tuple[str, ...] = (
    "price_offset",
    "price_spike",
    "price_freeze",
    "volume_spike",
    "book_crossed",
)
"""Fault kinds that act on the market model (exchange-wide, each kind in its own scope)."""

KEEP_S = 2 * 86_400
"""Ended spans are kept this long (a ``stale`` fault may look a day back; the REST 24 h volume
counts a volume spike for a day)."""

_TICK_MS = 100  # simulator.market.TICK_MS (not imported: market imports this module)
_DAY_MS = 86_400_000


def spike_shape(elapsed_s: float, duration_s: float) -> float:
    """Fraction (0–1) of a ``price_spike``'s ``bps`` shown ``elapsed_s`` after it started: a
    flash move reached linearly within ``min(2 s, duration/10)``, then decaying quadratically to
    0 at ``duration_s`` (as a flash crash prints: a sudden move, a slower recovery)."""
    if elapsed_s < 0.0 or elapsed_s >= duration_s:
        return 0.0
    rise = min(2.0, duration_s / 10.0)
    if elapsed_s < rise:
        return elapsed_s / rise
    left = 1.0 - (elapsed_s - rise) / (duration_s - rise)
    return left * left


def _offset(span: Span, t_ms: int) -> float:
    """A ``price_offset`` span's offset (bps) at ``t_ms``: from ``from_bps`` (the offset shown
    when it was set) to ``bps``, linearly over ``ramp_s`` (at once without one)."""
    params = span.params
    bps = float(params["bps"])
    ramp = float(params.get("ramp_s", 0)) * 1000.0
    if ramp <= 0:
        return bps
    start = float(params.get("from_bps", 0.0))
    return start + (bps - start) * min((t_ms - span.start_ms) / ramp, 1.0)


@dataclass(frozen=True, slots=True)
class Span:
    """One market fault over time.

    Attributes:
        kind: one of :data:`MARKET_FAULT_KINDS`.
        params: its validated parameters (``bps``, ``ramp_s``, ``duration_s``, ``ratio``).
        start_ms: first tick boundary (epoch ms) it applies at.
        end_ms: tick boundary it stops at (exclusive), or None while it holds.
    """

    kind: str
    params: Mapping[str, Any]
    start_ms: int
    end_ms: int | None

    def covers(self, t_ms: int) -> bool:
        """True if the span applies at the tick starting at ``t_ms``."""
        return self.start_ms <= t_ms and (self.end_ms is None or t_ms < self.end_ms)


@dataclass(frozen=True, slots=True)
class Effect:
    """The composed market faults of one exchange at one tick.

    Attributes:
        price_factor: multiplier of every price (1.0 = none).
        freeze_ms: start (epoch ms) of a ``price_freeze``: prices are those of that tick; None.
        crossed: ``book_crossed`` holds (best bid above best ask).
        volume_factor: multiplier of trade sizes (1.0 = none).
    """

    price_factor: float = 1.0
    freeze_ms: int | None = None
    crossed: bool = False
    volume_factor: float = 1.0


def _next_tick(t_ms: float) -> int:
    return (int(t_ms) // _TICK_MS + 1) * _TICK_MS


class MarketEffects:
    """Timeline of the market faults of every exchange (event-loop thread only).

    :attr:`version` grows on every change, so caches of views can key on it.
    """

    def __init__(self) -> None:
        """An empty timeline."""
        self._spans: dict[str, list[Span]] = {}
        self.version = 0

    # -- changes --------------------------------------------------------------------------
    def set(
        self, exchange: str, kind: str, params: Mapping[str, Any], now_s: float,
        duration_s: float | None = None,
    ) -> Span:  # fmt: skip
        """Start ``kind`` on ``exchange`` at the next tick after ``now_s`` (epoch s), ending a
        running span of the same kind there; ``duration_s`` bounds it. Returns the new span."""
        start = _next_tick(now_s * 1000.0)
        if kind == "price_offset":  # a ramp starts from the offset shown at that tick
            params = {**params, "from_bps": self._offset_bps(exchange, start)}
        self._end(exchange, (kind,), start)
        end = None if duration_s is None else start + int(duration_s * 1000.0)
        span = Span(kind, dict(params), start, end)
        self._spans.setdefault(exchange, []).append(span)
        self._prune(exchange, now_s)
        self.version += 1
        return span

    def end(self, exchange: str | None, now_s: float, kinds: tuple[str, ...] = ()) -> None:
        """End the running spans of ``exchange`` (None: every exchange) at the next tick
        after ``now_s``; ``kinds`` narrows to those kinds (empty: all)."""
        at = _next_tick(now_s * 1000.0)
        for name in list(self._spans) if exchange is None else [exchange]:
            self._end(name, kinds or MARKET_FAULT_KINDS, at)
        self.version += 1

    def _end(self, exchange: str, kinds: tuple[str, ...], at: int) -> None:
        spans = self._spans.get(exchange)
        if not spans:
            return
        out: list[Span] = []
        for span in spans:
            if span.kind in kinds and (span.end_ms is None or span.end_ms > at):
                if span.start_ms >= at:
                    continue  # never applied: forget it
                span = Span(span.kind, span.params, span.start_ms, at)
            out.append(span)
        self._spans[exchange] = out

    def _offset_bps(self, exchange: str, t_ms: int) -> float:
        """The ``price_offset`` (bps) shown on ``exchange`` at ``t_ms`` (0.0 without one)."""
        for span in self._spans.get(exchange, ()):
            if span.kind == "price_offset" and span.covers(t_ms):
                return _offset(span, t_ms)
        return 0.0

    def _prune(self, exchange: str, now_s: float) -> None:
        horizon = int((now_s - KEEP_S) * 1000.0)
        spans = self._spans[exchange]
        if len(spans) > 8:
            self._spans[exchange] = [s for s in spans if s.end_ms is None or s.end_ms > horizon]

    # -- reading --------------------------------------------------------------------------
    def at(self, exchange: str, t_ms: int) -> Effect | None:
        """The composed effect on ``exchange`` at the tick starting at ``t_ms`` (epoch ms), or
        None when no market fault covers it (the common, cheap case)."""
        spans = self._spans.get(exchange)
        if not spans:
            return None
        price = 1.0
        volume = 1.0
        freeze: int | None = None
        crossed = False
        found = False
        for span in spans:
            if not span.covers(t_ms):
                continue
            found = True
            kind = span.kind
            params = span.params
            if kind == "price_offset":
                price *= 1.0 + _offset(span, t_ms) / 10_000.0
            elif kind == "price_spike":
                shape = spike_shape((t_ms - span.start_ms) / 1000.0, params["duration_s"])
                price *= 1.0 + params["bps"] * shape / 10_000.0
            elif kind == "price_freeze":
                freeze = span.start_ms
            elif kind == "book_crossed":
                crossed = True
            elif kind == "volume_spike":
                volume *= params["ratio"]
        if not found:
            return None
        return Effect(price, freeze, crossed, volume)

    def extra_volume_24h(self, exchange: str, t_ms: int) -> float:
        """Extra share of a day's normal volume traded in the 24 h before ``t_ms`` because of
        ``volume_spike`` spans: Σ (ratio − 1) × overlap / 24 h (0.0 without one; may be
        negative for a ratio below 1)."""
        spans = self._spans.get(exchange)
        if not spans:
            return 0.0
        lo = t_ms - _DAY_MS
        extra = 0.0
        for span in spans:
            if span.kind != "volume_spike":
                continue
            end = t_ms if span.end_ms is None else min(span.end_ms, t_ms)
            overlap = end - max(span.start_ms, lo)
            if overlap > 0:
                extra += (span.params["ratio"] - 1.0) * overlap / _DAY_MS
        return extra
