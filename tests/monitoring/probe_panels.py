"""The probe-depth panels (issue 17), for tests/monitoring/test_dashboards.py: where the time of
a probe goes, and the TLS certificate's expiry. The certificate stat reads
exchange_tls_cert_expiry_timestamp_seconds, which exists only for exchanges probed over https
(never the simulator of the demo stack): the live check requires its data only when the
exporter config probes an https base_url."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.rules_contract import THRESHOLDS_FILE
from tests.monitoring.rules_contract import promql_metric_names as metric_names

TLS_EXPIRY_METRIC = "exchange_tls_cert_expiry_timestamp_seconds"


def tls_exchanges(exporter_config: Path) -> set[str]:
    """Exchanges whose `base_url` in an exporter config is https (they present a certificate);
    an unset `${VAR:-default}` counts by its default."""
    config = yaml.safe_load(exporter_config.read_text(encoding="utf-8")) or {}
    return {
        str(exchange.get("name"))
        for exchange in config.get("exchanges") or []
        if isinstance(exchange, dict)
        and re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(exchange.get("base_url", ""))).startswith(
            "https://"
        )
    }


def tls_query_required(expr: str, tls: set[str]) -> bool:
    """Whether a panel query must return data when ``tls`` exchanges are probed over https."""
    return TLS_EXPIRY_METRIC not in metric_names(expr) or bool(tls)


def check_probe_depth_panels(dashboard: dict[str, Any]) -> None:
    """Issue 17: where the time of a probe goes (every phase, stacked, in seconds) and the TLS
    certificate's expiry in days, coloured at the alert's threshold."""
    from exporter.egress import PHASES

    panels = {p["title"]: p for p in _panels(dashboard["panels"])}
    phases = panels["Where the time goes"]
    assert phases["type"] == "timeseries"
    [target] = phases["targets"]
    assert "exchange_api_request_phase_seconds" in metric_names(target["expr"])
    assert "by (phase)" in target["expr"] and target["legendFormat"] == "{{phase}}"
    defaults = phases["fieldConfig"]["defaults"]
    assert defaults["unit"] == "s"
    assert defaults["custom"]["stacking"]["mode"] == "normal"
    for phase in PHASES:
        assert phase in phases["description"], f"Where the time goes: {phase} not described"

    cert = panels["TLS certificate expires in"]
    assert cert["type"] == "stat"
    [target] = cert["targets"]
    assert TLS_EXPIRY_METRIC in metric_names(target["expr"])
    assert "/ 86400" in target["expr"], "shown in days"
    defaults = cert["fieldConfig"]["defaults"]
    assert "days" in defaults["unit"]
    steps = defaults["thresholds"]["steps"]
    shipped = yaml.safe_load(THRESHOLDS_FILE.read_text(encoding="utf-8"))
    threshold = shipped["defaults"]["tls_cert_expiry_days"]
    assert [(s["color"], s["value"]) for s in steps] == [
        ("red", None),
        ("orange", 0),
        ("green", threshold),
    ], "orange below tls_cert_expiry_days (thresholds.yml), red once expired"
    assert "tls_cert_expiry_days" in cert["description"]


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, those of collapsed rows included."""
    found = []
    for panel in panels:
        found += [panel, *_panels(panel.get("panels", []))]
    return found
