"""A loopback HTTP/1.1 server answering canned responses by request target, for prober tests.

Responses are described as :class:`httpx.Response` objects (status, headers, content) so tests
read like the documented examples; the prober reaches them over a real TCP connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from http import HTTPStatus
from urllib.parse import urlsplit

import httpx


def _target(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def serialise(response: httpx.Response) -> bytes:
    """The HTTP/1.1 bytes of ``response`` (``Content-Length`` framing)."""
    body = response.content
    try:
        reason = HTTPStatus(response.status_code).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {response.status_code} {reason}"]
    for name, value in response.headers.items():
        if name.lower() not in ("content-length", "transfer-encoding"):
            lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@contextlib.asynccontextmanager
async def canned_server(routes: Mapping[str, httpx.Response]) -> AsyncIterator[str]:
    """Serve ``routes`` (URL or request target → response; unknown targets get 404) on a free
    loopback port; yield the base URL ``http://127.0.0.1:PORT``."""
    table = {_target(url): serialise(response) for url, response in routes.items()}
    missing = serialise(httpx.Response(404, text="no canned response"))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode("latin-1")
                writer.write(table.get(target, missing))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
