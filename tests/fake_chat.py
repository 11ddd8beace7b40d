"""A local stand-in for Slack and Discord incoming webhooks, for end-to-end tests.

Answers like the platforms do on success: Slack ``200 ok`` (text/plain), Discord ``204``.
Every request is recorded with its path, headers and parsed JSON body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ChatRequest:
    """One recorded webhook call."""

    path: str
    headers: dict[str, str]
    body: Any


class FakeChat:
    """Serves ``/slack/...`` and ``/discord/...`` on loopback and records every POST."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with recorder._lock:
                    recorder.requests.append(ChatRequest(self.path, dict(self.headers), body))
                if self.path.startswith("/discord"):
                    self.send_response(204)
                    self.end_headers()
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

    def matching(self, prefix: str, predicate: Callable[[Any], bool]) -> list[ChatRequest]:
        """Recorded requests under ``prefix`` whose body satisfies ``predicate``."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix) and predicate(r.body)]

    def wait_for(
        self, prefix: str, predicate: Callable[[Any], bool], timeout: float
    ) -> ChatRequest | None:
        """Wait up to ``timeout`` seconds for a matching request; return it or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(prefix, predicate)
            if found:
                return found[0]
            time.sleep(0.2)
        return None
