"""Exporter config loading: valid files load; every error names file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config
from exporter.durations import parse_duration
from exporter.scheduler import build_targets

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), (3, 3.0), ("1.5s", 1.5)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "s5", "5s junk", "-1s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("name", ["exporter.yml", "exporter.demo.yml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(ROOT / "deploy" / name)
    names = {e.name for e in config.exchanges}
    assert names == {"binance", "bybit", "okx", "coinbase", "kraken"}
    targets = build_targets(config)
    assert {t.endpoint.name for t in targets if t.exchange == "binance"} == {
        "ping",
        "time",
        "status",
        "ticker",
        "orderbook",
    }


def test_demo_config_expands_simulator_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMULATOR_URL", "http://127.0.0.1:1234")
    config = load_config(ROOT / "deploy" / "exporter.demo.yml")
    assert config.exchanges[0].base_url == "http://127.0.0.1:1234/binance"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    return path


VALID = """
exchanges:
  - name: binance
    profile: binance
    base_url: https://api.binance.com
    interval: 5s
    timeout: 3s
"""


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (("interval: 5s", "interval: fast"), r"exchanges\[0\]\.interval: .*'fast'"),
        (
            ("profile: binance", "profile: binanse"),
            r"exchanges\[0\]\.profile: unknown profile.*"
            r"'binanse'",
        ),
        (("timeout: 3s", "timeout: 9s"), r"exchanges\[0\]: .*timeout 9s must not exceed interval"),
        (
            ("base_url: https://api.binance.com", "base_url: api.binance.com"),
            r"exchanges\[0\]\.base_url: .*'api\.binance\.com'",
        ),
        (("name: binance", "name: Binance!"), r"exchanges\[0\]\.name: .*'Binance!'"),
        (("timeout: 3s", "timeout: 3s\n    colour: red"), r"exchanges\[0\]\.colour: Extra inputs"),
        (
            ("timeout: 3s", "timeout: 3s\n    endpoints: [ping, candles]"),
            r"exchanges\[0\]\.endpoints: .*candles not offered by profile 'binance'",
        ),
    ],
)
def test_config_errors_name_file_field_value(
    tmp_path: Path, replace: tuple[str, str], expected: str
) -> None:
    path = _write(tmp_path, VALID.replace(*replace))
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_config_error_for_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "exchanges: [\n"))
    with pytest.raises(ConfigError, match="exchanges: List should have at least 1 item"):
        load_config(_write(tmp_path, "exchanges: []\n"))


def test_duplicate_exchange_names_rejected(tmp_path: Path) -> None:
    text = VALID + VALID.split("exchanges:\n", 1)[1]
    with pytest.raises(ConfigError, match="'binance' is used twice"):
        load_config(_write(tmp_path, text))


def test_unset_env_reference_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_VAR_EW", raising=False)
    path = _write(tmp_path, VALID.replace("https://api.binance.com", "${NO_SUCH_VAR_EW}"))
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_EW is not set"):
        load_config(path)


def test_demo_and_real_configs_share_one_schedule() -> None:
    real = load_config(ROOT / "deploy" / "exporter.yml")
    demo = load_config(ROOT / "deploy" / "exporter.demo.yml")
    for a, b in zip(real.exchanges, demo.exchanges, strict=True):
        assert a.name == b.name and a.profile == b.profile
        assert a.endpoint_plan() == b.endpoint_plan()
        assert a.weight_budget == b.weight_budget


BUDGET = """
exchanges:
  - name: okx
    profile: okx
    base_url: https://www.okx.com
    interval: 5s
    timeout: 3s
"""


def test_budget_rejects_a_schedule_over_the_documented_limit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, BUDGET))
    message = str(info.value)
    assert "exchanges[0]:" in message
    assert "GET /api/v5/system/status" in message and "[OKX-STATUS]" in message
    assert "budget is 10%" in message and "status every 50s" in message


def test_budget_accepts_per_endpoint_interval_or_larger_budget(tmp_path: Path) -> None:
    slow_status = BUDGET + "    endpoints: [time, {name: status, interval: 50s}, ticker]\n"
    config = load_config(_write(tmp_path, slow_status))
    plan = {p.name: (p.interval, p.timeout) for p in config.exchanges[0].endpoint_plan()}
    assert plan == {"time": (5.0, 3.0), "status": (50.0, 3.0), "ticker": (5.0, 3.0)}
    assert load_config(_write(tmp_path, BUDGET + "    weight_budget: 1.0\n"))


def test_binance_budget_counts_request_weight(tmp_path: Path) -> None:
    # depth (weight 5) every 50 ms = 6000 weight/min: 100 % of REQUEST_WEIGHT, over 10 %.
    text = VALID.replace("interval: 5s", "interval: 50ms").replace("timeout: 3s", "timeout: 50ms")
    text += "    endpoints: [orderbook]\n"
    with pytest.raises(ConfigError, match=r"uses 6e\+03 of 6000 per 60s \(REQUEST_WEIGHT"):
        load_config(_write(tmp_path, text))


def test_endpoint_timeout_must_fit_its_interval(tmp_path: Path) -> None:
    text = VALID + "    endpoints: [{name: time, interval: 2s, timeout: 3s}]\n"
    with pytest.raises(ConfigError, match="endpoint time: timeout 3s must not exceed interval 2s"):
        load_config(_write(tmp_path, text))


def test_every_problem_is_one_line(tmp_path: Path) -> None:
    text = VALID.replace("interval: 5s", "interval: soon").replace("profile: binance", "profile: x")
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text + "max_concurrency: 0\n"))
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(str(tmp_path)) for line in lines)
