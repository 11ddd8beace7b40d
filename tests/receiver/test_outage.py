"""Notifier outage: Slack answers 500, then 429 with ``Retry-After: 1``, then 200.

A local fake Slack (real HTTP on loopback) plays the outage while the receiver (in-process app,
real worker) gets firing and resolved alerts. Every notification must arrive exactly once, each
alert's firing before its resolved message, the 429's ``Retry-After`` must be honoured (no
request to Slack during the pause), and the JSONL channel must not be held up by Slack.

Figures (requests by answer, messages delivered, duplicates) are printed (``pytest -s``) and
written to ``outage_figures.json`` in the test's tmp directory.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from receiver.app import create_app
from tests.receiver.test_receiver_app import make_settings, read_lines, wait_for
from testsupport.fake_slack import FakeSlack

pytestmark = pytest.mark.e2e  # a fake Slack server on loopback

ALERTS = 10
RESOLVED = 5
FAILURES_500 = 8
RATE_LIMITED = 3
_MESSAGE = re.compile(r"(FIRING|RESOLVED): (Outage\d{4})")


def payload(i: int, status: str) -> dict[str, Any]:
    name = f"Outage{i:04d}"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": status,
        "receiver": "outage-test",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": name, "exchange": "okx", "severity": "warning"},
                "annotations": {"summary": f"outage test alert {i}"},
                "startsAt": "2026-11-21T07:22:00Z",
                "endsAt": "2026-11-21T07:30:00Z"
                if status == "resolved"
                else "0001-01-01T00:00:00Z",
                "fingerprint": f"{i:016x}",
            }
        ],
    }


def test_slack_outage_500_then_429_then_200(tmp_path: Path) -> None:
    script = [(500, {})] * FAILURES_500 + [(429, {"Retry-After": "1"})] * RATE_LIMITED
    with FakeSlack(script=script) as slack:
        settings = make_settings(
            tmp_path,
            slack_webhook_url=slack.url,
            slack_min_interval_seconds=0,
            notify_retry_base_seconds=0.05,
            notify_retry_max_seconds=0.4,
        )
        assert settings.notify_file is not None
        started = time.monotonic()
        with TestClient(create_app(settings)) as c:
            for i in range(ALERTS):
                assert c.post("/alerts/warning", json=payload(i, "firing")).status_code == 200
            for i in range(RESOLVED):
                assert c.post("/alerts/warning", json=payload(i, "resolved")).status_code == 200
            total = ALERTS + RESOLVED
            wait_for(lambda: len(read_lines(settings.notify_file)) >= total, timeout=10)
            jsonl_done = time.monotonic() - started
            wait_for(lambda: len(slack.received) >= total, timeout=30)
            wait_for(lambda: c.app.state.store.counts()["pending"] == 0, timeout=10)
            time.sleep(0.3)  # a duplicate still in flight would show up now
            metrics = c.get("/metrics").text
        elapsed = time.monotonic() - started

    messages = [
        (m.group(1), m.group(2))
        for _, status, body in slack.log
        if status == 200 and (m := _MESSAGE.search(str(body.get("text", ""))))
    ]
    lines = read_lines(settings.notify_file)
    jsonl = [(x["status"].upper(), x["alertname"]) for x in lines]
    expected = {("FIRING", f"Outage{i:04d}") for i in range(ALERTS)} | {
        ("RESOLVED", f"Outage{i:04d}") for i in range(RESOLVED)
    }
    answers = Counter(status for _, status, _ in slack.log)
    # Sends already in flight when the first 429 came back arrive within milliseconds of it;
    # after that, nothing may reach Slack until Retry-After (1 s) has passed.
    last_429 = max(t for t, status, _ in slack.log if status == 429)
    after_429 = min(t for t, _, _ in slack.log if t > last_429 + 0.1)
    figures = {
        "notifications": len(expected),
        "slack_requests": len(slack.log),
        "slack_answers": {str(k): v for k, v in sorted(answers.items())},
        "slack_delivered_distinct": len(set(messages)),
        "slack_duplicates": len(messages) - len(set(messages)),
        "jsonl_delivered_distinct": len(set(jsonl)),
        "jsonl_duplicates": len(jsonl) - len(set(jsonl)),
        "pause_after_last_429_seconds": round(after_429 - last_429, 2),
        "jsonl_all_written_after_seconds": round(jsonl_done, 2),
        "seconds": round(elapsed, 2),
        "retried_metric": sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("alert_receiver_deliveries_total") and 'result="retried"' in line
        ),
    }
    print("\noutage test figures:", json.dumps(figures, indent=2))
    (tmp_path / "outage_figures.json").write_text(json.dumps(figures, indent=2))

    assert answers[500] == FAILURES_500 and answers[429] == RATE_LIMITED
    assert set(messages) == expected and figures["slack_duplicates"] == 0
    assert set(jsonl) == expected and figures["jsonl_duplicates"] == 0
    for i in range(RESOLVED):  # firing before resolved, on each channel
        name = f"Outage{i:04d}"
        assert messages.index(("FIRING", name)) < messages.index(("RESOLVED", name))
        assert jsonl.index(("FIRING", name)) < jsonl.index(("RESOLVED", name))
    assert figures["pause_after_last_429_seconds"] >= 0.9  # Retry-After honoured
    assert figures["retried_metric"] == FAILURES_500 + RATE_LIMITED
    assert jsonl_done < 5  # JSONL is not held up by Slack's outage
