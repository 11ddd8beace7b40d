"""The pure parts of benchmarks/bench_notify.py: Slack message matching, expected bounds from
the shipped configs and the result section. The stack itself never runs here."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from benchmarks import bench_notify as bn
from benchmarks import notify_bounds as nb
from benchmarks import slack_messages as sm
from receiver.diagnosis.schema import Diagnosis
from receiver.notifiers.base import Notification
from receiver.notifiers.slack import render_slack
from testsupport.fake_chat import FakeChat

STARTS = "2026-11-21T07:22:00.568123456Z"


def _notification(
    status: str = "firing", alertname: str = "ExchangeApiDown", exchange: str | None = "bybit"
) -> Notification:
    labels = {"alertname": alertname, "severity": "critical"}
    if exchange:
        labels["exchange"] = exchange
    return Notification(
        id=1,
        route="critical",
        receiver="exchange-watch-critical",
        group_key="{}:{}",
        external_url="http://am",
        status=status,  # type: ignore[arg-type]
        labels=labels,
        annotations={"summary": "bybit API is down <!channel> & more"},
        starts_at=STARTS,
        ends_at="0001-01-01T00:00:00Z" if status == "firing" else "2026-11-21T07:23:00Z",
        generator_url="http://prom/graph",
        fingerprint="abc",
        diagnosis=Diagnosis(
            diagnosis="down",
            impact="no trading",
            action_items=["pause"],
            rollback_plan="resume",
            estimated_recovery_time="minutes",
            root_cause_category="outage",
            confidence=0.8,
            source="rules",
        ),
    )


def test_parses_the_receivers_firing_slack_message() -> None:
    message = sm.parse_slack_message(render_slack(_notification()))
    assert message is not None
    assert (message.status, message.alertname, message.exchange) == (
        "firing",
        "ExchangeApiDown",
        "bybit",
    )
    assert message.starts_at == datetime(2026, 11, 21, 7, 22, 0, 568123, tzinfo=UTC).timestamp()
    assert message.matches("ExchangeApiDown", "bybit", "firing")
    assert not message.matches("ExchangeApiDown", "binance", "firing")
    assert not message.matches("ExchangeApiDown", "bybit", "resolved")
    assert not message.matches("ExchangeIpBanned", "bybit", "firing")


def test_parses_resolved_and_global_messages() -> None:
    resolved = sm.parse_slack_message(render_slack(_notification("resolved")))
    assert resolved == sm.SlackMessage("resolved", "ExchangeApiDown", "bybit", None)
    global_alert = sm.parse_slack_message(
        render_slack(_notification(alertname="ExchangeExporterDown", exchange=None))
    )
    assert global_alert is not None and global_alert.exchange is None


def test_falls_back_to_header_and_text() -> None:
    header_only = {
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "🔴 FIRING: A · okx"}}]
    }
    assert sm.parse_slack_message(header_only) == sm.SlackMessage("firing", "A", "okx")
    text_only = {"text": "✅ RESOLVED: B [kraken] (warning) - lasted 1 min - x"}
    assert sm.parse_slack_message(text_only) == sm.SlackMessage("resolved", "B", "kraken")


@pytest.mark.parametrize("body", [None, "ok", [], {}, {"text": "hello"}, {"blocks": ["x", 1]}])
def test_other_bodies_are_not_messages(body: object) -> None:
    assert sm.parse_slack_message(body) is None


@pytest.mark.e2e
def test_fake_slack_records_and_waits() -> None:
    chat = FakeChat().start()
    try:
        before = time.monotonic()

        def post() -> None:
            time.sleep(0.05)
            url = f"{chat.url}{sm.SLACK_PATH}"
            httpx.post(url, json=render_slack(_notification()), trust_env=False)

        sender = threading.Thread(target=post)
        sender.start()
        found = sm.wait_for_message(
            chat, lambda m: m.matches("ExchangeApiDown", "bybit", "firing"), before, 5
        )
        sender.join()
        assert found is not None
        request, message = found
        assert request.arrived >= before and request.path == sm.SLACK_PATH
        assert message.matches("ExchangeApiDown", "bybit", "firing")
        later = sm.wait_for_message(chat, lambda m: True, request.arrived + 1, 0.1)
        assert later is None
        assert len(chat.requests) == 1
    finally:
        chat.stop()


def test_expected_bounds_follow_the_shipped_configs() -> None:
    outage, ban, latency = bn.SCENARIOS
    timing = nb.shipped_timing(outage)
    # Issue 18: the exporter job is scraped every 1 s, the availability and rate-limit groups
    # are evaluated every 1 s, ExchangeApiDown has no `for` but counts 2 failures in a row, and
    # the critical route has no group_wait.
    assert (timing.scrape, timing.evaluation, timing.rule_for) == (1, 1, 0)
    assert (timing.severity, timing.group_wait, timing.group_interval) == ("critical", 0, 5)
    assert (timing.probe_min, timing.consecutive) == (1, 2)
    bounds = nb.expected_bounds(outage, timing)
    # a second failure 0.8-1.2 s later .. + the first probe + scrape + evaluation
    assert (bounds.low, bounds.high) == pytest.approx((0.8, 4.2))
    ban_bounds = nb.expected_bounds(ban, nb.shipped_timing(ban))
    assert (ban_bounds.low, ban_bounds.high) == (0, 3)  # no `for`, no group_wait
    latency_timing = nb.shipped_timing(latency)
    assert (latency_timing.severity, latency_timing.group_wait) == ("warning", 30)
    latency_bounds = nb.expected_bounds(latency, latency_timing)
    assert latency_bounds.low == 30 + 60 + 30
    assert latency_bounds.refire_high == latency_bounds.high - 30 + 60


def test_section_shape_with_fake_timings() -> None:
    bounds = {s.key: nb.Bounds(20, 35, 15, 35, "terms") for s in bn.SCENARIOS}
    results = {
        "hard_outage": [
            bn.RunResult(24.0, 19.0, 40.0),
            bn.RunResult(28.0, 23.0, 50.0),
            bn.RunResult(26.0, 21.0, None),
        ],
        "ip_ban": [bn.RunResult(10.0), bn.RunResult(None, error="no firing message")],
    }
    section = bn.build_section(results, bounds, runs=3)
    assert section["name"] == "notify"
    assert [t["name"] for t in section["targets"]] == ["hard outage time to notify (median)"]
    target = section["targets"][0]
    assert (target["value"], target["limit"], target["op"], target["met"]) == (26.0, 30, "<=", True)
    outage, ban, latency = section["rows"]
    assert outage["median_s"] == 26.0 and outage["min_s"] == 24.0 and outage["max_s"] == 28.0
    assert outage["runs"] == "3/3" and outage["each_run_s"] == "24.0, 28.0, 26.0"
    assert outage["in_prometheus_median_s"] == 21.0 and outage["delivery_median_s"] == 5.0
    assert outage["resolved_median_s"] == 45.0 and outage["expected_s"] == "20-35"
    assert ban["runs"] == "1/3" and ban["each_run_s"] == "10.0, failed, failed"
    assert latency["runs"] == "0/3" and math.isnan(latency["median_s"])
    assert any("rate-limit ban run 2 failed: no firing message" in n for n in section["notes"])


def test_a_failed_outage_run_counts_as_late() -> None:
    bounds = {s.key: nb.Bounds(20, 35, 15, 35, "terms") for s in bn.SCENARIOS}
    results = {"hard_outage": [bn.RunResult(20.0), bn.RunResult(None), bn.RunResult(None)]}
    target = bn.build_section(results, bounds, runs=3)["targets"][0]
    assert target["value"] == math.inf and not target["met"]


def test_timing_reads_the_exporter_jobs_own_scrape_interval() -> None:
    config = {
        "global": {"scrape_interval": "5s"},
        "scrape_configs": [
            {"job_name": "alert-receiver"},
            {"job_name": "exchange-exporter", "scrape_interval": "1s"},
        ],
    }
    assert nb._exporter_scrape_interval(config) == "1s"
    assert nb._exporter_scrape_interval({"global": {"scrape_interval": "5s"}}) == "5s"
    assert nb._exporter_scrape_interval({}) == "1m"


def test_a_consecutive_failure_count_adds_probe_intervals_to_the_outage_bounds() -> None:
    outage = bn.SCENARIOS[0]
    timing = nb.Timing(1, 1, 0, "critical", 0, 5, 1, 5, 4, consecutive=2)
    bounds = nb.expected_bounds(outage, timing)
    assert (bounds.low, bounds.high) == pytest.approx((0.8, 4.2))
