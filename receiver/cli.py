"""``alert-receiver [--listen HOST:PORT]``: run the receiver under uvicorn.

Prints ``alert-receiver listening on http://HOST:PORT`` (the real port when 0 was asked) once the
socket is listening, and exits 0 after a graceful shutdown on SIGTERM or SIGINT. Exit 2 on bad
arguments or configuration (the message names the bad variable), 1 if the server cannot start.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn

from receiver.app import create_app
from receiver.routing import RoutingError
from receiver.settings import SettingsError, load_settings

DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(value: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into ``(host, port)``.

    Raises:
        ValueError: missing port, port outside 0..65535, or empty host.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--listen port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--listen port must be 0..65535, got {port}")
    return host, port


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn server that announces the bound address once it listens."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started:
            return
        host, port = self.config.host, self.config.port
        for server in getattr(self, "servers", []):
            for sock in server.sockets or ():
                addr = sock.getsockname()
                host, port = str(addr[0]), int(addr[1])
                break
        print(f"alert-receiver listening on {_url(host, port)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the alert receiver until SIGTERM/SIGINT.

    Args:
        argv: arguments without the program name (``sys.argv[1:]`` when ``None``).

    Returns:
        Process exit code: 0 after a signal-initiated shutdown, 1 on startup failure,
        2 on bad arguments or settings.
    """
    parser = argparse.ArgumentParser(
        prog="alert-receiver",
        description="Receive Alertmanager webhooks, diagnose alerts and notify chat.",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN})",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        print(f"alert-receiver: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()  # every setting, diagnosis included: fails at start
        app = create_app(settings)
    except (SettingsError, RoutingError) as exc:
        print(f"alert-receiver: invalid configuration: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=args.log_level,
        access_log=False,
        log_config=None,
        lifespan="on",
    )
    server = _Server(config)

    # uvicorn re-raises captured signals after its graceful shutdown; with these handlers in
    # place the re-raised SIGTERM/SIGINT is absorbed and we can return 0.
    received: list[int] = []

    def _absorb(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, _absorb) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits on bind/startup failure
        return 1 if exc.code else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
