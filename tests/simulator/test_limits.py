"""Tests for the simulator's per-IP request accounting (``simulator/limits.py``) and its control
API (``/_control/limits``, ``/_control/consume``, ``limit_responses`` in ``/_control/stats``).

Limiter logic is tested on a fake clock; the HTTP tests use small limits and avoid window
rollovers (Binance: UTC minute [BN-ENUM]; Bybit: 5 s window [BY-RL]).
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from simulator import simulator_in_thread
from simulator.limits import BinanceWeightLimiter, BybitIpLimiter, LimitError, LimitRegistry


def set_limits(client: httpx.Client, **spec: Any) -> dict[str, Any]:
    """POST limits, assert accepted; return the limits view."""
    r = client.post("/_control/limits", json=spec)
    assert r.status_code == 200, r.text
    return r.json()["limits"]


def avoid_rollover(period: float, margin: float) -> None:
    """Sleep past the next multiple of ``period`` seconds if fewer than ``margin`` remain."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.02)


def weight(r: httpx.Response) -> int:
    """Binance's ``X-MBX-USED-WEIGHT-1M`` header as an int."""
    return int(r.headers["X-MBX-USED-WEIGHT-1M"])


# -- limiter logic on a fake clock ------------------------------------------------------------

T0 = 1_800_000_000.0  # a UTC minute boundary (divisible by 60 and 5)


def test_binance_limiter_429_then_ban_then_recovery() -> None:
    lim = BinanceWeightLimiter()
    lim.configure({"weight_per_minute": 10, "ban_after_429s": 2, "ban_seconds": 120})
    assert [lim.admit(5, T0 + 1), lim.admit(5, T0 + 2)] == [None, None]
    assert lim.admit(1, T0 + 20.5) == (429, 40)  # seconds to the next minute (ceil)
    assert lim.admit(1, T0 + 59.2) == (429, 1)
    assert lim.admit(1, T0 + 59.5) == (418, 120)  # third over-limit request: banned
    assert lim.used(T0 + 59.5) == 13
    assert lim.admit(5, T0 + 70) == (418, 110)  # still banned in the next minute
    assert lim.used(T0 + 70) == 0  # banned requests consume no weight
    assert lim.admit(5, T0 + 179.4) == (418, 1)
    assert lim.admit(5, T0 + 180) is None  # ban over, fresh minute
    assert lim.used(T0 + 180) == 5


def test_binance_limiter_429_count_resets_each_minute() -> None:
    lim = BinanceWeightLimiter()
    lim.configure({"weight_per_minute": 1, "ban_after_429s": 1})
    assert lim.admit(2, T0) == (429, 60)
    assert lim.admit(2, T0 + 61) == (429, 59)  # new minute: count restarted, no ban
    assert lim.admit(2, T0 + 62) == (418, 120)


def test_binance_limiter_disabled_counts_but_never_refuses() -> None:
    lim = BinanceWeightLimiter(enabled=False)
    assert all(lim.admit(1000, T0 + i) is None for i in range(20))
    assert lim.used(T0 + 19) == 20_000
    lim.configure({"enabled": True})
    assert lim.admit(1, T0 + 20) == (429, 40)


def test_binance_ban_lifts_when_disabled() -> None:
    lim = BinanceWeightLimiter()
    lim.configure({"weight_per_minute": 1, "ban_after_429s": 0})
    assert lim.admit(2, T0) == (418, 120)
    lim.configure({"enabled": False})
    assert lim.admit(1, T0 + 1) is None and lim.ban_remaining(T0 + 1) == 0


def test_bybit_limiter_window_and_ban() -> None:
    lim = BybitIpLimiter()
    lim.configure({"requests_per_5s": 3, "ban_seconds": 600})
    assert [lim.admit(1, T0 + 0.1 * i) for i in range(3)] == [None] * 3
    assert lim.admit(1, T0 + 1) == (403, 600)
    assert lim.admit(1, T0 + 6) == (403, 595)  # ban outlives the window
    lim.reset()
    assert lim.config["requests_per_5s"] == 600 and lim.admit(1, T0 + 7) is None
    lim.consume(600, T0 + 7.5)
    assert lim.admit(1, T0 + 8) == (403, 600)


def test_bybit_window_rolls_every_5_s() -> None:
    lim = BybitIpLimiter()
    lim.configure({"requests_per_5s": 2})
    assert lim.admit(1, T0 + 4.0) is None and lim.admit(1, T0 + 4.9) is None
    assert lim.admit(1, T0 + 5.0) is None  # new window
    assert lim.used(T0 + 5.0) == 1


# -- holds: another process that keeps spending (hold_s) --------------------------------------


@pytest.mark.parametrize(
    "delta", [0.01, 0.69, 0.7, 5.0, 5.7, 10.7, 14.99, 15.69], ids=lambda d: f"+{d}s"
)
def test_bybit_hold_bans_a_request_anywhere_in_the_span(delta: float) -> None:
    # Consumed 0.7 s before a window boundary (T0 + 5): without the hold a request from
    # +0.7 s on would land in a fresh window. The hold runs until T0 + 19.3; the window
    # [T0 + 15, T0 + 20) starts before that, so it is spent to its end.
    lim = BybitIpLimiter()
    consumed = T0 + 4.3
    lim.consume(600, consumed, hold_s=15)
    now = consumed + delta
    assert lim.used(now) >= 600
    assert lim.admit(1, now) == (403, 600)
    assert lim.admit(1, now + 1) == (403, 599)  # then the ban, as without a hold


def test_bybit_hold_ends_with_the_last_window_starting_in_the_span() -> None:
    lim = BybitIpLimiter()
    lim.consume(600, T0 + 4.3, hold_s=15)  # hold until T0 + 19.3
    assert lim.to_json(T0 + 4.3)["hold_remaining_s"] == 15
    assert lim.used(T0 + 19.9) == 600  # the window [15, 20) started inside the span
    assert lim.used(T0 + 20.0) == 0 and lim.hold_remaining(T0 + 20.0) == 0
    assert lim.admit(1, T0 + 20.0) is None
    assert lim.used(T0 + 20.0) == 1


def test_bybit_without_hold_a_window_boundary_clears_the_consume() -> None:
    lim = BybitIpLimiter()
    lim.consume(600, T0 + 4.9)
    assert lim.admit(1, T0 + 5.1) is None  # the race the hold removes


def test_holds_stack_and_reset_clears_them() -> None:
    lim = BybitIpLimiter()
    lim.consume(300, T0 + 1, hold_s=10)  # until T0 + 11
    lim.consume(300, T0 + 1, hold_s=20)  # until T0 + 21
    assert lim.used(T0 + 12) == 600  # [10, 15): both still running at its start
    assert lim.used(T0 + 16) == 300  # [15, 20): only the second one
    assert lim.admit(1, T0 + 16) is None
    assert lim.used(T0 + 16) == 301
    lim.reset()
    assert lim.used(T0 + 17) == 0 and lim.hold_remaining(T0 + 17) == 0
    assert lim.used(T0 + 21) == 0


def test_binance_hold_429s_across_a_minute_boundary() -> None:
    lim = BinanceWeightLimiter()
    lim.consume(6000, T0 + 59.9, hold_s=15)  # 0.1 s before the minute rolls over
    assert lim.admit(1, T0 + 59.95) == (429, 1)
    # The next minute started within the hold: spent again, every request 429 with
    # Retry-After to the following minute.
    assert lim.admit(2, T0 + 60.01) == (429, 60)
    assert lim.admit(5, T0 + 74.8) == (429, 46)  # last instant of the hold
    assert lim.admit(1, T0 + 100) == (429, 20)  # the minute stays spent to its end
    assert lim.used(T0 + 100) == 6008
    assert lim.to_json(T0 + 100)["rate_limited_responses_1m"] == 3
    assert lim.admit(1, T0 + 120) is None  # this minute started after the hold ended
    assert lim.used(T0 + 120) == 1


def test_binance_hold_keeps_the_ban_after_429s() -> None:
    lim = BinanceWeightLimiter()
    lim.configure({"ban_after_429s": 2})
    lim.consume(6000, T0 + 50, hold_s=15)
    assert [lim.admit(1, T0 + t) for t in (61, 62)] == [(429, 59), (429, 58)]
    assert lim.admit(1, T0 + 63) == (418, 120)
    assert lim.admit(1, T0 + 64) == (418, 119)


def test_binance_used_reports_a_held_minute_before_any_request() -> None:
    lim = BinanceWeightLimiter()
    lim.consume(6000, T0 + 55, hold_s=15)
    assert lim.used(T0 + 61) == 6000
    json = lim.to_json(T0 + 61)
    assert json["used_weight_1m"] == 6000 and json["rate_limited_responses_1m"] == 0
    assert json["hold_remaining_s"] == 9


@pytest.mark.parametrize(
    "hold", [0, -1, 3600.5, 86400, "15s", True, None, float("nan"), float("inf"), [15]]
)
@pytest.mark.parametrize(("exchange", "field"), [("binance", "weight"), ("bybit", "requests")])
def test_hold_validation_names_field_and_value(exchange: str, field: str, hold: Any) -> None:
    registry = LimitRegistry({"binance": BinanceWeightLimiter(), "bybit": BybitIpLimiter()})
    with pytest.raises(LimitError) as info:
        registry.consume({"exchange": exchange, field: 10, "hold_s": hold}, T0)
    assert str(info.value) == (
        f"hold_s: must be a number of seconds greater than 0 and at most 3600, got {hold!r}"
    )
    assert registry.limiters[exchange].used(T0) == 0  # nothing applied


@pytest.mark.parametrize("hold", [0.001, 1, 15, 3600])
def test_hold_accepts_seconds_up_to_an_hour(hold: float) -> None:
    registry = LimitRegistry({"bybit": BybitIpLimiter()})
    _, amount, hold_s = registry.validate_consume(
        {"exchange": "bybit", "requests": 600, "hold_s": hold}
    )
    assert (amount, hold_s) == (600, hold) and isinstance(hold_s, float)
    assert registry.validate_consume({"exchange": "bybit", "requests": 1})[2] == 0.0


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "exchange"),
        ({"exchange": "okx"}, "exchange"),
        ({"exchange": "ftx"}, "exchange"),
        ({"exchange": "binance", "weight_per_minute": 0}, "weight_per_minute"),
        ({"exchange": "binance", "weight_per_minute": 1.5}, "weight_per_minute"),
        ({"exchange": "binance", "ban_after_429s": -1}, "ban_after_429s"),
        ({"exchange": "binance", "ban_seconds": 0}, "ban_seconds"),
        ({"exchange": "binance", "enabled": 1}, "enabled"),
        ({"exchange": "binance", "requests_per_5s": 5}, "requests_per_5s"),
        ({"exchange": "bybit", "weight_per_minute": 5}, "weight_per_minute"),
        ({"exchange": "bybit", "requests_per_5s": True}, "requests_per_5s"),
    ],
)
def test_limits_validation_names_field(spec: dict[str, Any], field: str) -> None:
    registry = LimitRegistry(
        {"binance": BinanceWeightLimiter(), "bybit": BybitIpLimiter()},
        ("binance", "bybit", "okx"),
    )
    with pytest.raises(LimitError, match=rf"^{field}:"):
        registry.configure(spec)


# -- HTTP: Binance ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_binance_exhaustion_429_then_418_and_delete_clears(client: httpx.Client) -> None:
    avoid_rollover(60, 3)
    set_limits(client, exchange="binance", weight_per_minute=5, ban_after_429s=3, ban_seconds=120)
    for _ in range(5):
        assert client.get("/binance/api/v3/ping").status_code == 200
    for _ in range(3):
        r = client.get("/binance/api/v3/ping")
        assert r.status_code == 429
        assert r.json() == {
            "code": -1003,
            "msg": "Too much request weight used; current limit is 5 request weight per 1 "
            "MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
        }
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert abs(int(r.headers["Retry-After"]) - (60 - time.time() % 60)) <= 1.5
    r = client.get("/binance/api/v3/ping")
    assert r.status_code == 418 and r.headers["Retry-After"] == "120"
    assert re.fullmatch(
        r"Way too much request weight used; IP banned until \d+\. .*", r.json()["msg"]
    )
    banned_weight = weight(r)
    r = client.get("/binance/api/v3/depth?symbol=BTCUSDT")  # weight 5, but banned: not counted
    assert r.status_code == 418 and int(r.headers["Retry-After"]) <= 120
    assert weight(r) == banned_weight
    state = client.get("/_control/limits").json()["limits"]["binance"]
    assert state["banned"] is True and 115 < state["ban_remaining_s"] <= 120
    assert state["rate_limited_responses_1m"] == 3
    stats = client.get("/_control/stats").json()
    assert stats["limit_responses"]["binance"] == {"429": 3, "418": 2, "403": 0}
    assert stats["outcomes"]["binance"] == {"200": 5, "429": 3, "418": 2}

    cleared = client.delete("/_control/limits").json()["limits"]["binance"]
    assert cleared["banned"] is False and cleared["used_weight_1m"] == 0
    assert cleared["weight_per_minute"] == 6000  # back to the default configuration
    r = client.get("/binance/api/v3/ping")
    assert r.status_code == 200 and weight(r) == 1


@pytest.mark.e2e
def test_binance_consume_raises_weight_header(client: httpx.Client) -> None:
    avoid_rollover(60, 2)
    start = weight(client.get("/binance/api/v3/ping"))
    limits = client.post("/_control/consume", json={"exchange": "binance", "weight": 5900})
    assert limits.status_code == 200
    assert limits.json()["limits"]["binance"]["used_weight_1m"] == start + 5900
    r = client.get("/binance/api/v3/time")
    assert r.status_code == 200 and weight(r) == start + 5901
    assert r.headers["X-MBX-USED-WEIGHT"] == r.headers["X-MBX-USED-WEIGHT-1M"]
    client.post("/_control/consume", json={"exchange": "binance", "weight": 200})
    r = client.get("/binance/api/v3/time")
    assert r.status_code == 429 and weight(r) == start + 6102
    assert client.get("/_control/stats").json()["binance_used_weight_1m"] == start + 6102


@pytest.mark.e2e
def test_delete_faults_keeps_limits(client: httpx.Client) -> None:
    avoid_rollover(60, 2)
    set_limits(client, exchange="binance", weight_per_minute=100)
    client.post("/_control/consume", json={"exchange": "binance", "weight": 50})
    client.delete("/_control/faults")
    state = client.get("/_control/limits").json()["limits"]["binance"]
    assert state["weight_per_minute"] == 100 and state["used_weight_1m"] == 50


@pytest.mark.e2e
def test_rate_limited_fault_is_not_a_limit_response(client: httpx.Client) -> None:
    client.post("/_control/faults", json={"exchange": "binance", "fault": "rate_limited"})
    assert client.get("/binance/api/v3/ping").status_code == 429
    client.delete("/_control/faults")
    assert client.get("/_control/stats").json()["limit_responses"]["binance"]["429"] == 0


# -- HTTP: Bybit ------------------------------------------------------------------------------


@pytest.mark.e2e
def test_bybit_ip_limit_403_and_headers(client: httpx.Client) -> None:
    avoid_rollover(5, 1.5)
    set_limits(client, exchange="bybit", requests_per_5s=4, ban_seconds=600)
    remaining = []
    for _ in range(4):
        r = client.get("/bybit/v5/market/time")
        assert r.status_code == 200
        assert r.headers["X-Bapi-Limit"] == "4"
        remaining.append(int(r.headers["X-Bapi-Limit-Status"]))
    assert remaining == [3, 2, 1, 0]
    r = client.get("/bybit/v5/market/time")
    assert r.status_code == 403
    assert r.text == "access too frequent" and r.headers["content-type"] == "text/plain"
    assert client.get("/bybit/v5/market/tickers?category=spot").status_code == 403
    state = client.get("/_control/limits").json()["limits"]["bybit"]
    assert state["banned"] is True and 595 < state["ban_remaining_s"] <= 600
    assert client.get("/_control/stats").json()["limit_responses"]["bybit"]["403"] == 2
    assert client.get("/okx/api/v5/public/time").status_code == 200  # other venues unaffected
    client.delete("/_control/limits")
    assert client.get("/bybit/v5/market/time").status_code == 200


@pytest.mark.e2e
def test_bybit_consume_uses_the_window(client: httpx.Client) -> None:
    avoid_rollover(5, 1.5)
    limits = client.post("/_control/consume", json={"exchange": "bybit", "requests": 590})
    assert limits.json()["limits"]["bybit"]["requests_5s"] == 590
    r = client.get("/bybit/v5/market/time")
    assert r.status_code == 200 and int(r.headers["X-Bapi-Limit-Status"]) == 9
    client.post("/_control/consume", json={"exchange": "bybit", "requests": 9})
    assert client.get("/bybit/v5/market/time").status_code == 403  # the 601st request


@pytest.mark.e2e
def test_consume_with_hold_over_http(client: httpx.Client) -> None:
    avoid_rollover(5, 1.5)
    r = client.post("/_control/consume", json={"exchange": "bybit", "requests": 600, "hold_s": 15})
    assert r.status_code == 200, r.text
    state = r.json()["limits"]["bybit"]
    assert state["requests_5s"] == 600 and 14 < state["hold_remaining_s"] <= 15
    assert client.get("/bybit/v5/market/time").status_code == 403
    cleared = client.delete("/_control/limits").json()["limits"]["bybit"]
    assert cleared["hold_remaining_s"] == 0 and cleared["requests_5s"] == 0
    assert client.get("/bybit/v5/market/time").status_code == 200


# -- control API ------------------------------------------------------------------------------


@pytest.mark.e2e
def test_get_limits_shape(client: httpx.Client) -> None:
    limits = client.get("/_control/limits").json()["limits"]
    assert set(limits) == {"binance", "bybit"}
    assert limits["binance"] | {"used_weight_1m": 0, "window_resets_in_s": 0} == {
        "enabled": True,
        "weight_per_minute": 6000,
        "ban_after_429s": 10,
        "ban_seconds": 120,
        "used_weight_1m": 0,
        "rate_limited_responses_1m": 0,
        "window_resets_in_s": 0,
        "hold_remaining_s": 0.0,
        "banned": False,
        "banned_until": None,
        "ban_remaining_s": 0.0,
    }
    assert limits["bybit"]["requests_per_5s"] == 600 and limits["bybit"]["ban_seconds"] == 600


@pytest.mark.e2e
def test_partial_update_keeps_other_fields(client: httpx.Client) -> None:
    limits = set_limits(client, exchange="binance", ban_seconds=300)
    assert limits["binance"]["ban_seconds"] == 300
    assert limits["binance"]["weight_per_minute"] == 6000


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("path", "spec", "field"),
    [
        ("/_control/limits", {"exchange": "kraken", "enabled": False}, "exchange"),
        ("/_control/limits", {"exchange": "binance", "weight_per_minute": -5}, "weight_per_minute"),
        ("/_control/limits", {"exchange": "bybit", "ban_seconds": "10m"}, "ban_seconds"),
        ("/_control/consume", {"exchange": "binance", "requests": 5}, "requests"),
        ("/_control/consume", {"exchange": "binance"}, "weight"),
        ("/_control/consume", {"exchange": "bybit", "requests": -1}, "requests"),
        ("/_control/consume", {"exchange": "coinbase", "weight": 1}, "exchange"),
        ("/_control/consume", {"exchange": "bybit", "requests": 600, "hold_s": 0}, "hold_s"),
        ("/_control/consume", {"exchange": "binance", "weight": 1, "hold_s": 3601}, "hold_s"),
        ("/_control/consume", {"exchange": "binance", "weight": 1, "hold_s": "1m"}, "hold_s"),
        ("/_control/consume", {"exchange": "binance", "weight": 1, "hold": 15}, "hold"),
        ("/_control/consume", [1], "body"),
    ],
)
def test_control_validation(client: httpx.Client, path: str, spec: Any, field: str) -> None:
    r = client.post(path, json=spec)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error.startswith(f"{field}:"), error
    if isinstance(spec, dict) and field in spec and "unexpected field" not in error:
        assert repr(spec[field]) in error


@pytest.mark.e2e
def test_stats_list_limit_responses_for_every_exchange(client: httpx.Client) -> None:
    stats = client.get("/_control/stats").json()
    assert stats["limit_responses"] == {
        ex: {"429": 0, "418": 0, "403": 0}
        for ex in ("binance", "bybit", "coinbase", "kraken", "okx")
    }
    assert "bybit_requests_5s" in stats


@pytest.mark.e2e
def test_no_limits_server_counts_but_never_refuses() -> None:
    with (
        simulator_in_thread(limits=False) as server,
        httpx.Client(base_url=server.url, timeout=5, trust_env=False) as c,
    ):
        avoid_rollover(60, 2)
        c.post("/_control/consume", json={"exchange": "binance", "weight": 100_000})
        c.post("/_control/consume", json={"exchange": "bybit", "requests": 100_000})
        r = c.get("/binance/api/v3/ping")
        assert r.status_code == 200 and weight(r) == 100_001
        assert c.get("/bybit/v5/market/time").status_code == 200
        # DELETE restores the boot configuration, i.e. still disabled
        assert c.delete("/_control/limits").json()["limits"]["binance"]["enabled"] is False
        assert (
            c.post("/_control/limits", json={"exchange": "bybit", "enabled": True}).status_code
            == 200
        )
        c.post("/_control/consume", json={"exchange": "bybit", "requests": 600})
        assert c.get("/bybit/v5/market/time").status_code == 403
