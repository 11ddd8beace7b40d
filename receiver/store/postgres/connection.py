"""Connection settings of the PostgreSQL backend: the URL (a secret), the session settings
every connection gets, and error messages with the secrets taken out.

libpq's parameters (``connect_timeout``, ``keepalives*``, ``tcp_user_timeout``, ``options``)
are documented in PostgreSQL's manual, "Connection Strings" (libpq-connect); the server
settings put in ``options`` (``statement_timeout``, ``lock_timeout``,
``idle_in_transaction_session_timeout``) in "Client Connection Defaults".
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, Self
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

STATEMENT_TIMEOUT_MS = 5000
"""No statement (or lock wait) runs longer than this: an intake stuck behind a lock answers 503
well within Alertmanager's webhook timeout (10 s by default) instead of hanging."""

IDLE_IN_TRANSACTION_MS = 30_000
"""A session left idle inside a transaction (a stuck client) is ended, releasing its locks."""

_URL_USERINFO = re.compile(r"(postgres(?:ql)?://)[^/@\s]*@", re.IGNORECASE)


class ConnectionSettings:
    """The parsed database URL and what every connection is opened with.

    Args:
        url: ``postgresql://user:password@host:port/dbname[?param=value...]`` (libpq URI).
        timeout: seconds to wait for a connection; libpq's ``connect_timeout`` is this rounded
            up (libpq treats values under 2 as 2).

    Raises:
        ValueError: the URL is not a libpq connection string (the message has no secret).
    """

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.Error:
            raise ValueError("the database URL is not a valid PostgreSQL URL") from None
        self._secrets = [s for s in (url, str(params.get("password") or "")) if s]
        self._secrets += [quote(s, safe="") for s in self._secrets]
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        port = str(params.get("port") or "5432")
        self.dbname = str(params.get("dbname") or params.get("user") or "postgres")
        self.address = f"{host}:{port}"
        options = str(params.get("options") or "")
        session = (
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS}"
            f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
            " -c synchronous_commit=on"
        )
        defaults = {
            "connect_timeout": str(max(2, math.ceil(timeout))),
            "keepalives": "1",
            "keepalives_idle": "5",
            "keepalives_interval": "2",
            "keepalives_count": "3",
            "tcp_user_timeout": str(int(max(timeout, 5.0) * 1000)),
            "application_name": "exchange-watch-receiver",
        }
        self.params: dict[str, Any] = {**defaults, **params}
        self.params["options"] = f"{session} {options}".strip()

    def describe(self) -> str:
        """``postgresql://host:port/dbname``: no user, no password."""
        return f"postgresql://{self.address}/{self.dbname}"

    def scrub(self, text: str) -> str:
        """``text`` without the URL, the password or any URL's user info."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return _URL_USERINFO.sub(r"\1***@", text)

    def error_message(self, exc: BaseException, last_failure: str | None = None) -> str:
        """A one-line description of a driver or pool error (and of the last failed connection
        attempt, when given), secrets removed, for :class:`~receiver.store.StoreError`."""
        detail = " ".join(str(exc).split()) or type(exc).__name__
        text = f"{self.describe()}: {type(exc).__name__}: {detail}"
        if last_failure:
            text += f" (last connection attempt: {last_failure})"
        return self.scrub(text)


class RecordingConnection(psycopg.Connection[TupleRow]):
    """A connection class that remembers why the last connection attempt failed, so a pool
    timeout can say why (refused, authentication failed...) instead of only "no connection".

    Use a subclass per pool (:func:`recording_connection_class`): the record is per class.
    """

    last_failure: ClassVar[str | None] = None

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        """:meth:`psycopg.Connection.connect`, recording the outcome in ``last_failure``."""
        try:
            conn = super().connect(conninfo, **kwargs)
        except psycopg.Error as exc:
            cls.last_failure = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            raise
        cls.last_failure = None
        return conn


def recording_connection_class() -> type[RecordingConnection]:
    """A fresh subclass of :class:`RecordingConnection` (its own ``last_failure``)."""
    return type("StoreConnection", (RecordingConnection,), {"last_failure": None})
