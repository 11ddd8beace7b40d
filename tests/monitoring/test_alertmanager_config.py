"""Checks of deploy/alertmanager.yml: amtool validity, the routing cases, every alert reaching its
severity route, the timing budgets of the fast paths, and the inhibition graph (a real
Alertmanager is started for the end-to-end inhibition checks)."""

from __future__ import annotations

import itertools
import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.market_contract import MARKET_ALERTS
from tests.monitoring.rules_contract import (
    ALERT_IDS,
    ALERT_NAMES,
    ALERT_RULES,
    AM_CONFIG,
    EXPORTER_JOB,
    GLOBAL_ALERTS,
    HEARTBEAT_RECEIVER,
    NEVER_MUTED,
    PROM_CONFIG,
    RECEIVER_URLS,
    ROOT_RECEIVER,
    ROUTING_CASES_FILE,
    RULE_FILES,
    SEVERITY_RECEIVERS,
    THRESHOLDS_FILE,
    _alert_id,
    _assert_ok,
    _load_yaml,
    _run,
)

# --------------------------------------------------------------------------------------------
# Alertmanager


ROUTING = _load_yaml(ROUTING_CASES_FILE)
AM = _load_yaml(AM_CONFIG)


@pytest.mark.e2e
def test_alertmanager_config_is_valid(amtool: str) -> None:
    _assert_ok(_run(amtool, "check-config", AM_CONFIG))


def test_alertmanager_config_contract() -> None:
    route = AM["route"]
    assert route["receiver"] == ROOT_RECEIVER
    assert route["group_by"] == ["alertname", "exchange"]
    # Alerts of no known severity: a short batch (the severity routes set their own).
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "5s",
        "1m",
        "4h",
    )
    routes = route["routes"]
    # Watchdog first and final, to the heartbeat, re-sent every minute.
    assert routes[0]["matchers"] == ['alertname="Watchdog"']
    assert routes[0]["receiver"] == HEARTBEAT_RECEIVER
    assert routes[0]["continue"] is False
    assert routes[0]["repeat_interval"] == "1m"
    assert routes[0]["group_wait"] == "0s"
    # The stale-stream route: before the severity routes, same receiver as critical, no
    # group_wait (its <= 30 s notification budget, see prometheus/thresholds.yml).
    stream = routes[1]
    assert stream["matchers"] == ['alertname="ExchangeWebSocketStale"', 'severity="critical"']
    assert stream["receiver"] == SEVERITY_RECEIVERS["critical"]
    assert (stream["group_wait"], stream["group_interval"]) == ("0s", "5s")
    # The maintenance route (an announcement, or a maintenance in progress): before the
    # severity routes, same receiver as info, a short group_wait (an announcement may come
    # minutes before the window; a maintenance mutes the exchange's pages: <= 60 s, issue 18).
    scheduled = routes[2]
    assert scheduled["matchers"] == [
        'alertname=~"ExchangeMaintenance|ExchangeMaintenanceScheduled"',
        'severity="info"',
    ]
    assert scheduled["receiver"] == SEVERITY_RECEIVERS["info"]
    assert scheduled["group_wait"] == "5s"
    severities = {r["matchers"][0]: r["receiver"] for r in routes[3:]}
    assert severities == {f'severity="{s}"': r for s, r in SEVERITY_RECEIVERS.items()}
    # Pages leave at once (issue 18); warnings wait 30 s, long enough for a critical of the
    # same alert to mute them (test_two_level_alerts_send_only_the_critical_on_a_jump).
    by_severity = {r["matchers"][0]: r for r in routes[3:]}
    assert by_severity['severity="critical"']["group_wait"] == "0s"
    assert by_severity['severity="critical"']["group_interval"] == "5s"
    assert by_severity['severity="warning"']["group_wait"] == "30s"
    assert not any(r.get("continue") for r in routes), "one receiver per alert"

    receivers = {r["name"]: r for r in AM["receivers"]}
    assert set(receivers) == set(RECEIVER_URLS)
    for name, receiver in receivers.items():
        [webhook] = receiver["webhook_configs"]
        # The native runner only rewrites URLs that start with http://receiver:8080.
        assert webhook["url"] == RECEIVER_URLS[name]
        assert webhook["max_alerts"] == 0, name
        # Heartbeats never resolve; everything else reports its resolution.
        assert webhook["send_resolved"] is (name != HEARTBEAT_RECEIVER), name


def _routes_test(amtool: str, labels: dict[str, str]) -> list[str]:
    proc = _run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    _assert_ok(proc)
    return [r.strip() for r in proc.stdout.strip().split(",")]


@pytest.mark.e2e
@pytest.mark.parametrize("case", ROUTING["routes"], ids=lambda c: c["name"])
def test_alertmanager_routes(amtool: str, case: dict[str, Any]) -> None:
    assert _routes_test(amtool, case["labels"]) == case["receivers"]


@pytest.mark.e2e
@pytest.mark.parametrize(("path", "rule"), ALERT_RULES, ids=ALERT_IDS)
def test_every_alert_reaches_its_severity_route(
    amtool: str, path: Path, rule: dict[str, Any]
) -> None:
    labels = _alert_labels(rule)
    if rule["alert"] == "Watchdog":
        expected = HEARTBEAT_RECEIVER
    else:
        expected = SEVERITY_RECEIVERS.get(rule["labels"]["severity"], ROOT_RECEIVER)
    assert _routes_test(amtool, labels) == [expected]


def _route_for(labels: dict[str, str]) -> dict[str, Any]:
    """The child route Alertmanager picks for ``labels`` (first match; no route continues),
    with the root's timings filled in where the child does not set them."""
    root = AM["route"]
    for route in root["routes"]:
        if _matches(route.get("matchers", []), labels):
            return {**{k: v for k, v in root.items() if k != "routes"}, **route}
    return root


def _exporter_scrape_interval() -> float:
    """Seconds between two scrapes of the exporter job (its own setting, else the global)."""
    from exporter.durations import parse_duration

    config = _load_yaml(PROM_CONFIG)
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == EXPORTER_JOB]
    return parse_duration(job.get("scrape_interval", config["global"]["scrape_interval"]))


def _group_interval(alertname: str) -> float:
    """Seconds between two evaluations of the group holding ``alertname``."""
    from exporter.durations import parse_duration

    default = parse_duration(_load_yaml(PROM_CONFIG)["global"]["evaluation_interval"])
    for path in RULE_FILES:
        for group in _load_yaml(path)["groups"]:
            if any(rule.get("alert") == alertname for rule in group["rules"]):
                return parse_duration(group["interval"]) if "interval" in group else default
    raise AssertionError(f"no rule group holds {alertname}")


def test_stale_stream_route_meets_its_notification_budget() -> None:
    """ExchangeWebSocketStale is notified <= 15 s after a stalled stream's last message with
    shipped defaults (issue 18): stale_after (5 s for the first channels to go stale, 10 s at
    most) + scrape + evaluation + `for` + group_wait of its route, leaving time for the
    receiver (the arithmetic in prometheus/thresholds.yml)."""
    from exporter.durations import parse_duration

    [rule] = [r for _, r in ALERT_RULES if r["alert"] == "ExchangeWebSocketStale"]
    route = _route_for(_alert_labels(rule) | {"channel": "book"})
    path = (
        1.0  # the exporter's staleness timer
        + _exporter_scrape_interval()
        + _group_interval("ExchangeWebSocketStale")
        + parse_duration(rule["for"])
        + parse_duration(route["group_wait"])
    )
    assert route["receiver"] == SEVERITY_RECEIVERS["critical"]
    stall = 5.0 + path  # a whole-stream stall: the 5 s channels (every book) go stale first
    assert stall <= 11.0, f"{stall:g} s before the receiver: no time left within 15 s"
    assert 10.0 + path <= 16.0  # a lone 10 s (trade-driven) channel
    thresholds_text = THRESHOLDS_FILE.read_text(encoding="utf-8")
    assert "= 11 s worst case" in thresholds_text, "the arithmetic in thresholds.yml is stale"


def test_hard_outage_path_fits_the_page_budget() -> None:
    """Issue 18: a hard outage (TCP reset) is notified <= 10 s after it starts. Worst case before
    the receiver: the fast endpoint's first failure (its interval, 1 s) + the further failures
    ExchangeApiDown counts (each up to 1.2 × the interval: the exporter's backoff jitter) +
    scrape + evaluation + `for` + the critical route's group_wait; the receiver has what is
    left (it waits at most 2 s for an LLM on the critical route)."""
    from exporter.durations import parse_duration

    defaults = yaml.safe_load(THRESHOLDS_FILE.read_text(encoding="utf-8"))["defaults"]
    in_a_row = defaults["api_down_consecutive_failures"]
    rules = {_alert_id(r): r for _, r in ALERT_RULES}
    down = rules["ExchangeApiDown[critical]"]
    route = _route_for(_alert_labels(down))
    fast_interval = 1.0  # deploy/exporter.yml: ping/time every second (binance, bybit)
    path = (
        fast_interval
        + (in_a_row - 1) * 1.2 * fast_interval
        + _exporter_scrape_interval()
        + _group_interval("ExchangeApiDown")
        + parse_duration(down.get("for", "0s"))
        + parse_duration(route["group_wait"])
    )
    assert route["receiver"] == SEVERITY_RECEIVERS["critical"]
    assert path <= 5.0, f"{path:g} s before the receiver leaves too little of the 10 s"
    # The IP ban and the rate limit take the same path without the second failure.
    for name in ("ExchangeIpBanned[critical]", "ExchangeRateLimited[critical]"):
        assert _group_interval(name.split("[")[0]) == 1.0, name
        assert parse_duration(rules[name].get("for", "0s")) == 0.0, name


def test_two_level_alerts_send_only_the_critical_on_a_jump() -> None:
    """Issue 18 (a clock skew paged warning, then critical, 16 s apart): for a two-level alert
    whose critical level comes with its warning level (both levels share `for` and the
    compared series), the critical reaches Alertmanager before the warning's group_wait ends,
    so the inhibit rule "critical mutes the warning of the same alert" drops the warning. The
    lag between the two firings is at most one evaluation of their group."""
    from exporter.durations import parse_duration

    inhibit = {
        (tuple(r["source_matchers"]), tuple(r["target_matchers"])): r.get("equal", [])
        for r in AM["inhibit_rules"]
    }
    assert inhibit[(('severity="critical"',), ('severity="warning"',))] == [
        "alertname",
        "exchange",
        "location",
    ]
    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for _, rule in ALERT_RULES:
        by_name.setdefault(rule["alert"], {})[rule["labels"]["severity"]] = rule
    # The levels of one measurement (ExchangeApiAvailabilityBudgetBurn's levels are two windows,
    # each its own statement; ExchangePriceDeviation's critical is a different size of move).
    two_level = {
        n: by_name[n] for n in ("ExchangeClockSkewHigh", "ExchangeRateLimitNearExhaustion")
    }
    for name, levels in two_level.items():
        warning, critical = levels["warning"], levels["critical"]
        assert warning.get("for") == critical.get("for"), f"{name}: both levels share `for`"
        warning_route = _route_for(_alert_labels(warning))
        critical_route = _route_for(_alert_labels(critical))
        lag = _group_interval(name)  # the critical can be one evaluation behind
        assert parse_duration(critical_route["group_wait"]) + lag < parse_duration(
            warning_route["group_wait"]
        ), name
    # Clock skew: both levels compare the same 30s median, which a step moves past both.
    skew = two_level["ExchangeClockSkewHigh"]
    for rule in skew.values():
        assert "exchange:exchange_clock_skew_seconds:median_over_time_30s" in rule["expr"]


# --- inhibition: the static graph


def _alert_labels(rule: dict[str, Any], exchange: str = "binance") -> dict[str, str]:
    labels = {"alertname": rule["alert"], **rule.get("labels", {})}
    if rule["alert"] not in GLOBAL_ALERTS:
        labels["exchange"] = exchange
    return labels


_MATCHER = re.compile(r'^\s*(?P<name>\w+)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>.*)"\s*$')


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Alertmanager matcher semantics: regexes are fully anchored, a missing label is ""."""
    for matcher in matchers:
        m = _MATCHER.match(matcher)
        assert m, f"unsupported matcher syntax in deploy/alertmanager.yml: {matcher!r}"
        value = labels.get(m["name"], "")
        if m["op"] in ("=~", "!~"):
            hit = re.fullmatch(m["value"], value) is not None
        else:
            hit = value == m["value"]
        if hit == m["op"].startswith("!"):
            return False
    return True


def _inhibition_edges() -> list[tuple[int, str, str]]:
    """(rule index, source alert id, target alert id) for every pair of alert rules where the
    source can mute the target: both match the rule and can agree on its `equal` labels (two
    per-exchange alerts on the same exchange, or two alerts without the label)."""
    edges = []
    for index, inhibit in enumerate(AM["inhibit_rules"]):
        for (_, src), (_, dst) in itertools.product(ALERT_RULES, repeat=2):
            src_labels, dst_labels = _alert_labels(src), _alert_labels(dst)
            if not (
                _matches(inhibit.get("source_matchers", []), src_labels)
                and _matches(inhibit.get("target_matchers", []), dst_labels)
            ):
                continue
            if all(
                src_labels.get(k, "") == dst_labels.get(k, "") for k in inhibit.get("equal", [])
            ):
                edges.append((index, _alert_id(src), _alert_id(dst)))
    return edges


INHIBITION_EDGES = _inhibition_edges()


def test_inhibit_rules_use_only_known_alerts() -> None:
    """Every alertname an inhibit rule names exists, so a renamed alert cannot silently
    escape inhibition."""
    for inhibit in AM["inhibit_rules"]:
        for matcher in inhibit.get("source_matchers", []) + inhibit.get("target_matchers", []):
            m = _MATCHER.match(matcher)
            assert m, matcher
            if m["name"] == "alertname":
                names = m["value"].split("|") if m["op"] == "=~" else [m["value"]]
                assert set(names) <= set(ALERT_NAMES), f"unknown alert in {matcher!r}"


def test_no_alerts_inhibit_each_other() -> None:
    """Alertmanager mutes every alert that a firing source matches, even if the source is
    muted itself: alerts that inhibit each other (directly or through a chain) would all be
    muted. The inhibition graph over all alert rules must have no cycle and no self-loop."""
    graph: dict[str, set[str]] = {}
    for _, src, dst in INHIBITION_EDGES:
        assert src != dst, f"{src} can inhibit other instances of itself"
        graph.setdefault(src, set()).add(dst)

    def cycle_from(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                return [*path[path.index(nxt) :], nxt]
            if found := cycle_from(nxt, [*path, nxt]):
                return found
        return None

    for start in sorted(graph):
        cycle = cycle_from(start, [start])
        assert cycle is None, f"inhibition cycle: {' -> '.join(cycle)}"


def test_inhibition_hierarchy() -> None:
    """The documented intent of the inhibit rules (deploy/alertmanager.yml)."""
    edges = {(src.split("[")[0], dst.split("[")[0]) for _, src, dst in INHIBITION_EDGES}
    symptoms = {
        "ExchangeEndpointDown",
        "ExchangeApiErrorRateHigh",
        "ExchangeApiAvailabilityBudgetBurn",
        "ExchangeApiLatencyHigh",
        "ExchangeApiLatencyDegraded",
        "ExchangeCircuitOpen",
        "ExchangeMarketDataStale",
    }
    streams = {
        "ExchangeWebSocketDown",
        "ExchangeWebSocketStale",
        "ExchangeWebSocketLagHigh",
        "ExchangeWebSocketSequenceGaps",
        "ExchangeWebSocketChecksumMismatch",
        "ExchangeWebSocketReconnecting",
    }
    stream_outage = {
        "ExchangeWebSocketDown",
        "ExchangeWebSocketStale",
        "ExchangeWebSocketLagHigh",
        "ExchangeWebSocketReconnecting",
    }
    integrity = {"ExchangeWebSocketSequenceGaps", "ExchangeWebSocketChecksumMismatch"}
    per_exchange = set(ALERT_NAMES) - GLOBAL_ALERTS
    expected = (
        {("ExchangeApiDown", s) for s in symptoms | {"ExchangeClockSkewHigh"} | stream_outage}
        | {("ExchangeMaintenance", s) for s in streams}
        | {("ExchangeIpBanned", s) for s in stream_outage - {"ExchangeWebSocketLagHigh"}}
        | {("ExchangeWebSocketDown", s) for s in stream_outage - {"ExchangeWebSocketDown"}}
        | {("ExchangeWebSocketStale", "ExchangeWebSocketReconnecting")}
        | {("ExchangeMaintenance", s) for s in symptoms | {"ExchangeApiDown"}}
        | {("ExchangeRateLimited", s) for s in symptoms | {"ExchangeApiDown"}}
        | {("ExchangeIpBanned", s) for s in symptoms | {"ExchangeApiDown", "ExchangeRateLimited"}}
        | {("ExchangeMonitorNetworkDown", a) for a in per_exchange}
        | {("ExchangeMonitorDnsFailing", a) for a in per_exchange}
        | {("ExchangeMonitorNetworkDown", "ExchangeMonitorDnsFailing")}
    )
    # Several locations (issue 16): the quorum page, maintenance, a ban or a rate limit explain
    # one location failing; that location's failure explains its own open circuit (the
    # `location` in `equal` is checked by the routing cases in a real Alertmanager).
    from_location = "ExchangeApiDownFromLocation"
    expected |= {
        (source, from_location)
        for source in ("ExchangeApiDown", "ExchangeMaintenance", "ExchangeIpBanned")
    } | {("ExchangeRateLimited", from_location), (from_location, "ExchangeCircuitOpen")}
    keys = {
        "ExchangeApiKeyInvalid",
        "ExchangeApiKeyExpiringSoon",
        "ExchangeApiKeyWithdrawEnabled",
        "ExchangeApiKeyNoIpRestriction",
        "ExchangeApiKeyTimestampRejected",
    }
    expected |= {
        ("ExchangeClockSkewHigh", "ExchangeApiKeyTimestampRejected"),
        ("ExchangeApiKeyInvalid", "ExchangeApiKeyExpiringSoon"),
    }
    market = {
        "ExchangePriceDeviation",
        "ExchangePriceSpike",
        "ExchangeVolumeSpike",
        "ExchangeBookCrossed",
    }
    forecast = "ExchangeRateLimitExhaustionPredicted"
    expected |= (
        {("ExchangeMaintenance", s) for s in market | {forecast}}
        | {("ExchangeApiDown", s) for s in market}
        | {("ExchangeRateLimited", forecast), ("ExchangeIpBanned", forecast)}
    )
    missing = expected - edges
    assert not missing, f"inhibitions missing: {sorted(missing)}"
    # Our side (the canary, our resolver) mutes every per-exchange alert.
    ours = {"ExchangeMonitorNetworkDown", "ExchangeMonitorDnsFailing"}
    # Market integrity: only maintenance, an outage, a hit limit or ban (for the forecast), our
    # network and the critical level of the same alert mute a market alert; a market alert
    # mutes nothing else, and the maintenance announcement is muted by our network only.
    market_edges = {e for e in edges if e[1] in MARKET_ALERTS and e[0] not in {*ours, e[1]}}
    assert market_edges == {e for e in expected if e[1] in MARKET_ALERTS and e[0] not in ours}, (
        sorted(market_edges)
    )
    assert not [e for e in edges if e[0] in MARKET_ALERTS and e[1] != e[0]]
    # API keys: only our network, the measured clock skew (for timestamp rejections) and a
    # rejected key (for its expiry warning) mute a key alert; an exchange outage never does,
    # and a key alert mutes no other kind of alert.
    key_edges = {e for e in edges if e[1] in keys and e[0] not in ours}
    assert key_edges == {
        ("ExchangeClockSkewHigh", "ExchangeApiKeyTimestampRejected"),
        ("ExchangeApiKeyInvalid", "ExchangeApiKeyExpiringSoon"),
    }, sorted(key_edges)
    assert not [e for e in edges if e[0] in keys and e[1] not in keys]
    # Data-integrity events stand on their own: only maintenance and our network mute them.
    integrity_sources = {src for src, dst in edges if dst in integrity}
    assert integrity_sources == {"ExchangeMaintenance", *ours}
    # Nothing about a stream mutes a REST alert.
    assert not [e for e in edges if e[0] in streams and e[1] not in streams]
    for name in NEVER_MUTED:
        assert not [e for e in edges if e[1] == name], f"{name} must never be muted"
    assert {e for e in edges if e[1] == "ExchangeMonitorDnsFailing"} == {
        ("ExchangeMonitorNetworkDown", "ExchangeMonitorDnsFailing")
    }
    assert not [e for e in edges if e[0] in {"ExchangeExporterDown", "Watchdog"}]
    # The one-location warning mutes nothing exchange-wide: only its location's circuit.
    assert {e[1] for e in edges if e[0] == from_location} == {"ExchangeCircuitOpen"}


# --- inhibition: a real Alertmanager


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


@contextmanager
def _alertmanager(binary: str, workdir: Path) -> Iterator[str]:
    """A throw-away single-node Alertmanager running deploy/alertmanager.yml; yields its URL."""
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "alertmanager.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={AM_CONFIG}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("Alertmanager did not start:\n" + log_path.read_text())
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def alertmanager_url(alertmanager_bin: str, tmp_path: Path) -> Iterator[str]:
    with _alertmanager(alertmanager_bin, tmp_path) as url:
        yield url


def _inhibited(url: str) -> dict[tuple[tuple[str, str], ...], bool]:
    """Every alert Alertmanager holds: sorted label items -> muted by an inhibit rule."""
    return {
        tuple(sorted(a["labels"].items())): bool(a["status"]["inhibitedBy"])
        for a in _http("GET", f"{url}/api/v2/alerts")
    }


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


@pytest.mark.e2e
@pytest.mark.parametrize("case", ROUTING["inhibitions"], ids=lambda c: c["name"])
def test_alertmanager_inhibitions(alertmanager_url: str, case: dict[str, Any]) -> None:
    _http("POST", f"{alertmanager_url}/api/v2/alerts", [{"labels": case["source"]}])
    _http("POST", f"{alertmanager_url}/api/v2/alerts", [{"labels": case["target"]}])

    # The inhibitor learns about the source asynchronously, within milliseconds: wait up to 3 s
    # for an expected inhibition, and watch for an unexpected one for 0.5 s.
    deadline = time.monotonic() + (3.0 if case["inhibited"] else 0.5)
    while not (inhibited := _inhibited(alertmanager_url)[_key(case["target"])]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert inhibited == case["inhibited"]
    if case["inhibited"]:
        # ... and not the other way round (both would be muted).
        assert not _inhibited(alertmanager_url)[_key(case["source"])]


@pytest.mark.parametrize(
    "rule_index",
    range(len(AM["inhibit_rules"])),
    ids=[str(r["source_matchers"][0]) for r in AM["inhibit_rules"]],
)
@pytest.mark.e2e
def test_every_inhibition_pair_in_a_real_alertmanager(
    alertmanager_bin: str, tmp_path: Path, rule_index: int
) -> None:
    """Every (source, target) pair this inhibit rule allows, both firing in a real
    Alertmanager: the target is muted, the source is not. Each pair gets an exchange of its
    own, so that pairs cannot affect each other (except through a rule without `equal`, which
    is checked alone in its own Alertmanager)."""
    rules = {_alert_id(rule): rule for _, rule in ALERT_RULES}
    pairs = [(src, dst) for i, src, dst in INHIBITION_EDGES if i == rule_index]
    assert pairs, f"inhibit rule {rule_index} matches no pair of alert rules"
    posted = []
    for n, (src, dst) in enumerate(pairs):
        source = _alert_labels(rules[src], exchange=f"pair{n}")
        target = _alert_labels(rules[dst], exchange=f"pair{n}")
        if "exchange" not in AM["inhibit_rules"][rule_index].get("equal", []):
            target["exchange"] = f"other{n}"  # no `equal`: any exchange
        posted.append((src, dst, source, target))
    with _alertmanager(alertmanager_bin, tmp_path) as url:
        alerts = [{"labels": labels} for _, _, s, t in posted for labels in (s, t)]
        _http("POST", f"{url}/api/v2/alerts", alerts)
        deadline = time.monotonic() + 5
        while True:
            state = _inhibited(url)
            wrong = [
                f"{src} -> {dst}: target muted={state.get(_key(t))}, "
                f"source muted={state.get(_key(s))}"
                for src, dst, s, t in posted
                if not (state.get(_key(t)) is True and state.get(_key(s)) is False)
            ]
            if not wrong or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert not wrong, "\n".join(wrong)
