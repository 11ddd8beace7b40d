"""JSONL notifier: appends one JSON object per notification to ``NOTIFY_FILE``.

Line shape (other exchange-watch components parse it; keep it stable)::

    {"notified_at": "2026-11-21T07:22:05.123Z", "status": "firing" | "resolved",
     "alertname": str, "exchange": str | null, "endpoint": str | null, "severity": str | null,
     "fingerprint": str, "group_key": str, "receiver": str, "starts_at": str, "ends_at": str,
     "summary": str | null, "description": str | null, "labels": {str: str},
     "annotations": {str: str}, "diagnosis": {Diagnosis fields},
     "duration_seconds": float | null}

``duration_seconds`` is how long a resolved incident lasted (``endsAt - startsAt``); ``null``
while firing or when a time is missing.

Each line is written with a single ``write`` in append mode, flushed and ``fsync``-ed before
:meth:`JsonlNotifier.send` returns. String values longer than :data:`VALUE_MAX` characters are
cut with ``…`` so one hostile alert cannot produce a multi-megabyte line.

:meth:`JsonlNotifier.delivered_before` tells the worker, after a crash between the write and
the record of its success, whether the line is already there (so it is not written twice).

A late LLM diagnosis of a notification already written (:mod:`receiver.updates`) is appended
as an ``update`` record, the same way (one write, fsync)::

    {"kind": "update", "notified_at": str, "notification_id": int,
     "first_notified_at": str | null, "status": "firing", "alertname": str,
     "exchange": str | null, "fingerprint": str, "group_key": str, "starts_at": str,
     "ends_at": str, "diagnosis": {Diagnosis fields}}

Only update records have ``kind``: a reader of notifications skips lines whose ``kind`` is
``update`` (the benchmarks do); ``notification_id`` is the receiver's id of the notification it
updates, ``first_notified_at`` when that one was written.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from exchange_common.timestamps import iso_utc, utc_now_iso
from receiver.notifiers.base import Notification, Notifier, NotifyError, SentMessage, UpdateKind
from receiver.notifiers.options import NotifierConfig, NotifierOptions
from receiver.text import cap

VALUE_MAX = 8192
MAX_MAP_ENTRIES = 200
#: How much of the end of the file :meth:`JsonlNotifier.delivered_before` searches.
TAIL_BYTES = 4 * 1024 * 1024
_IDENTITY = ("status", "fingerprint", "group_key", "starts_at", "ends_at")


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
        "duration_seconds": n.duration_seconds,
    }


def render_jsonl_update(
    n: Notification, sent: SentMessage, notified_at: str | None = None
) -> dict[str, Any]:
    """Return the ``update`` record of ``n`` (its new diagnosis; see the module docstring)."""
    first = None if sent.sent_at is None or sent.sent_text is None else iso_utc(sent.sent_at)
    return {
        "kind": "update",
        "notified_at": notified_at or utc_now_iso(),
        "notification_id": n.id,
        "first_notified_at": first,
        "status": n.status,
        "alertname": cap(n.alertname, VALUE_MAX),
        "exchange": _opt(n.exchange),
        "fingerprint": cap(n.fingerprint, VALUE_MAX),
        "group_key": cap(n.group_key, VALUE_MAX),
        "starts_at": n.starts_at,
        "ends_at": n.ends_at,
        "diagnosis": n.diagnosis.model_dump(mode="json"),
    }


class JsonlOptions(NotifierOptions):
    """``type: jsonl``."""

    path: Path


class JsonlNotifier(Notifier):
    """Appends notifications to a JSON-lines file.

    Args:
        path: the file; its parent directory is created if missing.
        name: instance name (default ``"jsonl"``).
    """

    channel = "jsonl"
    options = JsonlOptions

    @classmethod
    def from_config(cls, config: NotifierConfig, client: object = None) -> JsonlNotifier:
        """Build from a routing entry (``type: jsonl``; no HTTP client needed)."""
        o = config.typed(JsonlOptions)
        return cls(o.path, name=config.name)

    def __init__(self, path: Path, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._path = path
        self._lock = asyncio.Lock()

    def _append(self, line: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def _contains(self, identity: dict[str, Any]) -> bool:
        try:
            with open(self._path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - TAIL_BYTES))
                tail = fh.read()
        except FileNotFoundError:
            return False
        for raw in reversed(tail.split(b"\n")):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # a cut first line or a torn write
            if not isinstance(record, dict) or record.get("kind") == "update":
                continue
            if all(record.get(k) == v for k, v in identity.items()):
                return True
        return False

    async def delivered_before(self, notification: Notification) -> bool:
        """True if the last :data:`TAIL_BYTES` of the file hold a line for this notification
        (same status, fingerprint, group key, startsAt and endsAt).

        Raises:
            NotifyError: the file exists but cannot be read.
        """
        record = render_jsonl(notification, notified_at="-")
        identity = {k: record[k] for k in _IDENTITY}
        async with self._lock:
            try:
                return await asyncio.to_thread(self._contains, identity)
            except OSError as exc:
                raise NotifyError(f"{self.name} read failed ({exc.__class__.__name__})") from None

    async def _send(self, notification: Notification) -> None:
        """Append one line and fsync it.

        Raises:
            NotifyError: the file cannot be written (the message names the error class only).
        """
        await self._write(render_jsonl(notification))

    async def _send_update(self, notification: Notification, sent: SentMessage) -> UpdateKind:
        """Append the ``update`` record (:func:`render_jsonl_update`) and fsync it.

        Raises:
            NotifyError: the file cannot be written.
        """
        await self._write(render_jsonl_update(notification, sent))
        return "recorded"

    async def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                raise NotifyError(f"{self.name} write failed ({exc.__class__.__name__})") from None
