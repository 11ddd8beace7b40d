"""What every notifier type's configuration has in common.

A notifier module declares an options model (a :class:`NotifierOptions` subclass: everything
that is not a secret), the names of its secret fields and how to check a secret's value; the
routing file parser (:mod:`receiver.routing`) validates a ``notifiers:`` entry against them and
hands the notifier class a :class:`NotifierConfig` to build itself from. :class:`ParseContext`
collects the problems of one routing file and reads the secrets it refers to (``*_env``,
``*_file``).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

from receiver.config_helpers import (
    REDACTED,
    SecretFileError,
    check_http_url,
    is_http_url,
    read_secret_file,
)


class NotifierOptions(BaseModel):
    """The non-secret settings of one notifier instance (unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


OptionsT = TypeVar("OptionsT", bound=NotifierOptions)


@dataclass(frozen=True)
class NotifierConfig:
    """One validated notifier instance, secrets resolved (shown only as ``SecretStr``).

    Attributes:
        name: instance name.
        type: the notifier type (a key of :data:`receiver.routing.NOTIFIERS`).
        options: the non-secret settings.
        secrets: secret field → value (e.g. ``{"webhook_url": SecretStr(…)}``).
        secret_headers: extra named secrets a type parses itself (webhook ``headers_env`` /
            ``headers_file``).
    """

    name: str
    type: str
    options: NotifierOptions
    secrets: Mapping[str, SecretStr] = field(default_factory=dict)
    secret_headers: Mapping[str, SecretStr] = field(default_factory=dict)

    # ``builtins.type``: the ``type`` field above shadows the builtin in this class body.
    def typed(self, model: builtins.type[OptionsT]) -> OptionsT:
        """The options as the type's own model (``model``), for ``from_config``."""
        if not isinstance(self.options, model):
            raise TypeError(f"{self.name}: options are not {model.__name__}")
        return self.options


#: Environment variable names a routing file may refer to.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class ParseContext:
    """Parsing state of one routing file: the problems found so far (one line each, naming the
    file, the field path and the value, ``<redacted>`` for secrets) and where secrets are read
    from. Notifier types use it in :meth:`~receiver.notifiers.base.Notifier.parse_extra`.

    Args:
        source: the file name used in messages.
        environ: where ``*_env`` variables are looked up.
        base_dir: base of relative ``*_file`` paths (the routing file's directory).
    """

    def __init__(self, source: str, environ: Mapping[str, str], base_dir: Path) -> None:
        self.source = source
        self.environ = environ
        self.base_dir = base_dir
        self.lines: list[str] = []

    def add(self, where: str, message: str, value: Any = None, *, show: bool = True) -> None:
        """Record one problem at field path ``where`` (``value`` shown unless ``show`` is false
        or it is ``None``)."""
        line = f"{self.source}: {where}: {message}"
        if show and value is not None and not isinstance(value, dict | list):
            line += f" (value: {value!r})"
        elif not show:
            line += f" (value: {REDACTED})"
        self.lines.append(line)

    def resolve(self, how: str, ref: Any, where: str) -> SecretStr | None:
        """Read a secret from environment variable ``ref`` (``how == "env"``) or file ``ref``
        (relative to ``base_dir``); ``None`` (with a problem recorded) when it cannot be read."""
        if how == "env":
            if not isinstance(ref, str) or not ENV_NAME.match(ref):
                self.add(where, "must be an environment variable name such as HOOK_URL", ref)
                return None
            value = self.environ.get(ref)
            if value is None:
                self.add(where, f"environment variable {ref} is not set", ref)
                return None
            if not value.strip():
                self.add(where, f"environment variable {ref} is empty", ref)
                return None
            return SecretStr(value.strip())
        if not isinstance(ref, str) or not ref.strip():
            self.add(where, "must be a file path", ref)
            return None
        file_path = Path(ref)
        if not file_path.is_absolute():
            file_path = self.base_dir / file_path
        try:
            return SecretStr(read_secret_file(file_path))
        except SecretFileError as exc:
            if exc.kind == "unreadable":
                self.add(where, f"cannot read {file_path}: {exc.reason}", ref)
            else:
                self.add(where, f"{file_path} {exc}", ref)
            return None

    def secret(self, raw: Mapping[str, Any], key: str, path: str) -> SecretStr | None:
        """Read secret ``key`` of one notifier from ``key_env`` or ``key_file``."""
        if key in raw:
            self.add(
                f"{path}.{key}",
                f"secrets must not be written in the routing file: set {key}_env (an environment "
                f"variable name) or {key}_file (a file path) instead",
                show=False,
            )
            return None
        env_key, file_key = f"{key}_env", f"{key}_file"
        has_env, has_file = env_key in raw, file_key in raw
        if has_env and has_file:
            self.add(f"{path}.{env_key}", f"give either {env_key} or {file_key}, not both")
            return None
        if not has_env and not has_file:
            self.add(path, f"missing {env_key} or {file_key} (the {key} secret)")
            return None
        how, key_used = ("env", env_key) if has_env else ("file", file_key)
        return self.resolve(how, raw[key_used], f"{path}.{key_used}")


def http_url_option(value: str) -> str:
    """Validate an ``api_url``-style option: an absolute ``http(s)`` URL, trailing ``/`` removed.

    Raises:
        ValueError: not an absolute http(s) URL.
    """
    return check_http_url(value).rstrip("/")


#: An ``api_url``-style option field: validated by :func:`http_url_option`.
HttpUrlOption = Annotated[str, AfterValidator(http_url_option)]


def url_secret_problem(value: str) -> str | None:
    """The problem with a secret URL (webhook URLs), or ``None`` when it is usable."""
    if not is_http_url(value) or any(c.isspace() for c in value):
        return "not an absolute http:// or https:// URL"
    return None


def token_secret_problem(value: str) -> str | None:
    """The problem with a bearer-style token (PagerDuty, LINE), or ``None`` when usable."""
    if len(value) > 4096 or not value.isascii() or not value.isprintable() or " " in value:
        return "not printable ASCII without spaces of at most 4096 characters"
    return None
