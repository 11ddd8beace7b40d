"""The probe transport: a lean HTTP/1.1 client over asyncio protocols, with keep-alive pooling.

Probing is what the exporter exists for, and a general-purpose client costs more CPU per request
than the whole rest of a probe: httpx spends ~1.4 ms of CPU on a keep-alive GET to a loopback
server, which caps a core at ~700 probes/s before any classification (measured for issue 7,
``docs/benchmarks.md``). This client does only what a probe needs — ``GET`` of a JSON endpoint
over HTTP/1.1 (RFC 9112) with TLS, keep-alive, ``Content-Length``, chunked and read-until-close
bodies, gzip/deflate, a body cap — and it times the response in the protocol callback that
receives the last byte, so the measured latency does not include the time the waiting coroutine
spends queued behind other ready tasks.

Connections go the way each exchange's :class:`exporter.egress.Route` says (HTTP ``CONNECT``
proxy, source address, IP protocol, CA bundle and TLS server name), pooled per (origin, route),
and every response carries its phases (resolve, connect, tls, processing, transfer) as
blackbox_exporter's ``probe_http_duration_seconds`` defines them.

Not supported, on purpose: redirects (a probe reports a 3xx as it is), HTTP/2, request bodies,
cookies. The connectivity canary and everything outside probing keep using httpx.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from exporter.egress import DIRECT, PHASES, Route, chain_expiry, open_socket
from exporter.http11_protocol import (
    MAX_HEAD_BYTES,
    BodyTooLargeError,
    ConnectError,
    DecodingError,
    DnsError,
    HttpConnection,
    ProtocolError,
    StaleConnectionError,
    TlsError,
    TransportError,
)

_QUOTE_SAFE = "/%:@!$&'()*+,;=-._~?"

__all__ = [
    "MAX_HEAD_BYTES",
    "BodyTooLargeError",
    "ConnectError",
    "DecodingError",
    "DnsError",
    "Phases",
    "ProbeClient",
    "ProtocolError",
    "Response",
    "Route",
    "StaleConnectionError",
    "TlsError",
    "TransportError",
    "default_ssl_context",
]


@dataclass(frozen=True, slots=True)
class Phases:
    """Seconds spent in each phase of one request, as blackbox_exporter's
    ``probe_http_duration_seconds`` splits them.

    Attributes:
        resolve: name lookup (of the proxy when proxied; 0 for an IP literal).
        connect: TCP connection set-up (plus the proxy's ``CONNECT`` answer when proxied).
        tls: TLS handshake (0 for plain HTTP).
        processing: request written → first byte of the answer (the server's time).
        transfer: first byte → last byte of the answer.

    ``resolve``, ``connect`` and ``tls`` are 0 on a reused keep-alive connection. After a
    stale reused connection is resent, the phases describe the new connection only, so their
    sum is less than :attr:`Response.elapsed`.
    """

    resolve: float = 0.0
    connect: float = 0.0
    tls: float = 0.0
    processing: float = 0.0
    transfer: float = 0.0

    def items(self) -> tuple[tuple[str, float], ...]:
        """``((phase, seconds), …)`` in :data:`exporter.egress.PHASES` order."""
        return tuple(
            zip(
                PHASES,
                (self.resolve, self.connect, self.tls, self.processing, self.transfer),
                strict=True,
            )
        )


NO_PHASES = Phases()


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response.

    Attributes:
        status: the status code (100–599; interim 1xx answers are skipped).
        headers: header names lower-cased → value (repeated headers joined with ``", "``).
        body: the body, decoded from gzip/deflate when the server used them.
        elapsed: seconds from the start of :meth:`ProbeClient.get` (before connecting, when a
            new connection was needed) to the arrival of the last body byte.
        phases: where that time went (all zero when unknown).
        tls_cert_expiry: the earliest ``notAfter`` (Unix seconds) of the certificate chain the
            server presented on this connection, or None (plain HTTP, unknown).
    """

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float
    phases: Phases = field(default_factory=lambda: NO_PHASES)
    tls_cert_expiry: float | None = None


@dataclass(frozen=True, slots=True)
class _Request:
    origin: tuple[str, str, int]
    server_hostname: str | None
    data: bytes


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


def _expire(answer: asyncio.Future[tuple[int, dict[str, str], bytes, float]]) -> None:
    """The probe's deadline passed before its answer was complete."""
    if not answer.done():
        answer.set_exception(TimeoutError())


def default_ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Certificate-verifying TLS context, ALPN ``http/1.1``.

    Args:
        ca_file: PEM bundle of trusted CAs; None uses certifi's bundle (as httpx does).

    Raises:
        OSError, ssl.SSLError: ``ca_file`` cannot be read or holds no certificate.
    """
    import certifi

    context = ssl.create_default_context(cafile=ca_file or certifi.where())
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
        self._ca_contexts: dict[str, ssl.SSLContext] = {}
        self._idle_timeout = idle_timeout
        self._max_idle = max_idle_per_origin
        self._requests: dict[str, _Request] = {}
        self._idle: dict[tuple[tuple[str, str, int], Route], deque[HttpConnection]] = {}
        self._open: set[HttpConnection] = set()

    async def get(
        self,
        url: str,
        timeout: float,
        max_body_bytes: int,
        resend_stale: bool = True,
        route: Route = DIRECT,
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
            route: proxy, source address, IP protocol and TLS trust; connections are pooled
                per (origin, route), so exchanges with different egress never share one.

        Returns:
            The response, of any status.

        Raises:
            TimeoutError: no complete answer within ``timeout``.
            DnsError: the host (or the proxy's) did not resolve (a :class:`ConnectError`).
            TlsError: the TLS handshake failed (a :class:`ConnectError`).
            ConnectError: the connection could not be set up (refused, unreachable, bind,
                proxy refused ``CONNECT``).
            ProtocolError: not HTTP/1.x, or the connection closed mid-answer.
            StaleConnectionError: with ``resend_stale=False``, a reused connection closed
                before any byte of the answer.
            BodyTooLargeError: the body exceeds ``max_body_bytes``.
            DecodingError: a ``Content-Encoding`` that could not be decoded.
            ValueError: ``url`` is not an absolute http(s) URL.
        """
        request = self._requests.get(url) or self._prepare(url)
        started = time.perf_counter()
        key = (request.origin, route)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        connection = self._checkout(key)
        if connection is not None:
            # A reused connection: the deadline is one timer on the answer's future, not an
            # asyncio.timeout (which cancels the task); measurably cheaper at 1,000 probes/s.
            try:
                return await self._exchange(
                    connection, request, key, max_body_bytes, started, NO_PHASES, deadline
                )
            except StaleConnectionError:
                if not resend_stale:
                    raise
                # The server dropped the idle connection: a GET is safe to resend.
        async with asyncio.timeout_at(deadline):
            connection, setup = await self._connect(request, route)
        try:
            return await self._exchange(
                connection, request, key, max_body_bytes, started, setup, deadline
            )
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

    def _checkout(self, key: tuple[tuple[str, str, int], Route]) -> HttpConnection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        expired_before = time.monotonic() - self._idle_timeout
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since >= expired_before:
                return connection
            self._discard(connection)
        return None

    def _checkin(self, key: tuple[tuple[str, str, int], Route], connection: HttpConnection) -> None:
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = deque()
        if len(idle) >= self._max_idle:
            self._discard(connection)
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def _discard(self, connection: HttpConnection) -> None:
        connection.close()
        self._open.discard(connection)

    def _context(self, route: Route) -> ssl.SSLContext:
        if route.ca_file is None:
            self._ssl = self._ssl or default_ssl_context()
            return self._ssl
        context = self._ca_contexts.get(route.ca_file)
        if context is None:
            context = self._ca_contexts[route.ca_file] = default_ssl_context(route.ca_file)
        return context

    async def _connect(self, request: _Request, route: Route) -> tuple[HttpConnection, Phases]:
        scheme, host, port = request.origin
        opened = await open_socket(route, host, port)
        loop = asyncio.get_running_loop()
        tls_started = time.perf_counter()
        try:
            if scheme == "https":
                server_hostname = route.server_name or request.server_hostname
                context = self._context(route)
                try:
                    _, connection = await loop.create_connection(
                        HttpConnection,
                        sock=opened.sock,
                        ssl=context,
                        server_hostname=server_hostname,
                    )
                except (OSError, ssl.SSLError) as exc:  # SSLError is an OSError; be explicit
                    reason = getattr(exc, "verify_message", None) or exc.strerror or str(exc)
                    raise TlsError(
                        f"{host}:{port}: TLS handshake failed: {reason or type(exc).__name__}"
                    ) from exc
                tls = time.perf_counter() - tls_started
                assert connection.transport is not None
                connection.tls_cert_expiry = chain_expiry(
                    connection.transport.get_extra_info("ssl_object")
                )
            else:
                _, connection = await loop.create_connection(HttpConnection, sock=opened.sock)
                tls = 0.0
        except BaseException:
            opened.sock.close()
            raise
        self._open.add(connection)
        return connection, Phases(opened.resolve, opened.connect, tls)

    async def _exchange(
        self,
        connection: HttpConnection,
        request: _Request,
        key: tuple[tuple[str, str, int], Route],
        limit: int,
        started: float,
        setup: Phases,
        deadline: float,
    ) -> Response:
        loop = asyncio.get_running_loop()
        answer = connection.send(request.data, limit, started)
        timer = loop.call_at(deadline, _expire, answer)
        try:
            status, headers, body, elapsed = await answer
        except BaseException:
            connection.abort()
            self._open.discard(connection)
            raise
        finally:
            timer.cancel()
        if connection.keep_alive and not connection.closed:
            self._checkin(key, connection)
        else:
            self._discard(connection)
        encoding = headers.get("content-encoding")
        if encoding is not None:
            body = _decode(body, encoding, limit, status)
        first_byte = connection.first_byte_at
        phases = Phases(
            setup.resolve,
            setup.connect,
            setup.tls,
            max(0.0, first_byte - connection.sent_at),
            max(0.0, connection.done_at - first_byte),
        )
        return Response(status, headers, body, elapsed, phases, connection.tls_cert_expiry)
