"""The detection benchmark's pure parts: reading the receiver's JSONL, the quiet run's plan, and
the section it builds (the stack-driving part runs in ``make bench``)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from benchmarks import bench_detection
from benchmarks.detection_runs import NotificationLog, Notified, ScenarioRun, parse_line
from benchmarks.quiet_jitter import BLIP_EVERY_S, BLIP_SECONDS, latency_noise, plan


def _line(**fields: object) -> str:
    record = {
        "notified_at": "2026-12-06T10:00:05.250Z",
        "status": "firing",
        "alertname": "ExchangeApiDown",
        "exchange": "binance",
        "receiver": "exchange-watch-critical",
        "diagnosis": {"root_cause_category": "outage"},
        **fields,
    }
    return json.dumps(record)


def test_a_notification_line_is_read_and_updates_are_skipped() -> None:
    found = parse_line(_line())
    assert found is not None
    assert (found.alertname, found.exchange, found.route, found.category) == (
        "ExchangeApiDown",
        "binance",
        "exchange-watch-critical",
        "outage",
    )
    assert found.at == 1796551205.25
    assert parse_line(_line(kind="update")) is None
    assert parse_line(_line(status="pending")) is None
    assert parse_line("{not json") is None


def test_the_log_follows_the_file_across_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "notifications.jsonl"
    log = NotificationLog(path)
    assert log.poll() == []  # no file yet
    whole = _line() + "\n"
    path.write_text(whole + whole[:20])
    assert len(log.poll()) == 1
    with path.open("a") as handle:
        handle.write(whole[20:] + _line(status="resolved") + "\n")
    assert [n.status for n in log.poll()] == ["firing", "resolved"]
    log.skip_to_end()
    assert log.seen == []
    assert log.wait_for(lambda n: True, timeout=0) is None


def test_the_quiet_plan_is_sorted_bounded_and_ends_by_itself() -> None:
    endpoints = {"binance": ["ping", "ticker"], "kraken": ["time"]}
    blips = plan(endpoints, 1800.0, random.Random(1))
    assert blips == sorted(blips, key=lambda b: b.at)
    assert all(0 < b.at < 1800 - BLIP_EVERY_S / 2 for b in blips)
    closes = [b.body for b in blips if b.body["fault"] == "ws_disconnect"]
    assert all(b.body["duration_s"] == BLIP_SECONDS for b in blips if b.body not in closes)
    # A stream close is one reconnect (served at once), at most two per exchange in 30 min.
    assert closes and all(c["once"] is True and c["close_code"] == 1001 for c in closes)
    for exchange, names in endpoints.items():
        mine = [b for b in blips if b.body["exchange"] == exchange]
        rest = [b for b in mine if b.body["fault"] != "ws_disconnect"]
        assert 5 <= len(rest) <= 20  # one every ~3 minutes over 30 minutes
        assert {b.body["endpoint"] for b in rest} <= set(names)
        assert 1 <= sum(b.body["fault"] == "ws_disconnect" for b in mine) <= 2
    assert plan(endpoints, 1800.0, random.Random(1)) == blips  # a seed replays the run
    assert {n["exchange"] for n in latency_noise(["okx", "bybit"])} == {"okx", "bybit"}


def _run(notify_s: float | None, first: str = "ExchangeApiDown") -> ScenarioRun:
    expect = {
        "alertname": "ExchangeApiDown",
        "exchange": "binance",
        "category": "outage",
        "within": "10s",
    }
    hit = Notified("firing", "ExchangeApiDown", "binance", "exchange-watch-critical", "outage", 0)
    first_hit = Notified("firing", first, "binance", "exchange-watch-warning", "outage", 0)
    return ScenarioRun(
        "binance-outage",
        expect=expect,
        first=first_hit,
        expected=hit if notify_s is not None else None,
        notify_s=notify_s,
        resolved_s=20.0 if notify_s is not None else None,
        error=None if notify_s is not None else "no firing ExchangeApiDown",
    )


def test_the_section_has_a_target_per_scenario_and_counts_quiet_notifications() -> None:
    section = bench_detection.build_section(
        {"binance-outage": [_run(8.0), _run(9.0), _run(None)]},
        [{"minutes": 30, "blips": 40, "notifications": ["firing ExchangeEndpointDown okx (w)"]}],
        runs=3,
    )
    targets = {t["name"]: t for t in section["targets"]}
    outage = targets["binance-outage: ExchangeApiDown notified (median)"]
    assert outage["value"] == 9.0 and outage["limit"] == 10.0 and outage["met"]
    # a failed run means not every run was notified as expected
    assert not targets[
        "scenarios notified first under their expected alert, with the expected category"
    ]["met"]
    quiet = targets["quiet run: notifications besides the Watchdog (median)"]
    assert quiet["value"] == 1 and not quiet["met"]
    assert section["rows"][0]["each_run_s"] == "8.0, 9.0, failed"


def test_a_scenario_first_paged_under_another_alert_is_not_right() -> None:
    section = bench_detection.build_section(
        {"binance-outage": [_run(5.0, first="ExchangeEndpointDown")]}, [], runs=1
    )
    names = {t["name"]: t["met"] for t in section["targets"]}
    assert not names[
        "scenarios notified first under their expected alert, with the expected category"
    ]
    assert section["rows"][0]["first_notified"] == "ExchangeEndpointDown"
