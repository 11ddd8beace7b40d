"""One probe: a timed HTTP request to an exchange endpoint, classified and recorded in metrics."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from exporter.metrics import ExporterMetrics
from exporter.profiles import EndpointSpec, Profile, Result, Verdict


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One (exchange, endpoint) pair to probe.

    Attributes:
        exchange: the ``exchange`` label value.
        profile: the exchange's profile, which classifies responses.
        endpoint: the endpoint spec (path, params, request weight).
        url: the full request URL.
        interval: seconds between probes.
        timeout: total seconds allowed for one probe (connect + send + receive).
    """

    exchange: str
    profile: Profile
    endpoint: EndpointSpec
    url: str
    interval: float
    timeout: float


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """The outcome of one probe.

    Attributes:
        result: the classified outcome.
        duration: seconds from send to full response; None when no HTTP response arrived.
        status: HTTP status, or None.
        verdict: the profile's verdict when an HTTP response arrived, else None.
        error: a short description of a transport failure, or "".
    """

    result: Result
    duration: float | None
    status: int | None
    verdict: Verdict | None
    error: str = ""


class Prober:
    """Runs probes on one shared :class:`httpx.AsyncClient` and records them in metrics.

    Args:
        client: the shared HTTP client (connection pool reused across probes).
        metrics: where to record outcomes.
    """

    def __init__(self, client: httpx.AsyncClient, metrics: ExporterMetrics) -> None:
        self._client = client
        self._metrics = metrics
        self._failures: dict[tuple[str, str], int] = {}

    async def probe(self, target: ProbeTarget) -> ProbeRecord:
        """Probe ``target`` once and update its metrics; never raises (except cancellation).

        Transport failures are classified as ``timeout`` (no complete answer within
        ``target.timeout``) or ``connect_error`` (refused, reset, TLS or protocol failure).
        """
        wall_start = time.time()
        start = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout):
                response = await self._client.get(target.url, timeout=target.timeout)
        except (TimeoutError, httpx.TimeoutException):
            record = ProbeRecord(Result.TIMEOUT, None, None, None, "timed out")
        except httpx.DecodingError as exc:
            record = ProbeRecord(Result.BAD_RESPONSE, None, None, None, type(exc).__name__)
        except httpx.HTTPError as exc:
            record = ProbeRecord(Result.CONNECT_ERROR, None, None, None, type(exc).__name__)
        else:
            duration = time.perf_counter() - start
            verdict = target.profile.classify(
                target.endpoint.name, response.status_code, response.headers, response.content
            )
            record = ProbeRecord(verdict.result, duration, response.status_code, verdict)
            self._record_response(target, response, verdict, duration, wall_start)
        self._record_outcome(target, record.result)
        return record

    def _record_response(
        self,
        target: ProbeTarget,
        response: httpx.Response,
        verdict: Verdict,
        duration: float,
        wall_start: float,
    ) -> None:
        m = self._metrics
        m.request_duration.labels(target.exchange, target.endpoint.name).observe(duration)
        for reading in target.profile.rate_limits(response.headers):
            m.rate_limit_used.labels(target.exchange, reading.window).set(reading.used)
            if reading.limit is not None:
                m.rate_limit_limit.labels(target.exchange, reading.window).set(reading.limit)
        if verdict.server_time is not None:
            midpoint = wall_start + duration / 2.0
            m.clock_skew.labels(target.exchange).set(verdict.server_time - midpoint)

    def _record_outcome(self, target: ProbeTarget, result: Result) -> None:
        m = self._metrics
        key = (target.exchange, target.endpoint.name)
        m.requests.labels(target.exchange, target.endpoint.name, result.value).inc()
        ok = result is Result.OK
        failures = 0 if ok else self._failures.get(key, 0) + 1
        self._failures[key] = failures
        m.up.labels(*key).set(1 if ok else 0)
        m.consecutive_failures.labels(*key).set(failures)
        m.last_probe.labels(*key).set(time.time())
