"""The normal market's noise: a deterministic random walk for each reference price and bursty
(clustered) traded volume.

Both are pure functions of wall-clock time (epoch seconds) and a seed, so two simulator processes
agree and tests are reproducible, and both cost a handful of float operations per call (they are
evaluated once per market and 100 ms tick).

**Random walk.** :func:`walk` sums octaves of *value noise*: octave ``k`` has knots every
``period_k = BASE_PERIOD_S · 2**k`` seconds holding a hashed value in [-1, 1], smoothly
interpolated between knots, with an amplitude proportional to ``sqrt(period_k)``. Over a horizon
``dt`` between the shortest and the longest period the increments then grow like ``sqrt(dt)``, as
a random walk's do, while the sum stays bounded (prices never wander off). Calibrated (see
:data:`WALK_SIGMA_1M`) so BTC's 1-minute log returns have a standard deviation of about 4 bps,
with Gaussian-like tails: the largest |1-minute return| over 30 minutes stays well below 20 bps
and its z-score against the last hour's returns well below 6.

**Bursty volume.** :func:`volume_intensity` is ``exp(s·X(t) - s²/2)`` with ``X`` a value noise of
1–8-minute octaves (mean 1): trades keep arriving on their fixed grid (so trade ids stay a
function of time) and their sizes are multiplied by the intensity, which clusters volume into
busier and quieter minutes while the 5-minute volume rate stays below about twice its 1-hour
average.
"""

from __future__ import annotations

import math

__all__ = [
    "BASE_PERIOD_S",
    "VOLUME_SIGMA",
    "WALK_OCTAVES",
    "WALK_SIGMA_1M",
    "volume_intensity",
    "walk",
]

BASE_PERIOD_S = 8.0
"""Knot spacing (s) of the shortest random-walk octave."""
WALK_OCTAVES = 12
"""Octaves of the walk: periods 8 s … 8 · 2**11 s (about 4.5 h)."""
WALK_SIGMA_1M = 0.0004
"""Target standard deviation of a 1-minute log return of the walk (4 bps; ETH and SOL scale it
by their ``vol`` factor)."""
VOLUME_SIGMA = 0.35
"""Log-standard deviation ``s`` of the volume intensity."""
_VOLUME_PERIODS = (60.0, 150.0, 420.0)
_M64 = (1 << 64) - 1
_TO_UNIT = 2.0 / float(1 << 53)

# Amplitude per octave ∝ sqrt(period); the common scale makes the 1-minute return's standard
# deviation WALK_SIGMA_1M (measured numerically for this noise: std(walk(t+60) - walk(t)) with
# unit scale is _UNIT_1M).
_UNIT_1M = 1.252
_WALK_TERMS: tuple[tuple[float, float], ...] = tuple(
    (BASE_PERIOD_S * 2**k, math.sqrt(BASE_PERIOD_S * 2**k / 60.0) * WALK_SIGMA_1M / _UNIT_1M)
    for k in range(WALK_OCTAVES)
)
_VOLUME_STD = 0.4288
"""Measured standard deviation of the sum of the volume octaves (normalises it to 1)."""


def _mix(x: int) -> int:
    """64-bit finaliser (murmur3 fmix64)."""
    x = ((x ^ (x >> 33)) * 0xFF51AFD7ED558CCD) & _M64
    x = ((x ^ (x >> 33)) * 0xC4CEB9FE1A85EC53) & _M64
    return x ^ (x >> 33)


def _knot(seed: int, octave: int, n: int) -> float:
    """The hashed value in [-1, 1) of knot ``n`` of ``octave``."""
    h = _mix((n * 0x9E3779B97F4A7C15 + octave * 0xD6E8FEB86659FD93 + seed) & _M64)
    return (h >> 11) * _TO_UNIT - 1.0


def _noise(t: float, period: float, seed: int, octave: int) -> float:
    """Value noise of one octave at ``t``: knots every ``period`` s, smoothstep-interpolated."""
    x = t / period
    n = math.floor(x)
    f = x - n
    f = f * f * (3.0 - 2.0 * f)
    a = _knot(seed, octave, n)
    return a + (_knot(seed, octave, n + 1) - a) * f


def walk(t: float, seed: int, vol: float = 1.0) -> float:
    """The random-walk log-price deviation at epoch second ``t`` (dimensionless, about
    ±3 % at most; ``vol`` scales it).

    Deterministic in ``(t, seed)``; 1-minute increments have a standard deviation of
    ``vol ×`` :data:`WALK_SIGMA_1M`.
    """
    total = 0.0
    for octave, (period, amplitude) in enumerate(_WALK_TERMS):
        total += amplitude * _noise(t, period, seed, octave)
    return total * vol


def volume_intensity(t: float, seed: int) -> float:
    """Multiplier (> 0, mean about 1) of traded volume at epoch second ``t`` for the market
    seeded ``seed``: clustered busier and quieter minutes (see the module docstring)."""
    x = 0.0
    for octave, period in enumerate(_VOLUME_PERIODS):
        x += 0.5 * _noise(t, period, seed ^ 0x5BD1E995, 100 + octave)
    z = x / _VOLUME_STD
    return math.exp(VOLUME_SIGMA * z - VOLUME_SIGMA * VOLUME_SIGMA / 2.0)
