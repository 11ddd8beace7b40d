"""Fault registry and validation for the control API (``POST /_control/faults``).

A fault is scoped to an exchange, optionally narrowed to one endpoint name (``ping``, ``time``,
``status``, ``ticker``, ``orderbook``). At most one fault exists per scope: setting a new one
replaces the old one. For a request to ``(exchange, endpoint)`` the *effective* fault is the
endpoint-scoped one if present, else the exchange-wide one (endpoint ``None``) — faults never
stack. Faults with ``duration_s`` expire by themselves (checked lazily on lookup).

Fault kinds and their parameters (all numbers may be int or float unless stated; booleans are
rejected as numbers):

=============== =====================================================================
fault           parameters
=============== =====================================================================
``down``        ``mode``: ``"reset"`` (default, TCP RST after reading the request) or
                ``"hang"`` (never answer)
``latency``     ``latency_ms`` (required, 0–600000), ``jitter_ms`` (0–600000, default 0,
                uniform ±, the total delay is clamped at 0)
``http_error``  ``status`` (required int 400–599), ``body``: ``"json"`` (the exchange's
                error JSON) or ``"html"`` (CDN gateway page); default ``"html"`` for
                502/503/504/52x (except OKX 503, documented as JSON code 50001) and for
                every Kraken status, else ``"json"``
``rate_limited`` ``retry_after`` (int s, 0–259200, default 30; Binance only, the only venue
                documenting ``Retry-After`` [BN-REST])
``banned``      Binance only; ``retry_after`` (int s, 0–259200, default 120)
``maintenance`` none; exchange-wide or ``endpoint: "status"`` only; not for Coinbase
``clock_skew``  ``skew_ms`` (required, signed, |x| <= 86400000)
``stale``       ``age_s`` (required, 0–86400)
``none``        none; clears the exchange's faults (all scopes) or one endpoint's fault
=============== =====================================================================

Common fields: ``exchange`` (required), ``fault`` (required), ``endpoint`` (optional string or
null), ``duration_s`` (optional, > 0 and <= 86400; not allowed with ``none``). Unknown fields are
rejected so typos (``latency`` instead of ``latency_ms``) do not silently do nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultError",
    "FaultRegistry",
]

FAULT_KINDS: tuple[str, ...] = (
    "down",
    "latency",
    "http_error",
    "rate_limited",
    "banned",
    "maintenance",
    "clock_skew",
    "stale",
    "none",
)

_MAX_RETRY_AFTER_S = 259_200  # bans scale "from 2 minutes to 3 days" [BN-REST]
_MAX_LATENCY_MS = 600_000
_MAX_SKEW_MS = 86_400_000
_MAX_AGE_S = 86_400
_MAX_DURATION_S = 86_400
_GATEWAY_STATUSES = frozenset({502, 503, 504, *range(520, 531)})


class FaultError(ValueError):
    """A fault specification is invalid. ``str(err)`` names the field and the bad value, e.g.
    ``"latency_ms: must be a number >= 0, got -5"``."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One active fault.

    Attributes:
        exchange: exchange name.
        endpoint: endpoint name, or ``None`` for exchange-wide.
        kind: one of :data:`FAULT_KINDS` except ``"none"``.
        params: normalised parameters with defaults filled in (see module docstring).
        created_at: wall-clock epoch seconds when the fault was set.
        duration_s: requested lifetime in seconds, or ``None`` for until cleared.
        expires_at: :func:`time.monotonic` deadline, or ``None``.
    """

    exchange: str
    endpoint: str | None
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    duration_s: float | None = None
    expires_at: float | None = None

    def delay_s(self) -> float:
        """For a ``latency`` fault: the delay for one request in seconds (jitter applied)."""
        jitter = self.params.get("jitter_ms", 0)
        ms = self.params["latency_ms"] + (random.uniform(-jitter, jitter) if jitter else 0.0)
        return max(ms, 0.0) / 1000.0

    def to_json(self, now_monotonic: float | None = None) -> dict[str, Any]:
        """JSON form: ``{"exchange", "endpoint", "fault", **params, "duration_s"?,
        "remaining_s"?}`` (``remaining_s`` only for expiring faults)."""
        out: dict[str, Any] = {"exchange": self.exchange, "endpoint": self.endpoint}
        out["fault"] = self.kind
        out.update(self.params)
        if self.duration_s is not None and self.expires_at is not None:
            now = time.monotonic() if now_monotonic is None else now_monotonic
            out["duration_s"] = self.duration_s
            out["remaining_s"] = round(max(self.expires_at - now, 0.0), 3)
        return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _number(
    spec: Mapping[str, Any],
    name: str,
    lo: float,
    hi: float,
    *,
    required: bool,
    default: float | None = None,
    integer: bool = False,
) -> float | None:
    """Read ``spec[name]`` as a number in ``[lo, hi]``; raise :class:`FaultError` otherwise."""
    if name not in spec:
        if required:
            raise FaultError(f"{name}: required for fault {spec.get('fault')!r}")
        return default
    value = spec[name]
    kind = "an integer" if integer else "a number"
    if not _is_number(value) or (integer and not float(value).is_integer()):
        raise FaultError(f"{name}: must be {kind}, got {value!r}")
    if not lo <= value <= hi:
        raise FaultError(f"{name}: must be {kind} between {lo:g} and {hi:g}, got {value!r}")
    return int(value) if integer else value


def _choice(spec: Mapping[str, Any], name: str, allowed: Collection[str], default: str) -> str:
    value = spec.get(name, default)
    if not isinstance(value, str) or value not in allowed:
        raise FaultError(f"{name}: must be one of {', '.join(sorted(allowed))}, got {value!r}")
    return value


class FaultRegistry:
    """Active faults keyed by ``(exchange, endpoint-or-None)``.

    Args:
        endpoints: for each exchange name, the endpoint names it has (from its route table).
        ban_capable: exchanges that support the ``banned`` fault (Binance: HTTP 418 [BN-REST]).
        status_capable: exchanges with a system-status API (all but Coinbase Exchange).
        retry_after_capable: exchanges that send ``Retry-After`` on rate limiting.
        json_statuses: per exchange, gateway statuses (502/503/504/52x) for which the exchange
            documents its own JSON error, so ``http_error`` defaults to ``body: "json"`` (OKX 503
            code 50001 [OKX-ERR]).
        html_errors: exchanges whose every non-200 answer comes from the CDN, so ``http_error``
            defaults to ``body: "html"`` for all statuses (Kraken [KR-REST-INTRO]).
    """

    def __init__(
        self,
        endpoints: Mapping[str, Collection[str]],
        *,
        ban_capable: Collection[str] = ("binance",),
        status_capable: Collection[str] | None = None,
        retry_after_capable: Collection[str] = ("binance",),
        json_statuses: Mapping[str, Collection[int]] | None = None,
        html_errors: Collection[str] = ("kraken",),
    ) -> None:
        """Create an empty registry for the given exchanges (see class docstring)."""
        self._json_statuses = {ex: frozenset(v) for ex, v in (json_statuses or {}).items()}
        self._html_errors = frozenset(html_errors)
        self._endpoints = {ex: frozenset(eps) for ex, eps in endpoints.items()}
        self._ban_capable = frozenset(ban_capable)
        self._status_capable = frozenset(
            status_capable
            if status_capable is not None
            else [ex for ex, eps in self._endpoints.items() if "status" in eps]
        )
        self._retry_after_capable = frozenset(retry_after_capable)
        self._faults: dict[tuple[str, str | None], Fault] = {}

    # -- hot path ---------------------------------------------------------------------------
    def effective(self, exchange: str, endpoint: str | None) -> Fault | None:
        """The fault applying to a request for ``(exchange, endpoint)``, or ``None``.

        Endpoint-scoped faults override exchange-wide ones; ``endpoint=None`` (unknown path)
        sees only the exchange-wide fault. Expired faults are dropped here.
        """
        faults = self._faults
        if not faults:
            return None
        fault = faults.get((exchange, endpoint)) if endpoint is not None else None
        if fault is None:
            fault = faults.get((exchange, None))
            if fault is None:
                return None
        if fault.expires_at is not None and time.monotonic() >= fault.expires_at:
            self._purge_expired()
            return self.effective(exchange, endpoint)
        return fault

    # -- control API ------------------------------------------------------------------------
    def apply(self, spec: Any) -> Fault | None:
        """Validate ``spec`` (decoded JSON) and set or clear a fault.

        Returns:
            The new :class:`Fault`, or ``None`` for ``fault: "none"``.

        Raises:
            FaultError: any invalid field; the message names the field and the value.
        """
        fault = self.validate(spec)
        if fault.kind == "none":
            self.clear(fault.exchange, fault.endpoint)
            return None
        self._faults[(fault.exchange, fault.endpoint)] = fault
        return fault

    def validate(self, spec: Any) -> Fault:
        """Check ``spec`` and return the normalised :class:`Fault` without storing it.

        Raises:
            FaultError: see :meth:`apply`.
        """
        if not isinstance(spec, dict):
            raise FaultError(f"body: expected a JSON object, got {type(spec).__name__}")
        exchange = spec.get("exchange")
        if not isinstance(exchange, str) or exchange not in self._endpoints:
            valid = ", ".join(sorted(self._endpoints))
            if "exchange" not in spec:
                raise FaultError(f"exchange: required (one of {valid})")
            raise FaultError(f"exchange: unknown exchange {exchange!r} (expected one of {valid})")
        kind = spec.get("fault")
        if not isinstance(kind, str) or kind not in FAULT_KINDS:
            if "fault" not in spec:
                raise FaultError(f"fault: required (one of {', '.join(FAULT_KINDS)})")
            raise FaultError(
                f"fault: unknown fault {kind!r} (expected one of {', '.join(FAULT_KINDS)})"
            )
        endpoint = spec.get("endpoint")
        if endpoint is not None and (
            not isinstance(endpoint, str) or endpoint not in self._endpoints[exchange]
        ):
            valid = ", ".join(sorted(self._endpoints[exchange]))
            raise FaultError(
                f"endpoint: {endpoint!r} is not an endpoint of {exchange} (expected one of "
                f"{valid}, or null for all)"
            )
        allowed = {"exchange", "fault", "endpoint", "duration_s", *_PARAM_NAMES[kind]}
        for name in spec:
            if name not in allowed:
                extra = ", ".join(sorted(_PARAM_NAMES[kind])) or "none"
                raise FaultError(
                    f"{name}: unexpected field for fault {kind!r} (its parameters: {extra})"
                )
        params = self._params(spec, exchange, kind, endpoint)
        duration = None
        if kind != "none":
            duration = _number(spec, "duration_s", 0.001, _MAX_DURATION_S, required=False)
        elif "duration_s" in spec:
            raise FaultError("duration_s: not allowed with fault 'none'")
        now = time.monotonic()
        return Fault(
            exchange=exchange,
            endpoint=endpoint,
            kind=kind,
            params=params,
            created_at=time.time(),
            duration_s=duration,
            expires_at=None if duration is None else now + duration,
        )

    def _params(
        self, spec: Mapping[str, Any], exchange: str, kind: str, endpoint: str | None
    ) -> dict[str, Any]:
        """Validate and normalise the kind-specific parameters."""
        if kind == "down":
            return {"mode": _choice(spec, "mode", ("reset", "hang"), "reset")}
        if kind == "latency":
            return {
                "latency_ms": _number(spec, "latency_ms", 0, _MAX_LATENCY_MS, required=True),
                "jitter_ms": _number(
                    spec, "jitter_ms", 0, _MAX_LATENCY_MS, required=False, default=0
                ),
            }
        if kind == "http_error":
            status = int(_number(spec, "status", 400, 599, required=True, integer=True) or 0)
            gateway = status in _GATEWAY_STATUSES or exchange in self._html_errors
            json_doc = status in self._json_statuses.get(exchange, ())
            default = "html" if gateway and not json_doc else "json"
            return {"status": status, "body": _choice(spec, "body", ("json", "html"), default)}
        if kind == "rate_limited":
            if exchange not in self._retry_after_capable:
                if "retry_after" in spec:
                    raise FaultError(
                        f"retry_after: {exchange} documents no Retry-After header; only "
                        f"{', '.join(sorted(self._retry_after_capable))} accept it"
                    )
                return {}
            return {
                "retry_after": _number(
                    spec,
                    "retry_after",
                    0,
                    _MAX_RETRY_AFTER_S,
                    required=False,
                    default=30,
                    integer=True,
                )
            }
        if kind == "banned":
            if exchange not in self._ban_capable:
                raise FaultError(
                    f"fault: 'banned' (HTTP 418 IP ban) is only supported for "
                    f"{', '.join(sorted(self._ban_capable))}, not {exchange!r}"
                )
            return {
                "retry_after": _number(
                    spec,
                    "retry_after",
                    0,
                    _MAX_RETRY_AFTER_S,
                    required=False,
                    default=120,
                    integer=True,
                )
            }
        if kind == "maintenance":
            if exchange not in self._status_capable:
                raise FaultError(
                    f"fault: 'maintenance' needs a system-status API and {exchange!r} has "
                    "none (Coinbase Exchange publishes status only on its status page)"
                )
            if endpoint not in (None, "status"):
                raise FaultError(
                    f"endpoint: maintenance is exchange-wide (use null or 'status'), "
                    f"got {endpoint!r}"
                )
            return {}
        if kind == "clock_skew":
            return {"skew_ms": _number(spec, "skew_ms", -_MAX_SKEW_MS, _MAX_SKEW_MS, required=True)}
        if kind == "stale":
            return {"age_s": _number(spec, "age_s", 0, _MAX_AGE_S, required=True)}
        return {}  # "none"

    def clear(self, exchange: str | None = None, endpoint: str | None = None) -> None:
        """Remove faults: all (``exchange=None``), all of one exchange (``endpoint=None``), or
        the one scoped to ``(exchange, endpoint)``."""
        if exchange is None:
            self._faults.clear()
        elif endpoint is None:
            for key in [k for k in self._faults if k[0] == exchange]:
                del self._faults[key]
        else:
            self._faults.pop((exchange, endpoint), None)

    def active(self) -> list[Fault]:
        """All unexpired faults, sorted by exchange then endpoint (exchange-wide first)."""
        self._purge_expired()
        return sorted(self._faults.values(), key=lambda f: (f.exchange, f.endpoint or ""))

    def to_json(self) -> list[dict[str, Any]]:
        """:meth:`active` rendered with :meth:`Fault.to_json`."""
        now = time.monotonic()
        return [f.to_json(now) for f in self.active()]

    def _purge_expired(self) -> None:
        now = time.monotonic()
        for key, fault in list(self._faults.items()):
            if fault.expires_at is not None and now >= fault.expires_at:
                del self._faults[key]


_PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "down": ("mode",),
    "latency": ("latency_ms", "jitter_ms"),
    "http_error": ("status", "body"),
    "rate_limited": ("retry_after",),
    "banned": ("retry_after",),
    "maintenance": (),
    "clock_skew": ("skew_ms",),
    "stale": ("age_s",),
    "none": (),
}
