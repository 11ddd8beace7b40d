"""A fast static probe target: Debian's nginx serving the simulator's recorded Binance answers.

The probe benchmarks must measure the prober, not the target; nginx answers a small static file
in tens of microseconds, so one nginx worker on the load-generator core keeps up with several
thousand probes per second. Bodies and the rate-limit header are recorded from the simulator
(the same answers the exporter sees in the demo), so the exporter parses realistic JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import Child, start, stop
from deploy.stack import free_port, wait_for_http

ENDPOINTS: dict[str, str] = {
    "ping": "/api/v3/ping",
    "time": "/api/v3/time",
    "status": "/sapi/v1/system/status",
    "ticker": "/api/v3/ticker/24hr?symbol=BTCUSDT",
    "orderbook": "/api/v3/depth?symbol=BTCUSDT&limit=5",
}
"""Endpoint name → request target, as the Binance profile probes them (Binance spot API:
``/api/v3/ping``, ``/api/v3/time``, ``/sapi/v1/system/status``, ``/api/v3/ticker/24hr``,
``/api/v3/depth``)."""


@dataclass(frozen=True)
class Recorded:
    """One recorded answer: body bytes and the headers worth replaying."""

    body: bytes
    headers: dict[str, str]


def record(endpoints: dict[str, str] = ENDPOINTS) -> dict[str, Recorded]:
    """Fetch each endpoint once from an in-process simulator (limits off) and keep its answer.

    Raises:
        RuntimeError: the simulator did not answer 200.
    """
    from simulator.server import simulator_in_thread

    recorded: dict[str, Recorded] = {}
    with simulator_in_thread(limits=False) as server, httpx.Client() as client:
        for name, target in endpoints.items():
            response = client.get(f"{server.url}/binance{target}")
            if response.status_code != 200:
                raise RuntimeError(f"simulator answered {response.status_code} for {target}")
            keep = {
                k: v
                for k, v in response.headers.items()
                if k.lower().startswith("x-mbx-") or k.lower() == "content-type"
            }
            recorded[name] = Recorded(response.content, keep)
    return recorded


def nginx_config(directory: Path, port: int, recorded: dict[str, Recorded]) -> str:
    """An nginx.conf serving ``recorded`` from ``directory`` on 127.0.0.1:``port``."""
    locations = []
    for name, answer in recorded.items():
        path = ENDPOINTS[name].split("?", 1)[0]
        headers = "".join(
            f"        add_header {k} {json.dumps(v)} always;\n"
            for k, v in answer.headers.items()
            if k.lower() != "content-type"
        )
        content_type = answer.headers.get("content-type", "application/json")
        locations.append(
            f"    location = {path} {{\n"
            f"        default_type {json.dumps(content_type)};\n"
            f"{headers}"
            f"        alias {directory / 'bodies' / name};\n"
            "    }\n"
        )
    temp = directory / "tmp"
    return (
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\n"
        "events { worker_connections 8192; multi_accept on; }\n"
        "http {\n"
        "    access_log off;\n"
        "    etag off;\n"
        "    keepalive_requests 10000000;\n"
        "    keepalive_timeout 120s;\n"
        f"    client_body_temp_path {temp}; proxy_temp_path {temp}; fastcgi_temp_path {temp};\n"
        f"    uwsgi_temp_path {temp}; scgi_temp_path {temp};\n"
        f"    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n"
        "        location = /healthz { return 200 'ok'; }\n"
        f"{''.join(locations)}"
        "    }\n"
        "}\n"
    )


@contextlib.contextmanager
def static_target(cpus: Iterable[int] | None = None) -> Iterator[tuple[str, Child]]:
    """Run nginx with the recorded answers; yield (base URL, the nginx child).

    Raises:
        FileNotFoundError: nginx is not installed (``apt-get install nginx-light``).
    """
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise FileNotFoundError("nginx not found: make bench installs nginx-light")
    directory = Path(tempfile.mkdtemp(prefix="exchange-watch-nginx-"))
    try:
        directory.chmod(0o755)  # nginx workers run as nobody when started as root
        (directory / "bodies").mkdir(mode=0o755)
        (directory / "tmp").mkdir(mode=0o755)
        recorded = record()
        for name, answer in recorded.items():
            (directory / "bodies" / name).write_bytes(answer.body)
            (directory / "bodies" / name).chmod(0o644)
        port = free_port()
        conf = directory / "nginx.conf"
        conf.write_text(nginx_config(directory, port, recorded), encoding="utf-8")
        child = start([nginx, "-c", str(conf), "-p", str(directory)], "nginx", cpus=cpus)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/healthz", timeout=10)
            yield base, child
        finally:
            stop([child])
            time.sleep(0.1)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
