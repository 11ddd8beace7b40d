"""Prometheus context: numpy statistics, query plan and params, bounds, degradation (respx)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import httpx
import numpy as np
import pytest
import respx

from receiver.diagnosis.config import DiagnosisSettings
from receiver.diagnosis.context import (
    MAX_WINDOW_SECONDS,
    ContextBuilder,
    compute_stats,
    plan_window,
    promql_string,
    render_stats,
)
from receiver.diagnosis.engine import DiagnosisEngine
from receiver.diagnosis.schema import Context, Diagnosis
from receiver.models import Alert, parse_rfc3339

PROM = "http://prom.test:9090"
STARTS_AT = "2026-11-21T07:22:00Z"
T0 = parse_rfc3339(STARTS_AT).timestamp()
NOW = T0 + 900.0  # the alert has been firing for 15 minutes


def alert(
    alertname: str = "ExchangeApiLatencyHigh",
    exchange: str | None = "binance",
    status: str = "firing",
    generator_url: str = "http://prom:9090/graph?g0.expr=up+%3D%3D+0",
) -> Alert:
    labels = {"alertname": alertname, "severity": "warning"}
    if exchange is not None:
        labels["exchange"] = exchange
    return Alert.model_validate(
        {
            "status": status,
            "labels": labels,
            "annotations": {"summary": "s"},
            "startsAt": STARTS_AT,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-21T07:40:00Z",
            "generatorURL": generator_url,
            "fingerprint": "f1",
        }
    )


def synthetic() -> tuple[np.ndarray, np.ndarray]:
    """Baseline 0.20/0.22 alternating for 30 min, then 1.0 + 0.1/min for 15 min."""
    before = np.arange(T0 - 1800, T0, 15.0)  # 120 points
    base = np.where(np.arange(before.size) % 2 == 0, 0.20, 0.22)
    after = np.arange(T0, NOW + 1, 15.0)  # 61 points
    rising = 1.0 + 0.1 * (after - T0) / 60.0
    return np.concatenate([before, after]), np.concatenate([base, rising])


def matrix(ts: np.ndarray, vs: np.ndarray, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": labels or {"exchange": "binance"},
                    "values": [[float(t), repr(float(v))] for t, v in zip(ts, vs, strict=True)],
                }
            ],
        },
    }


def vector(rows: list[tuple[dict[str, str], float]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [NOW, str(v)]} for m, v in rows],
        },
    }


def build(a: Alert, deadline: float = 1.0) -> tuple[Context, str]:
    async def go() -> tuple[Context, str]:
        async with httpx.AsyncClient() as client:
            builder = ContextBuilder(client, PROM, deadline=deadline, clock=lambda: NOW)
            return await builder.fetch(a)

    return asyncio.run(go())


# --- statistics -------------------------------------------------------------------------------


def test_stats_exact_on_synthetic_series() -> None:
    ts, vs = synthetic()
    st = compute_stats(ts, vs, T0)
    assert st is not None
    assert st.points == 181
    # Baseline: the 100 points up to 5 minutes before startsAt (the `for` period is excluded).
    assert st.baseline_basis == "before_alert" and st.baseline_points == 100
    assert st.mean == pytest.approx(0.21, rel=1e-12)
    assert st.std == pytest.approx(0.01, rel=1e-9)
    assert st.current == pytest.approx(2.5, rel=1e-12)
    assert st.z == pytest.approx((2.5 - 0.21) / 0.01, rel=1e-9)
    assert st.slope_per_minute == pytest.approx(0.1, rel=1e-9)
    assert st.trend == "rising"
    assert st.minimum == pytest.approx(0.2) and st.maximum == pytest.approx(2.5)
    # Same numbers as numpy's own least squares and moments.
    after = ts >= T0
    slope = np.polyfit((ts[after] - ts[after][0]) / 60, vs[after], 1)[0]
    assert st.slope_per_minute == pytest.approx(slope, rel=1e-9)
    assert st.std == pytest.approx(float(np.std(vs[ts < T0 - 300])), rel=1e-12)


def test_stats_edge_cases() -> None:
    assert compute_stats([], [], T0) is None
    assert compute_stats([T0, T0 + 15], [math.nan, math.inf], T0) is None
    flat = compute_stats(np.arange(T0 - 600, T0 + 300, 15.0), np.full(60, 0.5), T0)
    assert flat is not None
    assert flat.std == 0 and flat.z is None  # no spread: no z-score
    assert flat.slope_per_minute == pytest.approx(0) and flat.trend == "flat"
    one = compute_stats([T0], [3.0], T0)
    assert one is not None and one.current == 3.0
    assert one.mean is None and one.z is None and one.slope_per_minute is None
    # No history before the alert: baseline is every point but the last.
    short = compute_stats([T0, T0 + 60, T0 + 120, T0 + 180], [1.0, 1.0, 3.0, 5.0], T0)
    assert short is not None and short.baseline_basis == "window"
    assert short.mean == pytest.approx(5 / 3) and short.current == 5.0
    # NaN gaps (histogram_quantile without answers) are dropped, not propagated.
    gaps = compute_stats([T0 - 60, T0 - 45, T0 - 30, T0], [1.0, math.nan, 1.0, 2.0], T0)
    assert gaps is not None and gaps.points == 3


def test_render_compact_text() -> None:
    ts, vs = synthetic()
    st = compute_stats(ts, vs, T0)
    assert st is not None
    text = render_stats("p99 latency", "seconds", st)
    assert text == "p99 latency 2.50 s (baseline 0.21 ± 0.01 s, z 229.0, rising 0.10 s/min)"
    ratio = compute_stats(ts, vs / 10, T0)
    assert ratio is not None
    assert render_stats("error ratio", "ratio", ratio).startswith(
        "error ratio 25.0% (baseline 2.10 ± 0.10%, z 229.0, rising 1.00%/min)"
    )


def test_baseline_excludes_the_for_period_and_small_values_show_in_ms() -> None:
    ts = np.arange(T0 - 1800, T0 + 61, 15.0)
    normal = np.where(np.arange(ts.size) % 2 == 0, 0.039, 0.041)
    vs = np.where(ts < T0 - 120, normal, 0.160)  # slow since 2 min before firing (`for: 2m`)
    st = compute_stats(ts, vs, T0)
    assert st is not None
    assert st.mean == pytest.approx(0.040, rel=1e-9) and st.std == pytest.approx(0.001, rel=1e-6)
    assert st.z == pytest.approx(120.0, rel=1e-6)
    assert render_stats("p99 latency", "seconds", st) == (
        "p99 latency 160 ms (baseline 40.0 ± 1.00 ms, z 120.0, flat)"
    )
    skew = compute_stats(ts, np.full(ts.size, -0.25), T0)
    assert skew is not None
    assert render_stats("clock skew", "seconds", skew, signed=True) == (
        "clock skew -250 ms (baseline -250 ± 0 ms, flat)"
    )


def test_plan_window_bounds_points() -> None:
    start, end, step = plan_window(T0, NOW)
    assert start == T0 - 1800 and end == NOW
    assert step == math.ceil(2700 / 119)
    assert (end - start) / step + 1 <= 120
    # A days-old alert: capped window, still <= 120 points.
    start, end, step = plan_window(T0 - 10 * 86400, NOW)
    assert end - start == MAX_WINDOW_SECONDS and (end - start) / step + 1 <= 120
    # startsAt in the future (clock differences): the window ends now.
    start, end, _ = plan_window(NOW + 600, NOW)
    assert start == NOW - 1800 and end == NOW


def test_promql_string_escapes() -> None:
    assert promql_string('bi"n\\ance') == '"bi\\"n\\\\ance"'


# --- fetching ---------------------------------------------------------------------------------


def _mock_prometheus(mock: respx.MockRouter) -> tuple[respx.Route, respx.Route]:
    ts, vs = synthetic()

    def range_reply(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        if "p99" in query:
            return httpx.Response(200, json=matrix(ts, vs))
        if "error_ratio" in query:
            return httpx.Response(200, json=matrix(ts, vs / 10))
        if "clock_skew" in query:
            return httpx.Response(200, json=matrix(ts, np.full(ts.size, 0.01)))
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": []}}
        )

    def instant_reply(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        if "exchange_api_errors_total" in query:
            return httpx.Response(
                200,
                json=vector(
                    [
                        ({"endpoint": "time", "code": "-1021"}, 12.0),
                        ({"endpoint": "ticker", "code": "-1003"}, 3.2),
                    ]
                ),
            )
        if "exchange_api_requests_total" in query:
            return httpx.Response(
                200,
                json=vector(
                    [
                        ({"endpoint": "time", "result": "api_error"}, 12.0),
                        ({"endpoint": "time", "result": "ok"}, 300.0),
                    ]
                ),
            )
        if "exchange_api_http_responses_total" in query:
            return httpx.Response(200, json=vector([({"code": "400"}, 12.0)]))
        if "exchange_api_up" in query:
            return httpx.Response(
                200, json=vector([({"exchange": "binance"}, 1), ({"exchange": "bybit"}, 1)])
            )
        return httpx.Response(200, json=vector([({"__name__": "up"}, 0)]))

    rng = mock.get(f"{PROM}/api/v1/query_range").mock(side_effect=range_reply)
    inst = mock.get(f"{PROM}/api/v1/query").mock(side_effect=instant_reply)
    return rng, inst


def test_fetch_builds_stats_counts_and_text() -> None:
    with respx.mock() as mock:
        rng, inst = _mock_prometheus(mock)
        ctx, status = build(alert())
    assert status == "ok" and ctx.note is None
    assert ctx.exchange == "binance"
    lat = ctx.stats("latency_p99")
    assert lat is not None and lat.z == pytest.approx(229.0)
    assert lat.text == "p99 latency 2.50 s (baseline 0.21 ± 0.01 s, z 229.0, rising 0.10 s/min)"
    assert ctx.stats("rate_limit_usage") is None  # no data: left out
    codes = [c for c in ctx.counts if c.kind == "error_code"]
    assert [(c.code, c.endpoint, c.cls) for c in codes] == [
        ("-1021", "time", "timestamp"),
        ("-1003", "ticker", "rate_limit"),
    ]
    assert ctx.exchanges_up == {"binance": True, "bybit": True}
    assert ctx.alert_value is not None and "up == 0" in ctx.alert_value
    # Compact text and fields for notifiers.
    assert "p99 latency 2.50 s (baseline 0.21 ± 0.01 s, z 229.0, rising 0.10 s/min)" in ctx.summary
    assert "error codes: -1021 ×12 (Binance INVALID_TIMESTAMP" in ctx.summary
    assert ctx.fields["p99 latency"].startswith("2.50 s (baseline")
    assert ctx.fields["other exchanges"] == "1/1 up"
    assert len(ctx.summary) <= 1000 and len(ctx.fields) <= 8
    # Four range queries, all with the exchange matcher and recording-rule fallback.
    queries = [c.request.url.params["query"] for c in rng.calls]
    assert len(queries) == 4
    assert all('exchange="binance"' in q and " or " in q for q in queries)
    assert any("exchange:exchange_api_request_duration_seconds:p99_5m" in q for q in queries)
    assert any("histogram_quantile(0.99" in q for q in queries)
    instant = [c.request.url.params["query"] for c in inst.calls]
    assert any(q.startswith("topk(10, sum by (endpoint, code)") for q in instant)
    assert "up == 0" in instant


def test_query_range_params_window_and_step() -> None:
    with respx.mock() as mock:
        rng, inst = _mock_prometheus(mock)
        build(alert())
    for call in rng.calls:
        params = call.request.url.params
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
        assert start == pytest.approx(T0 - 1800)  # startsAt − 30 min
        assert end == pytest.approx(NOW)
        assert step == math.ceil(2700 / 119)
        assert (end - start) / step + 1 <= 120  # at most ~120 points
    for call in inst.calls:
        assert float(call.request.url.params["time"]) == pytest.approx(NOW)
    windows = [
        c.request.url.params["query"]
        for c in inst.calls
        if "increase(" in c.request.url.params["query"]
    ]
    assert windows and all("[2700s]" in q for q in windows)


def test_global_alert_queries_no_exchange_series() -> None:
    with respx.mock(assert_all_called=False) as mock:
        rng, _ = _mock_prometheus(mock)
        ctx, status = build(alert("ExchangeExporterDown", exchange=None))
    assert status == "ok" and not rng.called
    assert ctx.exchange is None and ctx.series == []
    assert ctx.exchanges_up  # still shows which exchanges are up


def test_label_values_are_escaped_in_promql() -> None:
    with respx.mock() as mock:
        rng, _ = _mock_prometheus(mock)
        build(alert(exchange='x"} or vector(1) or {"'))
    for call in rng.calls:
        assert 'exchange="x\\"} or vector(1) or {\\""' in call.request.url.params["query"]


def test_prometheus_down_gives_empty_context_with_note() -> None:
    with respx.mock() as mock:
        mock.get(url__startswith=PROM).mock(side_effect=httpx.ConnectError("refused"))
        ctx, status = build(alert())
    assert status == "failed" and ctx.empty
    assert ctx.note == "Prometheus unavailable (ConnectError): no metric context"
    assert ctx.fields == {"context": ctx.note}


def test_prometheus_slow_respects_overall_deadline() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=vector([]))

    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__startswith=PROM).mock(side_effect=slow)
        started = time.monotonic()
        ctx, status = build(alert(), deadline=0.3)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert status == "failed" and ctx.empty and ctx.note is not None and "timeout" in ctx.note


def test_partial_answers_keep_what_arrived() -> None:
    ts, vs = synthetic()

    def reply(request: httpx.Request) -> httpx.Response:
        if "p99" in request.url.params.get("query", ""):
            return httpx.Response(200, json=matrix(ts, vs))
        return httpx.Response(503, json={"status": "error", "errorType": "unavailable"})

    with respx.mock() as mock:
        mock.get(url__startswith=PROM).mock(side_effect=reply)
        ctx, status = build(alert())
    assert status == "partial"
    assert ctx.stats("latency_p99") is not None
    assert ctx.note is not None and "of" in ctx.note and "HTTP 503" in ctx.note


def test_garbage_and_oversized_answers_are_bounded() -> None:
    huge = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {}, "values": [[T0, "1"]] * 100_000}],
        },
    }

    def reply(request: httpx.Request) -> httpx.Response:
        query = request.url.params.get("query", "")
        if "p99" in query:
            return httpx.Response(200, json=huge)  # > 512 KiB: refused
        if "clock_skew" in query:
            return httpx.Response(200, text="<html>not json</html>")
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": "nope"}}
        )

    with respx.mock() as mock:
        mock.get(url__startswith=PROM).mock(side_effect=reply)
        ctx, status = build(alert())
    assert status == "partial" and ctx.series == [] and ctx.counts == []
    assert ctx.note is not None and "2 of 12 Prometheus queries failed" in ctx.note


# --- through the engine -----------------------------------------------------------------------


def engine_settings(**overrides: Any) -> DiagnosisSettings:
    values: dict[str, Any] = {
        "prometheus_url": PROM,
        "llm_base_url": None,
        "llm_model": None,
        "llm_secondary_base_url": None,
        "llm_secondary_model": None,
        "context_deadline_seconds": 0.5,
    }
    values.update(overrides)
    return DiagnosisSettings(**values)


def run_engine(settings: DiagnosisSettings, a: Alert) -> Diagnosis:
    async def go() -> Diagnosis:
        async with httpx.AsyncClient() as client:
            engine = DiagnosisEngine(settings, client)
            assert engine.context_builder is not None
            engine.context_builder._clock = lambda: NOW  # pin "now" for the synthetic data
            return await engine.diagnose(a)

    return asyncio.run(go())


def test_engine_attaches_context_and_survives_json_roundtrip() -> None:
    with respx.mock() as mock:
        _mock_prometheus(mock)
        d = run_engine(engine_settings(), alert())
    assert d.source == "rules" and d.context is not None
    assert d.root_cause_category == "latency_degradation"
    assert "229.0 standard deviations" in d.diagnosis
    stored = d.model_dump(mode="json")
    again = Diagnosis.model_validate(stored)  # what the worker does after a restart
    assert again == d and again.context is not None and again.context.summary == d.context.summary


def test_engine_prometheus_down_still_diagnoses() -> None:
    with respx.mock() as mock:
        mock.get(url__startswith=PROM).mock(side_effect=httpx.ConnectError("refused"))
        started = time.monotonic()
        d = run_engine(engine_settings(), alert("ExchangeApiDown"))
        elapsed = time.monotonic() - started
    assert d.source == "rules" and d.root_cause_category == "outage"
    assert d.context is not None and d.context.empty
    assert d.context.note is not None and "Prometheus unavailable" in d.context.note
    assert elapsed < 1.0


def test_engine_without_prometheus_has_no_context() -> None:
    async def go() -> Diagnosis:
        async with httpx.AsyncClient() as client:
            engine = DiagnosisEngine(engine_settings(prometheus_url=None), client)
            return await engine.diagnose(alert())

    assert asyncio.run(go()).context is None


def test_resolved_alert_gets_no_context() -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(url__startswith=PROM).mock(return_value=httpx.Response(200))
        d = run_engine(engine_settings(), alert(status="resolved"))
    assert d.context is None and not route.called
