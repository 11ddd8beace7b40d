"""A local Slack incoming-webhook stand-in that can answer slowly or with scripted errors.

Used by the crash test (``tests/receiver/store/test_store_crash.py``) and the outage test.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeSlack:
    """A local Slack incoming-webhook stand-in.

    Each POST is recorded on arrival, then answered after ``delay`` seconds with the status the
    current ``script`` gives (``200 ok`` once the script is used up).

    Args:
        delay: seconds before answering.
        script: ``[(status, headers), ...]`` answered to the first requests, in order.
    """

    def __init__(self, delay: float = 0.0, script: list[tuple[int, dict[str, str]]] | None = None):
        self.delay = delay
        self.script = list(script or [])
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        #: ``(time.monotonic() at arrival, status answered, body)`` of every request.
        self.log: list[tuple[float, int, dict[str, Any]]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.monotonic()
                with fake.lock:
                    status, headers = fake.script.pop(0) if fake.script else (200, {})
                    body_json = json.loads(raw)
                    if status == 200:
                        fake.received.append(body_json)
                    fake.answers.append(status)
                    fake.log.append((arrived, status, body_json))
                if fake.delay:
                    time.sleep(fake.delay)
                body = b"ok" if status == 200 else b"error"
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the receiver died while we were answering

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/fake"

    def __enter__(self) -> FakeSlack:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def texts(self) -> list[str]:
        with self.lock:
            return [str(body.get("text", "")) for body in self.received]
