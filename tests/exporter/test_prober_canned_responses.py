"""The prober on documented responses served over loopback: metrics, state, backoff, body cap."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from exporter.config import parse_config
from exporter.http11 import ProbeClient
from exporter.metrics import ExporterMetrics
from exporter.prober import Prober, ProbeTarget
from exporter.profiles import Result
from exporter.scheduler import ProbeScheduler, build_targets
from exporter.state import ExchangeState
from tests.exporter.test_profiles import OK_CASES, STATUS_IN_MAINTENANCE
from testsupport.canned_http import canned_server

pytestmark = pytest.mark.e2e  # a canned server on loopback (all but the config-error tests)

STATUS_IN_MAINTENANCE_BODIES = {name: body for name, body, _ in STATUS_IN_MAINTENANCE}
"""One documented status body in maintenance per profile."""

BASES = {
    "binance": "https://api.binance.com",
    "bybit": "https://api.bybit.com",
    "okx": "https://www.okx.com",
    "coinbase": "https://api.exchange.coinbase.com",
    "kraken": "https://api.kraken.com",
}


def config_for(name: str, **extra: Any):
    return parse_config(
        {
            "exchanges": [
                {
                    "name": name,
                    "profile": name,
                    "base_url": BASES[name],
                    "interval": "60s",
                    "timeout": "2s",
                    "weight_budget": 1.0,
                    **extra,
                }
            ]
        }
    )


def setup(name: str, **extra: Any) -> tuple[dict[str, ProbeTarget], ExporterMetrics, dict]:
    config = config_for(name, **extra)
    metrics = ExporterMetrics()
    scheduler = ProbeScheduler(config, metrics)  # creates states and series
    targets = {t.endpoint.name: t for t in build_targets(config)}
    return targets, metrics, scheduler.states


def probe(name: str, endpoint: str, response: httpx.Response, **extra: Any):
    targets, metrics, states = setup(name, **extra)
    target = targets[endpoint]

    async def go():
        async with canned_server({target.url: response}) as base:
            client = ProbeClient("test")
            try:
                return await Prober(client, metrics, states).probe(local(target, base))
            finally:
                await client.aclose()

    return asyncio.run(go()), metrics, states[name]


def local(target: ProbeTarget, base: str) -> ProbeTarget:
    """``target`` with its scheme and host replaced by the canned server's."""
    parts = urlsplit(target.url)
    query = f"?{parts.query}" if parts.query else ""
    return dataclasses.replace(target, url=f"{base}{parts.path}{query}")


def sample(metrics: ExporterMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_documented_binance_ticker_sets_latency_age_and_weight() -> None:
    close_ms = int(time.time() * 1000) - 1500
    body = {"symbol": "BTCUSDT", "lastPrice": "4.00000200", "closeTime": close_ms}
    response = httpx.Response(200, json=body, headers={"X-MBX-USED-WEIGHT-1M": "31"})
    record, metrics, state = probe("binance", "ticker", response)
    assert record.result is Result.OK
    labels = {"exchange": "binance", "endpoint": "ticker"}
    assert sample(metrics, "exchange_api_up", **labels) == 1
    assert sample(metrics, "exchange_api_http_responses_total", code="200", **labels) == 1
    assert sample(metrics, "exchange_market_data_age_seconds", **labels) == pytest.approx(
        1.5, abs=0.3
    )
    assert sample(metrics, "exchange_rate_limit_used", exchange="binance", window="1m") == 31
    assert state.endpoints["ticker"].percentiles()["count"] == 1


def test_429_pauses_the_exchange_for_retry_after() -> None:
    body = {"code": -1003, "msg": "Too much request weight used; current limit is 6000 ..."}
    response = httpx.Response(429, json=body, headers={"Retry-After": "42"})
    before = time.time()
    record, metrics, state = probe("binance", "time", response)
    assert record.result is Result.RATE_LIMITED
    until = sample(
        metrics, "exchange_rate_limit_backoff_until_timestamp_seconds", exchange="binance"
    )
    assert until == pytest.approx(before + 42, abs=1)
    assert state.gate.remaining() == pytest.approx(42, abs=1)
    assert (
        sample(
            metrics, "exchange_api_errors_total", exchange="binance", endpoint="time", code="-1003"
        )
        == 1
    )


@pytest.mark.parametrize(
    ("name", "endpoint", "response", "result", "seconds"),
    [
        (
            "binance",
            "time",
            httpx.Response(
                418,
                json={"code": -1003, "msg": "Way too much request weight used; IP banned until 1."},
            ),
            Result.BANNED,
            120,
        ),
        ("bybit", "time", httpx.Response(403, text="access too frequent"), Result.BANNED, 600),
        (
            "kraken",
            "time",
            httpx.Response(200, json={"error": ["EGeneral:Temporary lockout"]}),
            Result.BANNED,
            300,
        ),
        (
            "okx",
            "time",
            httpx.Response(429, json={"code": "50011", "msg": "Too Many Requests", "data": []}),
            Result.RATE_LIMITED,
            10,
        ),
    ],
)
def test_documented_ban_lengths_without_retry_after(
    name: str, endpoint: str, response: httpx.Response, result: Result, seconds: float
) -> None:
    record, metrics, state = probe(name, endpoint, response)
    assert record.result is result
    assert state.gate.remaining() == pytest.approx(seconds, abs=1)
    # Only a ban answer moves the IP-ban gauge (ExchangeIpBanned); a rate limit leaves it at 0.
    ban_until = sample(metrics, "exchange_ip_ban_until_timestamp_seconds", exchange=name)
    if result is Result.BANNED:
        assert ban_until == pytest.approx(time.time() + seconds, abs=2)
    else:
        assert ban_until == 0


def test_probe_waits_for_the_gate_during_a_pause() -> None:
    """Even a direct call to the prober (a wake-up, a retry) sends nothing while paused."""
    targets, metrics, states = setup("binance")
    target = targets["time"]
    states["binance"].gate.block(0.3)
    ok = httpx.Response(200, json={"serverTime": int(time.time() * 1000)})

    async def go() -> tuple[float, Any]:
        async with canned_server({target.url: ok}) as base:
            client = ProbeClient("test")
            try:
                started = time.monotonic()
                record = await Prober(client, metrics, states).probe(local(target, base))
                return time.monotonic() - started, record
            finally:
                await client.aclose()

    waited, record = asyncio.run(go())
    assert record.result is Result.OK and waited >= 0.29
    held = {"exchange": "binance", "reason": "paused"}
    assert sample(metrics, "exchange_exporter_probes_held_total", **held) >= 1


def test_unknown_error_codes_are_other() -> None:
    response = httpx.Response(200, json={"retCode": 12345, "retMsg": "new"})
    record, metrics, _ = probe("bybit", "time", response)
    assert record.result is Result.API_ERROR
    assert (
        sample(
            metrics, "exchange_api_errors_total", exchange="bybit", endpoint="time", code="other"
        )
        == 1
    )


@pytest.mark.parametrize(
    ("name", "body", "message"),
    STATUS_IN_MAINTENANCE,
    ids=[f"{c[0]}-{c[2]}" for c in STATUS_IN_MAINTENANCE],
)
def test_status_endpoint_in_maintenance_is_up_and_sets_the_gauge(
    name: str, body: Any, message: str
) -> None:
    """A status endpoint answering correctly that the exchange is in maintenance is a
    successful probe (``exchange_api_up`` 1, no failure counted) and sets
    ``exchange_maintenance``."""
    record, metrics, state = probe(name, "status", httpx.Response(200, json=body))
    labels = {"exchange": name, "endpoint": "status"}
    assert record.result is Result.OK
    assert record.error == message  # the reason travels with the record
    assert sample(metrics, "exchange_api_up", **labels) == 1
    assert sample(metrics, "exchange_maintenance", exchange=name) == 1
    assert sample(metrics, "exchange_api_requests_total", result="ok", **labels) == 1
    assert not sample(metrics, "exchange_api_requests_total", result="maintenance", **labels)
    assert sample(metrics, "exchange_api_consecutive_failures", **labels) == 0
    assert state.in_maintenance()
    assert state.endpoints["status"].last_result == "ok"


class _SteppingClock:
    """The system clock, its monotonic time moved on by :meth:`step` (the probe gate then
    admits the next round at once, whatever the schedule and budget)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def step(self, seconds: float) -> None:
        self.offset += seconds

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time()


def test_maintenance_gauge_follows_status_and_failing_market_data() -> None:
    """OKX maintenance: the status endpoint is up and reports it, the ticker fails with 503
    ``50001`` "Service temporarily unavailable" (``maintenance``) [OKX-STATUS, OKX-ERR]; the
    gauge clears once both answer normally again. The status answer counts as a success for
    the circuit breaker. (Binance's -1016 "This service is no longer available." used to play
    the failing ticker here; it means a retired service, not maintenance [BN-ERR].)"""
    config = config_for("okx", interval="5s", timeout="500ms")
    metrics = ExporterMetrics()
    clock = _SteppingClock()
    states = ProbeScheduler(config, metrics, clock=clock).states
    targets = {t.endpoint.name: t for t in build_targets(config)}
    state = states["okx"]
    status, ticker = targets["status"].url, targets["ticker"].url
    unavailable = {
        "code": "50001",
        "msg": "Service temporarily unavailable. Please try again later.",
        "data": [],
    }
    ticker_ok = {"code": "0", "msg": "", "data": [{"last": "9999.99", "ts": "1597026383085"}]}
    broken = {status: httpx.Response(502, text="<html>Bad Gateway</html>")}
    in_maintenance = {
        status: httpx.Response(200, json=STATUS_IN_MAINTENANCE_BODIES["okx"]),
        ticker: httpx.Response(503, json=unavailable),
    }
    normal = {
        status: httpx.Response(200, json={"code": "0", "msg": "", "data": []}),
        ticker: httpx.Response(200, json=ticker_ok),
    }

    async def round_of(routes: dict[str, httpx.Response]) -> list[Result]:
        clock.step(60.0)  # past the schedule's interval and the status limit's 5 s window
        async with canned_server(routes) as base:
            client = ProbeClient("test")
            try:
                prober = Prober(client, metrics, states)
                return [
                    (await prober.probe(local(targets[name], base))).result
                    for name in ("status", "ticker")
                    if targets[name].url in routes
                ]
            finally:
                await client.aclose()

    def up(endpoint: str) -> float | None:
        return sample(metrics, "exchange_api_up", exchange="okx", endpoint=endpoint)

    assert asyncio.run(round_of(broken)) == [Result.HTTP_ERROR]
    assert state.circuit.failures == 1
    assert asyncio.run(round_of(in_maintenance)) == [Result.OK, Result.MAINTENANCE]
    assert (up("status"), up("ticker")) == (1, 0)
    assert sample(metrics, "exchange_maintenance", exchange="okx") == 1
    assert state.circuit.failures == 0  # neither answer is a circuit failure
    assert state.endpoints["ticker"].last_error == unavailable["msg"]
    assert asyncio.run(round_of(normal)) == [Result.OK, Result.OK]
    assert (up("status"), up("ticker")) == (1, 1)
    assert sample(metrics, "exchange_maintenance", exchange="okx") == 0
    assert not state.in_maintenance()


def test_body_over_the_cap_is_bad_response() -> None:
    huge = json.dumps({"bids": [["1", "1"]] * 100_000, "asks": []}).encode()
    response = httpx.Response(200, content=huge)
    record, metrics, _ = probe("binance", "orderbook", response, max_body_bytes=64 * 1024)
    assert record.result is Result.BAD_RESPONSE
    assert "larger than 65536 bytes" in record.error
    assert (
        sample(
            metrics,
            "exchange_api_requests_total",
            exchange="binance",
            endpoint="orderbook",
            result="bad_response",
        )
        == 1
    )


def test_connect_error_counts_transport_failures_and_opens_circuit() -> None:
    # Three probes in a row: a short interval, or the probe gate holds the third for one.
    targets, metrics, states = setup(
        "coinbase", circuit={"failure_threshold": 2}, interval="500ms", timeout="100ms"
    )
    target = targets["time"]

    async def go():
        async with canned_server({}) as base:
            pass  # the port is closed now: connections are refused
        client = ProbeClient("test")
        try:
            prober = Prober(client, metrics, states)
            return [await prober.probe(local(target, base)) for _ in range(3)]
        finally:
            await client.aclose()

    records = asyncio.run(go())
    assert [r.result for r in records] == [Result.CONNECT_ERROR] * 3
    state: ExchangeState = states["coinbase"]
    assert state.endpoints["time"].transport_failures == 3
    assert sample(metrics, "exchange_circuit_state", exchange="coinbase") == 1
    assert (
        sample(metrics, "exchange_api_consecutive_failures", exchange="coinbase", endpoint="time")
        == 3
    )


def test_circuit_gauge_follows_the_circuit_open_then_closed() -> None:
    """``exchange_circuit_state`` is written when the circuit changes (not on every probe):
    open after the threshold of connect errors, closed again by the next success."""
    targets, metrics, states = setup(
        "coinbase", circuit={"failure_threshold": 2}, interval="500ms", timeout="100ms"
    )
    target = targets["time"]
    answer = {"iso": "2015-01-07T23:47:25.201Z", "epoch": time.time()}
    seen: list[float | None] = []

    async def go() -> list[Result]:
        async with canned_server({}) as closed:
            pass  # the port is closed now: connections are refused
        client = ProbeClient("test")
        results = []
        try:
            prober = Prober(client, metrics, states)
            for _ in range(2):
                results.append((await prober.probe(local(target, closed))).result)
                seen.append(sample(metrics, "exchange_circuit_state", exchange="coinbase"))
            async with canned_server({target.url: httpx.Response(200, json=answer)}) as base:
                results.append((await prober.probe(local(target, base))).result)
                seen.append(sample(metrics, "exchange_circuit_state", exchange="coinbase"))
        finally:
            await client.aclose()
        return results

    results = asyncio.run(go())
    assert results == [Result.CONNECT_ERROR, Result.CONNECT_ERROR, Result.OK]
    assert seen == [0, 1, 0]


@pytest.mark.parametrize(
    ("name", "endpoint", "body"), OK_CASES, ids=[f"{c[0]}-{c[1]}" for c in OK_CASES]
)
def test_documented_bodies_through_the_prober(name: str, endpoint: str, body: Any) -> None:
    """Every profile endpoint, fed its documented example body over HTTP."""
    if endpoint not in setup(name)[0]:
        pytest.skip(f"{endpoint} is not a default endpoint of {name}")
    record, metrics, _ = probe(name, endpoint, httpx.Response(200, json=body))
    assert record.result is Result.OK, record
    assert sample(metrics, "exchange_api_up", exchange=name, endpoint=endpoint) == 1
    assert (
        sample(
            metrics,
            "exchange_api_http_responses_total",
            exchange=name,
            endpoint=endpoint,
            code="200",
        )
        == 1
    )


GENERIC = {
    "name": "myvenue",
    "profile": "generic",
    "base_url": "https://api.example.com",
    "interval": "10s",
    "timeout": "2s",
    "endpoints": [
        {"name": "time", "path": "/v1/time", "time_field": "data.0.serverTime", "time_unit": "ms"},
        {"name": "ticker", "path": "/v1/ticker?symbol=BTC"},
    ],
}


def test_generic_profile_probes_any_json_api() -> None:
    config = parse_config({"exchanges": [GENERIC]})
    metrics = ExporterMetrics()
    scheduler = ProbeScheduler(config, metrics)
    targets = {t.endpoint.name: t for t in scheduler.targets}
    assert targets["ticker"].url == "https://api.example.com/v1/ticker?symbol=BTC"
    now_ms = int(time.time() * 1000) + 2000

    routes = {
        targets["time"].url: httpx.Response(200, json={"data": [{"serverTime": now_ms}]}),
        targets["ticker"].url: httpx.Response(
            429, json={"error": "slow down"}, headers={"Retry-After": "7"}
        ),
    }

    async def go():
        async with canned_server(routes) as base:
            client = ProbeClient("test")
            prober = Prober(client, metrics, scheduler.states)
            try:
                return [await prober.probe(local(targets[n], base)) for n in ("time", "ticker")]
            finally:
                await client.aclose()

    time_record, ticker_record = asyncio.run(go())
    assert time_record.result is Result.OK
    skew = sample(metrics, "exchange_clock_skew_seconds", exchange="myvenue")
    assert skew == pytest.approx(2.0, abs=0.2)
    assert ticker_record.result is Result.RATE_LIMITED
    assert scheduler.states["myvenue"].gate.remaining() == pytest.approx(7, abs=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"endpoints": None}, "the generic profile has no defaults"),
        ({"endpoints": ["time"]}, "needs a path for every endpoint"),
        ({"endpoints": [{"name": "quotes", "path": "/q"}]}, "quotes: names are ping, time"),
        ({"endpoints": [{"name": "time", "path": "v1/time"}]}, "must start with /"),
        ({"endpoints": [{"name": "time", "path": "/t", "time_unit": "min"}]}, "time_unit"),
    ],
)
def test_generic_profile_config_errors(change: dict[str, Any], message: str) -> None:
    from exporter.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_config({"exchanges": [{**GENERIC, **change}]})


def test_path_is_only_for_the_generic_profile() -> None:
    from exporter.config import ConfigError

    with pytest.raises(ConfigError, match="path and time_field are for the generic profile"):
        config_for("binance", endpoints=[{"name": "time", "path": "/api/v3/time"}])
