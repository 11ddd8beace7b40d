"""Checks for probing from several locations (issue 16): which alerts keep the `location` label,
that their aggregations keep it all the way from the exporter's series, and a per-exchange
`down_quorum` override in promtool. The one-, two- and three-location behaviour of the shipped
rules is tested in prometheus/tests/exchange-locations_test.yml (run by test_rules.py)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.rules_contract import (
    ALERT_RULES,
    ALERT_TESTS,
    EXPORTER_SELECTOR,
    PROM_DIR,
    RECORDING_RULES,
    RENDER_THRESHOLDS,
    THRESHOLDS_FILE,
    _assert_ok,
    _load_yaml,
    _rel,
    _run,
    promql_metric_names,
    runbook_url,
)

# Alerts about one egress IP or one exporter host: they aggregate `by (exchange, location, ...)`
# so that each location is an alert of its own (limits and bans are per IP; circuit, clock and
# the stream event counts per exporter and its connection). Every other per-exchange alert is
# exchange-wide and never carries `location`.
PER_LOCATION_ALERTS = {
    "ExchangeApiDownFromLocation",
    "ExchangeIpBanned",
    "ExchangeRateLimited",
    "ExchangeRateLimitNearExhaustion",
    "ExchangeRateLimitExhaustionPredicted",
    "ExchangeCircuitOpen",
    "ExchangeClockSkewHigh",
    "ExchangeWebSocketSequenceGaps",
    "ExchangeWebSocketChecksumMismatch",
    "ExchangeWebSocketReconnecting",
}
# Global alerts about one exporter host (no `exchange`); they keep the exporter's `location`.
GLOBAL_PER_LOCATION = {"ExchangeMonitorNetworkDown", "ExchangeMonitorDnsFailing"}
_BY = re.compile(r"\b(by|on)\s*\(([^)]*)\)")
# "Quiet while the window holds an incident already reported": exchange-wide on purpose.
_ALREADY_REPORTED = re.compile(
    r"unless on \(exchange\)\s*max by \(exchange\) \(max_over_time\(ALERTS\{[^}]*\}\[\w+\]\)\)"
)


def _recorded(name: str) -> dict[str, Any] | None:
    for _, rule in RECORDING_RULES:
        if rule["record"] == name:
            return rule
    return None


def _expressions(expr: str, seen: set[str] | None = None) -> list[str]:
    """``expr`` and the expressions of every recording rule it reads, transitively."""
    seen = set() if seen is None else seen
    found = [expr]
    for name in sorted(promql_metric_names(expr)):
        rule = _recorded(name)
        if rule is not None and name not in seen and not name.startswith("exchange:threshold:"):
            seen.add(name)
            found += _expressions(rule["expr"], seen)
    return found


@pytest.mark.parametrize(
    "rule",
    [
        r
        for _, r in ALERT_RULES
        if r["alert"] in PER_LOCATION_ALERTS - {"ExchangeApiDownFromLocation"}
    ],
    ids=lambda r: f"{r['alert']}[{r['labels']['severity']}]",
)
def test_per_location_alerts_keep_location_in_every_aggregation(rule: dict[str, Any]) -> None:
    """Every `by (...)` with `exchange` in the alert and the recording rules it reads also keeps
    `location`, and every `on (...)` matching two per-location sides names it (a join with a
    per-exchange threshold series is `on (exchange) group_left ()`)."""
    for expr in _expressions(rule["expr"]):
        expr = _ALREADY_REPORTED.sub("", expr)
        for keyword, labels in _BY.findall(expr):
            names = {label.strip() for label in labels.split(",")}
            if keyword == "by" and "exchange" in names:
                assert "location" in names, f"{rule['alert']}: by ({labels}) in {expr}"
            if keyword == "on" and names - {"exchange"}:
                assert "location" in names, f"{rule['alert']}: on ({labels}) in {expr}"


def test_only_per_location_alerts_fire_with_a_location() -> None:
    """In the promtool tests, an alert carries `location` only if it is a per-location alert,
    and every per-location alert is tested with one."""
    with_location = set()
    for path, entry in ALERT_TESTS:
        for alert in entry.get("exp_alerts") or []:
            if "location" in alert.get("exp_labels", {}):
                assert entry["alertname"] in PER_LOCATION_ALERTS | GLOBAL_PER_LOCATION, (
                    f"{_rel(path)}: {entry['alertname']} is exchange-wide but fires with location"
                )
                with_location.add(entry["alertname"])
    tested = {"ExchangeApiDownFromLocation", "ExchangeIpBanned", "ExchangeRateLimited"}
    assert tested | {"ExchangeRateLimitNearExhaustion"} <= with_location


def test_exchange_api_down_counts_locations() -> None:
    """ExchangeApiDown and ExchangeApiDownFromLocation read exchange_api_up per (exchange,
    location) and the quorum from thresholds.yml; FromLocation waits longer than the page."""
    rules = {r["alert"]: r for _, r in ALERT_RULES}
    down, from_location = rules["ExchangeApiDown"], rules["ExchangeApiDownFromLocation"]
    for rule in (down, from_location):
        assert "max by (exchange, location) (exchange_api_up{" in rule["expr"]
        assert "exchange:threshold:down_quorum" in rule["expr"]
    assert from_location["labels"] == {"severity": "warning"}
    from exporter.durations import parse_duration

    assert parse_duration(from_location["for"]) > parse_duration(down.get("for", "0s"))
    for rule in (down, from_location):
        assert "exchange:threshold:api_down_consecutive_failures" in rule["expr"]
        assert "max by (exchange, location) (exchange_api_consecutive_failures{" in rule["expr"]
    recorded = _recorded("exchange_location:exchange_api_up:max")
    assert recorded is not None
    assert recorded["expr"].strip() == (
        f"max by (exchange, location) (exchange_api_up{{{EXPORTER_SELECTOR}}})"
    )


def _up(location: str, values: str, exchange: str) -> list[dict[str, str]]:
    """The time endpoint's exchange_api_up at ``location`` (promtool notation of runs such as
    ``1x5 0x40``, one probe per sample) and its exchange_api_consecutive_failures."""
    labels = f'{EXPORTER_SELECTOR}, location="{location}", exchange="{exchange}", endpoint="time"'
    runs, failures = [], 0
    for token in values.split():
        value, _, repeat = token.partition("x")
        count = int(repeat or 0) + 1
        if value == "0":
            runs.append(f"{failures + 1}+1x{count - 1}")
            failures += count
        else:
            runs.append(f"0x{count - 1}")
            failures = 0
    return [
        {"series": f"exchange_api_up{{{labels}}}", "values": values},
        {"series": f"exchange_api_consecutive_failures{{{labels}}}", "values": " ".join(runs)},
    ]


def _down(exchange: str, failing: int, reporting: int, quorum: int) -> dict[str, Any]:
    """An expected ExchangeApiDown, annotations as the rule renders them."""
    return {
        "exp_labels": {
            "alertname": "ExchangeApiDown",
            "severity": "critical",
            "exchange": exchange,
        },
        "exp_annotations": {
            "summary": f"{exchange} API is down: every probed endpoint is failing",
            "description": (
                f"Every recently probed endpoint of {exchange} failed its last probe"
                f" (exchange_api_up == 0), one of them at least 2 times in a row, from"
                f" {failing} of {reporting} probing locations (it pages"
                f" from {quorum}, or from the only one). Endpoint, error-rate, error-budget,"
                f" latency, circuit, market-data and clock alerts for {exchange} are inhibited"
                " while this fires."
            ),
            "runbook_url": runbook_url("ExchangeApiDown"),
        },
    }


def _from(exchange: str, location: str, answering: int, quorum: int) -> dict[str, Any]:
    """An expected ExchangeApiDownFromLocation, annotations as the rule renders them."""
    name = "ExchangeApiDownFromLocation"
    return {
        "exp_labels": {
            "alertname": name,
            "severity": "warning",
            "exchange": exchange,
            "location": location,
        },
        "exp_annotations": {
            "summary": (
                f"{exchange} API fails from {location} only: a route or egress-IP problem there"
            ),
            "description": (
                f"Every recently probed endpoint of {exchange} has failed from location"
                f" {location} (the last probe of each, one of them at least 2 times in a row)"
                " for at least 30s, while"
                f" {answering} other probing location(s) still get answers: a"
                f" route problem or one egress IP's ban at {location}, not an exchange outage"
                f" (that would fail everywhere; it pages as ExchangeApiDown from {quorum} failing"
                f" locations). Bots trading from {location} are likely cut off too."
            ),
            "runbook_url": runbook_url(name),
        },
    }


@pytest.mark.e2e
def test_a_per_exchange_down_quorum_override(tmp_path: Path) -> None:
    """thresholds.yml `exchanges.<name>.down_quorum` changes the quorum of that exchange only:
    binance at 3 (two of three failing locations do not page, three do), bybit at 1 (one of two
    failing locations pages at once), okx at the default 2."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: apt-get install prometheus"
    data = _load_yaml(THRESHOLDS_FILE)
    assert data["defaults"]["down_quorum"] == 2
    data["exchanges"] = {"binance": {"down_quorum": 3}, "bybit": {"down_quorum": 1}}
    thresholds = tmp_path / "thresholds.yml"
    thresholds.write_text(yaml.safe_dump(data))
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in (PROM_DIR / "rules").glob("*.yml"):
        if path.name != "exchange-thresholds.yml":
            shutil.copy(path, rules / path.name)
    _assert_ok(
        _run(sys.executable, RENDER_THRESHOLDS, "--thresholds", thresholds, "--output",
             rules / "exchange-thresholds.yml")
    )  # fmt: skip
    shipped = _load_yaml(PROM_DIR / "tests" / "exchange-locations_test.yml")
    series = [
        # binance: eu fails from 30 s, us from 60 s, ap from 120 s.
        *_up("eu", "1x5 0x40", "binance"),
        *_up("us", "1x11 0x34", "binance"),
        *_up("ap", "1x23 0x22", "binance"),
        # bybit: eu fails from 30 s, us answers.
        *_up("eu", "1x5 0x40", "bybit"),
        *_up("us", "1x45", "bybit"),
        # okx: eu fails from 30 s, us answers (default quorum 2: a warning only).
        *_up("eu", "1x5 0x40", "okx"),
        *_up("us", "1x45", "okx"),
    ]

    def check(at: str, name: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"eval_time": at, "alertname": name, "exp_alerts": alerts}

    unit_test = {
        "rule_files": ["rules/*.yml"],
        "evaluation_interval": "5s",
        "group_eval_order": shipped["group_eval_order"],
        "tests": [
            {
                "interval": "5s",
                "input_series": series,
                "alert_rule_test": [
                    # bybit pages from one failing location (quorum 1), on its second failed
                    # probe in a row (one probe per 5 s sample here).
                    check("30s", "ExchangeApiDown", []),
                    check("35s", "ExchangeApiDown", [_down("bybit", 1, 2, 1)]),
                    # Two of binance's three locations failing: below its quorum of 3.
                    check("1m50s", "ExchangeApiDown", [_down("bybit", 1, 2, 1)]),
                    check(
                        "1m50s",
                        "ExchangeApiDownFromLocation",
                        [
                            _from("binance", "eu", 1, 3),
                            _from("binance", "us", 1, 3),
                            _from("okx", "eu", 1, 2),
                        ],
                    ),
                    # All three failing: binance pages (ap failed at 120 s and again at 125 s).
                    check("2m", "ExchangeApiDown", [_down("bybit", 1, 2, 1)]),
                    check(
                        "2m5s",
                        "ExchangeApiDown",
                        [_down("binance", 3, 3, 3), _down("bybit", 1, 2, 1)],
                    ),
                    check("2m5s", "ExchangeApiDownFromLocation", [_from("okx", "eu", 1, 2)]),
                ],
            }
        ],
    }
    test_file = tmp_path / "quorum_test.yml"
    test_file.write_text(yaml.safe_dump(unit_test, sort_keys=False))
    _assert_ok(_run(promtool, "test", "rules", test_file.name, cwd=tmp_path))
