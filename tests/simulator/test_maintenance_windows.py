"""``/_control/maintenance``: a scheduled window published through each exchange's own status
channel before it, the ``maintenance`` behaviour inside it, normal answers after it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator.maintenance import KRAKEN_NOTICE_S, MaintenanceSchedule
from simulator.specs import SpecError

LEAD_S = 3.0
"""The window starts this long after it is announced (the "before" checks run in it)."""
LENGTH_S = 4.0


@pytest.fixture
def mclient(client: httpx.Client) -> Iterator[httpx.Client]:
    """``client`` with the maintenance windows cleared around the test."""
    client.delete("/_control/maintenance")
    yield client
    client.delete("/_control/maintenance")


def wait_until(epoch_s: float) -> None:
    time.sleep(max(0.0, epoch_s - time.time()))


def okx_status(c: httpx.Client, **params: str) -> list[dict[str, Any]]:
    body = c.get("/okx/api/v5/system/status", params=params).json()
    assert body["code"] == "0"
    data: list[dict[str, Any]] = body["data"]
    return data


def bybit_status(c: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = c.get("/bybit/v5/system/status").json()["result"]["list"]
    return items


def kraken_status(c: httpx.Client) -> dict[str, Any]:
    result: dict[str, Any] = c.get("/kraken/0/public/SystemStatus").json()["result"]
    return result


@pytest.mark.e2e
def test_window_is_published_before_enforced_inside_and_gone_after(
    mclient: httpx.Client,
) -> None:
    c = mclient
    starts = round(time.time() + LEAD_S, 3)
    ends = starts + LENGTH_S
    for exchange in ("binance", "bybit", "okx", "kraken"):
        r = c.post(
            "/_control/maintenance",
            json={"exchange": exchange, "starts_at": starts, "ends_at": ends},
        )
        assert r.status_code == 200, r.text
    listed = c.get("/_control/maintenance").json()["maintenance"]
    assert [(w["exchange"], w["state"]) for w in listed] == [
        ("binance", "scheduled"),
        ("bybit", "scheduled"),
        ("kraken", "scheduled"),
        ("okx", "scheduled"),
    ]
    begin, end = str(int(starts * 1000)), str(int(ends * 1000))

    # before: announced, everything still answers
    assert c.get("/binance/sapi/v1/system/status").json() == {"status": 0, "msg": "normal"}
    [okx] = okx_status(c)
    assert (okx["state"], okx["begin"], okx["end"]) == ("scheduled", begin, end)
    assert okx_status(c, state="ongoing") == []
    scheduled = [i for i in bybit_status(c) if i["state"] == "scheduled"]
    assert [(i["begin"], i["end"]) for i in scheduled] == [(begin, end)]
    assert not [i for i in bybit_status(c) if i["state"] == "ongoing"]
    kraken = kraken_status(c)
    assert kraken["status"] == "online"
    [upcoming] = kraken["upcoming_maintenance"]
    assert upcoming["start_timestamp"] == int(starts) and upcoming["end_timestamp"] == int(ends)
    assert c.get("/okx/api/v5/market/ticker", params={"instId": "BTC-USDT"}).status_code == 200
    assert c.get("/kraken/0/public/Ticker", params={"pair": "XBTUSD"}).json()["error"] == []

    # inside: the maintenance fault's behaviour, without a fault being set
    wait_until(starts + 0.2)
    assert c.get("/_control/faults").json()["faults"] == []
    assert c.get("/binance/sapi/v1/system/status").json() == {
        "status": 1,
        "msg": "system_maintenance",
    }
    [okx] = okx_status(c)
    assert (okx["state"], okx["begin"], okx["end"]) == ("ongoing", begin, end)
    r = c.get("/okx/api/v5/market/ticker", params={"instId": "BTC-USDT"})
    assert r.status_code == 503 and r.json()["code"] == "50001"
    ongoing = [i for i in bybit_status(c) if i["state"] == "ongoing"]
    assert [(i["begin"], i["end"]) for i in ongoing] == [(begin, end)]
    kraken = kraken_status(c)
    assert kraken["status"] == "maintenance" and kraken["upcoming_maintenance"] == []
    ticker = c.get("/kraken/0/public/Ticker", params={"pair": "XBTUSD"}).json()
    assert ticker == {"error": ["EService:Unavailable"]}
    assert c.get("/okx/api/v5/public/time").status_code == 200  # time keeps answering
    windows = c.get("/_control/maintenance").json()["maintenance"]
    assert {w["state"] for w in windows} == {"ongoing"}

    # after: back to normal; Bybit keeps it as a completed record
    wait_until(ends + 0.2)
    assert c.get("/binance/sapi/v1/system/status").json()["status"] == 0
    assert okx_status(c) == []
    assert c.get("/okx/api/v5/market/ticker", params={"instId": "BTC-USDT"}).status_code == 200
    assert [i["state"] for i in bybit_status(c) if i["begin"] == begin] == ["completed"]
    kraken = kraken_status(c)
    assert kraken["status"] == "online" and kraken["upcoming_maintenance"] == []
    assert c.delete("/_control/maintenance").json() == {"maintenance": []}


@pytest.mark.e2e
def test_explicit_rest_fault_wins_inside_the_window(mclient: httpx.Client) -> None:
    now = time.time()
    body = {"exchange": "okx", "starts_at": now - 1, "ends_at": now + 60}
    assert mclient.post("/_control/maintenance", json=body).status_code == 200
    assert okx_status(mclient)[0]["state"] == "ongoing"
    mclient.post("/_control/faults", json={"exchange": "okx", "fault": "api_error", "code": 50013})
    r = mclient.get("/okx/api/v5/market/ticker", params={"instId": "BTC-USDT"})
    assert r.json()["code"] == "50013"
    mclient.delete("/_control/faults")
    assert (
        mclient.get("/okx/api/v5/market/ticker", params={"instId": "BTC-USDT"}).status_code == 503
    )
    r = mclient.request("DELETE", "/_control/maintenance", json={"exchange": "okx"})
    assert r.status_code == 200 and r.json() == {"maintenance": []}
    assert (
        mclient.get("/okx/api/v5/market/ticker", params={"instId": "BTC-USDT"}).status_code == 200
    )


@pytest.mark.e2e
def test_kraken_lists_only_windows_within_72_hours(mclient: httpx.Client) -> None:
    now = time.time()
    start = now + KRAKEN_NOTICE_S + 600
    far = {"exchange": "kraken", "starts_at": start, "ends_at": start + 3600}
    assert mclient.post("/_control/maintenance", json=far).status_code == 200
    assert kraken_status(mclient)["upcoming_maintenance"] == []
    near = {**far, "starts_at": now + KRAKEN_NOTICE_S - 600}
    assert mclient.post("/_control/maintenance", json=near).status_code == 200  # replaces
    assert len(kraken_status(mclient)["upcoming_maintenance"]) == 1
    assert len(mclient.get("/_control/maintenance").json()["maintenance"]) == 1


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"exchange": "coinbase", "starts_at": 1, "ends_at": 2}, "exchange: 'coinbase' has no"),
        ({"exchange": "ftx", "starts_at": 1, "ends_at": 2}, "exchange: unknown exchange 'ftx'"),
        ({"starts_at": 1, "ends_at": 2}, "exchange: required"),
        ({"exchange": "okx", "ends_at": 2}, "starts_at: required"),
        ({"exchange": "okx", "starts_at": 5, "ends_at": 5}, "ends_at: must be after starts_at"),
        ({"exchange": "okx", "starts_at": "soon", "ends_at": 5}, "starts_at: must be a number"),
        ({"exchange": "okx", "starts_at": 1, "ends_at": 900_000}, "ends_at: a window lasts"),
        ({"exchange": "okx", "starts_at": 1, "ends_at": 2, "state": "x"}, "state: unexpected"),
    ],
)
def test_maintenance_validation_names_field_and_value(
    mclient: httpx.Client, body: dict[str, Any], message: str
) -> None:
    r = mclient.post("/_control/maintenance", json=body)
    assert r.status_code == 400
    assert r.json()["error"].startswith(message), r.json()
    assert mclient.get("/_control/maintenance").json() == {"maintenance": []}


def test_schedule_fault_for_is_the_maintenance_fault() -> None:
    schedule = MaintenanceSchedule(["okx", "coinbase"], ["okx"])
    window = schedule.set({"exchange": "okx", "starts_at": 100, "ends_at": 160})
    assert [window.state(t) for t in (99.9, 100, 159.9, 160)] == [
        "scheduled",
        "ongoing",
        "ongoing",
        "completed",
    ]
    assert schedule.fault_for("okx", 99) is None and schedule.fault_for("okx", 161) is None
    fault = schedule.fault_for("okx", 130)
    assert fault is not None and fault.kind == "maintenance"
    assert (fault.created_at, fault.duration_s) == (100.0, 60.0)
    with pytest.raises(SpecError, match="body: expected a JSON object"):
        schedule.clear([])
    schedule.clear({"exchange": "okx"})
    assert schedule.window("okx") is None
