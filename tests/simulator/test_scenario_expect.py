"""A scenario's ``expect:`` block: validation, and every shipped scenario saying what it should
page as, under an alert that exists, with the diagnosis category that alert is known by."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.diagnosis.knowledge import ALERTS
from receiver.diagnosis.schema import ROOT_CAUSE_CATEGORIES
from simulator import SimulatorServer
from simulator.scenario import ScenarioError, load_scenario, load_scenario_file, shipped_scenarios

pytestmark = pytest.mark.e2e  # the simulator fixture serves on loopback

RULES = Path(__file__).resolve().parents[2] / "prometheus" / "rules"
STEP = {"at": "0s", "fault": {"exchange": "binance", "fault": "down"}}
EXPECT = {"alertname": "ExchangeApiDown", "exchange": "binance", "category": "outage"}


def _alertnames() -> set[str]:
    names = set()
    for path in RULES.glob("*.yml"):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            names |= {rule["alert"] for rule in group.get("rules", []) if "alert" in rule}
    return names


def test_every_shipped_scenario_expects_a_known_alert_and_category(sim: SimulatorServer) -> None:
    alertnames = _alertnames()
    categories = {entry.name: entry.category for entry in ALERTS}
    for name in shipped_scenarios():
        scenario = load_scenario_file(name, faults=sim.faults, limits=sim.limits)
        expect = scenario.expect
        assert expect is not None, f"{name}: no expect block"
        assert expect.alertname in alertnames, f"{name}: {expect.alertname} is no alert rule"
        assert expect.category in ROOT_CAUSE_CATEGORIES, name
        assert expect.category == categories[expect.alertname], name
        touched = {
            step.spec.get("exchange") for step in scenario.steps if isinstance(step.spec, dict)
        }
        assert expect.exchange in touched, f"{name}: expects {expect.exchange}, plays {touched}"
        assert 0 < expect.within_s <= 900, name


def test_expect_round_trips_and_is_optional(sim: SimulatorServer) -> None:
    data = {"name": "t", "steps": [STEP], "expect": {**EXPECT, "within": "10s"}}
    scenario = load_scenario(data, "<inline>", faults=sim.faults, limits=sim.limits)
    assert scenario.expect is not None and scenario.expect.within_s == 10.0
    assert scenario.expect.to_json() == {**EXPECT, "within": "10s"}
    bare = load_scenario({"name": "t", "steps": [STEP]}, "<inline>", faults=sim.faults,
                         limits=sim.limits)  # fmt: skip
    assert bare.expect is None


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ("ExchangeApiDown", "<inline>: expect: expected a mapping, got 'ExchangeApiDown'"),
        ({**EXPECT, "within": "10s", "route": "x"}, "<inline>: expect.route: unexpected field"),
        ({**EXPECT, "alertname": "Exchange Api", "within": "10s"}, "<inline>: expect.alertname:"),
        ({**EXPECT, "exchange": "Binance!", "within": "10s"}, "<inline>: expect.exchange: must"),
        ({**EXPECT, "category": None, "within": "10s"}, "<inline>: expect.category: required"),
        (EXPECT, "<inline>: expect.within: required, expected a duration"),
        ({**EXPECT, "within": "0s"}, "<inline>: expect.within: must be longer than 0s, got '0s'"),
    ],
)
def test_expect_errors_name_the_field_and_value(
    sim: SimulatorServer, expect: Any, message: str
) -> None:
    data = {"name": "t", "steps": [STEP], "expect": expect}
    with pytest.raises(ScenarioError) as info:
        load_scenario(data, "<inline>", faults=sim.faults, limits=sim.limits)
    assert str(info.value).startswith(message), str(info.value)


def test_the_control_api_shows_the_running_scenarios_expectation(client: Any) -> None:
    started = client.post("/_control/scenario", json={"name": "ws-stall"}).json()["scenario"]
    assert started["expect"] == {
        "alertname": "ExchangeWebSocketStale",
        "exchange": "binance",
        "category": "data_quality",
        "within": "15s",
    }
