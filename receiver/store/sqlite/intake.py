"""SQLite intake: webhooks and their notifications, and the dead man's synthetic notifications.

Statements only: the caller holds the write transaction (:meth:`SQLiteStore.ingest_many`,
:meth:`SQLiteStore.deadman_transition`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

from receiver.models import AlertmanagerWebhook
from receiver.store.records import IngestItem, IngestResult, SyntheticNotification


class SerialisedWebhook(NamedTuple):
    """A webhook ready to insert, serialised before the write lock is taken.

    Attributes:
        webhook: the validated webhook.
        route: the route it came in on.
        raw_text: the body to keep verbatim in ``webhooks.payload``.
        alerts: each alert's JSON (wire/alias field names), in order.
    """

    webhook: AlertmanagerWebhook
    route: str
    raw_text: str
    alerts: list[str]


def serialise(items: Sequence[IngestItem]) -> list[SerialisedWebhook]:
    """Serialise webhooks for :func:`insert_webhook` (JSON work kept out of the transaction)."""
    rows = []
    for webhook, route, raw in items:
        if isinstance(raw, str):
            raw_text = raw
        elif raw is None:
            raw_text = json.dumps(webhook.model_dump(mode="json", by_alias=True))
        else:
            raw_text = json.dumps(raw)
        # Serialised by pydantic-core: the same JSON object as json.dumps of model_dump.
        alerts = [alert.model_dump_json(by_alias=True) for alert in webhook.alerts]
        rows.append(SerialisedWebhook(webhook, route, raw_text, alerts))
    return rows


def insert_webhook(conn: sqlite3.Connection, now: str, row: SerialisedWebhook) -> IngestResult:
    """Insert one webhook and a notification per alert not stored yet (``now``: ISO time)."""
    webhook, route = row.webhook, row.route
    cur = conn.execute(
        "INSERT INTO webhooks (received_at, route, group_key, receiver, status,"
        " alert_count, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            now,
            route,
            webhook.group_key,
            webhook.receiver,
            webhook.status,
            len(webhook.alerts),
            row.raw_text,
        ),
    )
    webhook_id = int(cur.lastrowid or 0)
    new_ids: list[int] = []
    duplicates = 0
    for alert, stored in zip(webhook.alerts, row.alerts, strict=True):
        cur = conn.execute(
            "INSERT OR IGNORE INTO notifications (webhook_id, group_key, fingerprint,"
            " status, starts_at, ends_at, alertname, route, receiver, external_url,"
            " alert, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                webhook_id,
                webhook.group_key,
                alert.fingerprint,
                alert.status,
                alert.starts_at,
                alert.ends_at,
                alert.alertname,
                route,
                webhook.receiver,
                webhook.external_url,
                stored,
                now,
                now,
            ),
        )
        if cur.rowcount == 1:
            new_ids.append(int(cur.lastrowid or 0))
        else:
            duplicates += 1
    return IngestResult(webhook_id=webhook_id, new_ids=new_ids, duplicates=duplicates)


def insert_synthetic(conn: sqlite3.Connection, now: str, item: SyntheticNotification) -> int | None:
    """Insert a synthetic notification (and its audit webhook row) with its diagnosis.

    Returns:
        The new notification's id, ``None`` when its idempotency key was already stored.
    """
    alert = item.alert
    cur = conn.execute(
        "INSERT INTO webhooks (received_at, route, group_key, receiver, status,"
        " alert_count, payload) VALUES (?, ?, ?, ?, ?, 1, ?)",
        (
            now,
            item.route,
            item.group_key,
            item.receiver,
            alert["status"],
            json.dumps({"origin": item.origin, "alerts": [alert]}),
        ),
    )
    webhook_id = int(cur.lastrowid or 0)
    cur = conn.execute(
        "INSERT OR IGNORE INTO notifications (webhook_id, group_key, fingerprint, status,"
        " starts_at, ends_at, alertname, route, receiver, external_url, alert, diagnosis,"
        " created_at, updated_at, origin)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?)",
        (
            webhook_id,
            item.group_key,
            alert["fingerprint"],
            alert["status"],
            alert["startsAt"],
            alert["endsAt"],
            alert["labels"].get("alertname", "unknown"),
            item.route,
            item.receiver,
            json.dumps(alert),
            json.dumps(item.diagnosis),
            now,
            now,
            item.origin,
        ),
    )
    return int(cur.lastrowid or 0) if cur.rowcount == 1 else None
