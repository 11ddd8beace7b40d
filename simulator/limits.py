"""Per-IP request accounting and enforcement (``/_control/limits``, ``/_control/consume``).

The whole simulator is one IP: every client on loopback shares the counters, as the exchanges
count per IP, not per connection or key [BN-REST §IP Limits, BY-RL]. Two venues document IP
limits with an enforced answer, and both are simulated:

* **Binance** — ``REQUEST_WEIGHT`` 6000 per 1 MINUTE [BN-ENUM] (UTC minute windows), reported in
  ``X-MBX-USED-WEIGHT-1M`` [BN-REST]. Over the limit: HTTP 429 code -1003 with ``Retry-After`` =
  seconds to the next minute. Continuing while 429 gets the IP auto-banned [BN-REST §HTTP Return
  Codes]: after ``ban_after_429s`` 429s in one minute the next over-limit request is answered
  418 and so is everything for ``ban_seconds`` (default 120 = the documented 2-minute minimum;
  bans "scale from 2 minutes to 3 days" [BN-REST], the simulator does not escalate). Banned
  requests consume no weight; 429-answered ones do (Binance does not document it: UNVERIFIED).
  How many 429s Binance tolerates before banning is not documented (default 10: UNVERIFIED).
* **Bybit** — 600 requests per 5-second window per IP [BY-RL] (fixed windows aligned to epoch
  multiples of 5 s; whether Bybit's window is fixed or rolling is UNVERIFIED). The request that
  exceeds it and everything after it for ``ban_seconds`` (default 600: "wait ≥ 10 minutes"
  [BY-RL]) get HTTP 403 ``access too frequent``. Banned requests are not counted.

A limiter only decides (``admit`` returns ``None`` or ``(status, retry_after_s)``); the exchange
module turns the decision into its own response. ``enabled: false`` (CLI ``--no-limits``) keeps
counting — the usage headers stay truthful — but never answers 429/418/403.

Control API bodies (all fields but ``exchange`` optional; unknown fields → 400):

* ``POST /_control/limits`` ``{"exchange": "binance", "weight_per_minute": 6000,
  "ban_after_429s": 10, "ban_seconds": 120, "enabled": true}`` or ``{"exchange": "bybit",
  "requests_per_5s": 600, "ban_seconds": 600, "enabled": true}``.
* ``POST /_control/consume`` ``{"exchange": "binance", "weight": 5900}`` /
  ``{"exchange": "bybit", "requests": 590}``: usage by another process on the same IP, added to
  the current window. Optional ``hold_s`` (a number of seconds, > 0 and <= 3600): that process
  keeps going for ``hold_s`` seconds — every window that *starts* before ``consume time +
  hold_s`` begins with the same amount already used (holds stack; ``DELETE /_control/limits``
  ends them). With the whole budget (``weight: 6000`` / ``requests: 600``) every request in the
  span is over the limit whatever the window phase: Binance answers 429 -1003 with
  ``Retry-After`` to the next minute (and bans after ``ban_after_429s`` of them), Bybit bans at
  the first request. Without ``hold_s`` the usage lasts only until the window rolls over, so a
  client that calls after the rollover sees nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from simulator.specs import SpecError, check_fields, flag, is_number, number

__all__ = [
    "BinanceWeightLimiter",
    "BybitIpLimiter",
    "Decision",
    "LimitError",
    "LimitRegistry",
    "Limiter",
]

Decision = tuple[int, int] | None
"""``None`` = admitted; else ``(http_status, retry_after_seconds)``."""

_MAX_COUNT = 100_000_000
_MAX_BAN_S = 259_200  # 3 days: Binance's longest ban [BN-REST]
_MAX_HOLD_S = 3600


class LimitError(SpecError):
    """A limits or consume spec is invalid; ``str(err)`` names the field and the bad value."""


def _int(spec: Mapping[str, Any], name: str, lo: int, hi: int, *, required: bool = False) -> Any:
    return number(spec, name, lo, hi, required=required, integer=True, error=LimitError)


def _hold_s(spec: Mapping[str, Any]) -> float:
    """``hold_s`` of a consume body: a number > 0 and <= 3600; 0.0 when absent (no hold)."""
    if "hold_s" not in spec:
        return 0.0
    value = spec["hold_s"]
    if not is_number(value) or not 0 < value <= _MAX_HOLD_S:
        raise LimitError(
            f"hold_s: must be a number of seconds greater than 0 and at most {_MAX_HOLD_S}, "
            f"got {value!r}"
        )
    return float(value)


class Limiter:
    """Base of the per-exchange limiters: configuration with defaults, ``enabled`` flag, ban,
    and the usage of fixed windows of :attr:`WINDOW_S` seconds (aligned to epoch multiples),
    holds included (usage another process keeps spending, see the module docstring).

    Subclasses define :attr:`WINDOW_S`, :attr:`DEFAULTS` (every configurable field but
    ``enabled``), :attr:`RANGES` (``(lo, hi)`` per field) and :attr:`CONSUME_FIELD`, implement
    :meth:`admit`, :attr:`limit` and :meth:`usage_json`, and may extend :meth:`_new_window`.
    """

    exchange: ClassVar[str] = ""
    WINDOW_S: ClassVar[int] = 60
    DEFAULTS: ClassVar[dict[str, int]] = {}
    RANGES: ClassVar[dict[str, tuple[int, int]]] = {}
    CONSUME_FIELD: ClassVar[str] = ""

    def __init__(self, enabled: bool = True) -> None:
        """Start with the documented defaults, no usage and no ban."""
        self._boot_enabled = enabled
        self.enabled = enabled
        self.config: dict[str, int] = dict(self.DEFAULTS)
        self.banned_until = 0.0  # epoch s; 0 = not banned
        self._window = -1  # index of the current window (epoch s // WINDOW_S)
        self._used = 0  # usage counted in it
        self._holds: list[tuple[int, float]] = []  # (amount, until epoch s) per running hold
        self.clear_usage()

    # -- configuration ----------------------------------------------------------------------
    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Check a ``POST /_control/limits`` body for this exchange; return the changes.

        Raises:
            LimitError: unknown field or value out of range (message names both).
        """
        fields = {"exchange", "enabled", *self.DEFAULTS}
        check_fields(
            spec, fields, f"{self.exchange} limits", error=LimitError, shown=fields - {"exchange"}
        )
        changes: dict[str, Any] = {}
        for name, (lo, hi) in self.RANGES.items():
            value = _int(spec, name, lo, hi)
            if value is not None:
                changes[name] = value
        if "enabled" in spec:
            changes["enabled"] = flag(spec, "enabled", True, error=LimitError)
        return changes

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Apply changes from :meth:`validate`. Usage and a running ban are kept (a ban ends
        at once when ``enabled`` becomes false)."""
        for name, value in changes.items():
            if name == "enabled":
                self.enabled = bool(value)
            else:
                self.config[name] = int(value)

    def validate_consume(self, spec: Mapping[str, Any]) -> tuple[int, float]:
        """Check a ``POST /_control/consume`` body; return ``(amount, hold_s)`` (``hold_s``
        0.0 when absent).

        Raises:
            LimitError: missing/unknown field, an amount outside 0–100000000 or a ``hold_s``
                that is not a number > 0 and <= 3600.
        """
        check_fields(
            spec,
            {"exchange", self.CONSUME_FIELD, "hold_s"},
            f"{self.exchange} consume",
            error=LimitError,
            shown=(self.CONSUME_FIELD, "hold_s"),
        )
        amount = int(_int(spec, self.CONSUME_FIELD, 0, _MAX_COUNT, required=True))
        return amount, _hold_s(spec)

    def reset(self) -> None:
        """Back to the boot state: default configuration, boot ``enabled``, no usage, no hold,
        no ban."""
        self.enabled = self._boot_enabled
        self.config = dict(self.DEFAULTS)
        self.banned_until = 0.0
        self.clear_usage()

    def set_boot_enabled(self, enabled: bool) -> None:
        """Change the ``enabled`` value :meth:`reset` restores (CLI ``--no-limits``) and apply
        it now."""
        self._boot_enabled = enabled
        self.enabled = enabled

    # -- usage ------------------------------------------------------------------------------
    def clear_usage(self) -> None:
        """Forget all usage: the current window's and every hold."""
        self._window = -1
        self._used = 0
        self._holds = []
        self._new_window()

    def _new_window(self) -> None:
        """Reset per-window state of the subclass when a window starts. Default: none."""

    def _roll(self, now: float) -> int:
        """Make the window containing ``now`` current and return its index. A new window
        starts with the amounts of the holds still running at its start; ended holds go."""
        window = int(now // self.WINDOW_S)
        if window != self._window:
            start = window * self.WINDOW_S
            self._holds = [hold for hold in self._holds if hold[1] > start]
            self._window = window
            self._used = sum(amount for amount, _ in self._holds)
            self._new_window()
        return window

    def consume(self, amount: int, now: float, hold_s: float = 0.0) -> None:
        """Add ``amount`` of usage from another process on the same IP to the current window.
        With ``hold_s`` > 0 that process keeps going: every window starting before
        ``now + hold_s`` begins with ``amount`` already used."""
        self._roll(now)
        self._used += amount
        if hold_s > 0:
            self._holds.append((amount, now + hold_s))

    def used(self, now: float) -> int:
        """Usage counted in the window containing ``now`` (holds included)."""
        window = int(now // self.WINDOW_S)
        if window == self._window:
            return self._used
        start = window * self.WINDOW_S
        return sum(amount for amount, until in self._holds if until > start)

    def hold_remaining(self, now: float) -> float:
        """Seconds until the last running hold ends (0 when none)."""
        return max((until - now for _, until in self._holds if until > now), default=0.0)

    # -- state ------------------------------------------------------------------------------
    def ban_remaining(self, now: float) -> float:
        """Seconds until the ban ends (0 when not banned or not enforcing)."""
        return max(self.banned_until - now, 0.0) if self.enabled else 0.0

    def to_json(self, now: float) -> dict[str, Any]:
        """``{"enabled", **config, **usage, "hold_remaining_s": s, "banned": bool,
        "banned_until": epoch s | null, "ban_remaining_s": s}``."""
        remaining = self.ban_remaining(now)
        return {
            "enabled": self.enabled,
            **self.config,
            **self.usage_json(now),
            "hold_remaining_s": round(self.hold_remaining(now), 3),
            "banned": remaining > 0,
            "banned_until": round(self.banned_until, 3) if remaining > 0 else None,
            "ban_remaining_s": round(remaining, 3),
        }

    # -- to implement -----------------------------------------------------------------------
    def admit(self, cost: int, now: float) -> Decision:
        """Account one request of ``cost`` at epoch second ``now``; decide its fate."""
        raise NotImplementedError

    @property
    def limit(self) -> int:
        """The configured usage allowed per window."""
        raise NotImplementedError

    def usage_json(self, now: float) -> dict[str, Any]:
        """Current window usage for :meth:`to_json`."""
        raise NotImplementedError


class BinanceWeightLimiter(Limiter):
    """``REQUEST_WEIGHT`` per UTC minute with 429 then 418 (see module docstring)."""

    exchange = "binance"
    WINDOW_S: ClassVar[int] = 60  # REQUEST_WEIGHT interval 1 MINUTE [BN-ENUM]
    DEFAULTS: ClassVar[dict[str, int]] = {
        "weight_per_minute": 6000,  # [BN-ENUM] REQUEST_WEIGHT 1 MINUTE 6000
        "ban_after_429s": 10,  # not documented (UNVERIFIED)
        "ban_seconds": 120,  # "from 2 minutes" [BN-REST]
    }
    RANGES: ClassVar[dict[str, tuple[int, int]]] = {
        "weight_per_minute": (1, _MAX_COUNT),
        "ban_after_429s": (0, 1_000_000),
        "ban_seconds": (1, _MAX_BAN_S),
    }
    CONSUME_FIELD = "weight"

    def _new_window(self) -> None:
        """A new minute: no 429 answered in it yet."""
        self._429s = 0

    def admit(self, cost: int, now: float) -> Decision:
        """Banned → ``(418, seconds left)`` without consuming weight. Else add ``cost``; over
        the limit → ``(429, seconds to the next minute)`` (1–60), or, once ``ban_after_429s``
        429s were answered this minute, start a ban and return ``(418, ban_seconds)``."""
        enabled = self.enabled
        if enabled and self.banned_until > now:
            return 418, math.ceil(self.banned_until - now)
        minute = self._roll(now)
        self._used += cost
        if not enabled or self._used <= self.config["weight_per_minute"]:
            return None
        if self._429s >= self.config["ban_after_429s"]:
            ban = self.config["ban_seconds"]
            self.banned_until = now + ban
            return 418, ban
        self._429s += 1
        return 429, max(math.ceil((minute + 1) * 60 - now), 1)

    @property
    def limit(self) -> int:
        """The configured weight per minute (quoted in the -1003 message)."""
        return self.config["weight_per_minute"]

    def usage_json(self, now: float) -> dict[str, Any]:
        """``used_weight_1m``, ``rate_limited_responses_1m`` (429s this minute) and
        ``window_resets_in_s``."""
        current = int(now // self.WINDOW_S) == self._window
        return {
            "used_weight_1m": self.used(now),
            "rate_limited_responses_1m": self._429s if current else 0,
            "window_resets_in_s": round(60 - now % 60, 3),
        }


class BybitIpLimiter(Limiter):
    """600 requests per 5 s per IP, then HTTP 403 for ``ban_seconds`` (see module docstring)."""

    exchange = "bybit"
    WINDOW_S: ClassVar[int] = 5  # 600 requests per 5-second window per IP [BY-RL]
    DEFAULTS: ClassVar[dict[str, int]] = {
        "requests_per_5s": 600,  # [BY-RL]
        "ban_seconds": 600,  # "wait for at least 10 minutes" [BY-RL]
    }
    RANGES: ClassVar[dict[str, tuple[int, int]]] = {
        "requests_per_5s": (1, _MAX_COUNT),
        "ban_seconds": (1, _MAX_BAN_S),
    }
    CONSUME_FIELD = "requests"

    def admit(self, cost: int, now: float) -> Decision:
        """Banned → ``(403, seconds left)``, not counted. Else count the request; the one
        exceeding ``requests_per_5s`` starts a ban → ``(403, ban_seconds)``."""
        enabled = self.enabled
        if enabled and self.banned_until > now:
            return 403, math.ceil(self.banned_until - now)
        self._roll(now)
        self._used += cost
        if enabled and self._used > self.config["requests_per_5s"]:
            ban = self.config["ban_seconds"]
            self.banned_until = now + ban
            return 403, ban
        return None

    @property
    def limit(self) -> int:
        """The configured requests per 5 s (``X-Bapi-Limit``)."""
        return self.config["requests_per_5s"]

    def window_end_ms(self, now: float) -> int:
        """Epoch ms at which the window containing ``now`` ends."""
        return (int(now // self.WINDOW_S) + 1) * self.WINDOW_S * 1000

    def usage_json(self, now: float) -> dict[str, Any]:
        """``requests_5s`` and ``window_resets_in_s``."""
        return {
            "requests_5s": self.used(now),
            "window_resets_in_s": round(self.WINDOW_S - now % self.WINDOW_S, 3),
        }


class LimitRegistry:
    """The limiters of all exchanges that have one, keyed by exchange name.

    Args:
        limiters: ``{exchange: Limiter}`` (the exchange modules own their limiter).
        exchanges: every exchange name, for error messages about venues without limits.
    """

    def __init__(self, limiters: Mapping[str, Limiter], exchanges: tuple[str, ...] = ()) -> None:
        """Register the limiters."""
        self.limiters = dict(limiters)
        self._exchanges = exchanges

    def _limiter(self, spec: Any, what: str) -> Limiter:
        if not isinstance(spec, dict):
            raise LimitError(f"body: expected a JSON object, got {type(spec).__name__}")
        valid = ", ".join(sorted(self.limiters))
        exchange = spec.get("exchange")
        if "exchange" not in spec:
            raise LimitError(f"exchange: required (one of {valid})")
        limiter = self.limiters.get(exchange) if isinstance(exchange, str) else None
        if limiter is None:
            if exchange in self._exchanges:
                raise LimitError(
                    f"exchange: {exchange!r} has no simulated {what} (expected one of {valid})"
                )
            raise LimitError(f"exchange: unknown exchange {exchange!r} (expected one of {valid})")
        return limiter

    def validate_config(self, spec: Any) -> tuple[Limiter, dict[str, Any]]:
        """Check a ``POST /_control/limits`` body without applying it.

        Raises:
            LimitError: names the field and the value.
        """
        limiter = self._limiter(spec, "request limits")
        return limiter, limiter.validate(spec)

    def configure(self, spec: Any) -> None:
        """Validate and apply a ``POST /_control/limits`` body (partial updates allowed).

        Raises:
            LimitError: see :meth:`validate_config`.
        """
        limiter, changes = self.validate_config(spec)
        limiter.configure(changes)

    def validate_consume(self, spec: Any) -> tuple[Limiter, int, float]:
        """Check a ``POST /_control/consume`` body without applying it; return the limiter,
        the amount and ``hold_s`` (0.0 = no hold).

        Raises:
            LimitError: names the field and the value.
        """
        limiter = self._limiter(spec, "request limits to consume")
        return (limiter, *limiter.validate_consume(spec))

    def consume(self, spec: Any, now: float) -> None:
        """Validate and apply a ``POST /_control/consume`` body at epoch second ``now``.

        Raises:
            LimitError: see :meth:`validate_consume`.
        """
        limiter, amount, hold_s = self.validate_consume(spec)
        limiter.consume(amount, now, hold_s)

    def reset(self) -> None:
        """``DELETE /_control/limits``: every limiter back to its boot state."""
        for limiter in self.limiters.values():
            limiter.reset()

    def set_enabled(self, enabled: bool) -> None:
        """Boot-time switch for all limiters (CLI ``--no-limits``)."""
        for limiter in self.limiters.values():
            limiter.set_boot_enabled(enabled)

    def to_json(self, now: float) -> dict[str, Any]:
        """``{exchange: Limiter.to_json(now)}``."""
        return {name: lim.to_json(now) for name, lim in sorted(self.limiters.items())}
