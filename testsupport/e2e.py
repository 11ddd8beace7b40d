"""Helpers of the end-to-end tests on the shared stack (tests/conftest.py): polling with the
components' logs on timeout, instant PromQL queries and the receiver's JSONL notifications."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx
import pytest

from deploy.stack import Stack

T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float, what: str, logs: Callable[[], str]) -> T:
    """Poll ``predicate`` every 0.5 s until it returns something truthy (returned); fail the
    test after ``timeout`` seconds, showing ``logs()`` (the processes' log tails)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{logs()}")
        time.sleep(0.5)


def wait(predicate: Callable[[], T], timeout: float, what: str, stack: Stack) -> T:
    """:func:`poll` on the shared stack, showing the exporter's and receiver's log tails."""

    def logs() -> str:
        return "\n".join(f"--- {n}\n{stack.log_tail(n)}" for n in ("exporter", "receiver"))

    return poll(predicate, timeout, what, logs)


def prometheus_query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query to the Prometheus at ``prometheus_url``.

    Raises:
        httpx.HTTPStatusError: Prometheus refused the query.
    """
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    """:func:`prometheus_query` on the shared stack's Prometheus."""
    return prometheus_query(stack.urls["prometheus"], promql)


def parse_time(value: str) -> float:
    """Unix seconds of an RFC 3339 time as Alertmanager writes it (nanoseconds allowed)."""
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    return datetime.fromisoformat(value).timestamp()


def notifications(stack: Stack, alert: str, since: float) -> list[dict[str, Any]]:
    """The receiver's JSONL records of ``alert`` whose alert started at or after ``since``."""
    if not stack.notify_file.exists():
        return []
    lines = stack.notify_file.read_text().splitlines()
    return [
        n
        for n in (json.loads(line) for line in lines if line.strip())
        if n["alertname"] == alert and parse_time(n["starts_at"]) >= since
    ]
