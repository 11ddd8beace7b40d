"""An ``httpx`` transport for the API-key checks that leaves the host on the exchange's
:class:`~exporter.egress.Route`: through its HTTP ``CONNECT`` proxy, from its source address, in
its IP protocol, trusting its CA file and naming its TLS server name.

An IP-bound monitoring key answers only from the bound egress IPs, so its check must go out the
way the probes (and the bots) do. The TCP connection is made by :func:`exporter.egress.open_socket`
— the same resolve, bind, connect and ``CONNECT`` the probes use — and handed to ``httpcore``'s
connection pool through its public network-backend interface; TLS and HTTP on top are
``httpcore``'s. ``httpx``'s own ``proxy=`` cannot be used instead: with a proxy it ignores
``local_address`` and the ``sni_hostname`` extension (httpx 0.29, httpcore 1.0), so a source
address or TLS server name would silently not apply. ``httpx.AsyncHTTPTransport`` has no
parameter for a network backend, so :class:`RouteTransport` replaces the pool it builds (its
``_pool``: stable across httpx 0.18 – 0.29, and checked at construction).
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.abc
import httpcore
import httpx
from anyio.streams.tls import TLSAttribute, TLSStream

from exporter.egress import Route, open_socket
from exporter.http11 import default_ssl_context
from exporter.http11_protocol import TransportError

MAX_CONNECTIONS = 20
"""Connections per route the key checks may hold open (a few keys per exchange)."""

KEEPALIVE_SECONDS = 5.0
"""Idle keep-alive connections are closed after this (httpx's default); key checks are a
minute apart, so each check opens a fresh connection."""


class RouteTransport(httpx.AsyncHTTPTransport):
    """An ``httpx`` async transport whose connections follow ``route``.

    Args:
        route: the exchange's egress; its ``ca_file`` (else certifi's bundle) is trusted and
            its ``server_name`` (else the URL's host) is the TLS server name.

    Raises:
        OSError, ssl.SSLError: the route's CA file cannot be loaded.
        RuntimeError: this httpx version builds its pool differently (see the module).
    """

    def __init__(self, route: Route) -> None:
        super().__init__(trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport has no _pool to replace")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=default_ssl_context(route.ca_file),
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_SECONDS,
            network_backend=RouteBackend(route),
        )
        self._server_name = route.server_name

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (with the route's TLS server name, if any)."""
        if self._server_name:
            request.extensions["sni_hostname"] = self._server_name
        return await super().handle_async_request(request)


class RouteBackend(httpcore.AsyncNetworkBackend):
    """``httpcore`` network backend connecting with :func:`exporter.egress.open_socket`.

    Errors are ``httpcore``'s (``ConnectTimeout``, ``ConnectError``, ``ReadError``, …), which
    ``httpx`` turns into its own; their messages never carry the proxy's credentials.
    """

    def __init__(self, route: Route) -> None:
        self._route = route

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to ``host:port`` the route's way (``local_address`` is the route's)."""
        try:
            with anyio.fail_after(timeout):
                opened = await open_socket(self._route, host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"{host}:{port}: connect timed out") from exc
        except (TransportError, OSError) as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        for option in socket_options or ():
            opened.sock.setsockopt(*option)
        try:
            stream = await anyio.abc.SocketStream.from_socket(opened.sock)
        except BaseException:
            opened.sock.close()
            raise
        return _Stream(stream)

    async def sleep(self, seconds: float) -> None:
        """Sleep (``httpcore`` waits between connection retries)."""
        await anyio.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    """An ``anyio`` byte stream (TCP, or TLS on top of it) as an ``httpcore`` stream."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            with anyio.fail_after(timeout):
                return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("read timed out") from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            with anyio.fail_after(timeout):
                await self._stream.send(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("write timed out") from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                tls = await TLSStream.wrap(
                    self._stream,
                    ssl_context=ssl_context,
                    hostname=server_hostname,
                    standard_compatible=False,
                    server_side=False,
                )
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from exc
        except (ssl.SSLError, OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            await self.aclose()
            raise httpcore.ConnectError(f"TLS handshake failed: {exc}") from exc
        return _Stream(tls)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._stream.extra(TLSAttribute.ssl_object, None)
        if info == "client_addr":
            return self._stream.extra(anyio.abc.SocketAttribute.local_address, None)
        if info == "server_addr":
            return self._stream.extra(anyio.abc.SocketAttribute.remote_address, None)
        if info == "socket":
            return self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if info == "is_readable":
            return _readable(self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None))
        return None


def _readable(sock: socket.socket | None) -> bool:
    """True when an idle connection has something to read (data or EOF): it is no longer
    usable for a new request (``httpcore`` then drops it from the pool)."""
    if sock is None or sock.fileno() == -1:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)
