"""Exporter configuration parts that stand alone: durations, per-endpoint schedules, the
circuit breaker and the connectivity canary (re-exported by :mod:`exporter.config`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from exporter.durations import parse_duration


def _duration(value: Any) -> float:
    return parse_duration(value)


Seconds = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


class EndpointConfig(BaseModel):
    """One endpoint with its own schedule (``endpoints: [{name: status, interval: 60s}]``).

    Attributes:
        name: endpoint name offered by the exchange's profile.
        interval: seconds between probes; None inherits the exchange's interval.
        timeout: per-probe timeout in seconds; None inherits the exchange's timeout.
        path: ``generic`` profile only: the path (and query) probed, required there.
        time_field: ``generic`` only: dotted path of the server time in the JSON body.
        time_unit: ``generic`` only: unit of ``time_field`` (s, ms, us, ns).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    interval: Seconds | None = None
    timeout: Seconds | None = None
    path: str | None = Field(default=None, min_length=1, max_length=2000)
    time_field: str | None = Field(default=None, min_length=1, max_length=200)
    time_unit: Literal["s", "ms", "us", "ns"] = "ms"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class CircuitConfig(BaseModel):
    """Per-exchange circuit breaker (see :mod:`exporter.resilience`).

    Attributes:
        failure_threshold: consecutive failed probes of the exchange (any endpoint, no success
            in between) that open the circuit.
        open_seconds: how long the circuit stays open before one trial probe (half-open).
        slow_factor: while open, probe intervals are multiplied by this.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_threshold: int = Field(default=5, ge=1, le=1000)
    open_seconds: Seconds = 30.0
    slow_factor: float = Field(default=4.0, ge=1.0, le=100.0)


class ConnectivityConfig(BaseModel):
    """The exporter's own connectivity canary.

    Attributes:
        interval: seconds between checks.
        timeout: seconds allowed for each DNS lookup and the canary request.
        canary_url: an optional URL that should always answer (any HTTP status counts as
            reachable); None checks DNS resolution of every configured host only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Seconds = 15.0
    timeout: Seconds = 3.0
    canary_url: str | None = None

    @field_validator("canary_url")
    @classmethod
    def _canary(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    """An endpoint's effective schedule after inheritance: name, interval and timeout (s)."""

    name: str
    interval: float
    timeout: float
