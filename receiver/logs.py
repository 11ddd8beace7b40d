"""Log redaction: configured secrets never reach log output.

Secrets (webhook URLs, the LLM API key) are kept out of log messages by construction; this
filter is defence in depth. It is attached to the receiver's and the HTTP libraries' loggers
(``httpx`` logs request URLs at INFO, which for webhooks are secrets) and replaces every
occurrence of a registered secret - and of a webhook URL's path - with ``<redacted>`` in the
formatted message and in formatted tracebacks.
"""

from __future__ import annotations

import logging
import threading
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
