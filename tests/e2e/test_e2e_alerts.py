"""End to end: the shipped alert rules, routing and inhibition on the real stack.

simulator → exporter → real Prometheus (shipped rules) → real Alertmanager (shipped routing and
inhibit rules) → receiver → JSONL. Only intervals are shortened (see tests/conftest.py); every
`for`, window and threshold is the shipped one.

The stack (and its simulator) is shared with the other end-to-end tests, which may have run a
Binance outage just before (tests/e2e/test_e2e.py): these tests only look at notifications that
started after their own fault injection, wait for leftovers of an earlier incident that are about
to fire, clear their own faults in `finally`, and leave the exchanges healthy.

Acceptance:
- a latency ×4 slowdown while still answering (40 ms baseline → 160 ms on Coinbase) fires
  ExchangeApiLatencyDegraded, and not ExchangeApiLatencyHigh;
- with Binance fully down only ExchangeApiDown reaches the receiver for Binance: the symptom
  alerts that fire in Prometheus meanwhile are muted by Alertmanager's inhibit rules.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

import httpx
import pytest

from deploy.stack import Stack
from testsupport.e2e import query, wait

pytestmark = pytest.mark.e2e

T = TypeVar("T")

EXCHANGES = {"binance", "bybit", "okx", "coinbase", "kraken"}
LATENCY_EXCHANGE = "coinbase"  # three endpoints probed every 5 s, no rate-limit headers
BASELINE_MS = 40
SLOW_MS = 4 * BASELINE_MS
BASELINE_S = 70.0  # at the baseline before the slowdown: the 1m median must be at 40 ms
# The circuit opens during a full Binance outage, but ExchangeCircuitOpen stays quiet in its
# rule while ExchangeApiDown fires (and for its `for` after it), so that it is not sent as a
# late second message once the outage resolves (issue 18). Symptoms that do fire in Prometheus
# (the WebSocket streams, dropped by the same fault) must be muted by Alertmanager.
OUTAGE_SYMPTOM = "ExchangeCircuitOpen"
SYMPTOM_WAIT_S = 40.0


# --------------------------------------------------------------------------------------------
# helpers


def _get(url: str, **params: str) -> Any:
    response = httpx.get(url, params=params, timeout=5)
    response.raise_for_status()
    return response.json()


def _prometheus_alerts(stack: Stack, exchange: str) -> list[dict[str, Any]]:
    """Pending and firing alerts of one exchange, as Prometheus sees them."""
    alerts = _get(f"{stack.urls['prometheus']}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("exchange") == exchange]


def _firing(stack: Stack, exchange: str) -> set[str]:
    return {
        a["labels"]["alertname"]
        for a in _prometheus_alerts(stack, exchange)
        if a["state"] == "firing"
    }


def _rule_durations(stack: Stack) -> dict[str, float]:
    """alertname -> its `for` in seconds (the longest, for two-level alerts)."""
    groups = _get(f"{stack.urls['prometheus']}/api/v1/rules", type="alert")["data"]["groups"]
    durations: dict[str, float] = {}
    for group in groups:
        for rule in group["rules"]:
            durations[rule["name"]] = max(durations.get(rule["name"], 0.0), rule["duration"])
    return durations


def _alertmanager_alerts(stack: Stack, exchange: str) -> list[dict[str, Any]]:
    alerts = _get(f"{stack.urls['alertmanager']}/api/v2/alerts")
    return [a for a in alerts if a["labels"].get("exchange") == exchange]


def _parse_time(value: str) -> float:
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    return datetime.fromisoformat(value).timestamp()


def _notifications(stack: Stack) -> list[dict[str, Any]]:
    if not stack.notify_file.exists():
        return []
    lines = stack.notify_file.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _firing_since(stack: Stack, exchange: str, since: float) -> list[dict[str, Any]]:
    """Firing notifications of an exchange whose alert started at or after `since`."""
    return [
        n
        for n in _notifications(stack)
        if n["exchange"] == exchange
        and n["status"] == "firing"
        and _parse_time(n["starts_at"]) >= since
    ]


def _fault(stack: Stack, body: dict[str, Any]) -> None:
    response = httpx.post(f"{stack.urls['simulator']}/_control/faults", json=body, timeout=5)
    assert response.status_code == 200, response.text


def _exchanges_up(stack: Stack) -> set[str]:
    return {
        r["metric"]["exchange"] for r in query(stack, "min by (exchange) (exchange_api_up) == 1")
    }


def _settle(stack: Stack, exchange: str, horizon: float) -> None:
    """Let alerts of an earlier incident that are pending and would fire within `horizon`
    seconds fire first, so that they cannot be mistaken for (or race with) ours."""
    durations = _rule_durations(stack)

    def nothing_about_to_fire() -> bool:
        now = time.time()
        for alert in _prometheus_alerts(stack, exchange):
            if alert["state"] != "pending":
                continue
            fires_at = _parse_time(alert["activeAt"]) + durations.get(
                alert["labels"]["alertname"], 0
            )
            if fires_at <= now + horizon:
                return False
        return True

    wait(nothing_about_to_fire, 150, f"earlier {exchange} alerts to settle", stack)


@pytest.fixture(scope="module")
def latency_baseline(stack: Stack) -> Iterator[float]:
    """Coinbase answering at a steady 40 ms from the start of this module (the baseline runs
    while the Binance outage test does). Yields when the baseline started (monotonic)."""
    wait(lambda: _exchanges_up(stack) >= EXCHANGES, 90, "every exchange up", stack)
    _fault(stack, {"exchange": LATENCY_EXCHANGE, "fault": "latency", "latency_ms": BASELINE_MS})
    try:
        yield time.monotonic()
    finally:
        _fault(stack, {"exchange": LATENCY_EXCHANGE, "fault": "none"})


@pytest.fixture(scope="module")
def binance_outage(stack: Stack) -> Iterator[dict[str, float]]:
    """Where the Binance outage test records its injection time. At the end of the module
    (while the latency test has been running meanwhile) Binance must be answering again and
    its ExchangeApiDown resolved, so that the stack is left healthy."""
    state: dict[str, float] = {}
    yield state
    if "injected" not in state:
        return
    wait(lambda: "binance" in _exchanges_up(stack), 90, "binance up again", stack)
    wait(
        lambda: [
            n
            for n in _notifications(stack)
            if n["alertname"] == "ExchangeApiDown"
            and n["exchange"] == "binance"
            and n["status"] == "resolved"
            and _parse_time(n["starts_at"]) >= state["injected"]
        ],
        60,
        "the resolved ExchangeApiDown notification for binance",
        stack,
    )


# --------------------------------------------------------------------------------------------
# tests (in this order: the Binance outage runs while Coinbase builds its 40 ms baseline)


def test_binance_outage_reaches_the_receiver_only_as_exchange_api_down(
    stack: Stack,
    latency_baseline: float,
    binance_outage: dict[str, float],
    timings: dict[str, float],
) -> None:
    wait(lambda: _exchanges_up(stack) >= EXCHANGES, 90, "every exchange up", stack)
    # A previous Binance incident (tests/e2e/test_e2e.py) may leave alerts pending; one firing in
    # the first seconds of our outage, before ExchangeApiDown, would be notified.
    _settle(stack, "binance", horizon=45)
    injected = binance_outage["injected"] = time.time()
    _fault(stack, {"exchange": "binance", "fault": "down"})
    try:
        down = wait(
            lambda: [
                n
                for n in _firing_since(stack, "binance", injected)
                if n["alertname"] == "ExchangeApiDown"
            ],
            90,
            "the ExchangeApiDown notification for binance",
            stack,
        )
        timings["e2e alerts: binance down → ExchangeApiDown notified"] = time.time() - injected
        assert down[0]["severity"] == "critical"
        assert down[0]["receiver"] == "exchange-watch-critical"

        # The circuit opens, and its alert stays quiet in the rule during the outage ...
        wait(
            lambda: query(stack, 'exchange_circuit_state{exchange="binance"} > 0'),
            60,
            "the binance circuit to open",
            stack,
        )
        # ... while the symptoms that do fire in Prometheus (given time for their `for`) ...
        deadline = time.monotonic() + SYMPTOM_WAIT_S
        while time.monotonic() < deadline:
            assert OUTAGE_SYMPTOM not in _firing(stack, "binance")
            time.sleep(2)
        symptoms = _firing(stack, "binance") - {"ExchangeApiDown"}
        assert OUTAGE_SYMPTOM not in symptoms

        # ... are all held muted by ExchangeApiDown in Alertmanager.
        def all_muted() -> list[dict[str, Any]]:
            held = _alertmanager_alerts(stack, "binance")
            names = {a["labels"]["alertname"] for a in held}
            others = [a for a in held if a["labels"]["alertname"] != "ExchangeApiDown"]
            if not symptoms <= names or not all(a["status"]["inhibitedBy"] for a in others):
                return []
            return held

        held = wait(all_muted, 15, f"Alertmanager to mute {sorted(symptoms)}", stack)
        [api_down] = [a for a in held if a["labels"]["alertname"] == "ExchangeApiDown"]
        assert api_down["status"]["state"] == "active", "ExchangeApiDown itself must not be muted"
        for alert in held:
            if alert["labels"]["alertname"] != "ExchangeApiDown":
                assert alert["status"]["state"] == "suppressed", alert

        # Give the receiver a moment for anything Alertmanager might still send, then: only
        # ExchangeApiDown reached it for Binance since the injection.
        time.sleep(3)
        notified = sorted({n["alertname"] for n in _firing_since(stack, "binance", injected)})
        assert notified == ["ExchangeApiDown"], (
            f"muted symptoms {sorted(symptoms)} but the receiver got {notified}"
        )
        timings["e2e alerts: binance outage checked"] = time.time() - injected
    finally:
        _fault(stack, {"exchange": "binance", "fault": "none"})


def test_fourfold_latency_fires_latency_degraded_not_latency_high(
    stack: Stack, latency_baseline: float, timings: dict[str, float]
) -> None:
    exchange = LATENCY_EXCHANGE
    # The baseline: over a minute at 40 ms (already running during the previous test). The
    # 6-hour baseline ends 2 minutes before each evaluation, so the slowdown cannot pull it
    # up while the alert is pending, however young the stack.
    remaining = BASELINE_S - (time.monotonic() - latency_baseline)
    if remaining > 0:
        time.sleep(remaining)
    [p50] = query(
        stack, f'exchange:exchange_api_request_duration_seconds:p50_1m{{exchange="{exchange}"}}'
    )
    assert 0.025 <= float(p50["value"][1]) <= 0.05, f"baseline median not ~40 ms: {p50}"
    # 40 ms is many times the simulator's usual ~3 ms, but below the 0.1 s floor: quiet.
    assert not {a["labels"]["alertname"] for a in _prometheus_alerts(stack, exchange)} & {
        "ExchangeApiLatencyDegraded",
        "ExchangeApiLatencyHigh",
    }

    slowed = time.time()
    _fault(stack, {"exchange": exchange, "fault": "latency", "latency_ms": SLOW_MS})
    try:
        seen_high: list[dict[str, Any]] = []

        def degraded_firing() -> bool:
            alerts = _prometheus_alerts(stack, exchange)
            seen_high.extend(
                a for a in alerts if a["labels"]["alertname"] == "ExchangeApiLatencyHigh"
            )
            return any(
                a["labels"]["alertname"] == "ExchangeApiLatencyDegraded" and a["state"] == "firing"
                for a in alerts
            )

        wait(degraded_firing, 180, "ExchangeApiLatencyDegraded firing", stack)
        timings["e2e alerts: latency ×4 → ExchangeApiLatencyDegraded firing"] = time.time() - slowed
        notified = wait(
            lambda: [
                n
                for n in _firing_since(stack, exchange, slowed)
                if n["alertname"] == "ExchangeApiLatencyDegraded"
            ],
            30,
            "the ExchangeApiLatencyDegraded notification",
            stack,
        )
        assert notified[0]["severity"] == "warning"
        assert notified[0]["receiver"] == "exchange-watch-warning"
        # Still answering: no outage, and the absolute p99 alert (1 s) never even went pending.
        assert not seen_high, f"ExchangeApiLatencyHigh went {seen_high[0]['state']}"
        assert "ExchangeApiDown" not in _firing(stack, exchange)
        assert not [
            n
            for n in _firing_since(stack, exchange, slowed)
            if n["alertname"] == "ExchangeApiLatencyHigh"
        ]
    finally:
        _fault(stack, {"exchange": exchange, "fault": "none"})
