"""How a probe leaves the host: the route (proxy, source address, IP protocol, TLS trust and
name) and the connection set-up step by step, so that each step can be timed and blamed.

A desk whose exchange API keys are bound to a few egress IPs probes the way its bots trade:
through the same HTTP ``CONNECT`` proxy or from the same local address, because request-weight
limits and IP bans are counted per IP. :func:`open_socket` makes the TCP connection the way a
:class:`Route` says — resolve (the proxy's name when there is a proxy: the proxy resolves the
target), bind, connect, ``CONNECT`` through the proxy — and reports how long the name lookup
and the connection took; the TLS handshake on top is the caller's
(``loop.create_connection(sock=…)``). The phase names follow blackbox_exporter's
``probe_http_duration_seconds`` (``resolve``, ``connect``, ``tls``, ``processing``,
``transfer``).

Sources: HTTP ``CONNECT`` and ``Proxy-Authorization`` — RFC 9110 §9.3.6 and §11.7.2; the Basic
scheme — RFC 7617; blackbox_exporter's ``preferred_ip_protocol`` (``ip4``/``ip6``) — its
CONFIGURATION.md, here without fallback to the other protocol.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from exporter.http11_protocol import ConnectError, DnsError

IpProtocol = Literal["auto", "ip4", "ip6"]
"""``auto``: every address the resolver gives, in its order; ``ip4``/``ip6``: only that family
(a name without an address of that family is a DNS error, as blackbox with
``ip_protocol_fallback: false``)."""

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
"""The phases of one HTTP probe, in order (blackbox_exporter's ``probe_http_duration_seconds``
``phase`` values)."""

MAX_PROXY_HEAD_BYTES = 8 * 1024
"""Largest answer head accepted from a proxy to ``CONNECT``."""

_FAMILIES: dict[str, socket.AddressFamily] = {
    "auto": socket.AF_UNSPEC,
    "ip4": socket.AF_INET,
    "ip6": socket.AF_INET6,
}


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy reached with ``CONNECT``.

    Attributes:
        host: the proxy's host name or IP address.
        port: its TCP port (3128 when the URL gives none, the Squid default).
        authorization: the ``Proxy-Authorization`` header value (``Basic …``) built from the
            URL's credentials, or None.
    """

    host: str
    port: int
    authorization: SecretStr | None = None

    @property
    def display(self) -> str:
        """``http://host:port`` — never the credentials; safe for logs and errors."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy_url(url: str) -> Proxy:
    """Parse ``http://[user:password@]host[:port]`` (credentials percent-encoded).

    Raises:
        ValueError: not an ``http`` URL with a host, or with a path, query or bad port; the
            message never contains the credentials.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("not a valid proxy URL (expected http://host:port)") from None
    if parts.scheme.lower() != "http":
        raise ValueError(f"proxy URL scheme must be http (HTTP CONNECT), not {parts.scheme[:10]!r}")
    if not parts.hostname:
        raise ValueError("proxy URL has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("proxy URL must be http://host:port with no path or query")
    authorization = None
    if parts.username is not None or parts.password is not None:
        credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        authorization = SecretStr(f"Basic {token}")
    return Proxy(parts.hostname, port or 3128, authorization)


@dataclass(frozen=True, slots=True)
class Route:
    """How probes of one exchange reach it; hashable (connections are pooled per route).

    Attributes:
        proxy_url: ``http://[user:pass@]host:port`` of an HTTP ``CONNECT`` proxy, or None for a
            direct connection (a secret: it may carry credentials).
        source_address: local IP address to bind before connecting (to the proxy when there is
            one), or None for the kernel's choice.
        ip_protocol: ``auto``, ``ip4`` or ``ip6`` (for the proxy's address when proxied).
        ca_file: PEM bundle of trusted CAs for the target's TLS certificate (a TLS-inspecting
            proxy's CA), or None for the default bundle.
        server_name: TLS server name (SNI and certificate check) when it differs from the URL's
            host, or None.
    """

    proxy_url: SecretStr | None = None
    source_address: str | None = None
    ip_protocol: IpProtocol = "auto"
    ca_file: str | None = None
    server_name: str | None = None

    @property
    def family(self) -> socket.AddressFamily:
        """The address family to resolve and connect with (``AF_UNSPEC`` for ``auto``)."""
        return _FAMILIES[self.ip_protocol]

    @property
    def proxy(self) -> Proxy | None:
        """The parsed proxy, or None (raises ValueError on a malformed URL)."""
        if self.proxy_url is None:
            return None
        return parse_proxy_url(self.proxy_url.get_secret_value())

    def describe(self) -> str:
        """One line without secrets, e.g. ``proxy http://10.0.0.2:3128, source 10.0.0.5, ip4``."""
        parts: list[str] = []
        proxy = self.proxy
        if proxy is not None:
            parts.append(f"proxy {proxy.display}")
        if self.source_address:
            parts.append(f"source {self.source_address}")
        if self.ip_protocol != "auto":
            parts.append(self.ip_protocol)
        if self.ca_file:
            parts.append(f"ca_file {self.ca_file}")
        if self.server_name:
            parts.append(f"server_name {self.server_name}")
        return ", ".join(parts) or "direct"

    def websocket_proxy_url(self) -> str | None:
        """The proxy as ``websockets`` must be given it, or None for a direct connection.

        Returns ``http://[user:password@]host:port`` with the port always written —
        ``websockets`` takes 80 for an ``http`` proxy without one, the route (and so the REST
        probes) 3128 — and a password always present (``websockets`` refuses a user without
        one; the route sends such a user as ``user:``, RFC 7617). The credentials stay
        percent-encoded as configured; ``websockets`` decodes them and sends
        ``Proxy-Authorization: Basic`` with ``CONNECT``.

        Raises:
            ValueError: the proxy URL is malformed (the message holds no credentials).
        """
        proxy = self.proxy
        if proxy is None or self.proxy_url is None:
            return None
        parts = urlsplit(self.proxy_url.get_secret_value().strip())
        userinfo = ""
        if parts.username is not None or parts.password is not None:
            userinfo = f"{parts.username or ''}:{parts.password or ''}@"
        return f"http://{userinfo}{proxy.display.removeprefix('http://')}"

    def websocket_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``websockets.asyncio.client.connect``: ``proxy``
        (:meth:`websocket_proxy_url`, None explicitly for a direct route: the library's default
        takes a proxy from the environment), ``family`` and ``local_addr`` (which the library
        applies to the TCP connection — to the proxy when there is one). TLS settings are the
        caller's (``ssl``, ``server_hostname``)."""
        kwargs: dict[str, Any] = {"proxy": self.websocket_proxy_url()}
        if self.ip_protocol != "auto":
            kwargs["family"] = self.family
        if self.source_address:
            kwargs["local_addr"] = (self.source_address, 0)
        return kwargs


DIRECT = Route()
"""The default route: direct, kernel-chosen source address, any IP protocol, default trust."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A connected TCP socket (through the proxy's tunnel when proxied).

    Attributes:
        sock: the non-blocking socket; the caller owns it.
        resolve: seconds spent resolving the name (0 for an IP literal).
        connect: seconds from resolved to connected (including the proxy's ``CONNECT`` answer).
        peer: the socket's peer address (the proxy's when proxied).
    """

    sock: socket.socket
    resolve: float
    connect: float
    peer: tuple[Any, ...]


async def resolve(
    host: str, port: int, family: socket.AddressFamily
) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    """Addresses for ``host:port`` of ``family`` (``AF_UNSPEC``: any), resolver order.

    Raises:
        DnsError: the name does not resolve, or has no address of the family (an IP literal of
            the other family included).
    """
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        literal_family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        if family not in (socket.AF_UNSPEC, literal_family):
            wanted = "ip6" if family == socket.AF_INET6 else "ip4"
            raise DnsError(f"{host}: an IPv{literal.version} address, but ip_protocol is {wanted}")
        return [(literal_family, (host, port))]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DnsError(f"{host}: {exc.strerror or exc}") from exc
    except UnicodeError as exc:  # an invalid IDNA name
        raise DnsError(f"{host}: {exc}") from exc
    if not infos:
        raise DnsError(f"{host}: no address")
    return [(info[0], info[4]) for info in infos]


async def open_socket(route: Route, host: str, port: int) -> Opened:
    """Resolve, bind and connect as ``route`` says; through the proxy, ``CONNECT host:port``.

    Each address is tried in turn (as ``asyncio`` does) until one connects.

    Raises:
        DnsError: the target's (or the proxy's) name did not resolve.
        ConnectError: no address accepted the connection, the source address cannot be bound,
            or the proxy refused or garbled the ``CONNECT``.
        TimeoutError, CancelledError: from the caller's deadline (the socket is closed).
    """
    loop = asyncio.get_running_loop()
    proxy = route.proxy
    dial_host, dial_port = (proxy.host, proxy.port) if proxy is not None else (host, port)
    started = time.perf_counter()
    addresses = await resolve(dial_host, dial_port, route.family)
    resolved = time.perf_counter()
    errors: list[str] = []
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if route.source_address:
                try:
                    sock.bind((route.source_address, 0))
                except OSError as exc:
                    raise ConnectError(
                        f"cannot bind source address {route.source_address}: {exc.strerror or exc}"
                    ) from exc
            try:
                await loop.sock_connect(sock, address)
            except OSError as exc:
                errors.append(f"{address[0]}: {exc.strerror or exc}")
                sock.close()
                continue
            peer = sock.getpeername()
            if proxy is not None:
                await _tunnel(loop, sock, proxy, host, port)
        except BaseException:
            sock.close()
            raise
        return Opened(sock, resolved - started, time.perf_counter() - resolved, peer)
    where = f"proxy {proxy.display}" if proxy is not None else f"{host}:{port}"
    raise ConnectError(f"{where}: {'; '.join(errors[:3])}")


async def _tunnel(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: Proxy, host: str, port: int
) -> None:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.authorization is not None:
        head += f"Proxy-Authorization: {proxy.authorization.get_secret_value()}\r\n"
    await loop.sock_sendall(sock, (head + "\r\n").encode("ascii"))
    answer = bytearray()
    while b"\r\n\r\n" not in answer:
        if len(answer) > MAX_PROXY_HEAD_BYTES:
            raise ConnectError(f"proxy {proxy.display}: CONNECT answer head too large")
        data = await loop.sock_recv(sock, 4096)
        if not data:
            raise ConnectError(f"proxy {proxy.display} closed the connection during CONNECT")
        answer += data
    end = answer.index(b"\r\n\r\n") + 4
    status_line = bytes(answer[: answer.find(b"\r\n")])
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise ConnectError(f"proxy {proxy.display}: not an HTTP answer: {status_line[:60]!r}")
    if not 200 <= int(code) < 300:
        reason = rest[4:64].decode("latin-1", "replace")
        raise ConnectError(
            f"proxy {proxy.display} refused CONNECT {authority}: {int(code)} {reason}"
        )
    if len(answer) > end:
        # The client speaks first in TLS and in HTTP: nothing may follow the proxy's answer.
        raise ConnectError(f"proxy {proxy.display}: bytes after the CONNECT answer")


def chain_expiry(ssl_object: Any) -> float | None:
    """The earliest ``notAfter`` (Unix seconds) of the certificate chain the peer presented.

    Python 3.13 has ``SSLObject.get_unverified_chain()`` (DER bytes); on 3.11–3.12 the same
    call exists on the private ``_sslobj`` (``_ssl.Certificate`` objects). Falls back to the
    leaf (``getpeercert()``) when neither answers. None when nothing is known.
    """
    if ssl_object is None:
        return None
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    expiries: list[float] = []
    try:
        chain = getter() if getter is not None else None
        for cert in chain or ():
            if isinstance(cert, bytes):
                from cryptography import x509

                expiries.append(
                    x509.load_der_x509_certificate(cert).not_valid_after_utc.timestamp()
                )
            else:
                expiries.append(ssl.cert_time_to_seconds(cert.get_info()["notAfter"]))
        if not expiries:
            leaf = ssl_object.getpeercert()
            if leaf and "notAfter" in leaf:
                expiries.append(float(ssl.cert_time_to_seconds(leaf["notAfter"])))
    except (ValueError, KeyError, AttributeError, ssl.SSLError):
        return None
    return float(min(expiries)) if expiries else None
