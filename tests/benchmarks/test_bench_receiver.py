"""Smoke test of the receiver intake benchmark (``benchmarks/bench_receiver.py``): its request
builder, its load generator and the section it returns, against the bare FastAPI endpoint for
about a second at low concurrency (the receiver phases are left to ``make bench``)."""

from __future__ import annotations

import pytest

from benchmarks import bench_receiver, common
from receiver.models import AlertmanagerWebhook

QUICK = bench_receiver.Settings(warmup=0.2, duration=1.0, connections=2, receiver=False)


def test_every_request_is_a_distinct_valid_webhook() -> None:
    requests = bench_receiver.WebhookRequests("127.0.0.1:1", "0badcafe")
    webhooks = [AlertmanagerWebhook.model_validate_json(requests.body(seq)) for seq in range(3)]
    keys = {
        (w.group_key, a.fingerprint, a.status, a.starts_at, a.ends_at)
        for w in webhooks
        for a in w.alerts
    }
    assert len(keys) == 3 * bench_receiver.ALERTS_PER_WEBHOOK
    assert len({w.group_key for w in webhooks}) == 3
    assert all(len(w.alerts) == bench_receiver.ALERTS_PER_WEBHOOK for w in webhooks)
    request = requests(999_999_999)
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /alerts/critical HTTP/1.1\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert len(body) == requests.body_size


@pytest.mark.e2e
def test_bare_endpoint_section_shape() -> None:
    result = bench_receiver.run(1, QUICK)
    assert result["name"] == "receiver"
    assert result["title"]
    (row,) = result["rows"]
    assert set(row) == {
        "server",
        "load",
        "webhooks/s",
        "ack p50 ms",
        "ack p99 ms",
        "CPU s/1000",
        "peak RSS MiB",
        "stored/acked",
    }
    assert row["server"] == "bare FastAPI"
    assert row["webhooks/s"] > 50
    assert 0 < row["ack p50 ms"] <= row["ack p99 ms"] < 1000
    assert row["CPU s/1000"] > 0 and row["peak RSS MiB"] > 10
    assert result["targets"] == []  # the targets are about the receiver
    assert result["notes"] and result["per_run"][0]["bare_errors"] == 0
    common.print_section(result)  # formats without error


@pytest.mark.e2e
def test_open_loop_holds_the_rate() -> None:
    sut, _ = common.cores()
    figures = bench_receiver.measure("bare", QUICK, rate=200.0, sut_cores=sut)
    assert figures.load.errors == 0
    assert 150 <= figures.load.rate <= 250
    assert figures.load.acked >= 200
