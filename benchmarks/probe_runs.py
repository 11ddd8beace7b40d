"""Running the exporter and blackbox_exporter under load, and reading their figures.

Shared by ``bench_probe.py`` (cost and throughput against nginx), ``bench_accuracy.py`` (latency
error against the simulator) and ``bench_scale.py`` (10/100/1,000 endpoints).
"""

from __future__ import annotations

import asyncio
import math
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import Child, cpu_seconds, python, rss_bytes, start, stop
from benchmarks.static_target import ENDPOINTS
from deploy.stack import find_binary, free_port, wait_for_http
from exporter.http11 import ProbeClient

ENDPOINTS_PER_EXCHANGE = len(ENDPOINTS)


def exporter_config(
    base_url: str,
    endpoints: int,
    interval: float,
    timeout: float = 2.0,
    proxy_url: str | None = None,
) -> dict[str, Any]:
    """A generic-profile config with ``endpoints`` endpoints (five per exchange, named
    ``bench0000``…) probing ``base_url``'s recorded Binance paths every ``interval`` s, each
    exchange through the ``CONNECT`` proxy ``proxy_url`` when given."""
    exchanges = []
    for index in range(math.ceil(endpoints / ENDPOINTS_PER_EXCHANGE)):
        names = list(ENDPOINTS)[: min(ENDPOINTS_PER_EXCHANGE, endpoints - index * 5)]
        items: list[dict[str, Any]] = []
        for name in names:
            item: dict[str, Any] = {"name": name, "path": ENDPOINTS[name]}
            if name == "time":
                item.update(time_field="serverTime", time_unit="ms")
            items.append(item)
        exchange: dict[str, Any] = {
            "name": f"bench{index:04d}",
            "profile": "generic",
            "base_url": base_url,
            "interval": interval,
            "timeout": min(timeout, interval),
            "endpoints": items,
        }
        if proxy_url is not None:
            exchange["proxy_url"] = proxy_url
        exchanges.append(exchange)
    return {"exchanges": exchanges}


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Exposition text → sample name → [(labels, value)]."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **match: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``match``."""
    return sum(
        value
        for labels, value in samples.get(name, [])
        if all(labels.get(k) == v for k, v in match.items())
    )


def buckets(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str
) -> dict[float, float]:
    """``le`` → cumulative count of histogram ``name`` (``_bucket`` samples summed over
    other labels)."""
    out: dict[float, float] = {}
    for labels, value in samples.get(f"{name}_bucket", []):
        le = float(labels["le"])
        out[le] = out.get(le, 0.0) + value
    return out


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """``q`` (0–1) of the observations between two bucket snapshots, interpolated linearly
    inside the bucket as Prometheus' ``histogram_quantile`` does; NaN without observations."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank = q * counts[-1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            inside = count - lower_count
            fraction = (rank - lower_count) / inside if inside > 0 else 1.0
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return bounds[-1]


@dataclass
class ExporterRun:
    """Figures of one measured exporter window.

    Attributes:
        probes_per_second: probes finished per second in the window.
        ok_ratio: share of them with result ``ok``.
        cpu_per_1000: exporter CPU seconds per 1,000 probes (scrapes included).
        rss_peak_mb: peak resident set size (VmHWM), MiB.
        lag_p50_ms / lag_p99_ms: schedule lag quantiles in the window, milliseconds.
        scrape_ms: median wall time of a ``/metrics`` scrape during the window.
    """

    probes_per_second: float
    ok_ratio: float
    cpu_per_1000: float
    rss_peak_mb: float
    lag_p50_ms: float
    lag_p99_ms: float
    scrape_ms: float


class ExporterProcess:
    """``exchange-exporter`` started on a config dict, pinned to ``cpus``; a context manager."""

    def __init__(self, config: dict[str, Any], cpus: list[int] | None) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="exchange-watch-bench-")
        self.config_path = Path(self._directory.name) / "exporter.yml"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cpus = cpus
        self.child: Child | None = None

    def __enter__(self) -> ExporterProcess:
        argv = [python(), "-m", "exporter.cli", "--config", str(self.config_path)]
        argv += ["--listen", f"127.0.0.1:{self.port}", "--log-level", "warning"]
        self.child = start(argv, "exporter", cpus=self._cpus)
        wait_for_http(f"{self.url}/healthz", timeout=30, process=self.child.process)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.child is not None:
            stop([self.child])
        self._directory.cleanup()

    def scrape(self) -> tuple[str, float]:
        """GET /metrics over a plain socket (a Go client such as Prometheus reads 3 MB in a few
        ms; httpx would add ~25 ms of its own); return (text, wall seconds)."""
        began = time.perf_counter()
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: exporter\r\nConnection: close\r\n\r\n")
            chunks = []
            while data := sock.recv(1 << 20):
                chunks.append(data)
        elapsed = time.perf_counter() - began
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"/metrics answered {head[:40]!r}")
        return body.decode("utf-8"), elapsed

    def warm_up(self, seconds: float, scrape_every: float = 5.0) -> None:
        """Let the exporter run ``seconds`` before a measurement, scraped from the start every
        ``scrape_every`` s as Prometheus scrapes it from the moment it is up.

        The first scrape of a process fills the renderer's label-string cache
        (``exporter.exposition``): about 190 ms of CPU with 1,000 endpoints, against about
        45 ms for every later one. Prometheus pays it once, seconds after a start; left inside
        a 10 s window it added about 15 µs to every probe of the window. blackbox_exporter's
        window likewise starts after its warm-up."""
        deadline = next_scrape = time.monotonic()
        deadline += seconds
        while (now := time.monotonic()) < deadline:
            if now >= next_scrape:
                self.scrape()
                next_scrape = now + scrape_every
            time.sleep(max(min(next_scrape, deadline) - time.monotonic(), 0.0))

    def measure(self, seconds: float, scrape_every: float = 5.0) -> ExporterRun:
        """Measure a window of ``seconds``, scraping ``/metrics`` every ``scrape_every`` s as
        Prometheus would (the scrapes' CPU is part of the exporter's cost)."""
        assert self.child is not None
        pid = self.child.pid
        # Both snapshots are timed from the start of their scrape: the counters are read
        # at the start of rendering, long before a large body has been transferred.
        cpu_before, began = cpu_seconds(pid), time.monotonic()
        text, _ = self.scrape()
        before = parse_metrics(text)
        scrapes: list[float] = []
        deadline = began + seconds
        while (now := time.monotonic()) < deadline:
            time.sleep(min(scrape_every, deadline - now))
            if time.monotonic() < deadline - 0.5:
                scrapes.append(self.scrape()[1])
        cpu_after, ended = cpu_seconds(pid), time.monotonic()
        text, last = self.scrape()
        scrapes.append(last)
        after = parse_metrics(text)
        name = "exchange_api_requests_total"
        probes = total(after, name) - total(before, name)
        ok = total(after, name, result="ok") - total(before, name, result="ok")
        lag = "exchange_exporter_schedule_lag_seconds"
        lag_before, lag_after = buckets(before, lag), buckets(after, lag)
        scrapes.sort()
        return ExporterRun(
            probes_per_second=probes / (ended - began),
            ok_ratio=ok / probes if probes else float("nan"),
            cpu_per_1000=(cpu_after - cpu_before) / probes * 1000 if probes else float("nan"),
            rss_peak_mb=rss_bytes(pid)[1] / 2**20,
            lag_p50_ms=histogram_quantile(0.50, lag_before, lag_after) * 1000,
            lag_p99_ms=histogram_quantile(0.99, lag_before, lag_after) * 1000,
            scrape_ms=scrapes[len(scrapes) // 2] * 1000,
        )


BLACKBOX_CONFIG = {
    "modules": {
        "http_2xx": {
            "prober": "http",
            "timeout": "2s",
            "http": {"method": "GET", "preferred_ip_protocol": "ip4"},
        }
    }
}
"""The blackbox_exporter module: its stock ``http_2xx`` (GET, 2xx is success)."""


@dataclass
class BlackboxRun:
    """Figures of one measured blackbox_exporter window (fields as :class:`ExporterRun`)."""

    probes_per_second: float
    ok_ratio: float
    cpu_per_1000: float
    rss_peak_mb: float


class BlackboxProcess:
    """Debian's ``prometheus-blackbox-exporter`` pinned to ``cpus``; a context manager."""

    def __init__(self, cpus: list[int] | None) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="exchange-watch-blackbox-")
        self.config_path = Path(self._directory.name) / "blackbox.yml"
        self.config_path.write_text(yaml.safe_dump(BLACKBOX_CONFIG), encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cpus = cpus
        self.child: Child | None = None

    def __enter__(self) -> BlackboxProcess:
        binary = find_binary("prometheus-blackbox-exporter", "blackbox_exporter")
        argv = [binary, f"--config.file={self.config_path}"]
        argv += [f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        self.child = start(argv, "blackbox", cpus=self._cpus)
        wait_for_http(f"{self.url}/-/healthy", timeout=30, process=self.child.process)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.child is not None:
            stop([self.child])
        self._directory.cleanup()

    def probe_urls(self, base_url: str) -> list[str]:
        """One ``/probe`` URL per recorded endpoint of ``base_url``."""
        return [
            f"{self.url}/probe?module=http_2xx&target={base_url}{target.split('?', 1)[0]}"
            for target in ENDPOINTS.values()
        ]

    def measure(
        self, base_url: str, seconds: float, rate: float | None, concurrency: int = 64
    ) -> BlackboxRun:
        """Drive ``/probe`` at ``rate`` per second (open loop), or as fast as ``concurrency``
        connections allow when ``rate`` is None, and measure a window of ``seconds`` after a
        2-second warm-up."""
        assert self.child is not None
        urls = self.probe_urls(base_url)
        pid = self.child.pid
        counts = asyncio.run(_drive(urls, 2.0, seconds, rate, concurrency, pid))
        done, ok, cpu, elapsed = counts
        return BlackboxRun(
            probes_per_second=done / elapsed,
            ok_ratio=ok / done if done else float("nan"),
            cpu_per_1000=cpu / done * 1000 if done else float("nan"),
            rss_peak_mb=rss_bytes(pid)[1] / 2**20,
        )


async def _drive(
    urls: list[str], warmup: float, seconds: float, rate: float | None, concurrency: int, pid: int
) -> tuple[int, int, float, float]:
    """Load generator for ``/probe``: returns (probes done, successful, CPU s of ``pid``,
    seconds) for the measured window. Uses the exporter's own lean HTTP client, so the
    generator costs far less CPU than the probes it asks for."""
    client = ProbeClient("exchange-watch-bench")
    loop = asyncio.get_running_loop()
    measuring = False
    done = ok = 0

    async def one(url: str) -> None:
        nonlocal done, ok
        try:
            response = await client.get(url, 5.0, 1 << 20)
        except (OSError, TimeoutError, Exception):
            success = False
        else:
            success = response.status == 200 and b"\nprobe_success 1" in response.body
        if measuring:
            done += 1
            ok += success

    began = loop.time()
    end_warmup, end = began + warmup, began + warmup + seconds
    cpu_start = elapsed_start = 0.0
    try:
        if rate is None:
            index = 0

            async def worker() -> None:
                nonlocal index
                while loop.time() < end:
                    index += 1
                    await one(urls[index % len(urls)])

            async def mark() -> None:
                nonlocal measuring, cpu_start, elapsed_start
                await asyncio.sleep(warmup)
                measuring, cpu_start, elapsed_start = True, cpu_seconds(pid), time.monotonic()

            marker = asyncio.create_task(mark())
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            await marker
        else:
            in_flight: set[asyncio.Task[None]] = set()
            sent = 0
            while (now := loop.time()) < end:
                if not measuring and now >= end_warmup:
                    measuring, cpu_start, elapsed_start = True, cpu_seconds(pid), time.monotonic()
                due = int((now - began) * rate) - sent
                for _ in range(max(due, 0)):
                    if len(in_flight) >= 1024:
                        break  # the prober is not keeping up; do not pile on
                    task = asyncio.create_task(one(urls[sent % len(urls)]))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    sent += 1
                await asyncio.sleep(0.001)
            if in_flight:
                await asyncio.wait(in_flight, timeout=5)
        cpu_end, elapsed_end = cpu_seconds(pid), time.monotonic()
    finally:
        await client.aclose()
    return done, ok, cpu_end - cpu_start, elapsed_end - elapsed_start
