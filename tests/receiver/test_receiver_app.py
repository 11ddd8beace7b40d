"""End-to-end tests of the receiver app: intake, storage, worker, notifiers (respx-mocked)."""

from __future__ import annotations

import copy
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from receiver.app import create_app
from receiver.settings import Settings
from receiver.store import DeliveryState, Store, StoreError
from receiver.store.sqlite.schema import SCHEMA_VERSION

# Real payload received from Alertmanager 0.25 (shared/reference/alertmanager-and-notifiers.md).
AM025_PAYLOAD: dict[str, Any] = {
    "receiver": "webhook",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "DemoQueueHigh",
                "instance": "127.0.0.1:18000",
                "job": "demo",
                "severity": "critical",
            },
            "annotations": {"summary": "Queue depth is 42 on 127.0.0.1:18000"},
            "startsAt": "2026-11-21T07:22:00.568Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://vm:19090/graph?g0.expr=demo_queue_depth+%3E+10&g0.tab=1",
            "fingerprint": "b0074a0f0d6d0a55",
        }
    ],
    "groupLabels": {"alertname": "DemoQueueHigh"},
    "commonLabels": {
        "alertname": "DemoQueueHigh",
        "instance": "127.0.0.1:18000",
        "job": "demo",
        "severity": "critical",
    },
    "commonAnnotations": {"summary": "Queue depth is 42 on 127.0.0.1:18000"},
    "externalURL": "http://vm:19093",
    "version": "4",
    "groupKey": '{}:{alertname="DemoQueueHigh"}',
    "truncatedAlerts": 0,
}

SLACK_URL = "https://hooks.slack.test/services/T000/B000/slackSECRETtoken"
DISCORD_URL = "https://discord.test/api/webhooks/123/discordSECRETtoken"
LLM_URL = "http://llm.test/v1"
LLM_KEY = "sk-test-VERYSECRET-0123456789"

JSONL_KEYS = {
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
}


def exchange_payload(
    *,
    alertname: str = "ExchangeApiDown",
    status: str = "firing",
    exchange: str = "binance",
    ends_at: str = "0001-01-01T00:00:00Z",
    annotations: dict[str, str] | None = None,
    fingerprint: str = "f00dfeed00000001",
) -> dict[str, Any]:
    """A webhook with one exchange-watch alert."""
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "exchange-watch",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": alertname,
                    "exchange": exchange,
                    "endpoint": "/api/v3/ping",
                    "severity": "critical",
                },
                "annotations": annotations
                if annotations is not None
                else {
                    "summary": f"{exchange} API down",
                    "runbook_url": "https://runbooks.local/exchange-api-down",
                },
                "startsAt": "2026-11-21T07:22:00.568123456Z",
                "endsAt": ends_at,
                "generatorURL": "http://prom.local:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
                "fingerprint": fingerprint,
            }
        ],
    }


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings isolated from the environment: tmp database and JSONL file, fast retries."""
    values: dict[str, Any] = {
        "receiver_db_path": tmp_path / "receiver.db",
        "notify_file": tmp_path / "notify.jsonl",
        "notify_retry_base_seconds": 0.01,
        "slack_webhook_url": None,
        "discord_webhook_url": None,
        "llm_base_url": None,
        "llm_model": None,
        "llm_api_key": None,
        "prometheus_url": None,
    }
    values.update(overrides)
    return Settings(**values)


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def wait_lines(path: Path, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    wait_for(lambda: len(read_lines(path)) >= count, timeout)
    return read_lines(path)


def wait_idle(store: Store, timeout: float = 5.0) -> None:
    wait_for(lambda: store.counts()["pending"] == 0, timeout)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def store_of(client: TestClient) -> Store:
    return client.app.state.store  # type: ignore[attr-defined,no-any-return]


# --- intake and JSONL -------------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_alertmanager_025_payload_stored_and_notified(
    client: TestClient, settings: Settings
) -> None:
    resp = client.post("/alerts", json=AM025_PAYLOAD)
    assert resp.status_code == 200
    assert resp.json() == {"status": "stored", "alerts": 1, "new": 1, "duplicates": 0}

    assert settings.notify_file is not None
    (line,) = wait_lines(settings.notify_file, 1)
    assert set(line) >= JSONL_KEYS
    assert line["status"] == "firing"
    assert line["alertname"] == "DemoQueueHigh"
    assert line["exchange"] is None and line["endpoint"] is None
    assert line["severity"] == "critical"
    assert line["fingerprint"] == "b0074a0f0d6d0a55"
    assert line["group_key"] == '{}:{alertname="DemoQueueHigh"}'
    assert line["receiver"] == "webhook"
    assert line["starts_at"] == "2026-11-21T07:22:00.568Z"
    assert line["ends_at"] == "0001-01-01T00:00:00Z"
    assert line["summary"] == "Queue depth is 42 on 127.0.0.1:18000"
    assert line["description"] is None
    assert line["labels"]["instance"] == "127.0.0.1:18000"
    assert line["notified_at"].endswith("Z")
    diagnosis = line["diagnosis"]
    assert diagnosis["source"] == "rules"
    assert diagnosis["root_cause_category"] == "unknown"
    assert "Queue depth is 42" in diagnosis["diagnosis"]
    assert 1 <= len(diagnosis["action_items"]) <= 5

    wait_idle(store_of(client))
    db = sqlite3.connect(settings.receiver_db_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM webhooks").fetchone()[0] == 1
    row = db.execute("SELECT state, channel FROM deliveries").fetchone()
    assert row == ("delivered", "jsonl")


def test_route_is_stored(client: TestClient, settings: Settings) -> None:
    assert client.post("/alerts/trading-desk", json=exchange_payload()).status_code == 200
    assert settings.notify_file is not None
    wait_lines(settings.notify_file, 1)
    db = sqlite3.connect(settings.receiver_db_path)
    assert db.execute("SELECT route FROM notifications").fetchone()[0] == "trading-desk"
    assert client.post("/alerts/bad%20route!", json=exchange_payload()).status_code == 422


def test_resolved_produces_resolved_notification(client: TestClient, settings: Settings) -> None:
    assert client.post("/alerts", json=exchange_payload()).status_code == 200
    resolved = exchange_payload(status="resolved", ends_at="2026-11-21T07:40:00.000Z")
    assert client.post("/alerts", json=resolved).status_code == 200
    assert settings.notify_file is not None
    first, second = wait_lines(settings.notify_file, 2)
    assert first["status"] == "firing"
    assert first["diagnosis"]["root_cause_category"] == "outage"
    assert second["status"] == "resolved"
    assert second["ends_at"] == "2026-11-21T07:40:00.000Z"
    assert second["diagnosis"]["source"] == "rules"
    assert "recovered" in second["diagnosis"]["diagnosis"]
    assert any("Reconcile" in item for item in second["diagnosis"]["action_items"])


def test_per_alert_status_in_mixed_group(client: TestClient, settings: Settings) -> None:
    payload = exchange_payload()
    other = copy.deepcopy(payload["alerts"][0])
    other.update(status="resolved", endsAt="2026-11-21T07:30:00Z", fingerprint="0000000000000002")
    other["labels"]["exchange"] = "okx"
    payload["alerts"].append(other)
    resp = client.post("/alerts", json=payload)
    assert resp.json() == {"status": "stored", "alerts": 2, "new": 2, "duplicates": 0}
    assert settings.notify_file is not None
    lines = wait_lines(settings.notify_file, 2)
    assert sorted((x["exchange"], x["status"]) for x in lines) == [
        ("binance", "firing"),
        ("okx", "resolved"),
    ]


def test_duplicate_webhook_notifies_once(client: TestClient, settings: Settings) -> None:
    payload = exchange_payload()
    assert client.post("/alerts", json=payload).status_code == 200
    assert settings.notify_file is not None
    wait_lines(settings.notify_file, 1)
    wait_idle(store_of(client))
    again = client.post("/alerts", json=payload)
    assert again.status_code == 200
    assert again.json() == {"status": "stored", "alerts": 1, "new": 0, "duplicates": 1}
    counts = store_of(client).counts()
    assert counts["webhooks"] == 2
    assert counts["pending"] == 0 and counts["done"] == 1
    time.sleep(0.2)
    assert len(read_lines(settings.notify_file)) == 1


def test_tolerates_unknown_and_newer_fields(client: TestClient, settings: Settings) -> None:
    payload = exchange_payload()
    payload["notification_reason"] = "alert_group_updated"
    payload["routeLabels"] = {"team": "trading"}
    payload["someFutureField"] = {"nested": [1, 2, 3]}
    payload["alerts"][0]["someFutureAlertField"] = True
    del payload["truncatedAlerts"]
    assert client.post("/alerts", json=payload).status_code == 200
    db = sqlite3.connect(settings.receiver_db_path)
    stored = json.loads(db.execute("SELECT payload FROM webhooks").fetchone()[0])
    assert stored["someFutureField"] == {"nested": [1, 2, 3]}  # kept verbatim for audit


NOT_STORED_CASES: list[tuple[str, Any, int, str]] = [
    ("not json", b"this is not json", 400, "body"),
    ("array", b"[]", 422, "body"),
    ("missing alerts", {"status": "firing", "version": "4"}, 422, "alerts"),
    ("missing status", {"alerts": [], "version": "4"}, 422, "status"),
    ("alerts not list", {"status": "firing", "alerts": {"a": 1}}, 422, "alerts"),
    ("bad status", {"status": "pending", "alerts": []}, 422, "status"),
]


def _bad_alert(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    payload = exchange_payload()
    mutate(payload["alerts"][0])
    return payload


ALERT_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("bad time", _bad_alert(lambda a: a.update(startsAt="yesterday")), "alerts.0.startsAt"),
    ("date only", _bad_alert(lambda a: a.update(startsAt="2026-11-21")), "alerts.0.startsAt"),
    ("no offset", _bad_alert(lambda a: a.update(endsAt="2026-11-21T07:22:00")), "alerts.0.endsAt"),
    ("bad month", _bad_alert(lambda a: a.update(startsAt="2026-13-01T00:00:00Z")), "startsAt"),
    ("no startsAt", _bad_alert(lambda a: a.pop("startsAt")), "alerts.0.startsAt"),
    ("label int", _bad_alert(lambda a: a["labels"].update(x=1)), "alerts.0.labels.x"),
    ("labels list", _bad_alert(lambda a: a.update(labels=["a"])), "alerts.0.labels"),
    ("surrogate", _bad_alert(lambda a: a["labels"].update(x="\ud800")), "alerts.0.labels.x"),
]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [(c[1], c[2], c[3]) for c in NOT_STORED_CASES] + [(c[1], 422, c[2]) for c in ALERT_CASES],
    ids=[c[0] for c in NOT_STORED_CASES] + [c[0] for c in ALERT_CASES],
)
def test_invalid_input_rejected_and_not_stored(
    client: TestClient, body: Any, status: int, field: str
) -> None:
    # json.dumps escapes lone surrogates as \\ud800, as a Go/Alertmanager client could send them.
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = client.post("/alerts", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    assert field in resp.json()["detail"]
    assert store_of(client).counts()["webhooks"] == 0


def test_deeply_nested_json_is_4xx(client: TestClient) -> None:
    resp = client.post("/alerts", content=b"[" * 200_000 + b"]" * 200_000)
    assert 400 <= resp.status_code < 500
    assert store_of(client).counts()["webhooks"] == 0


def test_invalid_utf8_is_400(client: TestClient) -> None:
    resp = client.post("/alerts", content=b'{"status": "\xff\xfe"}')
    assert resp.status_code == 400


def test_oversized_body_413(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body_bytes=2048)
    big = exchange_payload(annotations={"description": "x" * 4000})
    with TestClient(create_app(settings)) as c:
        assert c.post("/alerts", json=big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            data = json.dumps(big).encode()
            for i in range(0, len(data), 500):
                yield data[i : i + 500]

        assert c.post("/alerts", content=chunks()).status_code == 413
        assert store_of(c).counts()["webhooks"] == 0
        assert c.post("/alerts", json=exchange_payload()).status_code == 200


def test_unwritable_database_gives_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, receiver_db_path=tmp_path)  # a directory: cannot open
    with TestClient(create_app(settings)) as c:
        resp = c.post("/alerts", json=exchange_payload())
        assert resp.status_code == 503
        assert "retry" in resp.json()["detail"]
        assert c.get("/healthz").status_code == 200


def test_storage_failure_mid_run_gives_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise StoreError("database error: disk I/O error")

    monkeypatch.setattr(store_of(client), "ingest_many", broken)
    assert client.post("/alerts", json=exchange_payload()).status_code == 503


def test_worker_resumes_pending_rows_after_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.notify_file is not None
    with TestClient(create_app(settings, start_worker=False)) as c:
        assert c.post("/alerts", json=exchange_payload()).status_code == 200
        assert c.post("/alerts", json=AM025_PAYLOAD).status_code == 200
        assert store_of(c).counts()["pending"] == 2
    assert read_lines(settings.notify_file) == []

    with TestClient(create_app(settings)) as c:
        lines = wait_lines(settings.notify_file, 2)
        wait_idle(store_of(c))
    assert {x["alertname"] for x in lines} == {"ExchangeApiDown", "DemoQueueHigh"}


def test_resume_skips_channels_already_delivered(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, slack_webhook_url=SLACK_URL)
    with TestClient(create_app(settings, start_worker=False)) as c:
        assert c.post("/alerts", json=exchange_payload()).status_code == 200
        store = store_of(c)
        (row,) = store.due(math.inf)
        store.prepare(row.id, row.group_key, row.fingerprint, [("slack", "slack")], 0.0)
        store.update_delivery(row.id, "slack", DeliveryState.DELIVERED, attempts=1)
    with respx.mock(assert_all_called=False) as mock:
        slack = mock.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
        with TestClient(create_app(settings)) as c:
            assert settings.notify_file is not None
            wait_lines(settings.notify_file, 1)
            wait_idle(store_of(c))
        assert not slack.called


# --- notifiers through the app ----------------------------------------------------------------


def test_slack_and_discord_delivery(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, slack_webhook_url=SLACK_URL, discord_webhook_url=DISCORD_URL)
    hostile = {
        "summary": "<!channel> @everyone binance is down & <@U123>",
        "description": "see [here](https://evil.example) @here",
    }
    with respx.mock(assert_all_called=True) as mock:
        slack = mock.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
        discord = mock.post(DISCORD_URL).mock(return_value=httpx.Response(204))
        with TestClient(create_app(settings)) as c:
            assert c.post("/alerts", json=exchange_payload(annotations=hostile)).status_code == 200
            wait_for(lambda: slack.called and discord.called)
            wait_idle(store_of(c))
    slack_body = json.loads(slack.calls.last.request.content)
    assert "blocks" in slack_body and slack_body["text"]
    raw = json.dumps(slack_body, ensure_ascii=False)
    assert "<!channel>" not in raw and "&lt;!channel&gt;" in raw
    assert "@everyone" not in raw and "@here" not in raw
    assert slack_body["blocks"][0]["text"]["text"].startswith("🔴 FIRING")
    discord_body = json.loads(discord.calls.last.request.content)
    assert discord_body["allowed_mentions"] == {"parse": []}
    assert "@everyone" not in json.dumps(discord_body, ensure_ascii=False)


def test_slack_429_is_retried_after_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, slack_webhook_url=SLACK_URL)
    times: list[float] = []

    def respond(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        if len(times) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, text="rate_limited")
        return httpx.Response(200, text="ok")

    with respx.mock() as mock:
        mock.post(SLACK_URL).mock(side_effect=respond)
        with TestClient(create_app(settings)) as c:
            assert c.post("/alerts", json=exchange_payload()).status_code == 200
            wait_for(lambda: len(times) >= 2)
            wait_idle(store_of(c))
    assert times[1] - times[0] >= 0.95
    db = sqlite3.connect(settings.receiver_db_path)
    assert db.execute(
        "SELECT state, attempts FROM deliveries WHERE channel = 'slack'"
    ).fetchone() == ("delivered", 2)


def test_notifier_failure_does_not_crash_worker(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, slack_webhook_url=SLACK_URL, notify_max_attempts=2, slack_min_interval_seconds=0
    )
    with respx.mock() as mock:
        slack = mock.post(SLACK_URL).mock(return_value=httpx.Response(500, text="boom"))
        with TestClient(create_app(settings)) as c:
            assert c.post("/alerts", json=exchange_payload()).status_code == 200
            assert settings.notify_file is not None
            wait_lines(settings.notify_file, 1)
            wait_idle(store_of(c))
            assert slack.call_count == 2
            # The worker still processes new alerts afterwards.
            second = exchange_payload(fingerprint="f00dfeed00000002")
            assert c.post("/alerts", json=second).status_code == 200
            wait_lines(settings.notify_file, 2)
            wait_idle(store_of(c))
    db = sqlite3.connect(settings.receiver_db_path)
    states = db.execute("SELECT state FROM deliveries WHERE channel = 'slack'").fetchall()
    assert states == [("dropped",), ("dropped",)]  # NOTIFY_MAX_ATTEMPTS reached


# --- LLM through the app ----------------------------------------------------------------------


def llm_reply(content: str) -> httpx.Response:
    return httpx.Response(
        200, json={"choices": [{"message": {"role": "assistant", "content": content}}]}
    )


VALID_LLM_OUTPUT = {
    "diagnosis": "Binance REST is returning 5xx for all endpoints.",
    "impact": "Orders on Binance may fail; execution status unknown.",
    "action_items": ["Pause order placement", "Reconcile open orders"],
    "rollback_plan": "Resume gradually.",
    "estimated_recovery_time": "15 minutes",
    "root_cause_category": "outage",
    "confidence": 0.8,
    "source": "rules",
}


def test_llm_diagnosis_used_and_key_never_leaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(
        tmp_path,
        llm_base_url=LLM_URL,
        llm_model="test-model",
        llm_api_key=LLM_KEY,
        slack_webhook_url=SLACK_URL,
    )
    with respx.mock() as mock:
        llm = mock.post(f"{LLM_URL}/chat/completions").mock(
            return_value=llm_reply(json.dumps(VALID_LLM_OUTPUT))
        )
        slack = mock.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
        with TestClient(create_app(settings)) as c:
            assert c.post("/alerts", json=exchange_payload()).status_code == 200
            assert settings.notify_file is not None
            (line,) = wait_lines(settings.notify_file, 1)
            wait_idle(store_of(c))
    assert line["diagnosis"]["source"] == "llm"
    assert line["diagnosis"]["diagnosis"] == VALID_LLM_OUTPUT["diagnosis"]
    request = llm.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {LLM_KEY}"
    assert LLM_KEY not in request.content.decode()
    assert LLM_KEY not in slack.calls.last.request.content.decode()
    assert LLM_KEY not in json.dumps(line)
    assert LLM_KEY not in caplog.text
    assert "slackSECRETtoken" not in caplog.text
    assert "HTTP Request: POST <redacted>" in caplog.text  # httpx logs the (redacted) URL


def test_llm_failure_falls_back_and_logs_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path, llm_base_url=LLM_URL, llm_model="m", llm_api_key=LLM_KEY)
    with respx.mock() as mock:
        mock.post(f"{LLM_URL}/chat/completions").mock(
            return_value=httpx.Response(500, text=f"upstream error for key {LLM_KEY}")
        )
        with TestClient(create_app(settings)) as c:
            assert c.post("/alerts", json=exchange_payload()).status_code == 200
            assert settings.notify_file is not None
            (line,) = wait_lines(settings.notify_file, 1)
    assert line["diagnosis"]["source"] == "rules"
    assert "LLM diagnosis failed" in caplog.text
    assert LLM_KEY not in caplog.text


def test_resolved_alert_does_not_call_llm(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm_base_url=LLM_URL, llm_model="m")
    resolved = exchange_payload(status="resolved", ends_at="2026-11-21T07:40:00Z")
    with respx.mock(assert_all_called=False) as mock:
        llm = mock.post(f"{LLM_URL}/chat/completions").mock(
            return_value=llm_reply(json.dumps(VALID_LLM_OUTPUT))
        )
        with TestClient(create_app(settings)) as c:
            assert c.post("/alerts", json=resolved).status_code == 200
            assert settings.notify_file is not None
            (line,) = wait_lines(settings.notify_file, 1)
    assert line["status"] == "resolved"
    assert line["diagnosis"]["source"] == "rules"
    assert not llm.called


def test_metrics_count_intake_and_deliveries(client: TestClient, settings: Settings) -> None:
    client.post("/alerts", content=b"{not json")
    assert client.post("/alerts", json=copy.deepcopy(AM025_PAYLOAD)).status_code == 200
    wait_lines(settings.notify_file, 1)
    wait_for(
        lambda: (
            'alert_receiver_deliveries_total{channel="jsonl",notifier="jsonl",result="delivered"}'
            " 1.0" in client.get("/metrics").text
        )
    )
    text = client.get("/metrics").text
    assert 'alert_receiver_webhooks_total{result="accepted"} 1.0' in text
    assert 'alert_receiver_webhooks_total{result="rejected"} 1.0' in text


def test_heartbeat_is_recorded_not_notified(client: TestClient, settings: Settings) -> None:
    status = client.get("/heartbeat").json()
    assert status["deadman"].pop("leader") in (True, False)  # at its first check, or not yet
    assert status["deadman"].pop("instance") == settings.instance
    assert status == {
        "last_heartbeat": None,
        "age_seconds": None,
        "heartbeats": 0,
        "deadman": {"state": "disarmed", "timeout_seconds": 300.0, "alarm_since": None},
    }
    watchdog = copy.deepcopy(AM025_PAYLOAD)
    watchdog["alerts"][0]["labels"]["alertname"] = "Watchdog"
    response = client.post("/heartbeat", json=watchdog)
    assert response.status_code == 200
    status = client.get("/heartbeat").json()
    assert status["age_seconds"] is not None and status["age_seconds"] < 5
    assert "alert_receiver_heartbeats_total 1.0" in client.get("/metrics").text
    assert client.post("/heartbeat", content=b"{nope").status_code == 400
    # No body is a heartbeat; a body of whitespace is not JSON (schemathesis found it).
    blank = client.post("/heartbeat", content=b"\r\n", headers={"Content-Type": "application/json"})
    assert blank.status_code == 400 and blank.json()["detail"].startswith("body: not valid JSON")
    time.sleep(0.3)
    assert not settings.notify_file.exists() or not read_lines(settings.notify_file)


# --- inbound auth -----------------------------------------------------------------------------

BEARER = "am-token-0123456789-SECRET"


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("path", ["/alerts", "/alerts/critical", "/heartbeat"])
def test_bearer_auth_required_when_configured(
    tmp_path: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path, receiver_bearer_token=BEARER)
    with TestClient(create_app(settings)) as c:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {BEARER}"},
            {"Authorization": f"Bearer {BEARER}x"},
            {"Authorization": "Bearer"},
        ):
            resp = c.post(path, json=exchange_payload(), headers=headers)
            assert resp.status_code == 401, headers
            assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
            assert "authorization" in resp.json()["detail"]
        assert store_of(c).counts()["webhooks"] == 0
        ok = c.post(path, json=exchange_payload(), headers={"Authorization": f"bearer {BEARER}"})
        assert ok.status_code == 200
        # Reads stay open: Prometheus scrapes /metrics, probes hit /healthz and /readyz.
        assert c.get("/healthz").status_code == 200
        assert 'alert_receiver_webhooks_total{result="unauthorized"} 5.0' in c.get("/metrics").text
    assert BEARER not in caplog.text


def test_basic_auth_from_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    (tmp_path / "user").write_text("alertmanager\n")
    (tmp_path / "pass").write_text("  pässwörd-SECRET \n")
    settings = make_settings(
        tmp_path,
        receiver_basic_auth_username_file=tmp_path / "user",
        receiver_basic_auth_password_file=tmp_path / "pass",
    )
    with TestClient(create_app(settings)) as c:
        for header in (
            _basic("alertmanager", "wrong"),
            _basic("someone", "pässwörd-SECRET"),
            "Basic !!notbase64!!",
            "Basic " + "YWxlcnRtYW5hZ2Vy",  # no colon
            f"Bearer {BEARER}",
        ):
            resp = c.post("/alerts", json=exchange_payload(), headers={"Authorization": header})
            assert resp.status_code == 401, header
            assert resp.headers["WWW-Authenticate"].startswith("Basic ")
        good = _basic("alertmanager", "pässwörd-SECRET")
        resp = c.post("/alerts", json=exchange_payload(), headers={"Authorization": good})
        assert resp.status_code == 200
        schema = c.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["alertmanager"]["scheme"] == "basic"
    assert "pässwörd-SECRET" not in caplog.text


# --- readiness, metrics, schema ---------------------------------------------------------------


def test_readyz(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as c:
        assert c.get("/readyz").json() == {"status": "ok"}
    with TestClient(create_app(make_settings(tmp_path), start_worker=False)) as c:
        resp = c.get("/readyz")
        assert resp.status_code == 503
        assert resp.json() == {"status": "unavailable", "reasons": ["worker: not running"]}
    with TestClient(create_app(make_settings(tmp_path, receiver_db_path=tmp_path))) as c:
        resp = c.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["reasons"][0].startswith(f"database sqlite:{tmp_path}: not writable")
        assert c.get("/healthz").status_code == 200


def test_metrics_results_and_unsent_gauges(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body_bytes=2048)
    with TestClient(create_app(settings, start_worker=False)) as c:
        assert c.post("/alerts", json=exchange_payload()).status_code == 200
        assert c.post("/alerts", json=exchange_payload()).json()["duplicates"] == 1
        assert c.post("/alerts", json={"status": "firing"}).status_code == 422
        big = exchange_payload(annotations={"description": "x" * 4000})
        assert c.post("/alerts", json=big).status_code == 413
        assert c.post("/alerts/bad route", json=exchange_payload()).status_code == 422
        time.sleep(0.05)
        text = c.get("/metrics").text
    assert 'alert_receiver_webhooks_total{result="accepted"} 1.0' in text
    assert 'alert_receiver_webhooks_total{result="duplicate"} 1.0' in text
    assert 'alert_receiver_webhooks_total{result="rejected"} 2.0' in text
    assert 'alert_receiver_webhooks_total{result="too_large"} 1.0' in text
    assert 'alert_receiver_webhooks_total{result="storage_error"} 0.0' in text
    assert "alert_receiver_unsent_notifications 1.0" in text
    age = float(text.split("\nalert_receiver_oldest_unsent_age_seconds ")[1].split()[0])
    assert 0 < age < 60
    assert "alert_receiver_deadman_state 0.0" in text


def test_invalid_route_names_the_field(client: TestClient) -> None:
    resp = client.post("/alerts/" + "x" * 65, json=exchange_payload())
    assert resp.status_code == 422
    body = resp.json()
    assert body["detail"].startswith("route:")
    assert body["errors"][0]["field"] == "route"


def test_openapi_schema_describes_the_webhook(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/alerts"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/AlertmanagerWebhook"}
    webhook = schema["components"]["schemas"]["AlertmanagerWebhook"]
    assert set(webhook["required"]) == {"status", "alerts"}
    assert "Alert" in schema["components"]["schemas"]
    assert {"400", "413", "422", "503"} <= set(
        schema["paths"]["/alerts/{route}"]["post"]["responses"]
    )


# --- delivery: retries later, drops, crash recovery, ordering ---------------------------------


def test_failing_delivery_is_retried_later_then_dropped_at_max_age(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tmp_path,
        slack_webhook_url=SLACK_URL,
        slack_min_interval_seconds=0,
        notify_retry_base_seconds=0.05,
        notify_retry_max_seconds=0.1,
        notify_max_age_seconds=0.6,
    )
    with respx.mock() as mock:
        slack = mock.post(SLACK_URL).mock(return_value=httpx.Response(503, text="down"))
        with TestClient(create_app(settings)) as c:
            assert c.post("/alerts", json=exchange_payload()).status_code == 200
            wait_idle(store_of(c), timeout=5)
            text = c.get("/metrics").text
    assert slack.call_count >= 4  # far beyond the old 'failed forever' after a few tries
    assert 'notifier="slack",result="dropped"} 1.0' in text
    assert "delivery to slack dropped after maximum age reached" in caplog.text
    db = sqlite3.connect(settings.receiver_db_path)
    assert db.execute(
        "SELECT state, last_error FROM deliveries WHERE notifier = 'slack'"
    ).fetchone() == ("dropped", "slack returned HTTP 503: down")
    assert db.execute("SELECT state FROM deliveries WHERE notifier = 'jsonl'").fetchone() == (
        "delivered",
    )


def test_permanent_rejection_is_final(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, slack_webhook_url=SLACK_URL, slack_min_interval_seconds=0)
    with respx.mock() as mock:
        slack = mock.post(SLACK_URL).mock(return_value=httpx.Response(400, text="invalid_blocks"))
        with TestClient(create_app(settings)) as c:
            assert c.post("/alerts", json=exchange_payload()).status_code == 200
            wait_idle(store_of(c))
    assert slack.call_count == 1
    db = sqlite3.connect(settings.receiver_db_path)
    assert db.execute("SELECT state FROM deliveries WHERE notifier = 'slack'").fetchone() == (
        "rejected",
    )


def test_resolved_never_overtakes_firing_on_a_failing_notifier(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        slack_webhook_url=SLACK_URL,
        slack_min_interval_seconds=0,
        notify_retry_base_seconds=0.2,
    )
    statuses: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if len(statuses) < 3 and "FIRING" in body["text"]:
            statuses.append("fail")
            return httpx.Response(500, text="boom")
        statuses.append("FIRING" if "FIRING" in body["text"] else "RESOLVED")
        return httpx.Response(200, text="ok")

    with respx.mock() as mock:
        mock.post(SLACK_URL).mock(side_effect=respond)
        with TestClient(create_app(settings)) as c:
            assert c.post("/alerts", json=exchange_payload()).status_code == 200
            resolved = exchange_payload(status="resolved", ends_at="2026-11-21T07:40:00Z")
            assert c.post("/alerts", json=resolved).status_code == 200
            assert settings.notify_file is not None
            lines = wait_lines(settings.notify_file, 2)  # JSONL is not held up by Slack
            wait_idle(store_of(c), timeout=10)
    assert [x["status"] for x in lines] == ["firing", "resolved"]
    assert statuses == ["fail", "fail", "fail", "FIRING", "RESOLVED"]


def test_crash_during_send_jsonl_recovered_slack_resent(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, slack_webhook_url=SLACK_URL, slack_min_interval_seconds=0)
    assert settings.notify_file is not None
    # First run: store, then simulate a process that died in the middle of both sends, after
    # the JSONL line was written.
    with TestClient(create_app(settings, start_worker=False)) as c:
        assert c.post("/alerts", json=exchange_payload()).status_code == 200
    with respx.mock() as mock:
        slack = mock.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
        with TestClient(create_app(settings)) as c:
            wait_lines(settings.notify_file, 1)
            wait_idle(store_of(c))
        assert slack.call_count == 1
    db = sqlite3.connect(settings.receiver_db_path, isolation_level=None)
    db.execute("UPDATE deliveries SET state = 'sending'")
    db.execute("UPDATE notifications SET state = 'pending', next_attempt_at = 0")
    with respx.mock() as mock:
        slack = mock.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
        with TestClient(create_app(settings)) as c:
            wait_idle(store_of(c))
            text = c.get("/metrics").text
        assert slack.call_count == 1  # Slack cannot tell: sent again (at-least-once)
    assert len(read_lines(settings.notify_file)) == 1  # JSONL found its line: not appended
    assert 'notifier="jsonl",result="recovered"} 1.0' in text
    assert 'notifier="slack",result="uncertain"} 1.0' in text
    assert db.execute("SELECT DISTINCT state FROM deliveries").fetchall() == [("delivered",)]


V1_SCHEMA = """
CREATE TABLE webhooks (id INTEGER PRIMARY KEY, received_at TEXT NOT NULL, route TEXT NOT NULL,
    group_key TEXT NOT NULL, receiver TEXT NOT NULL, status TEXT NOT NULL,
    alert_count INTEGER NOT NULL, payload TEXT NOT NULL);
CREATE TABLE notifications (id INTEGER PRIMARY KEY,
    webhook_id INTEGER NOT NULL REFERENCES webhooks(id), group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL, status TEXT NOT NULL, starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL, alertname TEXT NOT NULL, route TEXT NOT NULL, receiver TEXT NOT NULL,
    external_url TEXT NOT NULL, alert TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')), diagnosis TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, completed_at TEXT,
    UNIQUE (group_key, fingerprint, status, starts_at, ends_at));
CREATE INDEX notifications_pending ON notifications (state, id);
CREATE TABLE deliveries (notification_id INTEGER NOT NULL REFERENCES notifications(id),
    channel TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, updated_at TEXT NOT NULL,
    delivered_at TEXT, PRIMARY KEY (notification_id, channel));
PRAGMA user_version = 1;
"""


def test_version_1_database_is_migrated(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, slack_webhook_url=SLACK_URL, slack_min_interval_seconds=0)
    db = sqlite3.connect(settings.receiver_db_path, isolation_level=None)
    db.executescript(V1_SCHEMA)
    now = "2026-11-21T07:22:01.000Z"
    alert = exchange_payload()["alerts"][0]
    db.execute("INSERT INTO webhooks VALUES (1, ?, '', 'g', 'r', 'firing', 1, '{}')", (now,))
    for nid, fp, state in ((1, "a", "done"), (2, "b", "pending")):
        db.execute(
            "INSERT INTO notifications (id, webhook_id, group_key, fingerprint, status, starts_at,"
            " ends_at, alertname, route, receiver, external_url, alert, state, created_at,"
            " updated_at) VALUES (?, 1, 'g', ?, 'firing', 's', 'e', 'X', '', 'r', '', ?, ?, ?, ?)",
            (nid, fp, json.dumps({**alert, "fingerprint": fp}), state, now, now),
        )
    db.execute("INSERT INTO deliveries VALUES (1, 'slack', 'failed', 4, 'boom', ?, NULL)", (now,))
    db.execute("INSERT INTO deliveries VALUES (2, 'slack', 'delivered', 1, NULL, ?, ?)", (now, now))
    db.close()
    with respx.mock(assert_all_called=False) as mock:
        slack = mock.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
        with TestClient(create_app(settings)) as c:
            assert settings.notify_file is not None
            wait_lines(settings.notify_file, 1)  # notification 2 resumes; JSONL only
            wait_idle(store_of(c))
        assert not slack.called
    db = sqlite3.connect(settings.receiver_db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    rows = db.execute(
        "SELECT notification_id, notifier, channel, state FROM deliveries ORDER BY 1, 2"
    ).fetchall()
    assert rows == [
        (1, "slack", "slack", "dropped"),
        (2, "jsonl", "jsonl", "delivered"),
        (2, "slack", "slack", "delivered"),
    ]
