"""``make ha``: the high-availability topology as local processes on loopback.

What runs (component names, in start order; stop order is the reverse):

- ``simulator``: the five fake exchanges;
- ``exporter-a``, ``exporter-b``: two exporters as two probe locations running
  ``deploy/exporter.demo.yml`` with ``EXPORTER_LOCATION`` set (its ``location:`` reads it; a
  config without that gets a copy with ``location:`` added), the names being the ``location``
  target labels of ``prometheus/prometheus.ha.yml`` (``loc-a``, ``loc-b``);
- ``postgres``: PostgreSQL (:class:`deploy.postgres.PostgresServer`), one database
  ``exchange_watch`` for both receivers (not a :class:`Component`: see :attr:`HAStack.postgres`);
- ``victoria-metrics``: single-node VictoriaMetrics (``/usr/bin/victoria-metrics``, Debian's
  ``victoria-metrics``) receiving both replicas' remote write, dropping their ``replica`` label
  (``deploy/victoria-metrics/relabel.yml``) and deduplicating (``-dedup.minScrapeInterval`` =
  the scrape interval); it serves the Prometheus query API (``/api/v1/query``);
- ``receiver-a``, ``receiver-b``: two receivers on the one database (``RECEIVER_DATABASE_URL``,
  ``RECEIVER_INSTANCE`` = the component name), ``PROMETHEUS_URL`` = VictoriaMetrics, one
  shared ``NOTIFY_FILE`` (JSONL);
- ``alertmanager-a``, ``alertmanager-b``: one gossip cluster on loopback, config
  ``deploy/alertmanager.ha.yml`` (every webhook to both receivers);
- ``prometheus-a``, ``prometheus-b``: two replicas of ``prometheus/prometheus.ha.yml``
  (``replica`` A and B, alerting to both Alertmanagers, remote write to VictoriaMetrics).

Python API (tests, benchmarks)::

    with HAStack(HAOptions(run_dir=tmp)) as ha:      # start() on enter, stop() on exit
        ha.urls["receiver-a"]                       # base URLs by component name
        ha.database_url                             # the receivers' database URL (a secret)
        ha.kill("receiver-a")                       # SIGKILL one component (postgres too)
        ha.start("receiver-a")                      # start it again, wait until ready
        ha.stop("alertmanager-b")                   # SIGTERM one component
        ha.running()                                # component -> alive

``HAStack.start()`` raises :class:`deploy.stack.StackError` when a binary is missing (Debian
packages prometheus, prometheus-alertmanager, victoria-metrics, postgresql; ``make ha``
installs them) or a component does not become ready; whatever was started is then stopped.
The run directory is wiped at start and holds the rendered configs, every component's data and
its log (``logs/<component>.log``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.ha_configs import (
    ALERTMANAGER_HA_CONFIG,
    HA_SERVICE_HOSTS,
    PROMETHEUS_HA_CONFIG,
    RECEIVER_ORIGINS,
    VM_RELABEL_CONFIG,
)
from deploy.postgres import PostgresServer
from deploy.stack import (
    DEMO_EXPORTER_CONFIG,
    DEMO_KEYS_DIR,
    Component,
    StackError,
    find_binary,
    free_port,
    localise_runbook_links,
    render_alertmanager_config,
    render_prometheus_config,
    spawn,
    terminate,
    wait_for_http,
)

HA_COMPONENTS = (
    "simulator",
    "exporter-a",
    "exporter-b",
    "postgres",
    "victoria-metrics",
    "receiver-a",
    "receiver-b",
    "alertmanager-a",
    "alertmanager-b",
    "prometheus-a",
    "prometheus-b",
)
"""Start order (stop order is the reverse)."""

HA_DEFAULT_PORTS: dict[str, int] = {
    "simulator": 28000,
    "exporter-a": 29101,
    "exporter-b": 29102,
    "postgres": 25432,
    "victoria-metrics": 28428,
    "receiver-a": 28080,
    "receiver-b": 28081,
    "alertmanager-a": 29093,
    "alertmanager-b": 29095,
    "alertmanager-a-cluster": 29094,
    "alertmanager-b-cluster": 29096,
    "prometheus-a": 29090,
    "prometheus-b": 29091,
}
"""Preferred loopback ports, apart from ``make demo``'s (deploy/stack.py) and the system-wide
defaults; a busy port is replaced by a free one."""

REPLICAS = {"prometheus-a": "A", "prometheus-b": "B"}
"""Prometheus component → its ``replica`` external label (``PROMETHEUS_REPLICA``)."""

DATABASE = "exchange_watch"
"""The receivers' database on the PostgreSQL server."""

VICTORIA_METRICS_BINARIES = ("victoria-metrics", "victoria-metrics-prod")


@dataclass
class HAOptions:
    """What to run and how.

    Attributes:
        run_dir: where rendered configs, data and logs go (wiped at start).
        exporter_config: the exporter YAML both locations run (a copy with ``location:`` each).
        prometheus_global: overrides for Prometheus' ``global`` block (e.g. 1 s intervals in
            tests); None keeps ``prometheus.ha.yml``'s.
        alertmanager_timing: group_wait/group_interval/repeat_interval overrides (only ever
            shortening, see :func:`deploy.stack.render_alertmanager_config`).
        prometheus_args: extra flags for both Prometheus replicas, e.g.
            ``--rules.alert.resend-delay=5s``: an alert that fires before Prometheus has
            discovered its Alertmanagers (its first evaluations) is dropped and re-sent only
            after this delay (default 1m).
        alertmanager_args: extra flags for both Alertmanagers, e.g.
            ``--cluster.settle-timeout=5s`` (Alertmanager sends nothing until its cluster
            settles or this passes; default 1m) or ``--cluster.peer-timeout=5s`` (how long the
            second peer waits for the first one's notification; default 15s).
        receiver_env: extra environment for both receivers.
        retention_period: VictoriaMetrics ``-retentionPeriod`` (``30d``, ``1y``...).
        vm_latency_offset: VictoriaMetrics ``-search.latencyOffset`` (how old a sample must be
            to be queried; its default 30s when None).
        use_postgres: False runs each receiver on its own SQLite file instead (no shared
            state: for trying the rest without PostgreSQL).
        ports: preferred ports by component (see :data:`HA_DEFAULT_PORTS`).
        ready_timeout: seconds to wait for each component to answer its readiness URL.
    """

    run_dir: Path
    exporter_config: Path = DEMO_EXPORTER_CONFIG
    prometheus_global: Mapping[str, str] | None = None
    alertmanager_timing: Mapping[str, str] | None = None
    prometheus_args: Sequence[str] = ()
    alertmanager_args: Sequence[str] = ()
    receiver_env: Mapping[str, str] = field(default_factory=dict)
    retention_period: str = "30d"
    vm_latency_offset: str | None = None
    use_postgres: bool = True
    ports: Mapping[str, int] = field(default_factory=lambda: dict(HA_DEFAULT_PORTS))
    ready_timeout: float = 60.0


class HAStack:
    """Starts, watches and stops the HA topology. Use as a context manager.

    Attributes (after :meth:`start`):
        urls: component → ``http://127.0.0.1:PORT`` (every component but ``postgres``).
        components: component → its :class:`deploy.stack.Component` (process, argv, log).
        postgres: the :class:`deploy.postgres.PostgresServer` (None with ``use_postgres``
            False).
        locations: exporter component → its location (``{"exporter-a": "loc-a", ...}``).
        notify_file: the JSONL notification file both receivers append to.
        scrape_interval: the Prometheus replicas' scrape interval (also VictoriaMetrics'
            deduplication interval).
    """

    def __init__(self, options: HAOptions) -> None:
        self.options = options
        self.run_dir = options.run_dir.resolve()
        self.urls: dict[str, str] = {}
        self.components: dict[str, Component] = {}
        self.postgres: PostgresServer | None = None
        self.locations: dict[str, str] = {}
        self.notify_file = self.run_dir / "notifications.jsonl"
        self.scrape_interval = ""
        self._database_url = ""

    def __enter__(self) -> HAStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def database_url(self) -> str:
        """The receivers' PostgreSQL URL (with its password: never print or log it); empty
        without PostgreSQL."""
        return self._database_url

    # --- whole topology ---------------------------------------------------------------------

    def start(self, name: str | None = None) -> None:
        """Start the whole topology (``name`` None) or one stopped component again.

        Raises:
            StackError: a binary is missing, a process exits early, or readiness times out
                (the message includes the tail of that component's log). When starting the
                whole topology, whatever was started is stopped before raising.
            KeyError: ``name`` is no component.
        """
        if name is not None:
            self._restart(name)
            return
        binaries = {
            "prometheus": find_binary("prometheus"),
            "alertmanager": find_binary("prometheus-alertmanager", "alertmanager"),
            "victoria-metrics": _victoria_metrics_binary(),
        }
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        (self.run_dir / "logs").mkdir(parents=True)
        ports = {
            key: free_port(self.options.ports.get(key, 0))
            for key in (*HA_COMPONENTS, "alertmanager-a-cluster", "alertmanager-b-cluster")
        }
        self.urls = {n: f"http://127.0.0.1:{ports[n]}" for n in HA_COMPONENTS if n != "postgres"}
        try:
            specs = self._render(binaries, ports)
            for component in HA_COMPONENTS:
                if component == "postgres":
                    self._start_postgres(ports["postgres"])
                    continue
                argv, ready_path, extra_env = specs[component]
                self.components[component] = Component(
                    name=component,
                    argv=argv,
                    ready_url=self.urls[component] + ready_path,
                    env={**os.environ, "PYTHONUNBUFFERED": "1", **extra_env},
                    log_path=self.run_dir / "logs" / f"{component}.log",
                )
                self._launch(component)
        except BaseException:
            self.stop()
            raise

    def stop(self, name: str | None = None, timeout: float = 10.0) -> None:
        """Stop one component (SIGTERM, SIGKILL after ``timeout``; ``postgres``: a fast
        shutdown) or, with ``name`` None, every component in reverse start order (the
        receivers before PostgreSQL, whose connections they hold)."""
        if name == "postgres":
            if self.postgres is None:
                raise KeyError(name)
            self.postgres.stop()
            return
        if name is not None:
            terminate([self.components[name]], timeout)
            return
        batch: list[Component] = []
        for component in reversed(HA_COMPONENTS):
            if component == "postgres":
                terminate(batch, timeout)
                batch = []
                if self.postgres is not None:
                    self.postgres.__exit__(None, None, None)
            elif component in self.components:
                batch.append(self.components[component])
        terminate(batch, timeout)

    def kill(self, name: str) -> None:
        """SIGKILL one component's process group (``postgres``: the postmaster), without
        waiting for anything; :meth:`start` with its name brings it back."""
        if name == "postgres":
            if self.postgres is None:
                raise KeyError(name)
            self.postgres.kill()
            return
        process = self.components[name].process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def running(self) -> dict[str, bool]:
        """Return component → whether its process is alive (``postgres`` included)."""
        alive = {
            n: c.process is not None and c.process.poll() is None
            for n, c in self.components.items()
        }
        if self.postgres is not None:
            alive["postgres"] = self.postgres.running
        return alive

    def log_tail(self, name: str, lines: int = 20) -> str:
        """Return the last ``lines`` lines of a component's log (for error messages)."""
        path = self.run_dir / "logs" / f"{name}.log"
        if name == "postgres" and self.postgres is not None:
            path = self.postgres.log_path
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def where_to_look(self) -> list[tuple[str, str]]:
        """(what, URL or path) rows for a person: UIs, APIs, the notification log, the logs."""
        u = self.urls
        rows = [
            ("VictoriaMetrics (global view)", f"{u['victoria-metrics']}/vmui"),
            ("Prometheus replica A", f"{u['prometheus-a']}/alerts"),
            ("Prometheus replica B", f"{u['prometheus-b']}/alerts"),
            ("Alertmanager A (cluster)", f"{u['alertmanager-a']}/#/status"),
            ("Alertmanager B (cluster)", f"{u['alertmanager-b']}/#/status"),
            ("receiver A", f"{u['receiver-a']}/readyz"),
            ("receiver B", f"{u['receiver-b']}/readyz"),
        ]
        for name, location in self.locations.items():
            rows.append((f"exporter {name[-1].upper()} (location {location})", f"{u[name]}/status"))
        rows.append(("simulator faults", f"{u['simulator']}/_control/faults"))
        if self.postgres is not None:
            rows.append(("PostgreSQL", f"127.0.0.1:{self.postgres.port} database {DATABASE}"))
        rows += [("notifications (JSONL)", str(self.notify_file)), ("logs", str(self.run_dir))]
        return rows

    # --- internals ---------------------------------------------------------------------------

    def _render(
        self, binaries: Mapping[str, str], ports: Mapping[str, int]
    ) -> dict[str, tuple[list[str], str, dict[str, str]]]:
        """Write the configs into the run directory; return component → (argv, ready path,
        extra environment)."""
        addresses = {n: url.removeprefix("http://") for n, url in self.urls.items()}
        prometheus = self._render_prometheus(addresses)
        self.scrape_interval = str(prometheus["global"]["scrape_interval"])
        prometheus_yml = self.run_dir / "prometheus.yml"
        prometheus_yml.write_text(yaml.safe_dump(prometheus, sort_keys=False))
        alertmanager_yml = self.run_dir / "alertmanager.yml"
        am_config = render_alertmanager_config(
            ALERTMANAGER_HA_CONFIG,
            self.urls["receiver-a"],
            self.options.alertmanager_timing,
            origins={RECEIVER_ORIGINS[1]: self.urls["receiver-b"]},
        )
        alertmanager_yml.write_text(yaml.safe_dump(am_config, sort_keys=False))
        python = sys.executable
        specs: dict[str, tuple[list[str], str, dict[str, str]]] = {
            "simulator": (
                [python, "-m", "simulator.cli", "--listen", addresses["simulator"],
                 "--keys", str(DEMO_KEYS_DIR / "simulator-keys.json")],
                "/_control/health",
                {},
            ),
        }  # fmt: skip
        for name, location in self.locations.items():
            specs[name] = (
                [python, "-m", "exporter.cli", "--config", str(self._exporter_config(location)),
                 "--listen", addresses[name]],
                "/metrics",
                {"SIMULATOR_URL": self.urls["simulator"], "DEMO_KEYS_DIR": str(DEMO_KEYS_DIR),
                 "EXPORTER_LOCATION": location},
            )  # fmt: skip
        specs["victoria-metrics"] = (
            self._victoria_metrics_argv(binaries, addresses),
            "/health",
            {},
        )
        for name in ("receiver-a", "receiver-b"):
            env = {
                "NOTIFY_FILE": str(self.notify_file),
                "RECEIVER_DB_PATH": str(self.run_dir / f"{name}.db"),
                "RECEIVER_INSTANCE": name,
                "PROMETHEUS_URL": self.urls["victoria-metrics"],
                **self.options.receiver_env,
            }
            specs[name] = (
                [python, "-m", "receiver.cli", "--listen", addresses[name]],
                "/readyz",
                env,
            )
        for name, peer in (
            ("alertmanager-a", "alertmanager-b"),
            ("alertmanager-b", "alertmanager-a"),
        ):
            argv = [
                binaries["alertmanager"],
                f"--config.file={alertmanager_yml}",
                f"--storage.path={self.run_dir / (name + '-data')}",
                f"--web.listen-address={addresses[name]}",
                f"--web.external-url={self.urls[name]}",
                f"--cluster.listen-address=127.0.0.1:{ports[name + '-cluster']}",
                f"--cluster.advertise-address=127.0.0.1:{ports[name + '-cluster']}",
                f"--cluster.peer=127.0.0.1:{ports[peer + '-cluster']}",
                "--log.level=warn",
            ]
            argv += list(self.options.alertmanager_args)
            specs[name] = (argv, "/-/ready", {})
        for name, replica in REPLICAS.items():
            specs[name] = (
                [binaries["prometheus"], f"--config.file={prometheus_yml}",
                 f"--storage.tsdb.path={self.run_dir / (name + '-data')}",
                 f"--web.listen-address={addresses[name]}",
                 f"--web.external-url={self.urls[name]}",
                 "--enable-feature=expand-external-labels",
                 "--web.enable-lifecycle", "--log.level=warn",
                 *self.options.prometheus_args],
                "/-/ready",
                {"PROMETHEUS_REPLICA": replica},
            )  # fmt: skip
        return specs

    def _exporter_config(self, location: str) -> Path:
        """The exporter config to run at ``location``: the configured file itself when its
        ``location:`` comes from ``${EXPORTER_LOCATION...}`` (as ``deploy/exporter.demo.yml``;
        the environment sets it), else a copy in the run directory with ``location:`` set."""
        source = self.options.exporter_config
        text = source.read_text(encoding="utf-8")
        if re.search(r"^location:\s*\$\{EXPORTER_LOCATION", text, re.M):
            return source
        if re.search(r"^location:", text, re.M):
            raise StackError(f"{source}: a fixed top-level location; make ha sets one per exporter")
        copy = self.run_dir / f"exporter-{location}.yml"
        copy.write_text(f"location: {location}\n{text}", encoding="utf-8")
        return copy

    def _render_prometheus(self, addresses: Mapping[str, str]) -> dict[str, Any]:
        """``prometheus.ha.yml`` pointed at the local processes: targets, Alertmanagers,
        remote write, runbook links; records each exporter's location from its target label."""
        config = render_prometheus_config(
            PROMETHEUS_HA_CONFIG,
            addresses,
            self.options.prometheus_global,
            service_hosts=HA_SERVICE_HOSTS,
        )
        shipped = yaml.safe_load(PROMETHEUS_HA_CONFIG.read_text())
        for job in shipped["scrape_configs"]:
            for static in job.get("static_configs", []):
                location = (static.get("labels") or {}).get("location")
                for target in static["targets"]:
                    component = HA_SERVICE_HOSTS.get(target.rsplit(":", 1)[0], "")
                    if location and component.startswith("exporter"):
                        self.locations[component] = str(location)
        if sorted(self.locations) != ["exporter-a", "exporter-b"]:
            raise StackError(f"{PROMETHEUS_HA_CONFIG}: expected two exporter locations")
        vm_origin = "http://victoriametrics:8428"
        for remote in config.get("remote_write", []):
            url = str(remote["url"])
            if url.startswith(vm_origin):
                remote["url"] = self.urls["victoria-metrics"] + url[len(vm_origin) :]
        config["rule_files"] = localise_runbook_links(
            config["rule_files"], self.run_dir / "rules", self.urls["receiver-a"]
        )
        return config

    def _victoria_metrics_argv(
        self, binaries: Mapping[str, str], addresses: Mapping[str, str]
    ) -> list[str]:
        argv = [
            binaries["victoria-metrics"],
            f"-storageDataPath={self.run_dir / 'victoria-metrics-data'}",
            f"-httpListenAddr={addresses['victoria-metrics']}",
            f"-retentionPeriod={self.options.retention_period}",
            f"-dedup.minScrapeInterval={self.scrape_interval}",
            f"-relabelConfig={VM_RELABEL_CONFIG}",
            "-loggerLevel=WARN",
        ]
        if self.options.vm_latency_offset:
            argv.append(f"-search.latencyOffset={self.options.vm_latency_offset}")
        return argv

    def _start_postgres(self, port: int) -> None:
        if not self.options.use_postgres:
            return
        self.postgres = PostgresServer(self.run_dir / "postgres", port)
        self.postgres.start(timeout=self.options.ready_timeout)
        self._database_url = self.postgres.create_database(DATABASE)

    def _launch(self, name: str) -> None:
        component = self.components[name]
        if name.startswith("receiver") and self._database_url:
            component.env["RECEIVER_DATABASE_URL"] = self._database_url
        spawn(component)
        try:
            wait_for_http(component.ready_url, self.options.ready_timeout, component.process)
        except StackError as exc:
            raise StackError(f"{name}: {exc}:\n{self.log_tail(name)}") from None

    def _restart(self, name: str) -> None:
        if name == "postgres":
            if self.postgres is None:
                raise KeyError(name)
            self.postgres.start(timeout=self.options.ready_timeout)
            return
        component = self.components[name]
        if component.process is not None and component.process.poll() is None:
            return
        self._launch(name)


def _victoria_metrics_binary() -> str:
    for name in VICTORIA_METRICS_BINARIES:
        path = shutil.which(name)
        if path:
            return path
    raise StackError(
        "victoria-metrics is not on PATH; install Debian's package with "
        "`apt-get install victoria-metrics` (make ha and make test do this)"
    )
