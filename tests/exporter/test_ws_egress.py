"""The WebSocket prober leaves the host the way the exchange's route says (issue 17): through
its HTTP ``CONNECT`` proxy with Basic credentials, from its source address, over its IP protocol,
trusting its CA bundle and checking its TLS server name — and a failure's text never holds the
proxy's credentials. The real :class:`exporter.streams.connection.StreamConnection` runs against
a loopback fake exchange (tests/exporter/test_ws_fakes.py); the unit tests at the top need no
socket."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from test_ws_fakes import FakeExchange, Rig, make_plan, until
from websockets.asyncio.server import ServerConnection, serve

from exporter.egress import DIRECT, Route
from exporter.streams.connection import (
    scrub_credentials,
    websocket_connect_kwargs,
)
from testsupport.connect_proxy import ConnectProxy
from testsupport.tls_certs import make_chain

USER, PASSWORD = "probe", "s3cret-Pa55"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 120))


def proxied(url: str, **extra: Any) -> Route:
    return Route(proxy_url=SecretStr(url), **extra)


class EgressExchange(FakeExchange):
    """The fake exchange on a chosen loopback address, optionally over TLS; records the peer
    address of every connection and the TLS server names (SNI) it was asked for."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.host = host
        self.tls = tls
        self.peers: list[str] = []
        self.server_names: list[str | None] = []
        if tls is not None:
            tls.sni_callback = self._sni

    def _sni(self, _sock: Any, name: str | None, _context: Any) -> None:
        self.server_names.append(name)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}"

    async def __aenter__(self) -> EgressExchange:
        self._server = await serve(self._handle, self.host, 0, ssl=self.tls)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def _handle(self, ws: ServerConnection) -> None:
        self.peers.append(ws.remote_address[0])
        await super()._handle(ws)


def rig_for(url: str, route: Route) -> Rig:
    return Rig(dataclasses.replace(make_plan(url), route=route)).start()


async def connected(rig: Rig) -> None:
    try:
        await until(lambda: rig.value("exchange_ws_connected") == 1, what="connected")
    except AssertionError:
        raise AssertionError(f"not connected; last error: {rig.status.last_error}") from None


async def failed(rig: Rig) -> str:
    """The first connect failure's text (the stream never connected)."""
    await until(lambda: rig.status.last_error, what="a connect failure")
    assert rig.value("exchange_ws_connected") == 0
    assert (rig.value("exchange_ws_reconnects_total", reason="error") or 0) >= 1
    return rig.status.last_error


# --- no sockets -------------------------------------------------------------------------------


def test_the_proxy_url_given_to_websockets_always_has_a_port_and_a_password() -> None:
    assert DIRECT.websocket_proxy_url() is None
    assert proxied("http://10.0.0.2").websocket_proxy_url() == "http://10.0.0.2:3128"
    assert proxied("http://u:p%40ss@proxy:8080/").websocket_proxy_url() == (
        "http://u:p%40ss@proxy:8080"
    )
    assert proxied("http://u@[fd00::2]").websocket_proxy_url() == "http://u:@[fd00::2]:3128"
    with pytest.raises(ValueError) as raised:
        proxied(f"socks5://{USER}:{PASSWORD}@proxy:1080").websocket_proxy_url()
    assert PASSWORD not in str(raised.value)


def test_connect_kwargs_never_let_websockets_read_the_environment_and_tls_only_for_wss() -> None:
    direct = websocket_connect_kwargs(DIRECT, "ws://h/x", None)
    assert direct == {"proxy": None}  # not the default True: no environment proxy
    context = ssl.create_default_context()
    route = proxied(
        f"http://{USER}:{PASSWORD}@p:3128",
        source_address="10.0.0.5",
        ip_protocol="ip6",
        server_name="probe.test",
    )
    secure = websocket_connect_kwargs(route, "wss://h/x", context)
    assert secure["proxy"] == f"http://{USER}:{PASSWORD}@p:3128"
    assert secure["local_addr"] == ("10.0.0.5", 0) and secure["ssl"] is context
    assert secure["server_hostname"] == "probe.test"
    plain = websocket_connect_kwargs(route, "ws://h/x", None)
    assert "ssl" not in plain and "server_hostname" not in plain
    with pytest.raises(ValueError):
        websocket_connect_kwargs(DIRECT, "wss://h/x", None)


def test_credentials_are_scrubbed_in_every_form() -> None:
    route = proxied(f"http://{USER}:p%40{PASSWORD}@proxy:3128")
    token = base64.b64encode(f"{USER}:p@{PASSWORD}".encode()).decode()
    text = (
        f"http://{USER}:p%40{PASSWORD}@proxy isn't a valid proxy; {USER}:p%40{PASSWORD}; "
        f"p@{PASSWORD}; Basic {token}; http://{USER}:p%40{PASSWORD}@proxy:3128"
    )
    scrubbed = scrub_credentials(text, route)
    assert PASSWORD not in scrubbed and token not in scrubbed
    assert scrub_credentials("connect failed", DIRECT) == "connect failed"


# --- a loopback fake exchange -----------------------------------------------------------------


@pytest.mark.e2e  # a loopback WebSocket server and CONNECT proxy
def test_the_stream_connects_through_the_proxy_with_basic_credentials() -> None:
    async def body() -> None:
        async with EgressExchange() as ex, ConnectProxy(credentials=(USER, PASSWORD)) as proxy:
            rig = rig_for(ex.url, proxied(proxy.url_with(USER, PASSWORD)))
            try:
                await connected(rig)
            finally:
                await rig.stop()
            tunnel = proxy.tunnels[0]
            assert tunnel.target == f"127.0.0.1:{ex.port}"
            assert tunnel.authorization == BASIC and tunnel.status == 200
            assert ex.peers  # the exchange saw the proxy's relay connection

    run(body)


@pytest.mark.e2e  # a loopback WebSocket server and CONNECT proxy
def test_a_wrong_proxy_password_is_a_connect_failure_without_the_password() -> None:
    wrong = "Wr0ng-pass-word"

    async def body() -> None:
        async with EgressExchange() as ex, ConnectProxy(credentials=(USER, PASSWORD)) as proxy:
            rig = rig_for(ex.url, proxied(proxy.url_with(USER, wrong)))
            try:
                error = await failed(rig)
            finally:
                await rig.stop()
            assert error.startswith("connect failed: ") and "407" in error, error
            assert f"route: proxy {proxy.url}" in error, error
            token = base64.b64encode(f"{USER}:{wrong}".encode()).decode()
            assert wrong not in error and token not in error
            assert proxy.tunnels[0].status == 407 and not ex.connections

    run(body)


@pytest.mark.e2e  # a loopback WebSocket server
def test_the_source_address_is_the_peer_the_exchange_sees() -> None:
    async def body() -> None:
        async with EgressExchange() as ex:
            rig = rig_for(ex.url, Route(source_address="127.0.0.2"))
            try:
                await connected(rig)
            finally:
                await rig.stop()
            assert ex.peers[0] == "127.0.0.2"

    run(body)


@pytest.mark.e2e  # a loopback WebSocket server and CONNECT proxy
def test_when_proxied_the_source_address_binds_the_connection_to_the_proxy() -> None:
    async def body() -> None:
        async with EgressExchange() as ex, ConnectProxy() as proxy:
            rig = rig_for(ex.url, proxied(proxy.url, source_address="127.0.0.2"))
            try:
                await connected(rig)
            finally:
                await rig.stop()
            assert proxy.tunnels[0].client[0] == "127.0.0.2"
            assert proxy.tunnels[0].target == f"127.0.0.1:{ex.port}"

    run(body)


@pytest.mark.e2e  # a loopback WebSocket server
def test_ip6_connects_over_ipv6() -> None:
    async def body() -> None:
        async with EgressExchange(host="::1") as ex:
            rig = rig_for(ex.url, Route(ip_protocol="ip6"))
            try:
                await connected(rig)
            finally:
                await rig.stop()
            assert ex.peers[0] == "::1"

    run(body)


@pytest.mark.e2e  # a loopback WebSocket server
def test_ip6_to_a_name_with_only_an_ipv4_address_is_a_connect_failure() -> None:
    async def body() -> None:
        async with EgressExchange() as ex:  # localhost resolves to 127.0.0.1 only
            url = f"ws://localhost:{ex.port}"
            rig = rig_for(url, Route(ip_protocol="ip6"))
            try:
                error = await failed(rig)
            finally:
                await rig.stop()
            assert error.startswith("connect failed: ") and "(route: ip6)" in error, error
            assert not ex.connections
            # the same name and port without the restriction connects
            rig = rig_for(url, DIRECT)
            try:
                await connected(rig)
            finally:
                await rig.stop()

    run(body)


@pytest.mark.e2e  # a loopback WebSocket server over TLS (and a CONNECT proxy)
def test_wss_trusts_the_ca_file_and_checks_the_server_name(tmp_path: Path) -> None:
    chain = make_chain(tmp_path)
    trusted = Route(ca_file=str(chain.ca_file), server_name="probe.test")

    async def body() -> None:
        async with EgressExchange(tls=chain.server_context()) as ex:
            assert ex.url.startswith("wss://127.0.0.1:")
            rig = rig_for(ex.url, trusted)
            try:
                await connected(rig)
            finally:
                await rig.stop()
            assert ex.server_names[0] == "probe.test"
            async with ConnectProxy() as proxy:  # TLS with the target inside the tunnel
                rig = rig_for(ex.url, dataclasses.replace(trusted, proxy_url=SecretStr(proxy.url)))
                try:
                    await connected(rig)
                finally:
                    await rig.stop()
                assert proxy.tunnels[0].target == f"127.0.0.1:{ex.port}"
            assert ex.server_names[-1] == "probe.test"

    run(body)


@pytest.mark.e2e  # a loopback WebSocket server over TLS
@pytest.mark.parametrize(
    "route",
    [
        pytest.param(Route(server_name="probe.test"), id="without-ca-file"),
        pytest.param(None, id="wrong-server-name"),
    ],
)
def test_wss_without_the_ca_file_or_with_another_name_fails(
    tmp_path: Path, route: Route | None
) -> None:
    chain = make_chain(tmp_path)
    route = route or Route(ca_file=str(chain.ca_file), server_name="other.test")

    async def body() -> None:
        async with EgressExchange(tls=chain.server_context()) as ex:
            rig = rig_for(ex.url, route)
            try:
                error = await failed(rig)
            finally:
                await rig.stop()
            assert error.startswith("connect failed: ") and "CERTIFICATE_VERIFY_FAILED" in error
            assert not ex.connections

    run(body)


@pytest.mark.e2e  # a loopback WebSocket server
def test_a_proxy_in_the_environment_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ws_proxy", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there

    async def body() -> None:
        async with EgressExchange() as ex:
            rig = rig_for(ex.url, DIRECT)
            try:
                await connected(rig)
            finally:
                await rig.stop()
            assert ex.peers[0] == "127.0.0.1"

    run(body)
