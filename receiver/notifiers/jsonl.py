"""JSONL notifier: appends one JSON object per notification to ``NOTIFY_FILE``.

Line shape (other exchange-watch components parse it; keep it stable)::

    {"notified_at": "2026-11-21T07:22:05.123Z", "status": "firing" | "resolved",
     "alertname": str, "exchange": str | null, "endpoint": str | null, "severity": str | null,
     "fingerprint": str, "group_key": str, "receiver": str, "starts_at": str, "ends_at": str,
     "summary": str | null, "description": str | null, "labels": {str: str},
     "annotations": {str: str}, "diagnosis": {Diagnosis fields}}

Each line is written with a single ``write`` in append mode, flushed and ``fsync``-ed before
:meth:`JsonlNotifier.send` returns. String values longer than :data:`VALUE_MAX` characters are
cut with ``…`` so one hostile alert cannot produce a multi-megabyte line.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from receiver.models import utc_now_iso
from receiver.notifiers.base import Notification, Notifier, NotifyError
from receiver.text import cap

VALUE_MAX = 8192
MAX_MAP_ENTRIES = 200


def _capmap(values: dict[str, str]) -> dict[str, str]:
    items = list(values.items())[:MAX_MAP_ENTRIES]
    return {cap(k, 256): cap(v, VALUE_MAX) for k, v in items}


def _opt(value: str | None) -> str | None:
    return None if value is None else cap(value, VALUE_MAX)


def render_jsonl(n: Notification, notified_at: str | None = None) -> dict[str, Any]:
    """Return the JSONL record for ``n`` (see the module docstring for the exact shape)."""
    return {
        "notified_at": notified_at or utc_now_iso(),
        "status": n.status,
        "alertname": cap(n.alertname, VALUE_MAX),
        "exchange": _opt(n.exchange),
        "endpoint": _opt(n.endpoint),
        "severity": _opt(n.severity),
        "fingerprint": cap(n.fingerprint, VALUE_MAX),
        "group_key": cap(n.group_key, VALUE_MAX),
        "receiver": cap(n.receiver, VALUE_MAX),
        "starts_at": n.starts_at,
        "ends_at": n.ends_at,
        "summary": _opt(n.summary),
        "description": _opt(n.description),
        "labels": _capmap(n.labels),
        "annotations": _capmap(n.annotations),
        "diagnosis": n.diagnosis.model_dump(mode="json"),
    }


class JsonlNotifier(Notifier):
    """Appends notifications to a JSON-lines file.

    Args:
        path: the file; its parent directory is created if missing.
    """

    channel = "jsonl"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = asyncio.Lock()

    def _append(self, line: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    async def send(self, notification: Notification) -> None:
        """Append one line and fsync it.

        Raises:
            NotifyError: the file cannot be written (the message names the error class only).
        """
        record = render_jsonl(notification)
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                raise NotifyError(f"jsonl write failed ({exc.__class__.__name__})") from None
