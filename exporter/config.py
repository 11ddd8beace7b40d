"""Exporter configuration: YAML file → validated structs, or an error naming file, field and value.

Shape (``deploy/exporter.yml``)::

    location: eu-west            # optional; a `location` label on every series (see below)
    max_concurrency: 64          # optional; probes in flight at once, all exchanges together
    exchanges:
      - name: binance            # the ``exchange`` label value
        profile: binance         # binance, bybit, okx, coinbase, kraken, or generic
        base_url: https://api.binance.com
        interval: 5s             # Prometheus-style duration
        timeout: 3s              # must not exceed interval
        endpoints: [ping, time, status, ticker, orderbook]   # optional; default: the profile's
        markets: [BTC/USDT, ETH/USDT]   # optional; unified BASE/QUOTE names (ccxt spelling)
        websocket: {}            # optional; the market-data stream (exporter.streams.settings)
        api_keys: []             # optional; signed read-only key checks (exporter.keys.settings)
        proxy_url_env: CORP_PROXY_URL   # optional egress: proxy_url[_env|_file], source_address,
        tls: {ca_file: corp-ca.pem}     # ip_protocol, tls (exporter.config_egress)

``markets`` is the documented way to name what is watched: unified ``BASE/QUOTE`` names as ccxt
spells them (``BTC/USDT``, ``ETH/USD``; capitals and digits, unique, at most 20). Each profile
maps a market to its REST spelling (:meth:`exporter.profiles.base.Profile.rest_symbol`: Binance
and Bybit ``BTCUSDT``, OKX ``BTC-USDT``, Coinbase ``BTC-USD``, Kraken ``XBTUSD``); the REST
ticker and order-book probes use the first market, the stream subscribes all of them. The
``generic`` profile has no mapping: markets there are a config error. The older ``symbol`` (the
exchange's own REST spelling, e.g. ``BTCUSDT``) keeps working; when both are given, ``symbol``
wins for REST (no error) and ``markets`` still feeds the stream. Without either, the profile's
default market is used (``BTC/USDT``; ``BTC/USD`` on Coinbase and Kraken).

The ``websocket:`` block (:class:`exporter.streams.settings.WebSocketConfig`) turns on the
exchange's WebSocket market-data stream; its fields (url, channels, markets, stale_after,
open_timeout, enabled) are documented in :mod:`exporter.streams.settings`.

``api_keys:`` lists the exchange's API keys whose health is checked by one signed, read-only
key-info call per interval (:class:`exporter.keys.settings.ApiKeyConfig`; secrets only from the
environment or files). Key checks count in the exchange's ``weight_budget`` like probes.

``location`` names where this exporter probes from when several exporters watch the same
exchanges from different places (regions, egress IPs): every series it publishes then carries
``location="<value>"``, and ExchangeApiDown pages only when the exchange fails from
``down_quorum`` locations (prometheus/thresholds.yml). Omitted: no label, output unchanged.

String values may use ``${VAR}`` or ``${VAR:-default}``, expanded from the environment at load
(e.g. ``base_url: ${SIMULATOR_URL:-http://127.0.0.1:8000}/binance``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.admission import BudgetWindow, budget_windows
from exporter.config_egress import (
    REDACTED_FIELDS,
    EnvName,
    ProxyUrl,
    SourceAddress,
    TlsConfig,
    egress_route,
    redact_url,
)
from exporter.config_parts import (
    CircuitConfig,
    ConnectivityConfig,
    EndpointConfig,
    EndpointPlan,
    Seconds,
)
from exporter.egress import DIRECT, IpProtocol, Route
from exporter.keys.exchanges import KEY_ENDPOINT, key_api_class
from exporter.keys.settings import ApiKeyConfig
from exporter.market.groups import default_price_group
from exporter.profiles import (
    ENDPOINT_NAMES,
    PROFILES,
    GenericEndpoint,
    GenericProfile,
    Profile,
    get_profile,
)
from exporter.profiles.base import LimitRule
from exporter.streams.settings import (
    StreamPlan,
    WebSocketConfig,
    check_markets,
    check_websocket,
    make_plan,
)

_LABEL_VALUE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_LOCATION = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; the message names file, field and value."""


class ExchangeConfig(BaseModel):
    """One probed exchange.

    Attributes:
        name: label value for ``exchange`` (lowercase, ``[a-z][a-z0-9_-]*``, ≤ 32 chars).
        profile: built-in profile name (see :data:`exporter.profiles.PROFILES`).
        base_url: scheme + host (+ optional path prefix), e.g. ``https://api.binance.com``.
        interval: seconds between probes of each endpoint (default for every endpoint).
        timeout: per-probe timeout in seconds (≤ interval).
        endpoints: endpoints to probe, each a name or ``{name, interval, timeout}``; None means
            the profile's defaults.
        symbol: market symbol in the exchange's REST spelling (``BTCUSDT``); wins over
            ``markets`` for REST when both are given (not an error). None: the first market,
            else the profile's default.
        markets: unified ``BASE/QUOTE`` markets (``BTC/USDT``), the documented way to name what
            is watched; None means the profile's default market.
        websocket: the market-data stream, or None for none.
        api_keys: API keys to check (names unique); empty for none.
        price_groups: ``{market: group}`` overriding a market's default ``price_group``
            (:func:`exporter.market.groups.default_price_group`); every market named must be
            one the exchange watches.
        weight_budget: the fraction (0–1] of each of the exchange's documented limits that the
            exporter's schedule may use; the rest belongs to the trading bots on the same IP.
        circuit: circuit-breaker settings.
        max_body_bytes: largest response body read; None uses the exporter-wide value.
        proxy_url, proxy_url_env, proxy_url_file, source_address, ip_protocol, tls: the
            exchange's egress (:mod:`exporter.config_egress`), built into :attr:`route`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    profile: str
    base_url: str
    interval: Seconds = 5.0
    timeout: Seconds = 3.0
    endpoints: list[str | EndpointConfig] | None = None
    symbol: str | None = Field(default=None, min_length=1, max_length=40)
    markets: list[str] | None = None
    websocket: WebSocketConfig | None = None
    api_keys: list[ApiKeyConfig] = Field(default_factory=list, max_length=50)
    price_groups: dict[str, str] | None = None
    weight_budget: float = Field(default=0.10, gt=0.0, le=1.0)
    circuit: CircuitConfig = CircuitConfig()
    max_body_bytes: int | None = Field(default=None, ge=1024, le=256 * 1024 * 1024)
    proxy_url: ProxyUrl | None = None
    proxy_url_env: EnvName | None = None
    proxy_url_file: str | None = Field(default=None, min_length=1, max_length=4096)
    source_address: SourceAddress | None = None
    ip_protocol: IpProtocol = "auto"
    tls: TlsConfig | None = None
    _route: Route = PrivateAttr(default=DIRECT)

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

    @field_validator("markets")
    @classmethod
    def _markets(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        check_markets(value)
        profile = info.data.get("profile")
        if value is not None and profile in PROFILES:
            PROFILES[profile].rest_symbol(value[0])  # generic: no mapping, a clear ValueError
        return value

    @field_validator("api_keys")
    @classmethod
    def _api_keys(cls, value: list[ApiKeyConfig], info: ValidationInfo) -> list[ApiKeyConfig]:
        names = [key.name for key in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"key name {', '.join(twice)} is used twice")
        profile = info.data.get("profile")
        if not value or profile not in PROFILES:
            return value
        for index, key in enumerate(value):
            where = f"[{index}] ({key.name})"
            api = key_api_class(profile, key.credentials)  # generic: a clear ValueError
            try:
                api.check_credentials(key.credentials)
                api.check_base_url(key.base_url or info.data.get("base_url") or "")
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            window = key.recv_window_ms()
            if window is not None:
                if api.max_recv_window_ms is None:
                    raise ValueError(f"{where}: recv_window does not apply to {api.api} keys")
                if not 1 <= window <= api.max_recv_window_ms:
                    raise ValueError(
                        f"{where}: recv_window {key.recv_window:g}s is outside 1ms–"
                        f"{api.max_recv_window_ms / 1000:g}s, what {api.api} accepts"
                    )
        return value

    @field_validator("endpoints")
    @classmethod
    def _endpoints(
        cls, value: list[str | EndpointConfig] | None, info: ValidationInfo
    ) -> list[str | EndpointConfig] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must not be empty (omit it for the profile's defaults)")
        names = [item if isinstance(item, str) else item.name for item in value]
        if len(set(names)) != len(names):
            raise ValueError("lists an endpoint twice")
        profile = info.data.get("profile")
        if profile == "generic":
            unnamed = [n for n in names if n not in ENDPOINT_NAMES]
            if unnamed:
                raise ValueError(f"{', '.join(unnamed)}: names are {', '.join(ENDPOINT_NAMES)}")
            pathless = [
                i.name if isinstance(i, EndpointConfig) else i
                for i in value
                if isinstance(i, str) or i.path is None
            ]
            if pathless:
                raise ValueError(
                    f"{', '.join(pathless)}: the generic profile needs a path for every "
                    "endpoint, e.g. {name: time, path: /v1/time}"
                )
        elif profile in PROFILES:
            offered = get_profile(profile).endpoint_specs("X")
            unknown = [name for name in names if name not in offered]
            if unknown:
                raise ValueError(
                    f"{', '.join(unknown)} not offered by profile {profile!r} "
                    f"(it offers {', '.join(offered)})"
                )
            generic_only = [
                i.name
                for i in value
                if isinstance(i, EndpointConfig)
                and (i.path is not None or i.time_field is not None)
            ]
            if generic_only:
                raise ValueError(
                    f"{', '.join(generic_only)}: path and time_field are for the generic "
                    f"profile only; {profile!r} knows its own paths"
                )
        return value

    @model_validator(mode="after")
    def _schedule(self) -> ExchangeConfig:
        if self.profile == "generic" and self.endpoints is None:
            raise ValueError(
                "endpoints: the generic profile has no defaults; list each endpoint with a path"
            )
        for plan in self.endpoint_plan():
            if plan.timeout > plan.interval:
                raise ValueError(
                    f"endpoint {plan.name}: timeout {plan.timeout:g}s must not exceed interval "
                    f"{plan.interval:g}s"
                )
        check_budget(self)
        if self.websocket is not None:
            default = PROFILES[self.profile].default_market
            check_websocket(self.profile, self.websocket, self.markets, default)
        if self.price_groups:
            watched = self.market_groups()
            unknown = sorted(m for m in self.price_groups if m not in watched)
            if unknown:
                raise ValueError(
                    f"price_groups: {', '.join(unknown)} not watched by this exchange "
                    f"(it watches {', '.join(watched) or 'no market'})"
                )
            bad = [g for g in self.price_groups.values() if not g or len(g) > 40]
            if bad:
                raise ValueError("price_groups: a group is 1-40 characters")
        return self

    @model_validator(mode="after")
    def _egress(self, info: ValidationInfo) -> ExchangeConfig:
        context = info.context if isinstance(info.context, dict) else {}
        base_dir = context.get("base_dir")
        self._route = egress_route(self, os.environ, Path(base_dir) if base_dir else None)
        return self

    @property
    def route(self) -> Route:
        """How the exchange's probes, stream, book snapshots and key checks leave the host
        (the proxy URL read from its variable or file at load, a secret)."""
        return self._route

    def rest_market(self) -> str | None:
        """The unified market the REST ticker probes: the first of ``markets``, else the
        profile's default; None when ``symbol`` names another market in the exchange's
        spelling (its unified name is unknown) or the profile has no mapping (generic)."""
        profile = PROFILES[self.profile]
        market = self.markets[0] if self.markets else profile.default_market
        if market is None:
            return None
        if self.symbol and self.symbol != profile.rest_symbol(market):
            return None
        return market

    def market_groups(self) -> dict[str, str]:
        """``{market: price_group}`` of every market the exchange watches: the REST ticker's
        (:meth:`rest_market`) and the stream's."""
        markets: list[str] = []
        rest = self.rest_market()
        if rest is not None:
            markets.append(rest)
        if self.websocket is not None and self.websocket.enabled:
            default = PROFILES[self.profile].default_market
            markets += self.websocket.markets or self.markets or ([default] if default else [])
        overrides = self.price_groups or {}
        return {m: overrides.get(m) or default_price_group(m) for m in dict.fromkeys(markets)}

    def make_profile(self) -> Profile:
        """A profile instance for this exchange (the generic one carries its endpoints)."""
        if self.profile != "generic":
            return get_profile(self.profile)
        return GenericProfile(
            tuple(
                GenericEndpoint(e.name, e.path or "/", e.time_field, e.time_unit)
                for e in self.endpoints or []
                if isinstance(e, EndpointConfig)
            )
        )

    def endpoint_plan(self) -> tuple[EndpointPlan, ...]:
        """Return every endpoint to probe with its effective interval and timeout."""
        if self.endpoints is None:
            items: list[str | EndpointConfig] = list(PROFILES[self.profile].default_endpoints)
        else:
            items = list(self.endpoints)
        plan = []
        for item in items:
            if isinstance(item, str):
                plan.append(EndpointPlan(item, self.interval, self.timeout))
            else:
                interval = item.interval if item.interval is not None else self.interval
                timeout = item.timeout if item.timeout is not None else min(self.timeout, interval)
                plan.append(EndpointPlan(item.name, interval, timeout))
        return tuple(plan)

    def schedule(self) -> dict[str, tuple[float, float]]:
        """Return ``{endpoint: (interval s, request weight)}``, what the probe gate enforces."""
        specs = self.make_profile().endpoint_specs(self.effective_symbol())
        return {p.name: (p.interval, float(specs[p.name].weight)) for p in self.endpoint_plan()}

    def budget_schedule(self) -> dict[str, tuple[float, float]]:
        """:meth:`schedule` plus the key checks as one ``api_key`` entry: their combined rate
        (interval ``1 / Σ 1/interval``) at the heaviest key call's weight."""
        schedule = self.schedule()
        if self.api_keys and self.profile in PROFILES:
            rate = sum(1.0 / key.interval for key in self.api_keys)
            weight = max(
                key_api_class(self.profile, key.credentials).weight for key in self.api_keys
            )
            schedule[KEY_ENDPOINT] = (1.0 / rate, float(weight))
        return schedule

    def key_limits(self) -> tuple[LimitRule, ...]:
        """The documented limits of the key-info calls of this exchange's keys (per key, UID
        or profile; each once)."""
        rules: dict[LimitRule, None] = {}
        for key in self.api_keys:
            for rule in key_api_class(self.profile, key.credentials).limits:
                rules[rule] = None
        return tuple(rules)

    def budget_windows(self) -> tuple[BudgetWindow, ...]:
        """The documented limits' budget windows that the probe gate enforces (the key
        checks' own limits included)."""
        weights = {name: weight for name, (_, weight) in self.budget_schedule().items()}
        rules = (*self.make_profile().limits, *self.key_limits())
        return budget_windows(rules, self.weight_budget, weights)

    def endpoint_names(self) -> tuple[str, ...]:
        """Return the names of the endpoints to probe."""
        return tuple(plan.name for plan in self.endpoint_plan())

    def effective_symbol(self) -> str:
        """The REST symbol the ticker and order-book probes use: ``symbol`` when given, else
        the first of ``markets`` in the profile's spelling, else the profile's default."""
        if self.symbol:
            return self.symbol
        profile = PROFILES[self.profile]
        if self.markets:
            return profile.rest_symbol(self.markets[0])
        return profile.default_symbol

    def stream_plan(self, max_body_bytes: int) -> StreamPlan | None:
        """The exchange's resolved WebSocket stream (on the exchange's :attr:`route`), or None
        when it has none (no ``websocket`` block, or ``enabled: false``)."""
        if self.websocket is None or not self.websocket.enabled:
            return None
        plan = make_plan(
            self.name,
            self.profile,
            self.websocket,
            self.markets,
            PROFILES[self.profile].default_market,
            weight_budget=self.weight_budget,
            rest_base_url=self.base_url,
            rest_timeout=self.timeout,
            max_body_bytes=max_body_bytes,
        )
        return dataclasses.replace(plan, route=self.route)


def check_budget(exchange: ExchangeConfig) -> None:
    """Check that the exchange's probe schedule fits its request-weight budget.

    For every documented limit of the profile (:attr:`Profile.limits`), the weight the schedule
    spends on average per enforced window (Σ weight × window / interval over the endpoints the
    limit covers) must not exceed the cap the probe gate enforces
    (:class:`exporter.admission.BudgetWindow`: ``weight_budget`` × limit, over a window scaled up
    where one request outweighs that share).

    Raises:
        ValueError: naming the limit, the usage, the budget and the interval that would fit.
    """
    schedule = exchange.budget_schedule()
    for window in exchange.budget_windows():
        rule = window.rule
        used = window.usage(schedule) / window.scale
        allowed = exchange.weight_budget * rule.limit
        if used > allowed + 1e-9:
            factor = used / allowed
            covered = [name for name in schedule if rule.applies_to(name)]
            slowest = ", ".join(f"{n} every {schedule[n][0] * factor:.3g}s" for n in covered)
            raise ValueError(
                f"probe schedule uses {used:.3g} of {rule.limit:g} per {rule.window_seconds:g}s "
                f"({rule.name} {rule.source}); the budget is {exchange.weight_budget:.0%} = "
                f"{allowed:.3g}. Probe less often (e.g. {slowest}) or raise weight_budget"
            )


class ExporterConfig(BaseModel):
    """The whole exporter configuration.

    Attributes:
        exchanges: at least one exchange, names unique.
        max_concurrency: probes in flight at once across all exchanges (1–10,000).
        max_body_bytes: largest response body read per probe; larger is ``bad_response``.
        connectivity: the exporter's own connectivity canary.
        location: where this exporter probes from (``eu-west``); when set, every series it
            publishes carries ``location="<value>"`` (1-64 chars of ``[A-Za-z0-9_.:-]``), which
            the multi-location alerts (ExchangeApiDown's quorum) count. None or "": no label.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    exchanges: list[ExchangeConfig] = Field(min_length=1)
    location: str | None = None
    max_concurrency: int = Field(default=64, ge=1, le=10_000)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    connectivity: ConnectivityConfig = ConnectivityConfig()

    @field_validator("location")
    @classmethod
    def _location_label(cls, value: str | None) -> str | None:
        if value == "":
            return None  # `location: ${EXPORTER_LOCATION:-}` with the variable unset
        if value is not None and not _LOCATION.match(value):
            raise ValueError("must be 1-64 characters of [A-Za-z0-9_.:-]: it is a label value")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> ExporterConfig:
        seen: set[str] = set()
        for exchange in self.exchanges:
            if exchange.name in seen:
                raise ValueError(f"exchange name {exchange.name!r} is used twice")
            seen.add(exchange.name)
        return self

    def body_limit(self, exchange: ExchangeConfig) -> int:
        """The response body cap for ``exchange`` in bytes."""
        return exchange.max_body_bytes or self.max_body_bytes

    def stream_plans(self) -> dict[str, StreamPlan]:
        """Every exchange's resolved WebSocket stream, by exchange name (only those with one)."""
        plans = {}
        for exchange in self.exchanges:
            plan = exchange.stream_plan(self.body_limit(exchange))
            if plan is not None:
                plans[exchange.name] = plan
        return plans


def parse_config(
    data: Any, source: str = "<config>", base_dir: Path | None = None
) -> ExporterConfig:
    """Validate already-loaded YAML data; relative secret-file paths of ``api_keys`` are taken
    relative to ``base_dir`` (the config file's directory), else to the working directory.

    Raises:
        ConfigError: ``"<source>: <field path>: <problem> (value: <value>)"``; a proxy URL's
            credentials are never shown (``http://***@host:port``).
    """
    try:
        return ExporterConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            location = _location(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            if isinstance(value, str) and err["loc"] and err["loc"][-1] in REDACTED_FIELDS:
                value = redact_url(value)
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
    return parse_config(expand_env(data, os.environ, str(path)), str(path), path.parent)


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
