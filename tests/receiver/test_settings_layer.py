"""The receiver's one settings layer: each setting declared once, shared helpers in one place."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from receiver.config_helpers import (
    SECRET_FILE_MAX,
    SecretFileError,
    base_url,
    format_error,
    is_http_url,
    pick_secret,
    read_secret_file,
)
from receiver.diagnosis.config import DiagnosisSettings
from receiver.diagnosis.engine import DiagnosisEngine
from receiver.settings import SECRET_FIELDS, Settings, SettingsError, load_settings


def test_each_setting_is_declared_once() -> None:
    own = set(Settings.__annotations__)
    assert not own & set(DiagnosisSettings.model_fields)
    assert set(DiagnosisSettings.model_fields) <= set(Settings.model_fields)
    assert issubclass(Settings, DiagnosisSettings)
    assert DiagnosisSettings.SECRET_FIELDS <= SECRET_FIELDS


def test_the_engine_uses_the_receivers_settings_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_CONCURRENCY", "5")
    settings = Settings(llm_base_url="http://llm.test/v1/", llm_model="m")
    engine = DiagnosisEngine(settings)
    assert engine.settings is settings
    assert settings.llm_max_concurrency == 5 and settings.llm_base_url == "http://llm.test/v1"


def test_diagnosis_errors_come_from_load_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_CONCURRENCY", "x")
    with pytest.raises(SettingsError, match="LLM_MAX_CONCURRENCY='x'"):
        load_settings()


def test_llm_key_file_is_read_once_at_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text(" sk-file-SECRET \n")
    monkeypatch.setenv("LLM_API_KEY_FILE", str(key))
    settings = load_settings()
    assert settings.llm_api_key is not None
    assert settings.llm_api_key.get_secret_value() == "sk-file-SECRET"
    assert "sk-file-SECRET" in settings.secret_values()
    assert "sk-file-SECRET" not in repr(settings)


def test_secret_file_reader(tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    ok.write_text("  value\n")
    assert read_secret_file(ok) == "value"
    cases = {
        "empty": b" \n",
        "too_large": b"x" * (SECRET_FILE_MAX + 1),
        "not_utf8": b"\xff\xfe",
    }
    for kind, data in cases.items():
        path = tmp_path / kind
        path.write_bytes(data)
        with pytest.raises(SecretFileError) as info:
            read_secret_file(path)
        assert info.value.kind == kind
    with pytest.raises(SecretFileError) as info:
        read_secret_file(tmp_path / "missing")
    assert info.value.kind == "unreadable" and "No such file" in info.value.reason


def test_pick_secret_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="set only one of TOKEN and TOKEN_FILE, not both"):
        pick_secret("TOKEN", SecretStr("a"), tmp_path)
    with pytest.raises(ValueError, match=r"^TOKEN_FILE='/nonexistent': cannot read the file"):
        pick_secret("TOKEN", None, Path("/nonexistent"))
    bad = tmp_path / "bad"
    bad.write_text("a\x01b")
    with pytest.raises(ValueError, match="must not contain control characters"):
        pick_secret("TOKEN", None, bad)
    assert pick_secret("TOKEN", SecretStr("s"), None) == "s"
    assert pick_secret("TOKEN", None, None) is None


def test_urls_and_error_format() -> None:
    assert is_http_url("HTTPS://host/x") and not is_http_url("ftp://host")
    assert not is_http_url("http://[::1")  # unparseable: no exception
    assert base_url(" http://host/v1/ ") == "http://host/v1"
    assert base_url(None) is None
    with pytest.raises(ValueError, match="absolute http"):
        base_url("host")
    secret = {"loc": ("api_key",), "msg": "bad", "input": "sk-1"}
    assert format_error(secret, {"api_key"}) == "API_KEY=<redacted>: bad"
    nested = {"loc": ("prices", "m", "x"), "msg": "bad", "input": {"a": 1}}
    assert format_error(nested, ()) == "PRICES[m.x]=…: bad"
    assert format_error({"loc": (), "msg": "Value error, both"}, ()) == "both"
