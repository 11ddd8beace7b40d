"""Request counters exposed at ``GET /_control/stats`` (for benchmarks and tests)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

__all__ = ["RequestStats"]


class RequestStats:
    """Counts requests per ``(exchange, endpoint)`` and outcomes per ``(exchange, outcome)``.

    ``endpoint`` is the fault/profile endpoint name, or ``"unknown"`` for unrouted paths.
    ``outcome`` is the HTTP status as a string (``"200"``, ``"429"``) or ``"reset"`` / ``"hang"``
    for ``down`` faults. Control-API calls are not counted.

    ``limit_responses`` counts the 429 / 418 / 403 answers produced by the simulator's own
    request-limit accounting (:mod:`simulator.limits`), per exchange — not those forced by
    faults — so a soak test can assert it never tripped a limit.

    ``websocket`` counts, per exchange, WebSocket connections accepted (``connections``), those
    open now (``open``, not reset), and frames received from / sent to clients (``frames_in``,
    ``frames_out``; data, control and ping/pong frames alike). WebSocket upgrades are not
    counted as requests.

    Args:
        exchanges: exchange names listed (with zeros) in ``limit_responses``.
    """

    WS_KEYS: tuple[str, ...] = ("connections", "open", "frames_in", "frames_out")

    __slots__ = (
        "_exchanges",
        "_limited",
        "_outcomes",
        "_requests",
        "_ws",
        "started",
        "total",
    )

    LIMIT_STATUSES: tuple[str, ...] = ("429", "418", "403")

    def __init__(self, exchanges: tuple[str, ...] = ()) -> None:
        """Start all counters at zero."""
        self._exchanges = exchanges
        self._requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._outcomes: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._limited: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._ws: dict[str, dict[str, int]] = {}
        self.total = 0
        self.started = time.time()

    def ws(self, exchange: str) -> dict[str, int]:
        """The mutable WebSocket counters of ``exchange`` (keys :attr:`WS_KEYS`): sessions add
        to them directly on the hot path."""
        counters = self._ws.get(exchange)
        if counters is None:
            counters = self._ws[exchange] = dict.fromkeys(self.WS_KEYS, 0)
        return counters

    def request(self, exchange: str, endpoint: str | None) -> None:
        """Count one request that reached ``exchange`` (``endpoint=None`` = unknown path)."""
        self.total += 1
        self._requests[(exchange, endpoint or "unknown")] += 1

    def outcome(self, exchange: str, outcome: int | str) -> None:
        """Count how a request of ``exchange`` ended (status code or ``"reset"``/``"hang"``)."""
        self._outcomes[(exchange, str(outcome))] += 1

    def limited(self, exchange: str, status: int) -> None:
        """Count one limit answer (429/418/403) produced by request-limit enforcement."""
        self._limited[(exchange, str(status))] += 1

    def reset(self) -> None:
        """Zero every counter (``DELETE /_control/stats``)."""
        self._requests.clear()
        self._outcomes.clear()
        self._limited.clear()
        for counters in self._ws.values():  # kept: live sessions hold these dicts
            for key in ("connections", "frames_in", "frames_out"):
                counters[key] = 0
        self.total = 0
        self.started = time.time()

    def to_json(self) -> dict[str, Any]:
        """``{"total": int, "since": epoch s, "requests": {exchange: {endpoint: n}},
        "outcomes": {exchange: {status|reset|hang: n}},
        "limit_responses": {exchange: {"429": n, "418": n, "403": n}},
        "websocket": {exchange: {"connections", "open", "frames_in", "frames_out"}}}``."""
        requests: dict[str, dict[str, int]] = {}
        for (exchange, endpoint), n in sorted(self._requests.items()):
            requests.setdefault(exchange, {})[endpoint] = n
        outcomes: dict[str, dict[str, int]] = {}
        for (exchange, outcome), n in sorted(self._outcomes.items()):
            outcomes.setdefault(exchange, {})[outcome] = n
        limited = {
            exchange: {
                status: self._limited.get((exchange, status), 0) for status in self.LIMIT_STATUSES
            }
            for exchange in sorted({*self._exchanges, *(ex for ex, _ in self._limited)})
        }
        return {
            "total": self.total,
            "since": self.started,
            "requests": requests,
            "outcomes": outcomes,
            "limit_responses": limited,
            "websocket": {ex: dict(c) for ex, c in sorted(self._ws.items())},
        }
