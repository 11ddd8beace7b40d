"""The receiver on a PostgreSQL it cannot reach: intake answers 503 at once (Alertmanager
retries), ``/readyz`` says why, and the URL's password appears nowhere (answers, logs,
metrics). The real outage and recovery are in ``tests/e2e/test_ha_receivers.py``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deploy.stack import free_port
from receiver.app import create_app
from tests.receiver.test_receiver_app import exchange_payload, make_settings

PASSWORD = "pw-never-shown-4242"


def test_intake_answers_503_quickly_and_readyz_names_the_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://watch:{PASSWORD}@127.0.0.1:{port}/receiver"
    settings = make_settings(tmp_path, receiver_database_url=url, receiver_db_timeout_seconds=1.0)
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        answer = client.post("/alerts/critical", json=exchange_payload())
        elapsed = time.monotonic() - started
        assert answer.status_code == 503
        assert elapsed < 10  # never near Alertmanager's webhook timeout
        ready = client.get("/readyz")
        assert ready.status_code == 503
        reasons = " ".join(ready.json()["reasons"])
        assert f"postgresql://127.0.0.1:{port}/receiver" in reasons
        metrics = client.get("/metrics").text
        heartbeat = client.get("/heartbeat").text
    assert 'alert_receiver_webhooks_total{result="storage_error"} 1.0' in metrics
    for text in (answer.text, ready.text, metrics, heartbeat, caplog.text):
        assert PASSWORD not in text
