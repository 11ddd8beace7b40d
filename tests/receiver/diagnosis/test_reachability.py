"""Whether the LLM providers answer at all (``receiver.diagnosis.reachability``): the verdicts of
calls and probes, the probe request (respx), and the engine's ``llm_unreachable``."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
import respx
from prometheus_client import CollectorRegistry, Gauge

from receiver.diagnosis.config import DiagnosisSettings, DiagnosisSettingsError
from receiver.diagnosis.engine import DiagnosisEngine
from receiver.diagnosis.llm import LLMDiagnoser
from receiver.diagnosis.reachability import LLMReachability
from tests.receiver.diagnosis.test_llm import (
    KEY,
    PRIMARY,
    PRIMARY_URL,
    SECONDARY,
    VALID,
    alert,
    completion,
    settings,
)

MODELS_URL = f"{PRIMARY}/models"


def _gauge() -> tuple[Gauge, CollectorRegistry]:
    registry = CollectorRegistry()
    gauge = Gauge("alert_receiver_llm_reachable", "test", ["provider"], registry=registry)
    return gauge, registry


def test_calls_decide_and_only_the_first_provider_holds_pages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    gauge, registry = _gauge()
    clock = [100.0]

    async def never() -> bool:
        raise AssertionError("not probed")

    r = LLMReachability(
        [("primary", never), ("secondary", never)], 30.0, gauge, monotonic=lambda: clock[0]
    )
    assert r.reachable("primary") is None and not r.unreachable()  # benefit of the doubt
    assert (
        registry.get_sample_value("alert_receiver_llm_reachable", {"provider": "primary"}) is None
    )
    r.note("secondary", False)
    assert not r.unreachable()  # the chain asks the primary first
    r.note("primary", False)
    assert r.unreachable()
    assert registry.get_sample_value("alert_receiver_llm_reachable", {"provider": "primary"}) == 0
    assert "LLM provider primary does not answer" in caplog.text
    r.note("primary", True)
    assert not r.unreachable() and r.reachable("primary") is True
    assert registry.get_sample_value("alert_receiver_llm_reachable", {"provider": "primary"}) == 1
    assert "LLM provider primary answers" in caplog.text


def test_probes_skip_providers_a_call_judged_recently_and_survive_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [0.0]
    probed: list[str] = []

    def probe(name: str, answer: bool | None) -> object:
        async def run() -> bool:
            probed.append(name)
            if answer is None:
                raise RuntimeError("boom")
            return answer

        return run

    r = LLMReachability(
        [("primary", probe("primary", False)), ("secondary", probe("secondary", None))],  # type: ignore[list-item]
        30.0,
        monotonic=lambda: clock[0],
    )

    async def main() -> None:
        await r.probe_once()  # nobody judged: both probed; the crash is logged, not fatal
        assert probed == ["primary", "secondary"] and r.unreachable()
        assert r.reachable("secondary") is None
        probed.clear()
        clock[0] = 10.0
        r.note("secondary", True)
        await r.probe_once()  # primary judged 10 s ago, secondary just now: neither is due
        assert probed == []
        clock[0] = 31.0
        await r.probe_once()  # primary's verdict is 31 s old: due; secondary's 21 s: not
        assert probed == ["primary"]

    asyncio.run(main())
    assert "LLM probe of secondary crashed: RuntimeError" in caplog.text


def test_probe_start_and_stop() -> None:
    calls: list[int] = []

    async def probe() -> bool:
        calls.append(1)
        return True

    async def main() -> None:
        off = LLMReachability([("primary", probe)], 0.0)
        off.start()  # interval 0: no probing
        await off.stop()
        on = LLMReachability([("primary", probe)], 30.0)
        on.start()
        for _ in range(100):
            if calls:
                break
            await asyncio.sleep(0.01)
        await on.stop()
        assert on.reachable("primary") is True

    asyncio.run(main())
    assert calls == [1]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(200, json={"object": "list", "data": []}), True),
        (httpx.Response(404), True),  # a proxy without the route still answers
        (httpx.Response(401), True),
        (httpx.ConnectError("refused"), False),
        (httpx.ReadTimeout("no answer"), False),
    ],
)
def test_the_probe_lists_models_with_the_key(
    answer: httpx.Response | Exception, expected: bool
) -> None:
    async def main() -> bool:
        async with httpx.AsyncClient() as client:
            provider = LLMDiagnoser(
                base_url=PRIMARY,
                model="m",
                api_key=settings().llm_api_key,
                timeout=2,
                client=client,
            )
            return await provider.probe(1.0)

    with respx.mock() as mock:
        route = mock.get(MODELS_URL)
        route.mock(side_effect=answer) if isinstance(answer, Exception) else route.mock(answer)
        assert asyncio.run(main()) is expected
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


def test_the_engine_learns_from_calls_and_probes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A timed-out call marks the primary unreachable; an answer, even an error status, marks
    it reachable; a hung probe marks it unreachable. The key never reaches logs or metrics."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr("receiver.diagnosis.engine.PROBE_TIMEOUT_SECONDS", 0.2)
    registry = CollectorRegistry()

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    cfg = settings(
        llm_timeout_seconds=0.3, llm_secondary_base_url=SECONDARY, llm_secondary_model="small"
    )

    async def main() -> list[bool]:
        seen: list[bool] = []
        async with httpx.AsyncClient() as client:
            engine = DiagnosisEngine(cfg, client, registry=registry)
            with respx.mock(assert_all_called=False) as mock:
                chat = mock.post(PRIMARY_URL)
                mock.post(f"{SECONDARY}/chat/completions").mock(return_value=httpx.Response(500))
                chat.mock(side_effect=hang)
                await engine.diagnose(alert(fingerprint="a"))
                seen.append(engine.llm_unreachable())
                chat.mock(return_value=httpx.Response(503))
                await engine.diagnose(alert(fingerprint="b", exchange="bybit"))
                seen.append(engine.llm_unreachable())
                chat.mock(return_value=completion(json.dumps(VALID)))
                await engine.diagnose(alert(fingerprint="c", exchange="okx"))
                seen.append(engine.llm_unreachable())
                mock.get(MODELS_URL).mock(side_effect=hang)
                mock.get(f"{SECONDARY}/models").mock(return_value=httpx.Response(200))
                engine.reachability._state.clear()  # as after the interval: a probe is due
                await engine.reachability.probe_once()
                seen.append(engine.llm_unreachable())
            await engine.aclose()
        return seen

    assert asyncio.run(main()) == [True, False, False, True]
    assert registry.get_sample_value("alert_receiver_llm_reachable", {"provider": "primary"}) == 0
    assert KEY not in caplog.text


def test_the_probe_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_PROBE_INTERVAL_SECONDS", raising=False)
    assert DiagnosisSettings.load(DiagnosisSettingsError).llm_probe_interval_seconds == 30.0
    monkeypatch.setenv("LLM_PROBE_INTERVAL_SECONDS", "0")
    assert DiagnosisSettings.load(DiagnosisSettingsError).llm_probe_interval_seconds == 0.0
    for bad in ("-1", "often", "nan"):
        monkeypatch.setenv("LLM_PROBE_INTERVAL_SECONDS", bad)
        with pytest.raises(DiagnosisSettingsError, match=f"LLM_PROBE_INTERVAL_SECONDS='{bad}'"):
            DiagnosisSettings.load(DiagnosisSettingsError)
