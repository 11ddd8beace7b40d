"""The ``api_keys:`` list of an exchange and the secrets each entry reads.

Shape (one entry per key; secrets only from the environment or files, never inline)::

    api_keys:
      - name: monitor                 # the ``key`` label; never the key itself
        key_env: BINANCE_API_KEY      # or key_file: /run/secrets/binance_api_key
        secret_file: /run/secrets/binance_api_secret   # or secret_env
        passphrase_env: OKX_PASSPHRASE                  # OKX and Coinbase Exchange only
        private_key_file: /run/secrets/cdp_key.pem      # Coinbase Advanced Trade only
        interval: 60s                 # one signed call per interval (default 60s)
        timeout: 10s                  # default min(10s, interval)
        recv_window: 5s               # Binance/Bybit receive window (default: the exchange's)
        base_url: https://api.coinbase.com              # optional: default the exchange's

Files are read whole with one trailing newline removed (Docker secrets); a relative path is
taken relative to the directory of the config file, as Prometheus does. A Coinbase CDP key file
may be the PEM private key, or the JSON the CDP portal downloads (``{"name": ..., "privateKey":
...}``), whose ``name`` then serves as the key when neither ``key_env`` nor ``key_file`` is given.
Every error names the field and the variable or file, never a secret's value.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.durations import parse_duration
from exporter.keys.model import Credentials

_LABEL_VALUE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SECRET_BYTES = 16 * 1024
"""Largest secret file read (a PEM key is under 300 bytes)."""

DEFAULT_INTERVAL_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 10.0


def _duration(value: Any) -> float:
    return parse_duration(value)


Seconds = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


class ApiKeyConfig(BaseModel):
    """One monitored API key of an exchange (see the module docstring).

    Attributes:
        name: the ``key`` label value (``[a-z][a-z0-9_-]*``, ≤ 32 chars).
        key_env / key_file: where the API key is (one of them, or a CDP JSON key file).
        secret_env / secret_file: where the secret is.
        passphrase_env / passphrase_file: where the passphrase is (OKX, Coinbase Exchange).
        private_key_file: Coinbase Advanced Trade: the CDP key's PEM (or JSON) file.
        interval: seconds between checks (≥ 10).
        timeout: seconds allowed per check (≤ interval); None: min(10 s, interval).
        recv_window: receive window in seconds (Binance, Bybit), None for the exchange's
            default.
        base_url: where the key-info call goes; None: the exchange's ``base_url``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    key_env: str | None = None
    key_file: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    passphrase_env: str | None = None
    passphrase_file: str | None = None
    private_key_file: str | None = None
    interval: Seconds = DEFAULT_INTERVAL_SECONDS
    timeout: Seconds | None = None
    recv_window: Seconds | None = None
    base_url: str | None = None
    _credentials: Credentials = PrivateAttr()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _LABEL_VALUE.match(value):
            raise ValueError("must match [a-z][a-z0-9_-]* (≤ 32 chars): it is a label value")
        return value

    @field_validator("key_env", "secret_env", "passphrase_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float) -> float:
        if value < 10:
            raise ValueError("must be at least 10s: a key does not change faster than that")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://")) or len(value) < 10):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> ApiKeyConfig:
        for name in ("key", "secret", "passphrase"):
            if getattr(self, f"{name}_env") and getattr(self, f"{name}_file"):
                raise ValueError(f"{name}_env and {name}_file: give one of them, not both")
        if self.timeout is not None and self.timeout > self.interval:
            raise ValueError(
                f"timeout {self.timeout:g}s must not exceed interval {self.interval:g}s"
            )
        context = info.context if isinstance(info.context, dict) else {}
        base_dir = context.get("base_dir")
        self._credentials = load_credentials(
            self, os.environ, Path(base_dir) if base_dir is not None else None
        )
        return self

    @property
    def credentials(self) -> Credentials:
        """The key's secrets (read at load)."""
        return self._credentials

    def effective_timeout(self) -> float:
        """Seconds allowed per check."""
        if self.timeout is not None:
            return self.timeout
        return min(DEFAULT_TIMEOUT_SECONDS, self.interval)

    def recv_window_ms(self) -> int | None:
        """The configured receive window in whole milliseconds, or None."""
        return None if self.recv_window is None else round(self.recv_window * 1000)


def load_credentials(
    config: ApiKeyConfig, environ: Mapping[str, str], base_dir: Path | None = None
) -> Credentials:
    """Read a key's secrets from the environment and files named by ``config``; relative file
    paths are taken relative to ``base_dir`` (the config file's directory) when given.

    Raises:
        ValueError: a variable is unset or empty, a file is unreadable, empty or too large,
            or the key is missing; the message names the field and the variable or file,
            never a value.
    """
    private_key = None
    cdp_name = None
    if config.private_key_file is not None:
        text = read_secret_file("private_key_file", config.private_key_file, base_dir)
        private_key, cdp_name = _cdp_key(text)
    key = _secret(config, "key", environ, base_dir)
    if key is None and cdp_name is not None:
        key = SecretStr(cdp_name)
    if key is None:
        raise ValueError("key_env or key_file: required (where the API key is)")
    return Credentials(
        key=key,
        secret=_secret(config, "secret", environ, base_dir),
        passphrase=_secret(config, "passphrase", environ, base_dir),
        private_key=None if private_key is None else SecretStr(private_key),
    )


def _secret(
    config: ApiKeyConfig, name: str, environ: Mapping[str, str], base_dir: Path | None
) -> SecretStr | None:
    env = getattr(config, f"{name}_env")
    if env is not None:
        value = environ.get(env)
        if not value:
            raise ValueError(f"{name}_env: environment variable {env} is not set or empty")
        return SecretStr(value.strip())
    path = getattr(config, f"{name}_file")
    if path is not None:
        return SecretStr(read_secret_file(f"{name}_file", path, base_dir).strip())
    return None


def read_secret_file(field: str, path: str, base_dir: Path | None) -> str:
    """Read a secret file whole, one trailing newline removed; a relative ``path`` is taken
    relative to ``base_dir`` (the config file's directory) when given.

    Raises:
        ValueError: the file is unreadable, larger than :data:`MAX_SECRET_BYTES`, not UTF-8
            or empty; the message names ``field`` and ``path``, never the content.
    """
    location = Path(path)
    if base_dir is not None and not location.is_absolute():
        location = base_dir / location
    try:
        data = location.read_bytes()
    except OSError as exc:
        raise ValueError(f"{field}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"{field}: {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{field}: {path} is not UTF-8 text") from None
    if text.endswith("\n"):
        text = text[:-1]
    if not text.strip():
        raise ValueError(f"{field}: {path} is empty")
    return text


def _cdp_key(text: str) -> tuple[str, str | None]:
    """``(PEM private key, key name or None)`` from a PEM file or a CDP JSON key file."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            raise ValueError("private_key_file: neither a PEM key nor valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("privateKey"), str):
            raise ValueError("private_key_file: JSON without a privateKey string")
        name = data.get("name")
        return data["privateKey"].replace("\\n", "\n"), name if isinstance(name, str) else None
    return stripped + "\n", None
