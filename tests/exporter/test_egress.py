"""The probe client's connection set-up: phases, DNS and TLS failures, certificate expiry,
CONNECT proxies, source addresses and IP protocols — against real loopback servers."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from exporter.egress import DIRECT, Route, parse_proxy_url, resolve
from exporter.http11 import ConnectError, DnsError, ProbeClient, Response, TlsError
from testsupport.connect_proxy import ConnectProxy
from testsupport.tls_certs import CertChain, make_chain

pytestmark = pytest.mark.e2e  # real loopback servers (all but the parsing tests)

DELAY = 0.25
"""Seconds injected into one phase; the phase must measure at least this."""

BODY = b'{"serverTime":1}'

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> CertChain:
    return make_chain(tmp_path_factory.mktemp("tls"), leaf_days=90, intermediate_days=5)


async def answer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    before_head: float = 0.0,
    mid_body: float = 0.0,
) -> None:
    """Answer every request on the connection with a small JSON body, optionally pausing
    before the head (processing) or in the middle of the body (transfer)."""
    while True:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if before_head:
            await asyncio.sleep(before_head)
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
        writer.write(head + BODY[:5])
        await writer.drain()
        if mid_body:
            await asyncio.sleep(mid_body)
        writer.write(BODY[5:])
        await writer.drain()


@asynccontextmanager
async def serving(
    handler: Handler, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[int, list[tuple[Any, ...]]]]:
    """A loopback server; yields (port, peers seen)."""
    peers: list[tuple[Any, ...]] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername"))
        writers.append(writer)
        await handler(reader, writer)

    server = await asyncio.start_server(handle, host, 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1], peers
    finally:
        server.close()
        for writer in writers:
            writer.close()


async def get(url: str, route: Route = DIRECT, client: ProbeClient | None = None) -> Response:
    own = client is None
    client = client or ProbeClient("test")
    try:
        return await client.get(url, 5.0, 65536, route=route)
    finally:
        if own:
            await client.aclose()


# phases ---------------------------------------------------------------------------------------


def largest(response: Response) -> str:
    return max(response.phases.items(), key=lambda item: item[1])[0]


def test_processing_and_transfer_phases() -> None:
    async def go() -> tuple[Response, Response]:
        async with serving(lambda r, w: answer(r, w, before_head=DELAY)) as (port, _):
            slow_server = await get(f"http://127.0.0.1:{port}/time")
        async with serving(lambda r, w: answer(r, w, mid_body=DELAY)) as (port, _):
            slow_body = await get(f"http://127.0.0.1:{port}/time")
        return slow_server, slow_body

    slow_server, slow_body = asyncio.run(go())
    assert slow_server.body == BODY
    assert slow_server.phases.processing >= DELAY
    assert largest(slow_server) == "processing"
    assert slow_server.phases.tls == 0.0  # plain HTTP
    assert slow_body.phases.transfer >= DELAY
    assert largest(slow_body) == "transfer"
    for response in (slow_server, slow_body):
        assert sum(seconds for _, seconds in response.phases.items()) <= response.elapsed


@asynccontextmanager
async def slow_tls_server(context: ssl.SSLContext, delay: float) -> AsyncIterator[int]:
    """A TLS server that accepts the TCP connection at once but starts the handshake only
    after ``delay`` seconds (the client's ClientHello waits in the socket meanwhile)."""
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    tasks: list[asyncio.Task[None]] = []

    async def serve(conn: socket.socket) -> None:
        await asyncio.sleep(delay)
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn, ssl=context)
        await answer(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    async def accept() -> None:
        while True:
            conn, _ = await loop.sock_accept(listener)
            tasks.append(asyncio.create_task(serve(conn)))

    acceptor = asyncio.create_task(accept())
    try:
        yield listener.getsockname()[1]
    finally:
        for task in (acceptor, *tasks):
            task.cancel()
        listener.close()


def test_tls_phase_and_certificate_expiry(chain: CertChain) -> None:
    async def go() -> tuple[Response, Response]:
        async with slow_tls_server(chain.server_context(), DELAY) as port:
            client = ProbeClient("test")
            route = Route(ca_file=str(chain.ca_file))
            try:
                first = await get(f"https://localhost:{port}/time", route, client)
                reused = await get(f"https://localhost:{port}/time", route, client)
            finally:
                await client.aclose()
        return first, reused

    first, reused = asyncio.run(go())
    assert first.phases.tls >= DELAY
    assert largest(first) == "tls"
    # The earliest notAfter of the presented chain: the intermediate (5 days), not the leaf.
    assert first.tls_cert_expiry == pytest.approx(chain.not_after["intermediate"], abs=1)
    # A reused keep-alive connection: no resolve, connect or TLS (blackbox's definition).
    assert (reused.phases.resolve, reused.phases.connect, reused.phases.tls) == (0.0, 0.0, 0.0)
    assert reused.tls_cert_expiry == first.tls_cert_expiry


def test_resolve_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> Response:
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def slow_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(DELAY)
            return await real(*args, **kwargs)

        monkeypatch.setattr(loop, "getaddrinfo", slow_getaddrinfo)
        async with serving(answer) as (port, _):
            return await get(f"http://localhost:{port}/time")

    response = asyncio.run(go())
    assert response.phases.resolve >= DELAY
    assert largest(response) == "resolve"


def test_connect_phase_includes_the_proxy_answer() -> None:
    async def go() -> Response:
        async with serving(answer) as (port, _), ConnectProxy(delay=DELAY) as proxy:
            route = Route(proxy_url=SecretStr(proxy.url))
            return await get(f"http://127.0.0.1:{port}/time", route)

    response = asyncio.run(go())
    assert response.phases.connect >= DELAY
    assert largest(response) == "connect"


def test_an_ip_literal_needs_no_lookup() -> None:
    async def go() -> Response:
        async with serving(answer) as (port, _):
            return await get(f"http://127.0.0.1:{port}/time")

    assert asyncio.run(go()).phases.resolve < 0.001  # no getaddrinfo round trip at all


# failure classes ------------------------------------------------------------------------------


def test_a_name_that_does_not_resolve_is_a_dns_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()

        async def no_such_name(*args: Any, **kwargs: Any) -> Any:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(loop, "getaddrinfo", no_such_name)
        await get("https://api.exchange.example/time")

    with pytest.raises(DnsError, match=r"api\.exchange\.example: Name or service not known"):
        asyncio.run(go())


def test_tls_failures_are_tls_errors(chain: CertChain) -> None:
    async def go(url_host: str, route: Route) -> None:
        async with serving(answer, ssl_context=chain.server_context()) as (port, _):
            await get(f"https://{url_host}:{port}/time", route)

    # Not trusted (the default bundle does not know our root): what a TLS-inspecting proxy
    # without its CA in tls.ca_file looks like.
    with pytest.raises(TlsError, match="unable to get local issuer certificate"):
        asyncio.run(go("localhost", DIRECT))
    # Trusted, but the certificate is not for that name.
    with pytest.raises(TlsError, match=r"Hostname mismatch|doesn't match"):
        asyncio.run(go("localhost", Route(ca_file=str(chain.ca_file), server_name="other.test")))
    # server_name fixes a URL host the certificate does not name.
    route = Route(ca_file=str(chain.ca_file), server_name="probe.test")

    async def by_address() -> Response:
        async with serving(answer, ssl_context=chain.server_context()) as (port, _):
            return await get(f"https://127.0.0.1:{port}/time", route)

    assert asyncio.run(by_address()).status == 200


def test_tls_to_a_plain_http_port_is_a_tls_error(chain: CertChain) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain HTTP server answers the ClientHello's bytes as a bad request.
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def go() -> None:
        async with serving(plain) as (port, _):
            await get(f"https://localhost:{port}/time", Route(ca_file=str(chain.ca_file)))

    with pytest.raises(TlsError):
        asyncio.run(go())


def test_refused_stays_a_connect_error() -> None:
    async def go() -> None:
        async with serving(answer) as (port, _):
            pass
        await get(f"http://127.0.0.1:{port}/time")

    with pytest.raises(ConnectError) as caught:
        asyncio.run(go())
    assert not isinstance(caught.value, DnsError | TlsError)


# proxy, source address, IP protocol -----------------------------------------------------------


def test_through_a_connect_proxy_with_credentials(chain: CertChain) -> None:
    async def go() -> tuple[Response, int, ConnectProxy]:
        async with (
            serving(answer, ssl_context=chain.server_context()) as (port, _),
            ConnectProxy(credentials=("desk", "s3cr:t")) as proxy,
        ):
            route = Route(
                proxy_url=SecretStr(proxy.url_with("desk", "s3cr%3At")),  # percent-encoded ':'
                ca_file=str(chain.ca_file),
            )
            response = await get(f"https://localhost:{port}/time", route)
            return response, port, proxy

    response, port, proxy = asyncio.run(go())
    assert response.status == 200 and response.body == BODY
    # The proxy resolves the target: we ask for the name, and TLS runs end to end through it.
    assert [(t.target, t.status) for t in proxy.tunnels] == [(f"localhost:{port}", 200)]


def test_the_proxy_sees_our_credentials_and_the_target_sees_the_proxy() -> None:
    async def go() -> tuple[int, list[Any], ConnectProxy]:
        async with (
            serving(answer) as (port, peers),
            ConnectProxy(credentials=("desk", "pw")) as proxy,
        ):
            route = Route(proxy_url=SecretStr(proxy.url_with("desk", "pw")))
            await get(f"http://127.0.0.1:{port}/time", route)
            return port, peers, proxy

    port, peers, proxy = asyncio.run(go())
    (tunnel,) = proxy.tunnels
    assert tunnel.target == f"127.0.0.1:{port}"
    assert tunnel.authorization == "Basic ZGVzazpwdw=="  # base64("desk:pw"), RFC 7617
    assert tunnel.status == 200
    # The target's peer is the proxy's outgoing connection, not us.
    assert peers[0][0] == "127.0.0.1"


def test_a_proxy_refusal_is_a_connect_error_without_the_credentials() -> None:
    async def go() -> None:
        async with serving(answer) as (port, _), ConnectProxy(credentials=("desk", "pw")) as proxy:
            route = Route(proxy_url=SecretStr(proxy.url_with("desk", "wrong-password")))
            await get(f"http://127.0.0.1:{port}/time", route)

    with pytest.raises(ConnectError, match=r"refused CONNECT .*407") as caught:
        asyncio.run(go())
    assert "wrong-password" not in str(caught.value)
    assert not isinstance(caught.value, DnsError | TlsError)


def test_from_a_chosen_source_address() -> None:
    async def go() -> list[Any]:
        async with serving(answer) as (port, peers):
            await get(f"http://127.0.0.1:{port}/time", Route(source_address="127.0.0.2"))
            return peers

    assert asyncio.run(go())[0][0] == "127.0.0.2"


def test_a_source_address_through_a_proxy_binds_the_proxy_connection() -> None:
    async def go() -> ConnectProxy:
        async with serving(answer) as (port, _), ConnectProxy() as proxy:
            route = Route(proxy_url=SecretStr(proxy.url), source_address="127.0.0.2")
            await get(f"http://127.0.0.1:{port}/time", route)
            return proxy

    assert asyncio.run(go()).tunnels[0].client[0] == "127.0.0.2"


def test_an_unbindable_source_address_is_a_connect_error() -> None:
    with pytest.raises(ConnectError, match=r"cannot bind source address 192\.0\.2\.1"):
        asyncio.run(get("http://127.0.0.1:9/time", Route(source_address="192.0.2.1")))


def test_ip6_reaches_the_ipv6_loopback() -> None:
    async def go() -> list[Any]:
        async with serving(answer, host="::1") as (port, peers):
            response = await get(f"http://[::1]:{port}/time", Route(ip_protocol="ip6"))
            assert response.status == 200
            return peers

    assert asyncio.run(go())[0][0] == "::1"


def test_ip6_on_an_ipv4_only_name_or_address_is_a_dns_error() -> None:
    with pytest.raises(DnsError, match="IPv4 address, but ip_protocol is ip6"):
        asyncio.run(get("http://127.0.0.1:9/time", Route(ip_protocol="ip6")))


def test_connections_are_pooled_per_route() -> None:
    async def go() -> list[Any]:
        async with serving(answer) as (port, peers):
            client = ProbeClient("test")
            try:
                for route in (DIRECT, Route(source_address="127.0.0.2"), DIRECT):
                    await get(f"http://127.0.0.1:{port}/time", route, client)
            finally:
                await client.aclose()
            return peers

    # Two connections: the direct one is reused, the other route never shares it.
    assert sorted(peer[0] for peer in asyncio.run(go())) == ["127.0.0.1", "127.0.0.2"]


# parsing (no server) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://proxy:3128", "scheme must be http"),
        ("http://:3128", "no host"),
        ("http://proxy:3128/path", "no path or query"),
        ("http://user:hunter2@proxy:99999", "not a valid proxy URL"),
    ],
)
def test_bad_proxy_urls_are_named_without_credentials(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_proxy_url(url)
    assert "hunter2" not in str(caught.value)


def test_route_description_and_repr_hide_credentials() -> None:
    route = Route(proxy_url=SecretStr("http://desk:hunter2@10.0.0.2:3128"), ip_protocol="ip4")
    assert route.describe() == "proxy http://10.0.0.2:3128, ip4"
    assert "hunter2" not in repr(route)
    assert route.websocket_kwargs()["proxy"] == "http://desk:hunter2@10.0.0.2:3128"
    assert parse_proxy_url("http://10.0.0.2").port == 3128


def test_resolve_literals_without_lookup() -> None:
    async def go() -> Any:
        return await resolve("::1", 443, socket.AF_UNSPEC)

    assert asyncio.run(go()) == [(socket.AF_INET6, ("::1", 443))]


def test_tls_fixture_chain_files_exist(chain: CertChain) -> None:
    assert all(Path(p).exists() for p in (chain.ca_file, chain.chain_file, chain.key_file))
