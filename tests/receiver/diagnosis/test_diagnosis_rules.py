"""Rules engine: every shipped alert gets a specific diagnosis; context evidence changes it."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.profiles import binance, bybit, coinbase, kraken, okx
from receiver.diagnosis.codes import (
    ERROR_CODES,
    describe_error_code,
    describe_http_status,
    describe_result,
)
from receiver.diagnosis.rules import KNOWLEDGE_BASE, diagnose_with_rules
from receiver.diagnosis.schema import CodeCount, Context, SeriesStats
from receiver.models import Alert
from tests.receiver.shipped_alerts import shipped_alertnames

#: Per alert, the category its notification must carry and words its action items must contain.
#: The alerts themselves are read from prometheus/rules/ (plus the receiver's pipeline alert):
#: a new alert fails the test below until it has an entry here.
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "ExchangeApiDown": ("outage", ("status page", "Reconcile", "backup venue")),
    "ExchangeEndpointDown": ("partial_outage", ("result and error code", "WebSocket")),
    "ExchangeApiDownFromLocation": ("network", ("other locations", "egress IP", "DNS")),
    "ExchangeApiLatencyHigh": ("latency_degradation", ("timeouts", "WebSocket", "429")),
    "ExchangeApiLatencyDegraded": ("latency_degradation", ("request weight", "other exchanges")),
    "ExchangeApiErrorRateHigh": ("partial_outage", ("error code", "back off")),
    "ExchangeRateLimitNearExhaustion": ("rate_limit", ("heaviest callers", "WebSocket")),
    "ExchangeRateLimited": ("rate_limit", ("Retry-After", "418")),
    "ExchangeIpBanned": ("ip_ban", ("Stop ALL requests", "Retry-After")),
    "ExchangeClockSkewHigh": ("clock_skew", ("chronyc", "recvWindow")),
    "ExchangeMaintenance": ("maintenance", ("announced window", "cancel")),
    "ExchangeCircuitOpen": ("partial_outage", ("breaker", "/status")),
    "ExchangeMarketDataStale": ("data_quality", ("quoting", "clock skew")),
    "ExchangeApiAvailabilityBudgetBurn": ("partial_outage", ("Fast burn", "ticket")),
    "ExchangeWebSocketDown": ("partial_outage", ("REST polling", "reconnects_total by reason")),
    "ExchangeWebSocketStale": ("data_quality", ("resubscribe", "REST ticker", "stale_after")),
    "ExchangeWebSocketLagHigh": ("latency_degradation", ("clock skew", "other exchanges")),
    "ExchangeWebSocketSequenceGaps": ("data_quality", ("resynchronise", "gap")),
    "ExchangeWebSocketChecksumMismatch": ("data_quality", ("fresh snapshot", "resync")),
    "ExchangeWebSocketReconnecting": ("partial_outage", ("by reason", "back off")),
    "ExchangeApiKeyInvalid": ("auth", ("read-only", "allow-list", "/status")),
    "ExchangeApiKeyExpiringSoon": ("auth", ("/status", "IP-bound", "rotation")),
    "ExchangeApiKeyWithdrawEnabled": ("auth", ("withdrawal permission", "read-only")),
    "ExchangeApiKeyNoIpRestriction": ("auth", ("allow-list", "30 days", "egress IPs")),
    "ExchangeApiKeyTimestampRejected": ("clock_skew", ("chronyc", "recv_window")),
    "ExchangePriceDeviation": ("data_quality", ("Stop quoting", "order book", "stablecoin basis")),
    "ExchangePriceSpike": ("data_quality", ("other venues", "market-wide")),
    "ExchangeVolumeSpike": ("rate_limit", ("request weight", "polling", "wider spreads")),
    "ExchangeBookCrossed": ("data_quality", ("fresh snapshot", "crossed")),
    "ExchangeRateLimitExhaustionPredicted": ("rate_limit", ("Throttle", "Stagger", "WebSocket")),
    "ExchangeMaintenanceScheduled": (
        "maintenance",
        ("before the window", "ExchangeMaintenance", "Cancel resting orders"),
    ),
    "ExchangeTlsCertExpiringSoon": ("network", ("tls.ca_file", "proxy", "openssl")),
    "ExchangeExporterDown": ("monitoring", ("exporter", "Prometheus targets")),
    "ExchangeMonitorNetworkDown": ("network", ("DNS", "another host")),
    "ExchangeMonitorDnsFailing": ("network", ("resolver", "dig")),
    "Watchdog": ("monitoring", ("No action needed",)),
    "AlertingPipelineDown": ("monitoring", ("Alertmanager", "/heartbeat")),
}

LABELS = {
    "latency_p99": "p99 latency",
    "error_ratio": "error ratio",
    "rate_limit_usage": "rate-limit usage",
    "clock_skew": "clock skew",
}

GLOBAL = {
    "ExchangeExporterDown",
    "ExchangeMonitorNetworkDown",
    "ExchangeMonitorDnsFailing",
    "Watchdog",
    "AlertingPipelineDown",
}


def alert(alertname: str, exchange: str | None = "binance", **labels: str) -> Alert:
    base = {"alertname": alertname, "severity": "warning"}
    if exchange is not None and alertname not in GLOBAL:
        base["exchange"] = exchange
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": base | labels,
            "annotations": {"summary": f"{alertname} summary"},
            "startsAt": "2026-11-21T07:22:00Z",
            "fingerprint": "f",
        }
    )


def ctx(
    counts: list[tuple[str, str, float]] | None = None,
    series: list[dict[str, Any]] | None = None,
    up: dict[str, bool] | None = None,
    exchange: str = "binance",
) -> Context:
    """A context with ``counts`` as (kind, code, count), classified like the builder does."""
    items = []
    for kind, code, count in counts or []:
        if kind == "error_code":
            info = describe_error_code(exchange, code)
        elif kind == "http_status":
            info = describe_http_status(exchange, code)
        else:
            info = describe_result(code)
        items.append(
            CodeCount(
                kind=kind,
                code=code,
                endpoint="time",
                count=count,
                meaning=info.meaning,
                cls=info.cls,
            )
        )
    stats = [
        SeriesStats(
            **{
                "label": LABELS[s["key"]],
                "unit": "seconds" if s["key"] in ("latency_p99", "clock_skew") else "ratio",
                "minimum": 0.0,
                "maximum": 1.0,
                "points": 100,
                "text": f"{s['key']} text",
            }
            | s
        )
        for s in series or []
    ]
    return Context(
        exchange=exchange,
        start=0,
        end=2700,
        step=23,
        series=stats,
        counts=items,
        exchanges_up=up or {},
    )


def text_of(d: Any) -> str:
    return " ".join([d.diagnosis, d.impact, *d.action_items])


@pytest.mark.parametrize("alertname", shipped_alertnames())
def test_every_alert_has_specific_actionable_diagnosis(alertname: str) -> None:
    assert alertname in EXPECTED, f"{alertname}: add its expected category and words to EXPECTED"
    category, words = EXPECTED[alertname]
    assert alertname in KNOWLEDGE_BASE
    labels = {"window": "fast"} if alertname == "ExchangeApiAvailabilityBudgetBurn" else {}
    d = diagnose_with_rules(alert(alertname, **labels))
    assert d.source == "rules"
    assert d.root_cause_category == category
    assert 1 <= len(d.action_items) <= 5
    assert d.confidence >= 0.6
    text = text_of(d)
    for word in words:
        assert word in text, f"{alertname}: {word!r} missing from {text!r}"
    assert "{" not in text  # templates filled
    if alertname not in GLOBAL:
        assert "Binance" in text


@pytest.mark.parametrize(
    ("alertname", "channel", "words"),
    [
        ("ExchangeWebSocketStale", "book", "books built from it are frozen"),
        ("ExchangeWebSocketStale", "trades", "a lull"),
        ("ExchangeWebSocketStale", "ticker", "best bid/ask are frozen"),
        ("ExchangeWebSocketLagHigh", "book", "books are behind the market"),
        ("ExchangeWebSocketSequenceGaps", "book", "discarded the local order book"),
        ("ExchangeWebSocketChecksumMismatch", "book", "discarded the local order book"),
    ],
)
def test_stream_alerts_say_what_their_channel_means(
    alertname: str, channel: str, words: str
) -> None:
    """The stream alerts' `channel` label is no template value: its notes carry the meaning."""
    with_channel = text_of(diagnose_with_rules(alert(alertname, channel=channel)))
    assert words in with_channel
    assert words not in text_of(diagnose_with_rules(alert(alertname)))


def test_stream_alerts_blame_our_network_when_every_exchange_is_down() -> None:
    """A stale or down stream while every other exchange is down too: our side, not Binance."""
    everything_down = ctx(up={"bybit": False, "okx": False, "kraken": False})
    for alertname in ("ExchangeWebSocketStale", "ExchangeWebSocketDown"):
        d = diagnose_with_rules(alert(alertname, channel="book"), context=everything_down)
        assert d.root_cause_category == "network", alertname
        assert d.action_items[0].startswith("Check our egress first"), alertname


def test_expected_lists_only_shipped_alerts() -> None:
    assert set(EXPECTED) == set(shipped_alertnames())


def test_exporter_error_codes_are_all_classified() -> None:
    for module in (binance, bybit, okx, kraken):
        for code in module.ERROR_CODES:
            assert code in ERROR_CODES, f"{module.__name__}: {code} unknown to the receiver"
    for code in coinbase.ERROR_CODES:
        assert describe_error_code("coinbase", code).cls != "unknown"
    assert describe_error_code("binance", "other").cls == "unknown"


@pytest.mark.parametrize(
    ("code", "exchange", "cls"),
    [
        ("-1003", "binance", "rate_limit"),
        ("-1021", "binance", "timestamp"),
        ("-2015", "binance", "auth"),
        ("10006", "bybit", "rate_limit"),
        ("10002", "bybit", "timestamp"),
        ("50011", "okx", "rate_limit"),
        ("50001", "okx", "maintenance"),
        ("EAPI:Invalid nonce", "kraken", "timestamp"),
        ("429", "coinbase", "rate_limit"),
    ],
)
def test_codes_distinguish_classes(code: str, exchange: str, cls: str) -> None:
    assert describe_error_code(exchange, code).cls == cls


def test_http_statuses() -> None:
    assert describe_http_status("binance", "418").cls == "ban"
    assert describe_http_status("binance", "403").cls == "waf"
    assert describe_http_status("bybit", "403").cls == "ban"
    assert describe_http_status("okx", "503").cls == "exchange_error"
    assert "UNKNOWN" not in describe_http_status("okx", "503").meaning  # meaning is short
    assert "status unknown" in describe_http_status("okx", "503").meaning


def test_timestamp_codes_turn_error_rate_into_clock_skew() -> None:
    plain = diagnose_with_rules(alert("ExchangeApiErrorRateHigh"))
    assert plain.root_cause_category == "partial_outage"
    d = diagnose_with_rules(
        alert("ExchangeApiErrorRateHigh"),
        context=ctx([("error_code", "-1021", 40), ("result", "api_error", 40)]),
    )
    assert d.root_cause_category == "clock_skew"
    assert "-1021 ×40" in d.diagnosis and "recvWindow" in d.diagnosis
    assert "chronyc" in d.action_items[0]  # clock advice first
    assert sum("chronyc tracking" in a for a in d.action_items) == 1  # not repeated
    assert d.diagnosis != plain.diagnosis


def test_rate_limit_vs_timestamp_vs_auth_codes_change_advice() -> None:
    rl = diagnose_with_rules(
        alert("ExchangeEndpointDown", endpoint="ticker"),
        context=ctx([("error_code", "-1003", 10), ("http_status", "429", 10)]),
    )
    assert rl.root_cause_category == "rate_limit"
    assert "Retry-After" in rl.action_items[0] and "-1003 ×10" in rl.action_items[0]
    auth = diagnose_with_rules(
        alert("ExchangeEndpointDown", endpoint="ticker"),
        context=ctx([("error_code", "-2015", 7)]),
    )
    assert auth.root_cause_category == "auth"
    assert "IP whitelist" in auth.action_items[0]
    bybit_rl = diagnose_with_rules(
        alert("ExchangeApiErrorRateHigh", exchange="bybit"),
        context=ctx([("error_code", "10006", 9)], exchange="bybit"),
    )
    bybit_ts = diagnose_with_rules(
        alert("ExchangeApiErrorRateHigh", exchange="bybit"),
        context=ctx([("error_code", "10002", 9)], exchange="bybit"),
    )
    assert (bybit_rl.root_cause_category, bybit_ts.root_cause_category) == (
        "rate_limit",
        "clock_skew",
    )
    okx_rl = diagnose_with_rules(
        alert("ExchangeApiErrorRateHigh", exchange="okx"),
        context=ctx([("error_code", "50011", 9)], exchange="okx"),
    )
    okx_mt = diagnose_with_rules(
        alert("ExchangeApiErrorRateHigh", exchange="okx"),
        context=ctx([("error_code", "50001", 9)], exchange="okx"),
    )
    assert okx_rl.root_cause_category == "rate_limit"
    assert okx_mt.root_cause_category == "maintenance"
    assert "50001 ×9" in okx_mt.diagnosis


def test_5xx_and_waf_evidence() -> None:
    d = diagnose_with_rules(
        alert("ExchangeApiDown"),
        context=ctx([("http_status", "503", 30)], up={"binance": False, "bybit": True}),
    )
    assert d.root_cause_category == "outage"  # exchange-side: stays an outage
    assert "UNKNOWN execution status" in d.diagnosis
    assert any("execution status is unknown" in a for a in d.action_items)
    assert "Other exchanges answer (1/1 up)" in d.diagnosis
    waf = diagnose_with_rules(
        alert("ExchangeEndpointDown", endpoint="orderbook"),
        context=ctx([("http_status", "403", 12)]),
    )
    assert waf.root_cause_category == "ip_ban"
    assert "WAF" in waf.diagnosis and "egress IP" in waf.action_items[0]


def test_every_exchange_down_means_our_network() -> None:
    d = diagnose_with_rules(
        alert("ExchangeApiDown"),
        context=ctx(
            [("result", "connect_error", 50)],
            up={"binance": False, "bybit": False, "okx": False, "kraken": False},
        ),
    )
    assert d.root_cause_category == "network"
    assert "0/3 up" in d.diagnosis
    assert "DNS" in d.action_items[0]


def test_small_counts_do_not_override() -> None:
    d = diagnose_with_rules(
        alert("ExchangeApiErrorRateHigh"),
        context=ctx([("error_code", "-1021", 1), ("http_status", "503", 20)]),
    )
    assert d.root_cause_category == "partial_outage"
    # Specific alerts keep their category whatever the codes say.
    skew = diagnose_with_rules(
        alert("ExchangeClockSkewHigh"), context=ctx([("error_code", "-1003", 50)])
    )
    assert skew.root_cause_category == "clock_skew"


def test_latency_z_score_and_throttling_prelude() -> None:
    c = ctx(
        series=[
            {
                "key": "latency_p99",
                "current": 1.84,
                "mean": 0.21,
                "std": 0.05,
                "z": 32.6,
                "slope_per_minute": 0.12,
                "trend": "rising",
                "text": "p99 latency 1.84 s (baseline 0.21 ± 0.05 s, z 32.6, rising 0.12 s/min)",
            },
            {
                "key": "rate_limit_usage",
                "current": 0.8,
                "trend": "rising",
                "slope_per_minute": 0.05,
                "text": "rate-limit usage 80%",
            },
        ]
    )
    d = diagnose_with_rules(alert("ExchangeApiLatencyDegraded"), context=c)
    assert (
        "p99 latency is 1.84 s, 32.6 standard deviations above its level before the alert "
        "(0.21 ± 0.05 s), and still rising (0.12 s/min)." in d.diagnosis
    )
    assert "throttling" in d.diagnosis
    assert d.action_items[0].startswith("Cut request weight on Binance now")
    assert d.confidence > diagnose_with_rules(alert("ExchangeApiLatencyDegraded")).confidence


def test_rate_limit_time_to_exhaustion() -> None:
    c = ctx(
        series=[
            {
                "key": "rate_limit_usage",
                "current": 0.8,
                "slope_per_minute": 0.05,
                "trend": "rising",
                "text": "rate-limit usage 80% (rising 5%/min)",
            }
        ]
    )
    d = diagnose_with_rules(alert("ExchangeRateLimitNearExhaustion"), context=c)
    assert "limit is reached in about 4.00 min" in d.diagnosis


@pytest.mark.parametrize(("skew", "word"), [(1.5, "behind"), (-1.5, "ahead of")])
def test_clock_skew_sign_explained(skew: float, word: str) -> None:
    c = ctx(
        series=[
            {
                "key": "clock_skew",
                "current": skew,
                "slope_per_minute": 0.0,
                "trend": "flat",
                "z": 40.0,
                "text": f"clock skew {skew} s",
            }
        ]
    )
    d = diagnose_with_rules(alert("ExchangeClockSkewHigh"), context=c)
    assert f"Our clock is 1.50 s {word} Binance" in d.diagnosis
    assert "step" in d.diagnosis


def test_stale_data_with_skew_points_at_the_clock() -> None:
    c = ctx(
        series=[
            {"key": "clock_skew", "current": 2.0, "trend": "flat", "text": "clock skew +2.00 s"}
        ]
    )
    d = diagnose_with_rules(alert("ExchangeMarketDataStale", endpoint="ticker"), context=c)
    assert d.root_cause_category == "data_quality"
    assert "+2.00 s" in d.diagnosis and "chronyc" in d.action_items[0]


def test_budget_burn_window() -> None:
    slow = diagnose_with_rules(alert("ExchangeApiAvailabilityBudgetBurn", window="slow"))
    assert "Slow burn" in slow.diagnosis


def test_empty_context_changes_nothing_and_hostile_counts_are_safe() -> None:
    plain = diagnose_with_rules(alert("ExchangeApiDown"))
    empty = diagnose_with_rules(alert("ExchangeApiDown"), context=Context(note="down"))
    assert empty.diagnosis == plain.diagnosis
    hostile = ctx([("error_code", "{exchange}" * 50, 5)])
    d = diagnose_with_rules(alert("ExchangeApiErrorRateHigh"), context=hostile)
    assert len(d.diagnosis) <= 2000 and all(len(a) <= 400 for a in d.action_items)


def test_network_alert_lists_failing_exchanges() -> None:
    c = ctx(up={"binance": False, "bybit": False, "okx": True})
    c = c.model_copy(update={"exchange": None})
    d = diagnose_with_rules(alert("ExchangeMonitorNetworkDown"), context=c)
    assert d.root_cause_category == "network"
    assert "Right now 1/3 exchanges have an endpoint answering (failing: binance, bybit)." in (
        d.diagnosis
    )
