"""The ``websocket:`` block of an exchange's config and the stream plan resolved from it.

Shape (inside one entry of ``exchanges:``)::

    markets: [BTC/USDT, ETH/USDT]      # unified BASE/QUOTE names (ccxt spelling)
    websocket:
      enabled: true                    # optional; false keeps the block but runs no stream
      url: wss://stream.binance.com:9443   # optional; default: the dialect's public URL
      channels: [ticker, trades, book]     # optional; default: all three
      markets: [BTC/USDT]              # optional; default: the exchange's markets, else the
                                       # profile's default market
      stale_after: {ticker: 5s, book: 10s}  # optional per channel; default: the dialect's,
                                            # from each channel's documented cadence
      open_timeout: 10s                # optional; connect + handshake deadline

``url`` is the exchange's WebSocket host URL (``ws://`` or ``wss://``; an ``http://`` or
``https://`` URL is taken as ``ws://`` or ``wss://`` on the same host, so the demo config can
reuse ``${SIMULATOR_URL}``); the dialect appends its documented path when it connects (the
simulator serves ``ws://127.0.0.1:8000/binance`` … ``/coinbase/ws``). A ``websocket:`` block
on a profile without a dialect (``generic``) is a config error, as is an unknown channel, a
URL of another scheme, a ``stale_after`` ≤ 0 or for a channel that is not subscribed, and a
market the dialect cannot spell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from exporter.durations import parse_duration
from exporter.egress import DIRECT, Route
from exporter.streams.dialect import StreamDialect
from exporter.streams.events import CHANNELS, Channel

MARKET_PATTERN = re.compile(r"^[A-Z0-9]{1,15}/[A-Z0-9]{1,15}$")
"""A unified market name as ccxt spells it: ``BTC/USDT``."""

MAX_MARKETS = 20
"""Most markets per list (each market is one subscription per channel)."""

SKEW_RESOLUTION_SECONDS: dict[str, float] = {"kraken": 1.0}
"""Resolution of the REST server time the clock skew is measured from, where coarser than the
usual milliseconds: Kraken's ``GET /0/public/Time`` gives whole seconds [KR-TIME]. A skew
smaller than it is measurement noise, and stream lag is not corrected by it."""

DEFAULT_OPEN_TIMEOUT_SECONDS = 10.0
"""Connect + TLS + WebSocket handshake deadline (ccxt's ``connectionTimeout`` default, 10 s)."""


def check_markets(value: list[str] | None) -> list[str] | None:
    """Validate a ``markets`` list: unified ``BASE/QUOTE`` names, unique, 1–20 of them.

    Raises:
        ValueError: naming the offending market.
    """
    if value is None:
        return None
    if not value:
        raise ValueError("must not be empty (omit it for the default market)")
    if len(value) > MAX_MARKETS:
        raise ValueError(f"lists {len(value)} markets; at most {MAX_MARKETS}")
    for market in value:
        if not MARKET_PATTERN.match(market):
            raise ValueError(
                f"{market!r} is not a unified market: BASE/QUOTE in capitals, e.g. BTC/USDT"
            )
    if len(set(value)) != len(value):
        twice = sorted({m for m in value if value.count(m) > 1})
        raise ValueError(f"lists {', '.join(twice)} twice")
    return value


_WS_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
"""Accepted URL schemes and the WebSocket scheme each stands for (an HTTP origin such as the
demo's ``${SIMULATOR_URL}`` names the same host's WebSocket endpoint)."""


def _seconds(value: Any) -> float:
    return parse_duration(value)


PositiveSeconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


class WebSocketConfig(BaseModel):
    """An exchange's market-data stream (see the module docstring for the YAML shape).

    Attributes:
        enabled: False keeps the block but runs no stream.
        url: the WebSocket host URL; None means the dialect's ``default_url``.
        channels: channels to subscribe, a subset of ticker, trades, book; None = all three.
        markets: unified markets to subscribe; None = the exchange's ``markets``, else the
            profile's default market.
        stale_after: seconds of silence per channel before ``exchange_ws_up`` drops to 0;
            channels not given take the dialect's ``default_stale_after``.
        open_timeout: seconds allowed for connect, TLS and handshake.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    url: str | None = Field(default=None, min_length=6, max_length=2000)
    channels: list[Channel] | None = None
    markets: list[str] | None = None
    stale_after: dict[Channel, PositiveSeconds] | None = None
    open_timeout: PositiveSeconds = DEFAULT_OPEN_TIMEOUT_SECONDS

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        scheme = _WS_SCHEMES.get(parts.scheme.lower())
        if scheme is None or not parts.hostname:
            raise ValueError(
                "must be a ws:// or wss:// URL with a host (http:// and https:// are taken as "
                "ws:// and wss:// on the same host)"
            )
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[Channel] | None) -> list[Channel] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must not be empty (omit it for ticker, trades and book)")
        if len(set(value)) != len(value):
            raise ValueError("lists a channel twice")
        return value

    @field_validator("markets")
    @classmethod
    def _markets(cls, value: list[str] | None) -> list[str] | None:
        return check_markets(value)

    def effective_channels(self) -> tuple[Channel, ...]:
        """The channels to subscribe, in the order of :data:`CHANNELS`."""
        wanted = set(self.channels) if self.channels is not None else set(CHANNELS)
        return tuple(channel for channel in CHANNELS if channel in wanted)


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """Everything one exchange's stream connection runs on, resolved from the config; two
    equal plans run the same stream (a reload keeps it), a changed plan restarts it.

    Attributes:
        exchange: the ``exchange`` label value.
        profile: the profile (and dialect) name.
        url: the configured WebSocket host URL (the dialect's ``connect_url`` adds its path).
        channels: subscribed channels.
        markets: unified markets subscribed on every channel.
        stale_after: ``(channel, seconds)`` pairs for every subscribed channel.
        open_timeout: connect + handshake deadline, seconds.
        weight_budget: the exchange's share of documented limits (connection attempts too).
        rest_base_url: the exchange's REST base URL (book snapshots).
        rest_timeout: seconds allowed for a REST book snapshot.
        max_body_bytes: largest REST snapshot body read.
        skew_resolution: see :data:`SKEW_RESOLUTION_SECONDS` (0.001 unless listed there).
        route: the exchange's egress (proxy, source address, IP protocol, TLS trust and name),
            shared with its REST probes.
    """

    exchange: str
    profile: str
    url: str
    channels: tuple[Channel, ...]
    markets: tuple[str, ...]
    stale_after: tuple[tuple[Channel, float], ...]
    open_timeout: float
    weight_budget: float
    rest_base_url: str
    rest_timeout: float
    max_body_bytes: int
    skew_resolution: float = 0.001
    route: Route = DIRECT

    @property
    def stale_map(self) -> dict[Channel, float]:
        """``stale_after`` as a mapping."""
        return dict(self.stale_after)

    def public_url(self) -> str:
        """The configured URL without user info, query or fragment (what ``/status`` shows)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def dialect_for(profile: str) -> type[StreamDialect] | None:
    """The stream dialect of a profile, or None when it has none (``generic``)."""
    from exporter.streams import dialects  # the registry imports every exchange's module

    try:
        return dialects.get_dialect(profile)
    except (KeyError, LookupError, ValueError):
        return None


def known_dialects() -> list[str]:
    """Profile names that have a stream dialect."""
    from exporter.streams import dialects

    return sorted(dialects.DIALECTS)


def check_websocket(
    profile: str, websocket: WebSocketConfig, markets: list[str] | None, default: str | None
) -> None:
    """Check what only the dialect can tell: that the profile has one, and that it can spell
    every market the stream would subscribe.

    Raises:
        ValueError: ``"websocket: …"`` or ``"websocket.markets: …"`` naming the value.
    """
    if not websocket.enabled:
        return
    dialect = dialect_for(profile)
    if dialect is None:
        raise ValueError(
            f"websocket: profile {profile!r} has no WebSocket dialect (streams exist for "
            f"{', '.join(known_dialects())}); remove the websocket block"
        )
    for market in stream_markets(websocket, markets, default):
        try:
            dialect().symbol(market)
        except ValueError as exc:
            raise ValueError(f"websocket.markets: {market!r}: {exc}") from None
    if websocket.stale_after:
        channels = websocket.effective_channels()
        extra = [channel.value for channel in websocket.stale_after if channel not in channels]
        if extra:
            raise ValueError(
                f"websocket.stale_after: {', '.join(extra)} not subscribed "
                f"(channels: {', '.join(c.value for c in channels)})"
            )


def stream_markets(
    websocket: WebSocketConfig, markets: list[str] | None, default: str | None
) -> tuple[str, ...]:
    """The markets a stream subscribes: its own, else the exchange's, else the default.

    Raises:
        ValueError: none of them is given and the profile has no default market.
    """
    chosen = websocket.markets or markets or ([default] if default else [])
    if not chosen:
        raise ValueError("websocket.markets: the profile has no default market; list markets")
    return tuple(chosen)


def make_plan(
    exchange: str,
    profile: str,
    websocket: WebSocketConfig,
    markets: list[str] | None,
    default_market: str | None,
    *,
    weight_budget: float,
    rest_base_url: str,
    rest_timeout: float,
    max_body_bytes: int,
    dialect: type[StreamDialect] | None = None,
) -> StreamPlan:
    """Resolve a validated ``websocket:`` block into a :class:`StreamPlan` (defaults from the
    dialect: ``default_url``, ``default_stale_after``).

    Raises:
        ValueError: the profile has no dialect (validation already refuses that).
    """
    dialect = dialect or dialect_for(profile)
    if dialect is None:
        raise ValueError(f"profile {profile!r} has no WebSocket dialect")
    channels = websocket.effective_channels()
    overrides: Mapping[Channel, float] = websocket.stale_after or {}
    stale = tuple(
        (channel, float(overrides.get(channel, dialect.default_stale_after[channel])))
        for channel in channels
    )
    return StreamPlan(
        exchange=exchange,
        profile=profile,
        url=websocket.url or dialect.default_url,
        channels=channels,
        markets=stream_markets(websocket, markets, default_market),
        stale_after=stale,
        open_timeout=websocket.open_timeout,
        weight_budget=weight_budget,
        rest_base_url=rest_base_url,
        rest_timeout=rest_timeout,
        max_body_bytes=max_body_bytes,
        skew_resolution=SKEW_RESOLUTION_SECONDS.get(profile, 0.001),
    )
