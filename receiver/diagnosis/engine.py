"""Diagnosis engine: Prometheus context, then a chain of LLM providers ending in the rules.

For each alert :meth:`DiagnosisEngine.diagnose` returns a :class:`Diagnosis` (never raises):

1. resolved → the rules' "recovered" diagnosis; no context, no LLM;
2. firing → the :class:`~receiver.diagnosis.schema.Context` from Prometheus (bounded: 3 s
   deadline; Prometheus down gives an empty context with a note), attached as
   ``diagnosis.context``;
3. no provider configured → rules (with the context as evidence);
4. a repeat - the same (alertname, exchange, fingerprint, startsAt) already diagnosed - reuses
   that diagnosis (an earlier rules result is recomputed with the fresh context); no LLM call;
5. a cached LLM diagnosis for (alertname, exchange, endpoint, key, result) younger than
   ``LLM_CACHE_SECONDS`` is reused; concurrent diagnoses of the same key share one LLM call;
6. otherwise the providers in order (primary, secondary), under a global concurrency cap
   (``LLM_MAX_CONCURRENCY``) and one deadline for the whole stage; the first valid answer wins;
7. everything failed → rules, counted in ``alert_receiver_llm_fallbacks_total{reason}``.

The LLM stage takes at most ``LLM_TOTAL_TIMEOUT_SECONDS`` (default ``LLM_TIMEOUT_SECONDS`` per
configured provider): a hung, garbage-producing or schema-violating model costs at most that much
before the rules answer.

Pages do not wait for all of that: :meth:`DiagnosisEngine.rules_now` is the bounded fast path the
worker uses when a critical notification's diagnosis is not done within
``LLM_CRITICAL_BUDGET_SECONDS`` (:mod:`receiver.updates`). It runs the rules at once, with the
Prometheus context if a diagnosis in progress already fetched it and without it otherwise; the
diagnosis in progress is left running and its answer follows as an update.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict

import httpx
from prometheus_client import CollectorRegistry

from receiver.diagnosis.config import DiagnosisSettings, load_diagnosis_settings
from receiver.diagnosis.context import ContextBuilder
from receiver.diagnosis.llm import LLMDiagnoser, LLMError
from receiver.diagnosis.metrics import DiagnosisMetrics
from receiver.diagnosis.reachability import PROBE_TIMEOUT_SECONDS, LLMReachability
from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import Context, Diagnosis
from receiver.logs import install_redaction
from receiver.models import Alert

log = logging.getLogger(__name__)

CACHE_SIZE = 256
#: LLMError reasons that say the provider did not answer at all (any other one did).
UNREACHABLE = frozenset({"timeout", "connect_error"})
REPEAT_SIZE = 4096


def _as_diagnosis_settings(settings: DiagnosisSettings | None) -> DiagnosisSettings:
    return load_diagnosis_settings() if settings is None else settings


class DiagnosisEngine:
    """Produce a :class:`Diagnosis` (with its :class:`Context`) for each alert.

    Args:
        settings: :class:`DiagnosisSettings` (the receiver passes its ``Settings``, which
            extends it), or ``None`` to read them from the environment.
        client: shared HTTP client for the LLM providers and Prometheus (the caller closes it);
            ``None`` creates one, closed by :meth:`aclose`.
        registry: where to register the diagnosis metrics (the app's
            ``ReceiverMetrics.registry``); ``None`` keeps them on a private registry.

    Raises:
        DiagnosisSettingsError: the environment holds an invalid diagnosis setting.
    """

    def __init__(
        self,
        settings: DiagnosisSettings | None = None,
        client: httpx.AsyncClient | None = None,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = _as_diagnosis_settings(settings)
        install_redaction(self.settings.secret_values())
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(follow_redirects=False)
        self.metrics = DiagnosisMetrics.for_registry(registry)
        s = self.settings
        self.providers: list[LLMDiagnoser] = [
            LLMDiagnoser(
                base_url=p.base_url,
                model=p.model,
                api_key=p.api_key,
                timeout=s.llm_timeout_seconds,
                client=self._client,
                name=p.name,
                metrics=self.metrics,
                prices=s.llm_prices,
            )
            for p in s.providers()
        ]
        for half, url, model in (
            ("LLM_", s.llm_base_url, s.llm_model),
            ("LLM_SECONDARY_", s.llm_secondary_base_url, s.llm_secondary_model),
        ):
            if bool(url) != bool(model):
                log.warning(
                    "%sBASE_URL and %sMODEL must both be set; that provider is disabled", half, half
                )
        self.reachability = LLMReachability(
            [(p.name, functools.partial(p.probe, PROBE_TIMEOUT_SECONDS)) for p in self.providers],
            s.llm_probe_interval_seconds,
            gauge=self.metrics.llm_reachable,
        )
        self.context_builder: ContextBuilder | None = None
        if s.prometheus_url:
            self.context_builder = ContextBuilder(
                self._client,
                s.prometheus_url,
                deadline=s.context_deadline_seconds,
                lookback=s.context_lookback_seconds,
                max_points=s.context_max_points,
            )
        self._total_timeout = s.total_timeout()
        self._cache_seconds = s.llm_cache_seconds
        self._semaphore = asyncio.Semaphore(s.llm_max_concurrency)
        self._cache: OrderedDict[tuple[str, str, str, str, str], tuple[float, Diagnosis]] = (
            OrderedDict()
        )
        self._inflight: dict[tuple[str, str, str, str, str], asyncio.Future[Diagnosis | None]] = {}
        self._seen: OrderedDict[tuple[str, str, str, str], Diagnosis] = OrderedDict()
        #: Context fetched by diagnoses in progress, per incident (for :meth:`rules_now`).
        self._contexts: dict[tuple[str, str, str, str], Context | None] = {}

    @property
    def llm_enabled(self) -> bool:
        """True when at least one provider is configured."""
        return bool(self.providers)

    def llm_unreachable(self) -> bool:
        """Whether the first LLM provider is known not to answer (its last call or probe timed
        out or failed to connect): a page should not wait for the chain then."""
        return self.reachability.unreachable()

    async def aclose(self) -> None:
        """Stop the reachability probes; close the HTTP client if the engine created it."""
        await self.reachability.stop()
        if self._own_client:
            await self._client.aclose()

    # --- keys and caches --------------------------------------------------------------------

    @staticmethod
    def repeat_key(alert: Alert) -> tuple[str, str, str, str]:
        """(alertname, exchange, fingerprint, startsAt): one incident of one alert."""
        return (
            alert.alertname,
            alert.labels.get("exchange", ""),
            alert.fingerprint,
            alert.starts_at,
        )

    @staticmethod
    def cache_key(alert: Alert) -> tuple[str, str, str, str, str]:
        """(alertname, exchange, endpoint, key, result): alerts sharing a cached LLM diagnosis.

        ``key`` and ``result`` are the API-key alerts' labels (the key's configured name and the
        classified answer; empty for other alerts): two keys of one exchange, or one key failing
        in two ways, are different diagnoses.
        """
        return (
            alert.alertname,
            alert.labels.get("exchange", ""),
            alert.labels.get("endpoint", ""),
            alert.labels.get("key", ""),
            alert.labels.get("result", ""),
        )

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _cache_get(self, key: tuple[str, str, str, str, str]) -> Diagnosis | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        if self._now() - hit[0] > self._cache_seconds:
            self._cache.pop(key, None)
            return None
        return hit[1]

    def _cache_put(self, key: tuple[str, str, str, str, str], value: Diagnosis) -> None:
        if self._cache_seconds <= 0:
            return
        self._cache[key] = (self._now(), value)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def _remember(self, alert: Alert, value: Diagnosis) -> None:
        key = self.repeat_key(alert)
        self._seen[key] = value.model_copy(update={"context": None})
        self._seen.move_to_end(key)
        while len(self._seen) > REPEAT_SIZE:
            self._seen.popitem(last=False)

    # --- the pipeline -----------------------------------------------------------------------

    async def context_for(self, alert: Alert) -> Context | None:
        """The Prometheus context of a firing alert (``None`` without ``PROMETHEUS_URL``)."""
        if self.context_builder is None or alert.status != "firing":
            return None
        try:
            ctx, status = await self.context_builder.fetch(alert)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let the context break a notification
            log.exception("context fetch failed: %s", exc.__class__.__name__)
            ctx, status = Context(note="context unavailable (internal error)"), "failed"
            ctx = ctx.model_copy(update={"summary": f"context: {ctx.note}", "fields": {}})
        self.metrics.context.labels(status).inc()
        return ctx

    def _rules(self, alert: Alert, context: Context | None) -> Diagnosis:
        result = diagnose_with_rules(alert, context=context)
        return result.model_copy(update={"context": context}) if context is not None else result

    def _done(self, result: Diagnosis) -> Diagnosis:
        self.metrics.diagnoses.labels(result.source).inc()
        return result

    def rules_now(self, alert: Alert) -> Diagnosis:
        """The rules' diagnosis of ``alert`` at once: no I/O, no waiting, never raises.

        The fast path for a page that cannot wait for :meth:`diagnose` (the worker's
        ``LLM_CRITICAL_BUDGET_SECONDS``). It uses the Prometheus context when a :meth:`diagnose`
        of the same incident (:meth:`repeat_key`) in progress has already fetched it, so a slow
        Prometheus never delays it: the rules then run without context. A repeat of an
        incident already diagnosed by the LLM returns that diagnosis. Not counted in
        ``alert_receiver_diagnosis_total`` (the :meth:`diagnose` in progress is).

        Returns:
            A :class:`Diagnosis` with ``source="rules"`` (or the remembered ``"llm"`` one).
        """
        key = self.repeat_key(alert)
        previous = self._seen.get(key)
        context = self._contexts.get(key)
        if previous is not None and previous.source == "llm":
            return previous.model_copy(update={"context": context})
        if alert.status != "firing":
            return diagnose_with_rules(alert)
        return self._rules(alert, context)

    async def diagnose(self, alert: Alert) -> Diagnosis:
        """Diagnose one alert; never raises (rules are the last resort).

        Returns:
            ``source="llm"`` when a model produced (or earlier produced, for repeats and cache
            hits) a valid answer, else ``source="rules"``; ``context`` is set for firing alerts
            when ``PROMETHEUS_URL`` is configured.
        """
        if alert.status != "firing":
            if self.providers:
                self.metrics.skipped.labels("resolved").inc()
            return self._done(diagnose_with_rules(alert))
        context = await self.context_for(alert)
        if not self.providers:
            return self._done(self._rules(alert, context))
        incident = self.repeat_key(alert)
        self._contexts[incident] = context
        try:
            return await self._diagnose_firing(alert, context)
        finally:
            self._contexts.pop(incident, None)

    async def _diagnose_firing(self, alert: Alert, context: Context | None) -> Diagnosis:
        """Steps 4-7 of the module docstring for a firing alert with its ``context``."""

        previous = self._seen.get(self.repeat_key(alert))
        if previous is not None:
            self.metrics.skipped.labels("repeat").inc()
            if previous.source == "llm":
                return self._done(previous.model_copy(update={"context": context}))
            return self._done(self._rules(alert, context))

        key = self.cache_key(alert)
        cached = self._cache_get(key)
        if cached is not None:
            self.metrics.skipped.labels("cache").inc()
            self._remember(alert, cached)
            return self._done(cached.model_copy(update={"context": context}))

        shared = self._inflight.get(key)
        if shared is not None:
            self.metrics.skipped.labels("coalesced").inc()
            result = await asyncio.shield(shared)
            if result is None:
                result = self._rules(alert, context)
            else:
                result = result.model_copy(update={"context": context})
            self._remember(alert, result)
            return self._done(result)

        future: asyncio.Future[Diagnosis | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        llm_result: Diagnosis | None = None
        try:
            llm_result, reason = await self._run_chain(alert, context)
            if llm_result is None:
                self.metrics.fallbacks.labels(reason).inc()
                log.warning("LLM diagnosis failed, using rules (reason: %s)", reason)
                result = self._rules(alert, context)
            else:
                self._cache_put(key, llm_result)
                result = llm_result.model_copy(update={"context": context})
        finally:
            self._inflight.pop(key, None)
            if not future.done():
                future.set_result(llm_result)
        self._remember(alert, result)
        return self._done(result)

    async def _run_chain(
        self, alert: Alert, context: Context | None
    ) -> tuple[Diagnosis | None, str]:
        """Try each provider within the stage deadline; return (diagnosis or None, reason)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._total_timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._semaphore.acquire()
        except TimeoutError:
            return None, "busy"
        reason = "timeout"
        evidence = context.alert_value if context is not None else None
        try:
            for provider in self.providers:
                remaining = deadline - loop.time()
                if remaining <= 0.01:
                    reason = "timeout"
                    break
                try:
                    result = await provider.diagnose(
                        alert, evidence, context, timeout=min(provider.timeout, remaining)
                    )
                except LLMError as exc:
                    reason = exc.reason
                    self.reachability.note(provider.name, reason not in UNREACHABLE)
                    log.warning("LLM provider %s failed: %s", provider.name, exc)
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the worker must never die because of the LLM path
                    reason = "error"
                    log.exception(
                        "unexpected error from LLM provider %s: %s",
                        provider.name,
                        exc.__class__.__name__,
                    )
                    continue
                self.reachability.note(provider.name, True)
                log.info("diagnosis by LLM provider %s", provider.name)
                return result, "ok"
        finally:
            self._semaphore.release()
        return None, reason
