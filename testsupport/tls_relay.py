"""A TLS-terminating relay for end-to-end tests: presents a test certificate chain on loopback
and forwards the decrypted bytes to a plain-HTTP upstream (the simulator) — what a TLS-inspecting
corporate proxy or an exchange's edge looks like to the exporter. Runs its own event loop in a
daemon thread, so a test process can serve while the exporter runs as a process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator

from testsupport.connect_proxy import pipe


@contextlib.contextmanager
def tls_relay(context: ssl.SSLContext, upstream: tuple[str, int]) -> Iterator[int]:
    """Serve TLS with ``context`` on 127.0.0.1 and relay every connection to ``upstream``.

    Yields:
        The relay's port.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None

    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError:
            writer.close()
            return
        writers.add(up_writer)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        server = await asyncio.start_server(handle, sock=listener, ssl=context)
        started.set()
        await stop.wait()
        server.close()
        for writer in writers:
            writer.close()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield port
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
