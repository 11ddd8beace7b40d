"""Property: whatever the exchanges answer, the exporter's requests stay within each exchange's
schedule and request-weight budget, and nothing is sent during a rate-limit or ban pause.

The real scheduler and prober run the shipped schedule (``deploy/exporter.demo.yml``) on a
virtual clock against a fake client whose answers — ok, HTTP 5xx, reset, hang, 429, ban, API
error, maintenance, slow body — are the simulator's recorded answers, per endpoint in random
sequences drawn by hypothesis. Ten virtual minutes take well under a second.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.admission import CONFIRMATION_PROBES
from exporter.config import ExporterConfig, load_config
from exporter.metrics import ExporterMetrics
from exporter.profiles import Result, get_profile
from exporter.scheduler import ProbeScheduler, build_targets
from testsupport.exchange_answers import KINDS, FakeExchanges, Recorded, Sent, record_answers
from testsupport.virtual_time import VirtualClock, run_virtual

pytestmark = pytest.mark.e2e  # records the answers from an in-thread simulator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_SECONDS = 600.0
EPSILON = 1e-6


def shipped_config() -> ExporterConfig:
    """The shipped demo schedule, pointed at an address nothing listens on (never contacted)."""
    previous = os.environ.get("SIMULATOR_URL")
    os.environ["SIMULATOR_URL"] = "http://127.0.0.1:9"
    try:
        return load_config(os.path.join(ROOT, "deploy", "exporter.demo.yml"))
    finally:
        if previous is None:
            del os.environ["SIMULATOR_URL"]
        else:
            os.environ["SIMULATOR_URL"] = previous


CONFIG = shipped_config()
ENDPOINTS = [(t.exchange, t.endpoint.name) for t in build_targets(CONFIG)]


@pytest.fixture(scope="module")
def answers() -> dict[tuple[str, str, str], Recorded]:
    """The simulator's answer of every kind for every endpoint of the shipped schedule."""
    return record_answers(CONFIG)


def run_plan(
    answers: dict[tuple[str, str, str], Recorded],
    plans: dict[tuple[str, str], list[tuple[str, float]]],
    seed: int = 0,
) -> FakeExchanges:
    """Run the real scheduler for :data:`RUN_SECONDS` of virtual time; return the client."""
    clock = VirtualClock()
    client = FakeExchanges(CONFIG, answers, plans, clock, seed)

    async def main() -> None:
        scheduler = ProbeScheduler(CONFIG, ExporterMetrics(), client, clock=clock)  # type: ignore[arg-type]
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(RUN_SECONDS, stop.set)
        await scheduler.run(stop)

    run_virtual(main(), clock)
    return client


def violations(client: FakeExchanges) -> Iterator[str]:
    """Every breach of the guarantee in the requests ``client`` received."""
    by_endpoint: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_exchange: dict[str, list[Sent]] = defaultdict(list)
    for sent in client.sent:
        by_endpoint[(sent.exchange, sent.endpoint)].append(sent.at)
        by_exchange[sent.exchange].append(sent)
    for exchange in CONFIG.exchanges:
        schedule = exchange.schedule()
        # 1. Schedule: an endpoint sends at most 1 + CONFIRMATION_PROBES + T / interval in any
        #    T seconds, i.e. request i + m comes at least (m - 1 - K) intervals after request i.
        for name, (interval, _) in schedule.items():
            times = by_endpoint[(exchange.name, name)]
            for i in range(len(times)):
                for m in range(CONFIRMATION_PROBES + 2, len(times) - i):
                    gap = times[i + m] - times[i]
                    if gap < (m - 1 - CONFIRMATION_PROBES) * interval - EPSILON:
                        yield (
                            f"{exchange.name} {name}: {m + 1} requests in {gap:.3f}s "
                            f"(interval {interval:g}s) from t={times[i]:.3f}"
                        )
                        break
        # 2. Budget: the weight against each documented limit never exceeds the budget's cap
        #    over the enforced window, nor the documented limit itself over its own window.
        sent_list = by_exchange[exchange.name]
        for window in exchange.budget_windows():
            rule = window.rule
            covered = [(s.at, schedule[s.endpoint][1]) for s in sent_list]
            covered = [
                (at, w)
                for (at, w), s in zip(covered, sent_list, strict=True)
                if rule.applies_to(s.endpoint)
            ]
            for span, cap, what in (
                (window.span_seconds, window.cap, "budget"),
                (rule.window_seconds, rule.limit, "documented limit"),
            ):
                start, total = 0, 0.0
                for at, weight in covered:
                    total += weight
                    while covered[start][0] <= at - span:
                        total -= covered[start][1]
                        start += 1
                    if total > cap + EPSILON:
                        yield (
                            f"{exchange.name} {rule.name}: weight {total:g} in {span:g}s "
                            f"> {what} {cap:g} at t={at:.3f}"
                        )
                        break
        # 3. Pauses: after a rate-limit or ban answer, no request until its wait has passed.
        profile = get_profile(exchange.profile)
        pauses = []
        for s in sent_list:
            if s.answer is None:
                continue
            verdict = profile.classify(s.endpoint, s.answer.status, s.answer.headers, s.answer.body)
            if verdict.result in (Result.RATE_LIMITED, Result.BANNED):
                wait = verdict.retry_after
                if wait is None:
                    wait = profile.backoff_seconds[verdict.result]
                pauses.append((s.finished, s.finished + wait))
        for s in sent_list:
            for begin, end in pauses:
                if begin + EPSILON < s.at < end - EPSILON:
                    yield f"{exchange.name} {s.endpoint}: sent at t={s.at:.3f} during a pause"
                    break


segment = st.tuples(st.sampled_from(("ok",) * 3 + KINDS), st.floats(min_value=2.0, max_value=240.0))
plans = st.dictionaries(
    st.sampled_from(ENDPOINTS), st.lists(segment, min_size=1, max_size=6), max_size=len(ENDPOINTS)
)


@settings(
    max_examples=int(os.environ.get("PROBE_STORM_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plans=plans, seed=st.integers(0, 2**16))
def test_requests_stay_within_schedule_and_budget_whatever_the_answers(
    answers: dict[tuple[str, str, str], Recorded],
    plans: dict[tuple[str, str], list[tuple[str, float]]],
    seed: int,
) -> None:
    client = run_plan(answers, plans, seed)
    assert client.sent, "nothing was probed"
    found = list(violations(client))
    assert not found, "\n".join(found[:20])


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "ok"])
def test_one_endpoint_failing_persistently_keeps_every_exchange_near_its_healthy_rate(
    answers: dict[tuple[str, str, str], Recorded], kind: str
) -> None:
    """The partial outage of issue 11, every kind on the busiest endpoint of every exchange:
    within the schedule and budget, and at most 1.5x the healthy request rate."""
    healthy = run_plan(answers, {})
    faulted = run_plan(
        answers, {(e.name, e.endpoint_names()[-1]): [(kind, RUN_SECONDS)] for e in CONFIG.exchanges}
    )
    assert not list(violations(faulted))
    for exchange in CONFIG.exchanges:
        base = sum(s.exchange == exchange.name for s in healthy.sent)
        seen = sum(s.exchange == exchange.name for s in faulted.sent)
        assert seen <= 1.5 * base, f"{exchange.name}: {seen} requests vs {base} healthy"
