"""Helpers shared by the receiver's settings, the diagnosis settings and the routing file.

One place for what every configuration source needs: blank values, ``http(s)`` URL checks,
secret files (with a size cap), control characters, and error messages that name the variable
and its value (``<redacted>`` for secrets). Durations and timestamps shared with the exporter
live in :mod:`exchange_common`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Shown instead of a secret value in every message.
REDACTED = "<redacted>"
#: The largest secret file read (``*_FILE`` settings, ``*_file`` routing references).
SECRET_FILE_MAX = 64 * 1024
#: The problem with a value that is not an absolute ``http(s)://`` URL (callers add the value).
HTTP_URL_MESSAGE = "must be an absolute http:// or https:// URL"


class SettingsError(ValueError):
    """A configuration value is invalid.

    The message names each bad variable and its value (``<redacted>`` for secrets).
    """


def is_blank(value: Any) -> bool:
    """True for a string that is empty or only whitespace (an unset environment variable)."""
    return isinstance(value, str) and not value.strip()


def is_http_url(value: str) -> bool:
    """True when ``value`` is an absolute ``http://`` or ``https://`` URL with a host (any case
    of the scheme; ``False`` for what :func:`urllib.parse.urlsplit` cannot parse)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_http_url(value: str) -> str:
    """Return ``value`` if it is an absolute ``http(s)`` URL.

    Raises:
        ValueError: :data:`HTTP_URL_MESSAGE` (the message never repeats the value: callers add
            it, except for secrets).
    """
    if not is_http_url(value):
        raise ValueError(HTTP_URL_MESSAGE)
    return value


def base_url(value: str | None) -> str | None:
    """A base URL setting: surrounding whitespace and trailing ``/`` removed, checked with
    :func:`check_http_url`; ``None`` stays ``None``."""
    if value is None:
        return None
    return check_http_url(value.strip()).rstrip("/")


def has_control_chars(text: str) -> bool:
    """True when ``text`` holds an ASCII control character (C0 or DEL)."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


class SecretFileError(ValueError):
    """A secret file cannot be used.

    Attributes:
        kind: ``unreadable``, ``too_large``, ``not_utf8`` or ``empty``.
        reason: for ``unreadable``, the OS reason (e.g. ``No such file or directory``).
    """

    def __init__(
        self, kind: Literal["unreadable", "too_large", "not_utf8", "empty"], reason: str = ""
    ) -> None:
        super().__init__(_SECRET_FILE_PROBLEMS[kind].format(reason=reason, max=SECRET_FILE_MAX))
        self.kind = kind
        self.reason = reason


_SECRET_FILE_PROBLEMS = {
    "unreadable": "cannot be read ({reason})",
    "too_large": "is larger than {max} bytes",
    "not_utf8": "is not UTF-8 text",
    "empty": "is empty",
}


def read_secret_file(path: Path, *, max_bytes: int = SECRET_FILE_MAX) -> str:
    """Read a secret from a file, surrounding whitespace stripped (like Alertmanager's
    ``credentials_file``). The content is never put in a message.

    Raises:
        SecretFileError: the file cannot be read, is larger than ``max_bytes``, is not UTF-8 or
            holds only whitespace.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise SecretFileError("unreadable", exc.strerror or type(exc).__name__) from None
    if len(data) > max_bytes:
        raise SecretFileError("too_large")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError("not_utf8") from None
    if not text:
        raise SecretFileError("empty")
    return text


def read_setting_file(env: str, path: Path, *, no_control: bool = False) -> str:
    """Read the ``{env}_FILE`` setting's file (:func:`read_secret_file`).

    Raises:
        ValueError: ``{env}_FILE='/path': cannot read the file (reason)`` (or ``the file is
            empty``, ``… is larger than …``, ``must not contain control characters``).
    """
    shown = f"{env}_FILE={str(path)!r}"
    try:
        text = read_secret_file(path)
    except SecretFileError as exc:
        if exc.kind == "unreadable":
            raise ValueError(f"{shown}: cannot read the file ({exc.reason})") from None
        raise ValueError(f"{shown}: the file {exc}") from None
    if no_control and has_control_chars(text):
        raise ValueError(f"{shown}: must not contain control characters")
    return text


def pick_secret(env: str, value: str | SecretStr | None, path: Path | None) -> str | None:
    """The value of setting ``env`` given directly or as ``{env}_FILE`` (read now).

    Raises:
        ValueError: both are set, or the file cannot be used (see :func:`read_setting_file`).
    """
    if value is not None and path is not None:
        raise ValueError(f"set only one of {env} and {env}_FILE, not both")
    if path is not None:
        return read_setting_file(env, path, no_control=True)
    if value is None:
        return None
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def format_error(err: Mapping[str, Any], secret_fields: Iterable[str]) -> str:
    """One pydantic error as ``VARIABLE=value: message`` (``<redacted>`` for secrets).

    A nested location is shown in brackets (``LLM_PRICES[m.input_per_1k]=…``), a mapping or
    list value as ``…``; an error of a check across fields is its message alone (it names the
    variables itself).
    """
    loc = err.get("loc") or ()
    msg = str(err.get("msg", "invalid value"))
    if not loc:
        return msg.removeprefix("Value error, ")
    field = str(loc[0])
    if field in set(secret_fields):
        return f"{field.upper()}={REDACTED}: {msg}"
    where = ".".join(str(p) for p in loc[1:])
    raw = err.get("input")
    shown = repr(raw) if not isinstance(raw, dict | list) else "…"
    return f"{field.upper()}{'[' + where + ']' if where else ''}={shown}: {msg}"


class EnvSettings(BaseSettings):
    """Base of the settings classes: upper-case environment variables named like the fields,
    frozen, blank values meaning "unset" for optional fields, and typed error messages.

    Subclasses list their secret fields in :attr:`SECRET_FIELDS` (error messages redact them).
    """

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and field.default is None and is_blank(value):
            return None
        return value

    @classmethod
    def load(cls, error: type[SettingsError] = SettingsError, **overrides: Any) -> Any:
        """Build the settings from the environment plus ``overrides`` (lower-case field names).

        Raises:
            SettingsError: (or ``error``) one ``VARIABLE=value: message`` per problem, joined
                with ``; `` (secrets ``<redacted>``).
        """
        try:
            return cls(**overrides)
        except ValidationError as exc:
            text = "; ".join(format_error(e, cls.SECRET_FIELDS) for e in exc.errors())
            raise error(text) from None
        except ValueError as exc:  # e.g. a JSON variable that is not JSON (the env source)
            raise error(str(exc)) from None
