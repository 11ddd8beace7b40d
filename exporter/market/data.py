"""The sink market data flows into: stream sessions and the REST prober write quotes and traded
volume here, and it keeps the ``exchange_market_*`` series (:mod:`exporter.market.metrics`).

Source precedence, per market: a market whose ticker the exchange's stream subscribes takes its
prices from the stream (REST ticker prices for it are ignored, being older — except a price
the stream never gives, e.g. Bybit's bid/ask without its book channel); a market
whose trades the stream subscribes takes its volume from the trades only. Everything else comes
from the REST ticker probe (which probes one market per exchange: the first of ``markets``).

Calls for a market that is not configured are ignored, so a late message after a reload
cannot resurrect a forgotten series. Every method is cheap (dictionary lookups and gauge sets):
the stream's hot path calls :meth:`MarketData.quote` per ticker message.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.market.metrics import MarketMetrics

Source = Literal["stream", "rest"]
"""Where a quote or a volume reading comes from."""


@dataclass(slots=True)
class _Market:
    group: str
    labels: tuple[str, str, str]
    ticker_streamed: bool
    trades_streamed: bool
    volume: Any
    prices: list[Any] = field(default_factory=lambda: [None, None, None, None])
    """bid, ask, last and update-time series, each created with its first value."""
    streamed: list[bool] = field(default_factory=lambda: [False, False, False])
    """Which of bid, ask, last the stream has given (REST then leaves them alone)."""
    rolling_24h: float | None = None


class MarketData:
    """Per exchange and market, the latest prices and the traded-volume counter.

    Args:
        metrics: where the series live.
        clock: time source for ``exchange_market_last_update_timestamp_seconds``.
    """

    def __init__(self, metrics: MarketMetrics, clock: Clock = SYSTEM_CLOCK) -> None:
        self._metrics = metrics
        self._clock = clock
        self._markets: dict[tuple[str, str], _Market] = {}

    def configure(
        self,
        exchange: str,
        groups: Mapping[str, str],
        ticker_streamed: Collection[str] = (),
        trades_streamed: Collection[str] = (),
    ) -> None:
        """Take an exchange's markets (``{market: price_group}``) and which of them the stream
        carries (ticker, trades); forget markets no longer configured, or whose group changed.
        """
        m = self._metrics
        for key in [k for k in self._markets if k[0] == exchange]:
            current = self._markets[key]
            if key[1] not in groups or groups[key[1]] != current.group:
                del self._markets[key]
                m.forget_market(exchange, key[1])
        for market, group in groups.items():
            labels = (exchange, market, group)
            state = self._markets.get((exchange, market))
            if state is None:
                state = _Market(
                    group,
                    labels,
                    market in ticker_streamed,
                    market in trades_streamed,
                    m.volume.labels(*labels),  # at 0 from the start: rates work at once
                )
                self._markets[(exchange, market)] = state
            else:
                state.ticker_streamed = market in ticker_streamed
                state.trades_streamed = market in trades_streamed

    def quote(
        self,
        exchange: str,
        market: str,
        *,
        bid: float | None = None,
        ask: float | None = None,
        last: float | None = None,
        source: Source = "stream",
    ) -> None:
        """Record prices of ``market`` (quote-currency units; None leaves a price as it is).
        For a market whose ticker is streamed, a REST quote only fills the prices the stream
        has never given (Bybit's spot ticker carries no bid/ask: without its book channel they
        come from REST)."""
        state = self._markets.get((exchange, market))
        if state is None:
            return
        rest_only = source == "rest" and state.ticker_streamed
        updated = False
        for index, value in ((0, bid), (1, ask), (2, last)):
            if value is None or not value > 0:
                continue
            if source == "stream":
                state.streamed[index] = True
            elif rest_only and state.streamed[index]:
                continue
            self._child(state, index).set(value)
            updated = True
        if updated:
            self._child(state, 3).set(self._clock.time())

    def _child(self, state: _Market, index: int) -> Any:
        """The bid (0), ask (1), last (2) or update-time (3) series of a market, created on its
        first value: a price series never shows a 0."""
        child = state.prices[index]
        if child is None:
            m = self._metrics
            metric = (m.bid, m.ask, m.last, m.updated)[index]
            child = state.prices[index] = metric.labels(*state.labels)
        return child

    def trade(self, exchange: str, market: str, size: float) -> None:
        """Add one trade's base-currency ``size`` (> 0) from the trade stream."""
        state = self._markets.get((exchange, market))
        if state is not None and size > 0:
            state.volume.inc(size)

    def rolling_volume(self, exchange: str, market: str, volume_24h: float) -> None:
        """Take a REST ticker's rolling 24 h base volume: the counter grows by its increase
        since the previous reading (the first reading only sets the baseline). Ignored for a
        market whose trades are streamed."""
        state = self._markets.get((exchange, market))
        if state is None or state.trades_streamed or volume_24h < 0:
            return
        previous = state.rolling_24h
        state.rolling_24h = volume_24h
        if previous is not None and volume_24h > previous:
            state.volume.inc(volume_24h - previous)

    def scheduled_maintenance(self, exchange: str, window: tuple[float, float] | None) -> None:
        """Publish the next announced maintenance window ``(start, end)`` in Unix seconds, or
        remove it (None: nothing announced)."""
        m = self._metrics
        if window is None:
            m.scheduled_start.remove_by_labels({"exchange": exchange})
            m.scheduled_end.remove_by_labels({"exchange": exchange})
            return
        m.scheduled_start.labels(exchange).set(window[0])
        m.scheduled_end.labels(exchange).set(window[1])

    def markets(self, exchange: str) -> dict[str, str]:
        """``{market: price_group}`` configured for ``exchange``."""
        return {k[1]: v.group for k, v in self._markets.items() if k[0] == exchange}

    def forget_exchange(self, exchange: str) -> None:
        """Forget every market of ``exchange`` (series included)."""
        for key in [k for k in self._markets if k[0] == exchange]:
            del self._markets[key]
        self._metrics.forget_exchange(exchange)
