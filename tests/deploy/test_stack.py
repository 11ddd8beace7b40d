"""The native stack runner renders the shipped configs for local processes, changing only
addresses and (when asked) intervals."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.stack import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    SHIPPED_RUNBOOKS,
    free_port,
    localise_runbook_links,
    render_alertmanager_config,
    render_prometheus_config,
)

ADDRESSES = {
    "exporter": "127.0.0.1:1001",
    "receiver": "127.0.0.1:1002",
    "alertmanager": "127.0.0.1:1003",
    "prometheus": "127.0.0.1:1004",
}


def test_prometheus_config_points_at_local_processes() -> None:
    shipped = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    rendered = render_prometheus_config(PROMETHEUS_CONFIG, ADDRESSES)
    targets = {
        job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]]
        for job in rendered["scrape_configs"]
    }
    assert targets["exchange-exporter"] == ["127.0.0.1:1001"]
    am = rendered["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["127.0.0.1:1003"]
    assert all(Path(p).is_absolute() for p in rendered["rule_files"])
    assert rendered["global"] == shipped["global"]  # unchanged without overrides


def test_runbook_links_point_at_this_stacks_receiver(tmp_path: Path) -> None:
    thresholds = yaml.safe_load((PROMETHEUS_CONFIG.parent / "thresholds.yml").read_text())
    assert thresholds["config"]["runbook_url"] == SHIPPED_RUNBOOKS + "{alertname}"
    rendered = render_prometheus_config(PROMETHEUS_CONFIG, ADDRESSES)
    copies = localise_runbook_links(rendered["rule_files"], tmp_path, "http://127.0.0.1:1002")
    alerts = next(Path(c) for c in copies if c.endswith("exchange-alerts.yml"))
    text = alerts.read_text()
    assert SHIPPED_RUNBOOKS not in text
    assert 'runbook_url: "http://127.0.0.1:1002/runbooks/ExchangeApiDown"' in text
    shipped = sorted(p.name for p in (PROMETHEUS_CONFIG.parent / "rules").glob("*.yml"))
    assert sorted(Path(c).name for c in copies) == shipped


def test_prometheus_overrides_keep_timeout_below_interval() -> None:
    rendered = render_prometheus_config(
        PROMETHEUS_CONFIG, ADDRESSES, {"scrape_interval": "1s", "evaluation_interval": "1s"}
    )
    assert rendered["global"]["scrape_interval"] == "1s"
    assert rendered["global"]["scrape_timeout"] == "1s"


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by make test")
def test_rendered_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    rendered = render_prometheus_config(
        PROMETHEUS_CONFIG, ADDRESSES, {"scrape_interval": "1s", "evaluation_interval": "1s"}
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(rendered))
    result = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_alertmanager_config_keeps_routes_and_rewrites_urls(tmp_path: Path) -> None:
    shipped = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    rendered = render_alertmanager_config(
        ALERTMANAGER_CONFIG, "http://127.0.0.1:1002", {"group_wait": "1s", "group_interval": "2s"}
    )
    urls = [w["url"] for r in rendered["receivers"] for w in r.get("webhook_configs", [])]
    assert urls and all(u.startswith("http://127.0.0.1:1002/") for u in urls)
    assert rendered["route"]["group_wait"] == "1s"
    assert rendered["route"]["group_interval"] == "2s"
    assert rendered["route"]["group_by"] == shipped["route"]["group_by"]
    assert rendered["inhibit_rules"] == shipped["inhibit_rules"]
    if shutil.which("amtool"):
        path = tmp_path / "alertmanager.yml"
        path.write_text(yaml.safe_dump(rendered))
        result = subprocess.run(
            ["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_free_port_falls_back_when_preferred_is_busy() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert free_port(taken) != taken


def test_timing_overrides_never_lengthen_a_route() -> None:
    shipped = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    rendered = render_alertmanager_config(
        ALERTMANAGER_CONFIG, "http://127.0.0.1:1002", {"repeat_interval": "1h"}
    )
    watchdog = [
        (s, r)
        for s, r in zip(shipped["route"]["routes"], rendered["route"]["routes"], strict=True)
        if "Watchdog" in str(s.get("matchers"))
    ]
    assert watchdog, "the shipped routing has a Watchdog route"
    shipped_route, rendered_route = watchdog[0]
    assert rendered_route["repeat_interval"] == shipped_route["repeat_interval"]  # 1m stays


def test_prometheus_config_takes_several_addresses_and_other_service_hosts() -> None:
    from deploy.ha_configs import HA_SERVICE_HOSTS, PROMETHEUS_HA_CONFIG

    addresses = {
        "exporter-a": "127.0.0.1:2001",
        "exporter-b": "127.0.0.1:2002",
        "receiver-a": ["127.0.0.1:2003"],
        "alertmanager-a": "127.0.0.1:2005",
        "alertmanager-b": "127.0.0.1:2006",
    }
    rendered = render_prometheus_config(
        PROMETHEUS_HA_CONFIG, addresses, service_hosts=HA_SERVICE_HOSTS
    )
    exporters, receivers = rendered["scrape_configs"]
    assert [s["targets"] for s in exporters["static_configs"]] == [
        ["127.0.0.1:2001"],
        ["127.0.0.1:2002"],
    ]
    assert [s["labels"] for s in exporters["static_configs"]] == [
        {"location": "loc-a"},
        {"location": "loc-b"},
    ]
    # receiver-b is not running: its target is dropped, receiver-a's list is taken as is.
    assert receivers["static_configs"][0]["targets"] == ["127.0.0.1:2003"]
    am = rendered["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["127.0.0.1:2005", "127.0.0.1:2006"]


def test_alertmanager_config_rewrites_further_receiver_origins() -> None:
    from deploy.ha_configs import ALERTMANAGER_HA_CONFIG

    rendered = render_alertmanager_config(
        ALERTMANAGER_HA_CONFIG,
        "http://127.0.0.1:1002",
        origins={"http://receiver-b:8080": "http://127.0.0.1:1003"},
    )
    for receiver in rendered["receivers"]:
        urls = [w["url"] for w in receiver["webhook_configs"]]
        assert [u.split("/")[2] for u in urls] == ["127.0.0.1:1002", "127.0.0.1:1003"], urls
        assert urls[0].split("/", 3)[3] == urls[1].split("/", 3)[3]
