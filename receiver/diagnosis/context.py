"""Prometheus context of a firing alert: bounded concurrent queries and numpy statistics.

For the alert's exchange, over the window [startsAt − 30 min, now], with ``query_range``
(https://prometheus.io/docs/prometheus/latest/querying/api/#range-queries) and a step that keeps
at most ``max_points`` (120) points:

* ``latency_p99``: ``exchange:exchange_api_request_duration_seconds:p99_5m`` (recording rule),
  ``or`` the same quantile computed from the raw histogram, so the series exists even where the
  recording rule does not (yet);
* ``error_ratio``: ``exchange:exchange_api_requests:error_ratio_rate5m`` or the raw ratio;
* ``rate_limit_usage``: ``exchange_window:exchange_rate_limit_used:ratio`` or used / limit, the
  highest window;
* ``clock_skew``: ``exchange:exchange_clock_skew_seconds:avg_over_time_2m`` or the raw gauge.

``A or B`` keeps A's samples and fills only the steps where A has none with B (both aggregate
``by (exchange)``, so their label sets match; the metric name is ignored by ``or``).

Instant queries at ``now`` over the same window: error codes (``exchange_api_errors_total`` by
endpoint and code), probe results (``exchange_api_requests_total`` by endpoint and result), HTTP
error statuses, which exchanges are up, the API key's state for alerts with a ``key`` label
(:mod:`receiver.diagnosis.keycontext`), the market context of the market-integrity alerts
(:mod:`receiver.diagnosis.marketcontext`: the price group's quotes, the rate-limit window, the
announced maintenance), for the other alerts of an exchange where the probes' time goes (the
request phases now and before the alert, and the TLS certificate's expiry:
:mod:`receiver.diagnosis.pathcontext`), and the alert's own expression (``g0.expr`` of
``generatorURL``, see :mod:`receiver.diagnosis.evidence`). Every result is capped (series,
points, response bytes), label values are capped and stripped of control characters.

All queries run concurrently under one deadline (3 s). Prometheus down, slow or answering
garbage degrades the context (empty or partial, with a ``note``); it never raises.

Statistics per series and their text: :mod:`receiver.diagnosis.stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import numpy as np

from receiver.diagnosis.codes import describe_error_code, describe_http_status, describe_result
from receiver.diagnosis.evidence import (
    PrometheusError,
    expr_from_generator_url,
    format_instant_result,
    prometheus_get,
)
from receiver.diagnosis.keycontext import KEY_QUERIES, key_state
from receiver.diagnosis.marketcontext import MARKET_QUERY_NAMES, market_queries, market_state
from receiver.diagnosis.pathcontext import (
    PATH_QUERY_NAMES,
    cert_text,
    path_queries,
    path_state,
    path_windows,
)
from receiver.diagnosis.redact import redact_text
from receiver.diagnosis.schema import CodeCount, Context, SeriesKey, SeriesStats
from receiver.diagnosis.stats import compute_stats, fmt_count, render_stats
from receiver.models import Alert, parse_rfc3339
from receiver.text import cap, strip_control

log = logging.getLogger(__name__)

#: Bytes read from one Prometheus answer before giving up on it.
MAX_RESPONSE_BYTES = 512 * 1024
#: Series kept from one answer.
MAX_SERIES = 25
#: Points parsed from one series.
MAX_POINTS_PARSED = 2000
#: Longest window (a days-old startsAt would otherwise ask for days of data).
MAX_WINDOW_SECONDS = 24 * 3600
LABEL_LIMIT = 64
SUMMARY_LIMIT = 1000
FIELD_LIMIT = 300
MAX_FIELDS = 8


@dataclass(frozen=True)
class SeriesSpec:
    """One ``query_range`` series: key, display label, unit and PromQL template."""

    key: SeriesKey
    label: str
    unit: Literal["seconds", "ratio"]
    template: str


# ``{sel}`` is replaced by the label matcher ``exchange="…"`` (escaped).
SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec(
        "latency_p99",
        "p99 latency",
        "seconds",
        "exchange:exchange_api_request_duration_seconds:p99_5m{{{sel}}}"
        " or (histogram_quantile(0.99, sum by (exchange, le) ("
        "rate(exchange_api_request_duration_seconds_bucket{{{sel}}}[5m]))) > 0)",
    ),
    SeriesSpec(
        "error_ratio",
        "error ratio",
        "ratio",
        "exchange:exchange_api_requests:error_ratio_rate5m{{{sel}}}"
        " or (sum by (exchange) (rate(exchange_api_requests_total"
        '{{{sel}, result!~"ok|maintenance"}}[5m]))'
        " / on (exchange) sum by (exchange) (rate(exchange_api_requests_total"
        '{{{sel}, result!="maintenance"}}[5m])))',
    ),
    SeriesSpec(
        "rate_limit_usage",
        "rate-limit usage",
        "ratio",
        "max by (exchange) (exchange_window:exchange_rate_limit_used:ratio{{{sel}}})"
        " or max by (exchange) (exchange_rate_limit_used{{{sel}}}"
        " / on (instance, job, exchange, window) (exchange_rate_limit_limit{{{sel}}} > 0))",
    ),
    SeriesSpec(
        "clock_skew",
        "clock skew",
        "seconds",
        "exchange:exchange_clock_skew_seconds:avg_over_time_2m{{{sel}}}"
        " or avg by (exchange) (exchange_clock_skew_seconds{{{sel}}})",
    ),
)

# Instant queries; ``{sel}`` as above, ``{w}`` the window as a PromQL duration (``2700s``).
ERROR_CODES_QUERY = (
    "topk(10, sum by (endpoint, code) (increase(exchange_api_errors_total{{{sel}}}[{w}])) > 0)"
)
RESULTS_QUERY = (
    "topk(25, sum by (endpoint, result) (increase(exchange_api_requests_total{{{sel}}}[{w}])) > 0)"
)
HTTP_QUERY = (
    "topk(10, sum by (code) (increase("
    'exchange_api_http_responses_total{{{sel}, code!~"2.."}}[{w}])) > 0)'
)
UP_QUERY = "max by (exchange) (exchange_api_up)"


def promql_string(value: str) -> str:
    """Quote ``value`` as a PromQL string literal (backslash, quote and newline escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def plan_window(
    starts_at: float, now: float, lookback: float = 1800.0, max_points: int = 120
) -> tuple[float, float, float]:
    """Return ``(start, end, step)`` for [startsAt − lookback, now] with ≤ ``max_points`` points.

    ``startsAt`` in the future (clock skew between hosts) counts as now; the window is capped at
    :data:`MAX_WINDOW_SECONDS`. The step is a whole number of seconds (at least 1).
    """
    end = float(now)
    start = min(float(starts_at), end) - lookback
    start = max(start, end - MAX_WINDOW_SECONDS)
    span = end - start
    step = float(max(1, math.ceil(span / max(1, max_points - 1))))
    return start, end, step


# --- rendering --------------------------------------------------------------------------------


def _label(value: Any) -> str:
    return cap(" ".join(strip_control(str(value)).split()), LABEL_LIMIT)


def _counts_text(counts: list[CodeCount], kind: str, limit: int = 4) -> str:
    items = [c for c in counts if c.kind == kind][:limit]
    bits = []
    for c in items:
        where = f" on {c.endpoint}" if c.endpoint else ""
        meaning = f" ({c.meaning})" if c.meaning and kind != "result" else ""
        bits.append(f"{c.code} ×{fmt_count(c.count)}{meaning}{where}")
    return "; ".join(bits)


def render_context(ctx: Context) -> tuple[str, dict[str, str]]:
    """Compact text (one line per item) and ``label → text`` fields for notifiers."""
    fields: dict[str, str] = {}
    if ctx.key is not None and ctx.key.text:
        fields["API key"] = ctx.key.text
    if ctx.market is not None and ctx.market.text:
        fields["market"] = ctx.market.text
    for st in ctx.series:
        fields[st.label] = st.text.removeprefix(st.label + " ")
    if ctx.path is not None:
        if ctx.path.text:
            fields["request phases"] = ctx.path.text
        cert = cert_text(ctx.path, ctx.end)
        if cert:
            fields["TLS certificate"] = cert
    codes = _counts_text(ctx.counts, "error_code")
    if codes:
        fields["error codes"] = codes
    failing = [c for c in ctx.counts if c.kind == "result" and c.code != "ok"]
    if failing:
        total = sum(c.count for c in ctx.counts if c.kind == "result")
        text = _counts_text(failing, "result")
        if total > 0:
            text += f" (of {fmt_count(total)} probes)"
        fields["failing probes"] = text
    statuses = _counts_text(ctx.counts, "http_status")
    if statuses:
        fields["HTTP errors"] = statuses
    others = {k: v for k, v in ctx.exchanges_up.items() if k != ctx.exchange}
    if others:
        down = sorted(k for k, up in others.items() if not up)
        up_count = len(others) - len(down)
        text = f"{up_count}/{len(others)} up"
        if down:
            text += " (down: " + ", ".join(down[:6]) + ")"
        fields["other exchanges"] = text
    if ctx.alert_value:
        fields["alert value"] = ctx.alert_value
    if ctx.note:
        fields["context"] = ctx.note
    items = list(fields.items())
    if len(items) > MAX_FIELDS and ctx.note:  # why the context is partial always shows
        items = [*items[: MAX_FIELDS - 1], ("context", ctx.note)]
    fields = {k: cap(v, FIELD_LIMIT) for k, v in items[:MAX_FIELDS]}
    series_labels = {st.label for st in ctx.series}
    # "p99 latency 1.84 s (...)" reads better than "p99 latency: 1.84 s (...)".
    lines = [f"{k} {v}" if k in series_labels else f"{k}: {v}" for k, v in fields.items()]
    return cap("\n".join(lines), SUMMARY_LIMIT), fields


# --- fetching ---------------------------------------------------------------------------------


def _parse_matrix(data: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        return None
    result = data.get("result")
    if not isinstance(result, list):
        return None
    for item in result[:MAX_SERIES]:
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list) or not values:
            continue
        ts: list[float] = []
        vs: list[float] = []
        for pair in values[:MAX_POINTS_PARSED]:
            if not isinstance(pair, list) or len(pair) != 2:
                continue
            try:
                t, v = float(pair[0]), float(pair[1])
            except (TypeError, ValueError):
                continue
            ts.append(t)
            vs.append(v)
        if ts:
            return np.asarray(ts), np.asarray(vs)
    return None


def _parse_vector(data: Any) -> list[tuple[dict[str, str], float]]:
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        return []
    result = data.get("result")
    out: list[tuple[dict[str, str], float]] = []
    for item in result[:MAX_SERIES] if isinstance(result, list) else []:
        if not isinstance(item, dict):
            continue
        metric = item.get("metric")
        value = item.get("value")
        if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
            continue
        try:
            number = float(value[1])
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out.append(({str(k): _label(v) for k, v in metric.items()}, number))
    return out


def _counts(
    kind: Literal["error_code", "http_status", "result"],
    rows: list[tuple[dict[str, str], float]],
    exchange: str | None,
) -> list[CodeCount]:
    out: list[CodeCount] = []
    for labels, number in rows:
        if number < 0.5:
            continue
        if kind == "error_code":
            code = labels.get("code", "")
            info = describe_error_code(exchange, code)
        elif kind == "http_status":
            code = labels.get("code", "")
            info = describe_http_status(exchange, code)
        else:
            code = labels.get("result", "")
            info = describe_result(code)
        if not code:
            continue
        out.append(
            CodeCount(
                kind=kind,
                code=code,
                endpoint=labels.get("endpoint", ""),
                count=round(number, 1),
                meaning=info.meaning,
                cls=info.cls,
            )
        )
    out.sort(key=lambda c: -c.count)
    return out


class ContextBuilder:
    """Builds the :class:`Context` of firing alerts from one Prometheus.

    Args:
        client: shared HTTP client (the caller owns it).
        prometheus_url: e.g. ``http://127.0.0.1:9090``.
        deadline: seconds for all queries together (they run concurrently).
        lookback: the window starts this long before ``startsAt``.
        max_points: points per range series.
        clock: Unix time source (tests pin it).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        prometheus_url: str,
        *,
        deadline: float = 3.0,
        lookback: float = 1800.0,
        max_points: int = 120,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._url = prometheus_url.rstrip("/")
        self._deadline = deadline
        self._lookback = lookback
        self._max_points = max_points
        self._clock = clock

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        return await prometheus_get(
            self._client,
            self._url,
            path,
            params,
            timeout=self._deadline,
            max_bytes=MAX_RESPONSE_BYTES,
        )

    async def build(self, alert: Alert) -> Context:
        """The context of ``alert`` (never raises; see :meth:`fetch`)."""
        ctx, _ = await self.fetch(alert)
        return ctx

    async def fetch(self, alert: Alert) -> tuple[Context, Literal["ok", "partial", "failed"]]:
        """Query Prometheus for ``alert`` within the deadline.

        Returns:
            The context and how the fetch went: ``ok``, ``partial`` (some queries failed or
            timed out: ``note`` says how many) or ``failed`` (nothing usable: empty context with
            a ``note``).
        """
        now = self._clock()
        try:
            starts = parse_rfc3339(alert.starts_at).timestamp()
        except ValueError:
            starts = now
        start, end, step = plan_window(starts, now, self._lookback, self._max_points)
        raw_exchange = alert.labels.get("exchange") or ""
        exchange = raw_exchange if raw_exchange and len(raw_exchange) <= 200 else None
        window = f"{math.ceil(end - start)}s"
        at = f"{end:.3f}"
        jobs: dict[str, Any] = {}
        if exchange is not None:
            sel = f"exchange={promql_string(exchange)}"
            for spec in SERIES:
                jobs[spec.key] = self._get(
                    "/api/v1/query_range",
                    {
                        "query": spec.template.format(sel=sel),
                        "start": f"{start:.3f}",
                        "end": f"{end:.3f}",
                        "step": f"{step:g}",
                    },
                )
            for name, template in (
                ("codes", ERROR_CODES_QUERY),
                ("results", RESULTS_QUERY),
                ("http", HTTP_QUERY),
            ):
                jobs[name] = self._get(
                    "/api/v1/query", {"query": template.format(sel=sel, w=window), "time": at}
                )
            raw_key = alert.labels.get("key") or ""
            if raw_key and len(raw_key) <= 200:
                key_sel = f"{sel},key={promql_string(raw_key)}"
                for name, template in KEY_QUERIES.items():
                    jobs[name] = self._get(
                        "/api/v1/query",
                        {"query": template.format(sel=key_sel, w=window), "time": at},
                    )
            market_jobs = market_queries(alert.alertname, alert.labels, promql_string)
            for name, query in market_jobs.items():
                jobs[name] = self._get("/api/v1/query", {"query": query, "time": at})
            if not raw_key and not market_jobs:  # API-key and market alerts: their own context
                path_jobs = path_queries(alert.labels, starts, end, self._lookback, promql_string)
                for name, (query, when) in path_jobs.items():
                    jobs[name] = self._get("/api/v1/query", {"query": query, "time": f"{when:.3f}"})
        jobs["up"] = self._get("/api/v1/query", {"query": UP_QUERY, "time": at})
        expr = expr_from_generator_url(alert.generator_url) if alert.generator_url else None
        if expr is not None:
            jobs["alert"] = self._get("/api/v1/query", {"query": expr, "time": at})

        tasks = {name: asyncio.ensure_future(job) for name, job in jobs.items()}
        try:
            _, pending = await asyncio.wait(tasks.values(), timeout=self._deadline)
        finally:  # also when the caller is cancelled: leave no query behind
            for task in tasks.values():
                if not task.done():
                    task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        results: dict[str, Any] = {}
        errors: list[str] = []
        for name, task in tasks.items():
            if task in pending:
                errors.append("timeout")
                continue
            exc = task.exception()
            if exc is not None:
                errors.append(str(exc) if isinstance(exc, PrometheusError) else "error")
                if not isinstance(exc, PrometheusError):
                    log.warning("context query %s failed: %s", name, exc.__class__.__name__)
                continue
            results[name] = task.result()

        series: list[SeriesStats] = []
        for spec in SERIES:
            parsed = _parse_matrix(results.get(spec.key))
            if parsed is None:
                continue
            st = compute_stats(parsed[0], parsed[1], starts)
            if st is None:
                continue
            signed = spec.key == "clock_skew"
            series.append(
                SeriesStats(
                    key=spec.key,
                    label=spec.label,
                    unit=spec.unit,
                    current=st.current,
                    mean=st.mean,
                    std=st.std,
                    z=st.z,
                    slope_per_minute=st.slope_per_minute,
                    trend=st.trend,
                    minimum=st.minimum,
                    maximum=st.maximum,
                    points=st.points,
                    baseline_points=st.baseline_points,
                    baseline_basis=st.baseline_basis,
                    text=render_stats(spec.label, spec.unit, st, signed=signed),
                )
            )
        counts = [
            *_counts("error_code", _parse_vector(results.get("codes")), exchange),
            *_counts("result", _parse_vector(results.get("results")), exchange),
            *_counts("http_status", _parse_vector(results.get("http")), exchange),
        ]
        exchanges_up: dict[str, bool] = {}
        for labels, number in _parse_vector(results.get("up"))[:20]:
            up_exchange = labels.get("exchange")
            if up_exchange:
                exchanges_up[up_exchange] = number >= 1
        alert_value = (
            format_instant_result(expr, results["alert"])
            if expr is not None and "alert" in results
            else None
        )

        key = (
            key_state(_label(redact_text(alert.labels["key"])), results, _parse_vector, end)
            if any(name in jobs for name in KEY_QUERIES)
            else None
        )

        market = (
            market_state(alert.labels, results, _parse_vector, end, _label)
            if any(name in jobs for name in MARKET_QUERY_NAMES)
            else None
        )

        path = (
            path_state(
                alert.labels,
                results,
                _parse_vector,
                path_windows(starts, end, self._lookback),
                _label,
            )
            if any(name in jobs for name in PATH_QUERY_NAMES)
            else None
        )

        status: Literal["ok", "partial", "failed"] = "ok"
        note: str | None = None
        if errors:
            reason = max(set(errors), key=errors.count)
            if not results:
                status = "failed"
                note = f"Prometheus unavailable ({cap(reason, 80)}): no metric context"
            else:
                status = "partial"
                note = (
                    f"{len(errors)} of {len(tasks)} Prometheus queries failed "
                    f"({cap(reason, 80)}): context is partial"
                )
        elif exchange is not None and not (series or counts or key or market or path):
            note = f"no data for exchange {_label(exchange)} in Prometheus over the window"
        ctx = Context(
            exchange=_label(exchange) if exchange else None,
            start=start,
            end=end,
            step=step,
            series=series,
            counts=counts,
            exchanges_up=exchanges_up,
            alert_value=alert_value,
            key=key,
            market=market,
            path=path,
            note=note,
        )
        summary, fields = render_context(ctx)
        return ctx.model_copy(update={"summary": summary, "fields": fields}), status
