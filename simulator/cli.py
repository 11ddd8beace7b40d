"""``exchange-simulator`` command line: ``exchange-simulator --listen 127.0.0.1:8000``.

Prints ``exchange-simulator listening on http://HOST:PORT`` (flushed) once bound — with the real
port when ``:0`` was given — and exits with code 0 on SIGTERM or SIGINT. Exit code 2 on bad
arguments (including an unknown or invalid ``--scenario``, reported before binding), 1 if the
address cannot be bound.

Options: ``--no-limits`` turns request-limit enforcement off (benchmarks); ``--scenario
NAME_OR_PATH`` starts a shipped scenario (``simulator/scenarios/NAME.yml``) or a YAML file as
soon as the server listens; ``--keys FILE`` registers the API keys of a JSON list (each item
as ``POST /_control/keys`` takes it, see :mod:`simulator.keys.store`) before it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from simulator.scenario import Scenario, ScenarioError, load_scenario_file
from simulator.server import SimulatorServer
from simulator.specs import SpecError

__all__ = ["main", "parse_listen"]


def parse_listen(value: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6addr]:PORT`` for IPv6) into ``(host, port)``.

    Raises:
        argparse.ArgumentTypeError: malformed value or port outside 0–65535.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exchange-simulator",
        description="Local stand-in for the public REST APIs of Binance, Bybit, OKX, Coinbase "
        "and Kraken, with fault injection (control API under /_control/).",
    )
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", 8000),
        metavar="HOST:PORT",
        help="address to bind (default 127.0.0.1:8000)",
    )
    parser.add_argument(
        "--no-limits",
        action="store_true",
        help="do not enforce the per-IP request limits (Binance weight 6000/min, Bybit 600/5 s); "
        "usage is still counted and reported",
    )
    parser.add_argument(
        "--scenario",
        metavar="NAME_OR_PATH",
        help="start a timeline scenario at boot: a shipped name (e.g. binance-outage) or a "
        "YAML file",
    )
    parser.add_argument(
        "--keys",
        metavar="FILE",
        help="register the API keys listed in a JSON file (a list of POST /_control/keys "
        "bodies) at boot",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        type=str.upper,
        help="logging level (default WARNING)",
    )
    return parser


async def _serve(server: SimulatorServer, scenario: Scenario | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before binding: no window without handlers
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        print(f"exchange-simulator listening on {server.url}", flush=True)
        if scenario is not None:
            server.scenarios.start(scenario)
        await stop.wait()
    finally:
        await server.stop()


def load_keys(server: SimulatorServer, path: Path) -> int:
    """Register every key of the JSON list in ``path``; return how many.

    Raises:
        OSError: the file cannot be read.
        ValueError: not a JSON list, or an item is invalid (``"<file>[i]: <field>: ..."``).
    """
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of keys")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}[{index}]: expected an object")
        try:
            server.keys.add(item)
        except SpecError as exc:
            raise ValueError(f"{path}[{index}]: {exc}") from None
    return len(items)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until SIGTERM/SIGINT.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 after a signal-triggered shutdown, 1 if binding failed, 2 for a bad ``--scenario``.
    """
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host, port = args.listen
    server = SimulatorServer(host, port, limits=not args.no_limits)
    scenario = None
    if args.scenario is not None:
        try:
            scenario = load_scenario_file(args.scenario, faults=server.faults, limits=server.limits)
        except ScenarioError as exc:
            print(f"exchange-simulator: --scenario: {exc}", file=sys.stderr)
            return 2
    if args.keys is not None:
        try:
            load_keys(server, Path(args.keys))
        except (OSError, ValueError) as exc:
            print(f"exchange-simulator: --keys: {exc}", file=sys.stderr)
            return 2
    try:
        asyncio.run(_serve(server, scenario))
    except OSError as exc:
        print(f"exchange-simulator: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # signal arrived before the handler was installed
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
