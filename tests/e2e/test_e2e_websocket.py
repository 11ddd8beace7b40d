"""End to end: a silent market-data stream is paged for that exchange only, and resolves.

simulator (WebSocket feeds) → exporter stream prober → real Prometheus (shipped rules) → real
Alertmanager (shipped routing) → receiver → JSONL, on the shared stack of tests/conftest.py.

Acceptance (issue 13): ``ws_stall`` on one exchange — the connection stays open, pings are
answered, no market data flows — fires ``ExchangeWebSocketStale`` for that exchange only, and it
resolves after the fault clears. The stack is shared: this test looks only at notifications that
started after its own injection and clears its fault in ``finally``.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

import httpx
import pytest

from deploy.stack import Stack
from testsupport.e2e import notifications, query, wait

pytestmark = pytest.mark.e2e

T = TypeVar("T")

STALLED = "okx"
EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")
ALERT = "ExchangeWebSocketStale"


def _fault(stack: Stack, body: dict[str, Any]) -> None:
    response = httpx.post(f"{stack.urls['simulator']}/_control/faults", json=body, timeout=5)
    assert response.status_code == 200, response.text


def _streams_flowing(stack: Stack) -> set[str]:
    """Exchanges whose every configured channel is up."""
    return {
        r["metric"]["exchange"] for r in query(stack, "min by (exchange) (exchange_ws_up) == 1")
    }


def test_ws_stall_fires_websocket_stale_for_that_exchange_only_and_resolves(
    stack: Stack, timings: dict[str, float]
) -> None:
    wait(
        lambda: _streams_flowing(stack) >= set(EXCHANGES),
        120,
        "every exchange's streams flowing",
        stack,
    )
    injected = time.time()
    _fault(stack, {"exchange": STALLED, "fault": "ws_stall"})
    try:
        firing = wait(
            lambda: [n for n in notifications(stack, ALERT, injected) if n["status"] == "firing"],
            90,
            f"the {ALERT} notification",
            stack,
        )
        timings[f"e2e websocket: ws_stall → {ALERT} notified"] = time.time() - injected
        assert {n["exchange"] for n in firing} == {STALLED}, firing
        # Silence on an open, subscribed connection: the stream was never down (the exporter
        # may replace the silent connection meanwhile, reason "stale", and resubscribe).
        down = query(stack, f'ALERTS{{alertname="ExchangeWebSocketDown",exchange="{STALLED}"}}')
        assert not down, down
        # The other exchanges keep streaming.
        assert _streams_flowing(stack) >= set(EXCHANGES) - {STALLED}
    finally:
        _fault(stack, {"exchange": STALLED, "fault": "none"})
    cleared = time.time()
    wait(
        lambda: [n for n in notifications(stack, ALERT, injected) if n["status"] == "resolved"],
        120,
        f"the resolved {ALERT} notification",
        stack,
    )
    timings[f"e2e websocket: fault cleared → {ALERT} resolved"] = time.time() - cleared
    others = {n["exchange"] for n in notifications(stack, ALERT, injected)} - {STALLED}
    assert not others, f"{ALERT} also notified for {sorted(others)}"
    wait(lambda: STALLED in _streams_flowing(stack), 60, f"{STALLED} streaming again", stack)
