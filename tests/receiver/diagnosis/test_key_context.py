"""API-key alerts end to end inside the receiver: Prometheus context (respx), rules, LLM prompt.

The context builder gathers the key's series; the rules tell the causes apart from it; neither
the rendered diagnosis nor the prompt for the LLM carries a secret-looking label value - only the
key's configured name.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import numpy as np
import respx

from receiver.diagnosis.context import ContextBuilder
from receiver.diagnosis.engine import DiagnosisEngine
from receiver.diagnosis.llm import build_alert_data, build_messages
from receiver.diagnosis.redact import REDACTED, looks_secret, redact_text
from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import Context
from receiver.models import Alert, parse_rfc3339

PROM = "http://prom.test:9090"
STARTS_AT = "2026-11-21T07:22:00Z"
T0 = parse_rfc3339(STARTS_AT).timestamp()
NOW = T0 + 600.0
WINDOW = "2400s"  # 30 min before startsAt + 10 min firing

#: Values shaped like the exchanges' credentials (made up; none is a real key).
BINANCE_LIKE_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
KRAKEN_LIKE_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
OKX_LIKE_KEY = "5a1c3b2e-8f4d-4e6a-9b7c-0d1e2f3a4b5c"
HEX_SECRET = "2F6B8E2D4C1A9F3B7E5D0C8A6B4F2E1D"
SECRETS = (BINANCE_LIKE_KEY, KRAKEN_LIKE_SECRET, OKX_LIKE_KEY, HEX_SECRET, "hunter2-passphrase")


def key_alert(key: str = "monitor", **extra: str) -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {
                "alertname": "ExchangeApiKeyInvalid",
                "severity": "critical",
                "exchange": "binance",
                "key": key,
                "result": "invalid_key",
                **extra,
            },
            "annotations": {
                "summary": f"binance API key {key} is rejected: invalid_key",
                "runbook_url": "http://localhost:8080/runbooks/ExchangeApiKeyInvalid",
            },
            "startsAt": STARTS_AT,
            "generatorURL": "http://prom:9090/graph?g0.expr=exchange_api_key_up+%3D%3D+0",
            "fingerprint": "k1",
        }
    )


def vector(rows: list[tuple[dict[str, str], float]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [NOW, str(v)]} for m, v in rows],
        },
    }


def matrix(value: float) -> dict[str, Any]:
    ts = np.arange(T0 - 1800, NOW + 1, 15.0)
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"exchange": "binance"}, "values": [[float(t), str(value)] for t in ts]}
            ],
        },
    }


EMPTY_MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": []}}


def mock_prometheus(
    mock: respx.MockRouter, *, ip_bound: float, skew: float = 0.01
) -> tuple[respx.Route, respx.Route]:
    """A Prometheus whose key was accepted 20 times, then rejected 6 times as invalid_key."""

    def range_reply(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        if "clock_skew" in query:
            return httpx.Response(200, json=matrix(skew))
        return httpx.Response(200, json=EMPTY_MATRIX)

    def instant_reply(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        answers: dict[str, list[tuple[dict[str, str], float]]] = {
            "max(exchange_api_key_up{": [({}, 0.0)],
            "max(max_over_time(exchange_api_key_up{": [({}, 1.0)],
            "exchange_api_key_checks_total": [
                ({"result": "ok"}, 20.0),
                ({"result": "invalid_key"}, 6.0),
            ],
            "max(exchange_api_key_ip_restricted{": [({}, ip_bound)],
            "min(min_over_time(exchange_api_key_ip_restricted": [({}, ip_bound)],
            "max(max_over_time(exchange_api_key_ip_restricted": [({}, ip_bound)],
            "exchange_api_key_permission": [
                ({"permission": "read"}, 1.0),
                ({"permission": "trade"}, 0.0),
                ({"permission": "withdraw"}, 0.0),
            ],
        }
        for prefix, rows in answers.items():
            if prefix in query:
                return httpx.Response(200, json=vector(rows))
        if "exchange_api_up" in query:
            return httpx.Response(200, json=vector([({"exchange": "binance"}, 1.0)]))
        return httpx.Response(200, json=vector([]))

    rng = mock.get(f"{PROM}/api/v1/query_range").mock(side_effect=range_reply)
    inst = mock.get(f"{PROM}/api/v1/query").mock(side_effect=instant_reply)
    return rng, inst


def build(alert: Alert) -> tuple[Context, str]:
    async def go() -> tuple[Context, str]:
        async with httpx.AsyncClient() as client:
            builder = ContextBuilder(client, PROM, deadline=5.0, clock=lambda: NOW)
            return await builder.fetch(alert)

    return asyncio.run(go())


# --- the context ------------------------------------------------------------------------------


def test_context_gathers_the_key_series() -> None:
    with respx.mock() as mock:
        _, inst = mock_prometheus(mock, ip_bound=0.0)
        ctx, status = build(key_alert())
    assert status == "ok"
    key = ctx.key
    assert key is not None
    assert (key.name, key.up, key.up_max) == ("monitor", 0.0, 1.0)
    assert key.checks == {"ok": 20.0, "invalid_key": 6.0}
    assert (key.ip_restricted, key.ip_restricted_min, key.ip_restricted_max) == (0.0, 0.0, 0.0)
    assert key.permissions == {"read": 1.0, "trade": 0.0, "withdraw": 0.0}
    assert key.expiry is None and key.ok_before and not key.ip_binding_changed
    assert ctx.stats("clock_skew") is not None
    queries = [c.request.url.params["query"] for c in inst.calls]
    key_queries = [q for q in queries if ",key=" in q]
    assert len(key_queries) == 8
    assert all('exchange="binance",key="monitor"' in q for q in key_queries)
    assert any(
        f'increase(exchange_api_key_checks_total{{exchange="binance",key="monitor"}}[{WINDOW}])'
        in q
        for q in key_queries
    )
    # Shown first, so the notifiers' 8-field cap never drops it.
    assert next(iter(ctx.fields)) == "API key"
    assert ctx.fields["API key"] == (
        "monitor: rejected now (accepted earlier in the window); checks ok ×20, invalid_key ×6; "
        "IP-bound no (unchanged); permissions read"
    )
    assert "API key: monitor: rejected now" in ctx.summary


def test_alerts_without_a_key_label_query_no_key_series() -> None:
    plain = key_alert().model_copy(
        update={"labels": {"alertname": "ExchangeApiDown", "exchange": "binance"}}
    )
    with respx.mock() as mock:
        _, inst = mock_prometheus(mock, ip_bound=0.0)
        ctx, _ = build(plain)
    assert ctx.key is None
    assert not any(",key=" in c.request.url.params["query"] for c in inst.calls)


def test_key_label_is_escaped_in_promql() -> None:
    with respx.mock() as mock:
        _, inst = mock_prometheus(mock, ip_bound=0.0)
        build(key_alert(key='m"} or vector(1) or {"'))
    key_queries = [
        c.request.url.params["query"]
        for c in inst.calls
        if ",key=" in c.request.url.params["query"]
    ]
    assert key_queries
    assert all('key="m\\"} or vector(1) or {\\""' in q for q in key_queries)


def test_revoked_demo_key_gets_root_cause_auth_from_the_fetched_context() -> None:
    with respx.mock() as mock:
        mock_prometheus(mock, ip_bound=0.0)
        ctx, _ = build(key_alert())
    d = diagnose_with_rules(key_alert(), context=ctx)
    assert d.root_cause_category == "auth"
    assert d.action_items[0].startswith("The key was deleted or revoked on Binance")


def test_ip_bound_binance_key_reads_as_an_allow_list_change() -> None:
    with respx.mock() as mock:
        mock_prometheus(mock, ip_bound=1.0)
        ctx, _ = build(key_alert())
    d = diagnose_with_rules(key_alert(), context=ctx)
    assert d.root_cause_category == "auth"
    assert d.action_items[0].startswith("Our egress IP is no longer on the key's allow-list")


def test_skewed_clock_reads_as_clock_skew() -> None:
    with respx.mock() as mock:
        mock_prometheus(mock, ip_bound=0.0, skew=3.0)
        ctx, _ = build(key_alert())
    d = diagnose_with_rules(key_alert(), context=ctx)
    assert d.root_cause_category == "clock_skew"
    assert d.action_items[0].startswith("Clock skew, not a bad key: fix NTP")


# --- no secret in the rendered diagnosis or the prompt ----------------------------------------


def hostile_alert() -> Alert:
    """An API-key alert whose other labels (a bad relabelling) carry credentials."""
    alert = key_alert(
        api_key=BINANCE_LIKE_KEY,
        api_secret=KRAKEN_LIKE_SECRET,
        passphrase="hunter2-passphrase",
        instance=OKX_LIKE_KEY,
        endpoint=HEX_SECRET,
    )
    annotations = {
        **alert.annotations,
        "description": f"key {BINANCE_LIKE_KEY} with secret {KRAKEN_LIKE_SECRET} was rejected",
    }
    return alert.model_copy(update={"annotations": annotations})


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "hunter2" not in text


def test_rendered_diagnosis_has_the_key_name_and_no_secret() -> None:
    alert = hostile_alert()
    with respx.mock() as mock:
        mock_prometheus(mock, ip_bound=0.0)
        ctx, _ = build(alert)
    d = diagnose_with_rules(alert, context=ctx)
    rendered = json.dumps(
        d.model_copy(update={"context": ctx}).model_dump(mode="json"), ensure_ascii=False
    )
    assert_no_secret(rendered)
    assert "key=monitor" in d.diagnosis and "Key 'monitor'" in d.diagnosis
    assert "monitor: rejected now" in rendered


def test_llm_prompt_has_the_key_name_and_no_secret() -> None:
    alert = hostile_alert()
    with respx.mock() as mock:
        mock_prometheus(mock, ip_bound=0.0)
        ctx, _ = build(alert)
    system, user = build_messages(alert, ctx.alert_value, ctx)
    prompt = system["content"] + user["content"]
    assert_no_secret(prompt)
    data = json.loads(build_alert_data(alert))
    assert data["labels"]["key"] == "monitor"
    for name in ("api_key", "api_secret", "passphrase", "instance", "endpoint"):
        assert data["labels"][name] == REDACTED, name
    assert "monitor: rejected now" in user["content"]
    assert "runbooks/ExchangeApiKeyInvalid" in user["content"]  # URLs are not secrets


def test_secret_shapes() -> None:
    for secret in SECRETS[:4]:
        assert looks_secret(secret), secret
        assert looks_secret(f'"{secret}",'), secret
    for word in (
        "monitor",
        "monitor-binance-2026-readonly-key",
        "ExchangeApiKeyInvalid",
        "exchange_api_key_checks_total",
        "http://localhost:8080/runbooks/ExchangeApiKeyInvalid",
        "2026-11-21T07:22:00Z",
    ):
        assert not looks_secret(word), word
    assert redact_text(f"a {HEX_SECRET} b") == f"a {REDACTED} b"


def test_llm_cache_separates_keys_and_results() -> None:
    a = key_alert()
    b = key_alert(key="trading")
    c = a.model_copy(update={"labels": {**a.labels, "result": "ip_not_allowed"}})
    keys = {DiagnosisEngine.cache_key(x) for x in (a, b, c)}
    assert len(keys) == 3
