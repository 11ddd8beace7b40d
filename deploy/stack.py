"""Native stack runner: the whole exchange-watch stack as local processes on loopback.

Used by ``make demo`` (simulator + scripted incident), ``make up`` (the real exchanges) and the
end-to-end tests. It runs the same config files that docker compose mounts: it loads
``prometheus/prometheus.yml`` and ``deploy/alertmanager.yml``, points their service addresses
(``exporter:9101``, ``receiver:8080``, ...) at the local processes, optionally shortens
intervals, and writes the result into a run directory next to every component's data and logs.

Binaries: ``prometheus`` and ``prometheus-alertmanager`` (Debian's name; ``alertmanager`` is
accepted too) from PATH; the Python components run with this interpreter (``python -m ...``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter.durations import parse_duration

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager.yml"
DEMO_EXPORTER_CONFIG = ROOT / "deploy" / "exporter.demo.yml"
DEMO_KEYS_DIR = ROOT / "deploy" / "demo-keys"
"""The demo's API keys: files the demo exporter reads (``DEMO_KEYS_DIR``) and the simulator's
list of them (``simulator-keys.json``, registered with ``--keys``)."""

COMPONENTS = ("simulator", "exporter", "receiver", "alertmanager", "prometheus")
"""Start order (stop order is the reverse)."""

DEFAULT_PORTS: dict[str, int] = {
    "simulator": 18000,
    "exporter": 19101,
    "receiver": 18080,
    "alertmanager": 19093,
    "prometheus": 19090,
}
"""Preferred loopback ports, away from the defaults of a system-wide Prometheus (9090) and
Alertmanager (9093) that Debian's packages start; a busy port is replaced by a free one."""

SERVICE_HOSTS = {
    "exporter": "exporter",
    "exporter-demo": "exporter",
    "receiver": "receiver",
    "alertmanager": "alertmanager",
    "prometheus": "prometheus",
    "simulator": "simulator",
}
"""docker compose service names as written in the shipped configs → the component serving them."""


class StackError(RuntimeError):
    """A component is missing, failed to start, or did not become ready in time."""


@dataclass
class StackOptions:
    """What to run and how.

    Attributes:
        run_dir: where rendered configs, data and logs go (wiped at start).
        exporter_config: the exporter YAML to run.
        with_simulator: run the simulator and point ``SIMULATOR_URL`` at it.
        prometheus_global: overrides for Prometheus' ``global`` block (e.g.
            ``{"scrape_interval": "1s", "evaluation_interval": "1s"}``); None keeps the shipped.
        alertmanager_timing: overrides for ``group_wait``/``group_interval``/``repeat_interval``
            applied to the root route and to every child route that sets them.
        receiver_env: extra environment for the receiver (``SLACK_WEBHOOK_URL``, ...).
        ports: preferred ports by component (see :data:`DEFAULT_PORTS`).
        ready_timeout: seconds to wait for each component to answer its readiness URL.
    """

    run_dir: Path
    exporter_config: Path = DEMO_EXPORTER_CONFIG
    with_simulator: bool = True
    prometheus_global: Mapping[str, str] | None = None
    alertmanager_timing: Mapping[str, str] | None = None
    receiver_env: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    ready_timeout: float = 30.0


def find_binary(*names: str) -> str:
    """Return the path of the first of ``names`` on PATH.

    Raises:
        StackError: none is installed (the message says how to install them).
    """
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise StackError(
        f"none of {', '.join(names)} is on PATH; install Debian's packages with "
        "`apt-get install prometheus prometheus-alertmanager` (make test/demo do this)"
    )


def free_port(preferred: int = 0, host: str = "127.0.0.1") -> int:
    """Return ``preferred`` if it can be bound on ``host``, else a free ephemeral port."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise StackError(f"no free port on {host}")


def wait_for_http(
    url: str, timeout: float = 15.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``url`` answers HTTP 200.

    Raises:
        StackError: ``process`` exited first, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise StackError(f"process exited with code {process.returncode} before {url}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.1)
    raise StackError(f"{url} did not answer 200 within {timeout:g}s")


SHIPPED_RUNBOOKS = "http://localhost:8080/runbooks/"
"""Where the shipped rules' ``runbook_url`` links point (the receiver's default address, see
``config.runbook_url`` in ``prometheus/thresholds.yml``)."""


def localise_runbook_links(rule_files: list[str], into: Path, receiver_url: str) -> list[str]:
    """Copy the rule files (absolute paths or glob patterns) into ``into`` with the shipped
    runbook links pointed at this stack's receiver, so a notification's link opens here.

    Returns:
        The copies' paths, for ``rule_files``; links pointing elsewhere (a user's wiki) are kept.
    """
    into.mkdir(parents=True, exist_ok=True)
    copies = []
    for pattern in rule_files:
        base = Path(pattern)
        for source in sorted(base.parent.glob(base.name)):
            text = source.read_text(encoding="utf-8")
            target = into / source.name
            target.write_text(text.replace(SHIPPED_RUNBOOKS, f"{receiver_url}/runbooks/"))
            copies.append(str(target))
    return copies


def render_prometheus_config(
    shipped: Path,
    addresses: Mapping[str, str | Sequence[str]],
    overrides: Mapping[str, str] | None = None,
    *,
    service_hosts: Mapping[str, str] = SERVICE_HOSTS,
) -> dict[str, Any]:
    """Load the shipped Prometheus config and point it at local processes.

    Args:
        shipped: ``prometheus/prometheus.yml`` (or ``prometheus/prometheus.ha.yml``).
        addresses: component name → ``host:port`` of the local process (or several, which
            replace the one target in order).
        overrides: keys to set in the ``global`` block.
        service_hosts: compose service name (host in the config) → component name; default
            :data:`SERVICE_HOSTS`.

    Returns:
        The config as a dict: rule files made absolute, every static target and Alertmanager
        target whose host is a known service rewritten, targets of services not running dropped
        (with their job when it is left empty).
    """
    config: dict[str, Any] = yaml.safe_load(shipped.read_text())
    if overrides:
        global_block = config.setdefault("global", {})
        global_block.update(overrides)
        interval = global_block.get("scrape_interval")
        timeout = global_block.get("scrape_timeout")
        if interval and timeout and "scrape_timeout" not in overrides:
            # Prometheus refuses scrape_timeout > scrape_interval: shorten both together.
            global_block["scrape_timeout"] = _shorter(timeout, interval)
    config["rule_files"] = [
        str((shipped.parent / pattern).resolve()) for pattern in config.get("rule_files", [])
    ]
    jobs = []
    for job in config.get("scrape_configs", []):
        kept_static = []
        for static in job.get("static_configs", []):
            targets = _rewrite_targets(static.get("targets", []), addresses, service_hosts)
            if targets:
                kept_static.append({**static, "targets": targets})
        if kept_static or "static_configs" not in job:
            jobs.append({**job, "static_configs": kept_static} if kept_static else job)
    config["scrape_configs"] = jobs
    for am in config.get("alerting", {}).get("alertmanagers", []):
        for static in am.get("static_configs", []):
            static["targets"] = _rewrite_targets(
                static.get("targets", []), addresses, service_hosts
            )
    return config


def _shorter(a: str, b: str) -> str:
    """Return whichever of two Prometheus durations is shorter."""
    return a if parse_duration(a) <= parse_duration(b) else b


def render_alertmanager_config(
    shipped: Path,
    receiver_url: str,
    timing: Mapping[str, str] | None = None,
    *,
    origins: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Load the shipped Alertmanager config and point its webhooks at the local receiver.

    Every ``webhook_configs[].url`` whose origin is ``http://receiver:8080`` gets
    ``receiver_url`` as origin, keeping its path (``/alerts/critical`` stays); ``origins`` maps
    further shipped origins (``http://receiver-b:8080``) to local ones the same way. ``timing``
    keys (group_wait, group_interval, repeat_interval) are set on the root route and on every
    child route that sets them, but never lengthen a shipped value.
    """
    config: dict[str, Any] = yaml.safe_load(shipped.read_text())
    rewrites = {"http://receiver:8080": receiver_url, **(origins or {})}
    for receiver in config.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            url = str(webhook.get("url", ""))
            for shipped_origin, local in rewrites.items():
                if url == shipped_origin or url.startswith(shipped_origin + "/"):
                    webhook["url"] = local.rstrip("/") + url[len(shipped_origin) :]
                    break
    if timing:
        root = config.setdefault("route", {})
        for route in (root, *_child_routes(root)):
            for key, value in timing.items():
                if route is root or key in route:
                    # Only ever shorten: a route that is already faster (the Watchdog's repeat
                    # interval feeding the dead man's switch) keeps its own value.
                    route[key] = _shorter(route[key], value) if key in route else value
    return config


def _child_routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for child in route.get("routes", []) or []:
        yield child
        yield from _child_routes(child)


def _rewrite_targets(
    targets: list[str],
    addresses: Mapping[str, str | Sequence[str]],
    service_hosts: Mapping[str, str] = SERVICE_HOSTS,
) -> list[str]:
    rewritten: list[str] = []
    for target in targets:
        host = target.rsplit(":", 1)[0]
        component = service_hosts.get(host)
        if component is None:
            rewritten.append(target)
        elif component in addresses:
            local = addresses[component]
            rewritten.extend([local] if isinstance(local, str) else local)
    return rewritten


@dataclass
class Component:
    """One running process of the stack."""

    name: str
    argv: list[str]
    ready_url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None


def spawn(component: Component) -> None:
    """Start ``component``'s process in its own process group (so Ctrl-C reaches the runner,
    which stops it), output appended to ``component.log_path``, from the repository root."""
    with component.log_path.open("ab") as log:
        component.process = subprocess.Popen(
            component.argv,
            cwd=ROOT,
            env=component.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C reaches us, we stop them
        )


def terminate(components: Sequence[Component], timeout: float = 10.0) -> None:
    """Stop the components' processes, in the given order: SIGTERM to every process group,
    then SIGKILL to any still running after ``timeout`` seconds (and to anything a component
    left in its group)."""
    for component in components:
        process = component.process
        if process is None or process.poll() is not None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for component in components:
        process = component.process
        if process is None:
            continue
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # Anything the component left in its group (it should be none) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


class Stack:
    """Starts, watches and stops the local stack. Use as a context manager.

    After :meth:`start`, :attr:`urls` maps component → base URL (``http://127.0.0.1:PORT``) and
    :attr:`notify_file` is the receiver's JSONL notification file.
    """

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.run_dir = options.run_dir.resolve()
        self.components: list[Component] = []
        self.urls: dict[str, str] = {}
        self.notify_file = self.run_dir / "notifications.jsonl"

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Render configs, start every component in order and wait until each is ready.

        Raises:
            StackError: a binary is missing, a process exits early, or readiness times out
                (the message includes the tail of that component's log). Whatever was started
                is stopped before raising.
        """
        prometheus_bin = find_binary("prometheus")
        alertmanager_bin = find_binary("prometheus-alertmanager", "alertmanager")
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        (self.run_dir / "logs").mkdir(parents=True)
        names = [c for c in COMPONENTS if c != "simulator" or self.options.with_simulator]
        ports = {name: free_port(self.options.ports.get(name, 0)) for name in names}
        addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        self.urls = {name: f"http://{address}" for name, address in addresses.items()}

        prometheus_yml = self.run_dir / "prometheus.yml"
        prometheus_config = render_prometheus_config(
            PROMETHEUS_CONFIG, addresses, self.options.prometheus_global
        )
        prometheus_config["rule_files"] = localise_runbook_links(
            prometheus_config["rule_files"], self.run_dir / "rules", self.urls["receiver"]
        )
        prometheus_yml.write_text(yaml.safe_dump(prometheus_config, sort_keys=False))
        alertmanager_yml = self.run_dir / "alertmanager.yml"
        alertmanager_yml.write_text(
            yaml.safe_dump(
                render_alertmanager_config(
                    ALERTMANAGER_CONFIG, self.urls["receiver"], self.options.alertmanager_timing
                ),
                sort_keys=False,
            )
        )
        python = sys.executable
        base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        specs: dict[str, tuple[list[str], str, dict[str, str]]] = {
            "simulator": (
                [
                    python, "-m", "simulator.cli", "--listen", addresses.get("simulator", ""),
                    "--keys", str(DEMO_KEYS_DIR / "simulator-keys.json"),
                ],
                "/_control/health",
                {},
            ),
            "exporter": (
                [
                    python, "-m", "exporter.cli",
                    "--config", str(self.options.exporter_config),
                    "--listen", addresses["exporter"],
                ],
                "/metrics",
                {
                    "SIMULATOR_URL": self.urls.get("simulator", ""),
                    "DEMO_KEYS_DIR": str(DEMO_KEYS_DIR),
                },
            ),
            "receiver": (
                [python, "-m", "receiver.cli", "--listen", addresses["receiver"]],
                "/healthz",
                {
                    "NOTIFY_FILE": str(self.notify_file),
                    "RECEIVER_DB_PATH": str(self.run_dir / "receiver.db"),
                    "PROMETHEUS_URL": self.urls["prometheus"],
                    **self.options.receiver_env,
                },
            ),
            "alertmanager": (
                [
                    alertmanager_bin,
                    f"--config.file={alertmanager_yml}",
                    f"--storage.path={self.run_dir / 'alertmanager-data'}",
                    f"--web.listen-address={addresses['alertmanager']}",
                    f"--web.external-url={self.urls['alertmanager']}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                "/-/ready",
                {},
            ),
            "prometheus": (
                [
                    prometheus_bin,
                    f"--config.file={prometheus_yml}",
                    f"--storage.tsdb.path={self.run_dir / 'prometheus-data'}",
                    f"--web.listen-address={addresses['prometheus']}",
                    f"--web.external-url={self.urls['prometheus']}",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                ],
                "/-/ready",
                {},
            ),
        }  # fmt: skip
        try:
            for name in names:
                argv, ready_path, extra_env = specs[name]
                component = Component(
                    name=name,
                    argv=argv,
                    ready_url=self.urls[name] + ready_path,
                    env={**base_env, **extra_env},
                    log_path=self.run_dir / "logs" / f"{name}.log",
                )
                self._spawn(component)
                self.components.append(component)
                self._wait_ready(component)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, component: Component) -> None:
        spawn(component)

    def _wait_ready(self, component: Component) -> None:
        try:
            wait_for_http(component.ready_url, self.options.ready_timeout, component.process)
        except StackError as exc:
            raise StackError(f"{component.name}: {exc}:\n{self.log_tail(component.name)}") from None

    def log_tail(self, name: str, lines: int = 20) -> str:
        """Return the last ``lines`` lines of a component's log (for error messages)."""
        path = self.run_dir / "logs" / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every component (SIGTERM to its process group, SIGKILL after ``timeout``)."""
        terminate(list(reversed(self.components)), timeout)
        self.components.clear()

    def running(self) -> dict[str, bool]:
        """Return component → whether its process is still alive."""
        return {c.name: c.process is not None and c.process.poll() is None for c in self.components}
