"""Where the probes' time goes: the request phases and the TLS certificate of the alert's exchange.

The exporter sets ``exchange_api_request_phase_seconds{exchange, endpoint, phase}`` from every
answered probe, the way blackbox_exporter's ``probe_http_duration_seconds`` splits a request:
``resolve`` (DNS), ``connect`` (TCP, plus the egress proxy's CONNECT), ``tls`` (handshake),
``processing`` (request written to the first byte of the answer) and ``transfer`` (first to last
byte). ``resolve``, ``connect`` and ``tls`` are 0 on a reused keep-alive connection: a 0 says
nothing about the path, so the queries average only the non-zero samples (a subquery filtered
with ``> 0``), per endpoint, then over the endpoints (``avg by (phase)``):

* now: over the recent window, from 5 min before ``startsAt`` (the alert's ``for``, when the
  condition already held) to the end of the context window, at most 1 h;
* before: the same query evaluated at the start of the recent window, over the window before it
  (the context's lookback less those 5 min, between 5 min and 1 h): the path's own baseline, the
  same pre-alert baseline the series statistics use (:mod:`receiver.diagnosis.stats`).

The subquery step keeps at most :data:`MAX_SUBQUERY_POINTS` points per series (at least 5 s, the
shipped scrape interval), so the queries stay bounded whatever the window.

``exchange_tls_cert_expiry_timestamp_seconds{exchange}`` (the earliest ``notAfter`` of the chain
presented on a new connection: the exchange's, or a TLS-inspecting proxy's) is read now, as its
lowest value over the last hour, like ``ExchangeTlsCertExpiringSoon`` (a CDN can serve the old
chain on one edge and the renewed one on another).

An alert carrying a ``location`` label (multi-location exporters) restricts every query to that
location: a slow path is a property of one location's route and egress. Without it the phases
are averaged over the locations. Label values reach PromQL only as escaped string literals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from receiver.diagnosis.keycontext import expiry_text
from receiver.diagnosis.schema import PathState, Phase, PhaseTiming
from receiver.diagnosis.stats import BASELINE_GUARD_SECONDS, fmt_value
from receiver.text import cap

#: The phases in request order (``exchange_api_request_phase_seconds{phase}``).
PHASES: tuple[Phase, ...] = ("resolve", "connect", "tls", "processing", "transfer")
#: Phases measured only on a new connection (0 on a reused keep-alive connection).
CONNECTION_PHASES: frozenset[str] = frozenset({"resolve", "connect", "tls"})

#: Longest recent window and longest baseline window, seconds.
MAX_PATH_WINDOW_SECONDS = 3600.0
#: Shortest windows, seconds.
MIN_PATH_WINDOW_SECONDS = 300.0
#: Points per series of the phase subqueries, at most.
MAX_SUBQUERY_POINTS = 720
#: Shortest subquery step, seconds (the shipped scrape interval).
MIN_SUBQUERY_STEP_SECONDS = 5

#: ``{sel}`` the label matchers, ``{w}`` the range, ``{s}`` the subquery step.
PHASE_QUERY = (
    "avg by (phase) (avg_over_time((exchange_api_request_phase_seconds{{{sel}}} > 0)[{w}:{s}]))"
)
EXPIRY_QUERY = "min(min_over_time(exchange_tls_cert_expiry_timestamp_seconds{{{sel}}}[1h]))"

#: Query names of the path context.
PATH_QUERY_NAMES: frozenset[str] = frozenset({"path_now", "path_before", "path_tls_expiry"})

#: A certificate expiring within this many days is shown in the context fields.
CERT_SHOWN_DAYS = 30.0
PATH_TEXT_LIMIT = 300
_LABEL_MAX = 200

Rows = list[tuple[dict[str, str], float]]


def path_windows(starts_at: float, end: float, lookback: float) -> tuple[float, float, float]:
    """Return ``(incident_start, recent, baseline)``: where the recent window starts and the two
    windows' lengths in whole seconds.

    The recent window runs from 5 min before ``startsAt`` (``startsAt`` in the future counts as
    ``end``) to ``end``, between 5 min and 1 h long; the baseline window ends where it starts and
    is ``lookback`` less 5 min long, between 5 min and 1 h.
    """
    first = min(float(starts_at), float(end)) - BASELINE_GUARD_SECONDS
    recent = float(math.ceil(end - first))
    recent = min(max(recent, MIN_PATH_WINDOW_SECONDS), MAX_PATH_WINDOW_SECONDS)
    baseline = float(math.ceil(lookback - BASELINE_GUARD_SECONDS))
    baseline = min(max(baseline, MIN_PATH_WINDOW_SECONDS), MAX_PATH_WINDOW_SECONDS)
    return end - recent, recent, baseline


def _step(window: float) -> int:
    return max(MIN_SUBQUERY_STEP_SECONDS, math.ceil(window / MAX_SUBQUERY_POINTS))


def path_queries(
    labels: Mapping[str, str],
    starts_at: float,
    end: float,
    lookback: float,
    quote: Callable[[str], str],
) -> dict[str, tuple[str, float]]:
    """The instant queries of the path context of one alert (``{}`` without an ``exchange``).

    Args:
        labels: the alert's labels: ``exchange`` (required, ≤ 200 chars) and ``location``
            (optional; used when ≤ 200 chars).
        starts_at: the alert's ``startsAt``, Unix seconds.
        end: the end of the context window (now), Unix seconds.
        lookback: the context's lookback before ``startsAt``, seconds.
        quote: quotes a label value as a PromQL string literal (escapes it).

    Returns:
        query name → (PromQL, evaluation time in Unix seconds).
    """
    exchange = labels.get("exchange") or ""
    if not exchange or len(exchange) > _LABEL_MAX:
        return {}
    sel = f"exchange={quote(exchange)}"
    location = labels.get("location") or ""
    if location and len(location) <= _LABEL_MAX:
        sel += f",location={quote(location)}"
    incident_start, recent, baseline = path_windows(starts_at, end, lookback)
    return {
        "path_now": (
            PHASE_QUERY.format(sel=sel, w=f"{recent:.0f}s", s=f"{_step(recent)}s"),
            end,
        ),
        "path_before": (
            PHASE_QUERY.format(sel=sel, w=f"{baseline:.0f}s", s=f"{_step(baseline)}s"),
            incident_start,
        ),
        "path_tls_expiry": (EXPIRY_QUERY.format(sel=sel), end),
    }


def _phases(rows: Rows | None) -> dict[str, float]:
    return {
        labels["phase"]: value
        for labels, value in rows or []
        if labels.get("phase") in PHASES and value >= 0
    }


def path_state(
    labels: Mapping[str, str],
    results: dict[str, Any],
    parse: Callable[[Any], Rows],
    windows: tuple[float, float, float],
    clean: Callable[[str], str],
) -> PathState | None:
    """Build the :class:`PathState` from the answers of :func:`path_queries`.

    Args:
        labels: the alert's labels (``location`` is cleaned with ``clean``).
        results: query name → the ``data`` block Prometheus answered (missing: failed).
        parse: the context's vector parser (caps series and labels, drops non-finite values).
        windows: :func:`path_windows` of the same alert.
        clean: strips control characters and caps an untrusted label value.

    Returns:
        ``None`` when none of the path queries answered with data.
    """
    rows = {q: parse(results.get(q)) for q in PATH_QUERY_NAMES if q in results}
    if not any(rows.values()):
        return None
    now, before = _phases(rows.get("path_now")), _phases(rows.get("path_before"))
    timings = [
        PhaseTiming(phase=phase, now=now.get(phase), before=before.get(phase))
        for phase in PHASES
        if phase in now or phase in before
    ]
    expiry_rows = rows.get("path_tls_expiry") or []
    location = labels.get("location") or ""
    state = PathState(
        phases=timings,
        window=windows[1],
        baseline_window=windows[2],
        location=clean(location) if len(location) <= _LABEL_MAX else "",
        tls_cert_expiry=expiry_rows[0][1] if expiry_rows else None,
    )
    return state.model_copy(update={"text": render_phases(state)})


def _seconds(value: float | None, phase: str) -> str:
    if value is None:
        return "n/a (keep-alive)" if phase in CONNECTION_PHASES else "n/a"
    return fmt_value(value, "seconds")


def phase_text(timing: PhaseTiming) -> str:
    """``tls 1.20 s (before 40.0 ms)``; a phase without a recent sample reads ``n/a``."""
    text = f"{timing.phase} {_seconds(timing.now, timing.phase)}"
    if timing.before is not None:
        text += f" (before {fmt_value(timing.before, 'seconds')})"
    return text


def render_phases(state: PathState) -> str:
    """One line for the context fields, e.g. ``resolve 2.00 ms (before 2.00 ms), connect 310 ms
    (before 12.0 ms), tls 1.20 s (before 40.0 ms), processing 90.0 ms (before 85.0 ms), transfer
    1.00 ms (before 1.00 ms); last 20 min vs 25 min before`` (``""`` without phases); at most
    :data:`PATH_TEXT_LIMIT` characters."""
    if not state.phases:
        return ""
    text = ", ".join(phase_text(t) for t in state.phases)
    text += f"; last {state.window / 60:.0f} min vs {state.baseline_window / 60:.0f} min before" + (
        f" at {state.location}" if state.location else ""
    )
    return cap(text, PATH_TEXT_LIMIT)


def expiry_phrase(expiry: float, now: float) -> str:
    """``expires in 6.5 d (2026-12-12 08:00 UTC)`` or ``expired 2.0 d ago (…)``."""
    text = expiry_text(expiry, now)
    if text.startswith("passed "):
        return "expired " + text.removeprefix("passed ")
    return "expires " + text


def cert_text(state: PathState, now: float) -> str | None:
    """``earliest in the chain expires in 6.5 d (…)`` when within :data:`CERT_SHOWN_DAYS` days
    (or already expired); ``None`` otherwise or without an expiry."""
    expiry = state.tls_cert_expiry
    if expiry is None or expiry - now > CERT_SHOWN_DAYS * 86400:
        return None
    return "earliest in the chain " + expiry_phrase(expiry, now)
