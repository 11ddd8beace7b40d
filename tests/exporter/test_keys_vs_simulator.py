"""The key prober against the simulator, per exchange: an accepted key, then every API-key fault
and every real condition, each moving ``exchange_api_key_up`` and the right ``result``.

Where an exchange documents no distinct answer for a condition (Binance's one ``-2015``, OKX and
Kraken expiry, Coinbase IP and expiry), the expected result is what its answers allow, using
the key's earlier state (an IP-bound key that answered before → ``ip_not_allowed``); the tables
in each ``exporter/keys/exchanges`` module say why.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exporter.config import parse_config
from exporter.keys.exchanges import key_api_for
from exporter.keys.model import AUTH_RESULTS, KeyResult
from exporter.keys.prober import KeyProber
from exporter.keys.status import KeyStatus
from exporter.metrics import ExporterMetrics
from exporter.scheduler import ProbeScheduler
from simulator import SimulatorServer, simulator_in_thread

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Case:
    """One key kind: its exchange, the key the simulator registers, and the expected results."""

    name: str
    exchange: str
    key: dict[str, Any]
    files: dict[str, str]  # config field → secret value (written to files)
    expected: dict[str, KeyResult]  # fault → result
    skew: KeyResult  # a clock_skew of +10 min on the exchange


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


R = KeyResult


def expect(revoked: KeyResult, expired: KeyResult, ip: KeyResult) -> dict[str, KeyResult]:
    """The expected results of key_revoked, key_expired and ip_not_allowed."""
    return {"key_revoked": revoked, "key_expired": expired, "ip_not_allowed": ip}


B64 = base64.b64encode(os.urandom(64)).decode()
PEM = _pem()
CASES = [
    Case(
        "binance", "binance",
        {"key": "bnKey0123456789abcdefABCDEF0123456789", "secret": "bnSecret0123456789abcd"},
        {"key_file": "bnKey0123456789abcdefABCDEF0123456789",
         "secret_file": "bnSecret0123456789abcd"},
        # One code (-2015) for key, IP and permission: an IP-bound key that answered before
        # reads as an IP allow-list problem whatever the cause.
        expect(R.IP_NOT_ALLOWED, R.IP_NOT_ALLOWED, R.IP_NOT_ALLOWED),
        R.TIMESTAMP,
    ),
    Case(
        "bybit", "bybit",
        {"key": "byKey012345678901", "secret": "bySecret0123456789abcdef0123456789"},
        {"key_file": "byKey012345678901", "secret_file": "bySecret0123456789abcdef0123456789"},
        expect(R.INVALID_KEY, R.EXPIRED, R.IP_NOT_ALLOWED),
        R.TIMESTAMP,
    ),
    Case(
        "okx", "okx",
        {"key": "0f6b2b9e-okx-key", "secret": "22582BD0CFF14C41EDBF1AB98506286D",
         "passphrase": "Pass-123"},
        {"key_file": "0f6b2b9e-okx-key", "secret_file": "22582BD0CFF14C41EDBF1AB98506286D",
         "passphrase_file": "Pass-123"},
        expect(R.INVALID_KEY, R.INVALID_KEY, R.IP_NOT_ALLOWED),
        R.TIMESTAMP,
    ),
    Case(
        "kraken", "kraken",
        {"key": "krKey0123456789abcdefghijklmnop", "secret": B64},
        {"key_file": "krKey0123456789abcdefghijklmnop", "secret_file": B64},
        expect(R.INVALID_KEY, R.INVALID_KEY, R.IP_NOT_ALLOWED),
        R.OK,  # Kraken has nonces, no clock window
    ),
    Case(
        "coinbase-exchange", "coinbase",
        {"key": "cbKey0123456789abcdef", "secret": B64, "passphrase": "cb-pass-1"},
        {"key_file": "cbKey0123456789abcdef", "secret_file": B64, "passphrase_file": "cb-pass-1"},
        expect(R.INVALID_KEY, R.INVALID_KEY, R.INVALID_KEY),
        R.TIMESTAMP,
    ),
    Case(
        "coinbase-advanced-trade", "coinbase",
        {"key": "organizations/org-1/apiKeys/key-1", "secret": PEM},
        {"key_file": "organizations/org-1/apiKeys/key-1", "private_key_file": PEM},
        expect(R.INVALID_KEY, R.INVALID_KEY, R.INVALID_KEY),
        R.INVALID_KEY,  # a JWT outside nbf/exp is the same 401 as a bad key
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with simulator_in_thread() as server:
        yield server


@pytest.fixture
def control(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=5, trust_env=False) as client:
        for path in ("faults", "keys", "limits"):
            client.delete(f"/_control/{path}")
        yield client
        for path in ("faults", "keys", "limits"):
            client.delete(f"/_control/{path}")


class Harness:
    """One configured key and its prober against the simulator."""

    def __init__(self, case: Case, sim: SimulatorServer, tmp: Path) -> None:
        entry: dict[str, Any] = {"name": "monitor", "interval": "60s"}
        for field, value in case.files.items():
            path = tmp / field
            path.write_text(value + "\n")
            entry[field] = str(path)
        config = parse_config(
            {
                "exchanges": [
                    {
                        "name": case.exchange,
                        "profile": case.exchange,
                        "base_url": f"{sim.url}/{case.exchange}",
                        "endpoints": ["time"],
                        "interval": "60s",
                        "api_keys": [entry],
                    }
                ]
            }
        )
        exchange = config.exchanges[0]
        key = exchange.api_keys[0]
        self.metrics = ExporterMetrics()
        scheduler = ProbeScheduler(config, self.metrics)
        self.metrics.keys.declare(case.exchange, "monitor")
        api = key_api_for(case.exchange, key.credentials)
        self.case = case
        self.prober = KeyProber(
            case.exchange,
            key,
            exchange.base_url,
            api,
            exchange.make_profile(),
            scheduler.states[case.exchange],
            self.metrics,
            KeyStatus(api=api.api, interval=key.interval),
            httpx.AsyncClient(trust_env=False),
            scheduler.states[case.exchange].clock,
            random.Random(0),
        )

    def check(self) -> KeyResult:
        async def go() -> KeyResult:
            try:
                return (await self.prober.check()).result
            finally:
                await self.prober.client.aclose()
                self.prober.client = httpx.AsyncClient(trust_env=False)

        return asyncio.run(go())

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            name, {"exchange": self.case.exchange, "key": "monitor", **labels}
        )


def _register(control: httpx.Client, case: Case, **extra: Any) -> None:
    body = {"exchange": case.exchange, **case.key, "permissions": ["read"], "ips": ["127.0.0.1"]}
    response = control.post("/_control/keys", json={**body, **extra})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("fault", ["key_revoked", "key_expired", "ip_not_allowed"])
def test_every_fault_moves_up_and_the_result(
    case: Case, fault: str, sim: SimulatorServer, control: httpx.Client, tmp_path: Path
) -> None:
    _register(control, case)
    harness = Harness(case, sim, tmp_path)
    assert harness.check() is KeyResult.OK
    assert harness.sample("exchange_api_key_up") == 1
    response = control.post("/_control/faults", json={"exchange": case.exchange, "fault": fault})
    assert response.status_code == 200, response.text
    expected = case.expected[fault]
    assert harness.check() is expected
    assert harness.sample("exchange_api_key_up") == 0
    assert harness.sample("exchange_api_key_checks_total", result=expected.value) == 1
    control.post("/_control/faults", json={"exchange": case.exchange, "fault": "none"})
    assert harness.check() is KeyResult.OK
    assert harness.sample("exchange_api_key_up") == 1


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_real_conditions_revoked_expired_other_ip_and_skew(
    case: Case, sim: SimulatorServer, control: httpx.Client, tmp_path: Path
) -> None:
    harness = Harness(case, sim, tmp_path)
    _register(control, case, ips=["203.0.113.7"])  # bound to someone else's address
    assert harness.check() in AUTH_RESULTS  # which one depends on what the exchange says
    assert harness.sample("exchange_api_key_up") == 0
    _register(control, case)
    assert harness.check() is KeyResult.OK
    control.post(
        "/_control/faults",
        json={"exchange": case.exchange, "fault": "clock_skew", "skew_ms": 600_000},
    )
    assert harness.check() is case.skew
    control.post("/_control/faults", json={"exchange": case.exchange, "fault": "none"})
    _register(control, case, expires_at=1_000_000_000)  # long past
    assert harness.check() is not KeyResult.OK
    _register(control, case)
    assert harness.check() is KeyResult.OK
    response = control.request(
        "DELETE", "/_control/keys", json={"exchange": case.exchange, "key": case.key["key"]}
    )
    assert response.status_code == 200, response.text
    revoked = case.expected["key_revoked"]
    assert harness.check() is revoked
    status = harness.prober.status.document()
    assert status["last_result"] == revoked.value and status["up"] is False
    assert status["permissions"] is not None  # the last accepted answer's facts are kept
    dumped = json.dumps(status) + harness.metrics.render().decode()
    for value in case.files.values():
        assert value not in dumped
