"""Where the time went: request phases steer latency diagnoses; DNS and TLS failure classes."""

from __future__ import annotations

import pytest

from receiver.diagnosis.codes import CLASS_CATEGORY, describe_result
from receiver.diagnosis.knowledge import KNOWLEDGE_BASE, RUNBOOKS, lookup_rule
from receiver.diagnosis.pathhealth import increase, slowed
from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import CodeCount, Context, Diagnosis, PathState, PhaseTiming
from receiver.models import Alert

END = 1_795_246_620.0
DAY = 86400.0

#: (phase, now, before) seconds of a healthy path.
NORMAL = {
    "resolve": (0.002, 0.002),
    "connect": (0.012, 0.012),
    "tls": (0.04, 0.04),
    "processing": (0.085, 0.085),
    "transfer": (0.001, 0.001),
}


def alert(alertname: str = "ExchangeApiLatencyHigh", **labels: str) -> Alert:
    base = {"alertname": alertname, "severity": "warning", "exchange": "binance"}
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": base | labels,
            "annotations": {"summary": f"{alertname} summary"},
            "startsAt": "2026-11-21T07:22:00Z",
            "fingerprint": "f",
        }
    )


def path(expiry: float | None = None, **changed: tuple[float | None, float | None]) -> PathState:
    values = NORMAL | changed
    return PathState(
        phases=[PhaseTiming(phase=p, now=n, before=b) for p, (n, b) in values.items()],  # type: ignore[arg-type]
        window=1200,
        baseline_window=1500,
        tls_cert_expiry=expiry,
    )


def context(
    state: PathState | None = None,
    results: list[tuple[str, float]] | None = None,
    up: dict[str, bool] | None = None,
) -> Context:
    counts = [
        CodeCount(
            kind="result",
            code=code,
            endpoint="ticker",
            count=count,
            meaning=describe_result(code).meaning,
            cls=describe_result(code).cls,
        )
        for code, count in results or []
    ]
    return Context(
        exchange="binance",
        start=END - 2700,
        end=END,
        step=23,
        counts=counts,
        exchanges_up=up if up is not None else {"bybit": True, "okx": True},
        path=state,
    )


def diagnose(a: Alert, ctx: Context) -> Diagnosis:
    return diagnose_with_rules(a, context=ctx)


# --- latency alerts: where the time went ------------------------------------------------------


@pytest.mark.parametrize("alertname", ["ExchangeApiLatencyHigh", "ExchangeApiLatencyDegraded"])
def test_slow_tls_and_connect_point_at_the_network_path(alertname: str) -> None:
    d = diagnose(alert(alertname), context(path(connect=(0.31, 0.012), tls=(1.2, 0.04))))
    assert d.root_cause_category == "network"
    # The phases are evidence, each against its own value before the alert.
    assert (
        "Request phases of the probes (average, last 20 min against the 25 min before the "
        "alert): resolve 2.00 ms (before 2.00 ms), connect 310 ms (before 12.0 ms), tls 1.20 s "
        "(before 40.0 ms), processing 85.0 ms (before 85.0 ms)" in d.diagnosis
    )
    assert "Connection setup slowed (TCP connect 12.0 ms → 310 ms, TLS handshake" in d.diagnosis
    assert "the network path" in d.diagnosis and "egress proxy" in d.diagnosis
    assert d.action_items[0].startswith("Find where connection setup slows first")
    assert "Binance API host" in d.action_items[0] and "egress proxy" in d.action_items[0]
    # The network-path runbook's texts, not the "whole network down" ones.
    assert d.rollback_plan == RUNBOOKS["network_path"].rollback
    assert "cut off" in d.impact and "every venue" not in d.impact.lower()
    plain = diagnose_with_rules(alert(alertname))
    assert plain.root_cause_category == "latency_degradation"


def test_slow_tls_alone_names_a_middlebox() -> None:
    d = diagnose(alert(), context(path(tls=(0.9, 0.04))))
    assert d.root_cause_category == "network"
    assert "The TLS handshake slowed (TLS handshake 40.0 ms → 900 ms)" in d.diagnosis
    assert "while the TCP connect did not (12.0 ms → 12.0 ms)" in d.diagnosis
    assert "TLS-inspecting middlebox" in d.diagnosis


def test_slow_processing_is_the_exchange_backend() -> None:
    quiet = diagnose(alert(), context(path()))
    d = diagnose(alert(), context(path(processing=(1.4, 0.085))))
    assert d.root_cause_category == "latency_degradation"
    assert "The time went into Binance's processing (request sent to first byte: 85.0 ms → " in (
        d.diagnosis
    )
    assert "Binance's backend is slow" in d.diagnosis and "not our network path" in d.diagnosis
    assert d.action_items[0].startswith("Treat the slowdown as Binance-side")
    assert d.confidence > quiet.confidence  # the phases confirm the exchange-side slowdown


def test_slow_resolve_is_our_dns() -> None:
    d = diagnose(alert(), context(path(resolve=(0.8, 0.002))))
    assert d.root_cause_category == "network"
    assert "DNS resolution slowed (DNS 2.00 ms → 800 ms): our resolver" in d.diagnosis
    assert d.action_items[0].startswith("Check our DNS resolver from the exporter host first")


def test_slow_transfer_is_bandwidth_or_larger_answers() -> None:
    d = diagnose(alert(), context(path(transfer=(0.6, 0.001))))
    assert d.root_cause_category == "latency_degradation"
    assert "transferring the answers" in d.diagnosis and "bandwidth" in d.diagnosis
    assert "bandwidth" in d.action_items[0]


def test_the_phase_that_added_most_time_decides() -> None:
    # Both slowed; processing added 1.3 s, connection setup 0.2 s.
    state = path(processing=(1.4, 0.085), connect=(0.2, 0.012))
    found = slowed(state)
    assert found is not None and found[0] == "backend"
    assert diagnose(alert(), context(state)).root_cause_category == "latency_degradation"


def test_small_or_relative_only_changes_do_not_count() -> None:
    assert increase(PhaseTiming(phase="tls", now=0.07, before=0.04)) == 0  # +30 ms
    assert increase(PhaseTiming(phase="processing", now=1.1, before=1.0)) == 0  # +10 %
    assert increase(PhaseTiming(phase="tls", now=None, before=0.04)) == 0  # keep-alive only
    # No value before (no new connection then): only a plainly slow phase counts.
    assert increase(PhaseTiming(phase="connect", now=0.3, before=None)) == 0
    assert increase(PhaseTiming(phase="connect", now=1.5, before=None)) == 1.5
    d = diagnose(alert(), context(path()))
    assert d.root_cause_category == "latency_degradation"
    assert "Request phases of the probes" in d.diagnosis  # the breakdown is shown anyway
    assert not d.action_items[0].startswith("Find where connection setup slows")


def test_phases_do_not_override_other_causes() -> None:
    # Every other exchange down too: our network, whatever the phases say.
    everything_down = context(
        path(tls=(1.2, 0.04)), up={"bybit": False, "okx": False, "kraken": False}
    )
    d = diagnose(alert(), everything_down)
    assert d.action_items[0].startswith("Check our egress first")
    assert "Request phases of the probes" not in d.diagnosis
    # Not a latency alert: the phases are context, not evidence.
    outage = diagnose(alert("ExchangeApiDown"), context(path(tls=(1.2, 0.04))))
    assert outage.root_cause_category == "outage"
    assert "Request phases" not in outage.diagnosis


# --- DNS and TLS failures ---------------------------------------------------------------------


def test_result_classes() -> None:
    assert describe_result("dns_error").cls == "dns"
    assert describe_result("tls_error").cls == "tls"
    assert CLASS_CATEGORY["dns"] == CLASS_CATEGORY["tls"] == "network"
    connect = describe_result("connect_error")
    assert connect.cls == "network" and CLASS_CATEGORY["network"] is None
    assert "refused" in connect.meaning and "DNS" not in connect.meaning
    assert "TLS" not in connect.meaning


def test_dns_errors_point_at_dns() -> None:
    d = diagnose(alert("ExchangeApiDown"), context(results=[("dns_error", 40)]))
    assert d.root_cause_category == "network"
    assert "DNS failures over the window (dns_error ×40 on ticker)" in d.diagnosis
    assert d.action_items[0].startswith("Check name resolution from the exporter host")
    assert "dig" in d.action_items[0]
    assert "The path between us and Binance" in d.diagnosis  # the network-path runbook
    # Few DNS errors among many timeouts: no override.
    mixed = diagnose(alert("ExchangeApiDown"), context(results=[("dns_error", 2), ("timeout", 40)]))
    assert mixed.root_cause_category == "outage"


def test_tls_errors_point_at_the_path_and_quote_the_certificate() -> None:
    ctx = context(path(expiry=END - 2 * DAY), results=[("tls_error", 30)])
    d = diagnose(alert("ExchangeApiDown"), ctx)
    assert d.root_cause_category == "network"
    assert "TLS handshake failures over the window (tls_error ×30 on ticker)" in d.diagnosis
    assert "openssl s_client" in d.action_items[0] and "tls.ca_file" in d.action_items[0]
    assert "The earliest certificate of the chain presented for Binance expired 2.0 d ago (" in (
        d.diagnosis
    )


def test_tls_certificate_expiring_alert() -> None:
    entry = KNOWLEDGE_BASE["ExchangeTlsCertExpiringSoon"]
    assert entry.severities == ("warning",) and entry.scope == "exchange"
    assert entry.category == "network" and not entry.blame_network
    plain = diagnose_with_rules(alert("ExchangeTlsCertExpiringSoon"))
    first = plain.action_items[0]
    assert first.startswith("Find which certificate in the chain expires")
    assert "tls.ca_file" in first and "proxy" in first and "renew" in first
    assert "TLS-inspecting" in plain.diagnosis
    ctx = context(path(expiry=END + 6.5 * DAY))
    d = diagnose(alert("ExchangeTlsCertExpiringSoon"), ctx)
    assert d.root_cause_category == "network"
    assert "The earliest certificate of the chain presented for Binance expires in 6.5 d (" in (
        d.diagnosis
    )
    assert d.confidence > plain.confidence
    # Every other exchange down does not make an expiring certificate our network.
    down = diagnose(
        alert("ExchangeTlsCertExpiringSoon"),
        context(up={"bybit": False, "okx": False, "kraken": False}),
    )
    assert down.action_items[0] == first


def test_dns_failing_everywhere_is_our_resolver() -> None:
    entry = KNOWLEDGE_BASE["ExchangeMonitorDnsFailing"]
    assert entry.scope == "global" and entry.severities == ("critical",)
    d = diagnose_with_rules(alert("ExchangeMonitorDnsFailing"))
    assert d.root_cause_category == "network"
    assert "our resolver" in d.diagnosis and "dig" in d.action_items[0]


def test_unknown_tls_alert_names_use_the_network_path_runbook() -> None:
    assert lookup_rule("ExchangeTlsHandshakeBroken") is RUNBOOKS["network_path"]
