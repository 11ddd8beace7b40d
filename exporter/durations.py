"""Prometheus-style duration strings ("500ms", "5s", "1m30s") to seconds."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: str | int | float) -> float:
    """Parse a duration into seconds.

    Accepts a number (seconds) or a Prometheus-style string made of one or more
    ``<number><unit>`` parts with units ``ms, s, m, h, d`` (e.g. ``"1m30s"``,
    ``"250ms"``), as in Prometheus' configuration format.

    Returns:
        The duration in seconds (float, > 0 is not enforced here).

    Raises:
        ValueError: the value is not a number or a well-formed duration string.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '5s', got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"expected a duration such as '500ms', '5s' or '1m', got {value!r}")
    return total
