"""Generic profile: any JSON HTTP API, for venues without a built-in profile.

Each endpoint is configured with its own ``path`` (and optionally where server time lives):

.. code-block:: yaml

    - name: myvenue
      profile: generic
      base_url: https://api.example.com
      endpoints:
        - {name: time, path: /v1/time, time_field: data.serverTime, time_unit: ms}
        - {name: ticker, path: "/v1/ticker?symbol=BTCUSDT"}

Success is HTTP 2xx with a JSON body; HTTP 429 is ``rate_limited`` and 418 ``banned`` (with
``Retry-After`` honoured, RFC 9110 §10.2.3); any other error status is ``http_error``. No error
envelope, limit or usage header is assumed, so the request-weight budget check does not apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from exporter.profiles.base import EndpointSpec, Profile, Result, Verdict, as_float, dig

TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
"""Seconds per unit of a configured ``time_unit``."""


@dataclass(frozen=True, slots=True)
class GenericEndpoint:
    """One configured endpoint of a generic API.

    Attributes:
        name: endpoint name (``ping``, ``time``, ``status``, ``ticker`` or ``orderbook``).
        path: path (with optional query string) appended to ``base_url``.
        time_field: dotted path to the server time in the JSON body (list indices as numbers,
            e.g. ``data.0.ts``), or None.
        time_unit: unit of that field: s, ms, us or ns.
    """

    name: str
    path: str
    time_field: str | None = None
    time_unit: str = "ms"


class GenericProfile(Profile):
    """Any JSON HTTP API; endpoints come from the config, not from the profile."""

    name: ClassVar[str] = "generic"
    default_symbol: ClassVar[str] = ""
    default_endpoints: ClassVar[tuple[str, ...]] = ()
    backoff_seconds: ClassVar[Mapping[Result, float]] = {
        Result.RATE_LIMITED: 60.0,
        Result.BANNED: 300.0,
    }

    def __init__(self, endpoints: tuple[GenericEndpoint, ...] = ()) -> None:
        self._endpoints = {e.name: e for e in endpoints}

    def fingerprint(self, endpoint: str) -> object:
        """The profile name and the endpoint's configuration."""
        return (self.name, self._endpoints.get(endpoint))

    def endpoint_specs(self, symbol: str) -> dict[str, EndpointSpec]:
        """Return the configured endpoints (weight 1 each)."""
        specs = {}
        for endpoint in self._endpoints.values():
            parts = urlsplit(endpoint.path)
            specs[endpoint.name] = EndpointSpec(
                endpoint.name, parts.path or "/", dict(parse_qsl(parts.query))
            )
        return specs

    def read_endpoint(self, endpoint: str, body: Any) -> Verdict:
        """Any JSON body is success; extract server time where configured.

        Raises:
            MalformedBodyError: the configured time field is missing or not a number.
        """
        config = self._endpoints.get(endpoint)
        if config is None or config.time_field is None:
            return Verdict(Result.OK)
        keys = [int(k) if k.isdigit() else k for k in config.time_field.split(".")]
        value = as_float(dig(body, *keys), config.time_field)
        scale = TIME_UNITS[config.time_unit]
        return Verdict(Result.OK, server_time=value * scale, server_time_resolution=scale)
