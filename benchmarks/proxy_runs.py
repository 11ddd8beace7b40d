"""The egress-proxy variant of the probe benchmark: a real ``CONNECT`` proxy and what it costs.

The proxy is Debian's ``tinyproxy`` (``tinyproxy-bin``; C, one thread per client), run on the
load core beside nginx. Its stock configuration lets ``CONNECT`` through to ports 443 and 563
only; the one written here has no ``ConnectPort`` line, which allows every port (tinyproxy(8)
"ConnectPort": "If no ConnectPort line is found, all ports are allowed"), so it can tunnel to
the plain-HTTP nginx target.

Two costs are measured: the amortised one (the exporter at a fixed rate through the proxy, its
keep-alive connections being tunnels opened once and reused) in ``bench_probe.py``, and the
per-new-connection one here (:func:`new_connection_cost`): sequential GETs on fresh connections,
direct and proxied, timed in this process pinned to the measured core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from benchmarks.common import start, stop
from deploy.stack import free_port
from exporter.egress import DIRECT, Route
from exporter.http11 import ProbeClient

TINYPROXY_CONFIG = """\
Port {port}
Listen 127.0.0.1
Timeout 600
MaxClients 4096
LogLevel Critical
LogFile "{directory}/tinyproxy.log"
PidFile "{directory}/tinyproxy.pid"
DisableViaHeader Yes
Allow 127.0.0.1
"""
"""tinyproxy.conf: loopback only, long idle timeout (keep-alive tunnels live as long as nginx
keeps them), enough clients for 1,000 pooled tunnels, no ``ConnectPort`` (all ports)."""


def find_tinyproxy() -> str:
    """Path of the tinyproxy binary.

    Raises:
        FileNotFoundError: not installed (``make bench`` installs ``tinyproxy-bin``).
    """
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not os.path.exists(binary):
        raise FileNotFoundError("tinyproxy not found: make bench installs tinyproxy-bin")
    return binary


def _wait_for_port(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def tinyproxy(cpus: Iterable[int] | None = None) -> Iterator[str]:
    """Run tinyproxy on a free loopback port; yield its URL (``http://127.0.0.1:port``)."""
    binary = find_tinyproxy()
    directory = Path(tempfile.mkdtemp(prefix="exchange-watch-tinyproxy-"))
    try:
        directory.chmod(0o777)  # tinyproxy started as root runs as nobody: its log and pid
        port = free_port()
        conf = directory / "tinyproxy.conf"
        conf.write_text(TINYPROXY_CONFIG.format(port=port, directory=directory), "utf-8")
        child = start([binary, "-d", "-c", str(conf)], "tinyproxy", cpus=cpus)
        try:
            _wait_for_port(port, timeout=10)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop([child])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class NewConnectionCost:
    """Sequential GETs, each on a new connection, through one route.

    Attributes:
        cpu_us: CPU of this process per GET, microseconds (connect, ``CONNECT`` when proxied,
            request, parse, close).
        connect_ms: median connect phase (TCP connect, plus the proxy's ``CONNECT`` exchange
            when proxied), milliseconds.
        elapsed_ms: median whole GET, milliseconds.
    """

    cpu_us: float
    connect_ms: float
    elapsed_ms: float


async def _fresh_gets(url: str, route: Route, count: int) -> NewConnectionCost:
    client = ProbeClient("exchange-watch-bench", max_idle_per_origin=0)  # no reuse
    connects: list[float] = []
    elapsed: list[float] = []
    try:
        for _ in range(20):  # warm-up: imports, caches, the proxy's threads
            await client.get(url, 5.0, 1 << 20, route=route)
        cpu = time.process_time()
        for _ in range(count):
            response = await client.get(url, 5.0, 1 << 20, route=route)
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status} via {route.describe()}")
            connects.append(response.phases.connect)
            elapsed.append(response.elapsed)
        cpu = time.process_time() - cpu
    finally:
        await client.aclose()
    return NewConnectionCost(
        cpu_us=cpu / count * 1e6,
        connect_ms=statistics.median(connects) * 1000,
        elapsed_ms=statistics.median(elapsed) * 1000,
    )


def new_connection_cost(
    url: str, proxy_url: str, cpus: list[int], count: int = 2000
) -> tuple[NewConnectionCost, NewConnectionCost]:
    """(direct, proxied) cost of a GET on a new connection to ``url``, measured in this process
    pinned to ``cpus`` (its affinity is restored afterwards); direct and proxied alternate in
    four blocks so drift on a shared machine hits both alike."""
    proxied = Route(proxy_url=SecretStr(proxy_url))
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        blocks: dict[bool, list[NewConnectionCost]] = {False: [], True: []}
        for _ in range(2):
            for via_proxy in (False, True):
                route = proxied if via_proxy else DIRECT
                blocks[via_proxy].append(asyncio.run(_fresh_gets(url, route, count // 2)))
    finally:
        os.sched_setaffinity(0, previous)

    def mean(costs: list[NewConnectionCost]) -> NewConnectionCost:
        return NewConnectionCost(
            cpu_us=statistics.fmean(c.cpu_us for c in costs),
            connect_ms=statistics.fmean(c.connect_ms for c in costs),
            elapsed_ms=statistics.fmean(c.elapsed_ms for c in costs),
        )

    return mean(blocks[False]), mean(blocks[True])
