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

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from deploy.stack import DEMO_KEYS_DIR, Stack
from testsupport.fake_chat import FakeChat
from testsupport.fake_llm import FakeLLM, LLMRequest

pytestmark = pytest.mark.e2e

T = TypeVar("T")

ALERT = "ExchangeApiKeyInvalid"
EXCHANGE = "binance"
EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")
LLM_DELAY_S = 8.0
"""Longer than the stack's LLM_TIMEOUT_SECONDS (3 s, tests/conftest.py): the receiver gives up
on the LLM and diagnoses with its rule engine."""


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


def _keys_up(stack: Stack) -> set[str]:
    return {r["metric"]["exchange"] for r in _query(stack, "exchange_api_key_up == 1")}


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


@contextlib.contextmanager
def slow_llm(fake_llm: FakeLLM) -> Iterator[FakeLLM]:
    """The session's LLM stand-in answering after :data:`LLM_DELAY_S`, or, when an earlier test
    stopped it, a new one on its port."""
    if fake_llm.running:
        before = fake_llm.delay
        fake_llm.delay = LLM_DELAY_S
        try:
            yield fake_llm
        finally:
            fake_llm.delay = before
    else:
        with FakeLLM(port=fake_llm.port, delay=LLM_DELAY_S) as stand_in:
            yield stand_in


def test_revoked_key_pages_invalid_with_root_cause_auth_and_no_secret_leaks(
    stack: Stack, fake_chat: FakeChat, fake_llm: FakeLLM, timings: dict[str, float]
) -> None:
    _wait(lambda: _keys_up(stack) >= set(EXCHANGES), 120, "every demo key accepted", stack)
    with slow_llm(fake_llm) as llm:
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
        firing = _wait(
            lambda: [n for n in _notifications(stack, revoked) if n["status"] == "firing"],
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
    _wait(
        lambda: [n for n in _notifications(stack, revoked) if n["status"] == "resolved"],
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
