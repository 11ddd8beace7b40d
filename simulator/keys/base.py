"""The interface of one exchange's private endpoints.

A :class:`PrivateApi` lists its signed routes ``(METHOD, path) → endpoint``; the server routes
them through the exchange like any other request (so REST faults, latency, limits and stats
apply, under the fault/stats endpoint name ``api_key``), and the route's handler calls
:meth:`PrivateApi.handle` with the :class:`~simulator.keys.request.PrivateRequest`.

:meth:`handle` must: find the key; verify the signature over the bytes as received; check the
timestamp or nonce exactly as the exchange documents (against ``server_ms``, the exchange's
clock, so a ``clock_skew`` fault produces timestamp errors); check revocation, expiry, IP
binding and the key fault; and answer with the exchange's documented body and status for each
error, or its key-info answer in the exchange's own words.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from simulator.keys.request import PrivateRequest
from simulator.responses import Reply

__all__ = ["KEY_ENDPOINT", "PrivateApi"]

KEY_ENDPOINT = "api_key"
"""Fault, stats and limit endpoint name of every private route."""


class PrivateApi(ABC):
    """One exchange's signed endpoints.

    Class attributes:
        exchange: the exchange name.
        routes: ``{(METHOD, path without prefix): weight}`` of the private routes (weight as
            the exchange counts it against the per-IP limits, 1 where it counts requests).
    """

    exchange: ClassVar[str]
    routes: ClassVar[dict[tuple[str, str], int]]

    @abstractmethod
    def handle(self, request: PrivateRequest, server_ms: int, now: float) -> Reply:
        """Answer one signed request.

        Args:
            request: the request as received.
            server_ms: the exchange's clock in epoch ms (``clock_skew`` applied).
            now: real Unix seconds (key expiry).
        """
