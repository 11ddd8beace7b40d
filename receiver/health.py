"""The receiver's status endpoints: ``GET /metrics``, ``GET /heartbeat``, ``GET /healthz`` and
``GET /readyz``. They are open (no inbound auth): Prometheus scrapes ``/metrics`` and
orchestrators probe ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from receiver.deadman import DeadMansSwitch
from receiver.metrics import ReceiverMetrics
from receiver.models import Health, HeartbeatStatus, NotReady
from receiver.store import Store, StoreError
from receiver.worker import Worker


def make_router(
    store: Store,
    metrics: ReceiverMetrics,
    deadman: DeadMansSwitch,
    worker: Callable[[], Worker | None],
    timeout: float = 5.0,
) -> APIRouter:
    """The status routes of one app; ``worker()`` is the running worker, if any; ``timeout``
    bounds the readiness write (seconds)."""
    router = APIRouter()

    @router.get(
        "/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}}
    )
    async def metrics_endpoint() -> Response:
        """The receiver's own metrics in the Prometheus text format."""
        body = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @router.get("/heartbeat", response_model=HeartbeatStatus)
    async def heartbeat_status() -> dict[str, Any]:
        """The last Watchdog heartbeat (Unix seconds, persisted) and the dead man's switch."""
        return deadman.status()

    @router.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        """Liveness: ``{"status": "ok"}`` while the process serves requests."""
        return {"status": "ok"}

    @router.get("/readyz", response_model=Health, responses={503: {"model": NotReady}})
    async def readyz() -> JSONResponse:
        """Readiness: the database accepts writes and the worker runs (503 lists reasons)."""
        reasons: list[str] = []
        try:
            await asyncio.wait_for(asyncio.to_thread(store.check_writable), timeout=timeout)
        except StoreError as exc:
            reasons.append(f"database {store.describe()}: not writable ({exc})")
        except TimeoutError:
            reasons.append(f"database {store.describe()}: no answer within {timeout:g}s")
        running = worker()
        if running is None or not running.running:
            reasons.append("worker: not running")
        if reasons:
            return JSONResponse({"status": "unavailable", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ok"})

    return router
