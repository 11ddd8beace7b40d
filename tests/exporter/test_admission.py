"""The probe gate (exporter.admission): schedule bucket, budget windows, pauses, reloads."""

from __future__ import annotations

import pytest

from exporter.admission import (
    CONFIRMATION_PROBES,
    BudgetWindow,
    HoldReason,
    ProbeAdmission,
    budget_windows,
)
from exporter.config import ConfigError, parse_config
from exporter.egress import DIRECT, Route
from exporter.profiles import get_profile
from exporter.profiles.base import LimitRule
from exporter.resilience import RateLimitGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(
    schedule: dict[str, tuple[float, float]], windows: tuple[BudgetWindow, ...] = ()
) -> tuple[ProbeAdmission, Clock]:
    clock = Clock()
    admission = ProbeAdmission(RateLimitGate(now=clock), clock)
    admission.configure(schedule, windows)
    return admission, clock


def test_an_endpoint_gets_one_request_per_interval_plus_the_confirmations() -> None:
    admission, clock = gate({"time": (5.0, 1.0)})
    for _ in range(1 + CONFIRMATION_PROBES):
        assert admission.try_admit("time") == (0.0, None)
    wait, reason = admission.try_admit("time")
    assert reason is HoldReason.SCHEDULE and wait == pytest.approx(5.0)
    clock.now += 4.9
    assert admission.try_admit("time")[1] is HoldReason.SCHEDULE
    clock.now += 0.1
    assert admission.try_admit("time") == (0.0, None)
    # Hammered for ten minutes: never more than one request per interval after the burst.
    sent = 0
    for _ in range(6000):
        clock.now += 0.1
        sent += admission.try_admit("time")[1] is None
    assert sent == 120


def test_budget_caps_the_weight_in_any_window() -> None:
    rule = LimitRule("REQUEST_WEIGHT", 60.0, 6000)
    windows = budget_windows([rule], 0.1, {"ticker": 2.0, "orderbook": 5.0})
    assert windows[0].cap == 600 and windows[0].span_seconds == 60 and windows[0].scale == 1
    admission, clock = gate({"ticker": (0.001, 2.0), "orderbook": (0.001, 5.0)}, windows)
    used = 0.0
    for _ in range(1000):
        clock.now += 0.01
        for name, weight in (("ticker", 2.0), ("orderbook", 5.0)):
            if admission.try_admit(name)[1] is None:
                used += weight
    assert used <= 600  # 10 s of hammering, one 60 s window
    wait, reason = admission.try_admit("orderbook")
    assert reason is HoldReason.BUDGET and 0 < wait <= 60


def test_a_request_heavier_than_the_share_scales_the_window() -> None:
    """OKX status: 1 request per 5 s at a 10 % budget is one request per 50 s."""
    okx = parse_config(
        {
            "exchanges": [
                {
                    "name": "okx",
                    "profile": "okx",
                    "base_url": "https://www.okx.com",
                    "endpoints": ["time", {"name": "status", "interval": "60s"}],
                }
            ]
        }
    ).exchanges[0]
    status = next(w for w in okx.budget_windows() if w.rule.applies_to("status"))
    assert (status.scale, status.span_seconds, status.cap) == (10, 50.0, pytest.approx(1.0))
    admission, clock = gate(okx.schedule(), okx.budget_windows())
    assert admission.try_admit("status") == (0.0, None)
    clock.now += 10  # the schedule bucket would allow a confirmation, the budget does not
    wait, reason = admission.try_admit("status")
    assert reason is HoldReason.BUDGET and wait == pytest.approx(40.0)


def test_pause_holds_every_endpoint() -> None:
    admission, clock = gate({"time": (5.0, 1.0), "ticker": (5.0, 2.0)})
    admission.pause.block(30.0)
    for name in ("time", "ticker"):
        wait, reason = admission.try_admit(name)
        assert reason is HoldReason.PAUSED and wait == pytest.approx(30.0)
    clock.now += 30.0
    assert admission.try_admit("time") == (0.0, None)


def test_unknown_endpoints_cannot_bypass_the_gate() -> None:
    admission, _ = gate({"time": (5.0, 1.0)})
    with pytest.raises(KeyError, match="not in the exchange's probe schedule"):
        admission.try_admit("orderbook")


def test_reload_keeps_what_was_sent() -> None:
    rule = LimitRule("per IP", 5.0, 10)
    windows = budget_windows([rule], 0.2, {"time": 1.0})  # 2 per 5 s
    admission, clock = gate({"time": (1.0, 1.0)}, windows)
    assert admission.try_admit("time")[1] is None
    clock.now += 1
    assert admission.try_admit("time")[1] is None
    admission.configure({"time": (1.0, 1.0), "ticker": (1.0, 1.0)}, windows)
    assert admission.try_admit("ticker")[1] is HoldReason.BUDGET
    assert [(w.rule.name, used) for w, used in admission.usage()] == [("per IP", 2.0)]


def test_config_validation_and_gate_use_the_same_windows() -> None:
    """A schedule the config accepts is never held back by the budget on average; one it
    rejects names the limit."""
    kraken = {
        "name": "kraken",
        "profile": "kraken",
        "base_url": "https://api.kraken.com",
        "interval": "20s",
        "weight_budget": 0.2,
        "endpoints": ["time", {"name": "status", "interval": "60s"}, "ticker", "orderbook"],
    }
    exchange = parse_config({"exchanges": [kraken]}).exchanges[0]
    (window,) = exchange.budget_windows()
    assert window.usage(exchange.schedule()) <= window.cap
    assert get_profile("kraken").limits[0] is window.rule
    with pytest.raises(ConfigError, match=r"public requests per IP.*budget is 20%"):
        parse_config({"exchanges": [{**kraken, "interval": "5s"}]})


def test_a_stale_connection_is_resent_only_through_the_gate() -> None:
    """A reused keep-alive connection that closes unanswered may have delivered the request:
    the prober resends it only when the gate admits one more request."""
    import asyncio

    from exporter.http11 import Response, StaleConnectionError
    from exporter.metrics import ExporterMetrics
    from exporter.prober import Prober
    from exporter.profiles import Result
    from exporter.scheduler import ProbeScheduler, build_targets

    config = parse_config(
        {"exchanges": [{"name": "binance", "profile": "binance",
                        "base_url": "https://api.binance.com", "endpoints": ["ping"]}]}
    )  # fmt: skip
    target = build_targets(config)[0]

    class StaleThenOk:
        calls = 0

        async def get(
            self,
            url: str,
            timeout: float,
            max_body_bytes: int,
            resend_stale: bool = True,
            route: Route = DIRECT,
        ) -> Response:
            assert resend_stale is False
            self.calls += 1
            if self.calls % 2:
                raise StaleConnectionError("connection closed before any response")
            return Response(200, {}, b"{}", 0.01)

    def run(tokens_used: int) -> tuple[Result, int]:
        metrics = ExporterMetrics()
        states = ProbeScheduler(config, metrics).states
        for _ in range(tokens_used):
            states["binance"].admission.try_admit("ping")
        client = StaleThenOk()
        prober = Prober(client, metrics, states)  # type: ignore[arg-type]
        record = asyncio.run(prober.probe(target))
        return record.result, client.calls

    assert run(tokens_used=0) == (Result.OK, 2)  # the confirmation token pays for the resend
    assert run(tokens_used=CONFIRMATION_PROBES) == (Result.CONNECT_ERROR, 1)
