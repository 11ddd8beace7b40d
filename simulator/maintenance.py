"""Scheduled maintenance windows (``/_control/maintenance``), published through each exchange's
own status channel.

``POST /_control/maintenance {"exchange", "starts_at", "ends_at"}`` (Unix seconds) announces one
window per exchange (a new one replaces it); ``GET`` lists them with their state, ``DELETE``
clears them (all, or ``{"exchange"}``). A window is ``scheduled`` before ``starts_at``,
``ongoing`` in ``[starts_at, ends_at)`` and ``completed`` after. What each exchange shows:

* OKX ``/api/v5/system/status``: a record with ``state`` ``scheduled`` before the window,
  ``ongoing`` inside, ``begin``/``end`` ms strings [OKX-STATUS];
* Bybit ``/v5/system/status``: a ``result.list`` item ``scheduled`` / ``ongoing`` /
  ``completed`` [BY-STATUS];
* Kraken ``/0/public/SystemStatus``: the window in ``upcoming_maintenance`` while it starts
  within 72 h, ``status: "maintenance"`` inside (events leave ``upcoming_maintenance`` once their
  window starts) [KR-STATUS];
* Binance: nothing before (no documented announcement channel), ``status: 1`` inside.

Inside the window every exchange answers as under the ``maintenance`` fault (the server uses
:meth:`MaintenanceSchedule.fault_for` as the effective fault when no REST fault is set: an
explicit REST fault wins, as faults never stack). Coinbase Exchange has no status API: a window
for it is refused, as the ``maintenance`` fault is.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from simulator.faults import Fault
from simulator.specs import SpecError, check_fields, number

__all__ = ["KRAKEN_NOTICE_S", "MAX_WINDOW_S", "MaintenanceSchedule", "Window"]

MAX_WINDOW_S = 7 * 86_400
"""Longest window (seconds)."""
KRAKEN_NOTICE_S = 72 * 3600
"""Kraken lists scheduled events within 72 hours in ``upcoming_maintenance`` [KR-STATUS]."""
_MAX_EPOCH_S = 4_102_444_800  # 2100-01-01


@dataclass(frozen=True, slots=True)
class Window:
    """One announced maintenance window of one exchange (epoch seconds)."""

    exchange: str
    starts_at: float
    ends_at: float

    def state(self, now: float) -> str:
        """``"scheduled"``, ``"ongoing"`` or ``"completed"`` at epoch second ``now``."""
        if now < self.starts_at:
            return "scheduled"
        return "ongoing" if now < self.ends_at else "completed"

    def to_json(self, now: float) -> dict[str, Any]:
        """``{"exchange", "starts_at", "ends_at", "state"}``."""
        return {
            "exchange": self.exchange,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "state": self.state(now),
        }


class MaintenanceSchedule:
    """The announced windows, at most one per exchange (event-loop thread only).

    Args:
        exchanges: every exchange name; ``status_capable``: those with a system-status API.
    """

    def __init__(self, exchanges: Collection[str], status_capable: Collection[str]) -> None:
        """An empty schedule."""
        self._exchanges = frozenset(exchanges)
        self._capable = frozenset(status_capable)
        self._windows: dict[str, Window] = {}
        self._faults: dict[str, Fault] = {}

    def set(self, spec: Any) -> Window:
        """Validate ``{"exchange", "starts_at", "ends_at"}`` and announce the window.

        Raises:
            SpecError: names the field and the value (unknown exchange, Coinbase, bad times,
                ``ends_at`` not after ``starts_at``, longer than 7 days).
        """
        if not isinstance(spec, dict):
            raise SpecError(f"body: expected a JSON object, got {type(spec).__name__}")
        check_fields(spec, ("exchange", "starts_at", "ends_at"), "maintenance")
        exchange = self._exchange(spec, required=True)
        starts = number(spec, "starts_at", 0, _MAX_EPOCH_S, required=True)
        ends = number(spec, "ends_at", 0, _MAX_EPOCH_S, required=True)
        if ends <= starts:
            raise SpecError(f"ends_at: must be after starts_at ({starts!r}), got {ends!r}")
        if ends - starts > MAX_WINDOW_S:
            raise SpecError(
                f"ends_at: a window lasts at most {MAX_WINDOW_S} s (7 days), got "
                f"{ends - starts:g} s"
            )
        window = Window(exchange, float(starts), float(ends))
        self._windows[exchange] = window
        self._faults[exchange] = Fault(
            exchange=exchange,
            endpoint=None,
            kind="maintenance",
            created_at=window.starts_at,
            duration_s=window.ends_at - window.starts_at,
        )
        return window

    def clear(self, spec: Any = None) -> None:
        """Remove every window, or ``{"exchange"}``'s.

        Raises:
            SpecError: bad body or unknown exchange.
        """
        if spec is None:
            self._windows.clear()
            self._faults.clear()
            return
        if not isinstance(spec, dict):
            raise SpecError(f"body: expected a JSON object, got {type(spec).__name__}")
        check_fields(spec, ("exchange",), "maintenance clear")
        exchange = self._exchange(spec, required=True)
        self._windows.pop(exchange, None)
        self._faults.pop(exchange, None)

    def _exchange(self, spec: dict[str, Any], required: bool) -> str:
        exchange = spec.get("exchange")
        valid = ", ".join(sorted(self._exchanges))
        if exchange not in self._exchanges:
            if "exchange" not in spec:
                raise SpecError(f"exchange: required (one of {valid})")
            raise SpecError(f"exchange: unknown exchange {exchange!r} (expected one of {valid})")
        if exchange not in self._capable:
            raise SpecError(
                f"exchange: {exchange!r} has no system-status API to announce maintenance on "
                "(Coinbase Exchange publishes status only on its status page)"
            )
        return str(exchange)

    def window(self, exchange: str) -> Window | None:
        """The window announced for ``exchange`` (any state), or None."""
        return self._windows.get(exchange) if self._windows else None

    def fault_for(self, exchange: str, now: float) -> Fault | None:
        """A ``maintenance`` :class:`~simulator.faults.Fault` (``created_at`` = the start,
        ``duration_s`` = the length) while ``exchange``'s window is ongoing at ``now``, else
        None: what the exchange answers inside the window."""
        if not self._windows:
            return None
        window = self._windows.get(exchange)
        if window is None or not window.starts_at <= now < window.ends_at:
            return None
        return self._faults[exchange]

    def to_json(self, now: float) -> list[dict[str, Any]]:
        """Every window (:meth:`Window.to_json`), by exchange."""
        return [self._windows[name].to_json(now) for name in sorted(self._windows)]
