"""Settings and command-line tests, including a real ``alert-receiver`` process on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from receiver.cli import main, parse_listen
from receiver.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]
ENV_VARS = [
    "SLACK_WEBHOOK_URL",
    "DISCORD_WEBHOOK_URL",
    "NOTIFY_FILE",
    "LLM_BASE_URL",
    "LLM_API_KEY",
    "LLM_MODEL",
    "LLM_TIMEOUT_SECONDS",
    "PROMETHEUS_URL",
    "RECEIVER_DB_PATH",
    "MAX_BODY_BYTES",
    "WORKER_CONCURRENCY",
    "NOTIFY_MAX_ATTEMPTS",
    "NOTIFY_RETRY_BASE_SECONDS",
    "NOTIFY_RETRY_MAX_SECONDS",
    "NOTIFY_MAX_RETRY_AFTER_SECONDS",
    "NOTIFY_MAX_AGE_SECONDS",
    "SLACK_MIN_INTERVAL_SECONDS",
    "DISCORD_MIN_INTERVAL_SECONDS",
    "RECEIVER_ROUTING_FILE",
    "RECEIVER_BEARER_TOKEN",
    "RECEIVER_BEARER_TOKEN_FILE",
    "RECEIVER_BASIC_AUTH_USERNAME",
    "RECEIVER_BASIC_AUTH_USERNAME_FILE",
    "RECEIVER_BASIC_AUTH_PASSWORD",
    "RECEIVER_BASIC_AUTH_PASSWORD_FILE",
    "DEADMAN_TIMEOUT_SECONDS",
    "DEADMAN_ARM_AT_START",
    "DEADMAN_ROUTE",
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.receiver_db_path == Path("receiver.db")
    assert s.max_body_bytes == 1024 * 1024
    assert s.llm_timeout_seconds == 20
    assert s.slack_webhook_url is None and s.notify_file is None
    assert not s.llm_enabled
    assert s.inbound_auth is None
    assert s.deadman_timeout_seconds == 300 and not s.deadman_arm_at_start
    assert s.deadman_route == "critical"
    assert s.notify_max_age_seconds == 86400 and s.notify_max_attempts == 0
    assert s.slack_min_interval_seconds is None


def test_reads_environment_and_hides_secrets(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.test/services/T/B/topsecret")
    clean_env.setenv("LLM_API_KEY", "sk-topsecret-key")
    clean_env.setenv("LLM_BASE_URL", "http://llm.local/v1/")
    clean_env.setenv("LLM_MODEL", "qwen")
    clean_env.setenv("NOTIFY_FILE", "/tmp/x.jsonl")
    clean_env.setenv("MAX_BODY_BYTES", "2048")
    s = load_settings()
    assert s.llm_enabled and s.llm_base_url == "http://llm.local/v1"
    assert s.notify_file == Path("/tmp/x.jsonl") and s.max_body_bytes == 2048
    assert "topsecret" not in repr(s) and "topsecret" not in str(s.model_dump())
    assert set(s.secret_values()) == {
        "https://hooks.slack.test/services/T/B/topsecret",
        "sk-topsecret-key",
    }


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("LLM_TIMEOUT_SECONDS", "soon", "'soon'"),
        ("MAX_BODY_BYTES", "-5", "'-5'"),
        ("PROMETHEUS_URL", "prom:9090", "'prom:9090'"),
        ("LLM_BASE_URL", "ftp://llm", "'ftp://llm'"),
        ("DEADMAN_TIMEOUT_SECONDS", "-1", "'-1'"),
        ("DEADMAN_ARM_AT_START", "maybe", "'maybe'"),
        ("DEADMAN_ROUTE", "no/slash", "'no/slash'"),
        ("NOTIFY_MAX_AGE_SECONDS", "0", "'0'"),
        ("RECEIVER_BASIC_AUTH_USERNAME", "a:b", "'a:b'"),
    ],
)
def test_bad_value_names_variable_and_value(
    clean_env: pytest.MonkeyPatch, name: str, value: str, shown: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert f"{name}={shown}" in str(info.value)


def test_bad_secret_is_not_echoed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DISCORD_WEBHOOK_URL", "not-a-url-but-secret-123")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "DISCORD_WEBHOOK_URL=<redacted>" in str(info.value)
    assert "secret-123" not in str(info.value)


def test_inbound_auth_settings(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("RECEIVER_BEARER_TOKEN", " tok-SECRET-1 ")
    s = load_settings()
    assert s.inbound_auth is not None and s.inbound_auth.scheme == "bearer"
    assert s.inbound_auth.token is not None
    assert s.inbound_auth.token.get_secret_value() == "tok-SECRET-1"
    assert "tok-SECRET-1" in s.secret_values() and "tok-SECRET-1" not in repr(s)

    clean_env.delenv("RECEIVER_BEARER_TOKEN")
    (tmp_path / "pw").write_text("pw-SECRET\n")
    clean_env.setenv("RECEIVER_BASIC_AUTH_USERNAME", "am")
    clean_env.setenv("RECEIVER_BASIC_AUTH_PASSWORD_FILE", str(tmp_path / "pw"))
    s = load_settings()
    assert s.inbound_auth is not None and s.inbound_auth.scheme == "basic"
    assert s.inbound_auth.username == "am"
    assert "pw-SECRET" in s.secret_values() and "pw-SECRET" not in repr(s)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RECEIVER_BEARER_TOKEN": "a", "RECEIVER_BEARER_TOKEN_FILE": "/x"},
            "set only one of RECEIVER_BEARER_TOKEN and RECEIVER_BEARER_TOKEN_FILE",
        ),
        (
            {"RECEIVER_BEARER_TOKEN_FILE": "/nonexistent/token"},
            "RECEIVER_BEARER_TOKEN_FILE='/nonexistent/token': cannot read the file",
        ),
        (
            {"RECEIVER_BASIC_AUTH_USERNAME": "am"},
            "RECEIVER_BASIC_AUTH_PASSWORD[_FILE] is required",
        ),
        (
            {
                "RECEIVER_BEARER_TOKEN": "t",
                "RECEIVER_BASIC_AUTH_USERNAME": "am",
                "RECEIVER_BASIC_AUTH_PASSWORD": "p",
            },
            "mutually exclusive",
        ),
    ],
)
def test_bad_auth_settings(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert message in str(info.value)


def test_bad_credential_is_not_echoed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RECEIVER_BASIC_AUTH_USERNAME", "am")
    clean_env.setenv("RECEIVER_BASIC_AUTH_PASSWORD", "bad\x01SECRETpw")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "RECEIVER_BASIC_AUTH_PASSWORD=<redacted>" in str(info.value)
    assert "SECRETpw" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9000", ("::1", 9000)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", ":8080", "host:port", "host:70000", "host:"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


def test_main_bad_arguments_and_settings(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--listen", "nope"]) == 2
    clean_env.setenv("LLM_TIMEOUT_SECONDS", "abc")
    assert main(["--listen", "127.0.0.1:0"]) == 2
    assert "LLM_TIMEOUT_SECONDS='abc'" in capsys.readouterr().err


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_exits_zero_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(
        PYTHONPATH=str(REPO),
        RECEIVER_DB_PATH=str(tmp_path / "r.db"),
        NOTIFY_FILE=str(tmp_path / "n.jsonl"),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, receiver.cli as c; sys.exit(c.main())",
            "--listen",
            "127.0.0.1:0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("alert-receiver listening on http://127.0.0.1:"), line
        base = line.rsplit(" ", 1)[1]
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "ok"}
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "ok"}
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
