"""``LLM_CRITICAL_BUDGET_SECONDS`` and the engine's bounded rules fast path
(:meth:`DiagnosisEngine.rules_now`), used when a page cannot wait for the LLM."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from receiver.diagnosis.config import DiagnosisSettings, DiagnosisSettingsError
from receiver.diagnosis.engine import DiagnosisEngine
from receiver.diagnosis.schema import Context, Diagnosis
from receiver.models import Alert, AlertmanagerWebhook
from tests.receiver.test_receiver_app import exchange_payload


def _alert() -> Alert:
    return AlertmanagerWebhook.model_validate(exchange_payload()).alerts[0]


def test_the_budget_defaults_to_2_s_and_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_CRITICAL_BUDGET_SECONDS", raising=False)
    assert DiagnosisSettings.load(DiagnosisSettingsError).llm_critical_budget_seconds == 2.0
    monkeypatch.setenv("LLM_CRITICAL_BUDGET_SECONDS", "0")
    assert DiagnosisSettings.load(DiagnosisSettingsError).llm_critical_budget_seconds == 0.0
    for bad in ("-1", "soon", "nan"):
        monkeypatch.setenv("LLM_CRITICAL_BUDGET_SECONDS", bad)
        with pytest.raises(DiagnosisSettingsError, match=f"LLM_CRITICAL_BUDGET_SECONDS='{bad}'"):
            DiagnosisSettings.load(DiagnosisSettingsError)


def _engine(client: httpx.AsyncClient) -> DiagnosisEngine:
    settings = DiagnosisSettings(
        llm_base_url="http://llm.test/v1",
        llm_model="m",
        prometheus_url="http://prom.test:9090",
    )
    return DiagnosisEngine(settings, client)


def test_rules_now_uses_the_context_already_fetched_and_never_waits() -> None:
    context = Context(note=None, summary="context: p99 up 4x")
    fetched, llm_called = asyncio.Event(), asyncio.Event()
    never = asyncio.Event()

    async def scenario() -> tuple[Diagnosis, Diagnosis, Diagnosis]:
        async with httpx.AsyncClient() as client:
            engine = _engine(client)
            before = engine.rules_now(_alert())  # nothing in progress: rules, no context

            async def context_for(alert: Alert) -> Context:
                fetched.set()
                return context

            async def run_chain(alert: Alert, ctx: Context | None) -> tuple[Diagnosis | None, str]:
                llm_called.set()
                await never.wait()  # a hung LLM
                return None, "timeout"

            engine.context_for = context_for  # type: ignore[method-assign]
            engine._run_chain = run_chain  # type: ignore[method-assign,assignment]
            task = asyncio.create_task(engine.diagnose(_alert()))
            await llm_called.wait()
            during = engine.rules_now(_alert())

            async def slow_context(alert: Alert) -> Context:
                await never.wait()  # Prometheus hangs: nothing to reuse
                return context

            engine.context_for = slow_context  # type: ignore[method-assign]
            other = _alert().model_copy(update={"fingerprint": "0000000000000002"})
            slow = asyncio.create_task(engine.diagnose(other))
            await asyncio.sleep(0.01)
            without = engine.rules_now(other)
            for pending in (task, slow):
                pending.cancel()
            return before, during, without

    before, during, without = asyncio.run(scenario())
    assert before.source == during.source == without.source == "rules"
    assert before.context is None and without.context is None
    assert during.context is not None and during.context.summary == "context: p99 up 4x"
