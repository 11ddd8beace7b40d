"""A local stand-in for an OpenAI-compatible chat-completions server, for end-to-end tests.

``POST /v1/chat/completions`` answers like the OpenAI API (``choices[0].message.content`` holding
a valid diagnosis JSON object, plus a ``usage`` block); every request is recorded with its path,
headers and parsed JSON body. Point the receiver at it with ``LLM_BASE_URL=<fake.url>`` and
``LLM_MODEL=<fake.model>``; after :meth:`FakeLLM.stop` connections are refused and the receiver
falls back to rules.

Usage::

    with FakeLLM() as llm:                       # or FakeLLM().start() ... llm.stop()
        env = {"LLM_BASE_URL": llm.url, "LLM_MODEL": llm.model, "LLM_API_KEY": "sk-test"}
        ...
        assert llm.requests[-1].body["response_format"] == {"type": "json_object"}
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The diagnosis the fake returns; ``{alertname}`` is filled from the prompt.
DEFAULT_DIAGNOSIS: dict[str, Any] = {
    "diagnosis": "Fake LLM diagnosis of {alertname}: the exchange API is failing.",
    "impact": "Orders on the exchange may fail; execution status of failed requests unknown.",
    "action_items": [
        "Pause order placement on the exchange.",
        "Reconcile open orders through a second path before resubmitting.",
    ],
    "rollback_plan": "Re-enable strategies gradually once probes succeed.",
    "estimated_recovery_time": "5-30 minutes",
    "root_cause_category": "outage",
    "confidence": 0.8,
}

_ALERTNAME = re.compile(r"Alert name: ([^\s.]+)")


@dataclass(frozen=True)
class LLMRequest:
    """One recorded request."""

    path: str
    headers: dict[str, str]
    body: Any


class FakeLLM:
    """Threaded HTTP server on loopback answering ``/v1/chat/completions``.

    Args:
        model: model name echoed in replies (use it as ``LLM_MODEL``).
        diagnosis: the JSON object to return (``{alertname}`` in string values is filled).
        usage: ``(prompt_tokens, completion_tokens)`` reported in every reply.
        delay: seconds to wait before answering (to test timeouts).
        models_delay: seconds to wait before answering ``GET /v1/models`` (the reachability
            probe; a hung server: as long as ``delay``; a slow model behind a live API: 0).
        reject_response_format: answer 400 to requests carrying ``response_format``.
        port: the loopback port to bind (0: any free one; a stopped fake's port to stand in
            for it).
    """

    def __init__(
        self,
        *,
        model: str = "fake-model",
        diagnosis: dict[str, Any] | None = None,
        usage: tuple[int, int] = (120, 80),
        delay: float = 0.0,
        models_delay: float = 0.0,
        reject_response_format: bool = False,
        port: int = 0,
    ) -> None:
        self.model = model
        self.diagnosis = dict(diagnosis or DEFAULT_DIAGNOSIS)
        self.usage = usage
        self.delay = delay
        self.models_delay = models_delay
        self.reject_response_format = reject_response_format
        self.requests: list[LLMRequest] = []
        self._lock = threading.Lock()
        self._started = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with fake._lock:
                    fake.requests.append(LLMRequest(self.path, dict(self.headers), body))
                if fake.delay:
                    time.sleep(fake.delay)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                if not isinstance(body, dict):
                    self._send(400, {"error": {"message": "body must be JSON"}})
                    return
                if fake.reject_response_format and "response_format" in body:
                    self._send(
                        400,
                        {
                            "error": {
                                "message": "response_format is not supported by this model",
                                "type": "invalid_request_error",
                                "param": "response_format",
                            }
                        },
                    )
                    return
                self._send(200, fake.reply_for(body))

            def do_GET(self) -> None:
                # "List models" (https://platform.openai.com/docs/api-reference/models/list).
                with fake._lock:
                    fake.requests.append(LLMRequest(self.path, dict(self.headers), None))
                if fake.models_delay:
                    time.sleep(fake.models_delay)
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                model = {"id": fake.model, "object": "model", "created": 0, "owned_by": "fake"}
                self._send(200, {"object": "list", "data": [model]})

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL for ``LLM_BASE_URL``: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reply_for(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat-completion response for a request ``body``."""
        messages = body.get("messages") or []
        prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        match = _ALERTNAME.search(prompt)
        alertname = match.group(1) if match else "the alert"
        content = {
            k: v.replace("{alertname}", alertname) if isinstance(v, str) else v
            for k, v in self.diagnosis.items()
        }
        prompt_tokens, completion_tokens = self.usage
        return {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(content)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @property
    def port(self) -> int:
        """The bound loopback port."""
        return int(self._server.server_address[1])

    @property
    def running(self) -> bool:
        """Whether it is serving (started and not stopped)."""
        return self._started

    def start(self) -> FakeLLM:
        """Start serving in a background thread."""
        self._thread.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (later connections are refused)."""
        if self._started:
            self._server.shutdown()
            self._started = False
        self._server.server_close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def chat_requests(self) -> list[LLMRequest]:
        """Recorded ``/v1/chat/completions`` requests."""
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/") == "/v1/chat/completions"]


@contextlib.contextmanager
def answering_late(fake_llm: FakeLLM, delay: float) -> Iterator[FakeLLM]:
    """The session's LLM stand-in answering only after ``delay`` seconds (set it above the
    receiver's ``LLM_TIMEOUT_SECONDS``: the receiver asks, gives up and diagnoses with its rule
    engine, and the prompt is recorded), or, when an earlier test stopped it, a new one on its
    port doing the same. Yields the stand-in that records this block's prompts."""
    if fake_llm.running:
        before = fake_llm.delay
        fake_llm.delay = delay
        try:
            yield fake_llm
        finally:
            fake_llm.delay = before
    else:
        with FakeLLM(port=fake_llm.port, delay=delay) as stand_in:
            yield stand_in
