"""Late-diagnosis updates per platform (``Notifier.send_update``), against respx-mocked APIs:
Discord executes with ``?wait=true`` and edits with ``PATCH …/messages/{id}``, Telegram edits
with ``editMessageText``, Slack replies in the thread with a bot token and follows up through the
webhook without one, JSONL appends an ``update`` record, LINE and the webhook follow up,
PagerDuty sends nothing. The LLM's text is escaped and capped as in first messages, and no
secret reaches an update's body or the logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import respx
from pydantic import SecretStr

from receiver.logs import install_redaction
from receiver.notifiers.base import Notification, SentMessage
from receiver.notifiers.discord import DiscordNotifier
from receiver.notifiers.jsonl import JsonlNotifier
from receiver.notifiers.line import LineNotifier, retry_key
from receiver.notifiers.options import ParseContext
from receiver.notifiers.pagerduty import PagerDutyNotifier
from receiver.notifiers.slack import SlackNotifier
from receiver.notifiers.telegram import TelegramNotifier
from receiver.notifiers.webhook import WebhookNotifier
from receiver.routing import RoutingError, parse_routing
from receiver.text import utf16_len
from tests.receiver.notifiers.test_render import HOSTILE, HUGE, diagnosis, notification

T = TypeVar("T")

DISCORD_HOOK = "https://discord.test/api/webhooks/111/discordHOOKsecret"
TG_TOKEN = "123456789:AAHsecretTelegramTokenValue_abc-XYZ"
SLACK_HOOK = "https://hooks.slack.test/services/T1/B1/slackHOOKsecret"
SLACK_BOT = "xoxb-1-slackBOTsecret"
SLACK_API = "https://slack.test/api"
LINE_TOKEN = "lineSecretChannelAccessToken/abc+def="
LINE_TO = "U" + "0123456789abcdef" * 2
LINE_URL = "https://api.line.me/v2/bot/message/push"
HOOK_URL = "https://hooks.example.test/in/hookSECRETpath"
SECRETS = (DISCORD_HOOK, "discordHOOKsecret", TG_TOKEN, SLACK_HOOK, SLACK_BOT, LINE_TOKEN, HOOK_URL)
SENT = SentMessage(1_795_000_000.0, {})
LLM = "The LLM says: Binance matching engine is degraded."


def late(**overrides: Any) -> Notification:
    """The notification as first sent, now carrying the LLM's diagnosis."""
    return notification(diagnosis=diagnosis(source="llm", diagnosis=LLM), **overrides)


def hostile_late() -> Notification:
    d = diagnosis(source="llm", diagnosis=HOSTILE + HUGE, impact=HUGE)
    return notification(diagnosis=d, labels={"alertname": "Api<b>Down</b>", "exchange": "@here"})


def run(make: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx.AsyncClient() as client:
            return await make(client)

    return asyncio.run(main())


def assert_no_live_mentions(text: str) -> None:
    assert "@everyone" not in text and "@here" not in text
    assert "<!channel>" not in text and "<!here>" not in text and "<@U0123>" not in text


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# --- Discord ----------------------------------------------------------------------------------


def test_discord_waits_for_the_message_then_edits_it() -> None:
    with respx.mock() as mock:
        create = mock.post(DISCORD_HOOK, params={"wait": "true"}).mock(
            return_value=httpx.Response(200, json={"id": "1234567890123", "channel_id": "9"})
        )
        edit = mock.patch(f"{DISCORD_HOOK}/messages/1234567890123").mock(
            return_value=httpx.Response(200, json={"id": "1234567890123"})
        )

        async def scenario(client: httpx.AsyncClient) -> tuple[Any, Any]:
            discord = DiscordNotifier(SecretStr(DISCORD_HOOK), client)
            ids = await discord.send(notification())
            kind = await discord.send_update(late(), SentMessage(1.0, ids or {}))
            return ids, kind

        ids, kind = run(scenario)
    assert ids == {"message_id": "1234567890123"} and kind == "edited"
    assert create.calls.last.request.url.params["wait"] == "true"
    body = json.loads(edit.calls.last.request.content)
    embed = body["embeds"][0]
    assert LLM in embed["description"] and body["allowed_mentions"] == {"parse": []}
    assert any(f["value"].endswith("(llm)") for f in embed["fields"])


def test_discord_keeps_the_thread_and_follows_up_without_an_id() -> None:
    hook = f"{DISCORD_HOOK}?thread_id=777"
    with respx.mock() as mock:
        edit = mock.patch(f"{DISCORD_HOOK}/messages/42", params={"thread_id": "777"}).mock(
            return_value=httpx.Response(200, json={})
        )
        post = mock.post(DISCORD_HOOK, params={"thread_id": "777"}).mock(
            return_value=httpx.Response(204)
        )

        async def scenario(client: httpx.AsyncClient) -> list[Any]:
            discord = DiscordNotifier(SecretStr(hook), client)
            first = await discord.send(notification())  # 204: no message object, no id
            edited = await discord.send_update(late(), SentMessage(1.0, {"message_id": "42"}))
            followed = await discord.send_update(hostile_late(), SENT)
            bad = await discord.send_update(late(), SentMessage(1.0, {"message_id": "../x"}))
            return [first, edited, followed, bad]

        first, edited, followed, bad = run(scenario)
    assert (first, edited, followed, bad) == (None, "edited", "follow_up", "follow_up")
    assert edit.calls.last.request.url.params["thread_id"] == "777"
    assert post.calls[0].request.url.params["wait"] == "true"  # the page
    body = json.loads(post.calls[1].request.content)  # the follow-up
    assert body["content"].startswith("**🔄 Update: diagnosis · Api")
    assert len(body["content"]) <= 2000 and body["allowed_mentions"] == {"parse": []}
    assert "the page sent 2026-11-18" in body["content"]  # names when the first went out
    assert_no_live_mentions(body["content"])


# --- Telegram ---------------------------------------------------------------------------------


def test_telegram_keeps_the_message_id_and_edits_with_edit_message_text() -> None:
    base = f"https://api.telegram.org/bot{TG_TOKEN}"
    with respx.mock() as mock:
        mock.post(f"{base}/sendMessage").mock(
            return_value=httpx.Response(
                200, json={"ok": True, "result": {"message_id": 77, "chat": {"id": -1001234}}}
            )
        )
        edit = mock.post(f"{base}/editMessageText").mock(
            return_value=httpx.Response(200, json={"ok": True, "result": {"message_id": 77}})
        )

        async def scenario(client: httpx.AsyncClient) -> tuple[Any, Any, Any]:
            tg = TelegramNotifier(SecretStr(TG_TOKEN), "-1001234", client, name="tg")
            ids = await tg.send(notification())
            kind = await tg.send_update(hostile_late(), SentMessage(1.0, ids or {}))
            edit.mock(
                return_value=httpx.Response(
                    400,
                    json={"ok": False, "description": "Bad Request: message is not modified"},
                )
            )
            again = await tg.send_update(late(), SentMessage(1.0, ids or {}))
            return ids, kind, again

        ids, kind, again = run(scenario)
    assert ids == {"chat_id": -1001234, "message_id": 77}
    assert kind == again == "edited"
    body = json.loads(edit.calls[0].request.content)
    assert body["chat_id"] == -1001234 and body["message_id"] == 77
    assert body["parse_mode"] == "HTML" and utf16_len(body["text"]) <= 4096
    assert "&lt;b&gt;" in body["text"] and "Diagnosis (llm)" in body["text"]
    assert_no_live_mentions(body["text"])


def test_telegram_follows_up_without_a_message_id() -> None:
    with respx.mock() as mock:
        send = mock.post(f"https://api.telegram.org/bot{TG_TOKEN}/sendMessage").mock(
            return_value=httpx.Response(200, json={"ok": True, "result": {}})
        )

        async def scenario(client: httpx.AsyncClient) -> Any:
            tg = TelegramNotifier(SecretStr(TG_TOKEN), "@ops_channel", client)
            return await tg.send_update(late(), SentMessage())

        assert run(scenario) == "follow_up"
    body = json.loads(send.calls.last.request.content)
    assert body["chat_id"] == "@ops_channel"
    assert body["text"].startswith("<b>🔄 Update: diagnosis · ExchangeApiDown · binance</b>")
    assert "the page already sent" in body["text"] and LLM in body["text"]


# --- Slack ------------------------------------------------------------------------------------


def _bot(client: httpx.AsyncClient) -> SlackNotifier:
    return SlackNotifier(
        SecretStr(SLACK_HOOK),
        client,
        bot_token=SecretStr(SLACK_BOT),
        slack_channel="#desk",
        api_url=SLACK_API,
    )


def test_slack_with_a_bot_token_posts_and_replies_in_the_thread() -> None:
    with respx.mock() as mock:
        post = mock.post(f"{SLACK_API}/chat.postMessage").mock(
            return_value=httpx.Response(
                200, json={"ok": True, "channel": "C0DESK", "ts": "1795000000.000100"}
            )
        )

        async def scenario(client: httpx.AsyncClient) -> tuple[Any, Any]:
            slack = _bot(client)
            ids = await slack.send(notification())
            return ids, await slack.send_update(hostile_late(), SentMessage(1.0, ids or {}))

        ids, kind = run(scenario)
    assert ids == {"channel": "C0DESK", "ts": "1795000000.000100"} and kind == "replied"
    first, reply = (json.loads(c.request.content) for c in post.calls)
    assert first["channel"] == "#desk" and "blocks" in first and "thread_ts" not in first
    assert reply["channel"] == "C0DESK" and reply["thread_ts"] == "1795000000.000100"
    assert post.calls.last.request.headers["Authorization"] == f"Bearer {SLACK_BOT}"
    assert reply["text"].startswith("*🔄 Update: diagnosis · Api&lt;b&gt;Down&lt;/b&gt;")
    assert len(reply["text"]) <= 3000 and "<!here>" not in reply["text"]
    assert_no_secret(json.dumps(first), json.dumps(reply))


def test_slack_web_api_errors_are_typed() -> None:
    from receiver.notifiers.base import NotifyError, PermanentNotifyError, RateLimitedError

    answers = [
        (
            httpx.Response(200, json={"ok": False, "error": "channel_not_found"}),
            PermanentNotifyError,
        ),
        (httpx.Response(200, json={"ok": False, "error": "internal_error"}), NotifyError),
        (httpx.Response(429, headers={"Retry-After": "3"}), RateLimitedError),
    ]
    for answer, error in answers:
        with respx.mock() as mock:
            mock.post(f"{SLACK_API}/chat.postMessage").mock(return_value=answer)

            async def scenario(client: httpx.AsyncClient) -> None:
                await _bot(client).send(notification())

            with pytest.raises(error) as caught:
                run(scenario)
            assert_no_secret(str(caught.value))


def test_slack_webhook_only_follows_up_naming_the_first() -> None:
    with respx.mock() as mock:
        hook = mock.post(SLACK_HOOK).mock(return_value=httpx.Response(200, text="ok"))

        async def scenario(client: httpx.AsyncClient) -> tuple[Any, Any]:
            slack = SlackNotifier(SecretStr(SLACK_HOOK), client)
            return await slack.send(notification()), await slack.send_update(late(), SENT)

        ids, kind = run(scenario)
    assert ids is None and kind == "follow_up"
    body = json.loads(hook.calls.last.request.content)
    assert set(body) == {"text"}
    text = body["text"]
    assert text.startswith("*🔄 Update: diagnosis · ExchangeApiDown · binance*")
    assert "for the page sent 2026-11-18 " in text and "firing since 2026-11-21" in text
    assert LLM in text


def test_slack_routing_entry_with_a_bot_token(tmp_path: Path) -> None:
    env = {"HOOK": SLACK_HOOK, "BOT": SLACK_BOT}
    data = {
        "notifiers": {
            "desk": {"type": "slack", "webhook_url_env": "HOOK", "bot_token_env": "BOT",
                     "channel": "C0DESK"},
        },
    }  # fmt: skip
    config = parse_routing(data, environ=env)
    cfg = config.notifiers["desk"]
    assert cfg.secret_headers["bot_token"].get_secret_value() == SLACK_BOT
    assert SLACK_BOT in config.secret_values()  # redacted from logs
    notifier = run(lambda client: _built(cfg, client))
    assert notifier.threads and notifier.slack_channel == "C0DESK"
    ctx = ParseContext("routing.yml", env, tmp_path)
    SlackNotifier.parse_extra({"type": "slack", "bot_token_env": "BOT"}, "notifiers.x", ctx)
    SlackNotifier.parse_extra({"type": "slack", "channel": "C1"}, "notifiers.y", ctx)
    SlackNotifier.parse_extra({"type": "slack", "bot_token": SLACK_BOT}, "notifiers.z", ctx)
    assert ctx.lines[0] == "routing.yml: notifiers.x.channel: missing: a bot token needs the" \
        " channel to post in"  # fmt: skip
    assert "notifiers.y.channel: needs bot_token_env or bot_token_file" in ctx.lines[1]
    assert "must not be written in the routing file" in ctx.lines[2]
    assert_no_secret(*ctx.lines)


def test_slack_routing_entry_with_a_bot_token_needs_no_webhook(tmp_path: Path) -> None:
    env = {"BOT": SLACK_BOT}
    data = {"notifiers": {"desk": {"type": "slack", "bot_token_env": "BOT", "channel": "C0DESK"}}}
    cfg = parse_routing(data, environ=env).notifiers["desk"]
    assert "webhook_url" not in cfg.secrets
    with respx.mock(assert_all_called=True) as mock:
        post = mock.post(f"{SLACK_API}/chat.postMessage").mock(
            return_value=httpx.Response(200, json={"ok": True, "channel": "C0DESK", "ts": "1.2"})
        )

        async def send(client: httpx.AsyncClient) -> Any:
            slack = SlackNotifier.from_config(cfg, client)
            slack._api_url = SLACK_API
            return slack.threads, await slack.send(notification())

        threads, ids = run(send)
    assert threads and ids == {"channel": "C0DESK", "ts": "1.2"}
    assert post.calls.last.request.headers["Authorization"] == f"Bearer {SLACK_BOT}"
    # Neither a webhook nor a bot token: the webhook is what is missing.
    with pytest.raises(RoutingError) as err:
        parse_routing({"notifiers": {"desk": {"type": "slack", "channel": "C0DESK"}}}, environ=env)
    assert "notifiers.desk" in str(err.value) and "webhook_url" in str(err.value)
    with pytest.raises(ValueError, match="needs webhook_url, or bot_token and channel"):
        SlackNotifier(None, httpx.AsyncClient())


async def _built(cfg: Any, client: httpx.AsyncClient) -> SlackNotifier:
    return SlackNotifier.from_config(cfg, client)


# --- JSONL, LINE, webhook, PagerDuty ------------------------------------------------------------


def test_jsonl_appends_an_update_record(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    jsonl = JsonlNotifier(path)

    async def scenario() -> tuple[Any, bool]:
        await jsonl.send(notification(id=5))
        kind = await jsonl.send_update(late(id=5), SentMessage(1_795_000_000.5, {}))
        return kind, await jsonl.delivered_before(notification(id=5))

    kind, before = asyncio.run(scenario())
    first, update = (json.loads(line) for line in path.read_text().splitlines())
    assert kind == "recorded" and before
    assert "kind" not in first
    assert update["kind"] == "update" and update["notification_id"] == 5
    assert update["first_notified_at"] == "2026-11-18T11:06:40.500Z"
    assert update["diagnosis"]["source"] == "llm" and update["diagnosis"]["diagnosis"] == LLM
    assert update["alertname"] == "ExchangeApiDown" and update["status"] == "firing"


def test_line_and_webhook_follow_up_with_their_own_keys() -> None:
    with respx.mock() as mock:
        line_route = mock.post(LINE_URL).mock(return_value=httpx.Response(200, json={}))
        hook_route = mock.post(HOOK_URL).mock(return_value=httpx.Response(204))

        async def scenario(client: httpx.AsyncClient) -> list[Any]:
            line = LineNotifier(SecretStr(LINE_TOKEN), LINE_TO, client, name="line-ops")
            hook = WebhookNotifier(SecretStr(HOOK_URL), client, name="hooks")
            return [await line.send_update(late(), SENT), await hook.send_update(late(), SENT)]

        assert run(scenario) == ["follow_up", "follow_up"]
    line_request = line_route.calls.last.request
    text = json.loads(line_request.content)["messages"][0]["text"]
    assert text.startswith("🔄 Update: diagnosis · ExchangeApiDown") and LLM in text
    assert line_request.headers["X-Line-Retry-Key"] != retry_key(late(), notifier="line-ops",
                                                                  to=LINE_TO)  # fmt: skip
    doc = json.loads(hook_route.calls.last.request.content)
    assert doc["kind"] == "update" and doc["diagnosis"]["diagnosis"] == LLM
    assert doc["updates"] == {
        "idempotency_key": late().delivery_key,
        "sent_at": "2026-11-18T11:06:40.000Z",
    }
    assert hook_route.calls.last.request.headers["Idempotency-Key"] == doc["idempotency_key"]
    assert doc["idempotency_key"] != late().delivery_key
    assert_no_secret(json.dumps(doc), text)


def test_pagerduty_sends_nothing() -> None:
    with respx.mock() as mock:  # any request would fail: none is mocked

        async def scenario(client: httpx.AsyncClient) -> Any:
            pd = PagerDutyNotifier(SecretStr("R0UT1NGKEYsecret0123456789abcdef"), client)
            return await pd.send_update(late(), SENT)

        assert run(scenario) == "unsupported"
        assert not mock.calls


def test_no_secret_in_update_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    install_redaction([DISCORD_HOOK, SLACK_BOT, TG_TOKEN])
    with respx.mock() as mock:
        mock.patch(f"{DISCORD_HOOK}/messages/5").mock(
            return_value=httpx.Response(404, text=f"unknown message at {DISCORD_HOOK}")
        )

        async def scenario(client: httpx.AsyncClient) -> None:
            discord = DiscordNotifier(SecretStr(DISCORD_HOOK), client)
            await discord.send_update(late(), SentMessage(1.0, {"message_id": "5"}))

        from receiver.notifiers.base import PermanentNotifyError

        with pytest.raises(PermanentNotifyError) as caught:
            run(scenario)
    assert "HTTP 404" in str(caught.value)
    assert_no_secret(str(caught.value), caplog.text)
    assert "PATCH" in caplog.text  # httpx logged the request, URL redacted
