"""``exchange-exporter --config PATH [--listen HOST:PORT] [--check-config]``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from exporter.config import ConfigError, ExporterConfig, load_config
from exporter.metrics import ExporterMetrics
from exporter.runtime import ExporterRuntime
from exporter.server import make_server, serve_in_thread

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


def effective_config(config: ExporterConfig) -> dict[str, Any]:
    """The config with every default filled in and secrets shown as ``**********``."""

    def redact(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "**********"
        if isinstance(value, dict):
            return {k: redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [redact(v) for v in value]
        return value

    data: dict[str, Any] = redact(config.model_dump())
    for exchange, raw in zip(config.exchanges, data["exchanges"], strict=True):
        raw["symbol"] = exchange.effective_symbol()
        raw["endpoints"] = [
            {"name": p.name, "interval": f"{p.interval:g}s", "timeout": f"{p.timeout:g}s"}
            for p in exchange.endpoint_plan()
        ]
        raw["interval"] = f"{exchange.interval:g}s"
        raw["timeout"] = f"{exchange.timeout:g}s"
        raw["circuit"]["open_seconds"] = f"{exchange.circuit.open_seconds:g}s"
        raw["max_body_bytes"] = config.body_limit(exchange)
        plan = exchange.stream_plan(config.body_limit(exchange))
        if plan is not None:
            raw["websocket"] = {
                "enabled": True,
                "url": plan.url,
                "channels": [channel.value for channel in plan.channels],
                "markets": list(plan.markets),
                "stale_after": {channel.value: f"{s:g}s" for channel, s in plan.stale_after},
                "open_timeout": f"{plan.open_timeout:g}s",
            }
        elif exchange.websocket is not None:
            raw["websocket"] = {"enabled": False}
    connectivity = data["connectivity"]
    connectivity["interval"] = f"{config.connectivity.interval:g}s"
    connectivity["timeout"] = f"{config.connectivity.timeout:g}s"
    return data


def main(argv: list[str] | None = None) -> int:
    """Run the exporter until SIGINT/SIGTERM (SIGHUP reloads the config).

    Returns:
        0 on a clean stop or a valid ``--check-config``; 2 on a config error (one line per
        problem on stderr); 1 when the listen address cannot be bound.
    """
    parser = argparse.ArgumentParser(
        prog="exchange-exporter", description="Probe crypto exchange APIs; serve /metrics."
    )
    parser.add_argument("--config", required=True, type=Path, help="exporter YAML config")
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=parse_listen(DEFAULT_LISTEN),
        help=f"HOST:PORT for /metrics, /status, /healthz, /-/reload (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the config, print the effective config and exit",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.check_config:
        print(f"# {args.config}: valid; effective configuration:")
        print(yaml.safe_dump(effective_config(config), sort_keys=False), end="")
        return 0
    metrics = ExporterMetrics()
    runtime = ExporterRuntime(args.config, config, metrics)
    host, port = args.listen
    try:
        server = make_server(host, port, runtime)
    except OSError as exc:
        print(f"exchange-exporter: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    serve_in_thread(server)
    targets = runtime.scheduler.targets
    streams = len(config.stream_plans())
    print(
        f"exchange-exporter listening on http://{host}:{server.server_address[1]}/metrics "
        f"({len(targets)} endpoints on {len(config.exchanges)} exchanges, {streams} streams)",
        flush=True,
    )
    try:
        asyncio.run(_run(runtime))
    finally:
        server.shutdown()
        server.server_close()
    return 0


def settle_heap() -> None:
    """Collect garbage, then move every surviving object out of the cyclic GC's reach
    (``gc.freeze``). With 1,000 endpoints the exporter holds ~130,000 long-lived objects, and a
    full collection of them took 30-40 ms: a pause every probe in flight measured as latency.
    Called once the targets are set up, and again after each reload."""
    gc.collect()
    gc.freeze()


async def _run(runtime: ExporterRuntime) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, runtime.reload)
    runtime.after_reload = settle_heap
    loop.call_later(0.5, settle_heap)  # the probe tasks and connections exist by then
    await runtime.run(stop)


if __name__ == "__main__":
    raise SystemExit(main())
