"""REST book snapshots a stream's sync procedure needs (Binance: ``GET /api/v3/depth``
[BN-WS §How to manage a local order book correctly]), sent through the exchange's probe gate.

The gate (:meth:`exporter.admission.ProbeAdmission.try_admit_weight`) counts the snapshot's
request weight in the same budget windows as the REST probes and holds it during rate-limit and
ban pauses, so a resync storm can never spend the weight the trading bots need. A rate-limit or
ban answer to the snapshot pauses the whole exchange like a probe's would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from exporter.admission import HoldReason
from exporter.egress import DIRECT, Route
from exporter.http11 import ProbeClient
from exporter.profiles import Profile, Result
from exporter.state import ExchangeState

SNAPSHOT_ENDPOINT = "orderbook"
"""The probe endpoint whose documented limits a book snapshot counts against."""


class SnapshotError(Exception):
    """A snapshot request failed (HTTP error, rate limit, body not JSON); the message says
    which."""


class SnapshotFetcher:
    """Fetches REST book snapshots for one exchange through its probe gate.

    Args:
        client: the exporter's HTTP client.
        state: the exchange's state (probe gate and rate-limit pause).
        profile: the exchange's REST profile (classifies rate-limit and ban answers).
        base_url: the exchange's REST base URL.
        timeout: seconds allowed per request.
        max_body_bytes: largest body read.
        on_hold: called with the reason each time the gate holds a snapshot back.
        route: the exchange's egress (the same as its probes' and stream's).
    """

    def __init__(
        self,
        client: ProbeClient,
        state: ExchangeState,
        profile: Profile,
        base_url: str,
        timeout: float,
        max_body_bytes: int,
        on_hold: Callable[[HoldReason], None] | None = None,
        route: Route = DIRECT,
    ) -> None:
        self._client = client
        self._state = state
        self._profile = profile
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._max_body = max_body_bytes
        self._on_hold = on_hold
        self._route = route

    async def fetch(self, path: str, query: Mapping[str, str], weight: float) -> object:
        """Wait for the gate to admit ``weight``, GET ``path?query`` and return the JSON body.

        Raises:
            SnapshotError: non-200 answer (a rate-limit or ban answer also pauses the
                exchange), or a body that is not JSON.
            ValueError: ``weight`` exceeds the exchange's whole budget (never admissible).
            TimeoutError, exporter.http11.TransportError: the request failed in transit.
        """
        while True:
            wait, reason = self._state.admission.try_admit_weight(SNAPSHOT_ENDPOINT, weight)
            if reason is None:
                break
            if self._on_hold is not None:
                self._on_hold(reason)
            await asyncio.sleep(wait)
        url = f"{self._base_url}{path}"
        if query:
            url += f"?{urlencode(dict(query))}"
        response = await self._client.get(url, self._timeout, self._max_body, route=self._route)
        if response.status != 200:
            verdict = self._profile.classify(
                SNAPSHOT_ENDPOINT, response.status, response.headers, response.body
            )
            if verdict.result in (Result.RATE_LIMITED, Result.BANNED):
                seconds = verdict.retry_after
                if seconds is None:
                    seconds = self._profile.backoff_seconds.get(verdict.result, 60.0)
                self._state.gate.block(seconds, ban=verdict.result is Result.BANNED)
            raise SnapshotError(
                f"snapshot {path}: HTTP {response.status} ({verdict.result.value}) "
                f"{verdict.message}".strip()
            )
        try:
            return json.loads(response.body)
        except ValueError:
            raise SnapshotError(f"snapshot {path}: body is not JSON") from None
