"""Rule-based diagnosis: a knowledge base keyed by alertname, usable without any LLM.

Each entry states the likely root cause, trading impact, up to five actions, a rollback plan and a
recovery estimate for one exchange-watch alert. Labels (``exchange``, ``endpoint``, ``severity``)
and annotations (``summary``, ``description``) are woven into the text as quoted evidence; they
are untrusted and are capped here and escaped later by each notifier.

Platform facts come from shared/reference/exchange-api-facts.md, which cites the exchanges' own
documentation:

* Binance: limits are per IP; ``X-MBX-USED-WEIGHT-1M`` on every response; 429 then 418 IP ban
  "from 2 minutes to 3 days" with ``Retry-After``; 5xx means "execution status is UNKNOWN";
  ``-1021 INVALID_TIMESTAMP`` outside ``recvWindow``; ``/sapi/v1/system/status`` (binance-spot-api-
  docs rest-api.md, errors.md).
* Bybit: ``retCode 10006`` rate limit, HTTP 403 "access too frequent" IP limit (wait ≥10 min),
  ``10002`` request time outside ``recv_window``, ``/v5/system/status`` (bybit-exchange/docs v5).
* OKX: ``50011`` rate limit, ``50102`` timestamp expired, ``50001`` service unavailable,
  ``/api/v5/system/status`` (okx.com/docs-v5).
* Coinbase Exchange: public 10 req/s per IP (burst 15), timestamps must be within 30 s
  (docs.cdp.coinbase.com).
* Kraken: ``EAPI:Rate limit exceeded``, ``EAPI:Invalid nonce``, ``EGeneral:Temporary lockout``,
  ``/0/public/SystemStatus`` (docs.kraken.com).
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.diagnosis.schema import Diagnosis, RootCauseCategory
from receiver.models import Alert
from receiver.text import cap, strip_control


@dataclass(frozen=True)
class RuleEntry:
    """One knowledge-base entry. Templates may use ``{exchange}``, ``{endpoint}``, ``{severity}``.

    Attributes:
        category: root cause category.
        confidence: 0..1 confidence of the rule when the alert matches by name.
        diagnosis: diagnosis template.
        impact: impact template.
        actions: action-item templates (at most 5; exchange-specific hints may replace the last).
        rollback: rollback-plan template.
        eta: recovery estimate.
    """

    category: RootCauseCategory
    confidence: float
    diagnosis: str
    impact: str
    actions: tuple[str, ...]
    rollback: str
    eta: str


_RECONCILE = (
    "Reconcile open orders and positions on {exchange} through a second path (another endpoint, "
    "WebSocket user stream or the web UI) before resubmitting anything: a 5xx or timeout means "
    "the execution status is unknown and the order may have been filled."
)

_OUTAGE = RuleEntry(
    category="outage",
    confidence=0.75,
    diagnosis=(
        "{exchange} API is not answering probes successfully (hard outage or loss of "
        "reachability). If the exporter's other exchanges are healthy, the fault is on the "
        "exchange side; if they fail too, suspect our own network, DNS or egress."
    ),
    impact=(
        "Orders, cancels and market data for {exchange} may fail or hang. Requests that got a 5xx "
        "or timed out have an UNKNOWN execution status; strategies quoting on {exchange} are "
        "exposed to unhedged positions and stale prices."
    ),
    actions=(
        "Check {exchange}'s status page and its system-status endpoint; compare with the "
        "exporter's other exchanges to rule out our own network.",
        "Pause order placement on {exchange}; rely on cancel-on-disconnect / dead-man's switch "
        "where configured.",
        _RECONCILE,
        "Fail over hedging and execution to a backup venue if the outage lasts more than a few "
        "minutes.",
        "Keep probing at the normal rate; do not hammer the API with retries while it recovers.",
    ),
    rollback=(
        "When probes succeed again: reconcile orders/positions, re-enable strategies on "
        "{exchange} gradually (read-only first, then small size), and move flow back from the "
        "backup venue."
    ),
    eta="5-60 minutes (exchange-side outages usually end within an hour)",
)

_ENDPOINT_DOWN = RuleEntry(
    category="partial_outage",
    confidence=0.7,
    diagnosis=(
        "Endpoint {endpoint} on {exchange} is failing while the rest of the API may still work: "
        "a partial outage of one service (market data, order entry or account)."
    ),
    impact=(
        "Features that depend on {endpoint} are degraded; strategies using it may act on stale or "
        "missing data. Other {exchange} endpoints may still be usable."
    ),
    actions=(
        "Confirm which {exchange} endpoints fail and which still work (compare probe results per "
        "endpoint).",
        "Check {exchange}'s status page / system-status endpoint for a partial incident.",
        "Route around it: use the WebSocket feed or an alternative endpoint/host for the same "
        "data.",
        "Pause strategies that cannot work without {endpoint}.",
        _RECONCILE,
    ),
    rollback=(
        "Once {endpoint} answers again, switch back from the alternative source, check data "
        "continuity, and resume paused strategies one at a time."
    ),
    eta="5-30 minutes",
)

_LATENCY = RuleEntry(
    category="latency_degradation",
    confidence=0.65,
    diagnosis=(
        "Response latency of {exchange} {endpoint} is above its threshold. This is either "
        "exchange-side load or a slow network path; rising latency often precedes 429/418 "
        "throttling or an outage."
    ),
    impact=(
        "Slower order acknowledgements and staler quotes on {exchange}: more slippage, missed "
        "fills and higher risk of requests timing out with unknown execution status."
    ),
    actions=(
        "Compare latency with the exporter's other exchanges and endpoints to separate an "
        "exchange-side slowdown from our own network path.",
        "Widen client timeouts and reduce REST polling frequency for {exchange}.",
        "Prefer WebSocket streams over REST polling for market data.",
        "Watch the rate-limit usage metrics: rising latency often precedes a 429 / 418.",
        "Reduce quoting aggressiveness or size on {exchange} until latency normalises.",
    ),
    rollback=(
        "Restore normal timeouts and polling once p95/p99 latency is back under threshold for "
        "several minutes."
    ),
    eta="5-30 minutes",
)

_ERROR_RATE = RuleEntry(
    category="partial_outage",
    confidence=0.6,
    diagnosis=(
        "A high share of {exchange} {endpoint} requests are failing. Check the status-code mix: "
        "5xx points at the exchange, 429/418/403 at rate limiting, 401/-2015-style errors at "
        "credentials, timestamp errors at clock skew."
    ),
    impact=(
        "Some {exchange} requests fail; orders whose requests got 5xx or timed out have an "
        "unknown execution status."
    ),
    actions=(
        "Break the error rate down by HTTP status and exchange error code to find the failing "
        "class.",
        "Check {exchange}'s status page for a partial incident.",
        "If 429/418/403 dominate, follow the rate-limit runbook: back off and cut request weight.",
        _RECONCILE,
        "Throttle or pause strategies that depend on {endpoint}.",
    ),
    rollback="Restore normal request rates once the error ratio is back under threshold.",
    eta="5-30 minutes",
)

_RATE_LIMIT = RuleEntry(
    category="rate_limit",
    confidence=0.8,
    diagnosis=(
        "Request budget on {exchange} is close to or over its limit. Limits are usually per IP "
        "(Binance: X-MBX-USED-WEIGHT-1M counts every process behind the same IP), so another bot "
        "or a retry storm on our egress IP consumes the same budget."
    ),
    impact=(
        "Further requests get 429; continuing after 429s escalates to an IP ban (Binance 418, "
        "from 2 minutes to 3 days) that blocks every strategy on that IP, including cancels."
    ),
    actions=(
        "Stop non-essential REST traffic to {exchange} now; keep budget for cancels and risk "
        "checks.",
        "Honour Retry-After on every 429; never retry in a tight loop - the next step is a ban "
        "(418).",
        "Find the heaviest callers: sum request weight per process/strategy sharing the egress "
        "IP (X-MBX-USED-WEIGHT-1M on Binance).",
        "Move market data to WebSocket streams and cache exchangeInfo/depth snapshots.",
        "Spread load over separate egress IPs or API keys only where the exchange permits it.",
    ),
    rollback=(
        "Re-enable paused traffic gradually while watching used weight stay well below the limit "
        "(e.g. under 70%)."
    ),
    eta="1-5 minutes once traffic is reduced (windows are per minute)",
)

_IP_BAN = RuleEntry(
    category="ip_ban",
    confidence=0.85,
    diagnosis=(
        "{exchange} is rejecting our IP (HTTP 418 on Binance, 403 'access too frequent' on "
        "Bybit): an automatic ban after continuing to send requests past 429s."
    ),
    impact=(
        "Every request from the banned IP fails, including cancels. Binance bans scale from 2 "
        "minutes to 3 days and get longer if requests continue during the ban."
    ),
    actions=(
        "Stop ALL requests from the banned IP to {exchange} immediately - retries during a ban "
        "extend it.",
        "Read Retry-After (seconds) from the 418/429 response and do not retry before it expires.",
        "Manage open orders from an unaffected IP/host, the WebSocket API or the web UI; "
        "hedge elsewhere if needed.",
        "Find the process that ignored 429s and fix its backoff before traffic resumes.",
        "After the ban, restart traffic slowly with rate-limit headroom.",
    ),
    rollback=(
        "After Retry-After has passed, re-enable one low-weight client, confirm 200s and used "
        "weight, then the rest gradually."
    ),
    eta="2 minutes to 3 days (Binance ban length; see Retry-After)",
)

_CLOCK_SKEW = RuleEntry(
    category="clock_skew",
    confidence=0.85,
    diagnosis=(
        "Our clock differs from {exchange}'s server time by more than the allowed window. "
        "Signed requests are rejected when the skew exceeds recvWindow (Binance -1021, Bybit "
        "10002, OKX 50102, Kraken 'EAPI:Invalid nonce', Coinbase ±30 s)."
    ),
    impact=(
        "Signed requests (orders, cancels, account) start failing on {exchange} while public "
        "market data still works; strategies may believe orders were sent when they were not."
    ),
    actions=(
        "Check NTP on the host: `chronyc tracking` / `timedatectl`; resync (`chronyc makestep`) "
        "and make sure chrony/ntpd is running.",
        "Compare the host clock with {exchange}'s server-time endpoint to confirm the offset.",
        "As a stopgap, widen recvWindow modestly (Binance max 60000 ms) - do not hide a "
        "drifting clock.",
        "Check VM/container clock sources if several hosts drift together.",
        "Reconcile orders that failed with timestamp errors before resubmitting.",
    ),
    rollback="Restore the default recvWindow once the skew is back under threshold.",
    eta="1-5 minutes after the clock is resynchronised",
)

_MAINTENANCE = RuleEntry(
    category="maintenance",
    confidence=0.8,
    diagnosis=(
        "{exchange} reports maintenance on its system-status endpoint (or trading is in "
        "cancel-only / post-only mode)."
    ),
    impact=(
        "Trading on {exchange} is unavailable or restricted during the window; orders may be "
        "rejected or only cancels accepted."
    ),
    actions=(
        "Check the announced window on {exchange}'s status page / announcements.",
        "Pause strategies on {exchange} and cancel orders that must not rest through the window.",
        "Route hedging to other venues until maintenance ends.",
        "Expect WebSocket disconnects; make sure reconnect logic backs off.",
    ),
    rollback=(
        "After the status returns to normal: reconcile orders/positions, resubscribe streams, "
        "re-enable strategies gradually."
    ),
    eta="as announced by the exchange (typically 30-120 minutes)",
)

_CIRCUIT = RuleEntry(
    category="partial_outage",
    confidence=0.6,
    diagnosis=(
        "The client circuit breaker for {exchange} {endpoint} is open: repeated failures made "
        "our side stop sending requests to protect the rate-limit budget and the strategy."
    ),
    impact="Requests to {exchange} {endpoint} are short-circuited until the breaker half-opens.",
    actions=(
        "Find the failures that opened the breaker (status codes, timeouts, error codes).",
        "Check {exchange}'s status page and the other exchange-watch alerts for {exchange}.",
        "Do not force the breaker closed while the cause persists.",
        _RECONCILE,
    ),
    rollback="Let the breaker half-open and close on success; then resume strategies gradually.",
    eta="1-15 minutes",
)

_STALE_DATA = RuleEntry(
    category="data_quality",
    confidence=0.7,
    diagnosis=(
        "Market data from {exchange} {endpoint} is stale: the last update or exchange timestamp "
        "is older than its threshold (stuck WebSocket, frozen book, or exchange-side feed delay)."
    ),
    impact=(
        "Strategies may quote or hedge on old prices; risk checks based on this feed are wrong."
    ),
    actions=(
        "Stop quoting on {exchange} from this feed until it is fresh again.",
        "Reconnect / resubscribe the WebSocket stream and fetch a fresh REST snapshot.",
        "Compare prices with another venue or the REST ticker to confirm staleness.",
        "Check for a gap in sequence numbers / update ids and rebuild the order book if needed.",
    ),
    rollback="Resume quoting once updates flow and the book matches a fresh snapshot.",
    eta="1-10 minutes",
)

_EXPORTER_DOWN = RuleEntry(
    category="monitoring",
    confidence=0.8,
    diagnosis=(
        "The exchange-watch exporter is not being scraped: monitoring of all exchanges is blind, "
        "not necessarily an exchange problem."
    ),
    impact="No exchange health alerts will fire while the exporter is down.",
    actions=(
        "Check the exporter process/service and its logs; restart it if it crashed.",
        "Check Prometheus targets page for the scrape error (connection refused, timeout).",
        "Watch exchanges manually (status pages) until monitoring is back.",
    ),
    rollback="None needed; confirm all exchange series resume after the exporter restarts.",
    eta="1-10 minutes",
)

_NETWORK = RuleEntry(
    category="network",
    confidence=0.7,
    diagnosis=(
        "Probes to several exchanges fail at once, which points at our own network, DNS or "
        "egress (firewall, NAT, proxy) rather than any one exchange."
    ),
    impact="All venues may be unreachable from this host: orders, cancels and data are at risk.",
    actions=(
        "Check DNS resolution, default route and egress firewall/NAT from the monitoring host.",
        "Test from another host/network to confirm the fault is local.",
        "Pause trading from affected hosts; rely on cancel-on-disconnect where configured.",
        "Reconcile orders on every venue once connectivity returns.",
    ),
    rollback="Re-enable strategies venue by venue after connectivity and reconciliation.",
    eta="5-60 minutes",
)

_WATCHDOG = RuleEntry(
    category="monitoring",
    confidence=0.9,
    diagnosis=(
        "Watchdog is an always-firing heartbeat proving the Prometheus → Alertmanager → receiver "
        "path works. Receiving it is expected."
    ),
    impact="None. Its absence (not its presence) indicates a broken alerting pipeline.",
    actions=("No action needed; route Watchdog to a dead-man's-switch service rather than chat.",),
    rollback="None.",
    eta="n/a",
)

_AUTH = RuleEntry(
    category="auth",
    confidence=0.7,
    diagnosis=(
        "{exchange} rejects our credentials or permissions (expired/revoked key, IP whitelist, "
        "missing permission, bad signature)."
    ),
    impact="Signed requests (orders, cancels, balances) fail on {exchange}; market data may work.",
    actions=(
        "Check the key's status, permissions and IP whitelist on {exchange}.",
        "Confirm the signing secret/passphrase deployed matches the key.",
        "Rule out clock skew (timestamp errors can look like auth failures).",
        "Rotate the key if it may be compromised.",
    ),
    rollback="Re-enable strategies after a signed read-only request succeeds.",
    eta="5-60 minutes (depends on key management)",
)

_DEFAULT = RuleEntry(
    category="unknown",
    confidence=0.3,
    diagnosis=(
        "No specific runbook matches this alert. Treat it according to its severity and the "
        "evidence below."
    ),
    impact=(
        "Unknown; assume trading that depends on this component ({exchange}) may be affected "
        "until verified."
    ),
    actions=(
        "Read the alert's summary/description and open its Prometheus graph (generator URL).",
        "Check {exchange}'s status page and other firing alerts for {exchange}.",
        "Check whether other exchanges show the same symptom (our side vs. exchange side).",
        "Escalate to the on-call owner of this alert if the cause is unclear.",
    ),
    rollback="Undo any mitigation once the alert resolves and metrics are normal.",
    eta="unknown",
)

#: Knowledge base keyed by the ``alertname`` label.
KNOWLEDGE_BASE: dict[str, RuleEntry] = {
    "ExchangeApiDown": _OUTAGE,
    "ExchangeEndpointDown": _ENDPOINT_DOWN,
    "ExchangeApiLatencyHigh": _LATENCY,
    "ExchangeApiLatencyDegraded": _LATENCY,
    "ExchangeApiErrorRateHigh": _ERROR_RATE,
    "ExchangeRateLimitNearExhaustion": _RATE_LIMIT,
    "ExchangeRateLimited": _RATE_LIMIT,
    "ExchangeIpBanned": _IP_BAN,
    "ExchangeClockSkewHigh": _CLOCK_SKEW,
    "ExchangeMaintenance": _MAINTENANCE,
    "ExchangeCircuitOpen": _CIRCUIT,
    "ExchangeMarketDataStale": _STALE_DATA,
    "ExchangeExporterDown": _EXPORTER_DOWN,
    "ExchangeMonitorNetworkDown": _NETWORK,
    "Watchdog": _WATCHDOG,
    "ExchangeAuthFailing": _AUTH,
}

#: Fallback by keyword in an unknown alertname (checked in order, case-insensitive).
_KEYWORDS: tuple[tuple[tuple[str, ...], RuleEntry], ...] = (
    (("ban", "418"), _IP_BAN),
    (("ratelimit", "rate_limit", "throttl", "429", "weight"), _RATE_LIMIT),
    (("clock", "skew", "timestamp", "drift"), _CLOCK_SKEW),
    (("maintenance",), _MAINTENANCE),
    (("auth", "apikey", "signature", "permission"), _AUTH),
    (("stale", "lag", "freshness"), _STALE_DATA),
    (("latency", "slow", "duration"), _LATENCY),
    (("circuit",), _CIRCUIT),
    (("error", "5xx", "failure"), _ERROR_RATE),
    (("exporter", "scrape", "targetdown"), _EXPORTER_DOWN),
    (("network", "dns", "unreachable"), _NETWORK),
    (("endpoint",), _ENDPOINT_DOWN),
    (("down", "outage", "unavailable"), _OUTAGE),
)

#: Exchange-specific detail added to the diagnosis, by (category, exchange label).
_EXCHANGE_HINTS: dict[tuple[str, str], str] = {
    ("rate_limit", "binance"): (
        "Binance: REQUEST_WEIGHT is 6000/min per IP; X-MBX-USED-WEIGHT-1M on every response "
        "shows usage; 429 carries Retry-After and continuing leads to 418."
    ),
    ("rate_limit", "bybit"): (
        "Bybit: retCode 10006 is the per-UID API limit; HTTP 403 'access too frequent' is the IP "
        "limit - stop all sessions and wait at least 10 minutes. X-Bapi-Limit-Status shows "
        "remaining quota."
    ),
    ("rate_limit", "okx"): (
        "OKX: code 50011 'Rate limit reached' (HTTP 200 or 429); limits are per endpoint."
    ),
    ("rate_limit", "coinbase"): (
        "Coinbase Exchange: public REST allows 10 requests/s per IP (bursts to 15); 429 on excess."
    ),
    ("rate_limit", "kraken"): (
        "Kraken: 'EAPI:Rate limit exceeded' in the error array (HTTP status is not used); public "
        "calls should stay around 1/s."
    ),
    ("ip_ban", "binance"): (
        "Binance: 418 means the IP is auto-banned after ignoring 429s; bans scale from 2 minutes "
        "to 3 days and Retry-After gives the remaining seconds."
    ),
    ("ip_ban", "bybit"): (
        "Bybit: HTTP 403 'access too frequent' is the IP ban; wait at least 10 minutes after "
        "stopping all sessions."
    ),
    ("ip_ban", "kraken"): (
        "Kraken: 'EGeneral:Temporary lockout' typically lasts a few minutes after repeated "
        "invalid requests."
    ),
    ("clock_skew", "binance"): (
        "Binance: -1021 INVALID_TIMESTAMP when serverTime - timestamp > recvWindow (default "
        "5000 ms, max 60000) or timestamp is over 1 s ahead."
    ),
    ("clock_skew", "bybit"): (
        "Bybit: retCode 10002 when the request time is outside recv_window (default 5000 ms)."
    ),
    ("clock_skew", "okx"): "OKX: 50102 'Timestamp request expired'.",
    ("clock_skew", "coinbase"): "Coinbase: request timestamps must be within 30 s of API time.",
    ("clock_skew", "kraken"): "Kraken: 'EAPI:Invalid nonce' when nonces go backwards or skew.",
    (
        "maintenance",
        "binance",
    ): "Binance: GET /sapi/v1/system/status returns status 1 in maintenance.",
    ("maintenance", "bybit"): "Bybit: GET /v5/system/status lists items with state 'ongoing'.",
    ("maintenance", "okx"): (
        "OKX: GET /api/v5/system/status shows ongoing items; 50001 'Service temporarily "
        "unavailable' during maintenance."
    ),
    ("maintenance", "kraken"): (
        "Kraken: GET /0/public/SystemStatus status is maintenance, cancel_only or post_only."
    ),
    ("outage", "binance"): (
        "Binance: a 5XX means 'execution status is UNKNOWN and could have been a success'; "
        "-1007 TIMEOUT / -1001 DISCONNECTED are backend errors."
    ),
    ("outage", "kraken"): (
        "Kraken: a non-200 status means the request did not reach Kraken; 'EService:Unavailable' "
        "/ 'EService:Busy' are exchange-side."
    ),
    ("outage", "okx"): "OKX: 50001 (503) service unavailable, 50013 systems busy.",
}

_EVIDENCE_LIMIT = 700
_EVIDENCE_LABELS = ("exchange", "endpoint", "severity", "instance", "code", "status_code")


def _clean(value: str, limit: int) -> str:
    return cap(" ".join(strip_control(value).split()), limit)


def _fill(template: str, values: dict[str, str]) -> str:
    # Only our own templates are format strings; label values are substituted, never parsed.
    return template.format_map(values)


def _evidence(alert: Alert) -> str:
    parts: list[str] = []
    label_bits = [
        f"{key}={_clean(alert.labels[key], 80)}"
        for key in _EVIDENCE_LABELS
        if alert.labels.get(key)
    ]
    if label_bits:
        parts.append("labels: " + ", ".join(label_bits))
    for key in ("summary", "description"):
        value = alert.annotations.get(key)
        if value:
            parts.append(f'{key}: "{_clean(value, 300)}"')
    if not parts:
        return ""
    return cap("Evidence - " + "; ".join(parts) + ".", _EVIDENCE_LIMIT)


def lookup_rule(alertname: str) -> RuleEntry:
    """Return the knowledge-base entry for ``alertname``.

    Exact name first, then keywords in the name (e.g. ``BinanceWeightHigh`` → rate limit),
    else the generic ``unknown`` entry.
    """
    entry = KNOWLEDGE_BASE.get(alertname)
    if entry is not None:
        return entry
    lowered = alertname.lower()
    for words, candidate in _KEYWORDS:
        if any(word in lowered for word in words):
            return candidate
    return _DEFAULT


_DISPLAY_NAMES = {
    "binance": "Binance",
    "bybit": "Bybit",
    "okx": "OKX",
    "coinbase": "Coinbase",
    "kraken": "Kraken",
}


def _values(alert: Alert) -> dict[str, str]:
    raw = alert.labels.get("exchange", "")
    exchange = _DISPLAY_NAMES.get(raw.lower()) or _clean(raw, 40)
    endpoint = _clean(alert.labels.get("endpoint", ""), 80)
    return {
        "exchange": exchange or "the exchange",
        "endpoint": endpoint or "(all endpoints)",
        "severity": _clean(alert.labels.get("severity", ""), 20) or "unspecified",
    }


def diagnose_with_rules(alert: Alert, *, extra_evidence: str | None = None) -> Diagnosis:
    """Diagnose one alert from the knowledge base (``source="rules"``).

    Args:
        alert: the alert; its own ``status`` decides between the firing and recovered texts.
        extra_evidence: optional already-capped text (e.g. a Prometheus query result) appended
            to the diagnosis.

    Returns:
        A valid :class:`Diagnosis`; never raises for any label/annotation content.
    """
    if alert.status == "resolved":
        return _recovered(alert)
    entry = lookup_rule(alert.alertname)
    values = _values(alert)
    exact = alert.alertname in KNOWLEDGE_BASE
    text = [_fill(entry.diagnosis, values)]
    hint = _EXCHANGE_HINTS.get((entry.category, alert.labels.get("exchange", "").lower()))
    if hint:
        text.append(hint)
    evidence = _evidence(alert)
    if evidence:
        text.append(evidence)
    if extra_evidence:
        text.append(extra_evidence)
    severity = alert.labels.get("severity", "").lower()
    impact = _fill(entry.impact, values)
    if severity == "critical":
        impact = "Severity critical. " + impact
    confidence = entry.confidence if exact else max(0.2, entry.confidence - 0.25)
    return Diagnosis(
        diagnosis=" ".join(text),
        impact=impact,
        action_items=[_fill(a, values) for a in entry.actions[:5]],
        rollback_plan=_fill(entry.rollback, values),
        estimated_recovery_time=entry.eta,
        root_cause_category=entry.category,
        confidence=confidence,
        source="rules",
    )


def _recovered(alert: Alert) -> Diagnosis:
    entry = lookup_rule(alert.alertname)
    values = _values(alert)
    ex = values["exchange"]
    actions = [
        f"Reconcile open orders and positions on {ex} against internal state.",
        "Re-enable paused strategies gradually (small size first) and watch fills and errors.",
        "Move any flow that was failed over to a backup venue back deliberately.",
        "Confirm the metric stays healthy for a full evaluation window; watch for flapping.",
        "Write down the timeline and cause for the post-incident review.",
    ]
    if alert.alertname == "Watchdog":
        actions = ["No action needed."]
    evidence = _evidence(alert)
    diagnosis = f"{alert.alertname} has recovered ({entry.category.replace('_', ' ')} cleared)."
    if evidence:
        diagnosis += " " + evidence
    return Diagnosis(
        diagnosis=diagnosis,
        impact=f"Condition cleared; residual risk from orders placed or missed on {ex} during "
        "the incident.",
        action_items=actions,
        rollback_plan=_fill(entry.rollback, values),
        estimated_recovery_time="recovered",
        root_cause_category=entry.category,
        confidence=min(0.95, entry.confidence + 0.1),
        source="rules",
    )
