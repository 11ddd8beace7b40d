"""Every kind of answer each exchange gives, recorded once from the simulator, served by a fake
probe client on a virtual clock (tests of the scheduler under arbitrary answer sequences).

The recorded answers are the simulator's, which speaks each exchange's documented dialect; the
transport failures (reset, hang, a body too slow for the timeout) are raised as the real
:class:`exporter.http11.ProbeClient` raises them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from exporter.config import ExporterConfig
from exporter.egress import DIRECT, Route
from exporter.http11 import ConnectError, Response
from exporter.scheduler import build_targets
from simulator import simulator_in_thread
from simulator.failure_kinds import FAILURE_KINDS, endpoint_fault
from testsupport.virtual_time import VirtualClock

KINDS: tuple[str, ...] = ("ok", *FAILURE_KINDS)
"""Answer kinds: the failure kinds of issue 11 (:mod:`simulator.failure_kinds`), plus a healthy
answer."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


def record_answers(config: ExporterConfig) -> dict[tuple[str, str, str], Recorded]:
    """Ask an in-thread simulator for every (exchange, endpoint, HTTP answer kind) of ``config``.

    Kinds the exchange does not document (an IP ban on OKX or Coinbase, maintenance on
    Coinbase) fall back to the nearest documented answer (rate limit, HTTP 503).
    """
    answers: dict[tuple[str, str, str], Recorded] = {}
    with simulator_in_thread(limits=False) as sim, httpx.Client(timeout=10) as http:
        for target in build_targets(config):
            exchange, endpoint = target.exchange, target.endpoint.name
            path = target.endpoint.url(f"{sim.url}/{exchange}")
            for kind in ("ok", "http_error", "rate_limited", "banned", "api_error", "maintenance"):
                fault = _fault_for(exchange, endpoint, kind)
                http.delete(f"{sim.url}/_control/faults")
                if fault is not None:
                    scope = {} if fault["fault"] == "maintenance" else {"endpoint": endpoint}
                    reply = http.post(
                        f"{sim.url}/_control/faults", json={"exchange": exchange, **scope, **fault}
                    )
                    assert reply.status_code == 200, reply.text
                response = http.get(path)
                headers = {k.lower(): v for k, v in response.headers.items()}
                answers[(exchange, endpoint, kind)] = Recorded(
                    response.status_code, headers, response.content
                )
    return answers


def _fault_for(exchange: str, endpoint: str, kind: str) -> dict[str, Any] | None:
    if kind == "ok":
        return None
    if kind == "maintenance":  # exchange-wide: also the failing market-data answers
        fault = endpoint_fault(kind, exchange, endpoint)
        return {"fault": "http_error", "status": 503} if fault is None else {"fault": kind}
    fault = endpoint_fault(kind, exchange, endpoint)
    if fault is None:  # no documented IP ban: the nearest answer is the rate limit
        fault = endpoint_fault("rate_limited", exchange, endpoint)
    assert fault is not None
    return {k: v for k, v in fault.items() if k not in ("exchange", "endpoint")}


@dataclass(slots=True)
class Sent:
    """One request the fake client received: when (loop time) and what it answered."""

    exchange: str
    endpoint: str
    at: float
    kind: str
    finished: float = 0.0
    answer: Recorded | None = None


@dataclass
class FakeExchanges:
    """A probe client (``get``/``aclose``) answering from ``answers`` by a per-endpoint plan.

    Args:
        config: the exporter config whose targets are served.
        answers: from :func:`record_answers`.
        plans: ``(exchange, endpoint)`` → consecutive ``(kind, seconds)`` segments; the last
            segment's kind holds until the end; endpoints without a plan answer ``ok``.
        clock: the virtual clock (latencies and hangs take loop time).
        seed: for the latency jitter of answers (20–80 ms).
    """

    config: ExporterConfig
    answers: Mapping[tuple[str, str, str], Recorded]
    plans: Mapping[tuple[str, str], Sequence[tuple[str, float]]]
    clock: VirtualClock
    seed: int = 0
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_url = {t.url: (t.exchange, t.endpoint.name) for t in build_targets(self.config)}
        self._rng = random.Random(self.seed)

    def kind_at(self, key: tuple[str, str], at: float) -> str:
        """The answer kind of endpoint ``key`` at loop time ``at``."""
        start = 0.0
        plan = self.plans.get(key, ())
        for kind, seconds in plan:
            if at < start + seconds:
                return kind
            start += seconds
        return plan[-1][0] if plan else "ok"

    async def get(
        self,
        url: str,
        timeout: float,
        max_body_bytes: int,
        resend_stale: bool = True,
        route: Route = DIRECT,
    ) -> Response:
        """Answer like :meth:`exporter.http11.ProbeClient.get`."""
        exchange, endpoint = self._by_url[url]
        started = self.clock.now
        kind = self.kind_at((exchange, endpoint), started)
        sent = Sent(exchange, endpoint, started, kind)
        self.sent.append(sent)
        try:
            if kind == "reset":
                await asyncio.sleep(0.001)
                raise ConnectError("connection reset by peer")
            if kind in ("hang", "slow_body"):
                # slow_body: headers at once, the body too slow to finish within the timeout.
                await asyncio.sleep(timeout)
                raise TimeoutError
            latency = self._rng.uniform(0.02, 0.08)
            await asyncio.sleep(latency)
            answer = self.answers[(exchange, endpoint, kind)]
            sent.answer = answer
            return Response(answer.status, dict(answer.headers), answer.body, latency)
        finally:
            sent.finished = self.clock.now

    async def aclose(self) -> None:
        """Nothing to close."""
