"""The prober over real TLS and egress: phase gauges, certificate expiry, dns_error and
tls_error results, through a proxy — with Binance's documented ``/api/v3/time`` answer."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import Any

import pytest
from pydantic import SecretStr

from exporter.egress import PHASES, Route
from exporter.http11 import ProbeClient
from exporter.prober import Prober, ProbeRecord, ProbeTarget
from exporter.profiles import Result
from tests.exporter.test_egress import serving
from tests.exporter.test_prober_canned_responses import local, sample, setup
from testsupport.connect_proxy import ConnectProxy
from testsupport.tls_certs import CertChain, make_chain

pytestmark = pytest.mark.e2e  # real loopback servers

TIME_BODY = b'{"serverTime":1499827319559}'  # Binance GET /api/v3/time, its documented example


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> CertChain:
    return make_chain(tmp_path_factory.mktemp("tls"), leaf_days=5, intermediate_days=365)


async def binance_time(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(TIME_BODY)}"
        )
        writer.write(head.encode() + b"\r\n\r\n" + TIME_BODY)
        await writer.drain()


def run(
    route: Route, scheme: str = "https", chain: CertChain | None = None, times: int = 1
) -> tuple[list[ProbeRecord], Any, Any]:
    targets, metrics, states = setup("binance")
    target: ProbeTarget = targets["time"]

    async def go() -> list[ProbeRecord]:
        context = chain.server_context() if chain is not None and scheme == "https" else None
        async with serving(binance_time, ssl_context=context) as (port, _):
            probe_target = dataclasses.replace(
                local(target, f"{scheme}://localhost:{port}"), route=route
            )
            client = ProbeClient("test")
            try:
                prober = Prober(client, metrics, states)
                return [await prober.probe(probe_target) for _ in range(times)]
            finally:
                await client.aclose()

    return asyncio.run(go()), metrics, states["binance"]


def test_phases_and_certificate_expiry_are_exported(chain: CertChain) -> None:
    records, metrics, state = run(Route(ca_file=str(chain.ca_file)), chain=chain)
    assert records[0].result is Result.OK
    labels = {"exchange": "binance", "endpoint": "time"}
    phases = {
        phase: sample(metrics, "exchange_api_request_phase_seconds", phase=phase, **labels)
        for phase in PHASES
    }
    assert all(value is not None and value >= 0 for value in phases.values()), phases
    assert phases["tls"] > 0 and phases["connect"] > 0  # a new TLS connection
    assert state.endpoints["time"].phases == phases
    # The leaf expires in 5 days: the earliest notAfter of the chain.
    expiry = sample(metrics, "exchange_tls_cert_expiry_timestamp_seconds", exchange="binance")
    assert expiry == pytest.approx(chain.not_after["leaf"], abs=1)


def test_a_reused_connection_reports_no_set_up(chain: CertChain) -> None:
    records, metrics, _ = run(Route(ca_file=str(chain.ca_file)), chain=chain, times=2)
    assert [r.result for r in records] == [Result.OK, Result.OK]
    labels = {"exchange": "binance", "endpoint": "time"}
    for phase in ("resolve", "connect", "tls"):
        assert sample(metrics, "exchange_api_request_phase_seconds", phase=phase, **labels) == 0


def test_an_untrusted_certificate_is_a_tls_error(chain: CertChain) -> None:
    records, metrics, state = run(Route(), chain=chain)  # default CAs: our test root unknown
    assert records[0].result is Result.TLS_ERROR
    assert "TlsError" in records[0].error
    labels = {"exchange": "binance", "endpoint": "time"}
    assert sample(metrics, "exchange_api_requests_total", result="tls_error", **labels) == 1
    assert sample(metrics, "exchange_api_up", **labels) == 0
    assert state.endpoints["time"].transport_failures == 1


def test_a_name_that_does_not_resolve_is_a_dns_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    real_run = asyncio.run

    def run_with_broken_dns(coro: Any) -> Any:
        async def wrapper() -> Any:
            monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_name)
            return await coro

        return real_run(wrapper())

    monkeypatch.setattr(asyncio, "run", run_with_broken_dns)
    records, metrics, _ = run(Route(), scheme="http")
    assert records[0].result is Result.DNS_ERROR
    labels = {"exchange": "binance", "endpoint": "time", "result": "dns_error"}
    assert sample(metrics, "exchange_api_requests_total", **labels) == 1


def test_probes_go_through_the_exchange_proxy(chain: CertChain) -> None:
    async def go() -> tuple[ProbeRecord, ConnectProxy]:
        async with ConnectProxy(credentials=("desk", "pw")) as proxy:
            route = Route(
                proxy_url=SecretStr(proxy.url_with("desk", "pw")), ca_file=str(chain.ca_file)
            )
            targets, metrics, states = setup("binance")
            async with serving(binance_time, ssl_context=chain.server_context()) as (port, _):
                target = dataclasses.replace(
                    local(targets["time"], f"https://localhost:{port}"), route=route
                )
                client = ProbeClient("test")
                try:
                    record = await Prober(client, metrics, states).probe(target)
                finally:
                    await client.aclose()
            return record, proxy

    record, proxy = asyncio.run(go())
    assert record.result is Result.OK
    assert [t.status for t in proxy.tunnels] == [200]


def test_a_proxy_refusing_connect_is_a_connect_error() -> None:
    async def go() -> ProbeRecord:
        async with ConnectProxy(refuse_with=403) as proxy:
            targets, metrics, states = setup("binance")
            async with serving(binance_time) as (port, _):
                target = dataclasses.replace(
                    local(targets["time"], f"http://127.0.0.1:{port}"),
                    route=Route(proxy_url=SecretStr(proxy.url)),
                )
                client = ProbeClient("test")
                try:
                    return await Prober(client, metrics, states).probe(target)
                finally:
                    await client.aclose()

    record = asyncio.run(go())
    assert record.result is Result.CONNECT_ERROR
    assert "refused CONNECT" in record.error and "403" in record.error
