"""Apprise notifier: any service Apprise supports (https://github.com/caronc/apprise/wiki),
configured by Apprise URLs such as ``pover://user@token``, ``mailto://…``, ``ntfy://topic``.

How it uses the ``apprise`` package (https://github.com/caronc/apprise/wiki/Development_API):

* each URL is loaded into its own ``apprise.Apprise`` object (``add(url)`` returns ``False`` for
  an unsupported or malformed URL: a configuration error naming the URL's position and scheme,
  never the URL, which usually holds credentials);
* a message is rendered per URL within that service's own limits, read from the plugin
  (``body_maxlen``, ``title_maxlen``; a service without titles, ``title_maxlen == 0``, gets the
  headline as the first body line), and sent as ``body_format=text`` so Apprise escapes it for
  the service;
* ``Apprise.notify()`` blocks (it uses ``requests``), so it runs in a worker thread
  (:func:`asyncio.to_thread`); it returns a truthy result only when the service accepted it.

Apprise reports success or failure but no status code, so every failure is a retryable
:class:`NotifyError` (the worker gives up after its attempts). URLs that succeeded are
remembered per notification, so a retry only re-sends to the URLs that failed. ``notify_type``
is ``failure`` for a firing critical alert, ``warning`` for warning, ``info`` otherwise and
``success`` for resolved. Text goes through :func:`receiver.text.neutralise_text` (no
``@everyone``/``<!channel>`` pings when the service is a chat).

Apprise logs the URLs it loads and calls (``apprise`` logger), normalised and only partly masked.
Before any URL is loaded, :func:`protect_url` registers it and its parts (host, user, password,
path segments, query values) with a filter on the ``apprise`` logger that replaces them with
``<redacted>``; that filter only touches Apprise's own records, so common words such as a host
name are not hidden anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import SecretStr

from receiver.logs import SecretRedactingFilter
from receiver.notifiers.base import Notification, Notifier, NotifyError
from receiver.notifiers.common import Style, compose, headline
from receiver.notifiers.options import NotifierConfig, NotifierOptions
from receiver.text import fit, neutralise_text

if TYPE_CHECKING:
    import apprise

#: Largest body sent to any service (many have no practical limit; keep messages readable).
BODY_MAX = 4000
TITLE_MAX = 250
_REMEMBERED = 1024

STYLE = Style(escape=neutralise_text)


_MIN_PART = 4


class _AppriseLogRedactor(SecretRedactingFilter):
    """The shared redacting filter, fed every part of each Apprise URL (host, user, password,
    path pieces, query values — Apprise logs them separately) for the ``apprise`` logger."""

    def add_url(self, url: str) -> None:
        """Register ``url`` and each of its parts of at least 4 characters."""
        parts = {url.strip()}
        try:
            split = urlsplit(url.strip())
            host = split.netloc.rsplit("@", 1)[-1]  # as written: .hostname lowercases
            pieces = [split.netloc, host, host.split(":")[0], split.hostname or ""]
            pieces += [split.username or ""]
            pieces += [split.password or "", split.path.strip("/")]
            pieces += split.path.split("/")
            pieces += [v for _, v in parse_qsl(split.query, keep_blank_values=False)]
        except ValueError:
            pieces = []
        for piece in pieces:
            for form in (piece, unquote(piece)):
                if len(form) >= _MIN_PART:
                    parts.add(form)
        with self._lock:
            self._secrets.update(parts)


_REDACTOR = _AppriseLogRedactor()


def protect_url(url: str) -> None:
    """Keep ``url`` and its parts out of the ``apprise`` logger's output (call before loading)."""
    _REDACTOR.add_url(url)
    import apprise

    apprise_logger = logging.getLogger(getattr(apprise, "LOGGER_NAME", "apprise"))
    if _REDACTOR not in apprise_logger.filters:
        apprise_logger.addFilter(_REDACTOR)


class AppriseUrlError(ValueError):
    """An Apprise URL is not usable; the message names its position and scheme only."""


def url_scheme(url: str) -> str:
    """The scheme of an Apprise URL (``"pover"``), safe to show; ``"?"`` if none."""
    scheme = urlsplit(url.strip()).scheme if "://" in url else ""
    return scheme.lower() if scheme.isascii() and scheme.replace("+", "").isalnum() else "?"


def split_urls(value: str) -> list[str]:
    """Split a list of Apprise URLs separated by whitespace, commas or newlines."""
    return [u for u in value.replace(",", " ").split() if u]


@dataclass
class _Target:
    index: int
    scheme: str
    apobj: Any  # apprise.Apprise with exactly one service
    body_max: int
    title_max: int


def load_targets(urls: Sequence[SecretStr]) -> list[_Target]:
    """Load each URL into its own Apprise object.

    Raises:
        AppriseUrlError: a URL Apprise cannot load (message: position and scheme only).
    """
    targets: list[_Target] = []
    for i, secret in enumerate(urls):
        url = secret.get_secret_value()
        protect_url(url)
        import apprise  # imported on first use: loading every plugin takes ~0.1 s

        apobj = apprise.Apprise()
        if not apobj.add(url) or len(apobj) != 1:
            raise AppriseUrlError(
                f"URL #{i + 1} (scheme {url_scheme(url)!r}) is not a supported Apprise URL"
            )
        plugin = apobj[0]
        body_max = int(getattr(plugin, "body_maxlen", BODY_MAX) or BODY_MAX)
        title_max = int(getattr(plugin, "title_maxlen", TITLE_MAX) or 0)
        targets.append(
            _Target(
                index=i,
                scheme=url_scheme(url),
                apobj=apobj,
                body_max=max(100, min(body_max, BODY_MAX)),
                title_max=max(0, min(title_max, TITLE_MAX)),
            )
        )
    return targets


def notify_type(n: Notification) -> apprise.NotifyType:
    """Apprise ``notify_type`` (icon/colour) for ``n``."""
    import apprise

    if not n.firing:
        return apprise.NotifyType.SUCCESS
    severity = (n.severity or "").lower()
    if severity in ("critical", "page", "error", "high"):
        return apprise.NotifyType.FAILURE
    if severity in ("warning", "warn", "medium"):
        return apprise.NotifyType.WARNING
    return apprise.NotifyType.INFO


def render_apprise(
    n: Notification, *, body_max: int, title_max: int, now: float | None = None
) -> tuple[str, str]:
    """``(title, body)`` for a service with those limits (title ``""`` if it has none).

    The title is the headline; the body starts with the rest of the five-line summary (the
    headline too when the service has no title), then a separator line and the details
    (:func:`receiver.notifiers.common.compose`; ``now``: Unix seconds for the alert's age).
    """
    if title_max > 0:
        title = fit(headline(n), title_max, neutralise_text)
        return title, compose(n, STYLE, body_max, with_headline=False, now=now)
    return "", compose(n, STYLE, body_max, now=now)


class AppriseOptions(NotifierOptions):
    """``type: apprise`` (secret ``urls``)."""


class AppriseNotifier(Notifier):
    """Sends through one or more Apprise URLs.

    Args:
        urls: Apprise URLs (secrets).
        name: instance name (default ``"apprise"``).

    Raises:
        AppriseUrlError: a URL cannot be loaded.
    """

    channel = "apprise"
    options = AppriseOptions
    secret_fields = ("urls",)

    @classmethod
    def check_secret(cls, field: str, value: str) -> str | None:
        """The value must hold at least one URL, and Apprise must load every one."""
        urls = split_urls(value)
        if not urls:
            return "holds no Apprise URL"
        try:
            load_targets([SecretStr(u) for u in urls])
        except AppriseUrlError as exc:
            return str(exc)
        return None

    @classmethod
    def redaction_values(cls, field: str, value: str) -> list[str]:
        """The whole value and each URL in it."""
        return [value, *split_urls(value)]

    @classmethod
    def from_config(cls, config: NotifierConfig, client: object = None) -> AppriseNotifier:
        """Build from a routing entry (``type: apprise``; Apprise does its own HTTP)."""
        urls = [SecretStr(u) for u in split_urls(config.secrets["urls"].get_secret_value())]
        return cls(urls, name=config.name)

    def __init__(self, urls: Sequence[SecretStr], *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not urls:
            raise AppriseUrlError("no Apprise URL given")
        self._targets = load_targets(urls)
        self._done: OrderedDict[str, set[int]] = OrderedDict()

    def __repr__(self) -> str:
        schemes = ",".join(t.scheme for t in self._targets)
        return f"<AppriseNotifier name={self.name!r} schemes={schemes!r}>"

    @staticmethod
    def _notify(target: _Target, title: str, body: str, kind: apprise.NotifyType) -> bool:
        import apprise

        try:
            result = target.apobj.notify(
                body=body, title=title, notify_type=kind, body_format=apprise.NotifyFormat.TEXT
            )
        except Exception:  # a plugin bug must not look like success
            return False
        return bool(result)

    async def _send(self, notification: Notification) -> None:
        """Notify every URL not yet successful for this notification, each in a thread.

        Raises:
            NotifyError: at least one URL failed (names their positions and schemes).
        """
        key = notification.delivery_key
        done = self._done.get(key, set())
        kind = notify_type(notification)
        todo = [t for t in self._targets if t.index not in done]
        calls = []
        for target in todo:
            title, body = render_apprise(
                notification, body_max=target.body_max, title_max=target.title_max
            )
            calls.append(asyncio.to_thread(self._notify, target, title, body, kind))
        results = await asyncio.gather(*calls)
        failed = [t for t, ok in zip(todo, results, strict=True) if not ok]
        done = done | {t.index for t, ok in zip(todo, results, strict=True) if ok}
        if failed:
            self._done[key] = done
            self._done.move_to_end(key)
            while len(self._done) > _REMEMBERED:
                self._done.popitem(last=False)
            where = ", ".join(f"#{t.index + 1} ({t.scheme})" for t in failed)
            raise NotifyError(
                f"{self.name}: {len(failed)} of {len(self._targets)} Apprise URLs failed: {where}"
            )
        self._done.pop(key, None)
