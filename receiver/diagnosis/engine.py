"""Diagnosis engine: LLM when configured and useful, rules otherwise or on any LLM failure.

Policy (cost controls included):

* resolved alerts never call the LLM (a short rules "recovered" diagnosis is enough);
* the LLM is used only when ``LLM_BASE_URL`` and ``LLM_MODEL`` are set;
* identical alert content within :data:`CACHE_TTL_SECONDS` reuses the previous LLM answer;
* any LLM failure (HTTP error, timeout, invalid output after one repair) falls back to rules.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict

import httpx

from receiver.diagnosis.evidence import fetch_alert_evidence
from receiver.diagnosis.llm import LLMDiagnoser, LLMError
from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import Diagnosis
from receiver.models import Alert
from receiver.settings import Settings

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 900.0
CACHE_SIZE = 256


class DiagnosisEngine:
    """Produce a :class:`Diagnosis` for each alert.

    Args:
        settings: receiver settings (LLM and Prometheus configuration).
        client: shared HTTP client used for the LLM and Prometheus.
    """

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._llm: LLMDiagnoser | None = None
        if settings.llm_enabled:
            assert settings.llm_base_url is not None and settings.llm_model is not None
            self._llm = LLMDiagnoser(
                base_url=settings.llm_base_url,
                model=settings.llm_model,
                api_key=settings.llm_api_key,
                timeout=settings.llm_timeout_seconds,
                client=client,
            )
        self._cache: OrderedDict[str, tuple[float, Diagnosis]] = OrderedDict()

    def _cache_key(self, alert: Alert, evidence: str | None) -> str:
        blob = json.dumps([alert.status, alert.labels, alert.annotations, evidence], sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8", "replace")).hexdigest()

    def _cache_get(self, key: str) -> Diagnosis | None:
        hit = self._cache.get(key)
        if hit is None or time.monotonic() - hit[0] > CACHE_TTL_SECONDS:
            return None
        return hit[1]

    def _cache_put(self, key: str, value: Diagnosis) -> None:
        self._cache[key] = (time.monotonic(), value)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    async def diagnose(self, alert: Alert) -> Diagnosis:
        """Diagnose one alert; never raises (rules are the last resort).

        Returns:
            ``source="llm"`` when the model produced a valid answer, else ``source="rules"``.
        """
        evidence: str | None = None
        if alert.status == "firing" and self._settings.prometheus_url and alert.generator_url:
            evidence = await fetch_alert_evidence(
                self._client, self._settings.prometheus_url, alert.generator_url
            )
        if self._llm is None or alert.status != "firing":
            return diagnose_with_rules(alert, extra_evidence=evidence)
        key = self._cache_key(alert, evidence)
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        try:
            result = await self._llm.diagnose(alert, evidence)
        except LLMError as exc:
            log.warning("LLM diagnosis failed, using rules: %s", exc)
            return diagnose_with_rules(alert, extra_evidence=evidence)
        except Exception as exc:  # the worker must never die because of the LLM path
            log.exception("unexpected LLM error, using rules: %s", exc.__class__.__name__)
            return diagnose_with_rules(alert, extra_evidence=evidence)
        self._cache_put(key, result)
        return result
