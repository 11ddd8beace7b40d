"""The exporter probing the simulator: metrics, classification of injected faults, promtool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from exporter.durations import parse_duration
from exporter.metrics import ExporterMetrics
from exporter.scheduler import ProbeScheduler

EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")


def run_exporter(
    simulator_url: str, seconds: float, exchanges: tuple[str, ...] = EXCHANGES, **overrides: Any
) -> ExporterMetrics:
    """Run a real scheduler against the simulator for ``seconds``; return its metrics.

    Probes far faster than any request budget allows, so the config is built without
    validation (``model_construct``); the budget check has tests of its own.
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


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_rate_limited_is_classified(clean_faults: str, exchange: str) -> None:
    inject(clean_faults, exchange=exchange, fault="rate_limited")
    metrics = run_exporter(clean_faults, 0.7, (exchange,), endpoints=["time"])
    assert value(metrics, "exchange_api_up", exchange=exchange, endpoint="time") == 0
    assert (
        value(
            metrics,
            "exchange_api_requests_total",
            exchange=exchange,
            endpoint="time",
            result="rate_limited",
        )
        >= 1
    )


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx", "kraken"])
def test_maintenance_is_classified(clean_faults: str, exchange: str) -> None:
    inject(clean_faults, exchange=exchange, fault="maintenance")
    metrics = run_exporter(clean_faults, 0.7, (exchange,), endpoints=["status"])
    assert (
        value(
            metrics,
            "exchange_api_requests_total",
            exchange=exchange,
            endpoint="status",
            result="maintenance",
        )
        >= 1
    )


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
