"""``exporter.http11`` against real loopback servers that answer scripted raw bytes.

Every test runs a real ``asyncio.start_server`` on loopback (plain TCP or TLS with a certificate
made at test time) whose handler reads request heads and writes exactly the bytes the test
scripts: framing, keep-alive, body caps, content codings, malformed answers and timeouts are
all exercised over real sockets, no mocks. The event loop's exception handler is watched too:
an exception escaping a protocol callback fails the test even when the caller got an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from exporter.http11 import (
    MAX_HEAD_BYTES,
    BodyTooLargeError,
    ConnectError,
    DecodingError,
    ProbeClient,
    ProtocolError,
    Response,
    StaleConnectionError,
    TransportError,
)

pytestmark = pytest.mark.e2e  # real loopback servers (all but five tests)

T = TypeVar("T")

USER_AGENT = "http11-test/1.0"
CAP = 1024 * 1024
TIMEOUT = 2.0
SHORT = 0.3
"""Timeout for the tests that expect one: short, yet far above loopback round trips."""


# --- loopback server -----------------------------------------------------------------------


@dataclass
class Peer:
    """The server side of one accepted connection (``index`` counts from 1 per server)."""

    server: Loopback
    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def request(self) -> bytes | None:
        """The next request head (recorded on the server), or None once the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        self.server.requests.append(head)
        return head

    async def send(self, *parts: bytes, pause: float = 0.0) -> None:
        """Write ``parts`` one by one (each flushed, then ``pause`` seconds of quiet)."""
        for part in parts:
            if self.writer.is_closing():
                return
            self.writer.write(part)
            await self.writer.drain()
            if pause:
                await asyncio.sleep(pause)

    async def trickle(self, data: bytes, pause: float = 0.001) -> None:
        """Write ``data`` one byte per TCP segment."""
        await self.send(*(data[i : i + 1] for i in range(len(data))), pause=pause)

    async def client_closed(self, within: float = 2.0) -> bool:
        """Whether the client closes (or aborts) the connection within ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    def reset(self) -> None:
        """Drop the connection with a TCP RST instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Handler = Callable[[Peer], Awaitable[None]]


class Loopback:
    """A scripted loopback server: counts connections, records request heads and notes."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.url = ""
        self.accepted = 0
        self.active = 0
        self.requests: list[bytes] = []
        self.notes: list[str] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.active += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(Peer(self, self.accepted, reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client dropped the connection: several tests make it do so
        except asyncio.CancelledError:
            # Stopped by `serving`: end normally, since Python 3.11's start_server callback
            # reports a cancelled handler task to the loop's exception handler.
            pass
        finally:
            self.tasks.discard(task)
            self.active -= 1
            writer.close()


@contextlib.asynccontextmanager
async def serving(
    handler: Handler, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> AsyncIterator[Loopback]:
    """Run ``handler`` for every connection on a free port of ``host``; yield the server."""
    loopback = Loopback(handler)
    server = await asyncio.start_server(loopback.serve, host, 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    authority = f"[{host}]" if ":" in host else host
    loopback.url = f"{'https' if tls else 'http'}://{authority}:{port}"
    try:
        yield loopback
    finally:
        server.close()
        tasks = list(loopback.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks)
        await server.wait_closed()


def replies(*answers: bytes) -> Handler:
    """A handler answering successive requests (across all connections) with ``answers``;
    once they run out it stops answering and closes the connection."""
    queue = deque(answers)

    async def handle(peer: Peer) -> None:
        while queue and await peer.request() is not None:
            await peer.send(queue.popleft())

    return handle


@contextlib.asynccontextmanager
async def probe_client(**options: Any) -> AsyncIterator[ProbeClient]:
    client = ProbeClient(USER_AGENT, **options)
    try:
        yield client
    finally:
        await client.aclose()


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())``; fails if anything reached the loop's exception handler (an
    exception escaping a protocol callback, an unretrieved task exception ...)."""
    leaked: list[dict[str, Any]] = []

    async def watched() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: leaked.append(ctx))
        return await main()

    try:
        return asyncio.run(watched())
    finally:
        assert not leaked, f"event loop exception handler was called: {leaked}"


def get_once(
    answer: bytes | Handler, path: str = "/", cap: int = CAP, timeout: float = TIMEOUT
) -> Response:
    """One GET from a fresh client to a fresh server answering ``answer``."""
    handler = replies(answer) if isinstance(answer, bytes) else answer

    async def main() -> Response:
        async with serving(handler) as server, probe_client() as client:
            return await client.get(server.url + path, timeout, cap)

    return run(main)


def head(*lines: str) -> bytes:
    """A response head from its lines (status line first)."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ok(body: bytes = b"{}", *headers: str, status: str = "200 OK") -> bytes:
    """An HTTP/1.1 response with ``Content-Length`` framing."""
    return head(f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}") + body


def chunked(*chunks: bytes, trailers: tuple[str, ...] = ()) -> bytes:
    """A chunked body (without the head) ending with ``trailers``."""
    framed = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return framed + b"0\r\n" + "".join(f"{t}\r\n" for t in trailers).encode() + b"\r\n"


CHUNKED_HEAD = head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked")


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


# --- framing -------------------------------------------------------------------------------


def test_content_length_body() -> None:
    response = get_once(ok(b'{"price": "1.5"}', "Content-Type: application/json"))
    assert response.status == 200
    assert response.body == b'{"price": "1.5"}'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == "16"


def test_empty_content_length_body() -> None:
    assert get_once(ok(b"")).body == b""


def test_chunked_body_with_extensions_and_trailers_keeps_the_connection() -> None:
    """Chunk extensions are ignored, trailers consumed, and the connection stays usable."""
    # RFC 9112 §7.1.1 allows BWS on both sides of ";". llhttp accepts it before ";" (the one
    # leniency the client enables) but refuses it after (ProtocolError "invalid chunk size"):
    # a known deviation, for an extension no exchange API sends.
    body = (
        CHUNKED_HEAD
        + b"5;name=value\r\nhello\r\n"
        + b"1 ;ext\r\n,\r\n"
        + b"6\r\n world\r\n"
        + b"0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
    )

    async def main() -> None:
        async with serving(replies(body, ok(b"next"))) as server, probe_client() as client:
            first = await client.get(server.url, TIMEOUT, CAP)
            second = await client.get(server.url, TIMEOUT, CAP)
            assert first.body == b"hello, world"
            assert "x-checksum" not in first.headers  # trailers are not merged into headers
            assert second.body == b"next"
            assert server.accepted == 1

    run(main)


def test_chunked_uppercase_hex_sizes() -> None:
    data = bytes(range(256)) * 2
    answer = CHUNKED_HEAD + b"1FF\r\n" + data[:511] + b"\r\n" + chunked(data[511:])
    assert get_once(answer).body == data


def test_response_split_into_one_byte_segments() -> None:
    """The parser is incremental: an interim answer, a chunked head, chunk lines, trailers and
    a body exactly at the cap, each byte in its own segment, parse as if sent at once."""
    body = b'{"a": 1, "b": [2, 3]}'
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        + CHUNKED_HEAD
        + chunked(body[:7], body[7:], trailers=("X-T: 1",))
    )

    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.trickle(answer)
        await peer.client_closed()

    assert get_once(handle, cap=len(body)).body == body


def test_chunked_body_at_the_cap_with_crlf_split_across_segments() -> None:
    """A chunk of exactly the cap whose CR and LF arrive separately is not over the cap."""
    data = b"x" * 100

    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(CHUNKED_HEAD + b"64\r\n" + data + b"\r", b"\n0\r\n\r\n", pause=0.02)
        await peer.client_closed()

    assert get_once(handle, cap=100).body == data


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_body_read_until_close_and_connection_not_reused(version: str) -> None:
    async def main() -> None:
        async def handle(peer: Peer) -> None:
            await peer.request()
            await peer.send(head(f"{version} 200 OK", "Content-Type: text/plain"), b"part one, ")
            await asyncio.sleep(0.02)
            await peer.send(b"part two")  # then the handler returns: the server closes

        async with serving(handle) as server, probe_client() as client:
            first = await client.get(server.url, TIMEOUT, CAP)
            second = await client.get(server.url, TIMEOUT, CAP)
            assert first.body == b"part one, part two"
            assert second.body == first.body
            assert server.accepted == 2

    run(main)


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_statuses_finish_at_the_head(status: str) -> None:
    """204/304 end at the blank line, whatever Content-Length/Content-Encoding say (a 304
    carries the representation's headers), and the connection is reused."""
    answer = head(f"HTTP/1.1 {status}", "Content-Length: 1234", "Content-Encoding: gzip")

    async def main() -> None:
        async with serving(replies(answer, ok(b"after"))) as server, probe_client() as client:
            first = await client.get(server.url, TIMEOUT, CAP)
            second = await client.get(server.url, TIMEOUT, CAP)
            assert (first.status, first.body) == (int(status[:3]), b"")
            assert second.body == b"after"
            assert server.accepted == 1

    run(main)


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "separate-writes"])
def test_interim_1xx_responses_are_skipped(split: bool) -> None:
    parts = [
        head("HTTP/1.1 100 Continue"),
        head("HTTP/1.1 103 Early Hints", "Link: </style.css>; rel=preload"),
        ok(b"final", "X-Final: yes"),
    ]

    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(*(parts if split else [b"".join(parts)]), pause=0.01)
        await peer.client_closed()

    response = get_once(handle)
    assert (response.status, response.body) == (200, b"final")
    assert response.headers["x-final"] == "yes"
    assert "link" not in response.headers


@pytest.mark.parametrize(
    ("headers", "connections"),
    [((), 2), (("Connection: keep-alive",), 1), (("Connection: Keep-Alive",), 1)],
)
def test_http10_response_reused_only_with_keep_alive(
    headers: tuple[str, ...], connections: int
) -> None:
    answer = head("HTTP/1.0 200 OK", *headers, "Content-Length: 2") + b"{}"

    async def main() -> None:
        async with serving(replies(answer, answer)) as server, probe_client() as client:
            for _ in range(2):
                assert (await client.get(server.url, TIMEOUT, CAP)).body == b"{}"
            assert server.accepted == connections

    run(main)


def test_header_names_lower_cased_and_repeats_joined() -> None:
    answer = ok(
        b"{}",
        "X-RateLimit-Used:  7 ",
        "Cache-Control: no-cache",
        "cache-CONTROL: no-store",
        "CACHE-CONTROL:max-age=0",
        "X-Empty:",
    )
    response = get_once(answer)
    assert response.headers["x-ratelimit-used"] == "7"
    assert response.headers["cache-control"] == "no-cache, no-store, max-age=0"
    assert response.headers["x-empty"] == ""
    assert all(name == name.lower() for name in response.headers)


def test_status_line_without_reason_phrase() -> None:
    assert get_once(b"HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n").status == 503


# --- keep-alive ----------------------------------------------------------------------------


def test_sequential_gets_reuse_one_connection() -> None:
    async def main() -> None:
        answers = [ok(b"%d" % i) for i in range(3)]
        async with serving(replies(*answers)) as server, probe_client() as client:
            bodies = [(await client.get(server.url + "/x", TIMEOUT, CAP)).body for _ in range(3)]
            assert bodies == [b"0", b"1", b"2"]
            assert server.accepted == 1
            assert len(server.requests) == 3

    run(main)


@pytest.mark.parametrize(
    ("extra", "connections"),
    [(b"JUNK", 2), (ok(b"unasked"), 2), (b"\r\n", 1)],
    ids=["garbage", "a-whole-answer", "empty-line"],
)
def test_bytes_after_the_answer_make_the_connection_not_reused(
    extra: bytes, connections: int
) -> None:
    """Bytes nobody asked for, in the same segment as a complete answer: the answer stands,
    the connection cannot be trusted and is not reused. Except empty lines: the parser
    (llhttp) skips CRLFs between messages, the robustness RFC 9112 §2.2 asks of servers
    ("SHOULD ignore at least one empty line (CRLF) received prior to the request-line")."""

    async def main() -> None:
        async with (
            serving(replies(ok(b"first") + extra, ok(b"second"))) as server,
            probe_client() as client,
        ):
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"first"
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"second"
            assert server.accepted == connections

    run(main)


def test_connection_close_answer_is_not_reused() -> None:
    async def main() -> None:
        async def handle(peer: Peer) -> None:
            await peer.request()
            await peer.send(ok(b"bye", "Connection: close"))
            if await peer.client_closed():
                peer.server.notes.append(f"client closed {peer.index}")

        async with serving(handle) as server, probe_client() as client:
            for _ in range(2):
                assert (await client.get(server.url, TIMEOUT, CAP)).body == b"bye"
            assert server.accepted == 2
            await asyncio.sleep(0.05)
            assert "client closed 1" in server.notes

    run(main)


def test_idle_connection_closed_by_server_is_replaced() -> None:
    """The server closes an idle keep-alive connection between requests: the next GET uses a
    new connection and succeeds."""

    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok(b"%d" % peer.index))  # then close, although the answer was keep-alive

    async def main() -> None:
        async with serving(handle) as server, probe_client() as client:
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"1"
            await asyncio.sleep(0.05)  # the client has seen the FIN
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"2"
            assert server.accepted == 2

    run(main)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_stale_keep_alive_connection_is_retried_on_a_new_one(how: str) -> None:
    """The server drops the reused connection after receiving the request, before any byte of
    the answer (the idle-timeout race): the GET is resent on a new connection, once."""

    async def handle(peer: Peer) -> None:
        if peer.index == 1:
            await peer.request()
            await peer.send(ok(b"first"))
            await peer.request()  # the second GET arrives on the reused connection ...
            if how == "reset":
                peer.reset()
            return  # ... and is dropped unanswered
        while await peer.request() is not None:
            await peer.send(ok(b"retried"))

    async def main() -> None:
        async with serving(handle) as server, probe_client() as client:
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"first"
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"retried"
            assert server.accepted == 2
            assert len(server.requests) == 3  # the second GET was sent twice
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"retried"
            assert server.accepted == 2

    run(main)


def test_stale_connection_is_left_to_the_caller_when_asked() -> None:
    """``resend_stale=False``: the prober decides, through its gate, whether to resend."""

    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok(b"first"))
        await peer.request()  # dropped unanswered on the reused connection

    async def main() -> None:
        async with serving(handle) as server, probe_client() as client:
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"first"
            with pytest.raises(StaleConnectionError):
                await client.get(server.url, TIMEOUT, CAP, resend_stale=False)
            assert server.accepted == 1 and len(server.requests) == 2

    run(main)


@pytest.mark.parametrize(
    "partial",
    [b"HTTP/1.1 200 OK\r\nContent-Le", ok(b"0123456789")[:-4], CHUNKED_HEAD + b"5\r\nab"],
    ids=["in-head", "in-fixed-body", "in-chunked-body"],
)
@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
def test_connection_closed_mid_response_is_protocol_error_not_retried(
    partial: bytes, reused: bool
) -> None:
    async def handle(peer: Peer) -> None:
        if reused:
            await peer.request()
            await peer.send(ok())
        await peer.request()
        await peer.send(partial)  # then close

    async def main() -> None:
        async with serving(handle) as server, probe_client() as client:
            if reused:
                await client.get(server.url, TIMEOUT, CAP)
            with pytest.raises(ProtocolError, match="before the response was complete"):
                await client.get(server.url, TIMEOUT, CAP)
            assert server.accepted == 1

    run(main)


def test_fresh_connection_closed_without_an_answer_is_protocol_error() -> None:
    """Closing a brand-new connection unanswered is not retried and raises the documented
    ProtocolError (not the private stale-connection signal)."""

    async def handle(peer: Peer) -> None:
        await peer.request()

    async def main() -> None:
        async with serving(handle) as server, probe_client() as client:
            with pytest.raises(ProtocolError) as raised:
                await client.get(server.url, TIMEOUT, CAP, resend_stale=False)
            assert not isinstance(raised.value, StaleConnectionError)
            assert server.accepted == 1

    run(main)


def test_idle_timeout_expiry_opens_a_new_connection() -> None:
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok(b"%d" % peer.index))
        if await peer.client_closed():
            peer.server.notes.append(f"client closed {peer.index}")

    async def main() -> None:
        async with serving(handle) as server, probe_client(idle_timeout=0.05) as client:
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"1"
            await asyncio.sleep(0.1)
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"2"
            assert server.accepted == 2
            await asyncio.sleep(0.05)
            assert "client closed 1" in server.notes  # the expired connection was closed

    run(main)


# --- body cap and content codings ----------------------------------------------------------


async def _hold(peer: Peer, *parts: bytes) -> None:
    """Answer the first request with ``parts`` and keep the connection open."""
    await peer.request()
    await peer.send(*parts)
    await peer.client_closed(within=TIMEOUT * 2)


@pytest.mark.parametrize(
    "answer",
    [
        head("HTTP/1.1 503 Service Unavailable", "Content-Length: 1000001"),
        head("HTTP/1.1 503 Service Unavailable", "Transfer-Encoding: chunked")
        + b"".join(b"1000\r\n" + b"x" * 4096 + b"\r\n" for _ in range(250)),
        head("HTTP/1.1 503 Service Unavailable", "Transfer-Encoding: chunked")
        + b"fffffff\r\n"
        + b"x" * 1_000_001,
        head("HTTP/1.1 503 Service Unavailable") + b"x" * 1_000_001,
    ],
    ids=["content-length", "chunked-many", "chunked-one-huge", "until-close"],
)
def test_body_over_the_cap_fails_at_once(answer: bytes) -> None:
    """The error carries the status and comes as soon as the cap is exceeded, not when the
    (never-ending) body would be complete."""

    async def handle(peer: Peer) -> None:
        await _hold(peer, answer)

    started = time.perf_counter()
    with pytest.raises(BodyTooLargeError) as caught:
        get_once(handle, cap=1_000_000)
    assert caught.value.status == 503
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("framing", ["content-length", "chunked", "until-close", "gzip", "deflate"])
def test_body_exactly_at_the_cap_is_accepted(framing: str) -> None:
    data = bytes(range(256)) * 40
    answers = {
        "content-length": ok(data),
        "chunked": CHUNKED_HEAD + chunked(data[:1000], data[1000:]),
        "until-close": head("HTTP/1.1 200 OK") + data,
        "gzip": ok(gzip.compress(data), "Content-Encoding: gzip"),
        "deflate": ok(zlib.compress(data), "Content-Encoding: deflate"),
    }
    assert get_once(answers[framing], cap=len(data)).body == data
    with pytest.raises(BodyTooLargeError):
        get_once(answers[framing], cap=len(data) - 1)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compression_bomb_is_capped_on_the_decoded_size(coding: str) -> None:
    bomb = b"\0" * (8 * 1024 * 1024)
    compressed = gzip.compress(bomb) if coding == "gzip" else zlib.compress(bomb)
    assert len(compressed) < 64 * 1024
    answer = ok(compressed, f"Content-Encoding: {coding}", status="502 Bad Gateway")
    with pytest.raises(BodyTooLargeError) as caught:
        get_once(answer, cap=64 * 1024)
    assert caught.value.status == 502


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        ("identity", lambda data: data),
    ],
    ids=["gzip", "x-gzip", "gzip-mixed-case", "deflate-zlib", "deflate-raw", "identity"],
)
def test_content_codings_are_decoded(coding: str, encode: Callable[[bytes], bytes]) -> None:
    data = b'{"symbol": "BTCUSDT", "price": "65000.01"}' * 50
    response = get_once(ok(encode(data), f"Content-Encoding: {coding}"))
    assert response.body == data


def test_gzip_over_chunked_framing() -> None:
    data = b"[1, 2, 3]" * 300
    compressed = gzip.compress(data)
    answer = head(
        "HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Encoding: gzip"
    ) + chunked(compressed[:50], compressed[50:])
    assert get_once(answer).body == data


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, br", "compress"])
def test_unsupported_content_coding_is_decoding_error(coding: str) -> None:
    with pytest.raises(DecodingError) as caught:
        get_once(ok(b"\x1b\x03\x00", f"Content-Encoding: {coding}", status="429 Too Many"))
    assert caught.value.status == 429


GOOD_GZIP = gzip.compress(b'{"ok": true}' * 100)


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", b"this is not gzip"),
        ("gzip", GOOD_GZIP[:-4] + bytes(4)),  # wrong length in the trailer
        ("gzip", GOOD_GZIP[:-8] + bytes(b ^ 0xFF for b in GOOD_GZIP[-8:-4]) + GOOD_GZIP[-4:]),
        ("gzip", GOOD_GZIP[:-8]),  # trailer missing
        ("gzip", GOOD_GZIP[: len(GOOD_GZIP) // 2]),  # cut mid-stream
        ("deflate", zlib.compress(b"x" * 1000)[:-2]),
        ("deflate", b"\x78\x9c garbage"),
    ],
    ids=[
        "garbage",
        "bad-isize",
        "bad-crc",
        "no-trailer",
        "truncated",
        "deflate-cut",
        "deflate-bad",
    ],
)
def test_corrupt_compressed_body_is_decoding_error(coding: str, body: bytes) -> None:
    with pytest.raises(DecodingError) as caught:
        get_once(ok(body, f"Content-Encoding: {coding}"))
    assert caught.value.status == 200


# --- errors --------------------------------------------------------------------------------


def test_connection_refused_is_connect_error_naming_the_origin() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the socket is closed

    async def main() -> None:
        async with probe_client() as client:
            with pytest.raises(ConnectError, match=re.escape(f"127.0.0.1:{port}")):
                await client.get(f"http://127.0.0.1:{port}/", TIMEOUT, CAP)

    run(main)


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
        b"\x15\x03\x01\x00\x02\x02\x50",  # a TLS alert
        b"<html><body>hello</body></html>\r\n\r\n",
        b"HTTP/2 200\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["ssh-banner", "tls-alert", "html", "http2", "no-code", "long-code", "code<100", "crlf"],
)
def test_non_http_answer_is_protocol_error_without_waiting(answer: bytes) -> None:
    """Garbage fails as soon as it is seen, even when the peer then keeps the connection open
    (a non-HTTP service waiting for its own protocol)."""

    async def handle(peer: Peer) -> None:
        await _hold(peer, answer)

    started = time.perf_counter()
    with pytest.raises(ProtocolError):
        get_once(handle)
    assert time.perf_counter() - started < 1.0


def test_unasked_upgrade_is_protocol_error() -> None:
    """101 Switching Protocols to a GET that asked for no upgrade (RFC 9110 §15.2.2)."""

    async def handle(peer: Peer) -> None:
        await _hold(
            peer,
            head("HTTP/1.1 101 Switching Protocols", "Connection: upgrade", "Upgrade: websocket"),
        )

    with pytest.raises(ProtocolError, match="upgrade"):
        get_once(handle)


def test_garbage_then_close_is_protocol_error() -> None:
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"garbage")

    with pytest.raises(ProtocolError):
        get_once(handle)


@pytest.mark.parametrize(
    "line",
    ["NoColonHere", " Folded: continuation", "\tFolded: tab", "Name : space", ": no-name"],
)
def test_malformed_header_line_is_protocol_error(line: str) -> None:
    with pytest.raises(ProtocolError, match="malformed header"):
        get_once(head("HTTP/1.1 200 OK", "Content-Type: text/plain", line, "Content-Length: 0"))


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "1.0", "0x10", "", "\xb2", "1 2"])
def test_invalid_content_length_is_protocol_error(value: str) -> None:
    """Including ``\\xb2`` (superscript two), which ``str.isdigit`` accepts but ``int``
    rejects: it must not escape the protocol callback as a ValueError."""
    with pytest.raises(ProtocolError, match="invalid content-length"):
        get_once(head("HTTP/1.1 200 OK", f"Content-Length: {value}") + b"{}")


@pytest.mark.parametrize(
    "lines",
    [("Content-Length: 2", "Content-Length: 3"), ("Content-Length: 2, 3",)],
    ids=["two-headers", "list"],
)
def test_conflicting_content_lengths_are_protocol_error(lines: tuple[str, ...]) -> None:
    with pytest.raises(ProtocolError, match="invalid content-length"):
        get_once(head("HTTP/1.1 200 OK", *lines) + b"{}")


@pytest.mark.parametrize(
    "lines",
    [("Content-Length: 2", "Content-Length: 2"), ("Content-Length: 2, 2",)],
    ids=["two-headers", "list"],
)
def test_identical_duplicate_content_lengths_are_protocol_error(lines: tuple[str, ...]) -> None:
    """RFC 9110 §8.6: a recipient of repeated equal Content-Length values MUST either reject
    the message as invalid or use the single value; the parser (llhttp) rejects, which also
    closes a response-splitting door."""
    with pytest.raises(ProtocolError, match="invalid content-length"):
        get_once(head("HTTP/1.1 200 OK", *lines) + b"{}")


def test_content_length_with_transfer_encoding_is_protocol_error() -> None:
    """RFC 9112 §6.3 item 3: Transfer-Encoding overrides Content-Length, and such a message
    "ought to be handled as an error" (request smuggling / response splitting): rejected."""
    answer = head("HTTP/1.1 200 OK", "Content-Length: 5", "Transfer-Encoding: chunked")
    with pytest.raises(ProtocolError):
        get_once(answer + chunked(b"{}"))


def test_bare_lf_line_ends_are_protocol_error() -> None:
    """RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator but does not
    require it; llhttp refuses, at once rather than after the timeout."""

    async def handle(peer: Peer) -> None:
        await _hold(peer, b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}")

    with pytest.raises(ProtocolError):
        get_once(handle)


@pytest.mark.parametrize("size", [b"zz", b"-2", b"+5", b"0x5", b"5_0", b"5 5", b"1" * 1100])
def test_invalid_chunk_size_is_protocol_error(size: bytes) -> None:
    """Only hex digits: ``int(x, 16)`` alone also takes signs, ``0x`` and underscores, and
    a negative size would desynchronise the parser."""

    async def handle(peer: Peer) -> None:
        await _hold(peer, CHUNKED_HEAD + size + b"\r\nabcde\r\n0\r\n\r\n")

    with pytest.raises(ProtocolError, match="chunk size"):
        get_once(handle, timeout=SHORT)


def test_chunk_without_crlf_terminator_is_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="chunk not terminated"):
        get_once(CHUNKED_HEAD + b"3\r\nabcX\r\n0\r\n\r\n")


def test_unsupported_transfer_coding_is_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="transfer-encoding"):
        get_once(head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip") + b"x")


@pytest.mark.parametrize("terminated", [True, False], ids=["complete-head", "unterminated"])
def test_head_larger_than_the_limit_is_protocol_error(terminated: bool) -> None:
    """Whether the oversized head arrives in one read with its blank line, or never ends."""
    filler = [f"X-Filler-{i}: {'v' * 100}" for i in range(MAX_HEAD_BYTES // 100 + 10)]
    answer = head("HTTP/1.1 200 OK", *filler, "Content-Length: 0")
    if not terminated:
        answer = answer[:-4]

    async def handle(peer: Peer) -> None:
        await _hold(peer, answer)

    with pytest.raises(ProtocolError, match="head larger"):
        get_once(handle)


@pytest.mark.parametrize("extra", [0, 1], ids=["at-limit", "one-over"])
def test_head_size_limit_is_exact(extra: int) -> None:
    """The head, blank line included, may be MAX_HEAD_BYTES long; one byte more is refused."""
    status, tail = "HTTP/1.1 200 OK", "\r\nContent-Length: 0\r\n\r\n"
    pad = MAX_HEAD_BYTES - len(status) - len("\r\nX-Pad: ") - len(tail) + extra
    answer = f"{status}\r\nX-Pad: {'p' * pad}{tail}".encode()
    assert len(answer) == MAX_HEAD_BYTES + extra

    async def handle(peer: Peer) -> None:
        await _hold(peer, answer)

    if extra:
        with pytest.raises(ProtocolError, match="head larger"):
            get_once(handle)
    else:
        assert len(get_once(handle).headers["x-pad"]) == pad


def test_server_that_never_answers_times_out_and_connection_is_dropped() -> None:
    async def handle(peer: Peer) -> None:
        if peer.index == 1:
            await peer.request()
            await peer.send(ok(b"first"))
            await peer.request()  # never answered
            if await peer.client_closed(within=SHORT + 1.0):
                peer.server.notes.append("timed-out connection closed by the client")
            return
        while await peer.request() is not None:
            await peer.send(ok(b"new"))

    async def main() -> None:
        async with serving(handle) as server, probe_client() as client:
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"first"
            started = time.perf_counter()
            with pytest.raises(TimeoutError):
                await client.get(server.url, SHORT, CAP)
            took = time.perf_counter() - started
            assert SHORT - 0.01 <= took < SHORT + 0.5
            assert (await client.get(server.url, TIMEOUT, CAP)).body == b"new"
            assert server.accepted == 2
            await asyncio.sleep(0.05)
            assert server.notes == ["timed-out connection closed by the client"]

    run(main)


def test_server_that_never_answers_a_fresh_connection_times_out() -> None:
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.client_closed(within=SHORT + 1.0)

    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        get_once(handle, timeout=SHORT)
    assert time.perf_counter() - started < SHORT + 0.5


def test_body_trickling_slower_than_the_timeout_times_out() -> None:
    """Every byte arrives well within the timeout, but the whole body does not: the timeout
    is total, not per read."""

    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.send(head("HTTP/1.1 200 OK", "Content-Length: 100"))
        await peer.send(*[b"x"] * 100, pause=0.03)

    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        get_once(handle, timeout=SHORT)
    assert time.perf_counter() - started < SHORT + 0.5


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "example.com/path",
        "/relative/path",
        "http:///no-host",
        "http://user:secret@example.com/",
        "http://user@example.com/",
        "https://example.com:99999/",
        "mailto:someone@example.com",
    ],
)
def test_invalid_urls_are_value_error(url: str) -> None:
    async def main() -> None:
        async with probe_client() as client:
            with pytest.raises(ValueError):
                await client.get(url, TIMEOUT, CAP)

    run(main)


def test_errors_share_the_transport_base_class() -> None:
    assert issubclass(ConnectError, TransportError)
    assert issubclass(ProtocolError, TransportError)


# --- request shape -------------------------------------------------------------------------


def expected_request(target: str, host: str) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "Accept: application/json, */*\r\n"
        "Accept-Encoding: gzip, deflate\r\n"
        "\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("", "/"),
        ("/api/v3/ticker?symbol=BTCUSDT&type=MINI", "/api/v3/ticker?symbol=BTCUSDT&type=MINI"),
        ("/a b/c?q=x y", "/a%20b/c?q=x%20y"),
        ("/märkte/€?name=zürich", "/m%C3%A4rkte/%E2%82%AC?name=z%C3%BCrich"),
        ("/already%20encoded?x=%2F", "/already%20encoded?x=%2F"),
        ("/p;v=1/(x)?a=1&b=2,3:4@5#fragment", "/p;v=1/(x)?a=1&b=2,3:4@5"),
        ('/q?x="<>"', "/q?x=%22%3C%3E%22"),
    ],
)
def test_request_bytes(path: str, target: str) -> None:
    """Exactly the bytes on the wire: request line, Host with the non-default port, fixed
    headers; the target percent-encoded (fragment dropped, existing escapes kept)."""

    async def main() -> None:
        async with serving(replies(ok())) as server, probe_client() as client:
            await client.get(server.url + path, TIMEOUT, CAP)
            assert server.requests == [expected_request(target, server.url.split("//")[1])]

    run(main)


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_literal_host_header_in_brackets() -> None:
    async def main() -> None:
        async with serving(replies(ok()), host="::1") as server, probe_client() as client:
            await client.get(server.url + "/v6", TIMEOUT, CAP)
            port = server.url.rsplit(":", 1)[1]
            assert server.requests == [expected_request("/v6", f"[::1]:{port}")]

    run(main)


def test_default_port_is_left_out_of_the_host_header() -> None:
    """No server can listen on 80/443 here: this one checks the prepared bytes directly."""
    client = ProbeClient(USER_AGENT)
    for url, host in [
        ("http://Example.COM:80/x", "example.com"),
        ("https://example.com:443/x", "example.com"),
        ("https://example.com/x", "example.com"),
        ("http://[2001:db8::1]/x", "[2001:db8::1]"),
        ("https://example.com:80/x", "example.com:80"),
    ]:
        assert client._prepare(url).data == expected_request("/x", host), url


# --- elapsed -------------------------------------------------------------------------------


def test_elapsed_covers_the_wait_for_the_answer() -> None:
    async def handle(peer: Peer) -> None:
        while await peer.request() is not None:
            await asyncio.sleep(0.05)
            await peer.send(ok())

    async def main() -> None:
        async with serving(handle) as server, probe_client() as client:
            await client.get(server.url, TIMEOUT, CAP)  # warm the connection
            started = time.perf_counter()
            response = await client.get(server.url, TIMEOUT, CAP)
            wall = time.perf_counter() - started
            assert 0.05 <= response.elapsed < 0.05 + 0.03
            assert response.elapsed <= wall

    run(main)


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = (
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
    )
    subprocess.run(
        [openssl, *command.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_https_with_a_trusted_self_signed_certificate(
    certificate: tuple[Path, Path], host: str
) -> None:
    """Hostname verification against the IP and DNS names, keep-alive over TLS."""
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    answers = [ok(b'{"tls": true}'), ok(gzip.compress(b"again"), "Content-Encoding: gzip")]

    async def main() -> None:
        tls = server_tls(certificate)
        async with serving(replies(*answers), tls=tls) as server:
            url = server.url.replace("127.0.0.1", host) + "/secure"
            async with probe_client(ssl_context=trusted) as client:
                assert (await client.get(url, TIMEOUT, CAP)).body == b'{"tls": true}'
                assert (await client.get(url, TIMEOUT, CAP)).body == b"again"
            assert server.accepted == 1
            port = url.rsplit(":", 1)[1].split("/")[0]
            assert server.requests[0] == expected_request("/secure", f"{host}:{port}")

    run(main)


def test_https_default_context_rejects_a_self_signed_certificate(
    certificate: tuple[Path, Path],
) -> None:
    async def main() -> None:
        async with serving(replies(ok()), tls=server_tls(certificate)) as server:
            async with probe_client() as client:
                with pytest.raises(ConnectError, match=r"127\.0\.0\.1:\d+") as caught:
                    await client.get(server.url, TIMEOUT, CAP)
            assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
            assert server.requests == []

    run(main)


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_gets_share_a_bounded_pool_and_aclose_closes_it() -> None:
    async def handle(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            await asyncio.sleep(0.02)  # keep the requests overlapping
            await peer.send(ok(request.split(b" ")[1]))

    async def main() -> None:
        async with serving(handle) as server:
            client = ProbeClient(USER_AGENT)
            for _ in range(2):
                paths = [f"/n/{i}" for i in range(50)]
                responses = await asyncio.gather(
                    *(client.get(server.url + path, TIMEOUT, CAP) for path in paths)
                )
                assert [r.body.decode() for r in responses] == paths
                assert server.accepted <= 50
            assert server.active == server.accepted
            await client.aclose()
            async with asyncio.timeout(2.0):
                while server.active:
                    await asyncio.sleep(0.01)
            assert len(server.requests) == 100

    run(main)


def test_aclose_with_nothing_open_and_twice() -> None:
    async def main() -> None:
        client = ProbeClient(USER_AGENT)
        await client.aclose()
        await client.aclose()

    run(main)
