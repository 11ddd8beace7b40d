"""The exporter's HTTP endpoints, served from a thread beside the probe loop.

- ``GET /metrics``: Prometheus text format.
- ``GET /status``: JSON per exchange and endpoint (see :meth:`ExporterRuntime.status`).
- ``GET /healthz``: ``{"status": "ok"}`` while the probe loop runs.
- ``POST /-/reload``: re-read the config file (as SIGHUP does); 200 with counts, or 400 with
  the config errors while the old config keeps running.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from exporter.runtime import ExporterRuntime

log = logging.getLogger(__name__)


def make_server(host: str, port: int, runtime: ExporterRuntime) -> ThreadingHTTPServer:
    """Bind the HTTP server (not yet serving).

    Raises:
        OSError: the address cannot be bound.
    """

    class Handler(BaseHTTPRequestHandler):
        server_version = "exchange-exporter"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, runtime.metrics.render(), CONTENT_TYPE_LATEST)
            elif path == "/status":
                self._json(200, runtime.call(runtime.status))
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/":
                links = "".join(
                    f'<li><a href="{p}">{p}</a></li>' for p in ("/metrics", "/status", "/healthz")
                )
                page = f"<html><body><h1>exchange-exporter</h1><ul>{links}</ul></body></html>"
                self._send(200, page.encode(), "text/html; charset=utf-8")
            else:
                self._json(404, {"error": f"no such path: {path[:100]}"})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/-/reload":
                self._json(404, {"error": "only POST /-/reload is supported"})
                return
            result = runtime.call(runtime.reload)
            self._json(200 if result["status"] == "ok" else 400, result)

        def _json(self, status: int, document: Any) -> None:
            body = json.dumps(document, indent=1).encode()
            self._send(status, body, "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Start ``server.serve_forever`` in a daemon thread."""
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread
