"""Bounded Prometheus access: capped HTTP API reads and the alert's own expression.

Prometheus puts the alert expression in the ``g0.expr`` query parameter of ``generatorURL``
(shared/reference/alertmanager-and-notifiers.md). We evaluate it against *our* configured
``PROMETHEUS_URL`` (never the host in generatorURL) with the instant-query API
``GET /api/v1/query?query=...`` (https://prometheus.io/docs/prometheus/latest/querying/api/
#instant-queries), keep at most :data:`MAX_SERIES` series and :data:`MAX_CHARS` characters, and
give up silently after a short timeout. Every answer is read with a byte cap
(:func:`prometheus_get`), so a huge result cannot exhaust memory.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from receiver.text import cap, strip_control

log = logging.getLogger(__name__)

MAX_SERIES = 5
MAX_CHARS = 1200
MAX_EXPR_CHARS = 2000
TIMEOUT_SECONDS = 3.0
MAX_RESPONSE_BYTES = 512 * 1024


class PrometheusError(Exception):
    """A Prometheus API call failed; the message is short and safe to log."""


def expr_from_generator_url(generator_url: str) -> str | None:
    """Return the PromQL in ``g0.expr`` of a Prometheus graph link, or ``None``."""
    try:
        query = parse_qs(urlsplit(generator_url).query)
    except ValueError:
        return None
    values = query.get("g0.expr")
    if not values or not values[0].strip() or len(values[0]) > MAX_EXPR_CHARS:
        return None
    return values[0].strip()


async def prometheus_get(
    client: httpx.AsyncClient,
    prometheus_url: str,
    path: str,
    params: dict[str, str],
    *,
    timeout: float,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> Any:
    """GET ``{prometheus_url}{path}`` and return ``data`` of a ``"success"`` answer.

    Raises:
        PrometheusError: transport error, timeout, non-200, body over ``max_bytes``, not JSON,
            or ``status`` other than ``success``.
    """
    url = prometheus_url.rstrip("/") + path
    try:
        async with client.stream("GET", url, params=params, timeout=timeout) as resp:
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise PrometheusError(f"answer larger than {max_bytes} bytes")
                chunks.append(chunk)
            status = resp.status_code
    except httpx.TimeoutException:
        raise PrometheusError("timeout") from None
    except httpx.HTTPError as exc:
        raise PrometheusError(exc.__class__.__name__) from None
    try:
        payload = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise PrometheusError(f"HTTP {status}, body is not JSON") from None
    if not isinstance(payload, dict):
        raise PrometheusError(f"HTTP {status}, unexpected body")
    if status != 200 or payload.get("status") != "success":
        kind = payload.get("errorType")
        raise PrometheusError(
            f"HTTP {status}" + (f" {cap(strip_control(str(kind)), 40)}" if kind else "")
        )
    return payload.get("data")


def _format_series(item: dict[str, object]) -> str:
    metric = item.get("metric")
    labels = metric if isinstance(metric, dict) else {}
    name = str(labels.get("__name__", ""))
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    value = item.get("value")
    shown = value[1] if isinstance(value, list) and len(value) == 2 else "?"
    return cap(strip_control(f"{name}{{{inner}}} = {shown}"), 300)


def format_instant_result(expr: str, data: Any) -> str | None:
    """Describe an instant-query ``data`` block in at most :data:`MAX_CHARS` characters."""
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        return None
    shown = [_format_series(i) for i in result[:MAX_SERIES] if isinstance(i, dict)]
    body = "; ".join(shown) if shown else "no series (condition no longer true)"
    return cap(f"Current value of `{cap(expr, 300)}`: {body} ({len(result)} series).", MAX_CHARS)


async def fetch_alert_evidence(
    client: httpx.AsyncClient,
    prometheus_url: str,
    generator_url: str,
    timeout: float = TIMEOUT_SECONDS,
    at: float | None = None,
) -> str | None:
    """Evaluate the alert's expression now and describe the result in at most ``MAX_CHARS``.

    Args:
        client: shared HTTP client.
        prometheus_url: base URL such as ``http://127.0.0.1:9090``.
        generator_url: the alert's ``generatorURL``.
        timeout: seconds for the whole request.
        at: evaluation time (Unix seconds); Prometheus' now when ``None``.

    Returns:
        Text like ``Current value of `expr`: metric{exchange="binance"} = 1 (2 series)``, or
        ``None`` when there is no expression or the query fails (never raises).
    """
    expr = expr_from_generator_url(generator_url)
    if expr is None:
        return None
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    try:
        data = await prometheus_get(
            client, prometheus_url, "/api/v1/query", params, timeout=timeout
        )
    except PrometheusError as exc:
        log.info("prometheus evidence query failed: %s", exc)
        return None
    return format_instant_result(expr, data)
