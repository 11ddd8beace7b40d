"""The alerts exchange-watch ships, read from their sources (never copied by hand)."""

from __future__ import annotations

from pathlib import Path

import yaml

from receiver.deadman import ALERTNAME as DEADMAN_ALERTNAME

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "prometheus" / "rules"
ALERTS_DOC = REPO / "docs" / "alerts.md"

#: Alerts the receiver raises itself (not defined by a Prometheus rule).
RECEIVER_ALERTS = frozenset({DEADMAN_ALERTNAME})


def rule_alerts() -> dict[str, set[str]]:
    """Every ``alert:`` in ``prometheus/rules/*.yml`` → the ``severity`` labels it carries."""
    alerts: dict[str, set[str]] = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    severity = rule.get("labels", {}).get("severity", "")
                    alerts.setdefault(rule["alert"], set()).add(severity)
    return alerts


def shipped_alertnames() -> list[str]:
    """The alerts of the rules plus the receiver's own, sorted."""
    return sorted(set(rule_alerts()) | RECEIVER_ALERTS)
