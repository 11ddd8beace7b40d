"""End to end: market integrity on the real stack.

simulator (normal market, then faults) → exporter market data (streams and REST tickers) → real
Prometheus (shipped recording and alerting rules) → real Alertmanager (shipped routing) →
receiver → JSONL, on the shared stack of tests/conftest.py.

Acceptance (issue 15):
- ``price_offset`` on one exchange fires ``ExchangePriceDeviation`` for that exchange only, with
  root cause ``data_quality`` (the rule engine's: the LLM stand-in answers after the receiver's
  timeout, as in tests/e2e/test_e2e_keys.py), and it resolves once the offset is gone;
- a maintenance window announced in the simulator fires ``ExchangeMaintenanceScheduled`` before
  the window and ``ExchangeMaintenance`` inside it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from deploy.stack import Stack
from testsupport.e2e import notifications, parse_time, query, wait
from testsupport.fake_llm import FakeLLM, answering_late

pytestmark = pytest.mark.e2e


EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")
OFFSET_EXCHANGE = "okx"
OFFSET_BPS = 300  # six times the shipped price_deviation_bps (50)
MAINTENANCE_EXCHANGE = "bybit"  # its status endpoint is probed every 5 s in the demo schedule
LLM_DELAY_S = 8.0  # above the stack's LLM_TIMEOUT_SECONDS (3 s): the rule engine diagnoses


def _fresh_btc_quotes(stack: Stack) -> set[str]:
    """Exchanges whose BTC price group quote was updated in the last 30 s."""
    result = query(
        stack,
        'time() - exchange_market_last_update_timestamp_seconds{price_group="BTC/USD"} < 30',
    )
    return {r["metric"]["exchange"] for r in result}


def _post(stack: Stack, path: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{stack.urls['simulator']}{path}", json=body, timeout=5)
    assert response.status_code == 200, response.text


def test_price_offset_fires_deviation_for_that_exchange_only_with_root_cause_data_quality(
    stack: Stack, fake_llm: FakeLLM, timings: dict[str, float]
) -> None:
    alert = "ExchangePriceDeviation"
    wait(lambda: _fresh_btc_quotes(stack) >= set(EXCHANGES), 120, "fresh BTC quotes", stack)
    with answering_late(fake_llm, LLM_DELAY_S):
        injected = time.time()
        _post(
            stack,
            "/_control/faults",
            {"exchange": OFFSET_EXCHANGE, "fault": "price_offset", "bps": OFFSET_BPS},
        )
        try:
            firing = wait(
                lambda: [
                    n for n in notifications(stack, alert, injected) if n["status"] == "firing"
                ],
                180,
                f"the {alert} notification",
                stack,
            )
            timings[f"e2e market: price_offset → {alert} notified"] = time.time() - injected
            assert {n["exchange"] for n in firing} == {OFFSET_EXCHANGE}, firing
            diagnosis = firing[0]["diagnosis"]
            assert diagnosis["source"] == "rules", diagnosis
            assert diagnosis["root_cause_category"] == "data_quality", diagnosis
        finally:
            _post(stack, "/_control/faults", {"exchange": OFFSET_EXCHANGE, "fault": "none"})
    cleared = time.time()
    wait(
        lambda: [n for n in notifications(stack, alert, injected) if n["status"] == "resolved"],
        180,
        f"the resolved {alert} notification",
        stack,
    )
    timings[f"e2e market: offset cleared → {alert} resolved"] = time.time() - cleared
    others = {n["exchange"] for n in notifications(stack, alert, injected)} - {OFFSET_EXCHANGE}
    assert not others, f"{alert} also notified for {sorted(others)}"


def test_announced_maintenance_fires_scheduled_before_and_maintenance_inside(
    stack: Stack, timings: dict[str, float]
) -> None:
    announced = time.time()
    starts_at = announced + 75.0
    ends_at = starts_at + 60.0
    _post(
        stack,
        "/_control/maintenance",
        {"exchange": MAINTENANCE_EXCHANGE, "starts_at": starts_at, "ends_at": ends_at},
    )
    try:
        scheduled = wait(
            lambda: [
                n
                for n in notifications(stack, "ExchangeMaintenanceScheduled", announced - 5)
                if n["status"] == "firing" and n["exchange"] == MAINTENANCE_EXCHANGE
            ],
            120,
            "the ExchangeMaintenanceScheduled notification",
            stack,
        )
        notified = parse_time(scheduled[0]["notified_at"])
        timings["e2e market: announced → ExchangeMaintenanceScheduled notified"] = (
            notified - announced
        )
        assert notified < starts_at, "the notice came after the window opened"
        inside = wait(
            lambda: [
                n
                for n in notifications(stack, "ExchangeMaintenance", starts_at - 10)
                if n["status"] == "firing" and n["exchange"] == MAINTENANCE_EXCHANGE
            ],
            150,
            "the ExchangeMaintenance notification inside the window",
            stack,
        )
        assert parse_time(inside[0]["starts_at"]) >= starts_at - 10
    finally:
        httpx.delete(f"{stack.urls['simulator']}/_control/maintenance", timeout=5)
    wait(
        lambda: not query(stack, f'exchange_maintenance{{exchange="{MAINTENANCE_EXCHANGE}"}} == 1'),
        120,
        "the maintenance to end",
        stack,
    )
