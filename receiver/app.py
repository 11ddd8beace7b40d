"""FastAPI application: Alertmanager webhook intake, heartbeat, health, background worker.

HTTP API (schema at ``GET /openapi.json``):

* ``POST /alerts`` and ``POST /alerts/{route}`` - Alertmanager webhook (version "4").
  ``200 {"status": "stored", "alerts": N, "new": n, "duplicates": d}`` once the payload is
  durably stored (repeats are acknowledged the same way but not notified again); ``400`` body is
  not JSON; ``401`` missing or wrong credentials (when inbound auth is configured, with
  ``WWW-Authenticate``); ``413`` body larger than ``MAX_BODY_BYTES``; ``422`` body or route does
  not match the schema (``{"detail": "alerts.0.startsAt: ...", "errors": [{"field",
  "message"}]}``); ``503`` storage unavailable (Alertmanager retries 5xx, not 4xx - see
  shared/reference/alertmanager-and-notifiers.md). Invalid input is never stored.
* ``POST /heartbeat`` - Alertmanager's ``Watchdog`` route (dead man's switch), same auth;
  ``GET /heartbeat`` - the last heartbeat and the switch's state.
* ``GET /healthz`` - liveness; ``GET /readyz`` - 200 when the database accepts writes and the
  worker runs, else 503 with the reasons; ``GET /metrics`` - the receiver's own metrics.

Inbound auth mirrors Alertmanager's webhook ``http_config``: ``authorization`` (Bearer token,
``RECEIVER_BEARER_TOKEN[_FILE]``) or ``basic_auth`` (``RECEIVER_BASIC_AUTH_USERNAME[_FILE]`` and
``RECEIVER_BASIC_AUTH_PASSWORD[_FILE]``); credentials are compared in constant time and never
logged. The GET endpoints are open (Prometheus scrapes ``/metrics``).

Processing (diagnosis, notifiers) happens in :class:`receiver.worker.Worker`, never inside the
request, so Alertmanager is answered within milliseconds. Webhooks arriving together are
committed in one transaction (:class:`receiver.store.IngestQueue`, group commit), each answered
once that transaction is on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from receiver.deadman import DeadMansSwitch
from receiver.diagnosis.engine import DiagnosisEngine
from receiver.health import make_router as health_router
from receiver.inbound_auth import challenge, check_credentials, security_scheme
from receiver.logs import SummarizedLog, install_redaction
from receiver.metrics import ReceiverMetrics
from receiver.models import (
    AlertmanagerWebhook,
    ErrorResponse,
    HeartbeatRecorded,
    WebhookStored,
    format_validation_errors,
)
from receiver.notifiers.base import Notifier
from receiver.notifiers.metrics import NotifierMetrics
from receiver.retention import Retention
from receiver.routing import RoutingConfig, load_routing_config
from receiver.runbooks import make_router as runbooks_router
from receiver.settings import ROUTE_PATTERN, Settings, load_settings
from receiver.store import IngestQueue, StoreError
from receiver.store.factory import open_store
from receiver.worker import Diagnose, NotifiersFor, Worker

log = logging.getLogger(__name__)

#: ``(settings, http client, metrics) -> (notifiers_for(route), every notifier)``: the routing
#: seam, called once in the lifespan.
NotifierFactory = Callable[
    [Settings, httpx.AsyncClient, ReceiverMetrics], tuple[NotifiersFor, Sequence[Notifier]]
]
#: ``(settings, http client, metrics) -> async diagnose(alert)``: the diagnosis seam.
DiagnoseFactory = Callable[[Settings, httpx.AsyncClient, ReceiverMetrics], Diagnose]


def routing_notifiers(config: RoutingConfig, notifier_metrics: NotifierMetrics) -> NotifierFactory:
    """The notifier seam backed by a validated routing config (``RECEIVER_ROUTING_FILE``, or
    without one every notifier configured by the environment for every route). The metrics are
    created once per app, since the lifespan (and so this factory) may run more than once."""

    def make(
        settings: Settings, client: httpx.AsyncClient, metrics: ReceiverMetrics
    ) -> tuple[NotifiersFor, list[Notifier]]:
        routing = config.build(client, metrics=notifier_metrics)
        return routing.notifiers_for, routing.all_notifiers()

    return make


def default_diagnose(
    settings: Settings, client: httpx.AsyncClient, metrics: ReceiverMetrics
) -> Diagnose:
    """The diagnosis engine (LLM providers when configured, rules otherwise), its metrics on the
    receiver's registry."""
    return DiagnosisEngine(settings, client, registry=metrics.registry).diagnose


def _error(
    status: int,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


class _BodyTooLargeError(Exception):
    pass


class _UnauthorizedError(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _BodyTooLargeError
            chunks.append(chunk)
    except ClientDisconnect:
        return b""  # nobody is left to answer; an empty body is rejected as invalid
    return b"".join(chunks)


def _payload_text(body: bytes, data: dict[str, Any]) -> str:
    """The webhook as received, for the audit trail: the body itself when it is UTF-8 (as
    Alertmanager sends it; a BOM is dropped), else ``data`` serialised.

    Raises:
        RecursionError: ``data`` is nested too deeply to serialise (non-UTF-8 bodies only).
    """
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return json.dumps(data)


def _webhook_openapi() -> tuple[dict[str, Any], dict[str, Any]]:
    """(AlertmanagerWebhook JSON schema, its ``$defs``) with OpenAPI component references."""
    schema = AlertmanagerWebhook.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    defs = schema.pop("$defs", {})
    return schema, defs


_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Body is not JSON",
        401: "Missing or wrong credentials (inbound auth configured)",
        413: "Body larger than MAX_BODY_BYTES",
        422: "Body or path does not match the schema; `detail` names the fields",
        503: "Storage unavailable: retry later",
    }
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}


def create_app(
    settings: Settings | None = None,
    *,
    start_worker: bool = True,
    notifier_factory: NotifierFactory | None = None,
    diagnose_factory: DiagnoseFactory | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Create the receiver application.

    Args:
        settings: configuration; read from the environment when ``None``.
        start_worker: start the background worker in the lifespan (tests may disable it to
            leave stored notifications pending).
        notifier_factory: builds ``(notifiers_for(route), all notifiers)`` at startup; default
            :func:`routing_notifiers` of ``RECEIVER_ROUTING_FILE`` (without one, every
            notifier configured by the environment for every route).
        diagnose_factory: builds the ``diagnose(alert)`` coroutine function at startup; default
            :func:`default_diagnose`.
        clock: Unix-seconds clock shared by the store, worker and dead man's switch.

    Returns:
        The FastAPI app. ``app.state`` holds ``settings``, ``store``, ``metrics``, ``deadman``
        and (while running) ``worker``.

    Raises:
        SettingsError: ``settings`` is ``None`` and the environment has an invalid value.
        RoutingError: the routing file is invalid (the message names file, field and value).
    """
    cfg = settings if settings is not None else load_settings()
    install_redaction(cfg.secret_values())
    store = open_store(cfg, clock)
    intake_queue = IngestQueue(store)  # group commit: one transaction for concurrent webhooks
    metrics = ReceiverMetrics()
    metrics.set_unsent_source(lambda: store.unsent(clock()))
    metrics.deadman_timeout.set(cfg.deadman_timeout_seconds)
    # Label children resolved once, not on every request.
    accepted, duplicate, rejected, too_large, storage_error = (
        metrics.webhooks.labels(result)
        for result in ("accepted", "duplicate", "rejected", "too_large", "storage_error")
    )
    # One INFO line per webhook when quiet, a summary every 10 s under load (DEBUG: each one).
    intake_log = SummarizedLog(
        log,
        "stored %d more webhooks in the last %.0fs: %d alerts (%d new, %d duplicate)"
        " (each one at DEBUG)",
    )
    auth = cfg.inbound_auth
    make_notifiers = notifier_factory or routing_notifiers(
        load_routing_config(cfg.receiver_routing_file, cfg), metrics.notifiers
    )
    make_diagnose = diagnose_factory or default_diagnose

    def wake_worker() -> None:
        worker: Worker | None = app.state.worker
        if worker is not None:
            worker.wake()

    deadman = DeadMansSwitch(
        store,
        timeout=cfg.deadman_timeout_seconds,
        route=cfg.deadman_route,
        arm_at_start=cfg.deadman_arm_at_start,
        clock=clock,
        metrics=metrics,
        owner=cfg.instance,
    )
    retention = Retention(store, cfg.receiver_retention_days, metrics=metrics, clock=clock)
    # Past this, intake answers 503 (Alertmanager retries): a connection wait plus a commit.
    intake_timeout = cfg.receiver_db_timeout_seconds + 2.0

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        # The switch stores its notifications from a worker thread: wake the worker safely.
        def wake_worker_threadsafe() -> None:
            loop.call_soon_threadsafe(wake_worker)

        deadman.on_notification = wake_worker_threadsafe
        try:
            await asyncio.to_thread(store.init)
            await asyncio.to_thread(deadman.load)
        except StoreError as exc:
            # Keep serving: intake answers 503 and /readyz reports it until the database works.
            log.error("database unavailable at startup: %s", exc)
        client = httpx.AsyncClient(follow_redirects=False)
        notifiers_for, notifiers = make_notifiers(cfg, client, metrics)
        metrics.deliveries_for((n.channel, n.name) for n in notifiers)
        diagnose = make_diagnose(cfg, client, metrics)
        # The engine's rules fast path lets pages skip a slow LLM (receiver.updates).
        engine = getattr(diagnose, "__self__", None)
        rules_now = unreachable = None
        if isinstance(engine, DiagnosisEngine) and engine.llm_enabled:
            rules_now, unreachable = engine.rules_now, engine.llm_unreachable
            engine.reachability.start()
        worker = Worker(
            store,
            diagnose,
            notifiers_for,
            metrics=metrics,
            concurrency=cfg.worker_concurrency,
            max_attempts=cfg.notify_max_attempts,
            retry_base_seconds=cfg.notify_retry_base_seconds,
            retry_max_seconds=cfg.notify_retry_max_seconds,
            max_retry_after_seconds=cfg.notify_max_retry_after_seconds,
            max_age_seconds=cfg.notify_max_age_seconds,
            min_send_interval={
                channel: seconds
                for channel, seconds in (
                    ("slack", cfg.slack_min_interval_seconds),
                    ("discord", cfg.discord_min_interval_seconds),
                )
                if seconds is not None
            },
            owner=cfg.instance,
            lease_seconds=cfg.receiver_lease_seconds,
            clock=clock,
            fallback=rules_now,
            critical_budget_seconds=cfg.llm_critical_budget_seconds,
            llm_unreachable=unreachable,
        )
        app.state.worker = worker
        if start_worker:
            worker.start()
        deadman.start()
        retention.start()
        log.info(
            "receiver %s ready: database %s, inbound auth %s, notifiers %s, dead man's switch %s",
            cfg.instance,
            store.describe(),
            auth.scheme if auth is not None else "off",
            ", ".join(f"{n.name} ({n.channel})" for n in notifiers) or "none",
            f"{cfg.deadman_timeout_seconds:g}s to route {cfg.deadman_route!r}"
            if cfg.deadman_timeout_seconds > 0
            else "off",
        )
        try:
            yield
        finally:
            intake_log.flush()
            await retention.stop()
            await deadman.stop()
            await worker.stop()
            if isinstance(engine, DiagnosisEngine):
                await engine.reachability.stop()
            await client.aclose()
            await asyncio.to_thread(store.close)
            app.state.worker = None

    app = FastAPI(
        title="exchange-watch alert receiver",
        summary="Alertmanager webhook receiver: store, diagnose, notify.",
        version="2",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = cfg
    app.state.store = store
    app.state.metrics = metrics
    app.state.deadman = deadman
    app.state.worker = None

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            if loc and loc[0] in ("path", "query", "header", "body", "cookie"):
                loc = loc[1:]
            raw.append({**err, "loc": loc})
        errors = format_validation_errors(raw)
        if request.method == "POST":
            metrics.webhooks.labels("rejected").inc()
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
        return _error(422, detail or "invalid request", errors[:50])

    @app.exception_handler(_UnauthorizedError)
    async def _unauthorized(request: Request, exc: _UnauthorizedError) -> JSONResponse:
        metrics.webhooks.labels("unauthorized").inc()
        client = request.client.host if request.client else "?"
        log.warning(
            "rejected %s %s from %s: bad credentials", request.method, request.url.path, client
        )
        assert auth is not None
        return _error(
            401,
            "authorization: missing or invalid credentials",
            headers={"WWW-Authenticate": challenge(auth)},
        )

    async def require_auth(request: Request) -> None:
        if auth is not None and not check_credentials(auth, request.headers.get("authorization")):
            raise _UnauthorizedError

    # Without inbound auth there is nothing to check: no dependency to solve on each request.
    auth_dependencies = [Depends(require_auth)] if auth is not None else []

    async def read_limited(request: Request) -> bytes | JSONResponse:
        """The body, or the 413 response to answer."""
        try:
            return await _read_body(request, cfg.max_body_bytes)
        except _BodyTooLargeError:
            too_large.inc()
            return _error(413, f"body: larger than {cfg.max_body_bytes} bytes")

    def parse_json_object(body: bytes, *, empty_ok: bool = False) -> dict[str, Any] | JSONResponse:
        """The body's JSON object, or the error response to answer."""
        try:
            data = {} if empty_ok and not body else json.loads(body)
        except (ValueError, RecursionError) as exc:
            reason = exc.__class__.__name__ if isinstance(exc, RecursionError) else str(exc)
            rejected.inc()
            return _error(400, f"body: not valid JSON ({reason[:200]})")
        if not isinstance(data, dict):
            rejected.inc()
            return _error(422, "body: must be a JSON object (Alertmanager webhook)")
        return data

    async def read_json_object(
        request: Request, *, empty_ok: bool = False
    ) -> dict[str, Any] | JSONResponse:
        """The body's JSON object, or the error response to answer."""
        body = await read_limited(request)
        if isinstance(body, JSONResponse):
            return body
        return parse_json_object(body, empty_ok=empty_ok)

    def validate_webhook(body: bytes) -> tuple[AlertmanagerWebhook, str] | JSONResponse:
        """``(the webhook, its text for the audit trail)``, or the error response to answer.

        The common case (a valid UTF-8 webhook) is parsed and validated in one pass by
        pydantic-core; anything it refuses goes the long way (``json.loads``, then the model),
        which gives the answer and the messages for each kind of invalid input.
        """
        try:
            return AlertmanagerWebhook.model_validate_json(body), body.decode("utf-8-sig")
        except (ValidationError, ValueError, RecursionError):
            pass
        data = parse_json_object(body)
        if isinstance(data, JSONResponse):
            return data
        try:
            return AlertmanagerWebhook.model_validate(data), _payload_text(body, data)
        except ValidationError as exc:
            errors = format_validation_errors(exc.errors(include_input=False))
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
            rejected.inc()
            return _error(422, detail, errors[:50])
        except (RecursionError, ValueError):
            rejected.inc()
            return _error(422, "body: nested too deeply")

    async def intake(request: Request, route: str) -> Response:
        body = await read_limited(request)
        if isinstance(body, JSONResponse):
            return body
        validated = validate_webhook(body)
        if isinstance(validated, JSONResponse):
            return validated
        webhook, raw = validated
        try:
            result = await asyncio.wait_for(
                intake_queue.ingest(webhook, route, raw), timeout=intake_timeout
            )
        except (StoreError, TimeoutError) as exc:
            # A timed-out commit may still land: Alertmanager's retry is then a duplicate.
            reason = exc if isinstance(exc, StoreError) else f"no commit within {intake_timeout:g}s"
            log.error("cannot store webhook (answering 503 so Alertmanager retries): %s", reason)
            storage_error.inc()
            return _error(503, "storage unavailable; retry later")
        alerts, new = len(webhook.alerts), len(result.new_ids)
        intake_log.log(
            (alerts, new, result.duplicates),
            "stored webhook %d: %d alerts (%d new, %d duplicate), route=%s",
            result.webhook_id,
            alerts,
            new,
            result.duplicates,
            route or "-",
        )
        if webhook.truncated_alerts:
            log.warning(
                "webhook %d: Alertmanager dropped %d alerts (max_alerts); they are not notified",
                result.webhook_id,
                webhook.truncated_alerts,
            )
        if new:
            accepted.inc()
            wake_worker()
        else:
            # A webhook without alerts stores nothing new and has no duplicates: accepted.
            (duplicate if result.duplicates > 0 else accepted).inc()
        # What JSONResponse would render, without a json.dumps per request.
        return Response(
            b'{"status":"stored","alerts":%d,"new":%d,"duplicates":%d}'
            % (alerts, new, result.duplicates),
            media_type="application/json",
        )

    webhook_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AlertmanagerWebhook"}}
            },
        }
    }
    intake_responses = _responses(400, 401, 413, 422, 503)

    @app.post(
        "/alerts",
        response_model=WebhookStored,
        responses=intake_responses,
        openapi_extra=webhook_body,
        dependencies=auth_dependencies,
    )
    async def post_alerts(request: Request) -> Response:
        """Receive an Alertmanager webhook on the default route."""
        return await intake(request, "")

    @app.post(
        "/alerts/{route}",
        response_model=WebhookStored,
        responses=intake_responses,
        openapi_extra=webhook_body,
        dependencies=auth_dependencies,
    )
    async def post_alerts_route(
        route: Annotated[str, PathParam(pattern=ROUTE_PATTERN)], request: Request
    ) -> Response:
        """Receive an Alertmanager webhook on a named route (stored with the notification)."""
        return await intake(request, route)

    # GET /metrics, /heartbeat, /healthz, /readyz (here: their paths keep their place in the
    # OpenAPI document; POST /heartbeat below joins GET /heartbeat's entry).
    app.include_router(
        health_router(store, metrics, deadman, lambda: app.state.worker, timeout=intake_timeout)
    )

    @app.post(
        "/heartbeat",
        response_model=HeartbeatRecorded,
        responses=_responses(400, 401, 413, 422, 503),
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
        dependencies=auth_dependencies,
    )
    async def heartbeat(request: Request) -> JSONResponse:
        """Alertmanager's ``Watchdog`` route: record that the alerting pipeline is alive.

        Accepts any JSON object (normally the Watchdog webhook; not stored, not notified);
        answers 200 once the heartbeat is persisted, 503 if it cannot be.
        """
        parsed = await read_json_object(request, empty_ok=True)
        if isinstance(parsed, JSONResponse):
            return parsed
        try:
            state = await asyncio.to_thread(deadman.heartbeat)
        except StoreError as exc:
            log.error("cannot record heartbeat (answering 503): %s", exc)
            metrics.webhooks.labels("storage_error").inc()
            return _error(503, "storage unavailable; retry later")
        metrics.heartbeats.inc()
        metrics.webhooks.labels("accepted").inc()
        return JSONResponse({"status": "ok", "received_at": state.last_heartbeat})

    app.include_router(runbooks_router())  # GET /runbooks[/{alertname}]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=(__doc__ or "").split("\n\n", 1)[0],
            routes=app.routes,
        )
        webhook, defs = _webhook_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs)
        components["AlertmanagerWebhook"] = webhook
        if auth is not None:
            schema["components"]["securitySchemes"] = {"alertmanager": security_scheme(auth)}
            for path in ("/alerts", "/alerts/{route}", "/heartbeat"):
                schema["paths"][path]["post"]["security"] = [{"alertmanager": []}]
        app.openapi_schema = schema
        return schema

    # FastAPI's documented way to customise the schema; mypy forbids assigning to a method.
    app.openapi = openapi  # type: ignore[method-assign]
    return app
