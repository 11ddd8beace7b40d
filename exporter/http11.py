"""The probe transport: a lean HTTP/1.1 client over asyncio protocols, with keep-alive pooling.

Probing is what the exporter exists for, and a general-purpose client costs more CPU per request
than the whole rest of a probe: httpx spends ~1.4 ms of CPU on a keep-alive GET to a loopback
server, which caps a core at ~700 probes/s before any classification (measured for issue 7,
``docs/benchmarks.md``). This client does only what a probe needs — ``GET`` of a JSON endpoint
over HTTP/1.1 (RFC 9112) with TLS, keep-alive, ``Content-Length``, chunked and read-until-close
bodies, gzip/deflate, a body cap — and it times the response in the protocol callback that
receives the last byte, so the measured latency does not include the time the waiting coroutine
spends queued behind other ready tasks.

Not supported, on purpose: proxies, redirects (a probe reports a 3xx as it is), HTTP/2,
request bodies, cookies. The connectivity canary and everything outside probing keep using httpx.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

MAX_HEAD_BYTES = 64 * 1024
"""Largest response head accepted (status line, headers and the blank line ending them)."""

_QUOTE_SAFE = "/%:@!$&'()*+,;=-._~?"
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class TransportError(Exception):
    """No usable HTTP response: the connection failed, closed early, or spoke something else."""


class ConnectError(TransportError):
    """The connection could not be set up (refused, unreachable, DNS, TLS handshake)."""


class ProtocolError(TransportError):
    """The peer's answer is not valid HTTP/1.x, or it closed the connection mid-response."""


class BodyTooLargeError(Exception):
    """The response body (declared, received or decompressed) exceeds the caller's cap.

    Attributes:
        status: the response's status code (the head had arrived).
    """

    def __init__(self, status: int) -> None:
        super().__init__(f"body of the HTTP {status} response exceeds the cap")
        self.status = status


class DecodingError(Exception):
    """The body's ``Content-Encoding`` could not be decoded (or is not gzip/deflate/identity).

    Attributes:
        status: the response's status code.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class StaleConnectionError(ProtocolError):
    """A reused keep-alive connection closed before any byte of the answer: the server most
    likely dropped it while idle, and a GET is safe to resend. Raised by
    :meth:`ProbeClient.get` only with ``resend_stale=False``; the same on a new connection is a
    plain :class:`ProtocolError`.
    """


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response.

    Attributes:
        status: the status code (100–599; interim 1xx answers are skipped).
        headers: header names lower-cased → value (repeated headers joined with ``", "``).
        body: the body, decoded from gzip/deflate when the server used them.
        elapsed: seconds from the start of :meth:`ProbeClient.get` (before connecting, when a
            new connection was needed) to the arrival of the last body byte.
    """

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float


@dataclass(frozen=True, slots=True)
class _Request:
    origin: tuple[str, str, int]
    server_hostname: str | None
    data: bytes


_HEAD, _FIXED, _CHUNKED, _UNTIL_CLOSE, _IDLE = range(5)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time, parsed incrementally as bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._state = _IDLE
        self._waiter: asyncio.Future[tuple[int, dict[str, str], bytes, float]] | None = None
        self._limit = 0
        self._started = 0.0
        self._received_any = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._remaining = 0
        self._chunks: list[bytes] = []
        self._size = 0

    # asyncio.Protocol callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._state == _UNTIL_CLOSE and exc is None:
            self._finish()
            return
        if not self._received_any:
            error: TransportError = StaleConnectionError("connection closed before any response")
        else:
            error = ProtocolError("connection closed before the response was complete")
        if exc is not None:
            error.__cause__ = exc
        waiter.set_exception(error)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        self._received_any = True
        self._buffer += data
        try:
            self._advance()
        except (TransportError, BodyTooLargeError) as exc:
            self.keep_alive = False
            self.close()
            if not waiter.done():
                waiter.set_exception(exc)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost decides what EOF meant

    # requests -------------------------------------------------------------------------------

    def send(
        self, data: bytes, limit: int, started: float
    ) -> asyncio.Future[tuple[int, dict[str, str], bytes, float]]:
        """Write one request; the future resolves to (status, headers, raw body, elapsed)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._state = _HEAD
        self._buffer.clear()
        self._limit = limit
        self._started = started
        self._received_any = False
        self._chunks = []
        self._size = 0
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (after a timeout or cancellation)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # parsing --------------------------------------------------------------------------------

    def _advance(self) -> None:
        while True:
            state = self._state
            if state == _HEAD:
                if not self._parse_head():
                    return
            elif state == _FIXED:
                buffer = self._buffer
                if len(buffer) < self._remaining:
                    return
                if len(buffer) > self._remaining:
                    self.keep_alive = False  # bytes after the body: do not reuse
                self._chunks.append(bytes(buffer[: self._remaining]))
                buffer.clear()
                self._finish()
                return
            elif state == _CHUNKED:
                if not self._parse_chunk():
                    return
            elif state == _UNTIL_CLOSE:
                if len(self._buffer) > self._limit:
                    raise BodyTooLargeError(self._status)
                return
            else:
                return

    def _parse_head(self) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        # The limit holds for a complete head too: one read can bring more than the limit.
        if end + 4 > MAX_HEAD_BYTES or (end < 0 and len(buffer) > MAX_HEAD_BYTES):
            raise ProtocolError(f"response head larger than {MAX_HEAD_BYTES} bytes")
        if end < 0:
            # A peer that is not speaking HTTP (an SSH banner, a TLS alert) may then wait for
            # us: refuse at the first wrong byte rather than let the probe time out.
            if not b"HTTP/".startswith(bytes(buffer[:5])):
                raise ProtocolError(f"not an HTTP/1.x answer: {bytes(buffer[:60])!r}")
            return False
        lines = bytes(buffer[:end]).split(b"\r\n")
        del buffer[: end + 4]
        version, _, rest = lines[0].partition(b" ")
        code = rest[:3]
        if (
            version not in (b"HTTP/1.1", b"HTTP/1.0")
            or not code.isdigit()
            or rest[3:4]
            not in (
                b"",
                b" ",
            )
        ):
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name[:1] in b" \t" or name[-1:] in b" \t":
                raise ProtocolError(f"malformed header line: {line[:60]!r}")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            previous = headers.get(key)
            headers[key] = text if previous is None else f"{previous}, {text}"
        if status < 100:
            raise ProtocolError(f"status code out of range: {status}")
        if status < 200:
            return True  # interim answer (100 Continue, 103 Early Hints): the real one follows
        self._status = status
        self._headers = headers
        connection = headers.get("connection", "").lower()
        if version == b"HTTP/1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection
        if status in (204, 304):
            self._finish()
            return False
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.rsplit(",", 1)[-1].strip().lower() != "chunked":
                raise ProtocolError(f"unsupported transfer-encoding: {encoding[:60]!r}")
            self._state = _CHUNKED
            return True
        length = headers.get("content-length")
        if length is not None:
            values = {v.strip() for v in length.split(",")}
            digits = values.pop() if len(values) == 1 else ""
            # isascii: str.isdigit() also accepts digits int() rejects, such as "²"
            if not (digits.isascii() and digits.isdigit()):
                raise ProtocolError(f"invalid content-length: {length[:60]!r}")
            self._remaining = int(digits)
            if self._remaining > self._limit:
                raise BodyTooLargeError(status)
            self._state = _FIXED
            return True
        self.keep_alive = False
        self._state = _UNTIL_CLOSE
        return True

    def _parse_chunk(self) -> bool:
        buffer = self._buffer
        line_end = buffer.find(b"\r\n")
        if line_end > 1024 or (line_end < 0 and len(buffer) > 1024):
            raise ProtocolError("chunk size line too long")
        if line_end < 0:
            return False
        size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
        # Hex digits only: int(x, 16) also takes "-2", "+2", "0x2" and "2_0", and a negative
        # size would make the parser take chunk data for the next size line.
        if not size_text or size_text.strip(_HEX_DIGITS):
            raise ProtocolError(f"invalid chunk size: {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            trailer = buffer.find(b"\r\n", line_end + 2)
            if trailer < 0:
                return False
            end = trailer + 2
            if trailer != line_end + 2:  # trailer fields: wait for the blank line ending them
                blank = buffer.find(b"\r\n\r\n", line_end)
                if blank < 0:
                    return False
                end = blank + 4
            del buffer[:end]
            self._finish()
            return False
        start = line_end + 2
        if len(buffer) < start + size + 2:
            # At most `size` bytes count: the chunk's CR may be here without its LF.
            if self._size + min(len(buffer) - start, size) > self._limit:
                raise BodyTooLargeError(self._status)
            return False
        if buffer[start + size : start + size + 2] != b"\r\n":
            raise ProtocolError("chunk not terminated by CRLF")
        self._size += size
        if self._size > self._limit:
            raise BodyTooLargeError(self._status)
        self._chunks.append(bytes(buffer[start : start + size]))
        del buffer[: start + size + 2]
        return True

    def _finish(self) -> None:
        elapsed = time.perf_counter() - self._started
        if self._state == _UNTIL_CLOSE:
            self._chunks.append(bytes(self._buffer))
            self._buffer.clear()
        elif self._buffer:
            self.keep_alive = False  # bytes after the end of the answer: do not reuse
        self._state = _IDLE
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, self._headers, b"".join(self._chunks), elapsed))
        self._chunks = []
        if not self.keep_alive:
            self.close()


def _decode(body: bytes, encoding: str, limit: int, status: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate — zlib-wrapped or raw); cap the result."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS
        decompressor = zlib.decompressobj(wbits)
    else:
        raise DecodingError(f"unsupported content-encoding {encoding[:40]!r}", status)
    try:
        decoded = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise DecodingError(f"invalid {encoding} body: {exc}", status) from None
    if len(decoded) > limit or decompressor.unconsumed_tail:
        raise BodyTooLargeError(status)
    if body and not decompressor.eof:
        # zlib decodes a cut-off stream without complaint; it must not pass for the whole body.
        # (An empty body, as in a 304 sent with its Content-Encoding, has nothing to decode.)
        raise DecodingError(f"truncated {encoding} body", status)
    return decoded


def default_ssl_context() -> ssl.SSLContext:
    """Certificate-verifying TLS context with certifi's CA bundle (as httpx uses), ALPN
    ``http/1.1``."""
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


class ProbeClient:
    """Keep-alive HTTP/1.1 ``GET`` client for probes; one per exporter, one event loop.

    Args:
        user_agent: the ``User-Agent`` header sent with every request.
        ssl_context: for ``https`` URLs; :func:`default_ssl_context` when None.
        idle_timeout: seconds an idle connection is kept for reuse (servers and load balancers
            commonly drop idle keep-alive connections after 60 s; reusing one they already
            dropped costs a retry).
        max_idle_per_origin: idle connections kept per (scheme, host, port).
    """

    def __init__(
        self,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 30.0,
        max_idle_per_origin: int = 256,
    ) -> None:
        self._user_agent = user_agent
        self._ssl = ssl_context
        self._idle_timeout = idle_timeout
        self._max_idle = max_idle_per_origin
        self._requests: dict[str, _Request] = {}
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def get(
        self, url: str, timeout: float, max_body_bytes: int, resend_stale: bool = True
    ) -> Response:
        """``GET url`` and read the whole response.

        Args:
            url: an absolute ``http``/``https`` URL (no userinfo).
            timeout: total seconds for connect, TLS, send and receive.
            max_body_bytes: larger bodies (declared, received or decoded) are not read.
            resend_stale: when a reused keep-alive connection closes before any byte of the
                answer, resend once on a new connection; False raises
                :class:`StaleConnectionError` instead, so the caller decides (the prober counts
                a resend against the exchange's probe gate: the request may have arrived).

        Returns:
            The response, of any status.

        Raises:
            TimeoutError: no complete answer within ``timeout``.
            ConnectError: the connection could not be set up.
            ProtocolError: not HTTP/1.x, or the connection closed mid-answer.
            StaleConnectionError: with ``resend_stale=False``, a reused connection closed
                before any byte of the answer.
            BodyTooLargeError: the body exceeds ``max_body_bytes``.
            DecodingError: a ``Content-Encoding`` that could not be decoded.
            ValueError: ``url`` is not an absolute http(s) URL.
        """
        request = self._requests.get(url) or self._prepare(url)
        started = time.perf_counter()
        async with asyncio.timeout(timeout):
            connection = self._checkout(request.origin)
            if connection is not None:
                try:
                    return await self._exchange(connection, request, max_body_bytes, started)
                except StaleConnectionError:
                    if not resend_stale:
                        raise
                    # The server dropped the idle connection: a GET is safe to resend.
            connection = await self._connect(request)
            try:
                return await self._exchange(connection, request, max_body_bytes, started)
            except StaleConnectionError as exc:  # a new connection: not idle, not stale
                raise ProtocolError(str(exc)) from exc

    async def aclose(self) -> None:
        """Close every connection."""
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    def _prepare(self, url: str) -> _Request:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an absolute http(s) URL: {url!r}")
        if "@" in parts.netloc:
            raise ValueError(f"credentials in URLs are not supported: {parts.hostname!r}")
        default_port = 443 if scheme == "https" else 80
        port = parts.port or default_port
        host = parts.hostname
        authority = f"[{host}]" if ":" in host else host
        if port != default_port:
            authority = f"{authority}:{port}"
        target = quote(parts.path or "/", safe=_QUOTE_SAFE)
        if parts.query:
            target = f"{target}?{quote(parts.query, safe=_QUOTE_SAFE)}"
        data = (
            f"GET {target} HTTP/1.1\r\n"
            f"Host: {authority}\r\n"
            f"User-Agent: {self._user_agent}\r\n"
            "Accept: application/json, */*\r\n"
            "Accept-Encoding: gzip, deflate\r\n"
            "\r\n"
        ).encode("ascii")
        request = _Request((scheme, host, port), host if scheme == "https" else None, data)
        if len(self._requests) < 100_000:
            self._requests[url] = request
        return request

    def _checkout(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        expired_before = time.monotonic() - self._idle_timeout
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since >= expired_before:
                return connection
            self._discard(connection)
        return None

    def _checkin(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        idle = self._idle.get(origin)
        if idle is None:
            idle = self._idle[origin] = deque()
        if len(idle) >= self._max_idle:
            self._discard(connection)
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _connect(self, request: _Request) -> _Connection:
        scheme, host, port = request.origin
        context = None
        if scheme == "https":
            context = self._ssl = self._ssl or default_ssl_context()
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                _Connection, host, port, ssl=context, server_hostname=request.server_hostname
            )
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectError(f"{host}:{port}: {reason}") from exc
        self._open.add(connection)
        return connection

    async def _exchange(
        self, connection: _Connection, request: _Request, limit: int, started: float
    ) -> Response:
        try:
            status, headers, body, elapsed = await connection.send(request.data, limit, started)
        except BaseException:
            connection.abort()
            self._open.discard(connection)
            raise
        if connection.keep_alive and not connection.closed:
            self._checkin(request.origin, connection)
        else:
            self._discard(connection)
        encoding = headers.get("content-encoding")
        if encoding is not None:
            body = _decode(body, encoding, limit, status)
        return Response(status, headers, body, elapsed)
