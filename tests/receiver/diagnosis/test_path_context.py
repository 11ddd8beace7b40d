"""Path context: request-phase and TLS-certificate queries, windows, state, rendering (respx)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
import respx

from receiver.diagnosis.context import ContextBuilder, promql_string, render_context
from receiver.diagnosis.llm import build_messages
from receiver.diagnosis.pathcontext import (
    MAX_SUBQUERY_POINTS,
    PATH_QUERY_NAMES,
    path_queries,
    path_windows,
    render_phases,
)
from receiver.diagnosis.schema import CodeCount, Context, PathState, PhaseTiming, SeriesStats
from receiver.models import Alert, parse_rfc3339

PROM = "http://prom.test:9090"
STARTS_AT = "2026-11-21T07:22:00Z"
T0 = parse_rfc3339(STARTS_AT).timestamp()
NOW = T0 + 900.0  # firing for 15 minutes
DAY = 86400.0

Rows = list[tuple[dict[str, str], float]]

#: Slow TLS and connect now; processing as before.
PHASES_NOW: Rows = [
    ({"phase": "resolve"}, 0.002),
    ({"phase": "connect"}, 0.31),
    ({"phase": "tls"}, 1.2),
    ({"phase": "processing"}, 0.09),
    ({"phase": "transfer"}, 0.001),
]
PHASES_BEFORE: Rows = [
    ({"phase": "resolve"}, 0.002),
    ({"phase": "connect"}, 0.012),
    ({"phase": "tls"}, 0.04),
    ({"phase": "processing"}, 0.085),
    ({"phase": "transfer"}, 0.001),
]


def alert(alertname: str = "ExchangeApiLatencyHigh", **labels: str) -> Alert:
    base = {"alertname": alertname, "severity": "warning", "exchange": "binance"}
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": base | labels,
            "annotations": {"summary": "s"},
            "startsAt": STARTS_AT,
            "fingerprint": "p1",
        }
    )


def vector(rows: Rows) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [NOW, str(v)]} for m, v in rows],
        },
    }


EMPTY_MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": []}}


def _mock(mock: respx.MockRouter, expiry: float = NOW + 200 * DAY) -> respx.Route:
    def instant(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        at = float(request.url.params["time"])
        if "exchange_api_request_phase_seconds" in query:
            return httpx.Response(200, json=vector(PHASES_NOW if at == NOW else PHASES_BEFORE))
        if "exchange_tls_cert_expiry_timestamp_seconds" in query:
            return httpx.Response(200, json=vector([({}, expiry)]))
        if "exchange_api_up" in query:
            return httpx.Response(200, json=vector([({"exchange": "bybit"}, 1)]))
        return httpx.Response(200, json=vector([]))

    mock.get(f"{PROM}/api/v1/query_range").mock(return_value=httpx.Response(200, json=EMPTY_MATRIX))
    return mock.get(f"{PROM}/api/v1/query").mock(side_effect=instant)


def build(a: Alert) -> tuple[Context, str]:
    async def go() -> tuple[Context, str]:
        async with httpx.AsyncClient() as client:
            builder = ContextBuilder(client, PROM, deadline=1.0, clock=lambda: NOW)
            return await builder.fetch(a)

    return asyncio.run(go())


def _phase_calls(route: respx.Route) -> list[tuple[str, float]]:
    return [
        (c.request.url.params["query"], float(c.request.url.params["time"]))
        for c in route.calls
        if "exchange_api_request_phase_seconds" in c.request.url.params["query"]
    ]


def test_windows_run_from_five_minutes_before_the_alert_and_are_bounded() -> None:
    start, recent, baseline = path_windows(T0, NOW, 1800.0)
    assert (start, recent, baseline) == (T0 - 300, 1200.0, 1500.0)
    # A day-old alert: the recent window is the last hour; a tiny lookback: at least 5 min.
    start, recent, baseline = path_windows(T0 - DAY, NOW, 60.0)
    assert (start, recent, baseline) == (NOW - 3600, 3600.0, 300.0)
    # startsAt in the future (clock differences): the window still ends now.
    start, recent, _ = path_windows(NOW + 600, NOW, 1800.0)
    assert (start, recent) == (NOW - 300, 300.0)


def test_queries_average_non_zero_samples_now_and_before() -> None:
    queries = path_queries({"exchange": "binance"}, T0, NOW, 1800.0, promql_string)
    assert set(queries) == PATH_QUERY_NAMES
    now, now_at = queries["path_now"]
    before, before_at = queries["path_before"]
    assert now_at == NOW and before_at == T0 - 300  # the baseline ends where "now" starts
    assert now == (
        "avg by (phase) (avg_over_time("
        '(exchange_api_request_phase_seconds{exchange="binance"} > 0)[1200s:5s]))'
    )
    assert "[1500s:5s]" in before
    expiry, expiry_at = queries["path_tls_expiry"]
    assert expiry_at == NOW
    assert expiry == (
        'min(min_over_time(exchange_tls_cert_expiry_timestamp_seconds{exchange="binance"}[1h]))'
    )
    # Long windows: the subquery step grows, at most MAX_SUBQUERY_POINTS points per series.
    long = path_queries({"exchange": "binance"}, T0 - DAY, NOW, 7200.0, promql_string)
    for name in ("path_now", "path_before"):
        match = re.search(r"\[(\d+)s:(\d+)s\]", long[name][0])
        assert match is not None
        assert int(match.group(1)) / int(match.group(2)) <= MAX_SUBQUERY_POINTS


def test_queries_escape_labels_and_keep_the_location() -> None:
    queries = path_queries(
        {"exchange": 'x"} or vector(1) or {"', "location": "fra"}, T0, NOW, 1800.0, promql_string
    )
    for query, _ in queries.values():
        assert 'exchange="x\\"} or vector(1) or {\\"",location="fra"' in query
    assert path_queries({}, T0, NOW, 1800.0, promql_string) == {}
    assert path_queries({"exchange": "x" * 201}, T0, NOW, 1800.0, promql_string) == {}
    no_location = path_queries(
        {"exchange": "binance", "location": "x" * 201}, T0, NOW, 1800.0, promql_string
    )
    assert all("location" not in q for q, _ in no_location.values())


def test_fetch_builds_the_phases_and_renders_them_first_after_the_series() -> None:
    with respx.mock() as mock:
        route = _mock(mock)
        ctx, status = build(alert())
    assert status == "ok"
    calls = _phase_calls(route)
    assert sorted(at for _, at in calls) == [T0 - 300, NOW]
    path = ctx.path
    assert path is not None and path.tls_cert_expiry == NOW + 200 * DAY
    tls = path.timing("tls")
    assert tls is not None and (tls.now, tls.before) == (1.2, 0.04)
    assert [t.phase for t in path.phases] == [
        "resolve",
        "connect",
        "tls",
        "processing",
        "transfer",
    ]
    assert ctx.fields["request phases"].startswith(
        "resolve 2.00 ms (before 2.00 ms), connect 310 ms (before 12.0 ms), "
        "tls 1.20 s (before 40.0 ms), processing 90.0 ms (before 85.0 ms)"
    )
    assert ctx.fields["request phases"].endswith("; last 20 min vs 25 min before")
    assert "TLS certificate" not in ctx.fields  # 200 days away: not worth a field
    assert "request phases: resolve 2.00 ms" in ctx.summary
    assert next(iter(ctx.fields)) == "request phases"  # no series: the phases come first


def test_a_certificate_expiring_soon_gets_a_field() -> None:
    with respx.mock() as mock:
        _mock(mock, expiry=NOW + 6.5 * DAY)
        ctx, _ = build(alert("ExchangeTlsCertExpiringSoon"))
    assert ctx.fields["TLS certificate"].startswith("earliest in the chain expires in 6.5 d (")
    with respx.mock() as mock:
        _mock(mock, expiry=NOW - 2 * DAY)
        ctx, _ = build(alert("ExchangeApiDown"))
    assert ctx.fields["TLS certificate"].startswith("earliest in the chain expired 2.0 d ago (")


def test_location_label_restricts_the_path_queries() -> None:
    with respx.mock() as mock:
        route = _mock(mock)
        ctx, _ = build(alert(location="tokyo"))
    calls = _phase_calls(route)
    assert calls and all('location="tokyo"' in q for q, _ in calls)
    assert ctx.path is not None and ctx.path.location == "tokyo"
    assert ctx.fields["request phases"].endswith(" at tokyo")


@pytest.mark.parametrize(
    ("alertname", "labels"),
    [
        ("ExchangeApiKeyInvalid", {"key": "monitor"}),
        ("ExchangePriceDeviation", {"market": "BTC/USDT", "price_group": "BTC/USD"}),
    ],
)
def test_key_and_market_alerts_get_no_path_queries(alertname: str, labels: dict[str, str]) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = _mock(mock)
        ctx, _ = build(alert(alertname, **labels))
    assert not _phase_calls(route) and ctx.path is None


def test_keep_alive_only_phases_and_missing_answers() -> None:
    state = PathState(
        phases=[
            PhaseTiming(phase="connect", now=None, before=0.012),
            PhaseTiming(phase="processing", now=0.09, before=None),
        ],
        window=1200,
        baseline_window=1500,
    )
    assert render_phases(state) == (
        "connect n/a (keep-alive) (before 12.0 ms), processing 90.0 ms; "
        "last 20 min vs 25 min before"
    )
    assert render_phases(PathState()) == ""
    with respx.mock() as mock:
        mock.get(url__startswith=PROM).mock(return_value=httpx.Response(200, json=vector([])))
        ctx, _ = build(alert())
    assert ctx.path is None  # nothing answered with data


def test_the_context_note_survives_the_field_cap() -> None:
    series = [
        SeriesStats(
            key=key,
            label=key.replace("_", " "),
            unit="ratio",
            current=0.5,
            minimum=0,
            maximum=1,
            points=10,
            text=f"{key.replace('_', ' ')} 50%",
        )
        for key in ("latency_p99", "error_ratio", "rate_limit_usage", "clock_skew")
    ]
    counts = [
        CodeCount(kind="error_code", code="-1003", count=3, cls="rate_limit"),
        CodeCount(kind="result", code="timeout", count=3, cls="network"),
        CodeCount(kind="http_status", code="429", count=3, cls="rate_limit"),
    ]
    ctx = Context(
        exchange="binance",
        series=series,
        counts=counts,
        exchanges_up={"bybit": True},
        alert_value="v",
        path=PathState(phases=[PhaseTiming(phase="tls", now=1.0, before=0.1)], text="tls 1 s"),
        note="3 of 12 Prometheus queries failed (timeout): context is partial",
    )
    summary, fields = render_context(ctx)
    assert len(fields) == 8 and fields["context"] == ctx.note
    assert list(fields)[4] == "request phases"  # right after the series
    assert "request phases: tls 1 s" in summary


def test_llm_prompt_carries_the_phase_breakdown() -> None:
    with respx.mock() as mock:
        _mock(mock)
        ctx, _ = build(alert())
    messages = build_messages(alert(), None, ctx)
    user = messages[-1]["content"]
    assert "request phases: resolve 2.00 ms (before 2.00 ms), connect 310 ms" in user
    assert "tls 1.20 s (before 40.0 ms)" in user
