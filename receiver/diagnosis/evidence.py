"""Bounded Prometheus pre-fetch: the current value of the alert's own PromQL expression.

Prometheus puts the alert expression in the ``g0.expr`` query parameter of ``generatorURL``
(shared/reference/alertmanager-and-notifiers.md). We evaluate it once against *our* configured
``PROMETHEUS_URL`` (never the host in generatorURL) with the instant-query API
``GET /api/v1/query?query=...`` (https://prometheus.io/docs/prometheus/latest/querying/api/
#instant-queries), keep at most :data:`MAX_SERIES` series and :data:`MAX_CHARS` characters, and
give up silently after a short timeout. The result is evidence text for the diagnosis.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import httpx

from receiver.text import cap

log = logging.getLogger(__name__)

MAX_SERIES = 5
MAX_CHARS = 1200
MAX_EXPR_CHARS = 2000
TIMEOUT_SECONDS = 3.0


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


def _format_series(item: dict[str, object]) -> str:
    metric = item.get("metric")
    labels = metric if isinstance(metric, dict) else {}
    name = str(labels.get("__name__", ""))
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    value = item.get("value")
    shown = value[1] if isinstance(value, list) and len(value) == 2 else "?"
    return cap(f"{name}{{{inner}}} = {shown}", 300)


async def fetch_alert_evidence(
    client: httpx.AsyncClient,
    prometheus_url: str,
    generator_url: str,
    timeout: float = TIMEOUT_SECONDS,
) -> str | None:
    """Evaluate the alert's expression now and describe the result in at most ``MAX_CHARS``.

    Args:
        client: shared HTTP client.
        prometheus_url: base URL such as ``http://127.0.0.1:9090``.
        generator_url: the alert's ``generatorURL``.
        timeout: seconds for the whole request.

    Returns:
        Text like ``Current value of `expr`: metric{exchange="binance"} = 1 (2 series)``, or
        ``None`` when there is no expression or the query fails (never raises).
    """
    expr = expr_from_generator_url(generator_url)
    if expr is None:
        return None
    try:
        resp = await client.get(
            prometheus_url.rstrip("/") + "/api/v1/query",
            params={"query": expr},
            timeout=timeout,
        )
        payload = resp.json() if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        log.info("prometheus evidence query failed: %s", exc.__class__.__name__)
        return None
    if not isinstance(payload, dict) or payload.get("status") != "success":
        return None
    data = payload.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        return None
    shown = [_format_series(i) for i in result[:MAX_SERIES] if isinstance(i, dict)]
    body = "; ".join(shown) if shown else "no series (condition no longer true)"
    return cap(f"Current value of `{cap(expr, 300)}`: {body} ({len(result)} series).", MAX_CHARS)
