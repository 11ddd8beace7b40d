"""The intake hot path: one-pass validation with the same answers as the long way and the
summarised per-event log lines (the stored alert JSON and the worker's merged transaction are
store tests: ``tests/receiver/store/``)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from receiver.app import create_app
from receiver.logs import SummarizedLog
from receiver.settings import Settings
from tests.receiver.test_receiver_app import exchange_payload, make_settings

# --- intake: one-pass validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"this is not json", 400, "body: not valid JSON (Expecting value"),
        (b"[]", 422, "body: must be a JSON object"),
        (b'{"status": "firing", "alerts": [], "receiver": "\\ud800"}', 422, "receiver: "),
        (b'{"status": "firing", "alerts": [], "x": NaN}', 200, None),  # json.loads takes NaN
        (b"\xef\xbb\xbf" + json.dumps(exchange_payload()).encode(), 200, None),  # BOM
        (b'{"status": "pending", "alerts": []}', 422, "status: "),
        (b"[" * 100_000 + b"]" * 100_000, 400, "body: not valid JSON (RecursionError)"),
    ],
)
def test_intake_answers_like_the_long_way(
    tmp_path: Path, body: bytes, status: int, detail: str | None
) -> None:
    settings: Settings = make_settings(tmp_path)
    with TestClient(create_app(settings, start_worker=False)) as c:
        resp = c.post("/alerts", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    if detail is not None:
        assert resp.json()["detail"].startswith(detail)


def test_intake_answer_is_the_json_it_always_was(tmp_path: Path) -> None:
    settings: Settings = make_settings(tmp_path)
    payload = exchange_payload()
    with TestClient(create_app(settings, start_worker=False)) as c:
        first = c.post("/alerts/critical", json=payload)
        again = c.post("/alerts/critical", json=payload)
        metrics = c.get("/metrics").text
    assert first.status_code == again.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.content == b'{"status":"stored","alerts":1,"new":1,"duplicates":0}'
    assert again.json() == {"status": "stored", "alerts": 1, "new": 0, "duplicates": 1}
    assert 'alert_receiver_webhooks_total{result="accepted"} 1.0' in metrics
    assert 'alert_receiver_webhooks_total{result="duplicate"} 1.0' in metrics


# --- summarised log lines ---------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_summarized_log_keeps_quiet_traffic_at_info_and_summarises_bursts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("receiver.test_hotpath")
    clock = _Clock()

    async def scenario() -> None:
        slog = SummarizedLog(logger, "%d more in %.0fs: %d alerts", interval=10.0, clock=clock)
        slog.log((2,), "event %d", 1)  # first: INFO
        for i in range(2, 5):
            clock.now += 1
            slog.log((2,), "event %d", i)  # inside the window: DEBUG, counted
        clock.now += 20
        slog.flush()  # what the timer does once the window has passed
        slog.log((2,), "event %d", 5)  # a quiet period followed: INFO again
        clock.now += 1
        slog.log((3,), "event %d", 6)
        slog.flush()  # e.g. at shutdown

    caplog.set_level(logging.DEBUG, logger="receiver.test_hotpath")
    asyncio.run(scenario())
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("INFO", "event 1"),
        ("DEBUG", "event 2"),
        ("DEBUG", "event 3"),
        ("DEBUG", "event 4"),
        ("INFO", "3 more in 23s: 6 alerts"),
        ("DEBUG", "event 5"),  # the summary just ended a window: this starts the next one
        ("DEBUG", "event 6"),
        ("INFO", "2 more in 1s: 5 alerts"),
    ]


def test_summarized_log_timer_emits_the_summary(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("receiver.test_hotpath")

    async def scenario() -> None:
        slog = SummarizedLog(logger, "%d more in %.1fs", interval=0.05)
        slog.log((), "event a")
        slog.log((), "event b")
        await asyncio.sleep(0.2)

    caplog.set_level(logging.INFO, logger="receiver.test_hotpath")
    asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "event a"
    assert messages[1].startswith("1 more in ")


def test_intake_logs_each_webhook_at_debug_and_a_summary_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings: Settings = make_settings(tmp_path)
    caplog.set_level(logging.DEBUG, logger="receiver.app")
    with TestClient(create_app(settings, start_worker=False)) as c:
        for i in range(3):
            payload = exchange_payload()
            payload["groupKey"] = f"g{i}"
            assert c.post("/alerts", json=payload).status_code == 200
    stored = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.getMessage().startswith("stored")
    ]
    assert stored[0][0] == "INFO" and stored[0][1].startswith("stored webhook 1: 1 alerts")
    assert [level for level, _ in stored[1:3]] == ["DEBUG", "DEBUG"]
    # flushed at shutdown
    assert stored[3][0] == "INFO"
    assert stored[3][1].startswith("stored 2 more webhooks in the last ")
    assert stored[3][1].endswith(": 2 alerts (2 new, 0 duplicate) (each one at DEBUG)")


def test_snake_case_keys_are_unknown_extras_not_fields(tmp_path: Path) -> None:
    """The OpenAPI schema names the wire (alias) fields only, and allows extras: a
    ``generator_url`` key of any type is ignored, not validated as ``generatorURL``
    (found by the schemathesis fuzz test)."""
    payload = exchange_payload()
    payload["alerts"][0]["generator_url"] = []
    payload["group_key"] = {"not": "a string"}
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as c:
        answer = c.post("/alerts/critical", json=payload)
    assert answer.status_code == 200, answer.text
