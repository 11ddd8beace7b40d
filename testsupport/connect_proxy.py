"""A small HTTP ``CONNECT`` proxy for tests (RFC 9110 §9.3.6), on loopback.

It records each tunnel (the client's address as the proxy saw it, the target it asked for, the
``Proxy-Authorization`` it sent), can insist on Basic credentials (407 otherwise, RFC 9110
§11.7.2), can delay its answer (to make the connect phase measurable) and refuses a chosen
answer status. Bytes are relayed both ways until either side closes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tunnel:
    """One ``CONNECT`` the proxy received.

    Attributes:
        client: the client's (host, port) as the proxy saw it.
        target: the ``host:port`` asked for.
        authorization: the ``Proxy-Authorization`` value, or None.
        status: the status the proxy answered.
    """

    client: tuple[Any, ...]
    target: str
    authorization: str | None
    status: int


@dataclass
class ConnectProxy:
    """Run with ``async with ConnectProxy(...) as proxy``; ``proxy.url`` is its address.

    Args:
        host: address to listen on.
        credentials: ``(user, password)`` required as Basic auth, or None for none.
        delay: seconds to wait before answering ``CONNECT``.
        refuse_with: answer every ``CONNECT`` with this status (e.g. 403) instead of tunnelling.
    """

    host: str = "127.0.0.1"
    credentials: tuple[str, str] | None = None
    delay: float = 0.0
    refuse_with: int | None = None
    tunnels: list[Tunnel] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    port: int = 0

    @property
    def url(self) -> str:
        """``http://host:port`` without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy URL with credentials in it (percent-encode them first if needed)."""
        return self.url.replace("http://", f"http://{user}:{password}@", 1)

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.get_extra_info("peername")
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = [*lines[0].split(" "), "", ""][:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        authorization = headers.get("proxy-authorization")
        status = 200
        if method != "CONNECT":
            status = 405
        elif self.credentials is not None:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            if authorization != f"Basic {token}":
                status = 407
        if status == 200 and self.refuse_with is not None:
            status = self.refuse_with
        self.tunnels.append(Tunnel(client, target, authorization, status))
        if self.delay:
            await asyncio.sleep(self.delay)
        if status != 200:
            extra = 'Proxy-Authenticate: Basic realm="test"\r\n' if status == 407 else ""
            writer.write(f"HTTP/1.1 {status} No\r\n{extra}Content-Length: 0\r\n\r\n".encode())
            await writer.drain()
            writer.close()
            return
        host, _, port = target.rpartition(":")
        try:
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        self._writers.add(up_writer)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until EOF or a connection error, then close ``writer``."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
