"""Rendering tests: Slack blocks, Discord embeds, JSONL records and the text helpers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import Diagnosis
from receiver.models import Alert
from receiver.notifiers.base import (
    Notification,
    NotifyError,
    PermanentNotifyError,
    RateLimitedError,
)
from receiver.notifiers.discord import (
    COLOR_CRITICAL,
    COLOR_INFO,
    COLOR_RESOLVED,
    COLOR_WARNING,
    DiscordNotifier,
    embed_length,
    render_discord,
)
from receiver.notifiers.jsonl import JsonlNotifier, render_jsonl
from receiver.notifiers.slack import SlackNotifier, block_text_length, render_slack
from receiver.text import ZWSP, cap, discord_escape, fit, safe_url, slack_escape

SLACK_URL = "https://hooks.slack.test/services/T1/B1/secret"
DISCORD_URL = "https://discord.test/api/webhooks/1/secret"

HOSTILE = "<!channel> <!here> @everyone @here <@U0123> <@&987> <#42> & [x](https://evil) "
HUGE = (HOSTILE + "lorem ipsum ") * 200  # ~15,000 characters


def diagnosis(**overrides: Any) -> Diagnosis:
    values: dict[str, Any] = {
        "diagnosis": "Binance API is down.",
        "impact": "Orders may fail.",
        "action_items": ["Pause order placement", "Reconcile open orders"],
        "rollback_plan": "Resume gradually.",
        "estimated_recovery_time": "5-60 minutes",
        "root_cause_category": "outage",
        "confidence": 0.75,
        "source": "rules",
    }
    values.update(overrides)
    return Diagnosis(**values)


def notification(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "id": 1,
        "route": "",
        "receiver": "exchange-watch",
        "group_key": '{}:{alertname="ExchangeApiDown"}',
        "external_url": "http://alertmanager.local:9093",
        "status": "firing",
        "labels": {
            "alertname": "ExchangeApiDown",
            "exchange": "binance",
            "endpoint": "/api/v3/ping",
            "severity": "critical",
        },
        "annotations": {
            "summary": "binance API down",
            "runbook_url": "https://runbooks.local/api-down?a=1&b=2",
        },
        "starts_at": "2026-11-21T07:22:00.568123456Z",
        "ends_at": "0001-01-01T00:00:00Z",
        "generator_url": "http://prom.local:9090/graph?g0.expr=up&g0.tab=1",
        "fingerprint": "f00dfeed00000001",
        "diagnosis": diagnosis(),
    }
    values.update(overrides)
    return Notification(**values)


def huge_notification(status: str = "firing") -> Notification:
    labels = {
        "alertname": "ExchangeApiDown" + "X" * 500,
        "exchange": HUGE[:3000],
        "endpoint": HUGE[:3000],
        "severity": "critical",
    }
    return notification(
        status=status,
        labels=labels,
        annotations={"summary": HUGE, "description": "d" * 10_000, "runbook_url": "javascript:x"},
        receiver=HUGE[:500],
        diagnosis=Diagnosis(
            diagnosis=HUGE,
            impact=HUGE,
            action_items=[HUGE] * 5,
            rollback_plan=HUGE,
            estimated_recovery_time=HUGE,
            root_cause_category="outage",
            confidence=0.5,
            source="llm",
        ),
    )


# --- text helpers -----------------------------------------------------------------------------


def test_cap_and_fit() -> None:
    assert cap("abc", 5) == "abc"
    assert cap("abcdef", 4) == "abc…"
    assert cap("abc", 0) == ""
    escaped = fit("<" * 100, 20, slack_escape)
    assert len(escaped) <= 20 and escaped.endswith("…")
    assert "&l…" not in escaped and escaped.count("&lt;") == 4  # entities never cut in half
    assert fit("x" * 10, 10) == "x" * 10


def test_slack_escape_neutralises_mentions() -> None:
    out = slack_escape(HOSTILE)
    assert "<" not in out and ">" not in out
    assert "&lt;!channel&gt;" in out and "&amp;" in out
    assert "@everyone" not in out and f"@{ZWSP}everyone" in out
    assert "@here" not in out


def test_discord_escape_neutralises_mentions_and_links() -> None:
    out = discord_escape(HOSTILE)
    assert "@everyone" not in out and "@here" not in out
    assert "<@U0123>" not in out and "<@&987>" not in out and "<#42>" not in out
    assert "[x](" not in out


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://runbooks.local/x?a=1&b=2", True),
        ("http://vm:19090/graph?g0.expr=up", True),
        ("javascript:alert(1)", False),
        ("file:///etc/passwd", False),
        ("https://a.b/x|<!channel>", False),
        ("https://a.b/ x", False),
        ("", False),
        (None, False),
        ("https://" + "a" * 3000, False),
    ],
)
def test_safe_url(url: str | None, ok: bool) -> None:
    assert (safe_url(url) is not None) is ok


# --- Slack ------------------------------------------------------------------------------------


def test_slack_shape_firing() -> None:
    body = render_slack(notification())
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == "🔴 FIRING: ExchangeApiDown · binance"
    assert blocks[1]["type"] == "section" and "firing since" in blocks[1]["text"]["text"]
    assert blocks[2]["type"] == "divider"
    assert "Firing* since" in blocks[3]["elements"][0]["text"]
    raw = json.dumps(body, ensure_ascii=False)
    for expected in ("binance", "critical", "Binance API is down.", "Orders may fail."):
        assert expected in raw
    assert "1. Pause order placement\\n2. Reconcile open orders" in raw
    assert "Resume gradually." in raw and "5-60 minutes" in raw
    assert "outage" in raw and "75%" in raw and "rules" in raw
    assert "<https://runbooks.local/api-down?a=1&amp;b=2|Runbook>" in raw
    assert "<http://prom.local:9090/graph?g0.expr=up&amp;g0.tab=1|Prometheus graph>" in raw
    assert body["text"].startswith("🔴 FIRING: ExchangeApiDown · binance\nCritical · firing since")


def test_slack_resolved_looks_different() -> None:
    body = render_slack(notification(status="resolved", ends_at="2026-11-21T08:00:00Z"))
    assert body["blocks"][0]["text"]["text"].startswith("✅ RESOLVED")
    assert "Resolved* at 2026-11-21T08:00:00Z (started" in body["blocks"][3]["elements"][0]["text"]
    assert body["text"].startswith("✅ RESOLVED")


@pytest.mark.parametrize("alertname", ["ExchangeApiDown", "ExchangeApiLatencyHigh", "Other"])
def test_status_words_do_not_leak_between_firing_and_resolved(alertname: str) -> None:
    for status, other in (("firing", "resolved"), ("resolved", "firing")):
        alert = Alert.model_validate(
            {
                "status": status,
                "labels": {"alertname": alertname, "exchange": "binance"},
                "startsAt": "2026-11-21T07:22:00Z",
                "endsAt": "2026-11-21T08:00:00Z"
                if status == "resolved"
                else "0001-01-01T00:00:00Z",
            }
        )
        n = notification(
            status=status,
            labels=alert.labels,
            annotations={},
            ends_at=alert.ends_at,
            diagnosis=diagnose_with_rules(alert),
        )
        for body in (render_slack(n), render_discord(n)):
            text = json.dumps(body, ensure_ascii=False).lower()
            assert status in text and other not in text


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_slack_caps_everything(status: str) -> None:
    body = render_slack(huge_notification(status))
    blocks = body["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    for block in blocks:
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= 3000
            fields = block.get("fields", [])
            assert len(fields) <= 10
            assert all(len(f["text"]) <= 2000 for f in fields)
    assert block_text_length(blocks) <= 12000
    assert len(body["text"]) <= 3000
    raw = json.dumps(body, ensure_ascii=False)
    assert "<!channel>" not in raw and "<!here>" not in raw and "<@U0123>" not in raw
    assert "@everyone" not in raw and "@here" not in raw
    assert "javascript:" not in raw  # unsafe runbook link dropped
    assert "…" in raw


def test_slack_description_10000_chars_is_capped() -> None:
    n = notification(annotations={"summary": "s", "description": "<!channel> " + "y" * 10_000})
    body = render_slack(n)
    (desc,) = [b for b in body["blocks"] if "Description" in b.get("text", {}).get("text", "")]
    assert len(desc["text"]["text"]) <= 3000
    assert desc["text"]["text"].endswith("…")
    assert desc["text"]["text"].startswith("*Description*\n&lt;!channel&gt;")


def test_slack_notifier_errors() -> None:
    async def run(response: httpx.Response) -> None:
        async with httpx.AsyncClient() as client:
            await SlackNotifier(SecretStr(SLACK_URL), client).send(notification())

    with respx.mock() as mock:
        route = mock.post(SLACK_URL)
        route.mock(return_value=httpx.Response(200, text="ok"))
        asyncio.run(run(httpx.Response(200)))
        route.mock(return_value=httpx.Response(429, headers={"Retry-After": "7"}))
        with pytest.raises(RateLimitedError) as info:
            asyncio.run(run(httpx.Response(429)))
        assert info.value.retry_after == 7.0
        route.mock(return_value=httpx.Response(400, text="invalid_blocks"))
        with pytest.raises(PermanentNotifyError, match="invalid_blocks"):
            asyncio.run(run(httpx.Response(400)))
        route.mock(side_effect=httpx.ConnectError("connection refused to " + SLACK_URL))
        with pytest.raises(NotifyError) as err:
            asyncio.run(run(httpx.Response(500)))
        assert "secret" not in str(err.value)


# --- Discord ----------------------------------------------------------------------------------


def test_discord_shape() -> None:
    body = render_discord(notification())
    assert body["allowed_mentions"] == {"parse": []}
    assert len(body["content"]) <= 2000
    (embed,) = body["embeds"]
    assert embed["title"] == "🔴 FIRING: ExchangeApiDown · binance"
    assert embed["color"] == COLOR_CRITICAL
    names = [f["name"] for f in embed["fields"]]
    for name in ("Exchange", "Severity", "Category", "Impact", "Action items", "Rollback plan"):
        assert name in names
    assert embed["url"] == "https://runbooks.local/api-down?a=1&b=2"
    assert embed["timestamp"].startswith("2026-11-21T07:22:00.568123")
    assert "Binance API is down." in embed["description"]


@pytest.mark.parametrize(
    ("status", "severity", "color"),
    [
        ("firing", "critical", COLOR_CRITICAL),
        ("firing", "warning", COLOR_WARNING),
        ("firing", "info", COLOR_INFO),
        ("firing", None, COLOR_INFO),
        ("resolved", "critical", COLOR_RESOLVED),
    ],
)
def test_discord_colours(status: str, severity: str | None, color: int) -> None:
    labels = {"alertname": "X"} | ({"severity": severity} if severity else {})
    embed = render_discord(notification(status=status, labels=labels))["embeds"][0]
    assert embed["color"] == color


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_discord_caps_everything(status: str) -> None:
    body = render_discord(huge_notification(status))
    (embed,) = body["embeds"]
    assert len(embed["title"]) <= 256
    assert len(embed["description"]) <= 4096
    assert len(embed["fields"]) <= 25
    for field in embed["fields"]:
        assert len(field["name"]) <= 256 and len(field["value"]) <= 1024
    assert len(embed["footer"]["text"]) <= 2048
    assert embed_length(embed) <= 6000
    raw = json.dumps(body, ensure_ascii=False)
    assert "@everyone" not in raw and "@here" not in raw
    assert "<@U0123>" not in raw and "<@&987>" not in raw
    assert "url" not in embed  # javascript: runbook dropped


def test_discord_429_uses_json_retry_after() -> None:
    async def run() -> None:
        async with httpx.AsyncClient() as client:
            await DiscordNotifier(SecretStr(DISCORD_URL), client).send(notification())

    with respx.mock() as mock:
        mock.post(DISCORD_URL).mock(
            return_value=httpx.Response(
                429,
                json={
                    "message": "You are being rate limited.",
                    "retry_after": 0.25,
                    "global": False,
                },
                headers={"Retry-After": "1"},
            )
        )
        with pytest.raises(RateLimitedError) as info:
            asyncio.run(run())
    assert info.value.retry_after == 0.25


# --- JSONL ------------------------------------------------------------------------------------


def test_jsonl_record_shape_and_append(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "n.jsonl"
    notifier = JsonlNotifier(path)
    asyncio.run(notifier.send(notification()))
    asyncio.run(notifier.send(notification(status="resolved", ends_at="2026-11-21T08:00:00Z")))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == [
        "notified_at",
        "status",
        "alertname",
        "exchange",
        "endpoint",
        "severity",
        "fingerprint",
        "group_key",
        "receiver",
        "starts_at",
        "ends_at",
        "summary",
        "description",
        "labels",
        "annotations",
        "diagnosis",
        "duration_seconds",
    ]
    assert first["diagnosis"] == diagnosis().model_dump(mode="json")
    assert first["duration_seconds"] is None
    second = json.loads(lines[1])
    assert second["status"] == "resolved"
    assert second["duration_seconds"] == pytest.approx(37 * 60 + 59.431877)


def test_jsonl_caps_long_values() -> None:
    record = render_jsonl(notification(annotations={"description": "z" * 50_000}))
    assert len(record["description"]) == 8192
    assert len(record["annotations"]["description"]) == 8192


def test_context_appears_compactly_and_capped() -> None:
    from receiver.diagnosis.schema import Context

    line = "p99 latency 1.84 s (baseline 0.21 ± 0.05 s, z 32.6, rising 0.12 s/min) <!channel>"
    context = Context(exchange="binance", summary="\n".join([line] * 12)[:1000])
    n = notification(diagnosis=diagnosis(context=context))
    slack = render_slack(n)
    text = json.dumps(slack)
    assert "Context (Prometheus)" in text and "z 32.6" in text
    assert "<!channel>" not in text  # escaped like every untrusted text
    assert block_text_length(slack["blocks"]) <= 12_000
    discord = render_discord(n)
    field = next(f for f in discord["embeds"][0]["fields"] if f["name"] == "Context")
    assert "z 32.6" in field["value"] and len(field["value"]) <= 300
    assert embed_length(discord["embeds"][0]) <= 6000
