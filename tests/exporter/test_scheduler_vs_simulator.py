"""The exporter probing the simulator: metrics, classification of injected faults, promtool."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from typing import Any
from unittest import mock

import httpx
import pytest
from prometheus_client import generate_latest

from exporter.config import parse_config
from exporter.durations import parse_duration
from exporter.metrics import ExporterMetrics
from exporter.profiles import PROFILES
from exporter.scheduler import ProbeScheduler

pytestmark = pytest.mark.e2e  # probes a simulator process (clean_faults)

EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")


def run_exporter(
    simulator_url: str, seconds: float, exchanges: tuple[str, ...] = EXCHANGES, **overrides: Any
) -> ExporterMetrics:
    """Run a real scheduler against the simulator for ``seconds``; return its metrics.

    Probes far faster than any request budget allows, so the config is built without
    validation (``model_construct``) and the profiles' documented limits are lifted for the
    run (the probe gate would otherwise hold these probes back); the budget check and the gate
    have tests of their own.
    """
    from exporter.config import ExchangeConfig, ExporterConfig

    interval = parse_duration(overrides.get("interval", "300ms"))
    timeout = parse_duration(overrides.get("timeout", "250ms"))
    config = ExporterConfig.model_construct(
        exchanges=[
            ExchangeConfig.model_construct(
                name=name,
                profile=name,
                base_url=f"{simulator_url}/{name}",
                interval=interval,
                timeout=timeout,
                endpoints=overrides.get("endpoints"),
                **{
                    k: v
                    for k, v in overrides.items()
                    if k not in ("interval", "timeout", "endpoints")
                },
            )
            for name in exchanges
        ]
    )
    metrics = ExporterMetrics()

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await ProbeScheduler(config, metrics).run(stop)

    with contextlib.ExitStack() as stack:
        for profile in PROFILES.values():
            stack.enter_context(mock.patch.object(profile, "limits", ()))
        asyncio.run(main())
    return metrics


def value(metrics: ExporterMetrics, name: str, **labels: str) -> float:
    result = metrics.registry.get_sample_value(name, labels)
    assert result is not None, f"no sample {name}{labels}"
    return result


def inject(simulator_url: str, **fault: Any) -> None:
    response = httpx.post(f"{simulator_url}/_control/faults", json=fault, timeout=5)
    assert response.status_code == 200, response.text


def test_healthy_exchanges_are_up_with_metrics(clean_faults: str) -> None:
    metrics = run_exporter(clean_faults, 1.5)
    for exchange in EXCHANGES:
        assert value(metrics, "exchange_api_up", exchange=exchange, endpoint="time") == 1
        assert value(metrics, "exchange_api_up", exchange=exchange, endpoint="ticker") == 1
        assert value(metrics, "exchange_api_up", exchange=exchange, endpoint="orderbook") == 1
        ok = value(
            metrics, "exchange_api_requests_total", exchange=exchange, endpoint="time", result="ok"
        )
        assert ok >= 2
        skew = value(metrics, "exchange_clock_skew_seconds", exchange=exchange)
        assert abs(skew) < (0.6 if exchange == "kraken" else 0.05)  # Kraken reports whole seconds
        count = value(
            metrics,
            "exchange_api_request_duration_seconds_count",
            exchange=exchange,
            endpoint="time",
        )
        assert count >= 2
    assert value(metrics, "exchange_api_up", exchange="binance", endpoint="ping") == 1
    assert value(metrics, "exchange_rate_limit_limit", exchange="binance", window="1m") == 6000
    assert value(metrics, "exchange_rate_limit_used", exchange="binance", window="1m") > 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by make test")
def test_metrics_pass_promtool_check_metrics(clean_faults: str) -> None:
    inject(clean_faults, exchange="okx", fault="rate_limited")
    metrics = run_exporter(clean_faults, 1.0)
    exposition = generate_latest(metrics.registry)
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    findings = (result.stdout + result.stderr).decode()
    assert result.returncode == 0 and not findings.strip(), findings


def test_down_reset_is_connect_error(clean_faults: str) -> None:
    inject(clean_faults, exchange="binance", fault="down")
    metrics = run_exporter(clean_faults, 1.2, ("binance", "bybit"))
    for endpoint in ("ping", "time", "status", "ticker", "orderbook"):
        assert value(metrics, "exchange_api_up", exchange="binance", endpoint=endpoint) == 0
    failures = value(
        metrics, "exchange_api_consecutive_failures", exchange="binance", endpoint="time"
    )
    assert failures >= 2
    errors = value(
        metrics,
        "exchange_api_requests_total",
        exchange="binance",
        endpoint="time",
        result="connect_error",
    )
    assert errors == failures
    assert value(metrics, "exchange_api_up", exchange="bybit", endpoint="time") == 1


def test_down_hang_is_timeout(clean_faults: str) -> None:
    inject(clean_faults, exchange="kraken", fault="down", mode="hang", endpoint="ticker")
    metrics = run_exporter(clean_faults, 1.2, ("kraken",))
    assert value(metrics, "exchange_api_up", exchange="kraken", endpoint="ticker") == 0
    assert (
        value(
            metrics,
            "exchange_api_requests_total",
            exchange="kraken",
            endpoint="ticker",
            result="timeout",
        )
        >= 1
    )
    # An endpoint-scoped fault leaves the other endpoints up.
    assert value(metrics, "exchange_api_up", exchange="kraken", endpoint="time") == 1


# The fault catalogue × every exchange that has that failure mode: (exchange, fault, endpoint,
# expected result, expected errors_total code or None).
CATALOGUE = [
    *[(x, {"fault": "reset"}, "time", "connect_error", None) for x in EXCHANGES],
    *[(x, {"fault": "hang"}, "time", "timeout", None) for x in EXCHANGES],
    *[(x, {"fault": "down"}, "ticker", "connect_error", None) for x in EXCHANGES],
    *[
        (x, {"fault": "slow_body", "bytes_per_second": 8}, "time", "timeout", None)
        for x in EXCHANGES
    ],
    *[(x, {"fault": "http_error", "status": 502}, "time", "http_error", None) for x in EXCHANGES],
    ("binance", {"fault": "rate_limited"}, "time", "rate_limited", "-1003"),
    ("bybit", {"fault": "rate_limited"}, "time", "rate_limited", "10006"),
    ("okx", {"fault": "rate_limited"}, "time", "rate_limited", "50011"),
    ("okx", {"fault": "rate_limited", "http_status": 200}, "time", "rate_limited", "50011"),
    ("coinbase", {"fault": "rate_limited"}, "time", "rate_limited", None),
    ("kraken", {"fault": "rate_limited"}, "time", "rate_limited", "EAPI:Rate limit exceeded"),
    ("binance", {"fault": "banned"}, "time", "banned", "-1003"),
    ("bybit", {"fault": "banned"}, "time", "banned", None),
    ("kraken", {"fault": "banned"}, "time", "banned", "EGeneral:Temporary lockout"),
    ("binance", {"fault": "api_error", "code": -1021}, "time", "api_error", "-1021"),
    ("bybit", {"fault": "api_error", "code": 10002}, "time", "api_error", "10002"),
    ("okx", {"fault": "api_error", "code": "50102"}, "time", "api_error", "50102"),
    ("okx", {"fault": "api_error", "code": "50001"}, "time", "maintenance", "50001"),
    ("coinbase", {"fault": "api_error", "code": 401}, "time", "api_error", "401"),
    (
        "kraken",
        {"fault": "api_error", "code": "EService:Unavailable"},
        "time",
        "api_error",
        "EService:Unavailable",
    ),
    ("binance", {"fault": "api_error", "code": -1234}, "time", "api_error", "other"),
    *[(x, {"fault": "bad_json"}, "time", "bad_response", None) for x in EXCHANGES],
    *[
        (
            x,
            {"fault": "huge_body", "size_bytes": 2 * 1024 * 1024},
            "orderbook",
            "bad_response",
            None,
        )
        for x in EXCHANGES
    ],
]


@pytest.mark.parametrize(
    ("exchange", "fault", "endpoint", "result", "code"),
    CATALOGUE,
    ids=[f"{c[0]}-{c[1]['fault']}-{c[3]}" for c in CATALOGUE],
)
def test_fault_catalogue_is_classified(
    clean_faults: str,
    exchange: str,
    fault: dict[str, Any],
    endpoint: str,
    result: str,
    code: str | None,
) -> None:
    inject(clean_faults, exchange=exchange, endpoint=endpoint, **fault)
    started = time.time()
    metrics = run_exporter(clean_faults, 0.6, (exchange,), endpoints=[endpoint])
    labels = {"exchange": exchange, "endpoint": endpoint}
    assert value(metrics, "exchange_api_requests_total", result=result, **labels) >= 1
    assert value(metrics, "exchange_api_up", **labels) == 0
    if code is not None:
        assert value(metrics, "exchange_api_errors_total", code=code, **labels) >= 1
    backoff = value(
        metrics, "exchange_rate_limit_backoff_until_timestamp_seconds", exchange=exchange
    )
    if result in ("rate_limited", "banned"):
        assert backoff > started  # probing paused
        # One answer was enough: no further request reached the paused exchange.
        assert value(metrics, "exchange_api_requests_total", result=result, **labels) == 1
    else:
        assert backoff == 0
    if result == "maintenance":
        assert value(metrics, "exchange_maintenance", exchange=exchange) == 1


# The simulator's ``maintenance`` fault per exchange with a status API: (exchange, the ticker's
# result meanwhile, its errors_total code or None).
MAINTENANCE = [
    ("binance", "ok", None),  # only the status endpoint reports it
    ("bybit", "ok", None),
    ("okx", "maintenance", "50001"),  # market data answers 503 code 50001
    # Ticker/Depth answer EService:Unavailable, which the Kraken profile reads as busy
    # (api_error), not as a maintenance code.
    ("kraken", "api_error", "EService:Unavailable"),
]


@pytest.mark.parametrize(("exchange", "ticker_result", "code"), MAINTENANCE)
def test_maintenance_keeps_the_status_endpoint_up(
    clean_faults: str, exchange: str, ticker_result: str, code: str | None
) -> None:
    """The status endpoint answers correctly that the exchange is in maintenance: it is up and
    ``ok``, and ``exchange_maintenance`` is 1; market data failing with the exchange's
    maintenance answer meanwhile is ``maintenance``."""
    inject(clean_faults, exchange=exchange, fault="maintenance")
    metrics = run_exporter(clean_faults, 0.6, (exchange,), endpoints=["status", "ticker"])
    status = {"exchange": exchange, "endpoint": "status"}
    ticker = {"exchange": exchange, "endpoint": "ticker"}
    assert value(metrics, "exchange_api_up", **status) == 1
    assert value(metrics, "exchange_api_requests_total", result="ok", **status) >= 1
    failed = metrics.registry.get_sample_value(
        "exchange_api_requests_total", {"result": "maintenance", **status}
    )
    assert not failed
    assert value(metrics, "exchange_api_consecutive_failures", **status) == 0
    assert value(metrics, "exchange_maintenance", exchange=exchange) == 1
    assert value(metrics, "exchange_api_requests_total", result=ticker_result, **ticker) >= 1
    assert value(metrics, "exchange_api_up", **ticker) == (1 if ticker_result == "ok" else 0)
    if code is not None:
        assert value(metrics, "exchange_api_errors_total", code=code, **ticker) >= 1


@pytest.mark.parametrize(
    ("exchange", "endpoint"),
    [
        ("binance", "ticker"),
        ("bybit", "orderbook"),
        ("okx", "ticker"),
        ("okx", "orderbook"),
        ("coinbase", "ticker"),
        ("kraken", "orderbook"),
    ],
)
def test_stale_data_shows_in_market_data_age(
    clean_faults: str, exchange: str, endpoint: str
) -> None:
    inject(clean_faults, exchange=exchange, fault="stale", age_ms=7000)
    metrics = run_exporter(clean_faults, 0.5, (exchange,), endpoints=[endpoint, "time"])
    labels = {"exchange": exchange, "endpoint": endpoint}
    assert value(metrics, "exchange_api_up", **labels) == 1  # HTTP 200 with stale data
    age = value(metrics, "exchange_market_data_age_seconds", **labels)
    # Kraken dates each book level by its last change, so the newest level can be older still.
    assert 6.0 <= age <= (70.0 if exchange == "kraken" else 7.5)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_clock_skew_is_measured(clean_faults: str, exchange: str) -> None:
    inject(clean_faults, exchange=exchange, fault="clock_skew", skew_ms=1500)
    metrics = run_exporter(clean_faults, 0.5, (exchange,), endpoints=["time"])
    skew = value(metrics, "exchange_clock_skew_seconds", exchange=exchange)
    assert skew == pytest.approx(1.5, abs=0.55 if exchange == "kraken" else 0.05)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_latency_is_measured(clean_faults: str, exchange: str) -> None:
    inject(clean_faults, exchange=exchange, fault="latency", latency_ms=120, jitter_ms=10)
    metrics = run_exporter(clean_faults, 0.8, (exchange,), endpoints=["time"])
    labels = {"exchange": exchange, "endpoint": "time"}
    total = value(metrics, "exchange_api_request_duration_seconds_sum", **labels)
    count = value(metrics, "exchange_api_request_duration_seconds_count", **labels)
    assert 0.11 <= total / count < 0.17
    assert value(metrics, "exchange_api_up", **labels) == 1  # slow, but answering


def test_http_error_latency_and_clock_skew(clean_faults: str) -> None:
    inject(clean_faults, exchange="coinbase", fault="http_error", status=503)
    inject(clean_faults, exchange="okx", fault="latency", latency_ms=120)
    inject(clean_faults, exchange="bybit", fault="clock_skew", skew_ms=2500)
    metrics = run_exporter(clean_faults, 1.5, ("coinbase", "okx", "bybit"), endpoints=["time"])
    assert (
        value(
            metrics,
            "exchange_api_requests_total",
            exchange="coinbase",
            endpoint="time",
            result="http_error",
        )
        >= 1
    )
    total = value(
        metrics, "exchange_api_request_duration_seconds_sum", exchange="okx", endpoint="time"
    )
    count = value(
        metrics, "exchange_api_request_duration_seconds_count", exchange="okx", endpoint="time"
    )
    assert 0.12 <= total / count < 0.2
    assert value(metrics, "exchange_api_up", exchange="okx", endpoint="time") == 1
    skew = value(metrics, "exchange_clock_skew_seconds", exchange="bybit")
    assert skew == pytest.approx(2.5, abs=0.05)


def test_recovery_reprobes_every_endpoint_at_once(clean_faults: str) -> None:
    """After a hard outage the transport backoff has grown; the first success on the exchange
    wakes every endpoint, so none stays falsely down for a backoff period."""
    from exporter.config import ExchangeConfig, ExporterConfig

    config = ExporterConfig.model_construct(
        exchanges=[
            ExchangeConfig.model_construct(
                name="binance",
                profile="binance",
                base_url=f"{clean_faults}/binance",
                interval=0.25,
                timeout=0.2,
                endpoints=None,
            )
        ]
    )
    metrics = ExporterMetrics()
    sample = metrics.registry.get_sample_value
    endpoints = ("ping", "time", "status", "ticker", "orderbook")

    def all_up() -> bool:
        return all(
            sample("exchange_api_up", {"exchange": "binance", "endpoint": e}) == 1
            for e in endpoints
        )

    def any_up() -> bool:
        return any(
            sample("exchange_api_up", {"exchange": "binance", "endpoint": e}) == 1
            for e in endpoints
        )

    async def main() -> float:
        inject(clean_faults, exchange="binance", fault="reset")
        stop = asyncio.Event()
        task = asyncio.create_task(ProbeScheduler(config, metrics).run(stop))
        await asyncio.sleep(3.0)  # backoff grows to several seconds per endpoint
        failures = sample(
            "exchange_api_consecutive_failures", {"exchange": "binance", "endpoint": "time"}
        )
        assert failures is not None and failures >= 3
        await asyncio.to_thread(httpx.delete, f"{clean_faults}/_control/faults")
        cleared = time.monotonic()
        # The first success comes when the soonest endpoint's backoff expires ...
        while not any_up() and time.monotonic() - cleared < 30:
            await asyncio.sleep(0.02)
        first = time.monotonic()
        # ... and it wakes every other endpoint at once.
        while not all_up() and time.monotonic() - first < 10:
            await asyncio.sleep(0.02)
        took = time.monotonic() - first
        stop.set()
        await task
        return took

    took = asyncio.run(main())
    assert all_up()
    assert took < 0.5  # without the wake-up, each endpoint would wait out its own backoff


def test_first_transport_failure_sweeps_every_endpoint_at_once(clean_faults: str) -> None:
    """A healthy exchange that stops answering is confirmed on every endpoint at once (one
    sweep), not at each endpoint's next slot: ExchangeApiDown needs them all down."""
    config = parse_config(
        {
            "exchanges": [
                {
                    "name": "binance",
                    "profile": "binance",
                    "base_url": f"{clean_faults}/binance",
                    "interval": "30s",
                    "timeout": "2s",
                    "weight_budget": 1.0,
                }
            ]
        }
    )
    metrics = ExporterMetrics()
    sample = metrics.registry.get_sample_value
    endpoints = ("ping", "time", "status", "ticker", "orderbook")

    def down() -> int:
        return sum(
            sample("exchange_api_up", {"exchange": "binance", "endpoint": e}) == 0
            for e in endpoints
        )

    async def main() -> tuple[float, bool]:
        stop = asyncio.Event()
        scheduler = ProbeScheduler(config, metrics)
        task = asyncio.create_task(scheduler.run(stop))
        # Offsets spread the first round over the 30 s interval: ping goes first, the next
        # endpoint 6 s later. Break the exchange as soon as ping has answered.
        while sample("exchange_api_up", {"exchange": "binance", "endpoint": "ping"}) != 1:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(inject, clean_faults, exchange="binance", fault="reset")
        while down() < 1:
            await asyncio.sleep(0.02)
        first = time.monotonic()
        while down() < len(endpoints) and time.monotonic() - first < 10:
            await asyncio.sleep(0.02)
        took = time.monotonic() - first
        swept_again = scheduler.states["binance"].sweep()
        stop.set()
        await task
        return took, swept_again

    took, swept_again = asyncio.run(main())
    assert down() == len(endpoints)
    assert took < 0.5  # without the sweep, each endpoint would wait for its own slot
    assert not swept_again  # at most one sweep a minute
