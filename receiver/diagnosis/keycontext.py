"""The API key's state for the context of an API-key alert (one with a ``key`` label).

Instant queries at the end of the context window, for the alert's ``exchange`` and ``key``
labels (``{sel}``) over the window (``{w}``, e.g. ``2700s``), read from the exporter's series
(exporter/keys/metrics.py):

* ``exchange_api_key_up`` now and its maximum over the window (was the key accepted earlier?);
* ``increase(exchange_api_key_checks_total[w])`` by ``result`` (``ok`` and every failure);
* ``exchange_api_key_ip_restricted`` now, its minimum and maximum (did the IP binding change?);
* ``exchange_api_key_permission`` by ``permission`` now;
* ``exchange_api_key_expiry_timestamp_seconds`` now.

The clock skew of the exchange (``exchange_clock_skew_seconds``) is already a range series of the
context (:mod:`receiver.diagnosis.context`). None of these series holds a secret: the ``key``
label is the key's configured name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from receiver.diagnosis.schema import KeyState
from receiver.diagnosis.stats import fmt_count
from receiver.text import cap

#: Query name → PromQL template (``{sel}`` label matchers, ``{w}`` the window).
KEY_QUERIES: dict[str, str] = {
    "key_up": "max(exchange_api_key_up{{{sel}}})",
    "key_up_max": "max(max_over_time(exchange_api_key_up{{{sel}}}[{w}]))",
    "key_checks": ("sum by (result) (increase(exchange_api_key_checks_total{{{sel}}}[{w}])) > 0"),
    "key_ip": "max(exchange_api_key_ip_restricted{{{sel}}})",
    "key_ip_min": "min(min_over_time(exchange_api_key_ip_restricted{{{sel}}}[{w}]))",
    "key_ip_max": "max(max_over_time(exchange_api_key_ip_restricted{{{sel}}}[{w}]))",
    "key_permission": "max by (permission) (exchange_api_key_permission{{{sel}}})",
    "key_expiry": "max(exchange_api_key_expiry_timestamp_seconds{{{sel}}})",
}

#: Checks results in display order (as the exporter classifies them).
_RESULT_ORDER = (
    "ok",
    "invalid_key",
    "invalid_signature",
    "timestamp",
    "ip_not_allowed",
    "expired",
    "permission_denied",
    "rate_limited",
    "other",
)
_PERMISSION_ORDER = ("read", "trade", "withdraw", "transfer")
KEY_TEXT_LIMIT = 300

Rows = list[tuple[dict[str, str], float]]


def _first(rows: Rows) -> float | None:
    return rows[0][1] if rows else None


def key_state(
    name: str,
    results: dict[str, Any],
    parse: Callable[[Any], Rows],
    now: float,
) -> KeyState | None:
    """Build the :class:`KeyState` from the answers of :data:`KEY_QUERIES`.

    Args:
        name: the ``key`` label, already cleaned and capped.
        results: query name → the ``data`` block Prometheus answered (missing: failed).
        parse: the context's vector parser (caps series, drops non-finite values).
        now: Unix seconds at the end of the window (for the expiry countdown).

    Returns:
        ``None`` when none of the key's queries answered with data.
    """
    rows = {q: parse(results.get(q)) for q in KEY_QUERIES if q in results}
    if not any(rows.values()):
        return None
    checks = {
        labels.get("result", ""): round(value, 1)
        for labels, value in rows.get("key_checks", [])
        if labels.get("result") and value >= 0.5
    }
    permissions = {
        labels["permission"]: value
        for labels, value in rows.get("key_permission", [])
        if labels.get("permission")
    }
    state = KeyState(
        name=name,
        up=_first(rows.get("key_up", [])),
        up_max=_first(rows.get("key_up_max", [])),
        checks=checks,
        ip_restricted=_first(rows.get("key_ip", [])),
        ip_restricted_min=_first(rows.get("key_ip_min", [])),
        ip_restricted_max=_first(rows.get("key_ip_max", [])),
        permissions=permissions,
        expiry=_first(rows.get("key_expiry", [])),
    )
    return state.model_copy(update={"text": render_key_state(state, now)})


def expiry_text(expiry: float, now: float) -> str:
    """``in 6.5 d (2026-12-12 08:00 UTC)`` or ``passed 2.0 d ago (…)``."""
    try:
        when = datetime.fromtimestamp(expiry, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        when = "an invalid date"
    days = (expiry - now) / 86400.0
    if days >= 0:
        return f"in {days:.1f} d ({when})"
    return f"passed {-days:.1f} d ago ({when})"


def _state_word(state: KeyState) -> str:
    if state.up is None:
        return "not checked yet"
    if state.up >= 1:
        return "accepted now"
    return "rejected now" + (" (accepted earlier in the window)" if state.ok_before else "")


def render_key_state(state: KeyState, now: float) -> str:
    """One line for the context fields, e.g. ``monitor: rejected now (accepted earlier in the
    window); checks ok ×20, invalid_key ×5; IP-bound yes (unchanged); permissions read; expires in
    6.5 d (…)``; at most :data:`KEY_TEXT_LIMIT` characters."""
    parts = [f"{state.name}: {_state_word(state)}"]
    if state.checks:
        ordered = sorted(
            state.checks.items(),
            key=lambda kv: (
                _RESULT_ORDER.index(kv[0]) if kv[0] in _RESULT_ORDER else len(_RESULT_ORDER),
                kv[0],
            ),
        )
        parts.append("checks " + ", ".join(f"{r} ×{fmt_count(n)}" for r, n in ordered[:6]))
    if state.ip_restricted is not None:
        bound = "yes" if state.ip_restricted >= 1 else "no"
        change = " (changed in the window)" if state.ip_binding_changed else " (unchanged)"
        parts.append(f"IP-bound {bound}{change if state.ip_restricted_min is not None else ''}")
    if state.permissions:
        on = [p for p in _PERMISSION_ORDER if state.permissions.get(p, 0) >= 1]
        on += sorted(p for p, v in state.permissions.items() if v >= 1 and p not in on)
        parts.append("permissions " + (", ".join(on) if on else "none"))
    if state.expiry is not None:
        parts.append("expires " + expiry_text(state.expiry, now))
    return cap("; ".join(parts), KEY_TEXT_LIMIT)
