"""The key prober with a stand-in key API and respx: what it records, scrubs, pauses and holds."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import pytest
import respx
from pydantic import SecretStr

from exporter.config import parse_config
from exporter.keys.exchanges.base import KeyApi
from exporter.keys.model import (
    Credentials,
    KeyFacts,
    KeyResult,
    KeyVerdict,
    Permission,
    SignedRequest,
)
from exporter.keys.prober import KeyProber, scrub
from exporter.keys.settings import ApiKeyConfig
from exporter.keys.status import KeyStatus
from exporter.metrics import ExporterMetrics
from exporter.scheduler import ProbeScheduler

BASE = "https://keys.example"
KEY = "AKIAKEY1234567890"
SECRET = "s3cr3t-value-0123456789"


class FakeKeyApi(KeyApi):
    """Signs nothing real; classifies ``{"result": ..., "facts": {...}}`` bodies."""

    api: ClassVar[str] = "fake"
    path: ClassVar[str] = "/key-info"

    @classmethod
    def check_credentials(cls, credentials: Credentials) -> None:
        """Accept anything."""

    def sign(
        self, credentials: Credentials, base_url: str, now: float, recv_window_ms: int | None = None
    ) -> SignedRequest:
        """A GET carrying the key in a header."""
        return SignedRequest(
            "GET", base_url + self.path, {"X-Key": credentials.key.get_secret_value()}
        )

    def classify(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        previous: KeyFacts | None,
        now: float,
    ) -> KeyVerdict:
        """Read the canned verdict."""
        data: dict[str, Any] = json.loads(body)
        result = KeyResult(data["result"])
        facts = None
        if result is KeyResult.OK:
            facts = KeyFacts(
                permissions={Permission(p): v for p, v in data["permissions"].items()},
                ip_restricted=data.get("ip"),
                expires_at=data.get("expires_at"),
                expiry_source="exchange" if data.get("expires_at") else None,
            )
        return KeyVerdict(
            result,
            data.get("code"),
            data.get("message", ""),
            facts,
            retry_after=data.get("retry_after"),
            ip_wide=data.get("ip_wide", False),
            banned=data.get("banned", False),
        )


@pytest.fixture
def key_config(monkeypatch: pytest.MonkeyPatch) -> ApiKeyConfig:
    monkeypatch.setenv("TEST_KEY", KEY)
    monkeypatch.setenv("TEST_SECRET", SECRET)
    return ApiKeyConfig(name="monitor", key_env="TEST_KEY", secret_env="TEST_SECRET", interval=60)


def make_prober(key_config: ApiKeyConfig) -> tuple[KeyProber, ExporterMetrics]:
    config = parse_config(
        {"exchanges": [{"name": "binance", "profile": "binance", "base_url": BASE}]}
    )
    metrics = ExporterMetrics()
    scheduler = ProbeScheduler(config, metrics)
    metrics.keys.declare("binance", "monitor")
    prober = KeyProber(
        "binance",
        key_config,
        BASE,
        FakeKeyApi(),
        config.exchanges[0].make_profile(),
        scheduler.states["binance"],
        metrics,
        KeyStatus(api="fake", interval=60),
        httpx.AsyncClient(),
        scheduler.states["binance"].clock,
        random.Random(1),
    )
    return prober, metrics


def value(metrics: ExporterMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(
        name, {"exchange": "binance", "key": "monitor", **labels}
    )


async def check(prober: KeyProber, body: dict[str, Any] | None = None, **kw: Any) -> KeyVerdict:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(f"{BASE}/key-info")
        if "side_effect" in kw:
            route.side_effect = kw["side_effect"]
        else:
            route.return_value = httpx.Response(kw.get("status", 200), json=body)
        try:
            return await prober.check()
        finally:
            await prober.client.aclose()
            prober.client = httpx.AsyncClient()


OK_BODY = {
    "result": "ok",
    "permissions": {"read": True, "trade": False, "withdraw": False},
    "ip": True,
}


def test_accepted_key_sets_up_permissions_ip_and_counts_ok(key_config: ApiKeyConfig) -> None:
    prober, metrics = make_prober(key_config)
    verdict = asyncio.run(check(prober, {**OK_BODY, "expires_at": 1.9e9}))
    assert verdict.result is KeyResult.OK
    assert value(metrics, "exchange_api_key_up") == 1
    assert value(metrics, "exchange_api_key_checks_total", result="ok") == 1
    assert value(metrics, "exchange_api_key_checks_total", result="invalid_key") == 0
    assert value(metrics, "exchange_api_key_permission", permission="read") == 1
    assert value(metrics, "exchange_api_key_permission", permission="withdraw") == 0
    assert value(metrics, "exchange_api_key_permission", permission="transfer") is None
    assert value(metrics, "exchange_api_key_ip_restricted") == 1
    assert value(metrics, "exchange_api_key_expiry_timestamp_seconds") == 1.9e9
    document = prober.status.document()
    assert document["up"] is True and document["expiry"]["source"] == "exchange"


def test_failed_check_keeps_the_last_facts_and_counts_the_result(key_config: ApiKeyConfig) -> None:
    prober, metrics = make_prober(key_config)
    asyncio.run(check(prober, OK_BODY))
    asyncio.run(check(prober, {"result": "invalid_key", "code": "-2015", "message": "Invalid"}))
    assert value(metrics, "exchange_api_key_up") == 0
    assert value(metrics, "exchange_api_key_checks_total", result="invalid_key") == 1
    assert value(metrics, "exchange_api_key_ip_restricted") == 1  # last known state kept
    document = prober.status.document()
    assert document["last_result"] == "invalid_key"
    assert document["last_error_code"] == "-2015"
    assert document["consecutive_failures"] == 1
    assert document["permissions"] == {"read": True, "trade": False, "withdraw": False}


def test_messages_echoing_credentials_are_scrubbed_everywhere(
    key_config: ApiKeyConfig, caplog: pytest.LogCaptureFixture
) -> None:
    prober, metrics = make_prober(key_config)
    echo = f"error sign! origin_string[1701783394711{KEY}5000] secret {SECRET}"
    with caplog.at_level(logging.DEBUG):
        verdict = asyncio.run(
            check(prober, {"result": "invalid_signature", "code": "10004", "message": echo})
        )
    assert KEY not in verdict.message and SECRET not in verdict.message
    assert "<redacted>" in verdict.message
    assert KEY not in json.dumps(prober.status.document())
    assert KEY not in caplog.text and SECRET not in caplog.text
    assert KEY not in metrics.render().decode()


def test_scrub_replaces_longest_values_first() -> None:
    creds = Credentials(key=SecretStr("abcd"), secret=SecretStr("abcdefgh"))
    assert scrub("xxabcdefghxx", creds) == "xx<redacted>xx"
    assert scrub("xxabcdxx", creds) == "xx<redacted>xx"


def test_ip_wide_rate_limit_pauses_the_exchange(key_config: ApiKeyConfig) -> None:
    prober, metrics = make_prober(key_config)
    body = {"result": "rate_limited", "retry_after": 30, "ip_wide": True}
    asyncio.run(check(prober, body))
    assert 25 < prober.state.gate.remaining() <= 30
    backoff = metrics.registry.get_sample_value(
        "exchange_rate_limit_backoff_until_timestamp_seconds", {"exchange": "binance"}
    )
    assert backoff is not None and backoff > 0


def test_per_key_rate_limit_does_not_pause_the_exchange(key_config: ApiKeyConfig) -> None:
    prober, _ = make_prober(key_config)
    asyncio.run(check(prober, {"result": "rate_limited", "retry_after": 30}))
    assert prober.state.gate.remaining() == 0


def test_ban_without_retry_after_uses_the_profiles_ban_length(key_config: ApiKeyConfig) -> None:
    prober, _ = make_prober(key_config)
    asyncio.run(check(prober, {"result": "rate_limited", "ip_wide": True, "banned": True}))
    assert prober.state.gate.banned()
    assert prober.state.gate.remaining() > 100  # Binance bans start at 2 minutes


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (httpx.ConnectError("refused"), "transport error: ConnectError"),
        (httpx.ReadTimeout("t"), "timeout"),
    ],
)
def test_transport_failures_are_other(
    key_config: ApiKeyConfig, error: Exception, message: str
) -> None:
    prober, metrics = make_prober(key_config)
    verdict = asyncio.run(check(prober, side_effect=error))
    assert verdict.result is KeyResult.OTHER and verdict.message == message
    assert value(metrics, "exchange_api_key_up") == 0
    assert value(metrics, "exchange_api_key_checks_total", result="other") == 1


def test_run_waits_for_a_rate_limit_pause_and_counts_the_hold(key_config: ApiKeyConfig) -> None:
    prober, metrics = make_prober(key_config)

    async def go() -> int:
        prober.state.gate.block(30)
        with respx.mock(assert_all_called=False) as mock:
            route = mock.get(f"{BASE}/key-info").mock(
                return_value=httpx.Response(200, json=OK_BODY)
            )
            task = asyncio.create_task(prober.run())
            await asyncio.sleep(6)  # the first check is due within 5 s, then held
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await prober.client.aclose()
            return route.call_count

    assert asyncio.run(go()) == 0
    held = metrics.registry.get_sample_value(
        "exchange_exporter_probes_held_total", {"exchange": "binance", "reason": "paused"}
    )
    assert held == 1
