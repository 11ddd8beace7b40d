"""Routing file tests: notifier instances per route, secrets only from env/files, precise errors,
the no-file fallback, and secrets never in repr/str/logs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from receiver.app import routing_notifiers
from receiver.metrics import ReceiverMetrics
from receiver.notifiers.metrics import NotifierMetrics
from receiver.routing import (
    NOTIFIER_TYPES,
    Routing,
    RoutingConfig,
    RoutingError,
    load_routing,
    load_routing_config,
    load_routing_file,
)
from receiver.settings import Settings
from tests.receiver.notifiers.test_render import notification

SLACK_URL = "https://hooks.slack.test/services/T0/B0/routing-slack-secret"
TG_TOKEN = "987654321:AAroutingTelegramSecret_0123456789"
LINE_TOKEN = "routingLineSecretToken+abc/def="
HOOK_URL = "https://hooks.example.test/routing-hook-secret"
HOOK_AUTH = "Bearer routing-hook-auth-secret"
PD_KEY = "routingPagerDutyKeySecret0123456"
APPRISE_URLS = "json://localhost/routing-apprise-secret, ntfy://routing-topic-secret"
LINE_TO = "U" + "a" * 32
SECRETS = (SLACK_URL, TG_TOKEN, LINE_TOKEN, HOOK_URL, HOOK_AUTH, PD_KEY, "routing-apprise-secret")

ENV = {
    "SLACK_WEBHOOK_URL": SLACK_URL,
    "TELEGRAM_BOT_TOKEN": TG_TOKEN,
    "LINE_TOKEN": LINE_TOKEN,
    "HOOK_URL": HOOK_URL,
    "HOOK_AUTH": HOOK_AUTH,
    "APPRISE_URLS": APPRISE_URLS,
}

FULL = """
notifiers:
  slack-desk: {type: slack, webhook_url_env: SLACK_WEBHOOK_URL}
  pagerduty:  {type: pagerduty, routing_key_file: secrets/pd_key}
  telegram:   {type: telegram, bot_token_env: TELEGRAM_BOT_TOKEN, chat_id: "-1001234"}
  line-ops:   {type: line, channel_access_token_env: LINE_TOKEN, to: "{line_to}"}
  hooks:
    type: webhook
    url_env: HOOK_URL
    headers: {X-Team: desk}
    headers_env: {Authorization: HOOK_AUTH}
  other:      {type: apprise, urls_env: APPRISE_URLS}
  log:        {type: jsonl, path: {log_path}}
routes:
  critical: [slack-desk, pagerduty, telegram, line-ops, log]
  warning: [slack-desk, log]
  info: [log]
  hooks-only: [hooks, other]
  default: [slack-desk, log]     # POST /alerts (no route) and unknown routes
"""


def write(tmp_path: Path, text: str, name: str = "routing.yml") -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "pd_key").write_text(PD_KEY + "\n", encoding="utf-8")
    path = tmp_path / name
    text = text.replace("{line_to}", LINE_TO).replace("{log_path}", str(tmp_path / "n.jsonl"))
    path.write_text(text, encoding="utf-8")
    return path


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {"slack_webhook_url": None, "discord_webhook_url": None}
    return Settings(**(base | values))


def build(
    path: Path | None, cfg: Settings | None = None, env: dict[str, str] | None = None
) -> Routing:
    async def go() -> Routing:
        async with httpx.AsyncClient() as client:
            return load_routing(
                path, cfg or settings(), client, environ=ENV if env is None else env
            )

    return asyncio.run(go())


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(RoutingError) as info:
        load_routing_file(path, environ=ENV if env is None else env)
    message = str(info.value)
    for secret in SECRETS:
        assert secret not in message
    for line in message.splitlines():
        assert line.startswith(f"{path}: "), line  # every problem names the file
    return message


# --- valid files ------------------------------------------------------------------------------


def test_valid_file_maps_routes_to_instances(tmp_path: Path) -> None:
    routing = build(write(tmp_path, FULL))
    assert [n.name for n in routing.all_notifiers()] == [
        "slack-desk",
        "pagerduty",
        "telegram",
        "line-ops",
        "hooks",
        "other",
        "log",
    ]
    channels = {n.name: n.channel for n in routing.all_notifiers()}
    assert channels == {
        "slack-desk": "slack",
        "pagerduty": "pagerduty",
        "telegram": "telegram",
        "line-ops": "line",
        "hooks": "webhook",
        "other": "apprise",
        "log": "jsonl",
    }
    names = lambda route: [n.name for n in routing.notifiers_for(route)]  # noqa: E731
    assert names("critical") == ["slack-desk", "pagerduty", "telegram", "line-ops", "log"]
    assert names("warning") == ["slack-desk", "log"]
    assert names("info") == ["log"]
    assert names("hooks-only") == ["hooks", "other"]
    assert names("") == ["slack-desk", "log"]  # POST /alerts
    assert names("no-such-route") == ["slack-desk", "log"]
    assert [n.name for n in routing.critical] == names("critical")
    # the same instance object serves every route it is listed in
    assert routing.notifiers_for("warning")[0] is routing.notifiers_for("critical")[0]
    intervals = routing.min_send_intervals()
    assert intervals["slack-desk"] == 1.0 and intervals["telegram"] == 3.0
    assert intervals["log"] == 0.0
    assert set(routing.routes or {}) == {"critical", "warning", "info", "hooks-only", "default"}


def test_secrets_are_resolved_from_env_and_files(tmp_path: Path) -> None:
    config = load_routing_file(write(tmp_path, FULL), environ=ENV)
    assert config.notifiers["pagerduty"].secrets["routing_key"].get_secret_value() == PD_KEY
    assert config.notifiers["slack-desk"].secrets["webhook_url"].get_secret_value() == SLACK_URL
    headers = config.notifiers["hooks"].secret_headers
    assert headers["Authorization"].get_secret_value() == HOOK_AUTH
    assert isinstance(headers["Authorization"], SecretStr)
    values = config.secret_values()
    for secret in (SLACK_URL, TG_TOKEN, LINE_TOKEN, HOOK_URL, HOOK_AUTH, PD_KEY):
        assert secret in values
    assert "json://localhost/routing-apprise-secret" in values  # each Apprise URL too


def test_critical_falls_back_to_default_and_no_routes_means_all(tmp_path: Path) -> None:
    routing = build(
        write(
            tmp_path,
            "notifiers:\n  a: {type: jsonl, path: a.jsonl}\n  b: {type: jsonl, path: b.jsonl}\n"
            "routes:\n  default: [b]\n",
        )
    )
    assert [n.name for n in routing.critical] == ["b"]
    routing = build(write(tmp_path, "notifiers:\n  a: {type: jsonl, path: a.jsonl}\n"))
    assert routing.routes is None
    assert [n.name for n in routing.notifiers_for("anything")] == ["a"]
    routing = build(
        write(tmp_path, "notifiers:\n  a: {type: jsonl, path: a.jsonl}\nroutes:\n  default: []\n")
    )
    assert routing.notifiers_for("") == [] and routing.notifiers_for("x") == []


def test_without_a_file_the_environment_settings_apply(tmp_path: Path) -> None:
    cfg = settings(slack_webhook_url=SLACK_URL, notify_file=tmp_path / "n.jsonl")
    routing = build(None, cfg)
    assert [(n.name, n.channel) for n in routing.all_notifiers()] == [
        ("slack", "slack"),
        ("jsonl", "jsonl"),
    ]
    for route in ("", "critical", "whatever"):
        assert [n.name for n in routing.notifiers_for(route)] == ["slack", "jsonl"]
    assert build(None, settings()).all_notifiers() == []


def test_a_file_replaces_the_environment_notifiers(tmp_path: Path) -> None:
    cfg = settings(slack_webhook_url=SLACK_URL)
    path = write(tmp_path, "notifiers:\n  log: {type: jsonl, path: n.jsonl}\n")
    config = load_routing_config(path, cfg, environ=ENV)
    assert list(config.notifiers) == ["log"] and config.source == path
    assert "log (jsonl)" in config.describe()


def test_notifier_factory_builds_on_the_given_client(tmp_path: Path) -> None:
    config = load_routing_file(write(tmp_path, FULL), environ=ENV)
    make = routing_notifiers(config, NotifierMetrics(CollectorRegistry()))

    async def go() -> tuple[list[str], list[str]]:
        async with httpx.AsyncClient() as client:
            notifiers_for, notifiers = make(settings(), client, ReceiverMetrics())
            return [n.name for n in notifiers_for("warning")], [n.name for n in notifiers]

    warning, every = asyncio.run(go())
    assert warning == ["slack-desk", "log"] and len(every) == 7


def test_metrics_are_bound_to_every_instance(tmp_path: Path) -> None:
    registry = CollectorRegistry()

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            load_routing(
                write(tmp_path, FULL),
                settings(),
                client,
                metrics=NotifierMetrics(registry),
                environ=ENV,
            )

    asyncio.run(go())
    for name, channel in (("telegram", "telegram"), ("other", "apprise"), ("log", "jsonl")):
        labels = {"notifier": name, "channel": channel, "result": "ok"}
        assert registry.get_sample_value("alert_receiver_notifier_requests_total", labels) == 0


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (f"{{type: slack, webhook_url: '{SLACK_URL}'}}", "webhook_url"),
        (f"{{type: telegram, bot_token: '{TG_TOKEN}', chat_id: 1}}", "bot_token"),
        (f"{{type: pagerduty, routing_key: {PD_KEY}}}", "routing_key"),
        (
            f"{{type: line, channel_access_token: '{LINE_TOKEN}', to: {LINE_TO}}}",
            "channel_access_token",
        ),
        (f"{{type: webhook, url: '{HOOK_URL}'}}", "url"),
        ("{type: apprise, urls: 'json://localhost/routing-apprise-secret'}", "urls"),
    ],
)
def test_inline_secret_is_rejected_naming_the_field(tmp_path: Path, spec: str, field: str) -> None:
    message = error_of(tmp_path, f"notifiers:\n  n1: {spec}\n")
    assert f"notifiers.n1.{field}: secrets must not be written in the routing file" in message
    assert f"{field}_env" in message and "<redacted>" in message


def test_inline_secret_header_is_rejected(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        "notifiers:\n  hooks: {type: webhook, url_env: HOOK_URL, "
        f"headers: {{Authorization: '{HOOK_AUTH}', X-Api-Key: abc}}}}\n",
    )
    assert "notifiers.hooks.headers.Authorization: looks like a secret" in message
    assert "notifiers.hooks.headers.X-Api-Key: looks like a secret" in message
    assert "abc" not in message


def test_missing_env_var_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "TELEGRAM_BOT_TOKEN"}
    message = error_of(tmp_path, FULL, env)
    assert (
        "notifiers.telegram.bot_token_env: environment variable TELEGRAM_BOT_TOKEN is not set"
        in message
    )
    assert len(message.splitlines()) == 1


def test_missing_secret_file_is_named(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        "notifiers:\n  pd: {type: pagerduty, routing_key_file: /nonexistent/pd_key}\n",
    )
    assert "notifiers.pd.routing_key_file: cannot read /nonexistent/pd_key" in message
    assert "(value: '/nonexistent/pd_key')" in message


def test_unknown_notifier_in_a_route_names_route_and_name(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        "notifiers:\n  log: {type: jsonl, path: n.jsonl}\n"
        "routes:\n  critical: [log, pagerdty]\n  default: [log]\n",
    )
    assert "routes.critical[1]: unknown notifier 'pagerdty' in route 'critical'" in message
    assert "(defined: log)" in message


def test_every_problem_is_reported_with_path_and_value(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        "notifiers:\n"
        "  tg: {type: telegram, bot_token_env: TELEGRAM_BOT_TOKEN, chat_id: 'not a chat'}\n"
        "  ln: {type: line, channel_access_token_env: LINE_TOKEN, to: nobody}\n"
        "  sl: {type: slak, webhook_url_env: SLACK_WEBHOOK_URL}\n"
        "  'bad name': {type: jsonl, path: x}\n"
        "  both: {type: slack, webhook_url_env: SLACK_WEBHOOK_URL, webhook_url_file: /x}\n"
        "  none: {type: discord}\n"
        "  typo: {type: slack, webhook_url_env: SLACK_WEBHOOK_URL, webhook-url: "
        f"'{SLACK_URL}'}}\n"
        "routes:\n  critical: [tg, tg]\n  'bad route!': [tg]\n",
    )
    lines = message.splitlines()
    assert any(
        "notifiers.tg.chat_id: must be a numeric chat id" in x and "'not a chat'" in x
        for x in lines
    )
    assert any("notifiers.ln.to: must be a LINE user" in x and "'nobody'" in x for x in lines)
    assert any("notifiers.sl.type: must be one of " + ", ".join(NOTIFIER_TYPES) in x for x in lines)
    assert any("notifiers.bad name:" in x and "'bad name'" in x for x in lines)
    assert any("notifiers.both.webhook_url_env: give either" in x for x in lines)
    assert any("notifiers.none: missing webhook_url_env or webhook_url_file" in x for x in lines)
    assert any(
        "notifiers.typo.webhook-url: unknown field" in x and "<redacted>" in x for x in lines
    )
    assert any("routes.critical[1]: notifier 'tg' is listed twice" in x for x in lines)
    assert any("routes.bad route!:" in x for x in lines)
    assert any("routes.default: missing" in x for x in lines)


def test_bad_secret_values_are_redacted(tmp_path: Path) -> None:
    env = ENV | {"SLACK_WEBHOOK_URL": "not-a-url-but-secret", "TELEGRAM_BOT_TOKEN": "nope secret"}
    message = error_of(
        tmp_path,
        "notifiers:\n  s: {type: slack, webhook_url_env: SLACK_WEBHOOK_URL}\n"
        "  t: {type: telegram, bot_token_env: TELEGRAM_BOT_TOKEN, chat_id: 1}\n",
        env,
    )
    assert (
        "notifiers.s.webhook_url_env: webhook_url from environment variable SLACK_WEBHOOK_URL: "
        "not an absolute http:// or https:// URL (value: <redacted>)" in message
    )
    assert (
        "notifiers.t.bot_token_env: bot_token from environment variable TELEGRAM_BOT_TOKEN: "
        "not a Telegram bot token" in message
    )
    assert "not-a-url-but-secret" not in message and "nope secret" not in message


def test_bad_apprise_url_names_position_and_scheme(tmp_path: Path) -> None:
    env = ENV | {"APPRISE_URLS": "json://localhost/ok nosuch://user:routing-pw@host"}
    message = error_of(tmp_path, "notifiers:\n  o: {type: apprise, urls_env: APPRISE_URLS}\n", env)
    assert (
        "notifiers.o.urls_env: urls from environment variable APPRISE_URLS: "
        "URL #2 (scheme 'nosuch') is not a supported Apprise URL" in message
    )
    assert "routing-pw" not in message


def test_yaml_errors_do_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.yml"
    path.write_text(f"notifiers:\n  s: {{type: slack, webhook_url: {SLACK_URL}\n", "utf-8")
    with pytest.raises(RoutingError) as info:
        load_routing_file(path, environ=ENV)
    assert str(info.value).startswith(f"{path}: not valid YAML at line ")
    assert SLACK_URL not in str(info.value)
    with pytest.raises(RoutingError, match="cannot read"):
        load_routing_file(tmp_path / "missing.yml", environ=ENV)
    with pytest.raises(RoutingError, match="expected a mapping"):
        load_routing_file(write(tmp_path, "- just a list\n"), environ=ENV)
    message = error_of(tmp_path, "notifiers: {}\nrouting: {}\n")
    assert "routing: unknown top-level field" in message


# --- secrets never shown ----------------------------------------------------------------------


def test_secrets_never_in_repr_str_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = write(tmp_path, FULL)
    routing = build(path, settings(slack_webhook_url=SLACK_URL))
    config: RoutingConfig = routing.config
    shown = [repr(routing), str(routing), repr(config), str(config), config.describe()]
    for cfg in config.notifiers.values():
        shown += [repr(cfg), str(cfg), repr(cfg.options)]
    for notifier in routing.all_notifiers():
        shown += [repr(notifier), str(notifier)]
    logger = logging.getLogger("receiver.routing")
    logger.info("routing: %s", config.describe())
    logger.info("notifiers: %r", routing.all_notifiers())
    logger.info("config: %r", config)
    # Defence in depth: loading registered every secret with the log redaction filter.
    logger.warning("accidental %s %s %s", TG_TOKEN, PD_KEY, HOOK_AUTH)

    async def send_telegram() -> None:
        async with httpx.AsyncClient() as client:
            telegram = load_routing(path, settings(), client, environ=ENV).notifier("telegram")
            assert telegram is not None
            with respx.mock() as mock:
                mock.post(url__startswith="https://api.telegram.org/").mock(
                    return_value=httpx.Response(200, json={"ok": True, "result": {}})
                )
                await telegram.send(notification())

    asyncio.run(send_telegram())  # httpx logs the request URL, which holds the bot token
    text = "\n".join(shown) + "\n" + caplog.text
    for secret in SECRETS:
        assert secret not in text, secret
    assert "slack-desk" in text and "<redacted>" in caplog.text
    assert "HTTP Request: POST https://api.telegram.org/bot<redacted>/sendMessage" in caplog.text
