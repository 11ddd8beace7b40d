"""The ``api_keys:`` config: where secrets come from, the errors that name what is wrong, the
budget the key checks count in, and that no secret shows in the effective config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import effective_config
from exporter.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def exchange(profile: str = "binance", **key: Any) -> dict[str, Any]:
    entry = {"name": "monitor", **key}
    return {
        "exchanges": [
            {
                "name": profile,
                "profile": profile,
                "base_url": f"https://{profile}.example",
                "api_keys": [entry],
            }
        ]
    }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BN_KEY", KEY)
    monkeypatch.setenv("BN_SECRET", SECRET)


def test_secrets_from_environment_are_secret_strings(env: None) -> None:
    config = parse_config(exchange(key_env="BN_KEY", secret_env="BN_SECRET"))
    key = config.exchanges[0].api_keys[0]
    assert key.credentials.key.get_secret_value() == KEY
    assert key.credentials.secret is not None
    assert key.credentials.secret.get_secret_value() == SECRET
    assert KEY not in repr(key) and SECRET not in repr(config)
    assert key.interval == 60 and key.effective_timeout() == 10


def test_secret_files_lose_one_trailing_newline_and_resolve_relative_to_the_config(
    tmp_path: Path,
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text(KEY + "\n")
    (tmp_path / "secrets" / "secret").write_text(SECRET + "\n")
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump(exchange(key_file="secrets/key", secret_file="secrets/secret")))
    key = load_config(path).exchanges[0].api_keys[0]
    assert key.credentials.key.get_secret_value() == KEY
    assert key.credentials.secret is not None
    assert key.credentials.secret.get_secret_value() == SECRET


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (
            {"key_env": "NOPE_KEY", "secret_env": "BN_SECRET"},
            "key_env: environment variable NOPE_KEY",
        ),
        ({"secret_env": "BN_SECRET"}, "key_env or key_file: required"),
        ({"key_env": "BN_KEY", "key_file": "/x", "secret_env": "BN_SECRET"}, "give one of them"),
        ({"key_env": "BN_KEY", "secret_file": "/does/not/exist"}, "secret_file: cannot read"),
        ({"key_env": "BN_KEY", "secret_env": "BN_SECRET", "interval": "5s"}, "at least 10s"),
        ({"key_env": "BN_KEY", "secret_env": "BN_SECRET", "recv_window": "90s"}, "recv_window 90s"),
        ({"key_env": "bad-name", "secret_env": "BN_SECRET"}, "environment variable name"),
        ({"key_env": "BN_KEY", "secret_env": "BN_SECRET", "secret": "inline"}, "secret"),
        ({"name": "Monitor", "key_env": "BN_KEY", "secret_env": "BN_SECRET"}, "label value"),
    ],
)
def test_errors_name_file_field_and_never_the_secret(
    env: None, key: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(exchange(**key), "exporter.yml")
    message = str(info.value)
    assert message.startswith("exporter.yml: exchanges[0].api_keys")
    assert problem in message
    assert KEY not in message and SECRET not in message


def test_duplicate_key_names_are_refused(env: None) -> None:
    data = exchange(key_env="BN_KEY", secret_env="BN_SECRET")
    data["exchanges"][0]["api_keys"].append(dict(data["exchanges"][0]["api_keys"][0]))
    with pytest.raises(ConfigError, match="key name monitor is used twice"):
        parse_config(data)


def test_generic_profile_has_no_key_check(env: None) -> None:
    data = exchange("generic", key_env="BN_KEY", secret_env="BN_SECRET")
    data["exchanges"][0]["endpoints"] = [{"name": "time", "path": "/time"}]
    with pytest.raises(ConfigError, match="has no API-key check"):
        parse_config(data)


def test_key_checks_count_in_the_budget(env: None) -> None:
    config = parse_config(exchange(key_env="BN_KEY", secret_env="BN_SECRET"))
    schedule = config.exchanges[0].budget_schedule()
    assert schedule["api_key"] == (60.0, 1.0)
    assert "api_key" not in config.exchanges[0].schedule()  # no probe bucket of its own


def test_two_keys_count_at_their_combined_rate(env: None) -> None:
    data = exchange(key_env="BN_KEY", secret_env="BN_SECRET", interval="30s")
    data["exchanges"][0]["api_keys"].append(
        {"name": "bot", "key_env": "BN_KEY", "secret_env": "BN_SECRET", "interval": "60s"}
    )
    interval, _ = parse_config(data).exchanges[0].budget_schedule()["api_key"]
    assert interval == pytest.approx(20.0)


def test_effective_config_shows_no_secret(env: None) -> None:
    config = parse_config(exchange(key_env="BN_KEY", secret_env="BN_SECRET"))
    text = json.dumps(effective_config(config))
    assert KEY not in text and SECRET not in text
    assert "BN_KEY" in text  # where the key comes from is shown


def test_cdp_json_key_file_gives_the_key_name(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    name = "organizations/org-1/apiKeys/key-1"
    (tmp_path / "cdp.json").write_text(json.dumps({"name": name, "privateKey": pem}))
    config = parse_config(exchange("coinbase", private_key_file=str(tmp_path / "cdp.json")))
    credentials = config.exchanges[0].api_keys[0].credentials
    assert credentials.key.get_secret_value() == name
    assert credentials.private_key is not None
    assert "BEGIN EC PRIVATE KEY" in credentials.private_key.get_secret_value()


def test_shipped_demo_config_checks_one_key_per_exchange() -> None:
    config = load_config(ROOT / "deploy" / "exporter.demo.yml")
    assert {e.name: [k.name for k in e.api_keys] for e in config.exchanges} == {
        name: ["monitor"] for name in ("binance", "bybit", "okx", "coinbase", "kraken")
    }


def test_demo_keys_match_what_the_simulator_registers() -> None:
    keys_dir = ROOT / "deploy" / "demo-keys"
    registered = {
        k["exchange"]: k for k in json.loads((keys_dir / "simulator-keys.json").read_text())
    }
    config = load_config(ROOT / "deploy" / "exporter.demo.yml")
    for exchange_config in config.exchanges:
        credentials = exchange_config.api_keys[0].credentials
        entry = registered[exchange_config.name]
        assert credentials.key.get_secret_value() == entry["key"]
        if credentials.secret is not None:
            assert credentials.secret.get_secret_value() == entry["secret"]
        if credentials.passphrase is not None:
            assert credentials.passphrase.get_secret_value() == entry["passphrase"]
        if credentials.private_key is not None:
            assert credentials.private_key.get_secret_value().strip() == entry["secret"].strip()
        assert entry["permissions"] == ["read"] and entry["ips"]
