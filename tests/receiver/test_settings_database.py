"""The receiver's database settings: PostgreSQL URL from the environment or a file (a secret),
the SQLite default, instance name, retention and lease bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.settings import Settings, SettingsError, load_settings
from receiver.store import SQLiteStore
from receiver.store.factory import open_store

URL = "postgresql://watch:s3cr%40t-pw@db.internal:5432/receiver"


def test_sqlite_is_the_default(tmp_path: Path) -> None:
    settings = load_settings(receiver_db_path=tmp_path / "r.db", receiver_database_url=None)
    assert settings.database_url is None
    store = open_store(settings)
    assert isinstance(store, SQLiteStore) and store.backend == "sqlite"
    assert store.describe() == f"sqlite:{tmp_path / 'r.db'}"


def test_the_url_selects_postgresql_and_stays_secret(tmp_path: Path) -> None:
    settings = load_settings(receiver_database_url=URL)
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == URL
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "s3cr" not in shown
    assert {URL, "s3cr@t-pw", "s3cr%40t-pw"} <= set(settings.secret_values())
    store = open_store(settings)
    assert store.backend == "postgresql"
    assert store.describe() == "postgresql://db.internal:5432/receiver"
    store.close()


def test_the_url_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text(URL + "\n")
    settings = load_settings(receiver_database_url_file=secret)
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == URL
    with pytest.raises(SettingsError, match="only one of RECEIVER_DATABASE_URL"):
        load_settings(receiver_database_url=URL, receiver_database_url_file=secret)


def test_a_url_of_another_engine_is_refused_without_showing_it() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(receiver_database_url="mysql://root:hunter2@db/receiver")
    assert "must be a postgresql:// URL (got mysql://)" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_instance_defaults_to_host_and_pid_and_is_validated() -> None:
    assert "-" in load_settings().instance
    assert load_settings(receiver_instance="receiver-a").instance == "receiver-a"
    with pytest.raises(SettingsError, match="RECEIVER_INSTANCE"):
        load_settings(receiver_instance="bad name")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("receiver_retention_days", 0),
        ("receiver_lease_seconds", 0.5),
        ("receiver_db_timeout_seconds", 0),
    ],
)
def test_bounds(field: str, value: float) -> None:
    with pytest.raises(SettingsError, match=field.upper()):
        load_settings(**{field: value})


def test_defaults() -> None:
    settings = Settings()
    assert settings.receiver_retention_days == 30
    assert settings.receiver_lease_seconds == 15
    assert settings.receiver_db_timeout_seconds == 3
