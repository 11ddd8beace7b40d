"""FastAPI application: Alertmanager webhook intake, health check, background worker.

HTTP API:

* ``POST /alerts`` and ``POST /alerts/{route}`` - Alertmanager webhook (version "4").
  ``200 {"status": "stored", "alerts": N}`` once the payload is durably stored (repeats are
  acknowledged the same way but not notified again); ``400`` body is not JSON; ``422`` body does
  not match the webhook schema (``{"detail": "alerts.0.startsAt: ...", "errors": [{"field",
  "message"}]}``); ``413`` body larger than ``MAX_BODY_BYTES``; ``503`` storage unavailable
  (Alertmanager retries 5xx, not 4xx - see shared/reference/alertmanager-and-notifiers.md).
* ``POST /heartbeat`` - Alertmanager's ``Watchdog`` route (dead man's switch); ``GET
  /heartbeat`` - the last one.
* ``GET /healthz`` - ``200 {"status": "ok"}``; ``GET /metrics`` - the receiver's own metrics.

Processing (diagnosis, chat) happens in :class:`receiver.worker.Worker`, never inside the
request, so Alertmanager is answered within milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from receiver.diagnosis.engine import DiagnosisEngine
from receiver.logs import install_redaction
from receiver.metrics import ReceiverMetrics
from receiver.models import AlertmanagerWebhook, format_validation_errors
from receiver.notifiers.base import Notifier
from receiver.notifiers.discord import DiscordNotifier
from receiver.notifiers.jsonl import JsonlNotifier
from receiver.notifiers.slack import SlackNotifier
from receiver.settings import Settings, load_settings
from receiver.store import Store, StoreError
from receiver.worker import Worker

log = logging.getLogger(__name__)

_ROUTE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

#: Minimum spacing between two messages to one channel (Slack: about 1 message/s per channel,
#: https://api.slack.com/apis/rate-limits; Discord webhooks allow a few per second).
MIN_SEND_INTERVAL = {"slack": 1.0, "discord": 0.5}


def build_notifiers(settings: Settings, client: httpx.AsyncClient) -> list[Notifier]:
    """Return one notifier per configured channel (Slack, Discord, JSONL), possibly none."""
    notifiers: list[Notifier] = []
    if settings.slack_webhook_url is not None:
        notifiers.append(SlackNotifier(settings.slack_webhook_url, client))
    if settings.discord_webhook_url is not None:
        notifiers.append(DiscordNotifier(settings.discord_webhook_url, client))
    if settings.notify_file is not None:
        notifiers.append(JsonlNotifier(settings.notify_file))
    return notifiers


def _error(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


class _BodyTooLargeError(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings | None = None, *, start_worker: bool = True) -> FastAPI:
    """Create the receiver application.

    Args:
        settings: configuration; read from the environment when ``None``.
        start_worker: start the background worker in the lifespan (tests may disable it to
            leave stored notifications pending).

    Returns:
        The FastAPI app. ``app.state`` holds ``settings``, ``store`` and (while running)
        ``worker``.

    Raises:
        SettingsError: ``settings`` is ``None`` and the environment has an invalid value.
    """
    cfg = settings if settings is not None else load_settings()
    install_redaction(cfg.secret_values())
    store = Store(cfg.receiver_db_path)
    metrics = ReceiverMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(store.init)
        except StoreError as exc:
            # Keep serving: intake answers 503 until the database becomes usable.
            log.error("database unavailable at startup: %s", exc)
        client = httpx.AsyncClient(follow_redirects=False)
        notifiers = build_notifiers(cfg, client)
        metrics.deliveries_for([n.channel for n in notifiers])
        worker = Worker(
            store,
            DiagnosisEngine(cfg, client),
            notifiers,
            metrics=metrics,
            concurrency=cfg.worker_concurrency,
            max_attempts=cfg.notify_max_attempts,
            retry_base_seconds=cfg.notify_retry_base_seconds,
            max_retry_after_seconds=cfg.notify_max_retry_after_seconds,
            min_send_interval=MIN_SEND_INTERVAL,
        )
        app.state.worker = worker
        if start_worker:
            worker.start()
        try:
            yield
        finally:
            await worker.stop()
            await client.aclose()
            app.state.worker = None

    app = FastAPI(
        title="exchange-watch alert receiver",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = cfg
    app.state.store = store
    app.state.worker = None
    app.state.last_heartbeat = None

    async def intake(request: Request, route: str) -> JSONResponse:
        if route and not _ROUTE.match(route):
            return _error(422, "route: must be 1-64 characters of A-Z a-z 0-9 _ . -")
        try:
            body = await _read_body(request, cfg.max_body_bytes)
        except _BodyTooLargeError:
            metrics.webhooks.labels("too_large").inc()
            return _error(413, f"body: larger than {cfg.max_body_bytes} bytes")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            reason = exc.__class__.__name__ if isinstance(exc, RecursionError) else str(exc)
            metrics.webhooks.labels("invalid").inc()
            return _error(400, f"body: not valid JSON ({reason[:200]})")
        if not isinstance(data, dict):
            metrics.webhooks.labels("invalid").inc()
            return _error(422, "body: must be a JSON object (Alertmanager webhook)")
        try:
            webhook = AlertmanagerWebhook.model_validate(data)
        except ValidationError as exc:
            errors = format_validation_errors(exc.errors(include_input=False))
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
            metrics.webhooks.labels("invalid").inc()
            return _error(422, detail, errors[:50])
        except RecursionError:
            metrics.webhooks.labels("invalid").inc()
            return _error(422, "body: nested too deeply")
        try:
            result = await asyncio.to_thread(store.ingest, webhook, route, data)
        except StoreError as exc:
            log.error("cannot store webhook (answering 503 so Alertmanager retries): %s", exc)
            metrics.webhooks.labels("storage_error").inc()
            return _error(503, "storage unavailable; retry later")
        log.info(
            "stored webhook %d: %d alerts (%d new, %d duplicate), route=%s",
            result.webhook_id,
            len(webhook.alerts),
            len(result.new_ids),
            result.duplicates,
            route or "-",
        )
        if webhook.truncated_alerts:
            log.warning(
                "webhook %d: Alertmanager dropped %d alerts (max_alerts); they are not notified",
                result.webhook_id,
                webhook.truncated_alerts,
            )
        metrics.webhooks.labels("stored").inc()
        worker: Worker | None = app.state.worker
        if worker is not None and result.new_ids:
            worker.wake()
        return JSONResponse({"status": "stored", "alerts": len(webhook.alerts)})

    @app.post("/alerts")
    async def post_alerts(request: Request) -> JSONResponse:
        """Receive an Alertmanager webhook on the default route."""
        return await intake(request, "")

    @app.post("/alerts/{route}")
    async def post_alerts_route(route: str, request: Request) -> JSONResponse:
        """Receive an Alertmanager webhook on a named route (stored with the notification)."""
        return await intake(request, route)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        """The receiver's own metrics in the Prometheus text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/heartbeat")
    async def heartbeat(request: Request) -> JSONResponse:
        """Alertmanager's ``Watchdog`` route: record that the alerting pipeline is alive.

        Accepts the webhook body (not stored, not notified); answers 200 with the time
        recorded. ``GET /heartbeat`` reports the last one.
        """
        try:
            body = await _read_body(request, cfg.max_body_bytes)
        except _BodyTooLargeError:
            return _error(413, f"body: larger than {cfg.max_body_bytes} bytes")
        try:
            data = json.loads(body) if body else {}
        except ValueError as exc:
            return _error(400, f"body: not valid JSON ({str(exc)[:200]})")
        if not isinstance(data, dict):
            return _error(422, "body: must be a JSON object (Alertmanager webhook)")
        now = time.time()
        app.state.last_heartbeat = now
        metrics.last_heartbeat.set(now)
        metrics.heartbeats.inc()
        return JSONResponse({"status": "ok", "received_at": now})

    @app.get("/heartbeat")
    async def heartbeat_status() -> dict[str, Any]:
        """``{"last_heartbeat": Unix seconds or null, "age_seconds": float or null}``."""
        last = app.state.last_heartbeat
        return {"last_heartbeat": last, "age_seconds": None if last is None else time.time() - last}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: ``{"status": "ok"}``."""
        return {"status": "ok"}

    return app
