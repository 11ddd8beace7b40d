"""Receiver configuration, read from environment variables with pydantic-settings.

Every setting is declared once: the LLM, Prometheus and context settings in
:class:`receiver.diagnosis.config.DiagnosisSettings`, which :class:`Settings` extends with the
receiver's own. The environment is read once, at start (:func:`load_settings`), and the typed
object is passed on. Every setting is an upper-case environment variable of the same name as the
field (for example ``llm_timeout_seconds`` ← ``LLM_TIMEOUT_SECONDS``). Webhook URLs, the LLM API
key and the inbound credentials are :class:`pydantic.SecretStr`: they never appear in ``repr``,
logs, messages or prompts. Credentials given as ``*_FILE`` paths are read once, when the settings
are loaded (like Alertmanager's ``credentials_file``, surrounding whitespace is stripped; see
:mod:`receiver.config_helpers`).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from receiver.config_helpers import (
    SettingsError,
    check_http_url,
    has_control_chars,
    pick_secret,
)
from receiver.diagnosis.config import DiagnosisSettings

__all__ = [
    "ROUTE_PATTERN",
    "SECRET_FIELDS",
    "InboundAuth",
    "Settings",
    "SettingsError",
    "load_settings",
]

#: Route names accepted in ``POST /alerts/{route}`` (and for ``DEADMAN_ROUTE``).
ROUTE_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_ROUTE = re.compile(ROUTE_PATTERN)
_INSTANCE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


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


class Settings(DiagnosisSettings):
    """All receiver settings: the diagnosis settings (inherited, see
    :mod:`receiver.diagnosis.config`) plus the receiver's own.

    Loaded once at start (:func:`load_settings`) and passed to the app, the worker, the routing
    and the diagnosis engine.

    Attributes:
        slack_webhook_url: ``SLACK_WEBHOOK_URL``, Slack incoming-webhook URL (secret); Slack
            notifier enabled when set.
        discord_webhook_url: ``DISCORD_WEBHOOK_URL``, Discord webhook URL (secret).
        notify_file: ``NOTIFY_FILE``, path of the JSONL notification log; enabled when set.
        receiver_db_path: ``RECEIVER_DB_PATH``, SQLite database file (default ``receiver.db``),
            used when no PostgreSQL URL is set.
        receiver_database_url: ``RECEIVER_DATABASE_URL`` (secret), ``postgresql://user:password@
            host:port/db``: store in PostgreSQL instead of SQLite (several receivers may share
            it, see :mod:`receiver.store`).
        receiver_database_url_file: ``RECEIVER_DATABASE_URL_FILE``, the same read from a file.
        receiver_db_timeout_seconds: ``RECEIVER_DB_TIMEOUT_SECONDS``, longest wait for a
            database connection (default 3): past it intake answers 503 and Alertmanager
            retries, well within its webhook timeout.
        receiver_retention_days: ``RECEIVER_RETENTION_DAYS``, notifications finished (delivered
            or given up) longer ago than this are deleted with their deliveries and webhooks
            (default 30; fractions allowed).
        receiver_lease_seconds: ``RECEIVER_LEASE_SECONDS``, how long a notification claimed by
            this receiver stays its own without renewal (default 15): after a crash another
            receiver takes the work over once the lease has expired.
        receiver_instance: ``RECEIVER_INSTANCE``, this receiver's name as lease owner and
            dead man's switch leader (default ``<hostname>-<pid>``); unique per process.
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

    #: Fields whose values are secrets: error messages show ``<redacted>`` instead of the value.
    SECRET_FIELDS: ClassVar[frozenset[str]] = DiagnosisSettings.SECRET_FIELDS | {
        "slack_webhook_url",
        "discord_webhook_url",
        "receiver_bearer_token",
        "receiver_basic_auth_password",
        "receiver_database_url",
    }

    slack_webhook_url: SecretStr | None = None
    discord_webhook_url: SecretStr | None = None
    notify_file: Path | None = None
    receiver_db_path: Path = Path("receiver.db")
    receiver_database_url: SecretStr | None = None
    receiver_database_url_file: Path | None = None
    receiver_db_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    receiver_retention_days: float = Field(default=30.0, gt=0, le=3650)
    receiver_lease_seconds: float = Field(default=15.0, ge=1, le=600)
    receiver_instance: str | None = None
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
    _database_url: SecretStr | None = PrivateAttr(default=None)

    @field_validator("slack_webhook_url", "discord_webhook_url")
    @classmethod
    def _secret_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        return SecretStr(check_http_url(value.get_secret_value().strip()))

    @field_validator("receiver_bearer_token", "receiver_basic_auth_password")
    @classmethod
    def _credential(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value().strip()
        if has_control_chars(text):
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

    @field_validator("receiver_instance")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _INSTANCE.match(value):
            raise ValueError("must be 1-128 characters of A-Z a-z 0-9 _ . : -")
        return value

    @model_validator(mode="after")
    def _resolve_database(self) -> Settings:
        url = _pick(self, "receiver_database_url")
        if url is not None:
            url = url.strip()
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if scheme not in ("postgresql", "postgres"):
                # The value is a secret (it holds the password): only its scheme is named.
                shown = f"{scheme}://" if scheme else "no scheme"
                raise ValueError(
                    "RECEIVER_DATABASE_URL[_FILE]: must be a postgresql:// URL (got "
                    f"{shown}); unset it to use SQLite at RECEIVER_DB_PATH"
                )
            self._database_url = SecretStr(url)
        return self

    @model_validator(mode="after")
    def _resolve_auth(self) -> Settings:
        token = _pick(self, "receiver_bearer_token")
        username = _pick(self, "receiver_basic_auth_username")
        password = _pick(self, "receiver_basic_auth_password")
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
    def database_url(self) -> SecretStr | None:
        """The PostgreSQL URL (from ``RECEIVER_DATABASE_URL`` or its file), ``None`` for
        SQLite."""
        return self._database_url

    @property
    def instance(self) -> str:
        """This receiver's name: ``RECEIVER_INSTANCE``, else ``<hostname>-<pid>``."""
        return self.receiver_instance or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def inbound_auth(self) -> InboundAuth | None:
        """The credentials webhook requests must carry, or ``None`` (no inbound auth)."""
        return self._inbound_auth

    def secret_values(self) -> list[str]:
        """Return every configured secret value (for log redaction); never log the result."""
        out = super().secret_values()
        for name in sorted(self.SECRET_FIELDS - DiagnosisSettings.SECRET_FIELDS):
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
        auth = self._inbound_auth
        if self._database_url is not None:
            url = self._database_url.get_secret_value()
            password = urlsplit(url).password
            for value in (url, password and unquote(password), password):
                if value and value not in out:
                    out.append(value)
        for secret in (auth.token, auth.password) if auth is not None else ():
            if secret is not None and secret.get_secret_value() not in out:
                out.append(secret.get_secret_value())
        return out


def _check_username(value: str) -> str:
    if ":" in value:
        raise ValueError("must not contain ':' (RFC 7617)")
    if has_control_chars(value):
        raise ValueError("must not contain control characters")
    return value


def _pick(settings: Settings, field: str) -> str | None:
    """The value of ``field`` or of ``field_file`` (read now); both set is an error."""
    return pick_secret(field.upper(), getattr(settings, field), getattr(settings, f"{field}_file"))


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
    settings: Settings = Settings.load(SettingsError, **overrides)
    return settings


#: Every secret field (kept for importers; the class attribute is the source).
SECRET_FIELDS = Settings.SECRET_FIELDS
