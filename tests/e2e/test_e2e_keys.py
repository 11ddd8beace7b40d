"""End to end: a revoked API key pages ``ExchangeApiKeyInvalid`` with root cause ``auth``, and no
secret of the configured keys shows anywhere along the way.

simulator (private endpoints, the demo keys of deploy/demo-keys/) → exporter key checks → real
Prometheus (shipped rules) → real Alertmanager (shipped routing) → receiver → JSONL, Slack and
Discord stand-ins, on the shared stack of tests/conftest.py.

Acceptance (issue 14):
- revoking the demo Binance key in the simulator fires ``ExchangeApiKeyInvalid`` for that key
  with root cause ``auth``, and it resolves once the key is back. The LLM stand-in is asked (its
  prompt is recorded and scanned) but answers only after the receiver's LLM timeout, so the
  diagnosis is the rule engine's, whatever the order the end-to-end tests run in
  (tests/e2e/test_e2e.py checks the LLM's own answers, and stops the session's stand-in: then
  one is started on its port for this test);
- the exporter's and receiver's logs, ``/metrics``, ``/status``, every notification (JSONL and
  the chat stand-ins), every prompt sent to the LLM, and the alerts in Prometheus and
  Alertmanager hold none of the demo keys' secrets (keys, secrets, passphrase, private key).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.stack import DEMO_KEYS_DIR, Stack
from testsupport.e2e import notifications, query, wait
from testsupport.fake_chat import FakeChat
from testsupport.fake_llm import FakeLLM, LLMRequest, answering_late

pytestmark = pytest.mark.e2e


ALERT = "ExchangeApiKeyInvalid"
EXCHANGE = "binance"
EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")
LLM_DELAY_S = 8.0
"""Longer than the stack's LLM_TIMEOUT_SECONDS (3 s, tests/conftest.py): the receiver gives up
on the LLM and diagnoses with its rule engine."""


def _keys_up(stack: Stack) -> set[str]:
    return {r["metric"]["exchange"] for r in query(stack, "exchange_api_key_up == 1")}


def demo_secrets() -> dict[str, str]:
    """Every secret value of the demo keys, by where it comes from (PEM bodies line by line:
    a leak of any part counts)."""
    found: dict[str, str] = {}
    for item in json.loads((DEMO_KEYS_DIR / "simulator-keys.json").read_text()):
        exchange = item["exchange"]
        found[f"{exchange} key"] = item["key"]
        found[f"{exchange} passphrase"] = item.get("passphrase") or ""
        secret = item["secret"]
        if secret.startswith("-----BEGIN"):
            for n, line in enumerate(secret.splitlines()):
                if not line.startswith("-----"):
                    found[f"{exchange} private key line {n}"] = line
        else:
            found[f"{exchange} secret"] = secret
    return {where: value for where, value in found.items() if len(value) >= 8}


def _demo_key(exchange: str) -> dict[str, Any]:
    keys = json.loads((DEMO_KEYS_DIR / "simulator-keys.json").read_text())
    entry: dict[str, Any] = next(k for k in keys if k["exchange"] == exchange)
    return entry


def test_revoked_key_pages_invalid_with_root_cause_auth_and_no_secret_leaks(
    stack: Stack, fake_chat: FakeChat, fake_llm: FakeLLM, timings: dict[str, float]
) -> None:
    wait(lambda: _keys_up(stack) >= set(EXCHANGES), 120, "every demo key accepted", stack)
    with answering_late(fake_llm, LLM_DELAY_S) as llm:
        _revoke_and_restore(stack, timings)
        prompts = [r.body for r in llm.chat_requests() if ALERT in json.dumps(r.body)]
    assert prompts, f"the LLM was never asked about {ALERT}"
    _assert_no_secret(stack, fake_chat, [*fake_llm.requests, *llm.requests])


def _revoke_and_restore(stack: Stack, timings: dict[str, float]) -> None:
    key = _demo_key(EXCHANGE)
    simulator = stack.urls["simulator"]
    revoked = time.time()
    response = httpx.request(
        "DELETE",
        f"{simulator}/_control/keys",
        json={"exchange": EXCHANGE, "key": key["key"]},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    try:
        firing = wait(
            lambda: [n for n in notifications(stack, ALERT, revoked) if n["status"] == "firing"],
            180,
            f"the {ALERT} notification",
            stack,
        )
        timings[f"e2e keys: key revoked → {ALERT} notified"] = time.time() - revoked
        assert {n["exchange"] for n in firing} == {EXCHANGE}, firing
        notification = firing[0]
        assert notification["labels"]["key"] == "monitor"
        assert notification["labels"]["result"] in {"invalid_key", "ip_not_allowed"}
        diagnosis = notification["diagnosis"]
        assert diagnosis["source"] == "rules", diagnosis  # the LLM answered too late
        assert diagnosis["root_cause_category"] == "auth", diagnosis
        assert diagnosis["action_items"] and diagnosis["diagnosis"]
    finally:
        httpx.post(f"{simulator}/_control/keys", json=key, timeout=5).raise_for_status()
    restored = time.time()
    wait(
        lambda: [n for n in notifications(stack, ALERT, revoked) if n["status"] == "resolved"],
        180,
        f"the resolved {ALERT} notification",
        stack,
    )
    timings[f"e2e keys: key restored → {ALERT} resolved"] = time.time() - restored


def _assert_no_secret(stack: Stack, fake_chat: FakeChat, prompts: list[LLMRequest]) -> None:
    exporter = stack.urls["exporter"]
    surfaces: dict[str, str] = {
        "exporter /metrics": httpx.get(f"{exporter}/metrics", timeout=5).text,
        "exporter /status": httpx.get(f"{exporter}/status", timeout=5).text,
        "notifications JSONL": stack.notify_file.read_text(),
        "chat messages": json.dumps([r.body for r in fake_chat.requests]),
        "LLM prompts": json.dumps([r.body for r in prompts]),
        "Prometheus alerts": httpx.get(f"{stack.urls['prometheus']}/api/v1/alerts", timeout=5).text,
        "Alertmanager alerts": httpx.get(
            f"{stack.urls['alertmanager']}/api/v2/alerts", timeout=5
        ).text,
    }
    for name in ("exporter", "receiver", "prometheus", "alertmanager"):
        surfaces[f"{name} log"] = Path(stack.run_dir / "logs" / f"{name}.log").read_text(
            errors="replace"
        )
    status = json.loads(surfaces["exporter /status"])
    assert status["exchanges"][EXCHANGE]["api_keys"]["monitor"]["up"] is True
    assert "exchange_api_key_up" in surfaces["exporter /metrics"]
    leaks = [
        f"{where} in {surface}"
        for where, secret in demo_secrets().items()
        for surface, text in surfaces.items()
        if secret in text
    ]
    assert not leaks, leaks
