"""Static checks of docker-compose.ha.yml, the high-availability override of
docker-compose.yml, without a Docker engine (as tests/deploy/test_deploy.py checks the main
file):

- the override validates against the compose-spec schema; merged into docker-compose.yml the
  way Compose merges files, every service is defined, pinned, hardened (ours), health-checked,
  published on BIND_ADDRESS on a port of its own, and depends only on defined services;
- every file it mounts exists (the secrets under ./secrets/ are created by the user, as its
  header says), configs read-only, named volumes declared;
- one set of configs with ``make ha`` (deploy/ha_stack.py): both Prometheus replicas run
  prometheus/prometheus.ha.yml, both Alertmanagers deploy/alertmanager.ha.yml (generated from
  deploy/alertmanager.yml and up to date), VictoriaMetrics deploy/victoria-metrics/relabel.yml;
  every host those configs name is a service listening on that port in each profile;
- prometheus.ha.yml is prometheus.yml plus the HA keys only; the replicas differ by
  PROMETHEUS_REPLICA; VictoriaMetrics drops ``replica`` and deduplicates at the scrape interval;
  the Alertmanagers peer with each other; the receivers read settings the receiver knows, their
  database URL from a secret, and are alike but for RECEIVER_INSTANCE; Grafana's HA datasource
  keeps the dashboards' uid.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.ha_configs import (
    ALERTMANAGER_HA_CONFIG,
    ALERTMANAGER_SHIPPED,
    HA_SERVICE_HOSTS,
    PROMETHEUS_HA_CONFIG,
    VM_RELABEL_CONFIG,
    render_alertmanager_ha,
)
from deploy.stack import PROMETHEUS_CONFIG
from tests.deploy.test_deploy import (
    COMPOSE,
    command_of,
    env_of,
    flag,
    is_ours,
    receiver_variables,
    run,
    tool,
)

ROOT = Path(__file__).resolve().parents[2]
HA_FILE = ROOT / "docker-compose.ha.yml"
HA = yaml.safe_load(HA_FILE.read_text())
HA_DATASOURCES = ROOT / "grafana" / "provisioning-ha" / "datasources"
MAIN_DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
USER_SECRETS = "./secrets/"
"""Secret files the user creates (the override's header says how); never in the repository."""

NEW_SERVICES = {
    "postgres",
    "victoriametrics",
    "receiver-b",
    "alertmanager-b",
    "prometheus-b",
    "exporter-b",
    "exporter-demo-b",
}
OVERRIDDEN = {"receiver", "alertmanager", "prometheus", "grafana", "exporter-demo"}
RECEIVERS = ("receiver", "receiver-b")
ALERTMANAGERS = ("alertmanager", "alertmanager-b")
PROMETHEUSES = ("prometheus", "prometheus-b")


# --- merging as Compose does -------------------------------------------------------------------


def _target(spec: Any) -> str:
    return str(spec).split(":")[1]


def merge_service(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """One service of docker-compose.yml with the override's keys merged in, by Compose's rules
    (https://docs.docker.com/reference/compose-file/merge/): mappings merge, ``command`` and
    sequences of scalars are replaced, ``volumes`` merge by container path, ``ports`` and
    ``secrets`` are unions."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key == "volumes":
            kept = [v for v in merged.get(key, []) if _target(v) not in {_target(o) for o in value}]
            merged[key] = kept + list(value)
        elif key in ("ports", "secrets"):
            merged[key] = list(merged.get(key, [])) + [
                v for v in value if v not in merged.get(key, [])
            ]
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **copy.deepcopy(value)}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


MERGED: dict[str, dict[str, Any]] = {
    name: merge_service(COMPOSE["services"].get(name, {}), HA["services"].get(name, {}))
    for name in {*COMPOSE["services"], *HA["services"]}
}
SECRETS = {**(COMPOSE.get("secrets") or {}), **(HA.get("secrets") or {})}
VOLUMES = {*(COMPOSE.get("volumes") or {}), *(HA.get("volumes") or {})}


def in_profiles(profiles: set[str]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in MERGED.items()
        if not svc.get("profiles") or set(svc["profiles"]) & profiles
    }


def answering(host: str, profiles: set[str]) -> list[str]:
    """Merged services reachable as ``host`` with these profiles active."""
    out = []
    for name, svc in in_profiles(profiles).items():
        aliases = ((svc.get("networks") or {}).get("default") or {}).get("aliases", [])
        if host == name or host in aliases:
            out.append(name)
    return out


def container_port(svc: dict[str, Any]) -> int:
    """The port the service listens on in its container: its published target, else the one
    its healthcheck asks."""
    ports = svc.get("ports") or []
    if ports:
        return int(str(ports[0]).rsplit(":", 1)[1])
    test = " ".join(str(t) for t in svc["healthcheck"]["test"])
    match = re.search(r"(?:-p |:)(\d{4,5})\b", test)
    assert match, f"no port for {svc}"
    return int(match.group(1))


def secret_path(svc: dict[str, Any], name: str) -> str:
    names = [s if isinstance(s, str) else s["source"] for s in svc.get("secrets") or []]
    assert name in names, f"secret {name} is not given to the service"
    return f"/run/secrets/{name}"


# --- schema and structure ----------------------------------------------------------------------


@pytest.mark.e2e
def test_override_validates_against_the_compose_spec_schema() -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(HA_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_override_adds_the_ha_services_and_adjusts_the_others() -> None:
    main = set(COMPOSE["services"])
    assert set(HA["services"]) - main == NEW_SERVICES
    assert set(HA["services"]) & main == OVERRIDDEN
    assert MERGED["exporter-b"]["profiles"] == ["live"]
    assert MERGED["exporter-demo-b"]["profiles"] == ["demo"]
    assert answering("exporter-b", {"live"}) == ["exporter-b"]
    assert answering("exporter-b", {"demo"}) == ["exporter-demo-b"]


def test_images_are_pinned_and_match_the_main_file() -> None:
    for name, svc in MERGED.items():
        if is_ours(svc):
            assert svc["image"] == COMPOSE["services"]["receiver"]["image"], name
            continue
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+(\.\d+)?", svc["image"]), f"{name}: {svc['image']}"
    assert MERGED["prometheus-b"]["image"] == MERGED["prometheus"]["image"]
    assert MERGED["alertmanager-b"]["image"] == MERGED["alertmanager"]["image"]


def test_our_new_services_are_built_and_hardened_like_the_main_ones() -> None:
    reference = COMPOSE["services"]["receiver"]
    keys = ("build", "image", "restart", "init", "read_only", "tmpfs", "cap_drop", "security_opt")
    for name in NEW_SERVICES:
        svc = MERGED[name]
        if is_ours(svc):
            for key in keys:
                assert svc[key] == reference[key], f"{name}: {key}"
            assert svc["logging"] == reference["logging"], name
        assert svc["restart"] == "unless-stopped", name


def test_bind_mounts_exist_read_only_and_named_volumes_are_declared() -> None:
    used = set()
    for name, svc in MERGED.items():
        for spec in svc.get("volumes", []):
            source = str(spec).split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
                assert str(spec).endswith(":ro"), f"{name}: mount configs read-only: {spec}"
            else:
                assert source in VOLUMES, f"{name}: volume {source} not declared"
                used.add(source)
    assert used == VOLUMES


def test_secrets_are_declared_and_exist_or_are_created_as_the_header_says() -> None:
    header = HA_FILE.read_text().split("\nservices:", 1)[0]
    for name, svc in MERGED.items():
        for item in svc.get("secrets") or []:
            secret = item if isinstance(item, str) else item["source"]
            assert secret in SECRETS, f"{name}: secret {secret} is not declared"
    for secret, spec in (HA.get("secrets") or {}).items():
        assert spec["file"].startswith(USER_SECRETS), f"{secret}: keep secrets in ./secrets/"
        assert spec["file"].removeprefix("./") in header, f"the header must create {spec['file']}"
    assert "secrets/" in (ROOT / ".gitignore").read_text()


def test_every_service_is_health_checked_on_its_own_port() -> None:
    for name, svc in MERGED.items():
        check = svc.get("healthcheck")
        assert check and check["test"][0] == "CMD", f"{name}: healthcheck missing"
        assert "curl" not in check["test"], name
        if name == "postgres":
            assert check["test"][1] == "pg_isready"
            continue
        url = urlsplit(check["test"][-1])
        assert url.hostname == "127.0.0.1" and url.port == container_port(svc), name


@pytest.mark.parametrize("profiles", [{"live"}, {"demo"}], ids=["live", "demo"])
def test_published_ports_are_on_bind_address_unique_and_commented(profiles: set[str]) -> None:
    text = HA_FILE.read_text()
    seen: dict[int, str] = {}
    for name, svc in in_profiles(profiles).items():
        for spec in svc.get("ports") or []:
            match = re.fullmatch(r"\$\{BIND_ADDRESS:-127\.0\.0\.1\}:(\d+):(\d+)", str(spec))
            assert match, f"{name}: publish on BIND_ADDRESS: {spec}"
            host = int(match.group(1))
            assert host not in seen, f"{name} and {seen.get(host)} both publish {host}"
            seen[host] = name
            if name in NEW_SERVICES:
                block = re.search(rf"((?:^  #.*\n)+)^  {re.escape(name)}:\n", text, re.M)
                assert block and f"Port {host}" in block.group(1), f"{name}: document {host}"
    assert "postgres" not in {n for n, s in MERGED.items() if s.get("ports")}


def test_depends_on_names_healthy_services_without_cycles() -> None:
    for name, svc in MERGED.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in MERGED, f"{name} depends on undefined {dep}"
            assert spec["condition"] == "service_healthy", f"{name} -> {dep}"
            dep_profiles = set(MERGED[dep].get("profiles") or [])
            if dep_profiles and not set(svc.get("profiles") or []) <= dep_profiles:
                assert spec.get("required") is False, f"{name} -> {dep}: set required: false"

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for dep in MERGED[name].get("depends_on") or {}:
            visit(dep, (*path, name))

    for name in MERGED:
        visit(name, ())
    assert {"postgres"} <= set(MERGED["receiver"]["depends_on"])
    assert {"postgres"} <= set(MERGED["receiver-b"]["depends_on"])


# --- one set of configs ------------------------------------------------------------------------


def _mounted(svc: dict[str, Any], container_path: str) -> Path | None:
    for spec in svc.get("volumes", []):
        source, target = str(spec).split(":")[:2]
        if target == container_path and source.startswith((".", "/")):
            return (ROOT / source).resolve()
    return None


def test_the_ha_configs_are_what_make_ha_runs() -> None:
    for name in PROMETHEUSES:
        config = flag(MERGED[name], "--config.file")
        assert _mounted(MERGED[name], config) == PROMETHEUS_HA_CONFIG, name
        rules = str(PurePosixPath(config).parent / "rules")
        assert _mounted(MERGED[name], rules) == ROOT / "prometheus" / "rules", name
    for name in ALERTMANAGERS:
        config = flag(MERGED[name], "--config.file")
        assert _mounted(MERGED[name], config) == ALERTMANAGER_HA_CONFIG, name
    vm = MERGED["victoriametrics"]
    assert _mounted(vm, flag(vm, "-relabelConfig")) == VM_RELABEL_CONFIG
    assert _mounted(MERGED["grafana"], "/etc/grafana/provisioning/datasources") == HA_DATASOURCES


def test_alertmanager_ha_config_is_generated_from_the_shipped_one() -> None:
    wanted = render_alertmanager_ha(ALERTMANAGER_SHIPPED.read_text())
    assert ALERTMANAGER_HA_CONFIG.read_text() == wanted, "run: python deploy/ha_configs.py"
    shipped = yaml.safe_load(ALERTMANAGER_SHIPPED.read_text())
    ha = yaml.safe_load(wanted)
    assert {k: v for k, v in ha.items() if k != "receivers"} == {
        k: v for k, v in shipped.items() if k != "receivers"
    }
    for before, after in zip(shipped["receivers"], ha["receivers"], strict=True):
        hooks = before["webhook_configs"]
        assert after["webhook_configs"][0::2] == hooks
        assert [h["url"] for h in after["webhook_configs"][1::2]] == [
            h["url"].replace("http://receiver:8080", "http://receiver-b:8080") for h in hooks
        ]


def test_prometheus_ha_config_is_the_shipped_one_plus_the_ha_keys() -> None:
    shipped = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    ha = yaml.safe_load(PROMETHEUS_HA_CONFIG.read_text())
    assert {k: v for k, v in ha["global"].items() if k != "external_labels"} == shipped["global"]
    assert ha["global"]["external_labels"] == {
        "cluster": "exchange-watch",
        "replica": "${PROMETHEUS_REPLICA}",
    }
    assert ha["rule_files"] == shipped["rule_files"]
    assert ha["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
    assert [job["job_name"] for job in ha["scrape_configs"]] == [
        job["job_name"] for job in shipped["scrape_configs"]
    ]
    for job, base in zip(ha["scrape_configs"], shipped["scrape_configs"], strict=True):
        strip = {"static_configs", "honor_labels"}
        assert {k: v for k, v in job.items() if k not in strip} == {
            k: v for k, v in base.items() if k not in strip
        }
    exporters = ha["scrape_configs"][0]
    assert exporters["honor_labels"] is True
    locations = [s["labels"]["location"] for s in exporters["static_configs"]]
    assert len(locations) == 2 and len(set(locations)) == 2
    assert [r["url"] for r in ha["remote_write"]] == ["http://victoriametrics:8428/api/v1/write"]


def test_prometheus_replicas_differ_only_by_their_replica_label() -> None:
    replicas = []
    for name in PROMETHEUSES:
        svc = MERGED[name]
        assert "--enable-feature=expand-external-labels" in command_of(svc), name
        replicas.append(env_of(svc)["PROMETHEUS_REPLICA"])
        assert flag(svc, "--storage.tsdb.path") == "/prometheus"
    assert sorted(replicas) == ["A", "B"]
    a, b = (command_of(MERGED[n]) for n in PROMETHEUSES)
    assert [x for x in a if "external-url" not in x] == [x for x in b if "external-url" not in x]


def test_victoria_metrics_drops_replica_and_deduplicates_at_the_scrape_interval() -> None:
    relabel = yaml.safe_load(VM_RELABEL_CONFIG.read_text())
    assert relabel == [{"action": "labeldrop", "regex": "replica"}]
    ha = yaml.safe_load(PROMETHEUS_HA_CONFIG.read_text())
    vm = MERGED["victoriametrics"]
    assert flag(vm, "-dedup.minScrapeInterval") == ha["global"]["scrape_interval"]
    assert flag(vm, "-httpListenAddr") == f":{container_port(vm)}"
    assert flag(vm, "-storageDataPath") == "/storage"


def test_the_alertmanagers_peer_with_each_other() -> None:
    for name, peer in (ALERTMANAGERS, ALERTMANAGERS[::-1]):
        listen = flag(MERGED[peer], "--cluster.listen-address")
        assert listen and listen.startswith("0.0.0.0:"), peer
        assert flag(MERGED[name], "--cluster.peer") == f"{peer}:{listen.rsplit(':', 1)[1]}"
    assert flag(MERGED["alertmanager-b"], "--storage.path") == "/alertmanager"


def test_every_host_the_ha_configs_name_is_a_service_on_that_port() -> None:
    addresses: list[tuple[str, str]] = []
    ha = yaml.safe_load(PROMETHEUS_HA_CONFIG.read_text())
    for job in ha["scrape_configs"]:
        for static in job["static_configs"]:
            addresses += [(f"prometheus.ha.yml {job['job_name']}", t) for t in static["targets"]]
    for am in ha["alerting"]["alertmanagers"]:
        for static in am["static_configs"]:
            addresses += [("prometheus.ha.yml alerting", t) for t in static["targets"]]
    addresses += [("remote_write", urlsplit(r["url"]).netloc) for r in ha["remote_write"]]
    for receiver in yaml.safe_load(ALERTMANAGER_HA_CONFIG.read_text())["receivers"]:
        for hook in receiver["webhook_configs"]:
            addresses.append(
                (f"alertmanager.ha.yml {receiver['name']}", urlsplit(hook["url"]).netloc)
            )
    for path in HA_DATASOURCES.glob("*.yml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            addresses.append((path.name, urlsplit(source["url"]).netloc))
    for name in RECEIVERS:
        addresses.append(
            (f"{name} PROMETHEUS_URL", urlsplit(env_of(MERGED[name])["PROMETHEUS_URL"]).netloc)
        )
    hosts = set()
    for where, address in addresses:
        host, _, port = address.rpartition(":")
        hosts.add(host)
        for profiles in ({"live"}, {"demo"}):
            found = answering(host, profiles)
            assert len(found) == 1, f"{where}: {host} with profiles {profiles}: {found}"
            assert container_port(MERGED[found[0]]) == int(port), f"{where}: {address}"
    assert set(HA_SERVICE_HOSTS) - {"prometheus", "prometheus-b", "simulator"} <= hosts
    for host in HA_SERVICE_HOSTS:
        assert answering(host, {"demo"}), f"HA_SERVICE_HOSTS names {host}: no such service"


# --- the receivers and PostgreSQL --------------------------------------------------------------


def test_receivers_share_one_database_from_a_secret_and_differ_by_instance() -> None:
    envs = {name: env_of(MERGED[name]) for name in RECEIVERS}
    known = receiver_variables()
    for name, env in envs.items():
        assert set(env) <= known, f"{name}: unknown settings {sorted(set(env) - known)}"
        url_file = env["RECEIVER_DATABASE_URL_FILE"]
        assert url_file == secret_path(MERGED[name], "receiver_database_url"), name
        assert env.get("RECEIVER_DATABASE_URL") is None, f"{name}: the URL holds a password"
        assert env["PROMETHEUS_URL"] == "http://victoriametrics:8428", name
        assert command_of(MERGED[name]) == command_of(COMPOSE["services"]["receiver"])
    # Alike but for the instance name (a pass-through RECEIVER_DATABASE_URL that
    # docker-compose.yml may offer is left out of receiver-b: the URL comes from the secret).
    a, b = ({k: v for k, v in env.items() if k != "RECEIVER_DATABASE_URL"} for env in envs.values())
    assert set(a) == set(b), sorted(set(a) ^ set(b))
    assert {k: v for k, v in a.items() if k != "RECEIVER_INSTANCE"} == {
        k: v for k, v in b.items() if k != "RECEIVER_INSTANCE"
    }
    assert {a["RECEIVER_INSTANCE"], b["RECEIVER_INSTANCE"]} == {"receiver-a", "receiver-b"}
    # One JSONL notification log: both write the same file on the same volume.
    assert MERGED["receiver"]["volumes"] == MERGED["receiver-b"]["volumes"]


def test_postgres_takes_its_password_from_a_secret_matching_the_documented_url() -> None:
    svc = MERGED["postgres"]
    env = env_of(svc)
    assert env["POSTGRES_PASSWORD_FILE"] == secret_path(svc, "postgres_password")
    assert "POSTGRES_PASSWORD" not in env
    header = HA_FILE.read_text().split("\nservices:", 1)[0]
    user, db = env["POSTGRES_USER"], env["POSTGRES_DB"]
    assert f"postgresql://{user}:%s@postgres:5432/{db}" in header
    check = svc["healthcheck"]["test"]
    assert check[check.index("-U") + 1] == user and check[check.index("-d") + 1] == db


def test_grafana_ha_datasource_keeps_the_dashboards_uid() -> None:
    [main] = yaml.safe_load(MAIN_DATASOURCES.read_text())["datasources"]
    [ha] = yaml.safe_load((HA_DATASOURCES / "prometheus.yml").read_text())["datasources"]
    assert (ha["name"], ha["uid"], ha["type"]) == (main["name"], main["uid"], main["type"])
    assert ha["url"] == "http://victoriametrics:8428"
    assert ha["jsonData"] == main["jsonData"]


# --- the configs pass their own tools, laid out as in the containers ---------------------------


def _layout(tmp_path: Path, svc: dict[str, Any]) -> Path:
    for spec in svc.get("volumes", []):
        source, target = str(spec).split(":")[:2]
        if not source.startswith((".", "/")):
            continue
        dest = tmp_path / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        host = ROOT / source
        if host.is_dir():
            shutil.copytree(host, dest)
        else:
            shutil.copy2(host, dest)
    return tmp_path


@pytest.mark.e2e
def test_prometheus_ha_config_passes_promtool_in_the_container_layout(tmp_path: Path) -> None:
    svc = MERGED["prometheus-b"]
    config = _layout(tmp_path, svc) / flag(svc, "--config.file").lstrip("/")
    result = run(tool("promtool"), "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_alertmanager_ha_config_passes_amtool_in_the_container_layout(tmp_path: Path) -> None:
    svc = MERGED["alertmanager-b"]
    config = _layout(tmp_path, svc) / flag(svc, "--config.file").lstrip("/")
    result = run(tool("amtool"), "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_exporters_publish_the_location_prometheus_labels_them_with() -> None:
    """deploy/exporter.demo.yml takes `location:` from EXPORTER_LOCATION: each demo exporter's
    value is its target's `location` label in prometheus.ha.yml."""
    assert re.search(
        r"^location: \$\{EXPORTER_LOCATION", (ROOT / "deploy/exporter.demo.yml").read_text(), re.M
    )
    ha = yaml.safe_load(PROMETHEUS_HA_CONFIG.read_text())
    labels = {
        target.rsplit(":", 1)[0]: static["labels"]["location"]
        for static in ha["scrape_configs"][0]["static_configs"]
        for target in static["targets"]
    }
    for host, location in labels.items():
        (service,) = answering(host, {"demo"})
        assert env_of(MERGED[service])["EXPORTER_LOCATION"] == location, service
