"""The quiet run's weather: the ordinary jitter of a healthy day, injected into the simulator.

What a desk sees on a normal day and must never be paged for (issue 18): latency that wanders,
an isolated timeout or 5xx on one endpoint every few minutes per exchange, and now and then a
WebSocket stream that the exchange closes and the client reopens. :func:`plan` draws such a
schedule; :class:`JitterPlayer` applies it through ``POST /_control/faults`` (every blip has a
``duration_s``, so it ends by itself even if the player dies).

- latency noise: an exchange-wide ``latency`` fault of ``LATENCY_MS`` ± ``LATENCY_JITTER_MS``
  (uniform) for the whole run, on every exchange;
- blips: per exchange, one every ``BLIP_EVERY_S`` on average (uniform between half and 1.5
  times that), on a random probed endpoint, for ``BLIP_SECONDS``: HTTP 502 or 504 (a CDN's
  gateway page), or no answer at all (the probe times out);
- stream reconnects: per exchange, one every ``RECONNECT_EVERY_S`` on average (at least one
  in a 30-minute run): every live session is closed with 1001 "going away" (what exchanges
  send before a restart) and the reconnect is served (the fault's ``once``: the client lands
  on a healthy server), so each is exactly one reconnect. ExchangeWebSocketReconnecting pages
  from three unscheduled reconnects in 15 minutes (thresholds.yml ``ws_reconnects``); these
  are spaced at least 15 minutes apart per exchange, the rate of a venue that restarts its
  gateways a few times a day, on the high side.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

LATENCY_MS = 25
LATENCY_JITTER_MS = 20
BLIP_EVERY_S = 180.0
BLIP_SECONDS = 1
RECONNECT_EVERY_S = 1800.0
RECONNECT_HOLD_SECONDS = 5
"""How long a ``once`` disconnect stays set (sessions opened meanwhile are served)."""
BLIP_KINDS: tuple[Mapping[str, Any], ...] = (
    {"fault": "http_error", "status": 502},
    {"fault": "http_error", "status": 504},
    {"fault": "hang"},
)


@dataclass(frozen=True)
class Blip:
    """One scheduled fault: ``at`` seconds into the run, the ``POST /_control/faults`` body."""

    at: float
    body: Mapping[str, Any]

    def describe(self) -> str:
        """``"binance ticker http_error 502"``-like text for the notes."""
        body = self.body
        detail = body.get("status") or body.get("close_code") or ""
        return " ".join(
            str(x)
            for x in (body["exchange"], body.get("endpoint", "*"), body["fault"], detail)
            if x
        )


def plan(endpoints: Mapping[str, Sequence[str]], seconds: float, rng: random.Random) -> list[Blip]:
    """The run's blips and reconnects, sorted by time (latency noise is set apart, at start).

    Args:
        endpoints: exchange → the endpoint names it probes.
        seconds: the run's length; nothing is planned in its last ``BLIP_EVERY_S / 2``, so a
            late blip's alert (if any) would still fall inside the run.
        rng: the random source (seeded by the caller to replay a run).
    """
    blips: list[Blip] = []
    last = max(seconds - BLIP_EVERY_S / 2, 0.0)
    for exchange, names in endpoints.items():
        at = rng.uniform(0.5, 1.5) * BLIP_EVERY_S / 2
        while at < last:
            kind = dict(rng.choice(BLIP_KINDS))
            body = {"exchange": exchange, "endpoint": rng.choice(list(names)), **kind}
            blips.append(Blip(at, {**body, "duration_s": BLIP_SECONDS}))
            at += rng.uniform(0.5, 1.5) * BLIP_EVERY_S
        at = rng.uniform(0.5, 1.5) * RECONNECT_EVERY_S / 2
        while at < last:
            body = {"exchange": exchange, "fault": "ws_disconnect", "close_code": 1001}
            body |= {"once": True, "duration_s": RECONNECT_HOLD_SECONDS}
            blips.append(Blip(at, body))
            at += rng.uniform(0.5, 1.5) * RECONNECT_EVERY_S
    return sorted(blips, key=lambda b: b.at)


def latency_noise(exchanges: Sequence[str]) -> list[dict[str, Any]]:
    """The exchange-wide latency faults set for the whole run."""
    return [
        {
            "exchange": e,
            "fault": "latency",
            "latency_ms": LATENCY_MS,
            "jitter_ms": LATENCY_JITTER_MS,
        }
        for e in exchanges
    ]


class JitterPlayer:
    """Applies a plan in a thread against the simulator at ``simulator_url``.

    Attributes:
        applied: the blips applied so far, with the wall time each was set.
        errors: failed injections (``"<blip>: <error>"``).
    """

    def __init__(self, simulator_url: str, blips: Sequence[Blip], abort: threading.Event) -> None:
        self._url = f"{simulator_url}/_control/faults"
        self._blips = list(blips)
        self._abort = abort
        self.applied: list[tuple[float, Blip]] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="quiet-jitter", daemon=True)
        self._started = 0.0

    def start(self, exchanges: Sequence[str]) -> None:
        """Set the latency noise and start applying the blips (times from now)."""
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            for body in latency_noise(exchanges):
                client.post(self._url, json=body).raise_for_status()
        self._started = time.monotonic()
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the last blip to be applied."""
        self._thread.join(timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            for blip in self._blips:
                wait = self._started + blip.at - time.monotonic()
                if wait > 0 and self._abort.wait(wait):
                    return
                try:
                    client.post(self._url, json=dict(blip.body)).raise_for_status()
                    self.applied.append((time.time(), blip))
                except httpx.HTTPError as exc:
                    self.errors.append(f"{blip.describe()}: {exc!r}")
