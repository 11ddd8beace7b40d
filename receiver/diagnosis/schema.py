"""The diagnosis schema shared by the LLM path, the rules engine and every notifier.

Shape (JSON)::

    {"diagnosis": str, "impact": str, "action_items": [str, ... at most 5],
     "rollback_plan": str, "estimated_recovery_time": str,
     "root_cause_category": one of ROOT_CAUSE_CATEGORIES, "confidence": float in [0, 1],
     "source": "llm" | "rules", "context": Context | null}

Out-of-range values (6+ action items, confidence 3, unknown category, missing field) are
*rejected* so that the LLM path can ask for a repair or fall back to rules. Over-long strings are
*capped* instead (they are harmless once cut), so a verbose model is not penalised.

``context`` is never written by the model (the LLM path drops any ``context`` key it sends): the
engine attaches the Prometheus :class:`Context` of the alert (statistics over
[startsAt − 30 min, now], error codes, failing endpoints) so that every notifier can show it
(``context.summary`` as compact text, ``context.fields`` as label → value pairs) and so that it is
stored with the diagnosis and survives a restart.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from receiver.text import cap, strip_control

RootCauseCategory = Literal[
    "rate_limit",
    "ip_ban",
    "outage",
    "partial_outage",
    "latency_degradation",
    "maintenance",
    "clock_skew",
    "auth",
    "network",
    "data_quality",
    "monitoring",
    "unknown",
]

#: The allowed ``root_cause_category`` values, in documentation order.
ROOT_CAUSE_CATEGORIES: tuple[str, ...] = get_args(RootCauseCategory)

MAX_ACTION_ITEMS = 5


def _capper(limit: int) -> AfterValidator:
    def _cap(value: str) -> str:
        # Lone surrogates (possible in model output) would break UTF-8 writes later.
        value = value.encode("utf-8", "replace").decode("utf-8")
        value = strip_control(value).strip()
        if not value:
            raise ValueError("must not be empty")
        return cap(value, limit)

    return AfterValidator(_cap)


ShortText = Annotated[str, _capper(120)]
ItemText = Annotated[str, _capper(400)]
MediumText = Annotated[str, _capper(1200)]
LongText = Annotated[str, _capper(2000)]


SeriesKey = Literal["latency_p99", "error_ratio", "rate_limit_usage", "clock_skew"]


class SeriesStats(BaseModel):
    """numpy statistics of one metric of the alert's exchange over the context window.

    Attributes:
        key: which metric (``latency_p99`` seconds, ``error_ratio`` 0..1, ``rate_limit_usage``
            0..1 of the limit, ``clock_skew`` seconds, exchange minus local).
        label: display name, e.g. ``"p99 latency"``.
        unit: ``"seconds"`` or ``"ratio"`` (shown as %).
        current: the last finite value.
        mean, std: baseline mean and population standard deviation (``ddof=0``) of the points
            before ``startsAt − 5 min`` (the alert's ``for`` is excluded), else before
            ``startsAt`` (``baseline_basis="before_alert"``, at least 3 points), else of every
            point but the last (``"window"``); ``None`` with fewer than 2 baseline points.
        z: ``(current - mean) / std``; ``None`` when std is 0 or unknown.
        slope_per_minute: least-squares slope of the points since ``startsAt`` (at least 3),
            else of the whole window, in units per minute; ``None`` with fewer than 2 points.
        trend: ``rising``, ``falling`` or ``flat`` (change along the fit below 10 % of the
            window's range counts as flat).
        minimum, maximum: over the window.
        points, baseline_points: numbers of finite points used.
        text: compact rendering, e.g. ``p99 latency 1.84 s (baseline 0.21 ± 0.05 s, z 32.6,
            rising 0.12 s/min)``.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: SeriesKey
    label: str
    unit: Literal["seconds", "ratio"]
    current: float
    mean: float | None = None
    std: float | None = None
    z: float | None = None
    slope_per_minute: float | None = None
    trend: Literal["rising", "falling", "flat"] = "flat"
    minimum: float
    maximum: float
    points: int
    baseline_points: int = 0
    baseline_basis: Literal["before_alert", "window", "none"] = "none"
    text: str


class CodeCount(BaseModel):
    """How often one error code / HTTP status / probe result was seen in the context window.

    Attributes:
        kind: ``error_code`` (``exchange_api_errors_total``), ``http_status``
            (``exchange_api_http_responses_total``) or ``result``
            (``exchange_api_requests_total``).
        code: the code, status or result (capped, from Prometheus labels).
        endpoint: probe endpoint, or ``""`` when summed over endpoints.
        count: increase over the window (Prometheus extrapolates: may be fractional).
        meaning: short classification, e.g. ``"timestamp outside recvWindow"``.
        cls: bounded class used by the rules (``rate_limit``, ``ban``, ``timestamp``, ``auth``,
            ``waf``, ``exchange_error``, ``maintenance``, ``request``, ``network``, ``dns``,
            ``tls``, ``bad_response``, ``ok``, ``unknown``).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["error_code", "http_status", "result"]
    code: str
    endpoint: str = ""
    count: float
    meaning: str = ""
    cls: str = "unknown"


class KeyState(BaseModel):
    """State of one configured API key over the context window (API-key alerts only).

    Read from the exporter's ``exchange_api_key_*`` series of the alert's ``exchange`` and
    ``key`` labels (:mod:`receiver.diagnosis.keycontext`). Nothing here is secret: ``name`` is
    the key's configured name (the ``key`` label), never the key itself.

    Attributes:
        name: the ``key`` label (capped, control characters stripped).
        up: ``exchange_api_key_up`` now (1 accepted, 0 rejected), ``None`` when absent.
        up_max: its maximum over the window (1: the key was accepted at some point).
        checks: result → increase of ``exchange_api_key_checks_total`` over the window (only
            results seen at least once; may be fractional, Prometheus extrapolates).
        ip_restricted: ``exchange_api_key_ip_restricted`` now (1 bound to IPs, 0 not bound).
        ip_restricted_min, ip_restricted_max: its minimum and maximum over the window (equal:
            the binding did not change; ``None`` where the exchange does not say, e.g. Coinbase).
        permissions: permission (``read``, ``trade``, ``withdraw``, ``transfer``) → 1/0 now.
        expiry: ``exchange_api_key_expiry_timestamp_seconds`` now, Unix seconds (``None``: no
            known expiry).
        text: compact rendering for the context fields (≤ 300 chars).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    up: float | None = None
    up_max: float | None = None
    checks: dict[str, float] = Field(default_factory=dict)
    ip_restricted: float | None = None
    ip_restricted_min: float | None = None
    ip_restricted_max: float | None = None
    permissions: dict[str, float] = Field(default_factory=dict)
    expiry: float | None = None
    text: str = ""

    @property
    def ok_before(self) -> bool:
        """The key was accepted at some point of the window (``ok`` checks or ``up`` was 1)."""
        return self.checks.get("ok", 0.0) >= 0.5 or (self.up_max or 0.0) >= 1

    @property
    def ip_binding_changed(self) -> bool:
        """``exchange_api_key_ip_restricted`` took two values over the window."""
        low, high = self.ip_restricted_min, self.ip_restricted_max
        return low is not None and high is not None and low != high


class VenueQuote(BaseModel):
    """One market's quote in the market context of a market-integrity alert.

    Attributes:
        exchange: the venue (``exchange`` label); market: unified ``BASE/QUOTE``;
            price_group: the comparable-markets group (all capped Prometheus label values).
        bid, ask: best bid and ask now, quote-currency units (``None``: absent).
        mid_before: the mid five minutes earlier (``None``: absent).
        age: seconds since the quote's last update (``None``: unknown).
        volume_ratio: traded-volume rate over 5 m divided by its 1 h rate (``None``: unknown).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    exchange: str = ""
    market: str = ""
    price_group: str = ""
    bid: float | None = None
    ask: float | None = None
    mid_before: float | None = None
    age: float | None = None
    volume_ratio: float | None = None

    @property
    def mid(self) -> float | None:
        """``(bid + ask) / 2`` when both are positive, else ``None``."""
        if self.bid is None or self.ask is None or self.bid <= 0 or self.ask <= 0:
            return None
        return (self.bid + self.ask) / 2


class MarketState(BaseModel):
    """Market context of one market-integrity alert (:mod:`receiver.diagnosis.marketcontext`).

    Attributes:
        exchange, market, price_group, window: the alert's labels (capped; ``""`` absent).
        quotes: every venue's quote of the alert's price group (the alert's venue included).
        venue: the alert venue's quotes of every price group it quotes.
        medians: price group → median mid of the other venues (quote-currency units).
        used, limit: the venue's reported rate-limit usage and limit of ``window`` now.
        slope_per_second: ``deriv`` of the usage over 5 m (weight per second).
        maintenance_start, maintenance_end: the announced window, Unix seconds.
        at: Unix seconds the instant queries were evaluated at.
        text: compact rendering for the context fields (≤ 300 chars).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    exchange: str = ""
    market: str = ""
    price_group: str = ""
    window: str = ""
    quotes: list[VenueQuote] = Field(default_factory=list)
    venue: list[VenueQuote] = Field(default_factory=list)
    medians: dict[str, float] = Field(default_factory=dict)
    used: float | None = None
    limit: float | None = None
    slope_per_second: float | None = None
    maintenance_start: float | None = None
    maintenance_end: float | None = None
    at: float = 0.0
    text: str = ""

    def own(self) -> VenueQuote | None:
        """The alert's own quote (its exchange and market) in :attr:`quotes`."""
        for quote in self.quotes:
            if quote.exchange == self.exchange and (not self.market or quote.market == self.market):
                return quote
        return None

    def others(self) -> list[VenueQuote]:
        """The other venues' quotes of the price group."""
        return [q for q in self.quotes if q.exchange != self.exchange]


#: The request phases of ``exchange_api_request_phase_seconds``, in request order.
Phase = Literal["resolve", "connect", "tls", "processing", "transfer"]


class PhaseTiming(BaseModel):
    """One request phase of the alert's exchange: now against the window before the alert.

    Attributes:
        phase: ``resolve`` (DNS), ``connect`` (TCP, plus the egress proxy's CONNECT), ``tls``
            (handshake), ``processing`` (request written to the first byte of the answer),
            ``transfer`` (first to last byte).
        now: seconds, the average of the non-zero samples over the recent window, averaged over
            the endpoints (``None``: no sample; for ``resolve``/``connect``/``tls`` that means
            every probe reused a keep-alive connection, which records 0).
        before: the same over the window before the alert (``None``: no sample).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    phase: Phase
    now: float | None = None
    before: float | None = None


class PathState(BaseModel):
    """Where the probes' time goes, and the TLS certificate (:mod:`receiver.diagnosis.pathcontext`).

    Attributes:
        phases: the phases with a sample in either window, in request order.
        window: seconds of the recent window (from 5 min before ``startsAt`` to now, ≤ 1 h).
        baseline_window: seconds of the window before it (ends 5 min before ``startsAt``).
        location: the alert's ``location`` label the queries were restricted to (``""``: every
            location).
        tls_cert_expiry: ``exchange_tls_cert_expiry_timestamp_seconds``, its lowest value over
            the last hour, Unix seconds: the earliest ``notAfter`` of the chain presented (the
            exchange's, or a TLS-inspecting proxy's); ``None`` when absent.
        text: compact rendering of the phases for the context fields (≤ 300 chars).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    phases: list[PhaseTiming] = Field(default_factory=list)
    window: float = 0.0
    baseline_window: float = 0.0
    location: str = ""
    tls_cert_expiry: float | None = None
    text: str = ""

    def timing(self, phase: str) -> PhaseTiming | None:
        """The timing of ``phase``, if it had a sample."""
        return next((p for p in self.phases if p.phase == phase), None)


class Context(BaseModel):
    """Prometheus context of one firing alert, built by :mod:`receiver.diagnosis.context`.

    Attributes:
        exchange: the alert's ``exchange`` label (``None`` for global alerts).
        start, end: the window, Unix seconds (``startsAt − 30 min`` .. now).
        step: ``query_range`` step in seconds (keeps ≤ ~120 points).
        series: statistics per metric that had data.
        counts: error codes, HTTP statuses and probe results over the window (largest first).
        exchanges_up: other exchanges → whether at least one of their endpoints is up now.
        alert_value: the alert expression's current value (``g0.expr`` of ``generatorURL``).
        key: the API key's state, for alerts carrying a ``key`` label (else ``None``).
        market: the market context of a market-integrity alert (else ``None``).
        path: the request phases and TLS certificate expiry of the alert's exchange (alerts
            with an ``exchange`` label, except the API-key and market-integrity alerts).
        note: why the context is empty or partial (Prometheus down or slow), else ``None``.
        summary: compact multi-line text for messages (≤ 1000 chars).
        fields: ordered ``label → short text`` pairs for notifiers (≤ 8, values ≤ 300 chars).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    exchange: str | None = None
    start: float = 0.0
    end: float = 0.0
    step: float = 0.0
    series: list[SeriesStats] = Field(default_factory=list)
    counts: list[CodeCount] = Field(default_factory=list)
    exchanges_up: dict[str, bool] = Field(default_factory=dict)
    alert_value: str | None = None
    key: KeyState | None = None
    market: MarketState | None = None
    path: PathState | None = None
    note: str | None = None
    summary: str = ""
    fields: dict[str, str] = Field(default_factory=dict)

    def stats(self, key: str) -> SeriesStats | None:
        """The statistics of series ``key``, if it had data."""
        return next((s for s in self.series if s.key == key), None)

    @property
    def empty(self) -> bool:
        """True when no metric, count or alert value was obtained."""
        return not (
            self.series
            or self.counts
            or self.exchanges_up
            or self.alert_value
            or self.key
            or self.market
            or self.path
        )


class Diagnosis(BaseModel):
    """A validated diagnosis of one alert notification.

    Attributes:
        diagnosis: what is happening and why (≤2000 chars after capping).
        impact: what this means for trading (≤1200 chars).
        action_items: 1–5 concrete steps, most urgent first (each ≤400 chars).
        rollback_plan: how to undo mitigations once healthy (≤1200 chars).
        estimated_recovery_time: human estimate such as "5-30 minutes" (≤120 chars).
        root_cause_category: one of :data:`ROOT_CAUSE_CATEGORIES`.
        confidence: 0.0–1.0.
        source: ``"llm"`` or ``"rules"``.
        context: Prometheus context attached by the engine (never by the model), or ``None``
            (resolved alerts, ``PROMETHEUS_URL`` unset).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    diagnosis: LongText
    impact: MediumText
    action_items: list[ItemText] = Field(min_length=1, max_length=MAX_ACTION_ITEMS)
    rollback_plan: MediumText
    estimated_recovery_time: ShortText
    root_cause_category: RootCauseCategory
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    source: Literal["llm", "rules"]
    context: Context | None = None
