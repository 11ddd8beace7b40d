"""The exporter's own connectivity canary: is it our network, or the exchanges?

Every ``connectivity.interval`` seconds it resolves the host of every configured ``base_url``
(``exchange_exporter_dns_up{exchange}``) — for an exchange reached through a proxy, the proxy's
host instead (the proxy resolves the exchange's name), in the family of the exchange's
``ip_protocol`` — and, when ``connectivity.canary_url`` is set, sends one
GET there (any HTTP answer counts as reachable). ``exchange_exporter_connectivity_up`` is 1 when
at least one configured host resolves and the canary URL (if any) answers — so five exchanges
failing together while the canary is down reads as "our network is down".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from urllib.parse import urlsplit

from exporter.config import ExporterConfig
from exporter.http11 import BodyTooLargeError, DecodingError, ProbeClient, TransportError
from exporter.metrics import ExporterMetrics

log = logging.getLogger(__name__)

CANARY_BODY_BYTES = 64 * 1024
"""The canary reads at most this much of the canary URL's body (any answer counts)."""


class ConnectivityCanary:
    """Periodic DNS and canary-URL checks.

    Args:
        client: the exporter's shared probe client.
        metrics: where the results are exported.
    """

    def __init__(self, client: ProbeClient, metrics: ExporterMetrics) -> None:
        self._client = client
        self._metrics = metrics
        self._hosts: dict[str, tuple[str, int, socket.AddressFamily]] = {}
        self._canary_url: str | None = None
        self._interval = 15.0
        self._timeout = 3.0
        self._wake = asyncio.Event()

    def configure(self, config: ExporterConfig) -> None:
        """Take the hosts and canary settings of ``config`` (and check again soon)."""
        hosts = {}
        for exchange in config.exchanges:
            route = exchange.route
            proxy = route.proxy
            if proxy is not None:
                hosts[exchange.name] = (proxy.host, proxy.port, route.family)
                continue
            parts = urlsplit(exchange.base_url)
            default_port = 443 if parts.scheme == "https" else 80
            hosts[exchange.name] = (parts.hostname or "", parts.port or default_port, route.family)
        for name in self._hosts.keys() - hosts.keys():
            with contextlib.suppress(KeyError):
                self._metrics.dns_up.remove(name)
        self._hosts = hosts
        self._canary_url = config.connectivity.canary_url
        self._interval = config.connectivity.interval
        self._timeout = config.connectivity.timeout
        self._wake.set()

    async def check(self) -> bool:
        """Run every check once, export the results and return the connectivity verdict."""
        results = await asyncio.gather(
            *(self._resolve(host, port, family) for host, port, family in self._hosts.values())
        )
        for name, resolved in zip(self._hosts, results, strict=True):
            self._metrics.dns_up.labels(name).set(1 if resolved else 0)
        up = any(results) if results else True
        if self._canary_url is not None:
            up = up and await self._reach(self._canary_url)
        self._metrics.connectivity_up.set(1 if up else 0)
        return up

    async def run(self) -> None:
        """Check forever, every ``interval`` seconds (or at once after :meth:`configure`)."""
        while True:
            self._wake.clear()
            try:
                await self.check()
            except Exception:  # the canary must never die
                log.exception("connectivity check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    async def _resolve(self, host: str, port: int, family: socket.AddressFamily) -> bool:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError, UnicodeError):
            return False
        return bool(infos)

    async def _reach(self, url: str) -> bool:
        try:
            await self._client.get(url, self._timeout, CANARY_BODY_BYTES)
        except (BodyTooLargeError, DecodingError):
            return True  # an HTTP answer arrived: the network works
        except (TransportError, OSError, TimeoutError, ValueError):
            return False
        return True
