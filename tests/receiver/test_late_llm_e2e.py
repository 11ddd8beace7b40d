"""End to end with a hung LLM: the real receiver app, a local OpenAI-compatible server that
answers only when released, and a local Discord webhook server. The critical page goes out first
(with the rules' diagnosis, ``LLM_CRITICAL_BUDGET_SECONDS=0.2``), the LLM's diagnosis follows as
an edit of the same Discord message, and as an ``update`` record in the JSONL file."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from receiver.app import create_app
from tests.receiver.test_receiver_app import (
    VALID_LLM_OUTPUT,
    exchange_payload,
    make_settings,
    read_lines,
    wait_for,
)

pytestmark = pytest.mark.e2e

DISCORD_TOKEN = "discordE2Esecret-token"
MESSAGE_ID = "1122334455667788"


class _Servers:
    """The fake LLM and Discord servers, on loopback ports, each in a thread."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.llm_asked = threading.Event()
        self.discord: list[tuple[str, str, dict[str, Any]]] = []
        servers = self

        class Llm(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                servers.llm_asked.set()
                servers.release.wait(30)  # hung until the test releases it
                content = json.dumps(VALID_LLM_OUTPUT)
                body = {"choices": [{"message": {"role": "assistant", "content": content}}]}
                self._answer(200, body)

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Discord(Llm):
            def _record(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                servers.discord.append((self.command, self.path, json.loads(raw)))
                self._answer(200, {"id": MESSAGE_ID, "channel_id": "1"})

            do_POST = _record  # noqa: N815
            do_PATCH = _record  # noqa: N815

        self.llm = ThreadingHTTPServer(("127.0.0.1", 0), Llm)
        self.hook = ThreadingHTTPServer(("127.0.0.1", 0), Discord)
        self.threads = [
            threading.Thread(target=s.serve_forever, daemon=True) for s in (self.llm, self.hook)
        ]
        for thread in self.threads:
            thread.start()

    def url(self, server: ThreadingHTTPServer, path: str) -> str:
        return f"http://127.0.0.1:{server.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        for server in (self.llm, self.hook):
            server.shutdown()
            server.server_close()


@pytest.fixture
def servers() -> Iterator[_Servers]:
    s = _Servers()
    try:
        yield s
    finally:
        s.close()


def test_a_hung_llm_does_not_hold_the_page_and_its_diagnosis_edits_it(
    tmp_path: Path, servers: _Servers
) -> None:
    settings = make_settings(
        tmp_path,
        llm_base_url=servers.url(servers.llm, "/v1"),
        llm_model="test-model",
        llm_critical_budget_seconds=0.2,
        discord_webhook_url=servers.url(servers.hook, f"/api/webhooks/1/{DISCORD_TOKEN}"),
    )
    notify_file = settings.notify_file
    assert notify_file is not None
    llm_text = str(VALID_LLM_OUTPUT["diagnosis"])
    with TestClient(create_app(settings)) as client:
        assert client.post("/alerts/critical", json=exchange_payload()).status_code == 200
        wait_for(lambda: len(servers.discord) == 1, timeout=10)
        assert servers.llm_asked.is_set() and not servers.release.is_set()  # still hung
        method, path, page = servers.discord[0]
        assert method == "POST" and path.endswith("?wait=true")
        assert llm_text not in json.dumps(page)
        (first,) = read_lines(notify_file)
        assert first["diagnosis"]["source"] == "rules"

        servers.release.set()
        wait_for(lambda: len(servers.discord) == 2, timeout=10)
        wait_for(lambda: len(read_lines(notify_file)) == 2, timeout=10)
    method, path, edit = servers.discord[1]
    assert method == "PATCH" and path == f"/api/webhooks/1/{DISCORD_TOKEN}/messages/{MESSAGE_ID}"
    assert llm_text in edit["embeds"][0]["description"]
    update = read_lines(notify_file)[1]
    assert update["kind"] == "update" and update["diagnosis"]["source"] == "llm"
    assert DISCORD_TOKEN not in json.dumps(update)
