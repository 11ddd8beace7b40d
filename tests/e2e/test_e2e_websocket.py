"""End to end: a silent market-data stream is paged for that exchange only, and resolves.

simulator (WebSocket feeds) → exporter stream prober → real Prometheus (shipped rules) → real
Alertmanager (shipped routing) → receiver → JSONL, on the shared stack of tests/conftest.py.

Acceptance (issue 13): ``ws_stall`` on one exchange — the connection stays open, pings are
answered, no market data flows — fires ``ExchangeWebSocketStale`` for that exchange only, and it
resolves after the fault clears. The stack is shared: this test looks only at notifications that
started after its own injection and clears its fault in ``finally``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx
import pytest

from deploy.stack import Stack

pytestmark = pytest.mark.e2e

T = TypeVar("T")

STALLED = "okx"
EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")
ALERT = "ExchangeWebSocketStale"


def _wait(predicate: Callable[[], T], timeout: float, what: str, stack: Stack) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}\n{stack.log_tail(n)}" for n in ("exporter", "receiver"))
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{logs}")
        time.sleep(0.5)


def _query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.urls['prometheus']}/api/v1/query", params={"query": promql}, timeout=5
    )
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def _parse_time(value: str) -> float:
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    return datetime.fromisoformat(value).timestamp()


def _notifications(stack: Stack, since: float) -> list[dict[str, Any]]:
    if not stack.notify_file.exists():
        return []
    lines = stack.notify_file.read_text().splitlines()
    return [
        n
        for n in (json.loads(line) for line in lines if line.strip())
        if n["alertname"] == ALERT and _parse_time(n["starts_at"]) >= since
    ]


def _fault(stack: Stack, body: dict[str, Any]) -> None:
    response = httpx.post(f"{stack.urls['simulator']}/_control/faults", json=body, timeout=5)
    assert response.status_code == 200, response.text


def _streams_flowing(stack: Stack) -> set[str]:
    """Exchanges whose every configured channel is up."""
    return {
        r["metric"]["exchange"] for r in _query(stack, "min by (exchange) (exchange_ws_up) == 1")
    }


def test_ws_stall_fires_websocket_stale_for_that_exchange_only_and_resolves(
    stack: Stack, timings: dict[str, float]
) -> None:
    _wait(
        lambda: _streams_flowing(stack) >= set(EXCHANGES),
        120,
        "every exchange's streams flowing",
        stack,
    )
    injected = time.time()
    _fault(stack, {"exchange": STALLED, "fault": "ws_stall"})
    try:
        firing = _wait(
            lambda: [n for n in _notifications(stack, injected) if n["status"] == "firing"],
            90,
            f"the {ALERT} notification",
            stack,
        )
        timings[f"e2e websocket: ws_stall → {ALERT} notified"] = time.time() - injected
        assert {n["exchange"] for n in firing} == {STALLED}, firing
        # Silence on an open, subscribed connection: the stream was never down (the exporter
        # may replace the silent connection meanwhile, reason "stale", and resubscribe).
        down = _query(stack, f'ALERTS{{alertname="ExchangeWebSocketDown",exchange="{STALLED}"}}')
        assert not down, down
        # The other exchanges keep streaming.
        assert _streams_flowing(stack) >= set(EXCHANGES) - {STALLED}
    finally:
        _fault(stack, {"exchange": STALLED, "fault": "none"})
    cleared = time.time()
    _wait(
        lambda: [n for n in _notifications(stack, injected) if n["status"] == "resolved"],
        120,
        f"the resolved {ALERT} notification",
        stack,
    )
    timings[f"e2e websocket: fault cleared → {ALERT} resolved"] = time.time() - cleared
    others = {n["exchange"] for n in _notifications(stack, injected)} - {STALLED}
    assert not others, f"{ALERT} also notified for {sorted(others)}"
    _wait(lambda: STALLED in _streams_flowing(stack), 60, f"{STALLED} streaming again", stack)
