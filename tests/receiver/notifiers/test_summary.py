"""The five-line summary at the top of every message, the PromQL filter, and the layout of each
platform: summary first (no PromQL even when annotations and the diagnosis hold some), details
folded below."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from receiver.diagnosis.schema import Context
from receiver.models import parse_rfc3339
from receiver.notifiers.apprise_urls import render_apprise
from receiver.notifiers.base import Notification, SentMessage
from receiver.notifiers.common import DETAILS_SEPARATOR, compose
from receiver.notifiers.discord import STYLE as DISCORD_STYLE
from receiver.notifiers.discord import embed_length, render_discord
from receiver.notifiers.followup import compose_update
from receiver.notifiers.line import STYLE as LINE_STYLE
from receiver.notifiers.line import render_line
from receiver.notifiers.slack import STYLE as SLACK_STYLE
from receiver.notifiers.slack import block_text_length, render_slack
from receiver.notifiers.summary import (
    MAX_LINES,
    first_sentences,
    looks_like_promql,
    plain_summary,
    since_line,
    strip_promql,
    summary_lines,
)
from receiver.notifiers.telegram import STYLE as TELEGRAM_STYLE
from receiver.notifiers.telegram import render_telegram
from receiver.text import utf16_len
from tests.receiver.notifiers.test_render import diagnosis, notification

STARTS = "2026-11-21T07:22:00.568Z"
ENDS = "2026-11-21T07:26:12.568Z"  # 4 min 12 s later
NOW = parse_rfc3339(STARTS).timestamp() + 180  # 3 min after it started
LINE_TO = "U" + "0123456789abcdef" * 2

PROMQL_DIAGNOSIS = diagnosis(
    diagnosis=(
        "Binance REST probes fail with TCP resets "
        '(sum by (exchange) (rate(exchange_api_requests_total{result!="ok"}[5m])) > 0.9). '
        "Other exchanges are healthy, so the fault is on Binance's side."
    ),
    impact='Orders on Binance may fail (exchange_api_up{exchange="binance"} == 0). More text.',
    action_items=[
        "Pause order placement on Binance.",
        "Reconcile open orders through a second path.",
        "Fail over hedging to a backup venue.",
    ],
    rollback_plan="Resume gradually once probes succeed.",
    source="llm",
    context=Context(exchange="binance", summary="error ratio 92% over 5m (baseline 0.1%)"),
)
PROMQL_ANNOTATIONS = {
    "summary": 'binance API is down (exchange_api_up{job="exchange-exporter"} == 0)',
    "description": "Every probed endpoint failed: rate(exchange_api_requests_total[1m]) > 0",
    "runbook_url": "https://runbooks.local/api-down",
}
#: Text that must never reach the summary: PromQL and label matchers of the fixtures above.
PROMQL_MARKS = ("{", "}", "rate(", "by (", "exchange_api_", "==", "[5m]", "[1m]", '="')


def promql_notification(status: str = "firing") -> Notification:
    values: dict[str, Any] = {
        "status": status,
        "starts_at": STARTS,
        "annotations": PROMQL_ANNOTATIONS,
        "diagnosis": PROMQL_DIAGNOSIS,
    }
    if status == "resolved":
        values["ends_at"] = ENDS
    return notification(**values)


def assert_summary(top: str, status: str = "firing") -> None:
    """``top`` (the first lines a reader sees) says what, where, since when, impact, action."""
    lines = top.split("\n")
    assert 1 <= len(lines) <= MAX_LINES, lines
    assert "ExchangeApiDown" in top and "binance" in top
    assert "Orders on Binance may fail" in top
    assert "Pause order placement on Binance" in top
    if status == "firing":
        assert "since 07:22:00 UTC (3 min)" in top and "FIRING" in top
    else:
        assert "resolved at 07:26:12 UTC" in top and "lasted 4 min 12 s" in top
        assert "RESOLVED" in top
    for mark in PROMQL_MARKS:
        assert mark not in top, (mark, top)
    assert not any(looks_like_promql(line) for line in lines)


def assert_details(text: str) -> None:
    """Below the summary: every action item, the evidence and the raw annotations."""
    for item in PROMQL_DIAGNOSIS.action_items:
        assert item in text
    assert "error ratio 92% over 5m" in text  # the Prometheus evidence
    assert "Every probed endpoint failed" in text and "Resume gradually" in text


# --- the PromQL filter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "binance failed its last probe (exchange_api_up == 0), one at least 3 times",
            "binance failed its last probe, one at least 3 times",
        ),
        (
            'Error ratio sum by (exchange) (rate(exchange_api_requests_total{result!="ok"}[5m]))'
            " / sum by (exchange) (rate(exchange_api_requests_total[5m])) > 0.05 on binance",
            "Error ratio on binance",
        ),
        ("Latency: histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) = 2.1s", "Latency"),
        ('max by (exchange) (exchange_api_up{job="exchange-exporter"}) == 0', ""),
        ("The {{ $labels.exchange }} endpoint is down", "The endpoint is down"),
        ("increase(exchange_ws_gaps_total[5m]) > 0 on okx", "on okx"),
        ("Down. Evidence - labels: exchange=binance, severity=critical", "Down."),
        (
            "Burn rate 14x: exchange:exchange_api_requests:budget_error_ratio_1h high",
            "Burn rate 14x: high",
        ),
        # prose stays as written
        ("binance API is down (max (3 retries)) since 07:22", None),
        ("p99 latency is 2.3 s (threshold > 1 s) over the last 5m", None),
        ("Depends on (a) the network; rate limit used 95% of the 1m window", None),
    ],
)
def test_strip_promql(text: str, expected: str | None) -> None:
    assert strip_promql(text) == (text if expected is None else expected)
    assert not looks_like_promql(strip_promql(text))


def test_looks_like_promql() -> None:
    for text in ('up{job="x"}', "rate(x[5m])", "sum by (exchange) (x)", "x_total offset 5m"):
        assert looks_like_promql(text), text
    for text in ("Orders may fail (5xx).", "max (3 retries)", "latency > 2 s", "depends on (a)"):
        assert not looks_like_promql(text), text


def test_first_sentences_skips_the_severity_and_caps() -> None:
    assert first_sentences("Severity critical. Orders may fail. Then more.") == (
        "Orders may fail. Then more."
    )
    long = "A" * 50 + ". " + "Word " * 100
    assert first_sentences(long, 60) == "A" * 50 + "."
    cut = first_sentences("word " * 100, 60)
    assert len(cut) <= 60 and cut.endswith("…") and "\n" not in cut
    assert first_sentences("") == ""


# --- the lines ---------------------------------------------------------------------------------


def test_since_line() -> None:
    firing = notification(starts_at=STARTS)
    assert since_line(firing, NOW) == "Critical · firing since 07:22:00 UTC (3 min)"
    next_day = NOW + 86_400
    assert since_line(firing, next_day) == "Critical · firing since 2026-11-21 07:22 UTC (1 d)"
    assert since_line(firing, NOW - 3600) == "Critical · firing since 07:22:00 UTC"  # skewed
    no_severity = notification(starts_at=STARTS, labels={"alertname": "A"})
    assert since_line(no_severity, NOW) == "Firing since 07:22:00 UTC (3 min)"
    resolved = notification(status="resolved", starts_at=STARTS, ends_at=ENDS)
    assert since_line(resolved, NOW) == "Critical · resolved at 07:26:12 UTC · lasted 4 min 12 s"
    assert since_line(notification(starts_at="garbage"), NOW) == "Critical · firing"


def test_summary_lines_firing_and_resolved() -> None:
    lines = summary_lines(promql_notification(), NOW)
    assert [line.label for line in lines] == ["", "", "Impact", "First action", "Diagnosis"]
    assert lines[0].text == "🔴 FIRING: ExchangeApiDown · binance"
    assert lines[2].text == "Orders on Binance may fail. More text."
    assert lines[4].text.startswith("Binance REST probes fail with TCP resets.")
    resolved = summary_lines(promql_notification("resolved"), NOW)
    assert [line.label for line in resolved][2:] == ["Impact", "Check first", "Recovery check"]
    assert resolved[0].text == "✅ RESOLVED: ExchangeApiDown · binance"
    assert_summary(plain_summary(promql_notification(), NOW))
    assert_summary(plain_summary(promql_notification("resolved"), NOW), "resolved")


# --- every platform ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_slack_summary_first(status: str) -> None:
    body = render_slack(promql_notification(status), now=NOW)
    assert_summary(body["text"], status)  # the fallback: notifications and previews
    header, summary, divider = body["blocks"][:3]
    assert header["type"] == "header" and summary["type"] == "section"
    assert divider["type"] == "divider"
    assert_summary(header["text"]["text"] + "\n" + summary["text"]["text"], status)
    assert "*Impact:*" in summary["text"]["text"]
    details = json.dumps(body["blocks"][3:], ensure_ascii=False)
    assert_details(details.replace("\\n", "\n"))
    assert "exchange_api_up{job=" in details  # the raw annotation is still there, below
    assert block_text_length(body["blocks"]) <= 12_000


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_discord_summary_is_the_description(status: str) -> None:
    (embed,) = render_discord(promql_notification(status), now=NOW)["embeds"]
    assert_summary(embed["title"] + "\n" + embed["description"], status)
    assert "**Impact:**" in embed["description"]
    fields = "\n".join(f"{f['name']}\n{f['value']}" for f in embed["fields"])
    assert_details(fields.replace("\\", ""))
    assert embed_length(embed) <= 6000


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_telegram_summary_then_expandable_blockquote(status: str) -> None:
    text = render_telegram(promql_notification(status), "1", now=NOW)["text"]
    top, _, rest = text.partition("\n<blockquote expandable>")
    assert_summary(top.replace("<b>", "").replace("</b>", ""), status)
    details, _, links = rest.partition("</blockquote>")
    assert_details(details)
    assert '<a href="https://runbooks.local/api-down">Runbook</a>' in links  # outside the quote
    assert "<a " not in details and "blockquote" not in details  # entities never nested
    assert utf16_len(text) <= 4096


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_line_summary_then_separator(status: str) -> None:
    text = render_line(promql_notification(status), LINE_TO, now=NOW)["messages"][0]["text"]
    top, _, details = text.partition("\n" + DETAILS_SEPARATOR + "\n")
    assert_summary(top, status)
    assert_details(details)
    assert "Runbook: https://runbooks.local/api-down" in details


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_apprise_title_and_summary(status: str) -> None:
    n = promql_notification(status)
    title, body = render_apprise(n, body_max=4000, title_max=250, now=NOW)
    top, _, details = body.partition("\n" + DETAILS_SEPARATOR + "\n")
    assert len(top.split("\n")) <= MAX_LINES - 1  # the title is the headline
    assert_summary(title + "\n" + top, status)
    assert_details(details)
    _, untitled = render_apprise(n, body_max=4000, title_max=0, now=NOW)
    assert_summary(untitled.partition("\n" + DETAILS_SEPARATOR)[0], status)


@pytest.mark.parametrize("limit", [120, 200, 400, 1000])
def test_small_limits_keep_the_summary_first(limit: int) -> None:
    text = compose(promql_notification(), LINE_STYLE, limit, now=NOW)
    assert len(text) <= limit
    assert text.startswith("🔴 FIRING: ExchangeApiDown · binance\nCritical · firing since")


# --- update messages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "limit"),
    [(SLACK_STYLE, 3000), (DISCORD_STYLE, 2000), (TELEGRAM_STYLE, 4096), (LINE_STYLE, 5000)],
)
def test_update_message_summary_first(style: Any, limit: int) -> None:
    sent = SentMessage(sent_at=datetime(2026, 11, 21, 7, 22, 5).timestamp(), ids={})
    text = compose_update(promql_notification(), sent, style, limit)
    assert style.length(text) <= limit
    top = text.split("\n" + style.fold_open)[0] if style.fold_open else text
    top = top.split("\n" + DETAILS_SEPARATOR)[0]
    lines = top.split("\n")
    assert len(lines) <= MAX_LINES
    assert "Update: diagnosis" in lines[0] and "ExchangeApiDown" in lines[0]
    assert "the page sent" in lines[1]
    assert "Orders on Binance may fail" in top and "Pause order placement" in top
    for mark in PROMQL_MARKS:
        assert mark not in top.replace("&gt;", ">"), mark
    assert "Reconcile open orders through a second path." in text  # all items, below
