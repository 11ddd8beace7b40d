"""What every stack benchmark shares: :class:`StackBench` (the running stack, the fake Slack and
the HTTP, PromQL and fault helpers a scenario thread uses), :func:`run_stack_section` (the
command-line runner that stops the stack on SIGTERM/SIGHUP) and the receiver environment that
notifies only the fake Slack (:func:`slack_only_receiver_env`).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from benchmarks import common
from deploy.stack import (
    Stack,
    StackError,
)
from testsupport.fake_chat import FakeChat

STARTUP_TIMEOUT = 90.0
"""Every exchange must be up this long after the stack is ready."""
HTTP_TIMEOUT = 5.0


class StackBench:
    """The running stack, the fake Slack and the helpers one scenario thread uses: the base of
    ``bench_notify``'s ``NotifyBench``, of the detection benchmark's scenario player and of the
    WebSocket stale benchmark (``benchmarks/ws_stale.py``)."""

    def __init__(self, stack: Stack, slack: FakeChat, abort: threading.Event) -> None:
        self.stack = stack
        self.slack = slack
        self.abort = abort
        self.rng = random.Random()

    @contextlib.contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """A fresh HTTP client (one per thread)."""
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as client:
            yield client

    def query(self, client: httpx.Client, expr: str) -> list[dict[str, Any]] | None:
        """An instant PromQL query's result vector; None when Prometheus did not answer."""
        try:
            response = client.get(
                f"{self.stack.urls['prometheus']}/api/v1/query", params={"query": expr}
            )
            response.raise_for_status()
            return list(response.json()["data"]["result"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def fault(self, client: httpx.Client, body: Mapping[str, Any]) -> None:
        """POST one fault to the simulator (raises on an HTTP error)."""
        response = client.post(f"{self.stack.urls['simulator']}/_control/faults", json=body)
        response.raise_for_status()

    def wait(self, predicate: Callable[[], bool], timeout: float, every: float = 1.0) -> bool:
        """Poll ``predicate`` until true (True), ``timeout`` passes or abort is set (False)."""
        deadline = time.monotonic() + timeout
        while not self.abort.is_set():
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            self.abort.wait(every)
        return False

    def sleep(self, seconds: float) -> None:
        """Sleep unless aborted."""
        if seconds > 0:
            self.abort.wait(seconds)

    def all_up(self, client: httpx.Client, exchanges: int) -> bool:
        """Whether every endpoint of at least ``exchanges`` exchanges is up."""
        result = self.query(
            client, 'count(min by (exchange) (exchange_api_up{job="exchange-exporter"}) == 1)'
        )
        if not result:
            return False
        return int(float(result[0]["value"][1])) >= exchanges


def join_all(threads: list[threading.Thread], abort: threading.Event, grace: float) -> None:
    """Wait for every thread; on an interrupt (Ctrl-C, SIGTERM) set ``abort``, give each thread
    up to ``grace`` seconds to stop, and re-raise. Joins in 1 s steps so signals get through."""
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(1.0)
    except BaseException:
        abort.set()
        for thread in threads:
            thread.join(grace)
        raise


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_stack_section(measure: Callable[[], dict[str, Any]], json_path: Path | None) -> int:
    """Run a stack benchmark's ``measure`` with SIGTERM/SIGHUP stopping the stack on the way
    out; print its section (and write it to ``json_path``). Exit status: 0, 130 when
    interrupted, 1 when the stack failed."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    try:
        result = measure()
    except KeyboardInterrupt:
        print("interrupted; every process started has been stopped", file=sys.stderr)
        return 130
    except StackError as exc:
        print(f"stack failed: {exc}", file=sys.stderr)
        return 1
    common.print_section(result)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return 0


def slack_only_receiver_env(slack_url: str) -> dict[str, str]:
    """Receiver environment for a stack benchmark: only the fake Slack at ``slack_url``, the
    rules diagnosis and the stack's JSONL file, whatever the calling environment holds."""
    return {
        "SLACK_WEBHOOK_URL": slack_url,
        "DISCORD_WEBHOOK_URL": "",
        "LLM_BASE_URL": "",
        "LLM_MODEL": "",
        "RECEIVER_ROUTING_FILE": "",
    }
