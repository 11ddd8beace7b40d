"""The high-availability topology's config files, shared by ``make ha`` (deploy/ha_stack.py)
and ``docker-compose.ha.yml``.

- ``prometheus/prometheus.ha.yml`` (hand-written): the two Prometheus replicas' config, the
  shipped ``prometheus/prometheus.yml`` plus ``external_labels`` (``cluster``, and ``replica``
  from ``${PROMETHEUS_REPLICA}``, expanded by ``--enable-feature=expand-external-labels``),
  ``alert_relabel_configs`` dropping ``replica`` (both replicas' alerts are one alert to
  Alertmanager), both Alertmanagers, ``remote_write`` to VictoriaMetrics, both exporters (one
  per location, ``location`` target label, ``honor_labels``) and both receivers.
- ``deploy/alertmanager.ha.yml`` (generated here from ``deploy/alertmanager.yml``): every
  webhook to ``http://receiver:8080`` is followed by the same webhook to
  ``http://receiver-b:8080``, so each Alertmanager notifies both receivers (they share one
  PostgreSQL database and store Alertmanager's idempotency key once; either may be down).
- ``deploy/victoria-metrics/relabel.yml``: VictoriaMetrics' ``-relabelConfig``, dropping
  ``replica`` so the two replicas' samples land in one series, which
  ``-dedup.minScrapeInterval`` deduplicates
  (https://docs.victoriametrics.com/#deduplication, #relabeling).

Regenerate the Alertmanager file after editing ``deploy/alertmanager.yml``::

    python deploy/ha_configs.py          # or: make rules
    python deploy/ha_configs.py --check  # exit 1 when the file is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_HA_CONFIG = ROOT / "prometheus" / "prometheus.ha.yml"
ALERTMANAGER_SHIPPED = ROOT / "deploy" / "alertmanager.yml"
ALERTMANAGER_HA_CONFIG = ROOT / "deploy" / "alertmanager.ha.yml"
VM_RELABEL_CONFIG = ROOT / "deploy" / "victoria-metrics" / "relabel.yml"

RECEIVER_ORIGINS = ("http://receiver:8080", "http://receiver-b:8080")
"""The receivers every Alertmanager webhook goes to, as written in ``alertmanager.ha.yml``."""

HA_SERVICE_HOSTS = {
    "simulator": "simulator",
    "exporter": "exporter-a",
    "exporter-b": "exporter-b",
    "receiver": "receiver-a",
    "receiver-b": "receiver-b",
    "alertmanager": "alertmanager-a",
    "alertmanager-b": "alertmanager-b",
    "prometheus": "prometheus-a",
    "prometheus-b": "prometheus-b",
    "victoriametrics": "victoria-metrics",
}
"""Hosts written in the HA configs (``docker-compose.ha.yml`` service names) → the component
of ``make ha`` (:class:`deploy.ha_stack.HAStack`) serving them."""

HEADER = """\
# GENERATED from deploy/alertmanager.yml by `python deploy/ha_configs.py` (also run by
# `make rules`): do not edit; edit deploy/alertmanager.yml and regenerate.
#
# The high-availability topology (`make ha`, docker-compose.ha.yml, docs/production.md): two
# Alertmanagers in one gossip cluster, each sending every webhook to BOTH receivers
# (receiver:8080 and receiver-b:8080). The receivers share one PostgreSQL database and store
# Alertmanager's idempotency key once, so a webhook both receive is notified once, and either
# receiver may be down. Routing, grouping and inhibition are deploy/alertmanager.yml's.
#
"""

_WEBHOOK = re.compile(r"^(?P<indent> *)- url: (?P<url>http://receiver:8080\S*)\s*$")


def render_alertmanager_ha(shipped: str) -> str:
    """Return the HA Alertmanager config for the text of ``deploy/alertmanager.yml``.

    Every ``webhook_configs`` entry whose ``url`` starts with ``http://receiver:8080`` (with
    the lines indented under it: ``send_resolved``, ``max_alerts``, ``http_config``) is
    followed by a copy pointing at ``http://receiver-b:8080``; comments and everything else
    are kept. Raises ValueError when the shipped file has no such webhook.
    """
    lines = shipped.splitlines()
    out: list[str] = []
    i = 0
    copied = 0
    while i < len(lines):
        match = _WEBHOOK.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = len(match.group("indent"))
        block = [lines[i]]
        i += 1
        while i < len(lines) and lines[i].strip() and _indent(lines[i]) > indent:
            if lines[i].lstrip().startswith("#"):
                break
            block.append(lines[i])
            i += 1
        out.extend(block)
        first = block[0].replace(RECEIVER_ORIGINS[0], RECEIVER_ORIGINS[1], 1)
        out.extend([first, *block[1:]])
        copied += 1
    if not copied:
        raise ValueError("no webhook to http://receiver:8080 in the shipped Alertmanager config")
    return HEADER + "\n".join(out) + "\n"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) ``deploy/alertmanager.ha.yml``; returns the exit
    code (1: out of date)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args(argv)
    wanted = render_alertmanager_ha(ALERTMANAGER_SHIPPED.read_text(encoding="utf-8"))
    current = (
        ALERTMANAGER_HA_CONFIG.read_text(encoding="utf-8")
        if ALERTMANAGER_HA_CONFIG.exists()
        else ""
    )
    if args.check:
        if current != wanted:
            print(f"{ALERTMANAGER_HA_CONFIG} is out of date: run python deploy/ha_configs.py")
            return 1
        return 0
    if current != wanted:
        ALERTMANAGER_HA_CONFIG.write_text(wanted, encoding="utf-8")
        print(f"wrote {ALERTMANAGER_HA_CONFIG.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
