"""Tests for timeline scenarios (``simulator/scenario.py``, ``scenario_runner.py``, the shipped
``simulator/scenarios/*.yml``, ``/_control/scenario`` and the CLI ``--scenario`` /
``--no-limits`` flags)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from simulator import SimulatorServer, simulator_in_thread
from simulator.scenario import (
    SCENARIO_DIR,
    ScenarioError,
    load_scenario,
    load_scenario_file,
    parse_duration,
    shipped_scenarios,
)

REQUIRED = {
    "binance-outage",
    "binance-weight-exhausted",
    "bybit-ip-ban",
    "bybit-rate-limited",
    "okx-maintenance",
    "kraken-latency",
    "coinbase-stale",
    "clock-skew",
}


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``check`` every 20 ms until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def status(client: httpx.Client) -> dict[str, Any]:
    """The ``scenario`` field of ``GET /_control/scenario``."""
    return client.get("/_control/scenario").json()["scenario"]


# -- format and validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("500ms", 0.5), ("5s", 5), ("1m", 60), ("1m30s", 90), ("2h", 7200), ("1d", 86400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5", "1.5s", "5 s", "s", "1m1h", 5, None, "8d"])
def test_parse_duration_rejects(bad: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_duration(bad)


@pytest.mark.e2e
def test_shipped_scenarios_load_and_match_their_file_names(sim: SimulatorServer) -> None:
    names = shipped_scenarios()
    assert set(names) >= REQUIRED
    for name in names:
        scenario = load_scenario_file(name, faults=sim.faults, limits=sim.limits)
        assert scenario.name == name and scenario.source == f"{name}.yml"
        assert scenario.description and scenario.steps


def test_shipped_timelines() -> None:
    def timeline(name: str) -> list[tuple[str, str, Any]]:
        data = yaml.safe_load((SCENARIO_DIR / f"{name}.yml").read_text())
        return [
            (step["at"], action, step[action])
            for step in data["steps"]
            for action in ("fault", "clear", "consume", "limits")
            if action in step
        ]

    assert timeline("binance-outage") == [
        ("0s", "fault", {"exchange": "binance", "fault": "down"}),
        ("60s", "clear", {"exchange": "binance"}),
    ]
    assert timeline("kraken-latency")[0][2] == {
        "exchange": "kraken",
        "fault": "latency",
        "latency_ms": 800,
        "jitter_ms": 200,
    }
    assert timeline("kraken-latency")[-1][0] == "3m"
    assert timeline("coinbase-stale")[-1][0] == "2m"
    assert timeline("clock-skew")[0][2]["skew_ms"] == 1500
    assert timeline("clock-skew")[-1][0] == "3m"
    assert timeline("binance-weight-exhausted") == [
        ("0s", "consume", {"exchange": "binance", "weight": 6000, "hold_s": 15}),
        ("60s", "consume", {"exchange": "binance", "weight": 6000, "hold_s": 15}),
    ]
    assert timeline("bybit-ip-ban") == [
        ("0s", "consume", {"exchange": "bybit", "requests": 600, "hold_s": 15}),
    ]


@pytest.mark.e2e
def test_shipped_consume_steps_hold_the_budget(sim: SimulatorServer) -> None:
    """A consume without ``hold_s`` only fills the window it lands in: its incident would depend
    on whether a request arrives before the window rolls over. Shipped scenarios must hold the
    whole budget for longer than the shipped exporter's gap between two probes of the exchange
    (Binance ~1 s, Bybit ~1.25 s; tests/simulator/test_scenarios_incidents.py plays them for
    real)."""
    for name in shipped_scenarios():
        scenario = load_scenario_file(name, faults=sim.faults, limits=sim.limits)
        for step in scenario.steps:
            if step.action != "consume":
                continue
            limiter, amount, hold_s = sim.limits.validate_consume(step.spec)
            assert amount >= limiter.limit, (name, step.index)
            assert hold_s >= 10, (name, step.index)


def _step(**step: Any) -> dict[str, Any]:
    return {"name": "t", "steps": [{"at": "0s", "clear": "all"}, step]}


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1], "<inline>: scenario: expected a mapping"),
        ({"steps": [{"at": "0s", "clear": "all"}]}, "<inline>: name: required"),
        ({"name": "a b", "steps": []}, "<inline>: name: required, letters/digits/._- only"),
        ({"name": "t", "steps": []}, "<inline>: steps: required, a list of 1-1000 steps"),
        ({"name": "t", "steps": [], "loop": True}, "<inline>: loop: unexpected field"),
        ({"name": "t", "description": 5, "steps": [1]}, "<inline>: description: must be a string"),
        (_step(at="5 s", clear="all"), "<inline>: steps[1].at: expected a duration"),
        (_step(clear="all"), "<inline>: steps[1].at: required"),
        (_step(at="1s"), "<inline>: steps[1]: needs exactly one of"),
        (_step(at="1s", clear="all", fault={}), "<inline>: steps[1]: needs exactly one of"),
        (_step(at="1s", wait=True), "<inline>: steps[1].wait: unexpected field"),
        (
            _step(at="1s", fault={"exchange": "binance", "fault": "latency", "latency_ms": -5}),
            "<inline>: steps[1].fault.latency_ms: must be a number between 0 and 600000, got -5",
        ),
        (
            _step(at="1s", fault={"exchange": "bitmex", "fault": "down"}),
            "<inline>: steps[1].fault.exchange: unknown exchange 'bitmex'",
        ),
        (_step(at="1s", fault="down"), "<inline>: steps[1].fault: expected a mapping, got 'down'"),
        (_step(at="1s", clear="everything"), "<inline>: steps[1].clear: expected 'all'"),
        (
            _step(at="1s", clear={"exchange": "okx", "endpoint": "trades"}),
            "<inline>: steps[1].clear.endpoint: 'trades' is not an endpoint of okx",
        ),
        (
            _step(at="1s", consume={"exchange": "binance", "weight": -1}),
            "<inline>: steps[1].consume.weight: must be an integer between 0 and",
        ),
        (
            _step(at="1s", consume={"exchange": "bybit", "requests": 600, "hold_s": 0}),
            "<inline>: steps[1].consume.hold_s: must be a number of seconds greater than 0 and "
            "at most 3600, got 0",
        ),
        (
            _step(at="1s", consume={"exchange": "bybit", "requests": 600, "hold_s": "15s"}),
            "<inline>: steps[1].consume.hold_s: must be a number of seconds greater than 0 and "
            "at most 3600, got '15s'",
        ),
        (
            _step(at="1s", consume={"exchange": "bybit", "requests": 1, "hold": 15}),
            "<inline>: steps[1].consume.hold: unexpected field for bybit consume (its fields: "
            "hold_s, requests)",
        ),
        (
            _step(at="1s", limits={"exchange": "bybit", "requests_per_minute": 5}),
            "<inline>: steps[1].limits.requests_per_minute: unexpected field for bybit limits",
        ),
        (
            {"name": "t", "steps": [{"at": "1m", "clear": "all"}, {"at": "30s", "clear": "all"}]},
            "<inline>: steps[1].at: offsets must not decrease ('30s' comes after '1m')",
        ),
    ],
)
def test_validation_errors_name_file_step_field_value(
    sim: SimulatorServer, data: Any, message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(data, "<inline>", faults=sim.faults, limits=sim.limits)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.e2e
def test_file_errors_name_the_file(sim: SimulatorServer, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yml"
    bad.write_text("name: broken\nsteps:\n  - at: 0s\n    fault: {exchange: okx, fault: stale}\n")
    with pytest.raises(ScenarioError, match=r"^broken\.yml: steps\[0\]\.fault\.age_s: required"):
        load_scenario_file(str(bad), faults=sim.faults, limits=sim.limits)
    garbage = tmp_path / "garbage.yml"
    garbage.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"^garbage\.yml: cannot read scenario"):
        load_scenario_file(str(garbage), faults=sim.faults, limits=sim.limits)
    with pytest.raises(ScenarioError, match=r"^scenario: no such file"):
        load_scenario_file(str(tmp_path / "missing.yml"), faults=sim.faults, limits=sim.limits)
    with pytest.raises(ScenarioError, match=r"^name: unknown scenario 'nope' \(shipped: "):
        load_scenario_file("nope", faults=sim.faults, limits=sim.limits)


# -- running ----------------------------------------------------------------------------------


@pytest.mark.e2e
def test_no_scenario_yet() -> None:
    with (
        simulator_in_thread() as server,
        httpx.Client(base_url=server.url, timeout=5, trust_env=False) as c,
    ):
        body = c.get("/_control/scenario").json()
        assert body["scenario"] is None and set(body["shipped"]) >= REQUIRED
        assert c.delete("/_control/scenario").json() == {"scenario": None}


@pytest.mark.e2e
def test_inline_scenario_runs_steps_in_order(client: httpx.Client) -> None:
    scenario = {
        "name": "short",
        "description": "test timeline",
        "steps": [
            {"at": "0s", "fault": {"exchange": "okx", "fault": "http_error", "status": 503}},
            {"at": "150ms", "consume": {"exchange": "binance", "weight": 1234}},
            {"at": "150ms", "limits": {"exchange": "bybit", "requests_per_5s": 1000}},
            {"at": "300ms", "clear": {"exchange": "okx"}},
        ],
    }
    r = client.post("/_control/scenario", json={"scenario": scenario})
    assert r.status_code == 200, r.text
    started = r.json()["scenario"]
    assert started["name"] == "short" and started["state"] == "running"
    assert started["source"] == "<inline>" and started["steps_total"] == 4
    wait_for(lambda: client.get("/okx/api/v5/public/time").status_code == 503, 1.0)
    wait_for(lambda: status(client)["state"] == "finished", 2.0)
    assert client.get("/okx/api/v5/public/time").status_code == 200
    limits = client.get("/_control/limits").json()["limits"]
    assert limits["bybit"]["requests_per_5s"] == 1000
    assert limits["binance"]["used_weight_1m"] >= 1234 or time.time() % 60 < 1
    final = status(client)
    assert final["steps_pending"] == []
    done = final["steps_done"]
    assert [s["index"] for s in done] == [0, 1, 2, 3]
    assert done[3]["clear"] == {"exchange": "okx"} and done[3]["at"] == "300ms"
    applied = [s["applied_at"] for s in done]
    assert applied == sorted(applied)
    assert applied[1] - final["started_at"] >= 0.14
    assert applied[3] - final["started_at"] >= 0.29
    assert applied[3] - final["started_at"] < 1.5
    assert final["error"] is None


@pytest.mark.e2e
def test_bybit_ip_ban_holds_the_budget(client: httpx.Client) -> None:
    client.post("/_control/scenario", json={"name": "bybit-ip-ban"})
    wait_for(lambda: status(client)["state"] == "finished")
    state = client.get("/_control/limits").json()["limits"]["bybit"]
    assert state["requests_5s"] >= 600 and 13 < state["hold_remaining_s"] <= 15
    assert client.get("/bybit/v5/market/time").status_code == 403
    stopped = client.delete("/_control/scenario").json()["scenario"]
    assert stopped["state"] == "finished"
    # Neither finishing nor stopping ends the hold or the ban; DELETE /_control/limits does.
    assert client.get("/_control/limits").json()["limits"]["bybit"]["hold_remaining_s"] > 0
    client.delete("/_control/limits")
    assert client.get("/bybit/v5/market/time").status_code == 200


@pytest.mark.e2e
def test_stop_keeps_faults_and_pending_steps(client: httpx.Client) -> None:
    body = client.post("/_control/scenario", json={"name": "binance-outage"}).json()["scenario"]
    assert body["name"] == "binance-outage" and body["source"] == "binance-outage.yml"
    wait_for(lambda: len(status(client)["steps_done"]) == 1)
    faults = client.get("/_control/faults").json()["faults"]
    assert faults == [{"exchange": "binance", "endpoint": None, "fault": "down", "mode": "reset"}]
    stopped = client.delete("/_control/scenario").json()["scenario"]
    assert stopped["state"] == "stopped"
    assert [s["index"] for s in stopped["steps_pending"]] == [1]
    assert stopped["steps_pending"][0] == {
        "index": 1,
        "at": "60s",
        "clear": {"exchange": "binance"},
    }
    assert client.get("/_control/faults").json()["faults"] == faults  # stop does not clear
    assert status(client)["state"] == "stopped"


@pytest.mark.e2e
def test_starting_a_scenario_replaces_the_running_one(client: httpx.Client) -> None:
    client.post("/_control/scenario", json={"name": "kraken-latency"})
    r = client.post(
        "/_control/scenario",
        json={"scenario": {"name": "second", "steps": [{"at": "0s", "clear": "all"}]}},
    )
    assert r.json()["scenario"]["name"] == "second"
    wait_for(lambda: status(client)["state"] == "finished")
    assert client.get("/_control/faults").json()["faults"] == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "nope"}, "name: unknown scenario 'nope'"),
        ({"name": "../faults"}, "name: must be a shipped scenario name"),
        ({"name": "binance-outage.yml"}, "name: must be a shipped scenario name"),
        ({}, "name: give either"),
        ({"name": "binance-outage", "scenario": {}}, "name: give either"),
        ({"scenario": {"name": "x", "steps": "none"}}, "<inline>: steps: required"),
        ({"speed": 2}, "speed: unexpected field"),
    ],
)
def test_start_errors(client: httpx.Client, body: dict[str, Any], message: str) -> None:
    r = client.post("/_control/scenario", json=body)
    assert r.status_code == 400
    assert r.json()["error"].startswith(message), r.json()["error"]
    assert client.get("/_control/faults").json()["faults"] == []


# -- CLI ------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_cli_scenario_and_no_limits() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator.cli",
            "--listen",
            "127.0.0.1:0",
            "--no-limits",
            "--scenario",
            "clock-skew",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"exchange-simulator listening on (http://127\.0\.0\.1:\d+)", line)
        assert match is not None, line
        with httpx.Client(base_url=match.group(1), timeout=5, trust_env=False) as c:
            wait_for(lambda: bool(c.get("/_control/faults").json()["faults"]))
            assert c.get("/_control/scenario").json()["scenario"]["name"] == "clock-skew"
            skew = c.get("/binance/api/v3/time").json()["serverTime"] - time.time() * 1000
            assert 1000 < skew < 2000
            limits = c.get("/_control/limits").json()["limits"]
            assert limits["binance"]["enabled"] is False and limits["bybit"]["enabled"] is False
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.e2e
def test_cli_rejects_bad_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nsteps:\n  - at: soon\n    clear: all\n")
    for arg, expected in (("nope", "unknown scenario 'nope'"), (str(bad), "bad.yml: steps[0].at")):
        proc = subprocess.run(
            [sys.executable, "-m", "simulator.cli", "--listen", "127.0.0.1:0", "--scenario", arg],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert proc.stdout == ""
