"""The failure-kind catalogue (simulator.failure_kinds): every body it gives is a fault the
simulator accepts, and it gives None exactly where the exchange documents no such answer."""

from __future__ import annotations

import httpx
import pytest

from simulator.failure_kinds import FAILURE_KINDS, endpoint_fault

EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")
MISSING = {("okx", "banned"), ("coinbase", "banned"), ("coinbase", "maintenance")}


@pytest.mark.e2e
@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_every_fault_is_accepted_or_documented_missing(client: httpx.Client, kind: str) -> None:
    for exchange in EXCHANGES:
        fault = endpoint_fault(kind, exchange, "ticker")
        if (exchange, kind) in MISSING:
            assert fault is None
            continue
        assert fault is not None and fault["exchange"] == exchange
        reply = client.post("/_control/faults", json=fault)
        assert reply.status_code == 200, (exchange, kind, reply.text)


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown failure kind 'flaky'; known: http_error"):
        endpoint_fault("flaky", "binance", "ticker")
