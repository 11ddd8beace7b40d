"""One HTTP/1.1 client connection as an asyncio protocol: the response parser and its timestamps.

:class:`HttpConnection` writes one ``GET`` at a time and parses the answer incrementally as bytes
arrive (RFC 9112: status line, headers, ``Content-Length``, chunked and read-until-close bodies),
stamping the time of the request write, the first byte and the last byte in the protocol
callbacks, so the latency it reports does not include the time the waiting coroutine spends
queued behind other ready tasks. Pooling, connecting and decoding are
:class:`exporter.http11.ProbeClient`'s.

The bytes are parsed by llhttp (Node.js' HTTP parser, through ``httptools``): with the checks
below, 5.6 µs of CPU for a typical 9-header JSON answer where the former parser in Python took
9.3 µs. llhttp is strict where RFC 9112 lets a recipient choose: it rejects a repeated
``Content-Length`` (even with equal values; RFC 9110 §8.6 allows rejecting), ``Content-Length``
together with ``Transfer-Encoding`` (RFC 9112 §6.3 item 3: "ought to be handled as an error"),
bare LF line ends (RFC 9112 §2.2: MAY accept), obs-fold, whitespace after the ``;`` of a chunk
extension, and an unasked ``101 Switching Protocols``. Its one leniency enabled is whitespace
before that ``;`` (BWS, RFC 9112 §7.1.1); it skips empty lines between responses. The checks
llhttp does not make are made here: a response head larger than :data:`MAX_HEAD_BYTES`, an HTTP
version other than 1.0/1.1, a status code under 100, a ``Transfer-Encoding`` whose last coding
is not ``chunked`` (read-until-close is not accepted for it), bytes after the end of a response
(the connection is not reused), and the body cap.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

import httptools

MAX_HEAD_BYTES = 64 * 1024
"""Largest response head accepted (status line, headers and the blank line ending them)."""


class TransportError(Exception):
    """No usable HTTP response: the connection failed, closed early, or spoke something else."""


class ConnectError(TransportError):
    """The connection could not be set up: refused, unreachable, reset, or a proxy that
    refused the ``CONNECT``. The subclasses name the step that failed."""


class DnsError(ConnectError):
    """The host name did not resolve (``getaddrinfo`` failed: no such name, no address of the
    requested IP protocol, resolver unreachable)."""


class TlsError(ConnectError):
    """The TLS handshake failed: certificate not trusted, expired or for another name, a peer
    that does not speak TLS, or a reset during the handshake (a TLS-inspecting middlebox)."""


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


_HEAD, _FIXED, _CHUNKED, _UNTIL_CLOSE, _IDLE = range(5)

_PARSER_ERRORS: tuple[tuple[str, str], ...] = (
    ("content-length", "invalid content-length"),
    ("chunk size", "invalid chunk size"),
    ("chunk ext", "invalid chunk size"),
    ("after chunk data", "chunk not terminated by CRLF"),
    ("transfer-encoding", "unsupported transfer-encoding"),
    ("header", "malformed header line"),
)
"""(word in llhttp's error reason, what the error says): llhttp's reasons
(``llhttp_get_error_reason``) phrased as the client's other errors are."""


def _parser_error(exc: httptools.HttpParserError) -> ProtocolError:
    """llhttp's parse error as a :class:`ProtocolError` saying what was wrong."""
    reason = str(exc)
    lowered = reason.lower()
    kind = next((k for word, k in _PARSER_ERRORS if word in lowered), "not an HTTP/1.x answer")
    error = ProtocolError(f"{kind}: {reason[:80]}")
    error.__cause__ = exc
    return error


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time, parsed incrementally as bytes arrive.

    The llhttp parser calls the ``on_*`` methods (``httptools`` callback protocol) from
    :meth:`data_received`; an exception they raise ends the response with that error.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = False
        self.idle_since = 0.0
        parser = httptools.HttpResponseParser(self)
        # RFC 9112 §7.1.1 allows whitespace (BWS) between the chunk size and ";ext"; llhttp
        # refuses it unless told. It is the only leniency enabled.
        parser.set_dangerous_leniencies(lenient_spaces_after_chunk_size=True)
        self._parser: httptools.HttpResponseParser | None = parser
        self._state = _IDLE
        self._waiter: asyncio.Future[tuple[int, dict[str, str], bytes, float]] | None = None
        self._limit = 0
        self._started = 0.0
        self._received_any = False
        self._prefix = b""
        self._head_seen = 0
        self._head_tail = b""
        self._interim = False
        self._extra = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._size = 0
        self.sent_at = 0.0
        """``time.perf_counter()`` when the last request was written to the transport."""
        self.first_byte_at = 0.0
        """``time.perf_counter()`` when the first byte of its answer arrived."""
        self.done_at = 0.0
        """``time.perf_counter()`` when the last byte of its answer arrived."""
        self.tls_cert_expiry: float | None = None
        """Earliest ``notAfter`` of the peer's presented chain (set by the client), or None."""

    # asyncio.Protocol callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, but implement it).
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._parser = None  # it refers back to this protocol: break the cycle
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
        parser = self._parser
        if waiter is None or waiter.done() or parser is None:
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        if not self._received_any:
            self._received_any = True
            self.first_byte_at = time.perf_counter()
        try:
            if self._state == _HEAD:
                self._check_head(data)
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # An on_* method raised: llhttp wraps it, the original is the context.
            cause = exc.__context__
            if isinstance(cause, TransportError | BodyTooLargeError):
                self._fail(waiter, cause)
            else:
                self._fail(waiter, _parser_error(exc))
        except httptools.HttpParserUpgrade:
            # 101 Switching Protocols to a request that asked for no upgrade (RFC 9110 §15.2.2)
            self._fail(waiter, ProtocolError("unasked protocol upgrade (101 Switching Protocols)"))
        except httptools.HttpParserError as exc:
            if waiter.done() and self._state == _IDLE:
                self._extra = True  # garbage after a complete answer
            else:
                self._fail(waiter, _parser_error(exc))
        except (TransportError, BodyTooLargeError) as exc:
            self._fail(waiter, exc)
        if self._extra:
            self.keep_alive = False  # bytes after the end of the answer: do not reuse
            self.close()

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
        self._limit = limit
        self._started = started
        self._received_any = False
        self._prefix = b""
        self._head_seen = 0
        self._head_tail = b""
        self._interim = False
        self._headers = {}
        self._chunks = []
        self._size = 0
        self.transport.write(data)
        self.sent_at = time.perf_counter()
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

    # checks llhttp does not make ------------------------------------------------------------

    def _check_head(self, data: bytes) -> None:
        """Before llhttp sees ``data`` of an unfinished head: refuse a non-HTTP answer at its
        first bytes, and a head over :data:`MAX_HEAD_BYTES` (blank line included)."""
        if len(self._prefix) < 5:
            # A peer that is not speaking HTTP (an SSH banner, a TLS alert) may then wait for
            # us: refuse at the first wrong byte rather than let the probe time out.
            self._prefix += data[: 5 - len(self._prefix)]
            if not b"HTTP/".startswith(self._prefix):
                raise ProtocolError(f"not an HTTP/1.x answer: {data[:60]!r}")
        seen = self._head_seen + len(data)
        if seen > MAX_HEAD_BYTES:
            # The limit holds for a complete head too: one read can bring more than the limit.
            joined = self._head_tail + data
            end = joined.find(b"\r\n\r\n")
            if end < 0 or self._head_seen - len(self._head_tail) + end + 4 > MAX_HEAD_BYTES:
                raise ProtocolError(f"response head larger than {MAX_HEAD_BYTES} bytes")
        self._head_seen = seen
        self._head_tail = data[-3:] if len(data) >= 3 else (self._head_tail + data)[-3:]

    def _fail(
        self, waiter: asyncio.Future[tuple[int, dict[str, str], bytes, float]], error: BaseException
    ) -> None:
        self.keep_alive = False
        self.close()
        if not waiter.done():
            waiter.set_exception(error)

    # llhttp callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A response starts; after the awaited one, it is bytes nobody asked for."""
        if self._state == _IDLE:
            self._extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header field: names lower-cased, values stripped, repeats joined with ", "
        (RFC 9110 §5.3); trailer fields (after the head) are dropped."""
        if self._state != _HEAD:
            return
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers = self._headers
        previous = headers.get(key)
        headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        """The head is complete: check what llhttp accepts and we do not, pick the framing."""
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        if parser.get_http_version() not in ("1.1", "1.0"):
            raise ProtocolError(f"not an HTTP/1.x status line: HTTP/{parser.get_http_version()}")
        if status < 100:
            raise ProtocolError(f"status code out of range: {status}")
        if status < 200:
            self._interim = True  # 100 Continue, 103 Early Hints: the real answer follows
            return
        headers = self._headers
        self._status = status
        connection = headers.get("connection", "").lower()
        if parser.get_http_version() == "1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection
        if status in (204, 304):
            self._state = _FIXED  # llhttp ends these at the head, whatever the headers say
            return
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.rsplit(",", 1)[-1].strip().lower() != "chunked":
                raise ProtocolError(f"unsupported transfer-encoding: {encoding[:60]!r}")
            self._state = _CHUNKED
            return
        length = headers.get("content-length")
        if length is not None:
            # llhttp has checked it: digits only, one value, no Transfer-Encoding beside it.
            if int(length) > self._limit:
                raise BodyTooLargeError(status)
            self._state = _FIXED
            return
        self.keep_alive = False
        self._state = _UNTIL_CLOSE

    def on_body(self, body: bytes) -> None:
        """Body bytes (chunk data without framing); the cap is checked as they arrive."""
        self._size += len(body)
        if self._size > self._limit:
            raise BodyTooLargeError(self._status)
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        """The last byte of a response: stamp it and answer the waiter (interim ones skipped)."""
        if self._interim:
            # The next head follows; its bytes count with this one's towards MAX_HEAD_BYTES.
            self._interim = False
            self._headers = {}
            return
        self._finish()

    def _finish(self) -> None:
        self.done_at = now = time.perf_counter()
        elapsed = now - self._started
        self._state = _IDLE
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, self._headers, b"".join(self._chunks), elapsed))
        self._chunks = []
        if not self.keep_alive:
            self.close()
