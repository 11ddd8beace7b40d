"""End to end: a Binance outage in the simulator becomes Slack, Discord and JSONL notifications.

simulator → exporter → real Prometheus (shipped rules) → real Alertmanager (shipped routing) →
receiver → fake Slack/Discord + JSONL. Only intervals are shortened (see tests/conftest.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from deploy.stack import Stack
from receiver.diagnosis.schema import ROOT_CAUSE_CATEGORIES
from testsupport.fake_chat import FakeChat
from testsupport.fake_llm import FakeLLM

pytestmark = pytest.mark.e2e

EXCHANGES = {"binance", "bybit", "okx", "coinbase", "kraken"}
CATEGORIES = set(ROOT_CAUSE_CATEGORIES)


def _query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.urls['prometheus']}/api/v1/query", params={"query": promql}, timeout=5
    )
    response.raise_for_status()
    return response.json()["data"]["result"]


def _wait(predicate: Any, timeout: float, what: str, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    logs = "\n".join(f"--- {n}\n{stack.log_tail(n)}" for n in ("exporter", "receiver"))
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{logs}")


def _jsonl(stack: Stack) -> list[dict[str, Any]]:
    if not stack.notify_file.exists():
        return []
    lines = stack.notify_file.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _jsonl_has(stack: Stack, status: str, exchange: str = "binance") -> dict[str, Any] | None:
    for item in _jsonl(stack):
        if (
            item["alertname"] == "ExchangeApiDown"
            and item["exchange"] == exchange
            and item["status"] == status
        ):
            return item
    return None


def _slack_is(status: str):
    def predicate(body: Any) -> bool:
        text = json.dumps(body)
        return (
            isinstance(body, dict)
            and "ExchangeApiDown" in text
            and "binance" in text
            and status.upper() in text.upper()
            and "blocks" in body
        )

    return predicate


def _discord_is(status: str):
    def predicate(body: Any) -> bool:
        text = json.dumps(body)
        return (
            isinstance(body, dict)
            and "ExchangeApiDown" in text
            and status.upper() in text.upper()
            and "embeds" in body
        )

    return predicate


def _exchanges_up(stack: Stack) -> set[str]:
    return {
        r["metric"]["exchange"] for r in _query(stack, "min by (exchange) (exchange_api_up) == 1")
    }


def test_every_component_is_up(stack: Stack) -> None:
    def health() -> dict[str, str]:
        targets = httpx.get(f"{stack.urls['prometheus']}/api/v1/targets", timeout=5).json()
        return {t["labels"]["job"]: t["health"] for t in targets["data"]["activeTargets"]}

    _wait(lambda: health().get("exchange-exporter") == "up", 30, "exporter scraped", stack)
    _wait(lambda: _exchanges_up(stack) >= EXCHANGES, 60, "every exchange up", stack)
    rules = httpx.get(f"{stack.urls['prometheus']}/api/v1/rules", timeout=5).json()
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert {"ExchangeApiDown", "ExchangeApiLatencyHigh"} <= names  # the shipped rule files
    status = httpx.get(f"{stack.urls['alertmanager']}/api/v2/status", timeout=5).json()
    assert stack.urls["receiver"] in status["config"]["original"]  # shipped routing, rewritten


def test_binance_outage_fires_and_resolves(
    stack: Stack, fake_chat: FakeChat, timings: dict[str, float]
) -> None:
    _wait(
        lambda: (
            {
                r["metric"]["exchange"]
                for r in _query(stack, "min by (exchange) (exchange_api_up) == 1")
            }
            >= EXCHANGES
        ),
        60,
        "every exchange to be up before the incident",
        stack,
    )
    faults = f"{stack.urls['simulator']}/_control/faults"
    response = httpx.post(faults, json={"exchange": "binance", "fault": "down"}, timeout=5)
    assert response.status_code == 200, response.text
    injected = time.monotonic()

    slack = fake_chat.wait_for("/slack", _slack_is("firing"), 90)
    assert slack is not None, "no firing Slack notification within 90 s:\n" + stack.log_tail(
        "receiver"
    )
    timings["e2e: fault injection → firing Slack notification"] = time.monotonic() - injected
    firing = _wait(lambda: _jsonl_has(stack, "firing"), 30, "the firing JSONL line", stack)
    timings["e2e: fault injection → firing JSONL notification"] = time.monotonic() - injected
    discord = fake_chat.wait_for("/discord", _discord_is("firing"), 30)
    assert discord is not None, "no firing Discord notification"

    # The notification carries a diagnosis that says what broke and what to do.
    diagnosis = firing["diagnosis"]
    assert diagnosis["source"] == "llm"  # from the local fake OpenAI-compatible server
    assert diagnosis["root_cause_category"] in CATEGORIES
    assert diagnosis["action_items"] and diagnosis["diagnosis"] and diagnosis["impact"]
    assert firing["severity"] == "critical"
    assert firing["labels"]["exchange"] == "binance"
    # Only Binance is down: no other exchange alerted.
    others = [n for n in _jsonl(stack) if n["exchange"] not in (None, "binance")]
    assert not [n for n in others if n["alertname"] == "ExchangeApiDown"]
    # Slack got Block Kit with a fallback text; Discord got embeds with mentions disabled.
    assert isinstance(slack.body["blocks"], list) and slack.body.get("text")
    assert discord.body["allowed_mentions"] == {"parse": []}

    response = httpx.post(faults, json={"exchange": "binance", "fault": "none"}, timeout=5)
    assert response.status_code == 200, response.text
    recovered = time.monotonic()
    resolved_slack = fake_chat.wait_for("/slack", _slack_is("resolved"), 90)
    assert resolved_slack is not None, "no resolved Slack notification within 90 s"
    timings["e2e: recovery → resolved Slack notification"] = time.monotonic() - recovered
    resolved = _wait(lambda: _jsonl_has(stack, "resolved"), 30, "the resolved JSONL line", stack)
    assert resolved["fingerprint"] == firing["fingerprint"]
    assert resolved_slack.body != slack.body  # visibly different message
    assert fake_chat.wait_for("/discord", _discord_is("resolved"), 30) is not None

    # Exactly one firing and one resolved notification per channel: no duplicates.
    lines = [
        n
        for n in _jsonl(stack)
        if n["alertname"] == "ExchangeApiDown" and n["exchange"] == "binance"
    ]
    assert sorted(n["status"] for n in lines) == ["firing", "resolved"]


def test_rules_diagnosis_when_the_llm_is_down(
    stack: Stack, fake_chat: FakeChat, fake_llm: FakeLLM, timings: dict[str, float]
) -> None:
    """With the LLM server stopped, the next incident is still notified, diagnosed by rules."""
    assert fake_llm.chat_requests(), "the LLM was never asked (see the previous test)"
    _wait(lambda: _exchanges_up(stack) >= EXCHANGES, 60, "every exchange up", stack)
    fake_llm.stop()
    faults = f"{stack.urls['simulator']}/_control/faults"
    httpx.post(faults, json={"exchange": "coinbase", "fault": "down"}, timeout=5).raise_for_status()
    injected = time.monotonic()
    try:
        firing = _wait(
            lambda: _jsonl_has(stack, "firing", exchange="coinbase"),
            90,
            "coinbase's firing notification",
            stack,
        )
        timings["e2e: LLM down → rules-diagnosed firing notification"] = time.monotonic() - injected
        diagnosis = firing["diagnosis"]
        assert diagnosis["source"] == "rules"
        assert diagnosis["root_cause_category"] == "outage"
        assert diagnosis["action_items"] and diagnosis["diagnosis"]
    finally:
        httpx.post(faults, json={"exchange": "coinbase", "fault": "none"}, timeout=5)
    _wait(
        lambda: _jsonl_has(stack, "resolved", exchange="coinbase"), 90, "coinbase resolved", stack
    )
