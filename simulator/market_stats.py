"""Statistics of the simulator's normal market over simulated time, against the market-integrity
thresholds (issue 15): what a monitoring stack reading every exchange's quotes and trades would
compute, without running one.

For every price group (BTC, ETH, SOL over the five exchanges: USD, USDT and USDC quotes taken as
one group) and every evaluation step (default 15 s) of a window of ``minutes`` after ``warmup_s``
of history:

* **deviation**: |mid − median of the *other* exchanges' mids| in basis points, each exchange's
  mid read ``lag_s`` late (a REST poll's staleness: exchange ``i`` lags ``i × lag_s / 4``);
* **return z**: the 1-minute log return of each exchange's mid divided by the standard deviation
  of its 1-minute returns over the previous hour (sampled every step), and the largest
  |1-minute return| in bps;
* **volume ratio**: the 5-minute traded-volume rate over its 1-hour average, volume integrated
  per second from each view's trade size (``last_qty``) × trades per second.

``python -m simulator.market_stats [--start EPOCH_S] [--minutes 30]`` prints the largest figures
as JSON. The same model (:class:`~simulator.market.Market`) serves REST and WebSocket.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import deque
from dataclasses import asdict, dataclass

from simulator.market import Market

__all__ = ["MarketStats", "measure"]

_GROUP_OF = {"BTC": "BTC/USD", "ETH": "ETH/USD", "SOL": "SOL/USD"}


@dataclass(frozen=True, slots=True)
class MarketStats:
    """The largest figures seen (see the module docstring).

    Attributes:
        max_deviation_bps: largest |deviation from the others' median| (bps), any group.
        max_return_z: largest |1-minute return| / std of the last hour's 1-minute returns.
        max_btc_return_bps: largest |1-minute log return| of a BTC market (bps).
        max_volume_ratio: largest 5-minute volume rate / 1-hour average rate.
        worst: where each maximum was seen (``"<exchange> <market> @+<s>"``).
    """

    max_deviation_bps: float
    max_return_z: float
    max_btc_return_bps: float
    max_volume_ratio: float
    worst: dict[str, str]


def measure(
    start_s: float,
    minutes: float = 30.0,
    *,
    warmup_s: float = 3600.0,
    step_s: float = 15.0,
    lag_s: float = 4.0,
    market: Market | None = None,
) -> MarketStats:
    """Measure the normal market from ``start_s`` (epoch s) for ``minutes`` after ``warmup_s``
    of history (the return and volume baselines need an hour). Pure computation over simulated
    time: no clock, no server; a 30-minute window takes a few seconds.

    Raises:
        ValueError: ``minutes``, ``step_s`` or ``warmup_s`` not positive.
    """
    if minutes <= 0 or step_s <= 0 or warmup_s <= 0:
        raise ValueError("minutes, step_s and warmup_s must be positive")
    market = market or Market()
    names = [(ex, m) for ex in market.instruments for m in market.markets(ex)]
    lags = {ex: i * lag_s / 4.0 for i, ex in enumerate(market.instruments)}
    begin = start_s - warmup_s
    end = start_s + minutes * 60.0
    steps = int((end - begin) // step_s) + 1
    window = int(3600 // step_s)
    mids: dict[tuple[str, str], list[float]] = {k: [] for k in names}
    volume: dict[tuple[str, str], list[float]] = {k: [0.0] for k in names}
    # volume counters per step, integrated per second
    for key in names:
        ex, m = key
        total = 0.0
        t = begin
        for i in range(steps):
            t_step = begin + i * step_s
            while t < t_step:
                v = market.view(ex, t * 1000.0, m)
                total += v.last_qty * 1000.0 / v.venue.trade_interval_ms
                t += 1.0
            if i:
                volume[key].append(total)
            v = market.view(ex, (t_step - lags[ex]) * 1000.0, m)
            mids[key].append((v.best_bid + v.best_ask) / 2.0)
    first = int(warmup_s // step_s)
    worst: dict[str, str] = {}
    max_dev = max_z = max_btc = max_vol = 0.0
    per_minute = int(60 // step_s)
    five = int(300 // step_s)
    returns: dict[tuple[str, str], deque[float]] = {k: deque(maxlen=window) for k in names}
    for i in range(per_minute, steps):
        at = f"@+{(i - first) * step_s:.0f}s"
        for key in names:
            series = mids[key]
            r = math.log(series[i] / series[i - per_minute])
            hist = returns[key]
            if i >= first and len(hist) > 10:
                sd = statistics.pstdev(hist)
                z = abs(r) / sd if sd > 0 else 0.0
                if z > max_z:
                    max_z, worst["return_z"] = z, f"{key[0]} {key[1]} {at}"
                if key[1].startswith("BTC/") and abs(r) * 1e4 > max_btc:
                    max_btc, worst["btc_return"] = abs(r) * 1e4, f"{key[0]} {key[1]} {at}"
            hist.append(r)
        if i < first:
            continue
        for base, group in _GROUP_OF.items():
            members = [k for k in names if k[1].startswith(base + "/")]
            for key in members:
                others = [mids[k][i] for k in members if k != key]
                med = statistics.median(others)
                dev = abs(mids[key][i] / med - 1.0) * 1e4
                if dev > max_dev:
                    max_dev, worst["deviation"] = dev, f"{key[0]} {group} {at}"
        for key in names:
            vol = volume[key]
            hour = vol[i] - vol[i - window] if i >= window else 0.0
            recent = vol[i] - vol[i - five]
            if hour > 0:
                ratio = (recent / 300.0) / (hour / 3600.0)
                if ratio > max_vol:
                    max_vol, worst["volume_ratio"] = ratio, f"{key[0]} {key[1]} {at}"
    return MarketStats(max_dev, max_z, max_btc, max_vol, worst)


def main(argv: list[str] | None = None) -> int:
    """CLI: print :func:`measure`'s figures as JSON; exit 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=float, default=1_767_225_600.0, help="epoch seconds")
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args(argv)
    print(json.dumps(asdict(measure(args.start, args.minutes)), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
