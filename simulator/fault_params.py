"""Parameter validation of the fault kinds that need more than a line (WebSocket, ``stale`` and
the market-model faults), and :class:`FaultError`. Used by :mod:`simulator.faults`, which
re-exports :class:`FaultError`; every error names the field and the bad value."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from simulator.specs import SpecError, choice, number

__all__ = [
    "MAX_BPS",
    "MAX_VOLUME_RATIO",
    "FaultError",
    "fault_number",
    "market_params",
    "stale_params",
    "ws_params",
]

MAX_BPS = 10_000
"""Largest |bps| of ``price_offset`` / ``price_spike`` (−10000 would make prices 0, so the
lower bound is exclusive)."""
MAX_VOLUME_RATIO = 1000
"""Largest ``volume_spike`` ``ratio``."""
_MAX_AGE_S = 86_400
_MAX_LATENCY_MS = 600_000
_MAX_DURATION_S = 86_400
_WS_CHANNEL_KINDS = frozenset({"ws_stall", "ws_lag", "ws_gap", "ws_reject"})
_SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1014), *range(3000, 5000)})
"""Close codes a close frame may carry: the defined ones except 1004–1006/1015 (reserved, never
on the wire [RFC 6455 §7.4.1]) plus the registered (3000–3999) and private (4000–4999) ranges;
1014–2999 are refused by clients as unknown reserved codes."""


class FaultError(SpecError):
    """A fault specification is invalid. ``str(err)`` names the field and the bad value, e.g.
    ``"latency_ms: must be a number >= 0, got -5"``."""


def fault_number(spec: Mapping[str, Any], name: str, lo: float, hi: float, **kw: Any) -> Any:
    """:func:`simulator.specs.number` raising :class:`FaultError` ("required for fault ...")."""
    msg = f"required for fault {spec.get('fault')!r}"
    return number(spec, name, lo, hi, error=FaultError, required_msg=msg, **kw)


def ws_params(
    spec: Mapping[str, Any],
    exchange: str,
    kind: str,
    checksum_exchanges: Collection[str],
    channels: Collection[str],
) -> dict[str, Any]:
    """Validate the parameters of a WebSocket fault (see :mod:`simulator.faults`)."""
    params: dict[str, Any] = {}
    if kind == "ws_checksum" and exchange not in checksum_exchanges:
        raise FaultError(
            f"fault: 'ws_checksum' needs a book checksum and {exchange}'s WebSocket books have "
            f"none (supported: {', '.join(sorted(checksum_exchanges))})"
        )
    if kind == "ws_disconnect" and "close_code" in spec:
        code = fault_number(spec, "close_code", 1000, 4999, required=True, integer=True)
        if code not in _SENDABLE_CLOSE_CODES:
            raise FaultError(
                "close_code: must be 1000–1003, 1007–1013 or 3000–4999 (other codes cannot be "
                "sent in a close frame; omit close_code to drop the TCP connection, which "
                f"clients report as 1006), got {spec['close_code']!r}"
            )
        params["close_code"] = code
    if kind == "ws_disconnect" and "once" in spec:
        once = spec["once"]
        if not isinstance(once, bool):
            raise FaultError(f"once: expected true or false, got {once!r}")
        params["once"] = once
    if kind == "ws_lag":
        params["lag_ms"] = fault_number(spec, "lag_ms", 0, _MAX_LATENCY_MS, required=True)
    if kind in _WS_CHANNEL_KINDS and "channel" in spec:
        params["channel"] = choice(spec, "channel", tuple(channels), None, error=FaultError)
    return params


def stale_params(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``stale``: exactly one of ``age_s`` / ``age_ms``. ``age_ms`` is kept as given and also
    converted to ``age_s`` (what the handlers read)."""
    if "age_ms" in spec:
        if "age_s" in spec:
            raise FaultError(
                f"age_ms: give either age_s or age_ms, not both, got {spec['age_ms']!r}"
            )
        age_ms = fault_number(spec, "age_ms", 0, _MAX_AGE_S * 1000, required=True)
        return {"age_ms": age_ms, "age_s": age_ms / 1000.0}
    msg = "required for fault 'stale' (or give age_ms)"
    return {
        "age_s": number(
            spec, "age_s", 0, _MAX_AGE_S, required=True, error=FaultError, required_msg=msg
        )
    }


def _bps(spec: Mapping[str, Any]) -> Any:
    bps = fault_number(spec, "bps", -MAX_BPS, MAX_BPS, required=True)
    if bps <= -MAX_BPS:
        raise FaultError(
            f"bps: must be greater than -{MAX_BPS} (a price cannot fall to 0 or below), "
            f"got {spec['bps']!r}"
        )
    return bps


def market_params(spec: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """Validate a market-model fault (see :mod:`simulator.market_effects`):

    * ``price_offset``: ``bps`` (required, signed, −10000 < bps ≤ 10000), ``ramp_s``
      (optional, 0–86400, default 0: the offset moves linearly over that many seconds from the
      one shown when it is set, so a later ``bps: 0`` with a ramp winds it down without a jump);
    * ``price_spike``: ``bps`` (same bounds) and ``duration_s`` (required here, > 0 and ≤
      86400: the spike decays back to 0 within it, and the fault ends then);
    * ``volume_spike``: ``ratio`` (required, > 0 and ≤ 1000);
    * ``price_freeze``, ``book_crossed``: no parameters.

    Raises:
        FaultError: names the field and the value.
    """
    if kind == "price_offset":
        params: dict[str, Any] = {"bps": _bps(spec)}
        ramp = fault_number(spec, "ramp_s", 0, _MAX_DURATION_S, required=False, default=0)
        if ramp:
            params["ramp_s"] = ramp
        return params
    if kind == "price_spike":
        bps = _bps(spec)
        if "duration_s" not in spec:
            raise FaultError(
                "duration_s: required for fault 'price_spike' (the spike decays back within it)"
            )
        return {"bps": bps}
    if kind == "volume_spike":
        ratio = fault_number(spec, "ratio", 0, MAX_VOLUME_RATIO, required=True)
        if ratio <= 0:
            raise FaultError(f"ratio: must be greater than 0, got {spec['ratio']!r}")
        return {"ratio": ratio}
    return {}
