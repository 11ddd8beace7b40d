"""Control API served on the simulator's own port under ``/_control/``.

=========================== ======== ==========================================================
path                        method   answer
=========================== ======== ==========================================================
``/_control/health``        GET      ``{"status": "ok"}``
``/_control/faults``        GET      ``{"faults": [...]}`` (active faults, see
                                     :meth:`simulator.faults.Fault.to_json`)
``/_control/faults``        POST     set/clear one fault (JSON body, see :mod:`simulator.faults`)
                                     → 200 ``{"faults": [...]}``; invalid → 400 ``{"error": msg}``
``/_control/faults``        DELETE   clear all → ``{"faults": []}``
``/_control/stats``         GET      request counters (:meth:`RequestStats.to_json`) plus
                                     ``binance_used_weight_1m``
``/_control/stats``         DELETE   reset counters → the zeroed stats
=========================== ======== ==========================================================

Unknown control path → 404 ``{"error": ...}``; wrong method → 405 ``{"error": ...}`` + ``Allow``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from simulator.faults import FaultError, FaultRegistry
from simulator.responses import Reply, json_reply
from simulator.stats import RequestStats

__all__ = ["CONTROL_PREFIX", "ControlAPI"]

CONTROL_PREFIX = "/_control"


class ControlAPI:
    """Dispatches control requests. Runs on the event-loop thread, like the registry.

    Args:
        faults: the shared :class:`FaultRegistry`.
        stats: the shared :class:`RequestStats`.
        extra_stats: returns extra fields merged into ``GET /_control/stats``.
    """

    def __init__(
        self,
        faults: FaultRegistry,
        stats: RequestStats,
        extra_stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """Bind the API to the shared registry and counters."""
        self.faults = faults
        self.stats = stats
        self._extra_stats = extra_stats or dict
        self._routes: dict[str, dict[str, Callable[[bytes], Reply]]] = {
            "/_control/health": {"GET": self._health},
            "/_control/faults": {
                "GET": self._list_faults,
                "POST": self._set_fault,
                "DELETE": self._clear_faults,
            },
            "/_control/stats": {"GET": self._get_stats, "DELETE": self._reset_stats},
        }

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        """Answer one control request (``path`` without query string). Never raises."""
        methods = self._routes.get(path.rstrip("/") or path)
        if methods is None:
            known = ", ".join(self._routes)
            return json_reply(
                404, {"error": f"path: unknown control path {path!r} (known: {known})"}
            )
        handler = methods.get(method)
        if handler is None:
            allow = ", ".join(methods)
            return json_reply(
                405,
                {"error": f"method: {method} not allowed on {path} (allowed: {allow})"},
                [(b"Allow", allow.encode())],
            )
        return handler(body)

    def _health(self, _body: bytes) -> Reply:
        return json_reply(200, {"status": "ok"})

    def _list_faults(self, _body: bytes) -> Reply:
        return json_reply(200, {"faults": self.faults.to_json()})

    def _set_fault(self, body: bytes) -> Reply:
        try:
            spec = json.loads(body.decode("utf-8")) if body.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return json_reply(400, {"error": f"body: not valid JSON ({exc})"})
        if spec is None:
            return json_reply(400, {"error": "body: expected a JSON object, got an empty body"})
        try:
            self.faults.apply(spec)
        except FaultError as exc:
            return json_reply(400, {"error": str(exc)})
        return json_reply(200, {"faults": self.faults.to_json()})

    def _clear_faults(self, _body: bytes) -> Reply:
        self.faults.clear()
        return json_reply(200, {"faults": []})

    def _get_stats(self, _body: bytes) -> Reply:
        return json_reply(200, {**self.stats.to_json(), **self._extra_stats()})

    def _reset_stats(self, _body: bytes) -> Reply:
        self.stats.reset()
        return self._get_stats(_body)
