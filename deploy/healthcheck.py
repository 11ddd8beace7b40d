#!/usr/bin/env python3
"""Container health check for the exchange-watch image: ``exchange-watch-healthcheck [URL]``.

The image has no curl, so its ``HEALTHCHECK`` runs this (standard library only). Without an
argument it finds which component the container runs and asks that component's health URL on
the port it listens on:

==================== ============================== ==================
command              URL                            default ``--listen``
==================== ============================== ==================
exchange-exporter    ``/healthz``                   ``127.0.0.1:9101``
alert-receiver       ``/readyz`` (database + worker) ``127.0.0.1:8080``
exchange-simulator   ``/_control/health``           ``127.0.0.1:8000``
==================== ============================== ==================

The component is the first process in ``/proc`` whose command line runs one of them (as the
console script or as ``python -m exporter.cli`` and the like), so it works as PID 1 and under
``init: true``. A wildcard listen address (``0.0.0.0``, ``::``) is asked on loopback.
An explicit URL argument, or ``HEALTHCHECK_URL``, skips the detection.

Exit status: 0 when the URL answers 2xx within ``HEALTHCHECK_TIMEOUT`` seconds (default 4),
1 otherwise (Docker's "unhealthy"), with one line saying why.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

#: component → (names its process runs as, health path, default port)
COMPONENTS: dict[str, tuple[tuple[str, ...], str, int]] = {
    "exporter": (("exchange-exporter", "exporter.cli"), "/healthz", 9101),
    "receiver": (("alert-receiver", "receiver.cli"), "/readyz", 8080),
    "simulator": (("exchange-simulator", "simulator.cli"), "/_control/health", 8000),
}


def component_of(argv: Sequence[str]) -> str | None:
    """The component a process command line runs, or ``None``."""
    for arg in argv[:3]:  # [python] script|-m module ...
        name = Path(arg).name
        for component, (names, _, _) in COMPONENTS.items():
            if name in names:
                return component
    return None


def listen_of(argv: Sequence[str]) -> str | None:
    """The ``--listen HOST:PORT`` value of a command line, if any."""
    for i, arg in enumerate(argv):
        if arg == "--listen" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--listen="):
            return arg.split("=", 1)[1]
    return None


def health_url(argv: Sequence[str]) -> str | None:
    """The health URL of the component that ``argv`` runs, or ``None`` if it runs none."""
    component = component_of(argv)
    if component is None:
        return None
    _, path, default_port = COMPONENTS[component]
    host, port = "127.0.0.1", default_port
    listen = listen_of(argv)
    if listen:
        listen_host, _, listen_port = listen.rpartition(":")
        listen_host = listen_host.strip("[]")
        if listen_port.isdigit():
            port = int(listen_port)
        if listen_host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif listen_host == "::":
            host = "[::1]"
        elif ":" in listen_host:
            host = f"[{listen_host}]"
        else:
            host = listen_host
    return f"http://{host}:{port}{path}"


def command_lines(proc: Path = Path("/proc")) -> Iterable[list[str]]:
    """Every readable process command line, lowest PID first."""
    pids = sorted((p for p in proc.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    for pid in pids:
        try:
            raw = (pid / "cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            yield [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]


def detect_url(proc: Path = Path("/proc")) -> str | None:
    """The health URL of the first exchange-watch component running on this machine."""
    for argv in command_lines(proc):
        url = health_url(argv)
        if url:
            return url
    return None


def check(url: str, timeout: float) -> str | None:
    """``None`` when ``url`` answers 2xx, else the reason it is unhealthy."""
    # No proxy: the health URL is always local, whatever HTTP_PROXY the container has.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode(errors="replace").strip()
        return f"HTTP {exc.code}: {body}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable: {reason}"
    if not 200 <= status < 300:
        return f"HTTP {status}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Check the health URL; print one line; return 0 (healthy) or 1 (unhealthy)."""
    args = list(sys.argv[1:] if argv is None else argv)
    url = args[0] if args else os.environ.get("HEALTHCHECK_URL") or detect_url()
    if not url:
        print("unhealthy: no exchange-watch component is running here", file=sys.stderr)
        return 1
    try:
        timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT", "4"))
    except ValueError:
        timeout = 4.0
    problem = check(url, timeout)
    if problem:
        print(f"unhealthy: {url}: {problem}", file=sys.stderr)
        return 1
    print(f"healthy: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
