"""Receiver configuration, read from environment variables with pydantic-settings.

Every setting is an upper-case environment variable of the same name as the field (for example
``llm_timeout_seconds`` ← ``LLM_TIMEOUT_SECONDS``). Webhook URLs, the LLM API key and the inbound
credentials are :class:`pydantic.SecretStr`: they never appear in ``repr``, logs, messages or
prompts. Credentials given as ``*_FILE`` paths are read once, when the settings are loaded (like
Alertmanager's ``credentials_file``, surrounding whitespace is stripped).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Fields whose values are secrets: error messages show ``<redacted>`` instead of the value.
SECRET_FIELDS = frozenset(
    {
        "slack_webhook_url",
        "discord_webhook_url",
        "llm_api_key",
        "receiver_bearer_token",
        "receiver_basic_auth_password",
    }
)

#: Route names accepted in ``POST /alerts/{route}`` (and for ``DEADMAN_ROUTE``).
ROUTE_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_ROUTE = re.compile(ROUTE_PATTERN)


class SettingsError(ValueError):
    """A configuration value is invalid.

    The message names each bad variable and its value (``<redacted>`` for secrets).
    """


@dataclass(frozen=True)
class InboundAuth:
    """Credentials Alertmanager must present (its webhook ``http_config``).

    Attributes:
        scheme: ``bearer`` (``authorization`` with type Bearer) or ``basic`` (``basic_auth``).
        token: the bearer token (``scheme == "bearer"``), else ``None``.
        username: the basic-auth user name (``scheme == "basic"``), else ``None``.
        password: the basic-auth password (``scheme == "basic"``), else ``None``.
    """

    scheme: Literal["bearer", "basic"]
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None


def read_secret_file(path: Path) -> str:
    """Read a secret from a ``*_FILE`` path, surrounding whitespace stripped.

    Raises:
        ValueError: the file cannot be read or is empty (the message never shows the content).
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"cannot read the file ({reason})") from None
    if not text:
        raise ValueError("the file is empty")
    return text


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
        notify_max_attempts: ``NOTIFY_MAX_ATTEMPTS``, attempts per notifier after which a
            delivery is dropped; 0 (default) means no limit other than ``NOTIFY_MAX_AGE_SECONDS``.
        notify_retry_base_seconds: ``NOTIFY_RETRY_BASE_SECONDS``, first backoff delay, doubled
            on each retry (default 1.0).
        notify_retry_max_seconds: ``NOTIFY_RETRY_MAX_SECONDS``, longest backoff between two
            attempts (default 300).
        notify_max_retry_after_seconds: ``NOTIFY_MAX_RETRY_AFTER_SECONDS``, longest wait honoured
            from a 429 ``Retry-After`` (longer ones are capped to it; default 60).
        notify_max_age_seconds: ``NOTIFY_MAX_AGE_SECONDS``, a delivery still failing this long
            after the alert was stored is dropped, with a log line and a metric (default 86400).
        slack_min_interval_seconds: ``SLACK_MIN_INTERVAL_SECONDS``, minimum spacing between two
            messages to one Slack notifier; unset (default) keeps the notifier's own pace
            (about 1 message/s, Slack's limit). 0 disables spacing (tests, private relays).
        discord_min_interval_seconds: ``DISCORD_MIN_INTERVAL_SECONDS``, the same for Discord.
        receiver_routing_file: ``RECEIVER_ROUTING_FILE``, the routing YAML (notifier instances
            per route, see :mod:`receiver.routing`); unset: every notifier from
            ``SLACK_WEBHOOK_URL``/``DISCORD_WEBHOOK_URL``/``NOTIFY_FILE`` for every route.
        receiver_bearer_token: ``RECEIVER_BEARER_TOKEN`` (secret): when set, webhook requests
            must carry ``Authorization: Bearer <token>`` (Alertmanager ``http_config:
            authorization: {credentials: ...}``).
        receiver_bearer_token_file: ``RECEIVER_BEARER_TOKEN_FILE``, the same read from a file.
        receiver_basic_auth_username: ``RECEIVER_BASIC_AUTH_USERNAME``: when set, webhook
            requests must carry HTTP basic auth (Alertmanager ``http_config: basic_auth``).
        receiver_basic_auth_username_file: ``RECEIVER_BASIC_AUTH_USERNAME_FILE``, from a file.
        receiver_basic_auth_password: ``RECEIVER_BASIC_AUTH_PASSWORD`` (secret).
        receiver_basic_auth_password_file: ``RECEIVER_BASIC_AUTH_PASSWORD_FILE``, from a file.
        deadman_timeout_seconds: ``DEADMAN_TIMEOUT_SECONDS``, silence after which missing
            Watchdog heartbeats raise ``AlertingPipelineDown`` (default 300; 0 disables).
        deadman_arm_at_start: ``DEADMAN_ARM_AT_START``, also alarm when no heartbeat ever arrived
            within the timeout of the receiver's start (default false: armed by the first one).
        deadman_route: ``DEADMAN_ROUTE``, the route whose notifiers get the dead man's switch
            notifications (default ``critical``).
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
    notify_max_attempts: int = Field(default=0, ge=0, le=10000)
    notify_retry_base_seconds: float = Field(default=1.0, ge=0, le=300)
    notify_retry_max_seconds: float = Field(default=300.0, ge=0, le=86400)
    notify_max_retry_after_seconds: float = Field(default=60.0, ge=0, le=3600)
    notify_max_age_seconds: float = Field(default=86400.0, gt=0, le=30 * 86400)
    slack_min_interval_seconds: float | None = Field(default=None, ge=0, le=60)
    discord_min_interval_seconds: float | None = Field(default=None, ge=0, le=60)
    receiver_routing_file: Path | None = None
    receiver_bearer_token: SecretStr | None = None
    receiver_bearer_token_file: Path | None = None
    receiver_basic_auth_username: str | None = None
    receiver_basic_auth_username_file: Path | None = None
    receiver_basic_auth_password: SecretStr | None = None
    receiver_basic_auth_password_file: Path | None = None
    deadman_timeout_seconds: float = Field(default=300.0, ge=0, le=7 * 86400)
    deadman_arm_at_start: bool = False
    deadman_route: str = "critical"

    _inbound_auth: InboundAuth | None = PrivateAttr(default=None)

    @field_validator(
        "slack_webhook_url",
        "discord_webhook_url",
        "notify_file",
        "llm_base_url",
        "llm_api_key",
        "llm_model",
        "prometheus_url",
        "slack_min_interval_seconds",
        "discord_min_interval_seconds",
        "receiver_routing_file",
        "receiver_bearer_token",
        "receiver_bearer_token_file",
        "receiver_basic_auth_username",
        "receiver_basic_auth_username_file",
        "receiver_basic_auth_password",
        "receiver_basic_auth_password_file",
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

    @field_validator("receiver_bearer_token", "receiver_basic_auth_password")
    @classmethod
    def _credential(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value().strip()
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            raise ValueError("must not contain control characters")
        return SecretStr(text)

    @field_validator("receiver_basic_auth_username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_username(value.strip())

    @field_validator("deadman_route")
    @classmethod
    def _route(cls, value: str) -> str:
        if not _ROUTE.match(value):
            raise ValueError("must be 1-64 characters of A-Z a-z 0-9 _ . -")
        return value

    @model_validator(mode="after")
    def _resolve_auth(self) -> Settings:
        token = _pick(self, "receiver_bearer_token", secret=True)
        username = _pick(self, "receiver_basic_auth_username", secret=False)
        password = _pick(self, "receiver_basic_auth_password", secret=True)
        if token is not None and (username is not None or password is not None):
            raise ValueError(
                "RECEIVER_BEARER_TOKEN[_FILE] and RECEIVER_BASIC_AUTH_* are mutually exclusive"
                " (as authorization and basic_auth are in Alertmanager's http_config)"
            )
        if (username is None) != (password is None):
            missing = "PASSWORD" if password is None else "USERNAME"
            raise ValueError(
                f"RECEIVER_BASIC_AUTH_{missing}[_FILE] is required with"
                f" RECEIVER_BASIC_AUTH_{'USERNAME' if missing == 'PASSWORD' else 'PASSWORD'}"
            )
        if token is not None:
            self._inbound_auth = InboundAuth("bearer", token=SecretStr(token))
        elif username is not None and password is not None:
            try:
                username = _check_username(username)
            except ValueError as exc:
                raise ValueError(f"RECEIVER_BASIC_AUTH_USERNAME_FILE: {exc}") from None
            self._inbound_auth = InboundAuth(
                "basic", username=username, password=SecretStr(password)
            )
        return self

    @property
    def inbound_auth(self) -> InboundAuth | None:
        """The credentials webhook requests must carry, or ``None`` (no inbound auth)."""
        return self._inbound_auth

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
        auth = self._inbound_auth
        for secret in (auth.token, auth.password) if auth is not None else ():
            if secret is not None and secret.get_secret_value() not in out:
                out.append(secret.get_secret_value())
        return out


def _check_username(value: str) -> str:
    if ":" in value:
        raise ValueError("must not contain ':' (RFC 7617)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return value


def _pick(settings: Settings, field: str, *, secret: bool) -> str | None:
    """The value of ``field`` or of ``field_file`` (read now); both set is an error."""
    env = field.upper()
    value = getattr(settings, field)
    path: Path | None = getattr(settings, f"{field}_file")
    if value is not None and path is not None:
        raise ValueError(f"set only one of {env} and {env}_FILE")
    if path is not None:
        try:
            text = read_secret_file(path)
        except ValueError as exc:
            raise ValueError(f"{env}_FILE={str(path)!r}: {exc}") from None
        if secret and any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            raise ValueError(f"{env}_FILE={str(path)!r}: must not contain control characters")
        return text
    if value is None:
        return None
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _format_error(err: Mapping[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    if not err.get("loc"):  # a check across fields: its message names the variables
        return msg.removeprefix("Value error, ")
    field = str(err["loc"][0])
    env_name = field.upper()
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
