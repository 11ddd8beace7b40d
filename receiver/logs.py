"""Log redaction: configured secrets never reach log output.

Secrets (webhook URLs, the LLM API key) are kept out of log messages by construction; this
filter is defence in depth. It is attached to the receiver's and the HTTP libraries' loggers
(``httpx`` logs request URLs at INFO, which for webhooks are secrets) and replaces every
occurrence of a registered secret - and of a webhook URL's path - with ``<redacted>`` in the
formatted message and in formatted tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

REDACTED = "<redacted>"
_PREFIXES = ("receiver", "httpx", "httpcore", "uvicorn")
# Logger filters only see records logged on that exact logger (not on children), so every
# logger that may carry a secret is listed; loggers already created under _PREFIXES are added.
_LOGGERS = (
    "receiver",
    "receiver.app",
    "receiver.cli",
    "receiver.worker",
    "receiver.diagnosis.engine",
    "receiver.diagnosis.llm",
    "receiver.diagnosis.evidence",
    "receiver.notifiers",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
)


class SecretRedactingFilter(logging.Filter):
    """A filter that rewrites records so none of the registered secrets appear."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        """Register ``secret`` (and, for a URL, its path+query, which is the secret part)."""
        if len(secret) < 6:
            return
        with self._lock:
            self._secrets.add(secret)
            try:
                parts = urlsplit(secret)
            except ValueError:
                return
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            if parts.scheme and len(tail) >= 8:
                self._secrets.add(tail)

    def redact(self, text: str) -> str:
        """Return ``text`` with every registered secret replaced by ``<redacted>``."""
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        redacted = self.redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


_FILTER = SecretRedactingFilter()


def install_redaction(secrets: list[str]) -> SecretRedactingFilter:
    """Register ``secrets`` and attach the shared redacting filter to the relevant loggers.

    Idempotent: calling it again only adds secrets. Returns the shared filter.
    """
    for secret in secrets:
        _FILTER.add(secret)
    existing = [
        name for name in list(logging.root.manager.loggerDict) if name.split(".")[0] in _PREFIXES
    ]
    for name in {*_LOGGERS, *existing}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    return _FILTER


class SummarizedLog:
    """A routine per-event INFO line that stays cheap under load.

    The first event after ``interval`` seconds without an INFO line of this kind is logged at
    INFO as it is (so a quiet receiver keeps the full trail); events inside that window are
    logged at DEBUG and counted, and once the window has passed one INFO summary line says how
    many there were (``summary`` formatted with the count and the summed ``totals``). Warnings
    and errors are never routed through this: log them directly.

    Must be used from one event loop's thread (the summary is scheduled with ``call_later``).

    Args:
        logger: where to log.
        summary: %-format of the summary line; its arguments are the count, the window in
            seconds, then the summed totals in order.
        interval: seconds between two INFO lines of this kind.
        clock: monotonic clock (tests may inject one).
    """

    def __init__(
        self,
        logger: logging.Logger,
        summary: str,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._summary = summary
        self._interval = interval
        self._clock = clock
        self._last_info = float("-inf")
        self._count = 0
        self._totals: list[int] = []
        self._timer: asyncio.TimerHandle | None = None

    def log(self, totals: tuple[int, ...], msg: str, *args: object) -> None:
        """Log one event (``msg % args``); ``totals`` are summed into the summary line."""
        now = self._clock()
        if now - self._last_info >= self._interval and not self._count:
            self._last_info = now
            self._log.info(msg, *args, stacklevel=2)
            return
        self._log.debug(msg, *args, stacklevel=2)
        if self._count:
            self._totals = [a + b for a, b in zip(self._totals, totals, strict=True)]
        else:
            self._totals = list(totals)
        self._count += 1
        if self._timer is None:
            delay = max(0.0, self._last_info + self._interval - now)
            try:
                self._timer = asyncio.get_running_loop().call_later(delay, self.flush)
            except RuntimeError:  # no loop (synchronous use): summarise at once
                self.flush()

    def flush(self) -> None:
        """Log the summary of the events counted so far, if any (also at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._count:
            return
        now = self._clock()  # _last_info is set: the first event of a window is logged at INFO
        self._log.info(self._summary, self._count, now - self._last_info, *self._totals)
        self._last_info = now
        self._count = 0
        self._totals = []
