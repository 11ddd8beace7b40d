"""The receiver benchmark's baseline: a FastAPI endpoint that answers 200 without doing any work.

``POST /alerts/{route}`` reads the request body and answers ``200 {}``: what the framework and
server stack alone cost per webhook (the ceiling the receiver's own work is measured against).

It is served by :func:`receiver.cli.main` itself with the application swapped for this one, so
the server stack is the receiver's exactly: the same uvicorn ``Config`` (event loop and HTTP
implementation, log level, access log off, lifespan), the same ``uvicorn.Server`` subclass and
the same logging setup. Only the application differs.

    python benchmarks/bare_app.py --listen 127.0.0.1:8099
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

import receiver.cli  # noqa: E402


def create_bare_app(settings: Any = None, **options: Any) -> FastAPI:
    """A FastAPI app whose only route, ``POST /alerts/{route}``, reads the body and answers
    ``200 {}``; ``GET /healthz`` answers ``{"status": "ok"}`` for readiness polling.

    ``settings`` and ``options`` are accepted (and ignored) so this can stand in for
    :func:`receiver.app.create_app`.
    """
    app = FastAPI(title="bare intake baseline", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/alerts/{route}")
    async def alerts(route: str, request: Request) -> JSONResponse:
        """Read the webhook body and answer 200 without looking at it."""
        await request.body()
        return JSONResponse({})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the bare app through the receiver's own entry point (``--listen HOST:PORT``)."""
    receiver.cli.create_app = create_bare_app
    return receiver.cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
