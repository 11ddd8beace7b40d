"""One probe: a timed HTTP request to an exchange endpoint, classified and recorded.

The prober owns the transport (one shared :class:`exporter.http11.ProbeClient`, a total deadline
per probe, a cap on the body size) and records every outcome in metrics and in the exchange's
state; the profile (``exporter.profiles``) only reads the finished response.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.egress import DIRECT, Route
from exporter.http11 import (
    BodyTooLargeError,
    DecodingError,
    DnsError,
    ProbeClient,
    Response,
    StaleConnectionError,
    TlsError,
    TransportError,
)
from exporter.market.data import MarketData
from exporter.metrics import ExporterMetrics
from exporter.profiles import EndpointSpec, Profile, Result, Verdict
from exporter.resilience import CircuitState
from exporter.state import EndpointState, ExchangeState

TRANSPORT_RESULTS = frozenset(
    {Result.TIMEOUT, Result.CONNECT_ERROR, Result.DNS_ERROR, Result.TLS_ERROR}
)
"""Results that mean no HTTP answer arrived."""

CIRCUIT_FAILURES = frozenset(
    {Result.TIMEOUT, Result.CONNECT_ERROR, Result.DNS_ERROR, Result.TLS_ERROR, Result.HTTP_ERROR}
)
"""Results that count as failures for the circuit breaker (the exchange is not answering
properly); rate limits are handled by the rate-limit gate instead."""


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
        max_body_bytes: larger bodies are not read and the probe is ``bad_response``.
        market: the unified market a ticker probe reads (its quote goes to the market data),
            or None.
        route: the exchange's egress (proxy, source address, IP protocol, TLS trust and name).
    """

    exchange: str
    profile: Profile
    endpoint: EndpointSpec
    url: str
    interval: float
    timeout: float
    max_body_bytes: int = 1024 * 1024
    market: str | None = None
    route: Route = DIRECT


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """The outcome of one probe.

    Attributes:
        result: the classified outcome.
        duration: seconds from send to the last body byte; None when no HTTP response arrived.
        status: HTTP status, or None.
        verdict: the profile's verdict when a complete HTTP response arrived, else None.
        error: a short description of the failure, or "".
    """

    result: Result
    duration: float | None
    status: int | None
    verdict: Verdict | None
    error: str = ""


class Prober:
    """Runs probes on one shared HTTP client and records them.

    Every request passes the exchange's :class:`exporter.admission.ProbeAdmission` first, inside
    the concurrency limit and right before it is sent: whoever calls :meth:`probe` (a scheduled
    slot, a wake-up, a retry), the exchange's schedule, request-weight budget and rate-limit
    pauses hold.

    Args:
        client: the shared HTTP client (connection pool reused across probes).
        metrics: where outcomes are exported.
        states: per-exchange state by exchange name (updated in place).
        concurrency: the limit on probes in flight (the scheduler may replace it on reload);
            None allows any number.
        clock: time source for timestamps (tests pass a fake one).
    """

    def __init__(
        self,
        client: ProbeClient,
        metrics: ExporterMetrics,
        states: dict[str, ExchangeState],
        concurrency: asyncio.Semaphore | None = None,
        clock: Clock = SYSTEM_CLOCK,
        market_data: MarketData | None = None,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._states = states
        self.concurrency = concurrency
        self._clock = clock
        self.market_data = market_data
        """Where ticker quotes and announced maintenance go (None: nowhere)."""

    async def probe(self, target: ProbeTarget, due: float | None = None) -> ProbeRecord:
        """Probe ``target`` once, when its exchange's gate admits it, and record the outcome.

        Args:
            target: what to probe.
            due: the event-loop time the probe was planned for; when given, the delay between
                admission and the planned time (or admission, when later) is observed as
                ``exchange_exporter_schedule_lag_seconds``.

        Transport failures are ``timeout`` (no complete answer within ``target.timeout``,
        including a body that trickles in too slowly), ``dns_error`` (the name, or the proxy's,
        did not resolve), ``tls_error`` (the handshake failed) or ``connect_error`` (refused,
        reset, proxy refused ``CONNECT``, protocol failure). A body over
        ``target.max_body_bytes`` is ``bad_response``.

        Raises:
            KeyError: the endpoint is not in its exchange's schedule (the gate admits nothing
                it does not know). Every answer, however bad, is recorded, never raised.
        """
        admission = self._states[target.exchange].admission
        loop = asyncio.get_running_loop()
        held = self._metrics.probes_held
        while True:
            async with self.concurrency or contextlib.nullcontext():
                wait, reason = admission.try_admit(target.endpoint.name)
                if reason is None:
                    if due is not None:
                        self._metrics.schedule_lag.observe(max(loop.time() - due, 0.0))
                    return await self._send(target)
            held.labels(target.exchange, reason.value).inc()
            due = None  # held by the gate, not late: lag is the scheduler's own delay
            await asyncio.sleep(wait)

    async def _get(self, target: ProbeTarget) -> Response:
        """GET the target within its timeout; a reused connection that turns out stale is
        resent only when the exchange's gate admits one more request (the first one may have
        reached the exchange and counted against its limits)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + target.timeout
        admission = self._states[target.exchange].admission
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            try:
                return await self._client.get(
                    target.url,
                    remaining,
                    target.max_body_bytes,
                    resend_stale=False,
                    route=target.route,
                )
            except StaleConnectionError:
                if admission.try_admit(target.endpoint.name)[1] is not None:
                    raise

    async def _send(self, target: ProbeTarget) -> ProbeRecord:
        wall_start = self._clock.time()
        status: int | None = None
        try:
            response: Response = await self._get(target)
        except TimeoutError:
            record = ProbeRecord(Result.TIMEOUT, None, None, None, "timed out")
        except BodyTooLargeError as exc:
            status = exc.status
            error = f"body larger than {target.max_body_bytes} bytes"
            record = ProbeRecord(Result.BAD_RESPONSE, None, status, None, error)
        except DecodingError as exc:
            status = exc.status
            record = ProbeRecord(Result.BAD_RESPONSE, None, status, None, str(exc)[:120])
        except (TransportError, OSError) as exc:
            detail = str(exc)[:120]
            error = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
            if isinstance(exc, DnsError):
                result = Result.DNS_ERROR
            elif isinstance(exc, TlsError):
                result = Result.TLS_ERROR
            else:
                result = Result.CONNECT_ERROR
            record = ProbeRecord(result, None, None, None, error)
        else:
            status, duration = response.status, response.elapsed
            verdict = target.profile.classify(
                target.endpoint.name, status, response.headers, response.body
            )
            record = ProbeRecord(verdict.result, duration, status, verdict, verdict.message)
            self._record_response(target, response.headers, verdict, duration, wall_start)
            self._record_phases(target, response)
            if self.market_data is not None and verdict.result is Result.OK:
                self._hand_off(self.market_data, target, verdict)
        if status is not None:
            self._metrics.endpoint(target.exchange, target.endpoint.name).responses(status).inc()
        self._record_outcome(target, record)
        return record

    def _record_response(
        self,
        target: ProbeTarget,
        headers: Mapping[str, str],
        verdict: Verdict,
        duration: float,
        wall_start: float,
    ) -> None:
        m = self._metrics
        exchange, endpoint = target.exchange, target.endpoint.name
        state = self._states[exchange]
        m.endpoint(exchange, endpoint).duration.observe(duration)
        state.endpoints[endpoint].add_latency(duration)
        for reading in target.profile.rate_limits(headers):
            m.rate_limit_used.labels(exchange, reading.window).set(reading.used)
            if reading.limit is not None:
                m.rate_limit_limit.labels(exchange, reading.window).set(reading.limit)
            state.rate_limits[reading.window] = (reading.used, reading.limit)
        midpoint = wall_start + duration / 2.0
        if verdict.server_time is not None:
            state.clock_skew = verdict.server_time - midpoint
            m.clock_skew.labels(exchange).set(state.clock_skew)
        if verdict.data_time is not None:
            exchange_now = midpoint + (state.clock_skew or 0.0)
            m.market_data_age.labels(exchange, endpoint).set(exchange_now - verdict.data_time)
        label = target.profile.error_label(verdict.error_code)
        if label is not None:
            m.errors.labels(exchange, endpoint, label).inc()
        if verdict.result in (Result.RATE_LIMITED, Result.BANNED):
            seconds = verdict.retry_after
            if seconds is None:
                seconds = target.profile.backoff_seconds.get(verdict.result, 60.0)
            banned = verdict.result is Result.BANNED
            m.backoff_until.labels(exchange).set(state.gate.block(seconds, ban=banned))
            m.ban_until.labels(exchange).set(state.gate.ban_until)

    def _record_phases(self, target: ProbeTarget, response: Response) -> None:
        exchange, endpoint = target.exchange, target.endpoint.name
        series = self._metrics.endpoint(exchange, endpoint).phases
        phases = self._states[exchange].endpoints[endpoint].phases
        for (phase, child), (_, seconds) in zip(series, response.phases.items(), strict=True):
            child.set(seconds)
            phases[phase] = seconds
        if response.tls_cert_expiry is not None:
            self._metrics.tls_cert_expiry.labels(exchange).set(response.tls_cert_expiry)

    @staticmethod
    def _hand_off(data: MarketData, target: ProbeTarget, verdict: Verdict) -> None:
        """Give a successful probe's market facts to the market data: a ticker's quote and 24 h
        volume (when the target names its market), a status answer's announced maintenance
        (when the profile announces it; None clears the window)."""
        endpoint = target.endpoint.name
        if endpoint == "ticker" and target.market is not None and verdict.quote is not None:
            quote = verdict.quote
            data.quote(
                target.exchange,
                target.market,
                bid=quote.bid,
                ask=quote.ask,
                last=quote.last,
                source="rest",
            )
            if quote.volume_24h is not None:
                data.rolling_volume(target.exchange, target.market, quote.volume_24h)
        elif endpoint == "status" and target.profile.announces_maintenance:
            data.scheduled_maintenance(target.exchange, verdict.scheduled_maintenance)

    def _record_outcome(self, target: ProbeTarget, record: ProbeRecord) -> None:
        m = self._metrics
        exchange, endpoint = target.exchange, target.endpoint.name
        state = self._states[exchange]
        ep: EndpointState = state.endpoints[endpoint]
        result = record.result
        ok = result is Result.OK
        now = self._clock.time()
        # The exchange was down: its circuit had opened, or no endpoint's last probe succeeded
        # (only asked after a success, the one case that can end an outage).
        circuit_before = state.circuit.state
        was_down = ok and (
            circuit_before is not CircuitState.CLOSED
            or all(e.consecutive_failures > 0 for e in state.endpoints.values())
        )
        was_maintenance = ep.maintenance
        ep.last_result = result.value
        ep.last_error = "" if ok else (record.error or result.value)
        ep.last_probe_at = now
        ep.consecutive_failures = 0 if ok else ep.consecutive_failures + 1
        first_transport_failure = result in TRANSPORT_RESULTS and ep.transport_failures == 0
        ep.transport_failures = ep.transport_failures + 1 if result in TRANSPORT_RESULTS else 0
        if ok:
            ep.last_success_at = now
        verdict = record.verdict
        if verdict is not None and verdict.maintenance is not None:
            ep.maintenance = verdict.maintenance
        else:
            ep.maintenance = result is Result.MAINTENANCE
        ep.maintenance_message = record.error if ep.maintenance else ""
        # Wake-ups, each rate limited and coalesced by the state: a recovery only when the whole
        # exchange had been down, never because one endpoint of an answering exchange fails
        # while the others succeed (a partial outage); a sweep only for the first transport
        # failure of an endpoint of a healthy exchange.
        was_failing = state.circuit.failures > 0
        state.circuit.record(result not in CIRCUIT_FAILURES)
        if was_down:
            state.recover()
        elif first_transport_failure and not was_failing:
            state.sweep()  # the other endpoints confirm the outage now
        series = m.endpoint(exchange, endpoint)
        series.requests(result.value).inc()
        series.up.set(1 if ok else 0)
        series.consecutive_failures.set(ep.consecutive_failures)
        series.last_probe.set(now)
        # The exchange's gauges change only with this endpoint's flag or the circuit: written
        # then (the stream manager writes the maintenance gauge on its own changes).
        if ep.maintenance != was_maintenance:
            series.maintenance.set(1 if state.in_maintenance() else 0)
        if state.circuit.state is not circuit_before:
            series.circuit_state.set(int(state.circuit.state))
