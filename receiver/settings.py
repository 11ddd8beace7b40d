"""Receiver configuration, read from environment variables with pydantic-settings.

Every setting is an upper-case environment variable of the same name as the field (for example
``llm_timeout_seconds`` ← ``LLM_TIMEOUT_SECONDS``). Webhook URLs and the LLM API key are
:class:`pydantic.SecretStr`: they never appear in ``repr``, logs, messages or prompts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Fields whose values are secrets: error messages show ``<redacted>`` instead of the value.
SECRET_FIELDS = frozenset({"slack_webhook_url", "discord_webhook_url", "llm_api_key"})


class SettingsError(ValueError):
    """A configuration value is invalid.

    The message names each bad variable and its value (``<redacted>`` for secrets).
    """


def _check_http_url(value: str) -> str:
    # The message never repeats the value: callers add it, except for secrets.
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


class Settings(BaseSettings):
    """All receiver settings.

    Attributes:
        slack_webhook_url: ``SLACK_WEBHOOK_URL``, Slack incoming-webhook URL (secret); Slack
            notifier enabled when set.
        discord_webhook_url: ``DISCORD_WEBHOOK_URL``, Discord webhook URL (secret).
        notify_file: ``NOTIFY_FILE``, path of the JSONL notification log; enabled when set.
        llm_base_url: ``LLM_BASE_URL``, OpenAI-compatible base URL such as ``http://host/v1``.
        llm_api_key: ``LLM_API_KEY``, sent as ``Authorization: Bearer`` (secret, optional).
        llm_model: ``LLM_MODEL``; the LLM is used only when this and ``LLM_BASE_URL`` are set.
        llm_timeout_seconds: ``LLM_TIMEOUT_SECONDS``, per-request timeout in seconds (default 20).
        prometheus_url: ``PROMETHEUS_URL``, base URL of Prometheus for a bounded evidence query.
        receiver_db_path: ``RECEIVER_DB_PATH``, SQLite database file (default ``receiver.db``).
        max_body_bytes: ``MAX_BODY_BYTES``, largest accepted webhook body (default 1 MiB).
        worker_concurrency: ``WORKER_CONCURRENCY``, notifications processed at once (default 4).
        notify_max_attempts: ``NOTIFY_MAX_ATTEMPTS``, tries per channel before giving up
            (default 4).
        notify_retry_base_seconds: ``NOTIFY_RETRY_BASE_SECONDS``, first backoff delay, doubled
            on each retry (default 1.0).
        notify_max_retry_after_seconds: ``NOTIFY_MAX_RETRY_AFTER_SECONDS``, longest wait honoured
            from a 429 ``Retry-After`` before it counts as a failed attempt (default 60).
    """

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    slack_webhook_url: SecretStr | None = None
    discord_webhook_url: SecretStr | None = None
    notify_file: Path | None = None
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    prometheus_url: str | None = None
    receiver_db_path: Path = Path("receiver.db")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    notify_max_attempts: int = Field(default=4, ge=1, le=20)
    notify_retry_base_seconds: float = Field(default=1.0, ge=0, le=300)
    notify_max_retry_after_seconds: float = Field(default=60.0, ge=0, le=3600)

    @field_validator(
        "slack_webhook_url",
        "discord_webhook_url",
        "notify_file",
        "llm_base_url",
        "llm_api_key",
        "llm_model",
        "prometheus_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("llm_base_url", "prometheus_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_http_url(value.strip()).rstrip("/")

    @field_validator("slack_webhook_url", "discord_webhook_url")
    @classmethod
    def _secret_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        _check_http_url(value.get_secret_value().strip())
        return SecretStr(value.get_secret_value().strip())

    @property
    def llm_enabled(self) -> bool:
        """True when both ``LLM_BASE_URL`` and ``LLM_MODEL`` are set."""
        return bool(self.llm_base_url and self.llm_model)

    def secret_values(self) -> list[str]:
        """Return every configured secret value (for log redaction); never log the result."""
        out: list[str] = []
        for name in SECRET_FIELDS:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
        return out


def _format_error(err: Mapping[str, Any]) -> str:
    field = str(err["loc"][0]) if err.get("loc") else "?"
    env_name = field.upper()
    msg = str(err.get("msg", "invalid value"))
    if field in SECRET_FIELDS:
        return f"{env_name}=<redacted>: {msg}"
    raw = err.get("input")
    return f"{env_name}={raw!r}: {msg}"


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings` from the process environment plus keyword overrides.

    Args:
        **overrides: field values that win over the environment (lower-case field names).

    Returns:
        The validated settings.

    Raises:
        SettingsError: a value is invalid; the message names each bad variable and its value
            (``<redacted>`` for secrets), e.g. ``LLM_TIMEOUT_SECONDS='abc': Input should be a
            valid number``.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("; ".join(_format_error(e) for e in exc.errors())) from None
