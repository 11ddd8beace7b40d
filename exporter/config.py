"""Exporter configuration: YAML file → validated structs, or an error naming file, field and value.

Shape (``deploy/exporter.yml``)::

    max_concurrency: 64          # optional; probes in flight at once, all exchanges together
    exchanges:
      - name: binance            # the ``exchange`` label value
        profile: binance         # built-in profile: binance, bybit, okx, coinbase, kraken
        base_url: https://api.binance.com
        interval: 5s             # Prometheus-style duration
        timeout: 3s              # must not exceed interval
        endpoints: [ping, time, status, ticker, orderbook]   # optional; default: the profile's
        symbol: BTCUSDT          # optional; default: the profile's

String values may use ``${VAR}`` or ``${VAR:-default}``, expanded from the environment at load
(e.g. ``base_url: ${SIMULATOR_URL:-http://127.0.0.1:8000}/binance``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.durations import parse_duration
from exporter.profiles import PROFILES, get_profile

_LABEL_VALUE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; the message names file, field and value."""


def _duration(value: Any) -> float:
    return parse_duration(value)


Seconds = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


class ExchangeConfig(BaseModel):
    """One probed exchange.

    Attributes:
        name: label value for ``exchange`` (lowercase, ``[a-z][a-z0-9_-]*``, ≤ 32 chars).
        profile: built-in profile name (see :data:`exporter.profiles.PROFILES`).
        base_url: scheme + host (+ optional path prefix), e.g. ``https://api.binance.com``.
        interval: seconds between probes of each endpoint.
        timeout: per-probe timeout in seconds (≤ interval).
        endpoints: endpoint names to probe; None means the profile's defaults.
        symbol: market symbol in the exchange's spelling; None means the profile's default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    profile: str
    base_url: str
    interval: Seconds = 5.0
    timeout: Seconds = 3.0
    endpoints: list[str] | None = None
    symbol: str | None = Field(default=None, min_length=1, max_length=40)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _LABEL_VALUE.match(value):
            raise ValueError("must match [a-z][a-z0-9_-]* (≤ 32 chars): it is a label value")
        return value

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"unknown profile; known profiles: {', '.join(sorted(PROFILES))}")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must not be empty (omit it for the profile's defaults)")
        if len(set(value)) != len(value):
            raise ValueError("lists an endpoint twice")
        profile = info.data.get("profile")
        if profile in PROFILES:
            offered = get_profile(profile).endpoint_specs("X")
            unknown = [name for name in value if name not in offered]
            if unknown:
                raise ValueError(
                    f"{', '.join(unknown)} not offered by profile {profile!r} "
                    f"(it offers {', '.join(offered)})"
                )
        return value

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> ExchangeConfig:
        if self.timeout > self.interval:
            raise ValueError(
                f"timeout {self.timeout:g}s must not exceed interval {self.interval:g}s"
            )
        return self

    def endpoint_names(self) -> tuple[str, ...]:
        """Return the endpoints to probe: the configured ones or the profile's defaults."""
        if self.endpoints is not None:
            return tuple(self.endpoints)
        return PROFILES[self.profile].default_endpoints

    def effective_symbol(self) -> str:
        """Return the configured symbol or the profile's default."""
        return self.symbol or PROFILES[self.profile].default_symbol


class ExporterConfig(BaseModel):
    """The whole exporter configuration.

    Attributes:
        exchanges: at least one exchange, names unique.
        max_concurrency: probes in flight at once across all exchanges (1–10,000).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    exchanges: list[ExchangeConfig] = Field(min_length=1)
    max_concurrency: int = Field(default=64, ge=1, le=10_000)

    @model_validator(mode="after")
    def _unique_names(self) -> ExporterConfig:
        seen: set[str] = set()
        for exchange in self.exchanges:
            if exchange.name in seen:
                raise ValueError(f"exchange name {exchange.name!r} is used twice")
            seen.add(exchange.name)
        return self


def parse_config(data: Any, source: str = "<config>") -> ExporterConfig:
    """Validate already-loaded YAML data.

    Raises:
        ConfigError: ``"<source>: <field path>: <problem> (value: <value>)"``.
    """
    try:
        return ExporterConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            location = _location(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) else f" (value: {value!r})"
            problems.append(f"{source}: {location}: {message}{shown}")
        raise ConfigError("\n".join(problems)) from None


def load_config(path: str | Path) -> ExporterConfig:
    """Read and validate an exporter YAML config file.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or fails validation; the message
            names the file, the field path (e.g. ``exchanges[0].interval``) and the value.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with an 'exchanges' list at the top level")
    return parse_config(expand_env(data, os.environ, str(path)), str(path))


def expand_env(data: Any, environ: Mapping[str, str], source: str = "<config>") -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of loaded YAML data.

    Raises:
        ConfigError: a ``${VAR}`` without default names a variable that is not set.
    """
    if isinstance(data, dict):
        return {key: expand_env(value, environ, source) for key, value in data.items()}
    if isinstance(data, list):
        return [expand_env(value, environ, source) for value in data]
    if not isinstance(data, str):
        return data

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{source}: environment variable {name} is not set (in {data!r})")

    return _ENV_REFERENCE.sub(replace, data)


def _location(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts) or "(top level)"
