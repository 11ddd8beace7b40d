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

Each type's fields are listed in :mod:`receiver.notifiers` (secrets are given as
``<field>_env: VAR`` or ``<field>_file: PATH``, exactly one of the two; never inline).

Secrets come only from the environment or from files (a relative ``*_file`` path is relative
to the routing file's directory; surrounding whitespace is stripped), are held as
:class:`pydantic.SecretStr`, and are registered with the log redaction filter when loaded. A
secret written inline is an error naming the field. Every error names the file, the field path
and the value (``<redacted>`` for secrets), one line per problem, e.g.
``routing.yml: routes.critical[1]: unknown notifier 'pagerdty' (defined: log, slack-desk)``.

Each type is one module of :mod:`receiver.notifiers` that owns its options model, secret fields,
validation and construction (:meth:`receiver.notifiers.base.Notifier.from_config`); this module
keeps only the generic parsing and the ``{type: class}`` registry :data:`NOTIFIERS`.

Without ``routes`` every route notifies every instance. Without a routing file the notifiers
come from ``SLACK_WEBHOOK_URL``, ``DISCORD_WEBHOOK_URL`` and ``NOTIFY_FILE`` (instance names
``slack``, ``discord``, ``jsonl``) and every route notifies all of them, as before.

Usage::

    config = load_routing_config(settings.receiver_routing_file, settings)  # validate early
    routing = config.build(client, metrics=receiver_metrics.notifiers)       # in the lifespan
    routing.notifiers_for("critical"); routing.all_notifiers(); routing.critical
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import SecretStr, ValidationError

from receiver.logs import install_redaction
from receiver.notifiers.apprise_urls import AppriseNotifier
from receiver.notifiers.base import Notifier
from receiver.notifiers.discord import DiscordNotifier
from receiver.notifiers.jsonl import JsonlNotifier
from receiver.notifiers.line import LineNotifier
from receiver.notifiers.metrics import NotifierMetrics
from receiver.notifiers.options import NotifierConfig, ParseContext
from receiver.notifiers.pagerduty import PagerDutyNotifier
from receiver.notifiers.slack import SlackNotifier
from receiver.notifiers.telegram import TelegramNotifier
from receiver.notifiers.webhook import WebhookNotifier
from receiver.settings import ROUTE_PATTERN, Settings

log = logging.getLogger(__name__)

DEFAULT_ROUTE = "default"
CRITICAL_ROUTE = "critical"
#: Same rule as the ``{route}`` of ``POST /alerts/{route}``.
ROUTE_NAME = re.compile(ROUTE_PATTERN)
NOTIFIER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

#: The notifier registry: routing-file ``type`` → class. Adding a notifier is one line here.
NOTIFIERS: dict[str, type[Notifier]] = {
    "slack": SlackNotifier,
    "discord": DiscordNotifier,
    "telegram": TelegramNotifier,
    "pagerduty": PagerDutyNotifier,
    "line": LineNotifier,
    "webhook": WebhookNotifier,
    "apprise": AppriseNotifier,
    "jsonl": JsonlNotifier,
}
#: The notifier types a routing file may use.
NOTIFIER_TYPES = tuple(NOTIFIERS)


class RoutingError(ValueError):
    """The routing file is invalid: one line per problem, each naming the file, the field path
    and the value (secrets ``<redacted>``)."""


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
            kind = NOTIFIERS[cfg.type]
            for key, secret in (*cfg.secrets.items(), *cfg.secret_headers.items()):
                value = secret.get_secret_value()
                if value:
                    out.extend(kind.redaction_values(key, value))
        return out

    def build(
        self, client: httpx.AsyncClient, *, metrics: NotifierMetrics | None = None
    ) -> Routing:
        """Create the notifier instances, all sharing ``client``.

        Args:
            client: the shared HTTP client (should not follow redirects).
            metrics: the send metrics to record every send in (optional).
        """
        built: dict[str, Notifier] = {}
        for name, cfg in self.notifiers.items():
            notifier = NOTIFIERS[cfg.type].from_config(cfg, client)
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


def _location(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for item in loc:
        out += f"[{item}]" if isinstance(item, int) else f".{item}"
    return out


def _notifier(name: Any, raw: Any, ctx: ParseContext) -> NotifierConfig | None:
    path = f"notifiers.{name}"
    if not isinstance(name, str) or not NOTIFIER_NAME.match(name):
        ctx.add(
            path,
            "notifier names are 1-64 characters of A-Z a-z 0-9 _ - (starting with a letter or "
            "digit): they are metric label values",
            name,
        )
        return None
    if not isinstance(raw, dict):
        ctx.add(path, "must be a mapping with a 'type'", raw)
        return None
    kind_name = raw.get("type")
    if not isinstance(kind_name, str) or (kind := NOTIFIERS.get(kind_name)) is None:
        ctx.add(f"{path}.type", f"must be one of {', '.join(NOTIFIER_TYPES)}", kind_name)
        return None
    before = len(ctx.lines)
    secrets: dict[str, SecretStr] = {}
    for key in kind.secret_fields:
        given = any(k in raw for k in (key, f"{key}_env", f"{key}_file"))
        if not given and not kind.secret_required(key, raw):
            continue
        value = ctx.secret(raw, key, path)
        if value is None:
            continue
        problem = kind.check_secret(key, value.get_secret_value())
        if problem:
            if f"{key}_env" in raw:
                source_key, origin = f"{key}_env", f"environment variable {raw[f'{key}_env']}"
            else:
                source_key, origin = f"{key}_file", f"file {raw[f'{key}_file']}"
            ctx.add(f"{path}.{source_key}", f"{key} from {origin}: {problem}", show=False)
            continue
        secrets[key] = value
    secret_headers = kind.parse_extra(raw, path, ctx)
    plain = {
        k: v
        for k, v in raw.items()
        if not any(k in (s, f"{s}_env", f"{s}_file") for s in kind.secret_fields)
        and k not in kind.extra_keys
    }
    try:
        options = kind.options.model_validate(plain)
    except ValidationError as exc:
        for err in exc.errors():
            where = _location(path, err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                allowed = [f for f in kind.options.model_fields if f != "type"] + [
                    f"{s}_env/{s}_file" for s in kind.secret_fields
                ]
                ctx.add(
                    where,
                    f"unknown field for type {kind_name} (allowed: {', '.join(allowed) or '-'})",
                    show=False,
                )
            else:
                ctx.add(where, message, err.get("input"))
        return None
    if len(ctx.lines) > before:
        return None
    return NotifierConfig(
        name=name,
        type=kind_name,
        options=options,
        secrets=secrets,
        secret_headers=secret_headers,
    )


def _routes(
    raw: Any, names: list[str], problems: ParseContext
) -> dict[str, tuple[str, ...]] | None:
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
    problems = ParseContext(source, env, base)
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
            cfg = _notifier(name, raw, problems)
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
    for kind, url in (
        ("slack", settings.slack_webhook_url),
        ("discord", settings.discord_webhook_url),
    ):
        if url is not None:
            options = NOTIFIERS[kind].options(type=kind)
            notifiers[kind] = NotifierConfig(kind, kind, options, {"webhook_url": url})
    if settings.notify_file is not None:
        notifiers["jsonl"] = NotifierConfig(
            "jsonl",
            "jsonl",
            NOTIFIERS["jsonl"].options.model_validate(
                {"type": "jsonl", "path": settings.notify_file}
            ),
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
