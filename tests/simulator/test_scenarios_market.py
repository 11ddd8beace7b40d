"""The market-integrity scenarios (``stuck-price``, ``flash-spike``, ``volume-surge``) load,
play and change what the exchanges answer."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from simulator.market import Market
from simulator.scenario import load_scenario_file
from simulator.server import SimulatorServer

MARKET_SCENARIOS = ("stuck-price", "flash-spike", "volume-surge")


def test_market_scenarios_load_with_descriptions() -> None:
    server = SimulatorServer()
    for name in MARKET_SCENARIOS:
        scenario = load_scenario_file(name, faults=server.faults, limits=server.limits)
        assert scenario.description and len(scenario.description) > 40, name
    stuck = load_scenario_file("stuck-price", faults=server.faults, limits=server.limits)
    assert stuck.steps[-1].at_s == 25 * 60  # everything wound down and cleared


def start(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    """Start shipped scenario ``name``; wait for its steps at 0 s; the faults then listed."""
    r = client.post("/_control/scenario", json={"name": name})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        status = client.get("/_control/scenario").json()["scenario"]
        if status["steps_done"] and all(s["at"] != "0s" for s in status["steps_pending"]):
            time.sleep(0.15)  # market faults start at the next tick
            faults: list[dict[str, Any]] = client.get("/_control/faults").json()["faults"]
            return faults
        time.sleep(0.02)
    raise AssertionError(f"{name}: first steps not applied")


def mid_bps(client: httpx.Client, exchange: str, path: str, params: dict[str, str]) -> float:
    """Binance/Bybit-style book ticker mid vs the normal market, in bps."""
    body = client.get(path, params=params).json()
    if exchange == "kraken":
        item = body["result"]["XXBTZUSD"]
        bid, ask = float(item["b"][0]), float(item["a"][0])
    else:
        bid, ask = float(body["bidPrice"]), float(body["askPrice"])
    v = Market().view(exchange, time.time() * 1000.0)
    return ((bid + ask) / (v.best_bid + v.best_ask) - 1.0) * 1e4


@pytest.mark.e2e
def test_stuck_price_freezes_kraken_while_the_others_rally(
    sim: SimulatorServer, client: httpx.Client
) -> None:
    faults = start(client, "stuck-price")
    assert {(f["exchange"], f["fault"]) for f in faults} == {
        ("kraken", "price_freeze"),
        ("binance", "price_offset"),
        ("bybit", "price_offset"),
        ("okx", "price_offset"),
        ("coinbase", "price_offset"),
    }
    assert {f.get("ramp_s") for f in faults if f["fault"] == "price_offset"} == {600}

    def kraken() -> Any:
        return client.get("/kraken/0/public/Ticker", params={"pair": "XBTUSD"}).json()["result"]

    first = kraken()["XXBTZUSD"]
    time.sleep(1.5)
    later = kraken()["XXBTZUSD"]
    assert (later["b"][0], later["a"][0], later["c"][0]) == (
        first["b"][0],
        first["a"][0],
        first["c"][0],
    )


@pytest.mark.e2e
def test_flash_spike_drops_binance_and_not_the_others(client: httpx.Client) -> None:
    faults = start(client, "flash-spike")
    assert [(f["exchange"], f["fault"], f["bps"]) for f in faults] == [
        ("binance", "price_spike", -400)
    ]
    time.sleep(2.0)  # the move is complete 2 s in
    ticker = "/binance/api/v3/ticker/bookTicker"
    assert mid_bps(client, "binance", ticker, {"symbol": "BTCUSDT"}) < -300
    kraken = mid_bps(client, "kraken", "/kraken/0/public/Ticker", {"pair": "XBTUSD"})
    assert abs(kraken) < 10


@pytest.mark.e2e
def test_volume_surge_multiplies_bybit_trade_sizes(client: httpx.Client) -> None:
    faults = start(client, "volume-surge")
    [fault] = faults
    assert (fault["exchange"], fault["fault"], fault["ratio"], fault["duration_s"]) == (
        "bybit",
        "volume_spike",
        8,
        600,
    )
    assert client.get("/_control/scenario").json()["scenario"]["steps_pending"][0]["at"] == "10m"
