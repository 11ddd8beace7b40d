"""The failure kinds a probe can meet, as simulator faults on one endpoint of one exchange.

One catalogue for every test and benchmark that asks "what if this endpoint keeps failing like
that?" (``benchmarks/bench_soak_faults.py``, the exporter's partial-outage tests): the fault body
of ``POST /_control/faults`` for each kind, or None where the exchange documents no such answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "API_ERROR_CODES",
    "FAILURE_KINDS",
    "WS_FAULT_KINDS",
    "WS_LAG_MS",
    "endpoint_fault",
    "ws_fault",
]

FAILURE_KINDS: tuple[str, ...] = (
    "http_error",
    "reset",
    "hang",
    "rate_limited",
    "banned",
    "api_error",
    "maintenance",
    "slow_body",
)
"""HTTP 502, TCP reset, no answer, the exchange's rate-limit answer, its IP-ban answer, a
documented error that is not a rate limit, maintenance (on the status endpoint), and a body too
slow to finish within a probe's timeout."""

API_ERROR_CODES: Mapping[str, Any] = {
    "binance": -1000,  # UNKNOWN (Binance spot errors.md)
    "bybit": 10016,  # server error (Bybit v5 error codes)
    "okx": 50026,  # system error (OKX v5 error codes)
    "coinbase": 500,  # Coinbase Exchange: the HTTP status is the error
    "kraken": "EGeneral:Internal error",  # Kraken REST error strings
}
"""A documented error code per exchange that is neither a rate limit, a ban nor maintenance."""

_NO_BAN = frozenset({"okx", "coinbase"})  # no documented IP-ban answer
_NO_STATUS = frozenset({"coinbase"})  # no system-status API

_SIMPLE: Mapping[str, dict[str, Any]] = {
    "http_error": {"fault": "http_error", "status": 502},
    "reset": {"fault": "reset"},
    "hang": {"fault": "hang"},
    "rate_limited": {"fault": "rate_limited"},
    "banned": {"fault": "banned"},
    "slow_body": {"fault": "slow_body"},
}


def endpoint_fault(kind: str, exchange: str, endpoint: str) -> dict[str, Any] | None:
    """The ``POST /_control/faults`` body that makes ``endpoint`` of ``exchange`` fail with
    ``kind`` (one of :data:`FAILURE_KINDS`); ``maintenance`` always targets ``status``.

    Returns:
        The body, or None where the exchange has no such answer (an IP ban on OKX or Coinbase,
        maintenance on Coinbase).

    Raises:
        ValueError: ``kind`` is not a failure kind.
    """
    if kind == "api_error":
        return {"exchange": exchange, "endpoint": endpoint, "fault": kind,
                "code": API_ERROR_CODES[exchange]}  # fmt: skip
    if kind == "maintenance":
        if exchange in _NO_STATUS:
            return None
        return {"exchange": exchange, "endpoint": "status", "fault": kind}
    if kind == "banned" and exchange in _NO_BAN:
        return None
    if kind not in _SIMPLE:
        raise ValueError(f"unknown failure kind {kind!r}; known: {', '.join(FAILURE_KINDS)}")
    return {"exchange": exchange, "endpoint": endpoint, **_SIMPLE[kind]}


WS_FAULT_KINDS: tuple[str, ...] = (
    "ws_stall",
    "ws_blackhole",
    "ws_disconnect",
    "ws_lag",
    "ws_gap",
    "ws_checksum",
    "ws_reject",
    "ws_maintenance_notice",
)
"""The WebSocket fault kinds (same names as :data:`simulator.faults.WS_FAULT_KINDS`): a stream
that stays open and goes quiet, one that answers nothing, a server close, lagging data, skipped
sequence numbers, wrong book checksums, refused subscriptions, a maintenance notice."""

WS_LAG_MS = 2000
"""``lag_ms`` of the catalogue's ``ws_lag`` body: far above any loopback delivery time."""

_WS_CHECKSUM = frozenset({"okx", "kraken"})  # books with a checksum [OKX-MD, KR-CKS2]


def ws_fault(kind: str, exchange: str) -> dict[str, Any] | None:
    """The ``POST /_control/faults`` body that applies WebSocket fault ``kind`` (one of
    :data:`WS_FAULT_KINDS`) to every stream of ``exchange``: ``ws_lag`` with ``lag_ms``
    :data:`WS_LAG_MS`, ``ws_disconnect`` with close code 1001 ("going away"), the others without
    parameters.

    Returns:
        The body, or None where the exchange has no such thing (``ws_checksum`` on Binance,
        Bybit and Coinbase, whose books carry no checksum).

    Raises:
        ValueError: ``kind`` is not a WebSocket fault kind.
    """
    if kind not in WS_FAULT_KINDS:
        raise ValueError(
            f"unknown WebSocket fault kind {kind!r}; known: {', '.join(WS_FAULT_KINDS)}"
        )
    if kind == "ws_checksum" and exchange not in _WS_CHECKSUM:
        return None
    body: dict[str, Any] = {"exchange": exchange, "fault": kind}
    if kind == "ws_lag":
        body["lag_ms"] = WS_LAG_MS
    elif kind == "ws_disconnect":
        body["close_code"] = 1001
    return body
