"""Durations in words for people: ``"4 min 12 s"`` (notifications) or ``"4m 12s"`` (compact)."""

from __future__ import annotations

import math


def split_seconds(seconds: float) -> tuple[int, int, int, int]:
    """Round ``seconds`` to whole seconds (negatives count as 0) and split it into
    ``(days, hours, minutes, seconds)``."""
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return days, hours, minutes, secs


def format_duration(seconds: float) -> str:
    """The two largest units in words: ``"4 min 12 s"``, ``"2 h 5 min"``, ``"3 d 1 h"``,
    ``"45 s"``; ``"under 1 s"`` below one second (and for NaN or negatives), ``"unknown"`` for
    infinity. Used in notifications."""
    if math.isnan(seconds) or seconds < 1:
        return "under 1 s"
    if math.isinf(seconds):
        return "unknown"
    days, hours, minutes, secs = split_seconds(int(seconds + 0.5))
    for big, big_unit, small, small_unit in (
        (days, "d", hours, "h"),
        (hours, "h", minutes, "min"),
        (minutes, "min", secs, "s"),
    ):
        if big:
            return f"{big} {big_unit} {small} {small_unit}" if small else f"{big} {big_unit}"
    return f"{secs} s"


def format_duration_compact(seconds: float) -> str:
    """``3725`` → ``"1h 2m 5s"``: whole seconds, largest units first, zero units left out
    (``"0s"`` for nothing). Used in log lines and the dead man's switch."""
    days, hours, minutes, secs = split_seconds(seconds)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts)
