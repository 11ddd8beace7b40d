"""The fake chat answers Discord and Slack webhooks as the platforms document (Discord API
reference, "Webhook Resource": Execute Webhook returns 204, or the message object with
``?wait=true``; Edit Webhook Message returns the message object). It serves on loopback in a
thread of this process, so these tests start no process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from testsupport.fake_chat import FakeChat


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    server = FakeChat().start()
    try:
        yield server
    finally:
        server.stop()


def test_discord_execute_without_wait_answers_204(chat: FakeChat) -> None:
    response = httpx.post(f"{chat.url}/discord/123/tok", json={"content": "hi"})
    assert response.status_code == 204
    assert response.content == b""


def test_discord_execute_with_wait_answers_the_message_and_edit_keeps_its_id(
    chat: FakeChat,
) -> None:
    body = {"content": "down", "embeds": [{"title": "ExchangeApiDown"}]}
    first = httpx.post(f"{chat.url}/discord/123/tok?wait=true", json=body)
    assert first.status_code == 200
    message = first.json()
    assert message["id"].isdigit() and len(message["id"]) >= 17
    assert message["embeds"] == body["embeds"] and message["webhook_id"] == "123"
    second = httpx.post(f"{chat.url}/discord/123/tok?wait=true", json=body).json()
    assert second["id"] != message["id"]

    edited = httpx.patch(
        f"{chat.url}/discord/123/tok/messages/{message['id']}", json={"content": "diagnosis"}
    )
    assert edited.status_code == 200
    assert edited.json()["id"] == message["id"] and edited.json()["content"] == "diagnosis"
    paths = [r.path for r in chat.requests]
    assert paths[-1] == f"/discord/123/tok/messages/{message['id']}"
    assert paths[0] == "/discord/123/tok?wait=true"


def test_slack_answers_ok(chat: FakeChat) -> None:
    response = httpx.post(f"{chat.url}/slack/T/B/X", json={"text": "hi"})
    assert response.status_code == 200 and response.text == "ok"
