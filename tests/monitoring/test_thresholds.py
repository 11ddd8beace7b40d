"""Checks of prometheus/thresholds.yml and its rendering into rules/exchange-thresholds.yml and the
rules' `for:` durations: up to date, every threshold used, errors reported, per-exchange overrides
applied in a real promtool run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.rules_contract import (
    ALERT_RULES,
    EXPORTER_SELECTOR,
    RECORDING_RULES,
    RENDER_THRESHOLDS,
    REPO,
    RULE_FILES,
    THRESHOLD_RULES_FILE,
    THRESHOLDS_FILE,
    _assert_ok,
    _load_yaml,
    _rel,
    _run,
    promql_metric_names,
)

# --------------------------------------------------------------------------------------------
# Thresholds (prometheus/thresholds.yml -> rules/exchange-thresholds.yml)


def _render(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, RENDER_THRESHOLDS, *args)


@pytest.mark.e2e
def test_threshold_rules_are_up_to_date() -> None:
    """Everything rendered from thresholds.yml must match it: the generated threshold rules,
    and the exporter selector and runbook links of the rules, the promtool tests and the
    dashboards. Run `make rules` after editing."""
    proc = _render("--check")
    assert proc.returncode == 0, (
        f"rendered files are out of date with {_rel(THRESHOLDS_FILE)}: run "
        f"`make rules` (python {_rel(RENDER_THRESHOLDS)})\n{proc.stderr}"
    )


def test_every_threshold_is_used_and_every_used_threshold_exists() -> None:
    # Durations (a rule's `for`, e.g. api_key_invalid_for) are rendered into the rules, not
    # into series: see test_for_durations_from_thresholds_are_rendered_into_their_rules.
    defaults = _load_yaml(THRESHOLDS_FILE)["defaults"]
    keys = {k for k, v in defaults.items() if not isinstance(v, str)}
    generated = {r["record"] for p, r in RECORDING_RULES if p == THRESHOLD_RULES_FILE}
    assert generated == {f"exchange:threshold:{k}" for k in keys}
    used = {
        name
        for p, rule in ALERT_RULES + RECORDING_RULES
        if p != THRESHOLD_RULES_FILE
        for name in promql_metric_names(rule["expr"]) | _template_queries(rule)
        if name.startswith("exchange:threshold:")
    }
    assert used == generated, f"unused thresholds: {sorted(generated - used)}"


_FOR_MARKER = re.compile(r"^\s*for:\s*(\S+)\s+#\s*thresholds\.yml\s+(\w+)\s*$", re.M)


def test_for_durations_from_thresholds_are_rendered_into_their_rules() -> None:
    """Every duration of thresholds.yml `defaults` (a rule's `for`) is the `for` of the rule
    line marked `# thresholds.yml <key>`, and every marker names one."""
    defaults = _load_yaml(THRESHOLDS_FILE)["defaults"]
    durations = {k: v for k, v in defaults.items() if isinstance(v, str)}
    assert durations == {"api_key_invalid_for": "1m"}, "shipped durations (promtool tests use 1m)"
    marked = {
        key: value
        for path in RULE_FILES
        for value, key in _FOR_MARKER.findall(path.read_text(encoding="utf-8"))
    }
    assert marked == durations
    [rule] = [r for _, r in ALERT_RULES if r["alert"] == "ExchangeApiKeyInvalid"]
    assert rule["for"] == durations["api_key_invalid_for"]


@pytest.mark.e2e
def test_a_changed_for_duration_reaches_its_rule_and_table(tmp_path: Path, promtool: str) -> None:
    """`make rules` writes thresholds.yml's api_key_invalid_for into the rule's `for:` and its
    THRESHOLDS row, and the result is a valid rule file; the shipped files stay untouched."""
    for part in ("prometheus", "grafana"):
        shutil.copytree(REPO / part, tmp_path / part)
    thresholds = tmp_path / "prometheus" / "thresholds.yml"
    text = thresholds.read_text(encoding="utf-8")
    assert "\n  api_key_invalid_for: 1m\n" in text
    thresholds.write_text(text.replace("api_key_invalid_for: 1m", "api_key_invalid_for: 90s"))
    script = tmp_path / "prometheus" / "render_thresholds.py"
    _assert_ok(_run(sys.executable, script))
    rules = tmp_path / "prometheus" / "rules" / "exchange-key-alerts.yml"
    [rule] = [
        r
        for g in _load_yaml(rules)["groups"]
        for r in g["rules"]
        if r.get("alert") == "ExchangeApiKeyInvalid"
    ]
    assert rule["for"] == "90s"
    assert re.search(r"^# \| ExchangeApiKeyInvalid .*\| 90s \|$", rules.read_text(), re.M)
    _assert_ok(_run(promtool, "check", "rules", rules))
    _assert_ok(_run(sys.executable, script, "--check"))
    _assert_ok(_render("--check"))


def _template_queries(rule: dict[str, Any]) -> set[str]:
    text = " ".join(rule.get("annotations", {}).values())
    return set(re.findall(r"exchange:threshold:\w+", text))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("defaults: {latency_p99_seconds: fast}", "defaults.latency_p99_seconds: expected"),
        ("defaults: {}", "defaults.error_ratio: missing"),
        ("exchanges: {Kraken: {}}", "exchanges.Kraken: not an exchange name"),
        ("exchanges: {kraken: {latency_p99: 2}}", "exchanges.kraken.latency_p99: unknown"),
        ("exchanges: {kraken: {error_ratio: 5}}", "exchanges.kraken.error_ratio: expected"),
        (
            "exchanges: {okx: {ws_reconnects: 2.5}}",
            "exchanges.okx.ws_reconnects: expected a whole number >= 1, got 2.5",
        ),
        ("defaults: {ws_sequence_gaps: 0}", "defaults.ws_sequence_gaps: expected a whole number"),
        (
            "exchanges: {okx: {clock_skew_warning_seconds: 2}}",
            "exchanges.okx: clock_skew_warning_seconds (2) must be below",
        ),
        (
            "exchanges: {okx: {price_deviation_bps: 300}}",
            "exchanges.okx: price_deviation_bps (300) must be below price_deviation_critical_bps",
        ),
        ("defaults: {volume_spike_ratio: 1}", "defaults.volume_spike_ratio: expected a number > 1"),
        ("thresholds: {}", "thresholds: unknown section"),
        (
            "exchanges: {okx: {api_key_invalid_for: 2m}}",
            "exchanges.okx.api_key_invalid_for: a rule's `for` is the same for every exchange",
        ),
        (
            "defaults: {api_key_invalid_for: 60}",
            "defaults.api_key_invalid_for: expected a Prometheus duration above 0",
        ),
        (
            "defaults: {api_key_invalid_for: 0m}",
            "defaults.api_key_invalid_for: expected a Prometheus duration above 0",
        ),
        ("defaults: {}", "defaults.api_key_invalid_for: missing"),
        ("config: {}", "config.exporter_selector: expected label matchers"),
        (
            """config: {exporter_selector: 'job=~"a|b"', runbook_url: 'http://x/{alertname}',
                        runbook_index_url: 'http://x/'}""",
            "config.exporter_selector: expected label matchers",
        ),
        (
            """config: {exporter_selector: 'job="a", job="b"', runbook_url: 'http://x/{alertname}',
                        runbook_index_url: 'http://x/'}""",
            "config.exporter_selector: expected label matchers",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'http://x/runbooks',
                        runbook_index_url: 'http://x/'}""",
            "config.runbook_url: expected a URL with {alertname} or {anchor}",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'http://x/{name}',
                        runbook_index_url: 'http://x/'}""",
            "config.runbook_url: expected a URL with {alertname} or {anchor}",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'file:///{alertname}',
                        runbook_index_url: 'http://x/'}""",
            "config.runbook_url: expected an http(s) URL",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'http://x/{alertname}',
                        runbook_index_url: 'http://x/{alertname}'}""",
            "config.runbook_index_url: expected a URL without {placeholders}",
        ),
        (
            """config: {exporter_selector: 'job="a"', runbook_url: 'http://x/{alertname}',
                        runbook_index_url: 'http://x/', runbook: 'http://y'}""",
            "config.runbook: unknown key",
        ),
    ],
)
@pytest.mark.e2e
def test_render_thresholds_reports_errors(tmp_path: Path, content: str, message: str) -> None:
    shipped = _load_yaml(THRESHOLDS_FILE)
    data = yaml.safe_load(content)
    for section in ("config", "defaults"):
        if section not in data:
            data[section] = shipped[section]
    bad = tmp_path / "thresholds.yml"
    bad.write_text(yaml.safe_dump(data))
    proc = _render("--thresholds", bad, "--output", tmp_path / "out.yml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{bad}: {message}" in proc.stderr, proc.stderr
    assert not (tmp_path / "out.yml").exists()


@pytest.mark.e2e
def test_threshold_overrides_apply_per_exchange(promtool: str, tmp_path: Path) -> None:
    """Render a thresholds file with overrides and check the series Prometheus computes:
    the override for the listed exchanges (two sharing a value), the default for the rest,
    including an exchange the file never mentions."""
    data = _load_yaml(THRESHOLDS_FILE)
    data["exchanges"] = {
        "binance": {"latency_p99_seconds": 2.5},
        "bybit": {"latency_p99_seconds": 2.5, "error_ratio": 0.2},
        "okx": {"error_ratio": 0.01},
    }
    thresholds = tmp_path / "thresholds.yml"
    thresholds.write_text(yaml.safe_dump(data))
    rules = tmp_path / "thresholds-rules.yml"
    _assert_ok(_render("--thresholds", thresholds, "--output", rules))
    _assert_ok(_run(promtool, "check", "rules", rules))
    series = [
        {
            "series": f'exchange_api_up{{{EXPORTER_SELECTOR}, exchange="{x}", endpoint="time"}}',
            "values": "1x5",
        }
        for x in ("binance", "bybit", "okx", "gate")
    ]
    default_p99 = data["defaults"]["latency_p99_seconds"]
    default_errors = data["defaults"]["error_ratio"]
    unit_test = {
        "rule_files": [rules.name],
        "evaluation_interval": "5s",
        "tests": [
            {
                "interval": "5s",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "exchange:threshold:latency_p99_seconds",
                        "eval_time": "10s",
                        "exp_samples": [
                            {"labels": f'exchange:threshold:latency_p99_seconds{{exchange="{x}"}}',
                             "value": v}
                            for x, v in (
                                ("binance", 2.5), ("bybit", 2.5),
                                ("okx", default_p99), ("gate", default_p99),
                            )
                        ],
                    },
                    {
                        "expr": "exchange:threshold:error_ratio",
                        "eval_time": "10s",
                        "exp_samples": [
                            {"labels": f'exchange:threshold:error_ratio{{exchange="{x}"}}',
                             "value": v}
                            for x, v in (
                                ("binance", default_errors), ("bybit", 0.2),
                                ("okx", 0.01), ("gate", default_errors),
                            )
                        ],
                    },
                ],
            }
        ],
    }  # fmt: skip
    test_file = tmp_path / "thresholds_test.yml"
    test_file.write_text(yaml.safe_dump(unit_test))
    _assert_ok(_run(promtool, "test", "rules", test_file.name, cwd=tmp_path))
