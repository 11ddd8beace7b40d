"""The mixin's config (prometheus/thresholds.yml `config`) rendered by `make rules` into the
rules, the promtool tests and the dashboards: a changed config reaches every file and the
unit tests still pass, changing it back restores the shipped files byte for byte, and a stale
file fails the check. Runs the renderer on a copy of prometheus/ and grafana/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from receiver.cli import DEFAULT_LISTEN

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = yaml.safe_load((REPO / "prometheus" / "thresholds.yml").read_text())["config"]
SHIPPED_SELECTOR = SHIPPED_CONFIG["exporter_selector"]
# Unit tests that cover exporter series, thresholds and expected `job` labels, in a few seconds.
QUICK_UNIT_TESTS = [
    "exchange-api-down_test.yml",
    "exchange-endpoint-down_test.yml",
    "exchange-monitor_test.yml",
    "exchange-state_test.yml",
]


def _copy(tmp_path: Path) -> Path:
    for part in ("prometheus", "grafana"):
        shutil.copytree(REPO / part, tmp_path / part)
    return tmp_path


def _render(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "prometheus" / "render_thresholds.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _rendered_files(root: Path) -> list[Path]:
    return [
        *sorted((root / "prometheus" / "rules").glob("*.yml")),
        *sorted((root / "prometheus" / "tests").glob("*_test.yml")),
        *sorted((root / "grafana" / "dashboards").glob("*.json")),
    ]


def _set_config(root: Path, **values: str) -> None:
    path = root / "prometheus" / "thresholds.yml"
    text = path.read_text()
    for key, value in values.items():
        old = f"  {key}: {SHIPPED_CONFIG[key]}"
        if key == "exporter_selector":
            old = f"  {key}: '{SHIPPED_CONFIG[key]}'"
        assert old in text, old
        text = text.replace(old, f"  {key}: '{value}'")
    path.write_text(text)


@pytest.mark.e2e
def test_a_changed_config_reaches_every_file_and_back(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: apt-get install prometheus"
    root = _copy(tmp_path)
    shipped = {p: p.read_text() for p in _rendered_files(root)}
    selector = 'job="ew-exporter", probe_location="tokyo"'
    _set_config(
        root,
        exporter_selector=selector,
        runbook_url="https://wiki.example.com/exchange-watch/alerts.md#{anchor}",
        runbook_index_url="https://wiki.example.com/exchange-watch/alerts.md",
    )
    proc = _render(root)
    assert proc.returncode == 0, proc.stderr
    for path in _rendered_files(root):
        text = path.read_text()
        assert "{" + SHIPPED_SELECTOR not in text.replace('\\"', '"'), path.name
        assert "localhost:8080/runbooks" not in text, path.name
    alerts = (root / "prometheus" / "rules" / "exchange-alerts.yml").read_text()
    assert 'runbook_url: "https://wiki.example.com/exchange-watch/alerts.md#exchangeapidown"' in (
        alerts
    )
    assert "absent(up{" + selector + "})" in alerts
    # The promtool tests' series and expected labels follow the selector: they still pass (the
    # quick ones; tests/monitoring/test_rules.py runs them all on the shipped files).
    result = subprocess.run(
        [promtool, "test", "rules", *QUICK_UNIT_TESTS],
        cwd=root / "prometheus" / "tests",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _render(root, "--check").returncode == 0
    # Back to the shipped config: every file as shipped.
    shutil.copy(REPO / "prometheus" / "thresholds.yml", root / "prometheus" / "thresholds.yml")
    assert _render(root).returncode == 0
    changed = [p.name for p, text in shipped.items() if p.read_text() != text]
    assert not changed, f"not restored: {changed}"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("relative", "old", "new"),
    [
        ("prometheus/rules/exchange-thresholds.yml", "0.999 *", "0.99 *"),
        ("prometheus/rules/exchange-alerts.yml", "runbooks/Watchdog", "runbooks/Other"),
        ("prometheus/tests/exchange-monitor_test.yml", "runbooks/Watchdog", "runbooks/x"),
        ("grafana/dashboards/exchange-overview.json", "8080/runbooks", "8080/docs"),
    ],
)
def test_a_stale_rendering_fails_the_check(
    tmp_path: Path, relative: str, old: str, new: str
) -> None:
    root = _copy(tmp_path)
    assert _render(root, "--check").returncode == 0
    path = root / relative
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    proc = _render(root, "--check")
    assert proc.returncode == 1
    assert f"{relative} is out of date: run `make rules`" in proc.stderr
    assert _render(root).returncode == 0
    assert path.read_text() == text


@pytest.mark.e2e
def test_a_config_change_without_rendering_fails_the_check(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _set_config(root, exporter_selector='job="other"')
    proc = _render(root, "--check")
    assert proc.returncode == 1
    for relative in (
        "prometheus/rules/exchange-thresholds.yml",
        "prometheus/rules/exchange-recording.yml",
        "prometheus/tests/exchange-state_test.yml",
        "grafana/dashboards/exchange-detail.json",
    ):
        assert f"{relative} is out of date: run `make rules`" in proc.stderr


def test_the_shipped_runbook_links_open_the_receivers_pages() -> None:
    """As shipped, a notification's runbook link is the receiver's /runbooks/<alertname> on
    the port that compose publishes and where `alert-receiver` listens by default."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    published = compose["services"]["receiver"]["ports"]
    assert "${BIND_ADDRESS:-127.0.0.1}:8080:8080" in published
    assert DEFAULT_LISTEN.endswith(":8080")
    url = SHIPPED_CONFIG["runbook_url"].format(alertname="ExchangeApiDown", anchor="x")
    assert url == "http://localhost:8080/runbooks/ExchangeApiDown"
    assert SHIPPED_CONFIG["runbook_index_url"] == "http://localhost:8080/runbooks"
