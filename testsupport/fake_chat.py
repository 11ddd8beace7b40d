"""A local stand-in for Slack and Discord incoming webhooks, for end-to-end tests.

Answers like the platforms do on success: Slack ``200 ok`` (text/plain); Discord ``204`` for
Execute Webhook, or ``200`` with a message object when ``?wait=true`` is given, and ``200`` with
the message object for Edit Webhook Message (``PATCH .../messages/{id}``) — Discord API
reference, "Webhook Resource": Execute Webhook (``wait`` query parameter) and Edit Webhook
Message.
Every request is recorded with its arrival time, path, headers and parsed JSON body. Shared by
the end-to-end tests and ``benchmarks/bench_notify.py`` (time to notify).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ChatRequest:
    """One recorded webhook call.

    Attributes:
        path: request path.
        headers: request headers.
        body: parsed JSON body (the raw text when it was not JSON).
        arrived: ``time.monotonic()`` when the request reached the handler.
    """

    path: str
    headers: dict[str, str]
    body: Any
    arrived: float


class FakeChat:
    """Serves ``/slack/...`` and ``/discord/...`` on loopback and records every POST and PATCH
    (``path`` keeps the query string)."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []
        self._cond = threading.Condition()
        # Discord message ids are snowflakes: 64-bit integers written as strings.
        self._message_ids = itertools.count(1_180_000_000_000_000_000)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self) -> None:
                self.do_POST()

            def _discord_answer(self, body: Any) -> None:
                url = urllib.parse.urlsplit(self.path)
                wait = urllib.parse.parse_qs(url.query).get("wait", [""])[0] == "true"
                segments = url.path.rstrip("/").split("/")
                editing = self.command == "PATCH" and "messages" in segments[:-1]
                if not wait and not editing:
                    self.send_response(204)
                    self.end_headers()
                    return
                with recorder._cond:
                    message_id = segments[-1] if editing else str(next(recorder._message_ids))
                fields = body if isinstance(body, dict) else {}
                message = {
                    "id": message_id,
                    "type": 0,
                    "channel_id": "1180000000000000001",
                    "webhook_id": segments[2] if len(segments) > 2 else "",
                    "content": fields.get("content", ""),
                    "embeds": fields.get("embeds", []),
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                }
                payload = json.dumps(message).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with recorder._cond:
                    recorder.requests.append(
                        ChatRequest(self.path, dict(self.headers), body, arrived)
                    )
                    recorder._cond.notify_all()
                if self.path.startswith("/discord"):
                    self._discord_answer(body)
                    return
                payload = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeChat:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def matching(
        self, prefix: str, predicate: Callable[[Any], bool], after: float = -math.inf
    ) -> list[ChatRequest]:
        """Recorded requests under ``prefix`` that arrived at or after monotonic time ``after``
        and whose body satisfies ``predicate``, in arrival order."""
        with self._cond:
            return [
                r
                for r in self.requests
                if r.arrived >= after and r.path.startswith(prefix) and predicate(r.body)
            ]

    def wait_for(
        self,
        prefix: str,
        predicate: Callable[[Any], bool],
        timeout: float,
        after: float = -math.inf,
        abort: threading.Event | None = None,
    ) -> ChatRequest | None:
        """Wait up to ``timeout`` seconds (less once ``abort`` is set) for a request as
        :meth:`matching` selects; return the first, or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self.matching(prefix, predicate, after)
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (abort is not None and abort.is_set()):
                    return None
                self._cond.wait(min(remaining, 0.5))
