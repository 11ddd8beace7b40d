"""Notifier tests: Telegram, PagerDuty, LINE, generic webhook, Apprise, the shared text layout,
resolved durations on every notifier, error mapping and per-notifier metrics.

Every HTTP platform is mocked with respx (documented request shapes and answers); Apprise runs
through a custom URL scheme registered with ``apprise.decorators.notify``. No network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import apprise
import httpx
import pytest
import respx
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from receiver.notifiers.apprise_urls import (
    AppriseNotifier,
    AppriseUrlError,
    render_apprise,
)
from receiver.notifiers.base import (
    Notification,
    Notifier,
    NotifyError,
    PermanentNotifyError,
    RateLimitedError,
    parse_retry_after_header,
)
from receiver.notifiers.common import Style, allocate, compose
from receiver.notifiers.discord import DiscordNotifier, render_discord
from receiver.notifiers.jsonl import JsonlNotifier, render_jsonl
from receiver.notifiers.line import LineNotifier, render_line, retry_key
from receiver.notifiers.metrics import NotifierMetrics
from receiver.notifiers.pagerduty import (
    PagerDutyNotifier,
    dedup_key,
    pagerduty_severity,
    render_pagerduty,
)
from receiver.notifiers.slack import SlackNotifier, render_slack
from receiver.notifiers.telegram import TelegramNotifier, render_telegram
from receiver.notifiers.webhook import WebhookNotifier, render_webhook
from receiver.text import ZWSP, format_duration, neutralise_text, telegram_html, utf16_len
from tests.receiver.notifiers.test_render import notification

TG_TOKEN = "123456789:AAHsecretTelegramTokenValue_abc-XYZ"
TG_URL = f"https://api.telegram.org/bot{TG_TOKEN}/sendMessage"
PD_KEY = "R0UT1NGKEYsecret0123456789abcdef"
PD_URL = "https://events.pagerduty.com/v2/enqueue"
LINE_TOKEN = "lineSecretChannelAccessToken/abc+def="
LINE_URL = "https://api.line.me/v2/bot/message/push"
LINE_TO = "U" + "0123456789abcdef" * 2
HOOK_URL = "https://hooks.example.test/in/secret-path-123"
SLACK_URL = "https://hooks.slack.test/services/T1/B1/secret"
DISCORD_URL = "https://discord.test/api/webhooks/1/secret"

HOSTILE = (
    '<!channel> <!here> @everyone @here <@U0123> <b>bold</b> <a href="tg://user?id=1">x</a> '
    "_*[]()~`\\ & > "
)
HUGE = HOSTILE + "lorem ipsum " * 1700  # > 20,000 characters
assert len(HUGE) > 20_000

STARTS = "2026-11-21T07:22:00.568Z"
ENDS = "2026-11-21T07:26:12.568Z"  # 4 min 12 s later


def firing(**overrides: Any) -> Notification:
    return notification(**({"starts_at": STARTS} | overrides))


def resolved(**overrides: Any) -> Notification:
    values = {"status": "resolved", "starts_at": STARTS, "ends_at": ENDS} | overrides
    return notification(**values)


def hostile(status: str = "firing") -> Notification:
    annotations = {
        "summary": HOSTILE,
        "description": HUGE,
        "runbook_url": "https://runbooks.local/x",
    }
    labels = {"alertname": "Api<b>Down</b>", "exchange": "@everyone", "severity": "critical"}
    if status == "firing":
        return firing(annotations=annotations, labels=labels)
    return resolved(annotations=annotations, labels=labels)


async def _send(make: Callable[[httpx.AsyncClient], Notifier], n: Notification) -> None:
    async with httpx.AsyncClient() as client:
        await make(client).send(n)


def send(make: Callable[[httpx.AsyncClient], Notifier], n: Notification | None = None) -> None:
    asyncio.run(_send(make, n or firing()))


def telegram(client: httpx.AsyncClient) -> Notifier:
    return TelegramNotifier(SecretStr(TG_TOKEN), "-1001234", client, name="tg-ops")


def pagerduty(client: httpx.AsyncClient) -> Notifier:
    return PagerDutyNotifier(SecretStr(PD_KEY), client, name="pd")


def line(client: httpx.AsyncClient) -> Notifier:
    return LineNotifier(SecretStr(LINE_TOKEN), LINE_TO, client, name="line-ops")


def webhook(client: httpx.AsyncClient) -> Notifier:
    headers = {"X-Team": SecretStr("desk"), "Authorization": SecretStr("Bearer hooksecret")}
    return WebhookNotifier(SecretStr(HOOK_URL), client, name="hooks", headers=headers)


def visible_tags(html: str) -> set[str]:
    return set(re.findall(r"</?([a-zA-Z-]+)", html))


def assert_no_live_mentions(text: str) -> None:
    assert "@everyone" not in text and "@here" not in text
    assert "<!channel>" not in text and "<!here>" not in text and "<@U0123>" not in text


# --- text helpers and the shared layout -------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "under 1 s"),
        (45, "45 s"),
        (252, "4 min 12 s"),
        (240, "4 min"),
        (3600 + 5 * 60 + 3, "1 h 5 min"),
        (3 * 86400 + 3600, "3 d 1 h"),
        (-5, "under 1 s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_duration_of_a_notification() -> None:
    assert firing().duration_seconds is None
    assert resolved().duration_seconds == pytest.approx(252.0)
    assert resolved().duration_text == "4 min 12 s"
    assert resolved(ends_at="2026-11-21T07:00:00Z").duration_seconds == 0.0  # clock skew
    assert notification(status="resolved").duration_seconds is None  # endsAt still zero


def test_delivery_key_is_stable_and_distinguishes_notifications() -> None:
    assert firing().delivery_key == firing().delivery_key
    assert firing().delivery_key != resolved().delivery_key
    assert firing().delivery_key != firing(fingerprint="other").delivery_key
    assert re.fullmatch(r"[0-9a-f]{64}", firing().delivery_key)


def test_retry_after_header_forms() -> None:
    assert parse_retry_after_header("7") == 7.0
    assert parse_retry_after_header("-3") == 0.0
    assert parse_retry_after_header("soon") is None
    assert parse_retry_after_header(None) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after_header(later) or 0) <= 31


def test_neutralise_and_telegram_escape() -> None:
    plain = neutralise_text(HOSTILE + "\x07")
    assert_no_live_mentions(plain)
    assert "\x07" not in plain and f"@{ZWSP}everyone" in plain and f"<{ZWSP}!channel>" in plain
    html = telegram_html(HOSTILE)
    assert "<" not in html and ">" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "&amp;" in html
    assert "_*[]()~`\\" in html  # no meaning in HTML mode: shown as typed
    assert f"@{ZWSP}everyone" in html and "@everyone" not in html


def test_allocate_is_fair_and_bounded() -> None:
    assert allocate([10, 20], 100) == [10, 20]
    assert allocate([10, 500, 500], 310) == [10, 150, 150]
    assert sum(allocate([1000] * 7, 999)) <= 999


@pytest.mark.parametrize("limit", [200, 500, 1000, 4096])
def test_compose_never_exceeds_limit_and_keeps_links(limit: int) -> None:
    style = Style(escape=telegram_html, bold=lambda t: f"<b>{t}</b>", length=utf16_len)
    text = compose(hostile(), style, limit)
    assert utf16_len(text) <= limit
    if limit >= 1000:
        assert "https://runbooks.local/x" in text  # the cut message still links to details
        assert "…" in text


# --- resolved duration on the existing notifiers ----------------------------------------------


def test_slack_resolved_names_the_duration() -> None:
    body = render_slack(resolved())
    context = next(b for b in body["blocks"] if b["type"] == "context")["elements"][0]["text"]
    assert "lasted 4 min 12 s" in context
    fields = [f["text"] for f in next(b for b in body["blocks"] if "fields" in b)["fields"]]
    assert "*Lasted*\n4 min 12 s" in fields
    assert not any("Est. recovery" in f for f in fields)
    assert "lasted 4 min 12 s" in body["text"]
    firing_blocks = render_slack(firing())["blocks"]
    firing_fields = [f["text"] for f in next(b for b in firing_blocks if "fields" in b)["fields"]]
    assert any("Est. recovery" in f for f in firing_fields)


def test_discord_resolved_names_the_duration() -> None:
    embed = render_discord(resolved())["embeds"][0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Lasted"] == "4 min 12 s" and "Est. recovery" not in fields
    assert "Lasted" not in {f["name"] for f in render_discord(firing())["embeds"][0]["fields"]}


def test_jsonl_duration_seconds() -> None:
    assert render_jsonl(firing())["duration_seconds"] is None
    assert render_jsonl(resolved())["duration_seconds"] == pytest.approx(252.0)


def test_jsonl_delivered_before(tmp_path: Path) -> None:
    notifier = JsonlNotifier(tmp_path / "n.jsonl", name="log")

    async def scenario() -> tuple[bool, bool, bool]:
        before = await notifier.delivered_before(firing())
        await notifier.send(firing())
        after = await notifier.delivered_before(firing())
        other = await notifier.delivered_before(resolved())
        return before, after, other

    assert asyncio.run(scenario()) == (False, True, False)
    assert notifier.name == "log" and notifier.channel == "jsonl"


def test_names_default_to_the_channel_and_repr_hides_secrets() -> None:
    async def build() -> list[Notifier]:
        async with httpx.AsyncClient() as client:
            return [
                SlackNotifier(SecretStr(SLACK_URL), client),
                DiscordNotifier(SecretStr(DISCORD_URL), client, name="discord-ops"),
                telegram(client),
                pagerduty(client),
                line(client),
                webhook(client),
            ]

    notifiers = asyncio.run(build())
    assert [n.name for n in notifiers] == [
        "slack",
        "discord-ops",
        "tg-ops",
        "pd",
        "line-ops",
        "hooks",
    ]
    assert [n.channel for n in notifiers] == [
        "slack",
        "discord",
        "telegram",
        "pagerduty",
        "line",
        "webhook",
    ]
    shown = " ".join(repr(n) + str(n) for n in notifiers)
    for secret in ("secret", TG_TOKEN, PD_KEY, LINE_TOKEN, "hooksecret"):
        assert secret not in shown


# --- Telegram ---------------------------------------------------------------------------------


def test_telegram_request_shape() -> None:
    with respx.mock() as mock:
        route = mock.post(TG_URL).mock(
            return_value=httpx.Response(200, json={"ok": True, "result": {"message_id": 1}})
        )
        send(telegram)
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert body["chat_id"] == -1001234
    assert body["parse_mode"] == "HTML"
    assert body["link_preview_options"] == {"is_disabled": True}
    assert body["text"].startswith("<b>🔴 FIRING: ExchangeApiDown · binance</b>\nCritical · firing")
    assert "<blockquote expandable>Firing since 2026-11-21 07:22:00 UTC" in body["text"]
    assert "Binance API is down." in body["text"]
    assert '<a href="https://runbooks.local/api-down?a=1&amp;b=2">Runbook</a>' in body["text"]


def test_telegram_escapes_hostile_text_and_caps_at_4096() -> None:
    for status in ("firing", "resolved"):
        text = render_telegram(hostile(status), "@ops_channel")["text"]
        assert utf16_len(text) <= 4096
        assert visible_tags(text) <= {"b", "a", "blockquote"}  # only the renderer's own tags
        assert text.count("<blockquote expandable>") == text.count("</blockquote>") == 1
        assert "&lt;b&gt;bold&lt;/b&gt;" in text and "tg://" not in text.split("href=")[0]
        assert_no_live_mentions(text)
        assert "…" in text
        assert '<a href="https://runbooks.local/x">Runbook</a>' in text


def test_telegram_counts_utf16_code_units() -> None:
    n = firing(annotations={"summary": "😀" * 5000})
    text = render_telegram(n, "1")["text"]
    assert utf16_len(text) <= 4096 and len(text) < utf16_len(text) - 1000


def test_telegram_resolved_message() -> None:
    text = render_telegram(resolved(), "1")["text"]
    assert text.startswith("<b>✅ RESOLVED: ExchangeApiDown · binance</b>")
    assert "lasted 4 min 12 s" in text and "Recovery check" in text
    assert "FIRING" not in text


def test_telegram_errors() -> None:
    with respx.mock() as mock:
        route = mock.post(TG_URL)
        route.mock(
            return_value=httpx.Response(
                429,
                json={
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 5",
                    "parameters": {"retry_after": 5},
                },
            )
        )
        with pytest.raises(RateLimitedError) as limited:
            send(telegram)
        assert limited.value.retry_after == 5.0
        route.mock(return_value=httpx.Response(502, text="Bad Gateway"))
        with pytest.raises(NotifyError) as server:
            send(telegram)
        assert not isinstance(server.value, PermanentNotifyError)
        route.mock(
            return_value=httpx.Response(
                400,
                json={"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
            )
        )
        with pytest.raises(PermanentNotifyError, match="chat not found"):
            send(telegram)
        route.mock(
            return_value=httpx.Response(
                400,
                json={
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: group chat was upgraded to a supergroup chat",
                    "parameters": {"migrate_to_chat_id": -1009876},
                },
            )
        )
        with pytest.raises(PermanentNotifyError, match="-1009876"):
            send(telegram)
        route.mock(side_effect=httpx.ConnectError(f"cannot connect to {TG_URL}"))
        with pytest.raises(NotifyError) as network:
            send(telegram)
        assert TG_TOKEN not in str(network.value)
        route.mock(return_value=httpx.Response(401, text=f"Unauthorized {TG_TOKEN}"))
        with pytest.raises(PermanentNotifyError) as auth:
            send(telegram)
        assert TG_TOKEN not in str(auth.value) and "<redacted>" in str(auth.value)


def test_telegram_pacing_depends_on_the_chat() -> None:
    client = httpx.AsyncClient()
    assert TelegramNotifier(SecretStr(TG_TOKEN), "12345", client).min_send_interval == 1.0
    assert TelegramNotifier(SecretStr(TG_TOKEN), "-100123", client).min_send_interval == 3.0
    assert TelegramNotifier(SecretStr(TG_TOKEN), "@ops", client).min_send_interval == 3.0
    asyncio.run(client.aclose())


# --- PagerDuty --------------------------------------------------------------------------------


def test_pagerduty_trigger_request_shape() -> None:
    with respx.mock() as mock:
        route = mock.post(PD_URL).mock(
            return_value=httpx.Response(
                202, json={"status": "success", "message": "Event processed", "dedup_key": "x"}
            )
        )
        send(pagerduty)
    request = route.calls.last.request
    assert request.method == "POST" and str(request.url) == PD_URL
    body = json.loads(request.content)
    assert body["routing_key"] == PD_KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == dedup_key(firing())
    payload = body["payload"]
    assert payload["summary"].startswith("FIRING: ExchangeApiDown · binance - binance API down")
    assert payload["severity"] == "critical"
    assert payload["source"] == "binance /api/v3/ping"
    assert payload["timestamp"] == STARTS
    assert payload["custom_details"]["diagnosis"]["diagnosis"] == "Binance API is down."
    assert payload["custom_details"]["labels"]["exchange"] == "binance"
    assert {"href": "https://runbooks.local/api-down?a=1&b=2", "text": "Runbook"} in body["links"]
    assert body["client_url"] == "http://alertmanager.local:9093"


def test_pagerduty_resolve_uses_the_same_dedup_key() -> None:
    trigger = render_pagerduty(firing(), PD_KEY)
    resolve = render_pagerduty(resolved(), PD_KEY)
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert "(lasted 4 min 12 s)" in resolve["payload"]["summary"]
    assert resolve["payload"]["custom_details"]["duration_seconds"] == pytest.approx(252.0)
    assert dedup_key(firing()) != dedup_key(firing(fingerprint="0000000000000002"))
    assert dedup_key(firing()) != dedup_key(firing(group_key="{}:{x}"))


def test_pagerduty_limits_and_hostile_text() -> None:
    n = hostile()
    n = firing(
        group_key="{}:" + "g" * 5000,
        fingerprint="f" * 3000,
        annotations={"summary": HUGE},
        labels=n.labels,
    )
    body = render_pagerduty(n, PD_KEY)
    assert len(body["dedup_key"]) <= 255
    assert len(body["payload"]["summary"]) <= 1024 and body["payload"]["summary"].endswith("…")
    assert_no_live_mentions(body["payload"]["summary"])
    assert len(json.dumps(body)) < 512 * 1024


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("error", "error"),
        ("warning", "warning"),
        ("info", "info"),
        ("none", "info"),
        ("Weird", "error"),
        (None, "error"),
    ],
)
def test_pagerduty_severity(label: str | None, severity: str) -> None:
    assert pagerduty_severity(label) == severity


def test_pagerduty_errors() -> None:
    with respx.mock() as mock:
        route = mock.post(PD_URL)
        route.mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
        with pytest.raises(RateLimitedError) as limited:
            send(pagerduty)
        assert limited.value.retry_after == 30.0
        route.mock(return_value=httpx.Response(429, json={"status": "throttle event"}))
        with pytest.raises(RateLimitedError) as no_header:
            send(pagerduty)
        assert no_header.value.retry_after is None
        route.mock(return_value=httpx.Response(503))
        with pytest.raises(NotifyError) as server:
            send(pagerduty)
        assert not isinstance(server.value, PermanentNotifyError)
        route.mock(
            return_value=httpx.Response(
                400,
                json={
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": [f"routing_key {PD_KEY} is invalid"],
                },
            )
        )
        with pytest.raises(PermanentNotifyError, match="Event object is invalid") as bad:
            send(pagerduty)
        assert PD_KEY not in str(bad.value)


# --- LINE -------------------------------------------------------------------------------------


def test_line_request_shape() -> None:
    with respx.mock() as mock:
        route = mock.post(LINE_URL).mock(
            return_value=httpx.Response(200, json={"sentMessages": [{"id": "1"}]})
        )
        send(line)
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {LINE_TOKEN}"
    key = request.headers["x-line-retry-key"]
    assert str(uuid.UUID(key)) == key  # hexadecimal UUID notation
    body = json.loads(request.content)
    assert body["to"] == LINE_TO
    assert 1 <= len(body["messages"]) <= 5
    (message,) = body["messages"]
    assert message["type"] == "text"
    assert message["text"].startswith("🔴 FIRING: ExchangeApiDown · binance\nCritical · firing")
    assert "\n────────── details ──────────\nFiring since" in message["text"]
    assert "Runbook: https://runbooks.local/api-down?a=1&b=2" in message["text"]


def test_line_retry_key_is_stable_across_retries_and_409_is_delivered() -> None:
    with respx.mock() as mock:
        route = mock.post(LINE_URL)
        route.side_effect = [
            httpx.Response(500, json={"message": "Internal error"}),
            httpx.ConnectTimeout("timed out"),
            httpx.Response(409, json={"message": "The retry key is already accepted"}),
        ]
        for _ in range(2):
            with pytest.raises(NotifyError) as err:
                send(line)  # a fresh client and instance each time, as after a restart
            assert not isinstance(err.value, PermanentNotifyError)
        send(line)  # 409: an earlier attempt was accepted → delivered, no exception
        keys = {call.request.headers["x-line-retry-key"] for call in route.calls}
    assert len(route.calls) == 3 and len(keys) == 1
    assert keys == {retry_key(firing(), notifier="line-ops", to=LINE_TO)}
    assert retry_key(resolved(), notifier="line-ops", to=LINE_TO) not in keys
    assert retry_key(firing(), notifier="line-ops", to="U" + "f" * 32) not in keys


def test_line_errors() -> None:
    with respx.mock() as mock:
        route = mock.post(LINE_URL)
        route.mock(return_value=httpx.Response(429, json={"message": "Too many requests"}))
        with pytest.raises(RateLimitedError) as limited:
            send(line)
        assert limited.value.retry_after is None
        route.mock(
            return_value=httpx.Response(
                429, headers={"Retry-After": "12"}, json={"message": "Too many requests"}
            )
        )
        with pytest.raises(RateLimitedError) as with_header:
            send(line)
        assert with_header.value.retry_after == 12.0
        route.mock(
            return_value=httpx.Response(
                400, json={"message": "The request body has 1 error(s)", "details": []}
            )
        )
        with pytest.raises(PermanentNotifyError, match="request body"):
            send(line)
        route.mock(return_value=httpx.Response(401, json={"message": "Authentication failed"}))
        with pytest.raises(PermanentNotifyError) as auth:
            send(line)
        assert LINE_TOKEN not in str(auth.value)


def test_line_caps_text_at_5000_and_neutralises() -> None:
    for status in ("firing", "resolved"):
        body = render_line(hostile(status), LINE_TO)
        assert len(body["messages"]) == 1
        text = body["messages"][0]["text"]
        assert utf16_len(text) <= 5000 and "…" in text
        assert_no_live_mentions(text)
        assert "Runbook: https://runbooks.local/x" in text
    emoji = render_line(firing(annotations={"summary": "😀" * 6000}), LINE_TO)
    assert utf16_len(emoji["messages"][0]["text"]) <= 5000
    text = render_line(resolved(), LINE_TO)["messages"][0]["text"]
    assert text.startswith("✅ RESOLVED") and "lasted 4 min 12 s" in text


# --- generic webhook --------------------------------------------------------------------------


def test_webhook_request_shape() -> None:
    with respx.mock() as mock:
        route = mock.post(HOOK_URL).mock(return_value=httpx.Response(204))
        send(webhook, resolved(route="critical"))
    request = route.calls.last.request
    assert request.headers["x-team"] == "desk"
    assert request.headers["authorization"] == "Bearer hooksecret"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert request.headers["idempotency-key"] == body["idempotency_key"]
    assert body["idempotency_key"] == resolved().delivery_key
    assert body["version"] == "1" and body["notifier"] == "hooks"
    assert body["status"] == "resolved" and body["route"] == "critical"
    assert body["duration_seconds"] == pytest.approx(252.0)
    assert body["duration"] == "4 min 12 s"
    alert = body["alert"]
    assert alert["labels"]["exchange"] == "binance" and alert["fingerprint"] == "f00dfeed00000001"
    assert alert["starts_at"] == STARTS and alert["ends_at"] == ENDS
    assert body["diagnosis"]["root_cause_category"] == "outage"
    assert set(body) == {
        "version",
        "notifier",
        "idempotency_key",
        "sent_at",
        "status",
        "route",
        "receiver",
        "group_key",
        "external_url",
        "alert",
        "duration_seconds",
        "duration",
        "diagnosis",
    }


def test_webhook_firing_document_and_caps() -> None:
    doc = render_webhook(hostile(), notifier="hooks")
    assert doc["status"] == "firing" and doc["duration_seconds"] is None
    assert len(doc["alert"]["description"]) == 8192 and doc["alert"]["description"].endswith("…")
    assert doc["alert"]["summary"] == HOSTILE  # JSON data, not markup: the consumer escapes


def test_webhook_errors() -> None:
    with respx.mock() as mock:
        route = mock.post(HOOK_URL)
        route.mock(return_value=httpx.Response(429, headers={"Retry-After": "3"}))
        with pytest.raises(RateLimitedError) as limited:
            send(webhook)
        assert limited.value.retry_after == 3.0
        date = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
        route.mock(return_value=httpx.Response(429, headers={"Retry-After": date}))
        with pytest.raises(RateLimitedError) as dated:
            send(webhook)
        assert 50 <= (dated.value.retry_after or 0) <= 61
        route.mock(return_value=httpx.Response(500))
        with pytest.raises(NotifyError) as server:
            send(webhook)
        assert not isinstance(server.value, PermanentNotifyError)
        route.mock(return_value=httpx.Response(400, text=f"bad request to {HOOK_URL}"))
        with pytest.raises(PermanentNotifyError) as bad:
            send(webhook)
        assert "secret-path" not in str(bad.value)
        route.mock(side_effect=httpx.ReadTimeout("read timed out"))
        with pytest.raises(NotifyError) as network:
            send(webhook)
        assert "secret-path" not in str(network.value)


# --- Apprise ----------------------------------------------------------------------------------

_APPRISE_CALLS: list[dict[str, Any]] = []
_APPRISE_FAIL: set[str] = set()


@apprise.decorators.notify(on="ewtest", name="exchange-watch test service")
def _fake_service(body: str, title: str, notify_type: str, meta: dict[str, Any], **_: Any) -> bool:
    host = meta.get("host", "")
    _APPRISE_CALLS.append(
        {
            "host": host,
            "body": body,
            "title": title,
            "type": str(notify_type),
            "thread": threading.get_ident(),
        }
    )
    return host not in _APPRISE_FAIL


@pytest.fixture
def fake_apprise() -> list[dict[str, Any]]:
    _APPRISE_CALLS.clear()
    _APPRISE_FAIL.clear()
    return _APPRISE_CALLS


def test_apprise_sends_through_a_url_in_a_thread(fake_apprise: list[dict[str, Any]]) -> None:
    notifier = AppriseNotifier([SecretStr("ewtest://alpha/secret-token")], name="other")
    asyncio.run(notifier.send(hostile()))
    (call,) = fake_apprise
    assert call["thread"] != threading.get_ident()  # blocking notify ran in a worker thread
    assert call["title"].startswith("🔴 FIRING: Api<b>Down")
    assert "failure" in call["type"].lower()
    assert_no_live_mentions(call["title"] + call["body"])
    assert len(call["body"]) <= 4000 and "…" in call["body"]
    assert "Runbook: https://runbooks.local/x" in call["body"]
    asyncio.run(notifier.send(resolved()))
    assert "success" in fake_apprise[-1]["type"].lower()
    assert "lasted 4 min 12 s" in fake_apprise[-1]["body"]
    assert "secret-token" not in repr(notifier)


def test_apprise_failure_is_retryable_and_retries_only_failed_urls(
    fake_apprise: list[dict[str, Any]],
) -> None:
    notifier = AppriseNotifier(
        [SecretStr("ewtest://good/t1"), SecretStr("ewtest://flaky/t2")], name="other"
    )
    _APPRISE_FAIL.add("flaky")
    with pytest.raises(NotifyError) as err:
        asyncio.run(notifier.send(firing()))
    assert not isinstance(err.value, (PermanentNotifyError, RateLimitedError))
    assert "#2 (ewtest)" in str(err.value) and "t2" not in str(err.value)
    assert sorted(c["host"] for c in fake_apprise) == ["flaky", "good"]
    _APPRISE_FAIL.clear()
    asyncio.run(notifier.send(firing()))  # the retry
    assert [c["host"] for c in fake_apprise[2:]] == ["flaky"]


def test_apprise_notify_mocked(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_notify(self: apprise.Apprise, **kwargs: Any) -> bool:
        seen.update(kwargs)
        return False

    monkeypatch.setattr(apprise.Apprise, "notify", fake_notify)
    notifier = AppriseNotifier([SecretStr("json://localhost/hook")])
    with pytest.raises(NotifyError):
        asyncio.run(notifier.send(firing()))
    assert seen["body_format"] == apprise.NotifyFormat.TEXT
    assert seen["notify_type"] == apprise.NotifyType.FAILURE


def test_apprise_bad_url_names_position_and_scheme_only() -> None:
    with pytest.raises(AppriseUrlError) as err:
        AppriseNotifier([SecretStr("ewtest://ok/x"), SecretStr("nosuchservice://user:pw@h")])
    assert "#2" in str(err.value) and "nosuchservice" in str(err.value)
    assert "pw@h" not in str(err.value)


def test_apprise_service_without_titles_gets_the_headline_in_the_body() -> None:
    title, body = render_apprise(resolved(), body_max=1024, title_max=0)
    assert title == "" and body.startswith("✅ RESOLVED: ExchangeApiDown · binance\n")
    title, body = render_apprise(hostile(), body_max=1024, title_max=250)
    assert len(body) <= 1024 and not body.startswith("🔴")


# --- every notifier: hostile text stays inert, limits hold ------------------------------------


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_every_renderer_neutralises_mentions_and_respects_limits(status: str) -> None:
    n = hostile(status)
    slack = json.dumps(render_slack(n), ensure_ascii=False)
    discord = render_discord(n)
    assert discord["allowed_mentions"] == {"parse": []}
    texts = {
        "slack": slack,
        "discord": json.dumps(discord, ensure_ascii=False),
        "telegram": render_telegram(n, "1")["text"],
        "line": render_line(n, LINE_TO)["messages"][0]["text"],
        "pagerduty": render_pagerduty(n, PD_KEY)["payload"]["summary"],
        "apprise": "".join(render_apprise(n, body_max=2000, title_max=250)),
    }
    for name, text in texts.items():
        assert "@everyone" not in text and "@here" not in text, name
        assert "<!channel>" not in text and "<@U0123>" not in text, name
    assert "<b>bold" not in texts["slack"] and "<b>bold" not in texts["telegram"]
    fields = {f["name"]: f["value"] for f in discord["embeds"][0]["fields"]}
    assert "\\[\\]()" in fields["Summary"]  # no masked links
    if status == "resolved":
        for name, text in texts.items():
            assert "4 min 12 s" in text, name


# --- metrics ----------------------------------------------------------------------------------


def _sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float | None:
    return registry.get_sample_value(name, labels)


def test_notifier_metrics_count_results() -> None:
    registry = CollectorRegistry()
    metrics = NotifierMetrics(registry)

    async def scenario(answers: list[httpx.Response]) -> None:
        async with httpx.AsyncClient() as client:
            notifier = PagerDutyNotifier(SecretStr(PD_KEY), client, name="pd-main")
            notifier.bind_metrics(metrics)
            for _ in answers:
                with contextlib.suppress(NotifyError):
                    await notifier.send(firing())

    answers = [
        httpx.Response(202, json={"status": "success"}),
        httpx.Response(429),
        httpx.Response(400, json={"status": "invalid event"}),
        httpx.Response(500),
        httpx.Response(202, json={"status": "success"}),
    ]
    labels = {"notifier": "pd-main", "channel": "pagerduty"}
    with respx.mock() as mock:
        mock.post(PD_URL).side_effect = answers
        asyncio.run(scenario(answers))
    name = "alert_receiver_notifier_requests_total"
    assert _sample(registry, name, labels | {"result": "ok"}) == 2
    assert _sample(registry, name, labels | {"result": "rate_limited"}) == 1
    assert _sample(registry, name, labels | {"result": "rejected"}) == 1
    assert _sample(registry, name, labels | {"result": "error"}) == 1
    count = _sample(registry, "alert_receiver_notifier_request_duration_seconds_count", labels)
    assert count == 5


def test_notifier_metrics_declare_series_at_zero() -> None:
    registry = CollectorRegistry()
    metrics = NotifierMetrics(registry)
    JsonlNotifier(Path("unused.jsonl"), name="log").bind_metrics(metrics)
    labels = {"notifier": "log", "channel": "jsonl", "result": "error"}
    assert _sample(registry, "alert_receiver_notifier_requests_total", labels) == 0


def test_apprise_logger_never_shows_url_parts(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from receiver.notifiers.apprise_urls import protect_url

    protect_url("pover://uSeRkEy123@tOkEnAbC456")
    with caplog.at_level(logging.INFO, logger="apprise"):
        logging.getLogger("apprise").info("sending to user uSeRkEy123 with token tOkEnAbC456")
    text = caplog.text
    assert "uSeRkEy123" not in text and "tOkEnAbC456" not in text
    assert "<redacted>" in text
