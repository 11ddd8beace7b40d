"""Statistics of one Prometheus series and their text, for the diagnosis context.

Per series (numpy): current = last finite value; baseline mean and population standard
deviation of the points before ``startsAt − 5 min`` (the alert's ``for`` period, when the
condition already held, stays out of the baseline; falls back to before ``startsAt``, then to
all but the last point); z-score; least-squares slope per minute of the points since
``startsAt`` (else of the whole window); min and max. Rendered in one unit per line
(``p99 latency 1.84 s (baseline 0.21 ± 0.05 s, z 32.6, rising 0.12 s/min)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from receiver.diagnosis.schema import SeriesStats

#: The baseline ends this long before ``startsAt``: Prometheus sends ``startsAt`` when the alert
#: fires, after its ``for`` (up to a few minutes here), and the condition already held then.
BASELINE_GUARD_SECONDS = 300.0


# --- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Raw numbers of :func:`compute_stats` (see :class:`SeriesStats` for their meaning)."""

    current: float
    mean: float | None
    std: float | None
    z: float | None
    slope_per_minute: float | None
    trend: Literal["rising", "falling", "flat"]
    minimum: float
    maximum: float
    points: int
    baseline_points: int
    baseline_basis: Literal["before_alert", "window", "none"]


def _slope_per_minute(t: np.ndarray, v: np.ndarray) -> float | None:
    if len(t) < 2:
        return None
    x = (t - t[0]) / 60.0
    dx = x - x.mean()
    denom = float(np.dot(dx, dx))
    if denom == 0.0:
        return None
    return float(np.dot(dx, v - v.mean()) / denom)


def compute_stats(
    timestamps: np.ndarray | list[float], values: np.ndarray | list[float], alert_start: float
) -> Stats | None:
    """numpy statistics of one series (non-finite values dropped); ``None`` without data.

    Args:
        timestamps: Unix seconds, ascending.
        values: the samples.
        alert_start: the alert's ``startsAt`` (Unix seconds). Baseline: the points before
            ``startsAt − 5 min`` (at least 3), else before ``startsAt``, else all but the last.
            Trend: the points from ``startsAt`` on (at least 3), else the whole window.
    """
    t = np.asarray(timestamps, dtype=float)
    v = np.asarray(values, dtype=float)
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    if v.size == 0:
        return None
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    current = float(v[-1])
    guarded = t < alert_start - BASELINE_GUARD_SECONDS
    before = t < alert_start
    basis: Literal["before_alert", "window", "none"]
    if int(guarded.sum()) >= 3:
        base, basis = v[guarded], "before_alert"
    elif int(before.sum()) >= 3:
        base, basis = v[before], "before_alert"
    elif v.size >= 3:
        base, basis = v[:-1], "window"
    else:
        base, basis = v[:0], "none"
    mean = std = z = None
    if base.size >= 2:
        mean = float(base.mean())
        std = float(base.std())
        scale = max(1.0, abs(mean))
        if std > 1e-12 * scale:
            z = (current - mean) / std
    since = t >= alert_start
    if int(since.sum()) >= 3:
        ft, fv = t[since], v[since]
    else:
        ft, fv = t, v
    slope = _slope_per_minute(ft, fv)
    lo, hi = float(v.min()), float(v.max())
    trend: Literal["rising", "falling", "flat"] = "flat"
    if slope is not None and hi > lo:
        change = slope * (ft[-1] - ft[0]) / 60.0
        if abs(change) >= 0.1 * (hi - lo):
            trend = "rising" if change > 0 else "falling"
    return Stats(
        current=current,
        mean=mean,
        std=std,
        z=z,
        slope_per_minute=slope,
        trend=trend,
        minimum=lo,
        maximum=hi,
        points=int(v.size),
        baseline_points=int(base.size),
        baseline_basis=basis,
    )


# --- rendering --------------------------------------------------------------------------------


def fmt_number(x: float) -> str:
    """Short human number: 3 significant digits, no exponent for everyday magnitudes."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.01:
        return f"{x:.2f}"
    if a >= 0.0001:
        return f"{x:.4f}".rstrip("0")
    return f"{x:.1e}"


def fmt_count(x: float) -> str:
    """Counts from ``increase()`` (extrapolated, fractional) shown as whole numbers."""
    return str(round(x)) if x >= 1 else fmt_number(x)


def _scale(unit: str, *values: float | None) -> tuple[float, str]:
    """Multiplier and suffix: ``%`` for ratios; ``ms`` for seconds below 1 s, else ``s``."""
    if unit == "ratio":
        return 100.0, "%"
    biggest = max((abs(v) for v in values if v is not None), default=0.0)
    return (1000.0, " ms") if biggest < 1.0 else (1.0, " s")


def fmt_value(x: float, unit: str, *, signed: bool = False) -> str:
    """``1.84 s`` / ``210 ms`` / ``35%``; ``signed`` adds ``+`` to positive values."""
    factor, suffix = _scale(unit, x)
    text = f"{fmt_number(x * factor)}{suffix}"
    return "+" + text if signed and x > 0 else text


def baseline_text(st: Stats | SeriesStats, unit: str, *, signed: bool = False) -> str | None:
    """``0.21 ± 0.05 s`` in the line's unit, or ``None`` without a baseline."""
    if st.mean is None or st.std is None:
        return None
    factor, suffix = _scale(unit, st.current, st.mean)
    sign = "+" if signed and st.mean > 0 else ""
    return f"{sign}{fmt_number(st.mean * factor)} ± {fmt_number(st.std * factor)}{suffix}"


def slope_text(st: Stats | SeriesStats, unit: str) -> str | None:
    """``0.12 s/min`` (absolute value, the line's unit), or ``None`` without a slope."""
    if st.slope_per_minute is None:
        return None
    factor, suffix = _scale(unit, st.current, st.mean)
    return f"{fmt_number(abs(st.slope_per_minute) * factor)}{suffix}/min"


def render_stats(label: str, unit: str, st: Stats, *, signed: bool = False) -> str:
    """``p99 latency 1.84 s (baseline 0.21 ± 0.05 s, z 32.6, rising 0.12 s/min)``.

    One unit per line: milliseconds when the current value and the baseline mean are below
    1 s, seconds otherwise; ratios in percent.
    """
    factor, suffix = _scale(unit, st.current, st.mean)
    parts: list[str] = []
    base = baseline_text(st, unit, signed=signed)
    if base is not None:
        parts.append(f"baseline {base}")
    if st.z is not None:
        parts.append(f"z {st.z:.1f}")
    slope = slope_text(st, unit)
    if slope is not None:
        parts.append("flat" if st.trend == "flat" else f"{st.trend} {slope}")
    current = fmt_number(st.current * factor) + suffix
    if signed and st.current > 0:
        current = "+" + current
    tail = f" ({', '.join(parts)})" if parts else ""
    return f"{label} {current}{tail}"
