"""Control API served on the simulator's own port under ``/_control/``.

=========================== ======== ==========================================================
path                        method   answer
=========================== ======== ==========================================================
``/_control/health``        GET      ``{"status": "ok"}``
``/_control/faults``        GET      ``{"faults": [...]}`` (active faults, see
                                     :meth:`simulator.faults.Fault.to_json`)
``/_control/faults``        POST     set/clear one fault (JSON body, see :mod:`simulator.faults`)
                                     → 200 ``{"faults": [...]}``; invalid → 400 ``{"error": msg}``
``/_control/faults``        DELETE   clear all faults → ``{"faults": []}`` (limits untouched)
``/_control/limits``        GET      ``{"limits": {exchange: config + usage + ban state}}``
``/_control/limits``        POST     change one exchange's limits (partial; see
                                     :mod:`simulator.limits`) → ``{"limits": ...}``
``/_control/limits``        DELETE   usage, holds, 429 counts and bans cleared, config back to
                                     the boot values → ``{"limits": ...}``
``/_control/consume``       POST     add usage from "another process on this IP"
                                     (``{"exchange": "binance", "weight": n}`` /
                                     ``{"exchange": "bybit", "requests": n}``; optional
                                     ``"hold_s": s`` (> 0, <= 3600): it keeps spending n in
                                     every window starting in the next s seconds, see
                                     :mod:`simulator.limits`) → ``{"limits"}``
``/_control/scenario``      GET      ``{"scenario": status | null, "shipped": [names]}``
``/_control/scenario``      POST     ``{"name": "<shipped>"}`` or ``{"scenario": {...}}``: stop
                                     the running one, start this → ``{"scenario": status}``
``/_control/scenario``      DELETE   stop the running scenario (faults stay) →
                                     ``{"scenario": status | null}``
``/_control/keys``          GET      ``{"keys": [...]}`` API keys without secrets
                                     (:mod:`simulator.keys.store`)
``/_control/keys``          POST     add or replace one API key → ``{"keys": [...]}``
``/_control/keys``          DELETE   ``{"exchange", "key"}`` revokes one key; no body removes
                                     every key → ``{"keys": [...]}``
``/_control/maintenance``   GET      ``{"maintenance": [{"exchange", "starts_at", "ends_at",
                                     "state"}]}`` (:mod:`simulator.maintenance`)
``/_control/maintenance``   POST     ``{"exchange", "starts_at", "ends_at"}`` (Unix s): announce
                                     one window (replacing the exchange's) → the list
``/_control/maintenance``   DELETE   clear every window (or ``{"exchange"}``'s) → the list
``/_control/stats``         GET      request and WebSocket counters
                                     (:meth:`RequestStats.to_json`) plus
                                     ``binance_used_weight_1m`` and ``bybit_requests_5s``
``/_control/stats``         DELETE   reset counters → the zeroed stats
=========================== ======== ==========================================================

Invalid bodies → 400 ``{"error": "<field>: <problem>, got <value>"}``. Unknown control path → 404
``{"error": ...}``; wrong method → 405 ``{"error": ...}`` + ``Allow``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from simulator.faults import FaultRegistry
from simulator.keys.store import KeyStore
from simulator.limits import LimitRegistry
from simulator.maintenance import MaintenanceSchedule
from simulator.responses import Reply, json_reply
from simulator.scenario import load_scenario, load_scenario_file, shipped_scenarios
from simulator.scenario_runner import ScenarioRunner
from simulator.specs import SpecError
from simulator.stats import RequestStats

__all__ = ["CONTROL_PREFIX", "ControlAPI"]

CONTROL_PREFIX = "/_control"


def _decode(body: bytes) -> Any:
    """Decode a JSON object body.

    Raises:
        SpecError: ``"body: ..."`` for invalid JSON, an empty body or a non-object.
    """
    try:
        spec = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"body: not valid JSON ({exc})") from None
    if spec is None:
        raise SpecError("body: expected a JSON object, got an empty body")
    if not isinstance(spec, dict):
        raise SpecError(f"body: expected a JSON object, got {type(spec).__name__}")
    return spec


class ControlAPI:
    """Dispatches control requests. Runs on the event-loop thread, like the registries.

    Args:
        faults: the shared :class:`FaultRegistry`.
        stats: the shared :class:`RequestStats`.
        extra_stats: returns extra fields merged into ``GET /_control/stats``.
        limits: the shared :class:`LimitRegistry` (default: none).
        scenarios: the :class:`ScenarioRunner` (default: one on ``faults`` and ``limits``).
    """

    def __init__(
        self,
        faults: FaultRegistry,
        stats: RequestStats,
        extra_stats: Callable[[], dict[str, Any]] | None = None,
        *,
        limits: LimitRegistry | None = None,
        scenarios: ScenarioRunner | None = None,
        keys: KeyStore | None = None,
        maintenance: MaintenanceSchedule | None = None,
    ) -> None:
        """Bind the API to the shared registries and counters (``maintenance``: the announced
        windows; default: an empty schedule of the fault registry's exchanges)."""
        self.maintenance = maintenance or MaintenanceSchedule(faults.exchanges, faults.exchanges)
        self.keys = keys if keys is not None else KeyStore()
        self.faults = faults
        self.stats = stats
        self.limits = limits if limits is not None else LimitRegistry({})
        self.scenarios = scenarios or ScenarioRunner(faults, self.limits)
        self._extra_stats = extra_stats or dict
        self._routes: dict[str, dict[str, Callable[[bytes], Reply]]] = {
            "/_control/health": {"GET": self._health},
            "/_control/faults": {
                "GET": self._list_faults,
                "POST": self._set_fault,
                "DELETE": self._clear_faults,
            },
            "/_control/limits": {
                "GET": self._get_limits,
                "POST": self._set_limits,
                "DELETE": self._reset_limits,
            },
            "/_control/consume": {"POST": self._consume},
            "/_control/scenario": {
                "GET": self._get_scenario,
                "POST": self._start_scenario,
                "DELETE": self._stop_scenario,
            },
            "/_control/stats": {"GET": self._get_stats, "DELETE": self._reset_stats},
            "/_control/maintenance": {
                "GET": self._list_maintenance,
                "POST": self._set_maintenance,
                "DELETE": self._clear_maintenance,
            },
            "/_control/keys": {
                "GET": self._list_keys,
                "POST": self._add_key,
                "DELETE": self._revoke_keys,
            },
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
        try:
            return handler(body)
        except SpecError as exc:
            return json_reply(400, {"error": str(exc)})

    def _health(self, _body: bytes) -> Reply:
        return json_reply(200, {"status": "ok"})

    # -- faults -----------------------------------------------------------------------------
    def _list_faults(self, _body: bytes) -> Reply:
        return json_reply(200, {"faults": self.faults.to_json()})

    def _set_fault(self, body: bytes) -> Reply:
        self.faults.apply(_decode(body))
        return json_reply(200, {"faults": self.faults.to_json()})

    def _clear_faults(self, _body: bytes) -> Reply:
        self.faults.clear()
        return json_reply(200, {"faults": []})

    # -- limits -----------------------------------------------------------------------------
    def _get_limits(self, _body: bytes) -> Reply:
        return json_reply(200, {"limits": self.limits.to_json(time.time())})

    def _set_limits(self, body: bytes) -> Reply:
        self.limits.configure(_decode(body))
        return self._get_limits(body)

    def _reset_limits(self, body: bytes) -> Reply:
        self.limits.reset()
        return self._get_limits(body)

    def _consume(self, body: bytes) -> Reply:
        self.limits.consume(_decode(body), time.time())
        return self._get_limits(body)

    # -- scenarios --------------------------------------------------------------------------
    def _get_scenario(self, _body: bytes) -> Reply:
        return json_reply(
            200, {"scenario": self.scenarios.to_json(), "shipped": shipped_scenarios()}
        )

    def _start_scenario(self, body: bytes) -> Reply:
        spec = _decode(body)
        for key in spec:
            if key not in ("name", "scenario"):
                raise SpecError(f"{key}: unexpected field (give name or scenario)")
        if ("name" in spec) == ("scenario" in spec):
            raise SpecError("name: give either name (a shipped scenario) or scenario (inline)")
        if "name" in spec:
            name = spec["name"]
            if not isinstance(name, str) or "/" in name or name.endswith((".yml", ".yaml")):
                raise SpecError(f"name: must be a shipped scenario name, got {name!r}")
            scenario = load_scenario_file(name, faults=self.faults, limits=self.limits)
        else:
            scenario = load_scenario(
                spec["scenario"], "<inline>", faults=self.faults, limits=self.limits
            )
        self.scenarios.start(scenario)
        return json_reply(200, {"scenario": self.scenarios.to_json()})

    def _stop_scenario(self, _body: bytes) -> Reply:
        self.scenarios.stop()
        return json_reply(200, {"scenario": self.scenarios.to_json()})

    # -- keys -----------------------------------------------------------------------------
    def _list_keys(self, _body: bytes) -> Reply:
        return json_reply(200, {"keys": self.keys.to_json()})

    def _add_key(self, body: bytes) -> Reply:
        self.keys.add(_decode(body))
        return self._list_keys(body)

    def _revoke_keys(self, body: bytes) -> Reply:
        if body.strip():
            self.keys.revoke(_decode(body))
        else:
            self.keys.clear()
        return self._list_keys(body)

    # -- maintenance ------------------------------------------------------------------------
    def _list_maintenance(self, _body: bytes) -> Reply:
        return json_reply(200, {"maintenance": self.maintenance.to_json(time.time())})

    def _set_maintenance(self, body: bytes) -> Reply:
        self.maintenance.set(_decode(body))
        return self._list_maintenance(body)

    def _clear_maintenance(self, body: bytes) -> Reply:
        self.maintenance.clear(_decode(body) if body.strip() else None)
        return self._list_maintenance(body)

    # -- stats ------------------------------------------------------------------------------
    def _get_stats(self, _body: bytes) -> Reply:
        return json_reply(200, {**self.stats.to_json(), **self._extra_stats()})

    def _reset_stats(self, _body: bytes) -> Reply:
        self.stats.reset()
        return self._get_stats(_body)
