"""Routing: which notifier instances exist and which of them each webhook route notifies.

The routing file (``RECEIVER_ROUTING_FILE``; optional) is YAML::

    notifiers:                       # instance name → settings; name: [A-Za-z0-9][A-Za-z0-9_-]*
      slack-desk: {type: slack, webhook_url_env: SLACK_WEBHOOK_URL}
      discord:    {type: discord, webhook_url_file: /run/secrets/discord_url}
      pagerduty:  {type: pagerduty, routing_key_file: /run/secrets/pd_key}
      telegram:   {type: telegram, bot_token_env: TELEGRAM_BOT_TOKEN, chat_id: "-1001234"}
      line-ops:   {type: line, channel_access_token_env: LINE_TOKEN, to: "U0123…(32 hex)"}
      hooks:      {type: webhook, url_env: HOOK_URL, headers: {X-Team: desk},
                   headers_env: {Authorization: HOOK_AUTH}}
      other:      {type: apprise, urls_env: APPRISE_URLS}
      log:        {type: jsonl, path: /data/notifications.jsonl}
    routes:                          # route of POST /alerts/{route} → instance names
      critical: [slack-desk, pagerduty, telegram, line-ops, log]
      warning: [slack-desk, log]
      default: [slack-desk, log]     # POST /alerts and every route not listed; required

Per type (``*`` = a secret, given as ``<field>_env: VAR`` or ``<field>_file: PATH``, exactly
one of the two; never inline):

===========  =========================================================================
slack        ``webhook_url*``
discord      ``webhook_url*``
telegram     ``bot_token*``, ``chat_id`` (number or ``@channel``), ``message_thread_id``,
             ``api_url`` (default ``https://api.telegram.org``)
pagerduty    ``routing_key*``, ``source``, ``api_url`` (default the US enqueue URL)
line         ``channel_access_token*``, ``to`` (``U``/``C``/``R`` + 32 hex), ``api_url``
webhook      ``url*``, ``headers`` (plain values; secret-looking names refused),
             ``headers_env``/``headers_file`` (name → VAR / PATH), ``timeout_seconds``
apprise      ``urls*`` (Apprise URLs separated by spaces, commas or newlines)
jsonl        ``path``
===========  =========================================================================

Secrets come only from the environment or from files (a relative ``*_file`` path is relative
to the routing file's directory; surrounding whitespace is stripped), are held as
:class:`pydantic.SecretStr`, and are registered with the log redaction filter when loaded. A
secret written inline is an error naming the field. Every error names the file, the field path
and the value (``<redacted>`` for secrets), one line per problem, e.g.
``routing.yml: routes.critical[1]: unknown notifier 'pagerdty' (defined: log, slack-desk)``.

Without ``routes`` every route notifies every instance. Without a routing file the notifiers
come from ``SLACK_WEBHOOK_URL``, ``DISCORD_WEBHOOK_URL`` and ``NOTIFY_FILE`` (instance names
``slack``, ``discord``, ``jsonl``) and every route notifies all of them, as before.

Usage::

    config = load_routing_config(settings.receiver_routing_file, settings)  # validate early
    routing = config.build(client, metrics=NotifierMetrics(registry))        # in the lifespan
    routing.notifiers_for("critical"); routing.all_notifiers(); routing.critical
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from receiver.logs import install_redaction
from receiver.notifiers.base import Notifier
from receiver.notifiers.discord import DiscordNotifier
from receiver.notifiers.jsonl import JsonlNotifier
from receiver.notifiers.line import DEFAULT_API_URL as LINE_API_URL
from receiver.notifiers.line import LineNotifier
from receiver.notifiers.metrics import NotifierMetrics
from receiver.notifiers.pagerduty import DEFAULT_API_URL as PAGERDUTY_API_URL
from receiver.notifiers.pagerduty import PagerDutyNotifier
from receiver.notifiers.slack import SlackNotifier
from receiver.notifiers.telegram import DEFAULT_API_URL as TELEGRAM_API_URL
from receiver.notifiers.telegram import TelegramNotifier
from receiver.notifiers.webhook import WebhookNotifier

if TYPE_CHECKING:
    from receiver.settings import Settings

log = logging.getLogger(__name__)

REDACTED = "<redacted>"
DEFAULT_ROUTE = "default"
CRITICAL_ROUTE = "critical"
#: Same rule as the ``{route}`` of ``POST /alerts/{route}``.
ROUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
NOTIFIER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SECRET_FILE_MAX = 64 * 1024
_SECRET_HEADER = re.compile(r"auth|token|secret|key|passw|signature|session|cookie", re.I)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_TELEGRAM_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{10,128}$")
_TELEGRAM_CHAT = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,64})$")
_LINE_TO = re.compile(r"^[UCR][0-9a-f]{32}$")


class RoutingError(ValueError):
    """The routing file is invalid: one line per problem, each naming the file, the field path
    and the value (secrets ``<redacted>``)."""


# --- per-type options (everything that is not a secret) --------------------------------------


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value.rstrip("/")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


class SlackOptions(_Options):
    """``type: slack`` (secret ``webhook_url``)."""


class DiscordOptions(_Options):
    """``type: discord`` (secret ``webhook_url``)."""


class TelegramOptions(_Options):
    """``type: telegram`` (secret ``bot_token``)."""

    chat_id: str
    message_thread_id: int | None = Field(default=None, ge=1)
    api_url: str = TELEGRAM_API_URL

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not _TELEGRAM_CHAT.match(value.strip()):
            raise ValueError("must be a numeric chat id (e.g. '-1001234567890') or '@channel'")
        return value.strip() if isinstance(value, str) else value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class PagerDutyOptions(_Options):
    """``type: pagerduty`` (secret ``routing_key``)."""

    api_url: str = PAGERDUTY_API_URL
    source: str | None = Field(default=None, min_length=1, max_length=255)

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class LineOptions(_Options):
    """``type: line`` (secret ``channel_access_token``)."""

    to: str
    api_url: str = LINE_API_URL

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        if not _LINE_TO.match(value):
            raise ValueError(
                "must be a LINE user, group or room id: U, C or R followed by 32 hex digits"
            )
        return value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class WebhookOptions(_Options):
    """``type: webhook`` (secret ``url``; secret headers via ``headers_env``/``headers_file``)."""

    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)


class AppriseOptions(_Options):
    """``type: apprise`` (secret ``urls``)."""


class JsonlOptions(_Options):
    """``type: jsonl``."""

    path: Path


@dataclass(frozen=True)
class _Kind:
    options: type[_Options]
    secrets: tuple[str, ...]
    check: Callable[[str], str | None]  # secret value → problem or None


def _check_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        return "not an absolute http:// or https:// URL"
    return None


def _check_token(value: str) -> str | None:
    if len(value) > 4096 or not value.isascii() or not value.isprintable() or " " in value:
        return "not printable ASCII without spaces of at most 4096 characters"
    return None


def _check_telegram_token(value: str) -> str | None:
    if not _TELEGRAM_TOKEN.match(value):
        return "not a Telegram bot token ('<digits>:<letters, digits, _ or ->')"
    return None


def _check_apprise(value: str) -> str | None:
    from receiver.notifiers.apprise_urls import AppriseUrlError, load_targets, split_urls

    urls = split_urls(value)
    if not urls:
        return "holds no Apprise URL"
    try:
        load_targets([SecretStr(u) for u in urls])
    except AppriseUrlError as exc:
        return str(exc)
    return None


KINDS: dict[str, _Kind] = {
    "slack": _Kind(SlackOptions, ("webhook_url",), _check_url),
    "discord": _Kind(DiscordOptions, ("webhook_url",), _check_url),
    "telegram": _Kind(TelegramOptions, ("bot_token",), _check_telegram_token),
    "pagerduty": _Kind(PagerDutyOptions, ("routing_key",), _check_token),
    "line": _Kind(LineOptions, ("channel_access_token",), _check_token),
    "webhook": _Kind(WebhookOptions, ("url",), _check_url),
    "apprise": _Kind(AppriseOptions, ("urls",), _check_apprise),
    "jsonl": _Kind(JsonlOptions, (), lambda _: None),
}
#: The notifier types a routing file may use.
NOTIFIER_TYPES = tuple(KINDS)


# --- validated configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class NotifierConfig:
    """One validated notifier instance, secrets resolved (shown only as ``SecretStr``).

    Attributes:
        name: instance name.
        type: one of :data:`NOTIFIER_TYPES`.
        options: the non-secret settings.
        secrets: secret field → value (e.g. ``{"webhook_url": SecretStr(…)}``).
        secret_headers: webhook headers from ``headers_env``/``headers_file``.
    """

    name: str
    type: str
    options: _Options
    secrets: Mapping[str, SecretStr] = field(default_factory=dict)
    secret_headers: Mapping[str, SecretStr] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingConfig:
    """The validated routing: notifier instances and routes, not yet bound to an HTTP client.

    Attributes:
        source: the routing file, or ``None`` when built from the environment settings.
        notifiers: instance name → config, in file order.
        routes: route → instance names; always has ``default``. ``None`` means "every route
            notifies every instance" (no ``routes`` section, or no routing file).
    """

    source: Path | None
    notifiers: Mapping[str, NotifierConfig]
    routes: Mapping[str, tuple[str, ...]] | None

    def secret_values(self) -> list[str]:
        """Every secret value (for log redaction). Never log the result."""
        out: list[str] = []
        for cfg in self.notifiers.values():
            for secret in (*cfg.secrets.values(), *cfg.secret_headers.values()):
                value = secret.get_secret_value()
                if value:
                    out.append(value)
                    if cfg.type == "apprise":
                        from receiver.notifiers.apprise_urls import split_urls

                        out.extend(split_urls(value))
        return out

    def build(
        self, client: httpx.AsyncClient, *, metrics: NotifierMetrics | None = None
    ) -> Routing:
        """Create the notifier instances, all sharing ``client``.

        Args:
            client: the shared HTTP client (should not follow redirects).
            metrics: per-notifier metrics to record every send in (optional).
        """
        built: dict[str, Notifier] = {}
        for name, cfg in self.notifiers.items():
            notifier = _build_one(cfg, client)
            notifier.bind_metrics(metrics)
            built[name] = notifier
        return Routing(self, built)

    def describe(self) -> str:
        """A one-line summary without secrets, for the startup log."""
        names = ", ".join(f"{n} ({c.type})" for n, c in self.notifiers.items()) or "none"
        if self.routes is None:
            routes = "every route → all"
        else:
            routes = "; ".join(f"{r} → {', '.join(ns) or '-'}" for r, ns in self.routes.items())
        origin = str(self.source) if self.source else "environment"
        return f"routing from {origin}: notifiers {names}; routes {routes}"


def _build_one(cfg: NotifierConfig, client: httpx.AsyncClient) -> Notifier:
    o = cfg.options
    s = cfg.secrets
    if isinstance(o, SlackOptions):
        return SlackNotifier(s["webhook_url"], client, name=cfg.name)
    if isinstance(o, DiscordOptions):
        return DiscordNotifier(s["webhook_url"], client, name=cfg.name)
    if isinstance(o, TelegramOptions):
        return TelegramNotifier(
            s["bot_token"],
            o.chat_id,
            client,
            name=cfg.name,
            message_thread_id=o.message_thread_id,
            api_url=o.api_url,
        )
    if isinstance(o, PagerDutyOptions):
        return PagerDutyNotifier(
            s["routing_key"], client, name=cfg.name, api_url=o.api_url, source=o.source
        )
    if isinstance(o, LineOptions):
        return LineNotifier(
            s["channel_access_token"], o.to, client, name=cfg.name, api_url=o.api_url
        )
    if isinstance(o, WebhookOptions):
        headers = {k: SecretStr(v) for k, v in o.headers.items()}
        headers.update(cfg.secret_headers)
        return WebhookNotifier(
            s["url"], client, name=cfg.name, headers=headers, timeout=o.timeout_seconds
        )
    if isinstance(o, AppriseOptions):
        from receiver.notifiers.apprise_urls import AppriseNotifier, split_urls

        urls = [SecretStr(u) for u in split_urls(s["urls"].get_secret_value())]
        return AppriseNotifier(urls, name=cfg.name)
    if isinstance(o, JsonlOptions):
        return JsonlNotifier(o.path, name=cfg.name)
    raise AssertionError(f"unhandled notifier type {cfg.type}")  # pragma: no cover


class Routing:
    """Notifier instances and the routes that select them.

    Use :meth:`notifiers_for` per notification, :meth:`all_notifiers` for metrics and shutdown,
    :attr:`critical` for the dead man's switch.
    """

    def __init__(self, config: RoutingConfig, notifiers: Mapping[str, Notifier]) -> None:
        self.config = config
        self._notifiers = dict(notifiers)

    def __repr__(self) -> str:
        return f"<Routing {self.config.describe()}>"

    def all_notifiers(self) -> list[Notifier]:
        """Every configured instance, in file order."""
        return list(self._notifiers.values())

    def notifier(self, name: str) -> Notifier | None:
        """The instance called ``name``, if any."""
        return self._notifiers.get(name)

    def notifiers_for(self, route: str) -> list[Notifier]:
        """The instances ``route`` notifies (``""`` and unlisted routes use ``default``)."""
        routes = self.config.routes
        if routes is None:
            return self.all_notifiers()
        names = routes.get(route) if route else None
        if names is None:
            names = routes.get(DEFAULT_ROUTE, ())
        return [self._notifiers[n] for n in names]

    @property
    def critical(self) -> list[Notifier]:
        """The instances of the ``critical`` route (``default`` when there is none)."""
        return self.notifiers_for(CRITICAL_ROUTE)

    @property
    def routes(self) -> dict[str, tuple[str, ...]] | None:
        """Route → instance names (``None``: every route notifies every instance)."""
        return None if self.config.routes is None else dict(self.config.routes)

    def min_send_intervals(self) -> dict[str, float]:
        """Instance name → seconds to leave between two of its sends (0 = none)."""
        return {n.name: n.min_send_interval for n in self._notifiers.values()}

    def secret_values(self) -> list[str]:
        """Every secret value (for log redaction). Never log the result."""
        return self.config.secret_values()


# --- loading ---------------------------------------------------------------------------------


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, path: str, message: str, value: Any = None, *, show: bool = True) -> None:
        line = f"{self.source}: {path}: {message}"
        if show and value is not None and not isinstance(value, dict | list):
            line += f" (value: {value!r})"
        elif not show:
            line += f" (value: {REDACTED})"
        self.lines.append(line)


def _location(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for item in loc:
        out += f"[{item}]" if isinstance(item, int) else f".{item}"
    return out


def _read_secret_file(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read(SECRET_FILE_MAX + 1)
    if len(data) > SECRET_FILE_MAX:
        raise ValueError(f"is larger than {SECRET_FILE_MAX} bytes")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None


def _resolve_ref(
    how: str,
    ref: Any,
    where: str,
    problems: _Problems,
    environ: Mapping[str, str],
    base_dir: Path,
) -> SecretStr | None:
    """Read a secret from environment variable ``ref`` (``how == "env"``) or file ``ref``."""
    if how == "env":
        if not isinstance(ref, str) or not ENV_NAME.match(ref):
            problems.add(where, "must be an environment variable name such as HOOK_URL", ref)
            return None
        value = environ.get(ref)
        if value is None:
            problems.add(where, f"environment variable {ref} is not set", ref)
            return None
        if not value.strip():
            problems.add(where, f"environment variable {ref} is empty", ref)
            return None
        return SecretStr(value.strip())
    if not isinstance(ref, str) or not ref.strip():
        problems.add(where, "must be a file path", ref)
        return None
    file_path = Path(ref)
    if not file_path.is_absolute():
        file_path = base_dir / file_path
    try:
        value = _read_secret_file(file_path)
    except OSError as exc:
        problems.add(where, f"cannot read {file_path}: {exc.strerror or exc}", ref)
        return None
    except ValueError as exc:
        problems.add(where, f"{file_path} {exc}", ref)
        return None
    if not value:
        problems.add(where, f"{file_path} is empty", ref)
        return None
    return SecretStr(value)


def _resolve_secret(
    raw: Mapping[str, Any],
    key: str,
    path: str,
    problems: _Problems,
    environ: Mapping[str, str],
    base_dir: Path,
) -> SecretStr | None:
    """Read secret ``key`` of one notifier from ``key_env`` or ``key_file``."""
    if key in raw:
        problems.add(
            f"{path}.{key}",
            f"secrets must not be written in the routing file: set {key}_env (an environment "
            f"variable name) or {key}_file (a file path) instead",
            show=False,
        )
        return None
    env_key, file_key = f"{key}_env", f"{key}_file"
    has_env, has_file = env_key in raw, file_key in raw
    if has_env and has_file:
        problems.add(f"{path}.{env_key}", f"give either {env_key} or {file_key}, not both")
        return None
    if not has_env and not has_file:
        problems.add(path, f"missing {env_key} or {file_key} (the {key} secret)")
        return None
    how, key_used = ("env", env_key) if has_env else ("file", file_key)
    return _resolve_ref(how, raw[key_used], f"{path}.{key_used}", problems, environ, base_dir)


def _secret_headers(
    raw: Mapping[str, Any],
    path: str,
    problems: _Problems,
    environ: Mapping[str, str],
    base_dir: Path,
) -> dict[str, SecretStr]:
    out: dict[str, SecretStr] = {}
    for how in ("env", "file"):
        key = f"headers_{how}"
        if key not in raw:
            continue
        mapping = raw[key]
        if not isinstance(mapping, dict):
            what = "environment variable name" if how == "env" else "file path"
            problems.add(f"{path}.{key}", f"must be a mapping of header name to {what}")
            continue
        for header, ref in mapping.items():
            where = f"{path}.{key}.{header}"
            if not isinstance(header, str) or not _HEADER_NAME.match(header):
                problems.add(where, "not a valid HTTP header name", header)
                continue
            if header in out:
                problems.add(where, "header given twice (headers_env and headers_file)")
                continue
            value = _resolve_ref(how, ref, where, problems, environ, base_dir)
            if value is None:
                continue
            if not _header_value_ok(value.get_secret_value()):
                problems.add(where, "value is not a valid HTTP header value", show=False)
                continue
            out[header] = value
    return out


def _header_value_ok(value: str) -> bool:
    return value.isascii() and value.isprintable() and len(value) <= 8192


def _notifier(
    name: Any,
    raw: Any,
    problems: _Problems,
    environ: Mapping[str, str],
    base_dir: Path,
) -> NotifierConfig | None:
    path = f"notifiers.{name}"
    if not isinstance(name, str) or not NOTIFIER_NAME.match(name):
        problems.add(
            path,
            "notifier names are 1-64 characters of A-Z a-z 0-9 _ - (starting with a letter or "
            "digit): they are metric label values",
            name,
        )
        return None
    if not isinstance(raw, dict):
        problems.add(path, "must be a mapping with a 'type'", raw)
        return None
    kind_name = raw.get("type")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        problems.add(f"{path}.type", f"must be one of {', '.join(NOTIFIER_TYPES)}", kind_name)
        return None
    before = len(problems.lines)
    secrets: dict[str, SecretStr] = {}
    for key in kind.secrets:
        value = _resolve_secret(raw, key, path, problems, environ, base_dir)
        if value is None:
            continue
        problem = kind.check(value.get_secret_value())
        if problem:
            if f"{key}_env" in raw:
                source_key, origin = f"{key}_env", f"environment variable {raw[f'{key}_env']}"
            else:
                source_key, origin = f"{key}_file", f"file {raw[f'{key}_file']}"
            problems.add(f"{path}.{source_key}", f"{key} from {origin}: {problem}", show=False)
            continue
        secrets[key] = value
    secret_headers: dict[str, SecretStr] = {}
    if kind_name == "webhook":
        secret_headers = _secret_headers(raw, path, problems, environ, base_dir)
        headers = raw.get("headers", {})
        if isinstance(headers, dict):
            for header, value in headers.items():
                hpath = f"{path}.headers.{header}"
                if isinstance(header, str) and _SECRET_HEADER.search(header):
                    problems.add(
                        hpath,
                        "looks like a secret: secrets must not be written in the routing file; "
                        "use headers_env or headers_file",
                        show=False,
                    )
                elif not isinstance(header, str) or not _HEADER_NAME.match(header):
                    problems.add(hpath, "not a valid HTTP header name", header)
                elif not isinstance(value, str) or not _header_value_ok(value):
                    problems.add(hpath, "must be a printable ASCII string", value)
    plain = {
        k: v
        for k, v in raw.items()
        if not any(k in (s, f"{s}_env", f"{s}_file") for s in kind.secrets)
        and k not in ("headers_env", "headers_file")
    }
    try:
        options = kind.options.model_validate(plain)
    except ValidationError as exc:
        for err in exc.errors():
            where = _location(path, err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                allowed = [f for f in kind.options.model_fields if f != "type"] + [
                    f"{s}_env/{s}_file" for s in kind.secrets
                ]
                problems.add(
                    where,
                    f"unknown field for type {kind_name} (allowed: {', '.join(allowed) or '-'})",
                    show=False,
                )
            else:
                problems.add(where, message, err.get("input"))
        return None
    if len(problems.lines) > before:
        return None
    return NotifierConfig(
        name=name,
        type=kind_name,
        options=options,
        secrets=secrets,
        secret_headers=secret_headers,
    )


def _routes(raw: Any, names: list[str], problems: _Problems) -> dict[str, tuple[str, ...]] | None:
    if not isinstance(raw, dict):
        problems.add("routes", "must be a mapping of route name to a list of notifier names", raw)
        return None
    defined = ", ".join(sorted(names)) or "none"
    routes: dict[str, tuple[str, ...]] = {}
    for route, members in raw.items():
        path = f"routes.{route}"
        if not isinstance(route, str) or not ROUTE_NAME.match(route):
            problems.add(path, "route names are 1-64 characters of A-Z a-z 0-9 _ . -", route)
            continue
        if members is None:
            members = []
        if not isinstance(members, list):
            problems.add(path, "must be a list of notifier names ([] for none)", members)
            continue
        seen: list[str] = []
        for i, member in enumerate(members):
            where = f"{path}[{i}]"
            if not isinstance(member, str):
                problems.add(where, "must be a notifier name", member)
            elif member not in names:
                problems.add(
                    where, f"unknown notifier {member!r} in route {route!r} (defined: {defined})"
                )
            elif member in seen:
                problems.add(where, f"notifier {member!r} is listed twice in route {route!r}")
            else:
                seen.append(member)
        routes[route] = tuple(seen)
    if DEFAULT_ROUTE not in raw:
        problems.add(
            f"routes.{DEFAULT_ROUTE}",
            "missing: it is used for POST /alerts and for every route not listed "
            "(use [] to notify nobody)",
        )
    return routes


def parse_routing(
    data: Any,
    source: str = "<routing>",
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> RoutingConfig:
    """Validate already-loaded routing YAML data and resolve its secrets.

    Args:
        data: the loaded YAML document.
        source: file name used in error messages.
        environ: where ``*_env`` variables are looked up (default ``os.environ``).
        base_dir: base of relative ``*_file`` paths (default the current directory).

    Raises:
        RoutingError: one line per problem (see the module docstring).
    """
    env = os.environ if environ is None else environ
    base = base_dir or Path(".")
    problems = _Problems(source)
    if not isinstance(data, dict):
        raise RoutingError(f"{source}: expected a mapping with 'notifiers' (and 'routes')")
    for key in data:
        if key not in ("notifiers", "routes"):
            problems.add(str(key), "unknown top-level field (allowed: notifiers, routes)")
    raw_notifiers = data.get("notifiers")
    notifiers: dict[str, NotifierConfig] = {}
    names: list[str] = []
    if not isinstance(raw_notifiers, dict):
        problems.add("notifiers", "must be a mapping of notifier name to its settings")
    else:
        for name, raw in raw_notifiers.items():
            if isinstance(name, str):
                names.append(name)
            cfg = _notifier(name, raw, problems, env, base)
            if cfg is not None:
                notifiers[cfg.name] = cfg
    routes = _routes(data["routes"], names, problems) if "routes" in data else None
    if problems.lines:
        raise RoutingError("\n".join(problems.lines))
    config = RoutingConfig(source=None, notifiers=notifiers, routes=routes)
    install_redaction(config.secret_values())
    return config


def load_routing_file(path: Path, *, environ: Mapping[str, str] | None = None) -> RoutingConfig:
    """Read, validate and resolve the routing file at ``path``.

    Raises:
        RoutingError: unreadable, not YAML, or invalid (see the module docstring).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RoutingError(f"{path}: cannot read: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the position and the problem: the offending line may hold a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise RoutingError(f"{path}: not valid YAML{where}: {problem}") from None
    config = parse_routing(data, str(path), environ=environ, base_dir=path.parent)
    return RoutingConfig(source=path, notifiers=config.notifiers, routes=config.routes)


def routing_from_settings(settings: Settings) -> RoutingConfig:
    """The routing without a file: ``SLACK_WEBHOOK_URL`` → ``slack``, ``DISCORD_WEBHOOK_URL`` →
    ``discord``, ``NOTIFY_FILE`` → ``jsonl``; every route notifies all of them."""
    notifiers: dict[str, NotifierConfig] = {}
    if settings.slack_webhook_url is not None:
        notifiers["slack"] = NotifierConfig(
            "slack",
            "slack",
            SlackOptions(type="slack"),
            {"webhook_url": settings.slack_webhook_url},
        )
    if settings.discord_webhook_url is not None:
        notifiers["discord"] = NotifierConfig(
            "discord",
            "discord",
            DiscordOptions(type="discord"),
            {"webhook_url": settings.discord_webhook_url},
        )
    if settings.notify_file is not None:
        notifiers["jsonl"] = NotifierConfig(
            "jsonl", "jsonl", JsonlOptions(type="jsonl", path=settings.notify_file)
        )
    return RoutingConfig(source=None, notifiers=notifiers, routes=None)


def load_routing_config(
    path: Path | None, settings: Settings, *, environ: Mapping[str, str] | None = None
) -> RoutingConfig:
    """The routing from the file at ``path``, or from ``settings`` when ``path`` is ``None``.

    With a file, ``SLACK_WEBHOOK_URL``/``DISCORD_WEBHOOK_URL``/``NOTIFY_FILE`` are not used
    unless the file refers to them (``webhook_url_env: SLACK_WEBHOOK_URL``).

    Raises:
        RoutingError: the file is invalid (message names file, field path and value).
    """
    if path is None:
        return routing_from_settings(settings)
    config = load_routing_file(path, environ=environ)
    unused = [
        var
        for var, value in (
            ("SLACK_WEBHOOK_URL", settings.slack_webhook_url),
            ("DISCORD_WEBHOOK_URL", settings.discord_webhook_url),
            ("NOTIFY_FILE", settings.notify_file),
        )
        if value is not None
    ]
    if unused:
        log.info(
            "%s: routing file in use; %s only apply where the file refers to them",
            path,
            ", ".join(unused),
        )
    return config


def notifier_factory(
    config: RoutingConfig, *, metrics: NotifierMetrics | None = None
) -> Callable[
    [Settings, httpx.AsyncClient], tuple[Callable[[str], list[Notifier]], list[Notifier]]
]:
    """A ``(settings, client) -> (notifiers_for, all_notifiers)`` factory for ``config``.

    For the app's notifier seam: validate with :func:`load_routing_config` when the app is
    created (so a bad file stops startup), build on the lifespan's client with this.
    """

    def make(
        settings: Settings, client: httpx.AsyncClient
    ) -> tuple[Callable[[str], list[Notifier]], list[Notifier]]:
        routing = config.build(client, metrics=metrics)
        return routing.notifiers_for, routing.all_notifiers()

    return make


def load_routing(
    path: Path | None,
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    metrics: NotifierMetrics | None = None,
    environ: Mapping[str, str] | None = None,
) -> Routing:
    """Load the routing (:func:`load_routing_config`) and build its notifiers on ``client``.

    Raises:
        RoutingError: the routing file is invalid.
    """
    return load_routing_config(path, settings, environ=environ).build(client, metrics=metrics)
