"""``exchange-exporter --config PATH [--listen HOST:PORT]``: probe exchanges, serve /metrics."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from prometheus_client import start_http_server

from exporter.config import ConfigError, load_config
from exporter.metrics import ExporterMetrics
from exporter.scheduler import ProbeScheduler

DEFAULT_LISTEN = "127.0.0.1:9101"


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (IPv6 as ``[::1]:PORT``) into host and port.

    Raises:
        argparse.ArgumentTypeError: not HOST:PORT with a port in 0–65535.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(f"--listen expects HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port_text)


def main(argv: list[str] | None = None) -> int:
    """Run the exporter until SIGINT/SIGTERM. Returns 0 on a clean stop, 2 on a config error."""
    parser = argparse.ArgumentParser(
        prog="exchange-exporter", description="Probe crypto exchange APIs; serve /metrics."
    )
    parser.add_argument("--config", required=True, help="exporter YAML config file")
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=parse_listen(DEFAULT_LISTEN),
        help=f"HOST:PORT for /metrics (default {DEFAULT_LISTEN})",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"exchange-exporter: config error:\n{exc}", file=sys.stderr)
        return 2
    metrics = ExporterMetrics()
    scheduler = ProbeScheduler(config, metrics)
    host, port = args.listen
    try:
        server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        print(f"exchange-exporter: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    print(
        f"exchange-exporter listening on http://{host}:{port}/metrics "
        f"({len(scheduler.targets)} endpoints on {len(config.exchanges)} exchanges)",
        flush=True,
    )
    try:
        asyncio.run(_run(scheduler))
    finally:
        server.shutdown()
    return 0


async def _run(scheduler: ProbeScheduler) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await scheduler.run(stop)


if __name__ == "__main__":
    raise SystemExit(main())
