"""Property-based and schema-driven tests of the receiver's HTTP API: no input gives a 5xx.

* schemathesis generates requests from the served OpenAPI schema (``/openapi.json``: the
  webhook body, route parameter and every documented response) and checks every response:
  no server error, documented status codes, content types and bodies, and invalid data
  rejected;
* hypothesis throws arbitrary JSON, arbitrary bytes and generated valid webhooks at
  ``POST /alerts``: invalid input gets a 4xx naming a field and is never stored, valid input is
  stored once and acknowledged again (not re-notified) when repeated;
* the RFC 3339 parser and the credential check never raise on arbitrary text.

Bounded: ~100-150 examples per test, a few seconds in all.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.generation.modes import GenerationMode

from receiver.app import check_credentials, create_app
from receiver.models import parse_rfc3339
from receiver.settings import InboundAuth
from tests.receiver.test_receiver_app import make_settings

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


# --- schemathesis against the served schema ---------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    # NOTIFY_FILE off: stored webhooks are diagnosed but not written anywhere.
    path = tmp_path_factory.mktemp("fuzz")
    return create_app(make_settings(path, notify_file=None, max_body_bytes=64 * 1024))


@pytest.fixture(scope="module")
def api_schema(fuzz_app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


OPERATIONS = [
    ("/alerts", "POST"),
    ("/alerts/{route}", "POST"),
    ("/heartbeat", "POST"),
    ("/heartbeat", "GET"),
    ("/healthz", "GET"),
    ("/readyz", "GET"),
    ("/metrics", "GET"),
    ("/runbooks", "GET"),
    ("/runbooks/{alertname}", "GET"),
]


def test_schema_lists_every_operation(api_schema: Any) -> None:
    served = {
        (op.path, op.method.upper())
        for op in (result.ok() for result in api_schema.get_all_operations())
    }
    assert served == set(OPERATIONS)


CASES = [(p, m, GenerationMode.POSITIVE) for p, m in OPERATIONS] + [
    (p, m, GenerationMode.NEGATIVE) for p, m in OPERATIONS if m == "POST"
]


# schemathesis' own pytest integration (``@schema.parametrize``) does not work with pytest 9,
# so each operation's hypothesis strategy is driven here directly.
@pytest.mark.parametrize(
    ("path", "method", "mode"), CASES, ids=[f"{m} {p} {g.value}" for p, m, g in CASES]
)
def test_openapi_schema_conformance(
    api_schema: Any, path: str, method: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @settings(
        max_examples=(100 if mode is GenerationMode.POSITIVE else 60) if method == "POST" else 10,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        case.call_and_validate()

    check()


# --- hypothesis against POST /alerts ----------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path = tmp_path_factory.mktemp("hyp")
    app = create_app(make_settings(path, max_body_bytes=64 * 1024), start_worker=False)
    with TestClient(app) as c:
        yield c


def _stored(c: TestClient) -> int:
    db = sqlite3.connect(c.app.state.settings.receiver_db_path)  # type: ignore[attr-defined]
    try:
        return int(db.execute("SELECT COUNT(*) FROM webhooks").fetchone()[0])
    finally:
        db.close()


def _assert_4xx_names_a_field(resp: Any) -> None:
    assert 400 <= resp.status_code < 500, resp.text
    body = resp.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert ":" in body["detail"]  # "<field>: <message>"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

# Bodies that look like webhooks but with any value in any field.
almost_webhooks = st.fixed_dictionaries(
    {},
    optional={
        "version": json_values,
        "status": st.sampled_from(["firing", "resolved", "pending", ""]) | json_values,
        "groupKey": json_values,
        "truncatedAlerts": json_values,
        "alerts": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "status": st.sampled_from(["firing", "resolved"]) | json_values,
                    "labels": st.dictionaries(st.text(max_size=8), st.text(max_size=8))
                    | json_values,
                    "startsAt": st.sampled_from(["2026-11-21T07:22:00Z", "yesterday"])
                    | json_values,
                    "endsAt": json_values,
                    "fingerprint": json_values,
                },
            ),
            max_size=3,
        )
        | json_values,
    },
)


@FUZZ_SETTINGS
@given(body=json_values | almost_webhooks)
def test_any_json_is_2xx_or_4xx_and_invalid_is_not_stored(client: TestClient, body: Any) -> None:
    before = _stored(client)
    resp = client.post("/alerts/fuzz", content=json.dumps(body).encode())
    if resp.status_code == 200:
        assert _stored(client) == before + 1
    else:
        _assert_4xx_names_a_field(resp)
        assert _stored(client) == before


@FUZZ_SETTINGS
@given(raw=st.binary(max_size=300))
def test_any_bytes_are_4xx_or_stored(client: TestClient, raw: bytes) -> None:
    resp = client.post("/alerts", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code < 500
    if resp.status_code != 200:
        _assert_4xx_names_a_field(resp)


timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.isoformat().replace("+00:00", "Z"))
label_maps = st.dictionaries(
    st.text(min_size=1, max_size=12), st.text(max_size=30), min_size=1, max_size=5
)
alerts = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]),
        "labels": label_maps,
        "annotations": label_maps,
        "startsAt": timestamps,
        "endsAt": timestamps | st.just("0001-01-01T00:00:00Z"),
        "fingerprint": st.text(max_size=16),
    }
)
webhooks = st.fixed_dictionaries(
    {
        "version": st.just("4"),
        "groupKey": st.text(max_size=40),
        "status": st.sampled_from(["firing", "resolved"]),
        "receiver": st.text(max_size=20),
        "alerts": st.lists(alerts, max_size=4),
    }
)


@FUZZ_SETTINGS
@given(webhook=webhooks)
def test_valid_webhooks_are_stored_once(client: TestClient, webhook: dict[str, Any]) -> None:
    first = client.post("/alerts", json=webhook)
    assert first.status_code == 200, first.text
    assert first.json()["alerts"] == len(webhook["alerts"])
    again = client.post("/alerts", json=webhook)
    assert again.status_code == 200
    assert again.json()["new"] == 0  # acknowledged, not notified again
    assert again.json()["duplicates"] == len(webhook["alerts"])


@FUZZ_SETTINGS
@given(text=st.text(max_size=60))
def test_rfc3339_parser_only_raises_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_rfc3339(text)


@FUZZ_SETTINGS
@given(moment=st.datetimes(timezones=st.just(UTC)))
def test_rfc3339_parses_what_go_formats(moment: datetime) -> None:
    text = moment.isoformat().replace("+00:00", "Z")
    assert parse_rfc3339(text) == moment


@FUZZ_SETTINGS
@given(header=st.none() | st.text(max_size=80))
def test_credential_check_never_raises(header: str | None) -> None:
    bearer = InboundAuth("bearer", token=SecretStr("tok-123"))
    basic = InboundAuth("basic", username="am", password=SecretStr("pw:x"))
    assert check_credentials(bearer, header) is (
        header is not None
        and header.strip().partition(" ")[0].lower() == "bearer"
        and header.strip().partition(" ")[2].strip() == "tok-123"
    )
    check_credentials(basic, header)
    assert check_credentials(basic, "Basic YW06cHc6eA==")  # am:pw:x


def test_fuzz_left_no_server_error_metric(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert 'alert_receiver_webhooks_total{result="storage_error"} 0.0' in text
    assert Path(client.app.state.settings.receiver_db_path).exists()  # type: ignore[attr-defined]
