"""Rule-based diagnosis: a knowledge base per alert plus evidence from the Prometheus context.

Good on its own, without any LLM. For each exchange-watch alert (docs/alerts.md) an entry states
the likely root cause, trading impact, up to five actions, a rollback plan and a recovery
estimate. The alert's :class:`~receiver.diagnosis.schema.Context` then sharpens it:

* error codes, HTTP statuses and probe results counted over the window are classified
  (:mod:`receiver.diagnosis.codes`): Binance -1003 vs -1021 vs -2015, Bybit 10006 vs 10002,
  OKX 50011 vs 50001, 418/429/403/5xx... Their advice goes first in the action items, and for
  symptom alerts (down, endpoint down, error rate, budget burn, circuit open) a clearly dominant
  class changes the root cause category (e.g. -1021 everywhere → ``clock_skew``);
* every other exchange down at once → our network, not the exchange;
* the series statistics (z-score against the pre-alert baseline, least-squares trend) are
  quoted where they matter: latency for latency alerts, rate-limit usage (with the time to reach
  the limit) for rate-limit alerts, the sign and drift of the clock skew, and so on.

Labels (``exchange``, ``endpoint``, ``severity``) and annotations (``summary``,
``description``) are woven into the text as quoted evidence; they are untrusted, capped here and
escaped later by each notifier. Label values are substituted into our templates, never parsed as
templates.

Platform facts come from shared/reference/exchange-api-facts.md, which cites the exchanges' own
documentation:

* Binance: limits are per IP; ``X-MBX-USED-WEIGHT-1M`` on every response; 429 then 418 IP ban
  "from 2 minutes to 3 days" with ``Retry-After``; 403 is a WAF block; 5xx means "execution status
  is UNKNOWN"; ``-1021 INVALID_TIMESTAMP`` outside ``recvWindow`` or over 1 s ahead; ``-2015``
  invalid key, IP or permissions; ``/sapi/v1/system/status``.
* Bybit: ``retCode 10006`` rate limit, HTTP 403 "access too frequent" IP limit (wait ≥10 min),
  ``10002`` request time outside ``recv_window``, ``10010`` unmatched IP, ``/v5/system/status``.
* OKX: ``50011`` rate limit, ``50102`` timestamp expired, ``50001`` service unavailable,
  ``50110`` IP not whitelisted, ``/api/v5/system/status``.
* Coinbase Exchange: public 10 req/s per IP (burst 15), timestamps within 30 s.
* Kraken: ``EAPI:Rate limit exceeded``, ``EAPI:Invalid nonce``, ``EGeneral:Temporary lockout``,
  ``/0/public/SystemStatus``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from receiver.diagnosis.codes import CLASS_CATEGORY
from receiver.diagnosis.context import (
    baseline_text,
    fmt_count,
    fmt_number,
    fmt_value,
    slope_text,
)
from receiver.diagnosis.schema import CodeCount, Context, Diagnosis, RootCauseCategory
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
        actions: action-item templates (at most 5; evidence-driven actions go first).
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
        "Endpoint {endpoint} on {exchange} is failing while the rest of the API still answers: "
        "a partial outage of one service (market data, order book, status), a WAF/CDN rule on "
        "one path, or an endpoint retired by an API change."
    ),
    impact=(
        "Features that depend on {endpoint} are degraded; strategies using it may act on stale or "
        "missing data. Other {exchange} endpoints are still usable."
    ),
    actions=(
        "Break the failures of {endpoint} down by result and error code "
        "(exchange_api_requests_total / exchange_api_errors_total) to see what class fails.",
        "Check {exchange}'s status page and API changelog (a 404/410 or bad_response means "
        "the endpoint changed or was retired).",
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

_LATENCY_HIGH = RuleEntry(
    category="latency_degradation",
    confidence=0.65,
    diagnosis=(
        "The p99 latency of {exchange} is above its absolute threshold. This is either "
        "exchange-side load (volatile markets, listings) or a slow network path; rising latency "
        "often precedes 429/418 throttling or an outage."
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
        "Treat timed-out order requests as unknown outcomes and reconcile before retrying.",
    ),
    rollback=(
        "Restore normal timeouts and polling once p95/p99 latency is back under threshold for "
        "several minutes."
    ),
    eta="5-30 minutes",
)

_LATENCY_DEGRADED = RuleEntry(
    category="latency_degradation",
    confidence=0.65,
    diagnosis=(
        "The median latency of {exchange} is several times its own 6-hour baseline while the "
        "API still answers. A relative slowdown like this is the typical prelude to throttling "
        "(Binance 429/-1003 then 418 bans, Bybit 403), or exchange overload or a route change."
    ),
    impact=(
        "Orders on {exchange} are acknowledged more slowly than usual; if it is throttling, "
        "429s and an IP ban that blocks every bot on this IP may follow."
    ),
    actions=(
        "Check rate-limit usage on {exchange} now and cut request weight from the bots on this IP "
        "before the exchange starts answering 429.",
        "Compare with other exchanges: if all are slower, it is our network or host.",
        "Widen client timeouts and reduce REST polling frequency for {exchange}.",
        "Prefer WebSocket streams over REST polling for market data.",
        "Treat timed-out order requests as unknown outcomes and reconcile before retrying.",
    ),
    rollback="Restore normal polling once the median is back near its baseline.",
    eta="5-30 minutes",
)

_ERROR_RATE = RuleEntry(
    category="partial_outage",
    confidence=0.6,
    diagnosis=(
        "A high share of {exchange} probes are failing while the API is not fully down. The "
        "status-code mix decides the cause: 5xx / busy codes point at the exchange, 429/418/403 "
        "at rate limiting, -2015-style errors at credentials, timestamp errors at clock skew."
    ),
    impact=(
        "Some {exchange} requests fail; orders whose requests got 5xx or timed out have an "
        "unknown execution status."
    ),
    actions=(
        "Break the error rate down by result and exchange error code to find the failing class.",
        "Check {exchange}'s status page for a partial incident.",
        "If 429/418/403 dominate, follow the rate-limit runbook: back off and cut request weight.",
        _RECONCILE,
        "Add retries with backoff on idempotent calls; throttle strategies that depend on the "
        "failing endpoints.",
    ),
    rollback="Restore normal request rates once the error ratio is back under threshold.",
    eta="5-30 minutes",
)

_BUDGET_BURN = RuleEntry(
    category="partial_outage",
    confidence=0.6,
    diagnosis=(
        "{exchange} is spending its 30-day availability error budget (99.9% objective) too fast: "
        "a sustained partial failure - one endpoint down, a steady error rate, repeated short "
        "outages or rate limiting - rather than one hard outage."
    ),
    impact=(
        "Reliability of {exchange} for the bots is below objective; at this burn rate the "
        "monthly budget is gone early and the next incident has no headroom."
    ),
    actions=(
        "Find the failing part: error ratio per endpoint and the error-code / result mix over "
        "the last hours.",
        "Fast burn: handle it as an incident - the same actions as ExchangeApiDown for the "
        "affected functions.",
        "Slow burn: open a ticket and look for a trend (deprecated endpoint, noisy region, a "
        "limit creeping up); fix it within days.",
        _RECONCILE,
    ),
    rollback="None beyond fixing the cause; the burn alert clears as the windows recover.",
    eta="hours (the long burn window must recover)",
)

_RATE_LIMIT_NEAR = RuleEntry(
    category="rate_limit",
    confidence=0.8,
    diagnosis=(
        "This IP's usage of {exchange}'s request budget is close to the limit. Limits are per IP "
        "(Binance: X-MBX-USED-WEIGHT-1M counts every process behind the same IP), so another bot "
        "or a retry storm on our egress IP consumes the same budget."
    ),
    impact=(
        "The next burst gets 429 (Binance -1003, Bybit 10006, OKX 50011); continuing after 429s "
        "escalates to an IP ban (Binance 418, from 2 minutes to 3 days) that blocks every "
        "strategy on that IP, including cancels."
    ),
    actions=(
        "Find the heaviest callers: sum request weight per process/strategy sharing the egress "
        "IP (X-MBX-USED-WEIGHT-1M on Binance).",
        "Reduce polling frequency and request weight (smaller order-book limit: Binance depth "
        "over 1000 levels costs 250).",
        "Move market data to WebSocket streams and cache exchangeInfo/depth snapshots.",
        "Keep budget for cancels and risk checks; pause non-essential REST traffic.",
        "Spread load over separate egress IPs only where the exchange permits it.",
    ),
    rollback=(
        "Re-enable paused traffic gradually while watching used weight stay well below the limit "
        "(e.g. under 70%)."
    ),
    eta="1-5 minutes once traffic is reduced (windows are per minute)",
)

_RATE_LIMITED = RuleEntry(
    category="rate_limit",
    confidence=0.8,
    diagnosis=(
        "{exchange} is answering with its rate-limit error (HTTP 429 / Binance -1003, Bybit "
        "10006, OKX 50011, Kraken EAPI:Rate limit exceeded). Limits are usually per IP "
        "(Binance: X-MBX-USED-WEIGHT-1M counts every process behind the same IP), so another bot "
        "or a retry storm on our egress IP consumes the same budget."
    ),
    impact=(
        "Requests from this IP - the bots' orders included - are rejected; continuing after 429s "
        "escalates to an IP ban (Binance 418, from 2 minutes to 3 days) that blocks every "
        "strategy on that IP, including cancels."
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
        "Bybit, EGeneral:Temporary lockout on Kraken): an automatic ban after continuing to send "
        "requests past 429s."
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
        "Compare the host clock with {exchange}'s server-time endpoint to confirm the offset; "
        "the same skew on several exchanges means it is our clock.",
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
        "{exchange} reports maintenance on its system-status endpoint or in its answers (OKX "
        "50001, Kraken cancel_only/post_only, Binance -1016): planned or emergency work, not an "
        "incident on our side."
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
        "If it lasts well past the announced end, treat it as an outage.",
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
        "The exporter's circuit breaker for {exchange} is open or half-open: after repeated "
        "timeouts, connection or HTTP errors it probes less often until a trial probe succeeds, "
        "so {exchange}'s metrics update more slowly."
    ),
    impact=(
        "{exchange} is failing often enough to trip the breaker; the bots are likely seeing the "
        "same failures, and monitoring of {exchange} is coarser until it closes."
    ),
    actions=(
        "Find the failures that opened the breaker (results, status codes, error codes) and the "
        "other alerts for {exchange}.",
        "Check {exchange}'s status page.",
        "If it stays open while {exchange} works from elsewhere, check the exporter host's route "
        "to it (/status on the exporter shows the last error per endpoint).",
        _RECONCILE,
    ),
    rollback="None: the breaker closes by itself on the first successful trial probe.",
    eta="1-15 minutes",
)

_STALE_DATA = RuleEntry(
    category="data_quality",
    confidence=0.7,
    diagnosis=(
        "Market data from {exchange} {endpoint} is stale: the newest data in the answers is older "
        "than its threshold while the API answers (market-data service stalling behind a healthy "
        "front, a cache/CDN serving old responses, a halted pair, or a wrong clock)."
    ),
    impact=(
        "Strategies may quote or hedge on old prices; risk checks based on this feed are wrong."
    ),
    actions=(
        "Stop quoting on {exchange} from this feed until it is fresh again.",
        "Compare prices with the WebSocket feed, the REST ticker or another venue to confirm.",
        "Check clock skew: the age is measured against the exchange's time corrected by the "
        "measured skew.",
        "Check the symbol is not halted or delisted; reconnect streams and rebuild the order "
        "book from a fresh snapshot.",
    ),
    rollback="Resume quoting once updates flow and the book matches a fresh snapshot.",
    eta="1-10 minutes",
)

_EXPORTER_DOWN = RuleEntry(
    category="monitoring",
    confidence=0.8,
    diagnosis=(
        "The exchange-watch exporter is not being scraped: monitoring of all exchanges is blind, "
        "not necessarily an exchange problem. Per-exchange alerts resolving now mean nothing."
    ),
    impact="No exchange health alerts will fire while the exporter is down.",
    actions=(
        "Check the exporter process/service and its logs (`exchange-exporter --config ... "
        "--check-config`); restart it if it crashed.",
        "Check the Prometheus targets page for the scrape error (connection refused, timeout).",
        "Check exchange_exporter_config_last_reload_successful after a config change.",
        "Watch exchanges manually (status pages) until monitoring is back.",
    ),
    rollback="None needed; confirm all exchange series resume after the exporter restarts.",
    eta="1-10 minutes",
)

_NETWORK = RuleEntry(
    category="network",
    confidence=0.7,
    diagnosis=(
        "The monitor's own connectivity fails (DNS resolution of the exchange hosts or the "
        "canary URL), or probes to several exchanges fail at once: our own network, DNS or "
        "egress (firewall, NAT, proxy), not any one exchange."
    ),
    impact="All venues may be unreachable from this host: orders, cancels and data are at risk.",
    actions=(
        "Check DNS resolution (`dig` an exchange host), default route and egress firewall/NAT/"
        "proxy from the exporter host.",
        "Test from another host/network to confirm the fault is local.",
        "Check the bots on the same network: they are likely cut off too; pause them and rely "
        "on cancel-on-disconnect.",
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
    actions=("No action needed; route Watchdog to the receiver's /heartbeat, not to chat.",),
    rollback="None.",
    eta="n/a",
)

_PIPELINE_DOWN = RuleEntry(
    category="monitoring",
    confidence=0.85,
    diagnosis=(
        "The receiver has stopped getting Watchdog heartbeats: Prometheus, its rule evaluation, "
        "Alertmanager or the path between them and the receiver is broken (dead man's switch). "
        "Exchange alerts may not be reaching anyone."
    ),
    impact=(
        "Exchange problems can go unnoticed while the pipeline is down; this message is the only "
        "signal."
    ),
    actions=(
        "Check Prometheus: /-/ready, rule evaluation failures "
        "(prometheus_rule_evaluation_failures_total) and its Alertmanager notifications.",
        "Check Alertmanager: /-/ready and alertmanager_notifications_failed_total; its log for "
        "webhook errors.",
        "Check the network and auth between Alertmanager and the receiver (POST /heartbeat).",
        "Watch the exchanges manually (status pages, dashboards) until heartbeats resume.",
    ),
    rollback="None needed; confirm heartbeats arrive again about once a minute.",
    eta="5-30 minutes",
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
        "Check the key's status, permissions and IP whitelist on {exchange} against our current "
        "egress IP.",
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
    "ExchangeApiLatencyHigh": _LATENCY_HIGH,
    "ExchangeApiLatencyDegraded": _LATENCY_DEGRADED,
    "ExchangeApiErrorRateHigh": _ERROR_RATE,
    "ExchangeApiAvailabilityBudgetBurn": _BUDGET_BURN,
    "ExchangeRateLimitNearExhaustion": _RATE_LIMIT_NEAR,
    "ExchangeRateLimited": _RATE_LIMITED,
    "ExchangeIpBanned": _IP_BAN,
    "ExchangeClockSkewHigh": _CLOCK_SKEW,
    "ExchangeMaintenance": _MAINTENANCE,
    "ExchangeCircuitOpen": _CIRCUIT,
    "ExchangeMarketDataStale": _STALE_DATA,
    "ExchangeExporterDown": _EXPORTER_DOWN,
    "ExchangeMonitorNetworkDown": _NETWORK,
    "Watchdog": _WATCHDOG,
    "AlertingPipelineDown": _PIPELINE_DOWN,
    "ExchangeAuthFailing": _AUTH,
}

#: Alerts whose category the evidence may change (they report a symptom, not a cause).
SYMPTOM_ALERTS = frozenset(
    {
        "ExchangeApiDown",
        "ExchangeEndpointDown",
        "ExchangeApiErrorRateHigh",
        "ExchangeApiAvailabilityBudgetBurn",
        "ExchangeCircuitOpen",
    }
)

#: The entry used when the evidence points at another category than the alert's.
CATEGORY_ENTRY: dict[str, RuleEntry] = {
    "rate_limit": _RATE_LIMITED,
    "ip_ban": _IP_BAN,
    "clock_skew": _CLOCK_SKEW,
    "auth": _AUTH,
    "maintenance": _MAINTENANCE,
    "partial_outage": _ERROR_RATE,
    "outage": _OUTAGE,
    "network": _NETWORK,
}

#: Fallback by keyword in an unknown alertname (checked in order, case-insensitive).
_KEYWORDS: tuple[tuple[tuple[str, ...], RuleEntry], ...] = (
    (("heartbeat", "pipeline", "deadman", "dead_man"), _PIPELINE_DOWN),
    (("ban", "418"), _IP_BAN),
    (("ratelimit", "rate_limit", "throttl", "429", "weight"), _RATE_LIMITED),
    (("clock", "skew", "timestamp", "drift"), _CLOCK_SKEW),
    (("maintenance",), _MAINTENANCE),
    (("auth", "apikey", "signature", "permission"), _AUTH),
    (("stale", "lag", "freshness"), _STALE_DATA),
    (("latency", "slow", "duration"), _LATENCY_HIGH),
    (("circuit",), _CIRCUIT),
    (("budget", "burn", "slo"), _BUDGET_BURN),
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
        "limit (600 requests per 5 s) - stop all sessions and wait at least 10 minutes. "
        "X-Bapi-Limit-Status shows remaining quota."
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
        "to 3 days and Retry-After gives the remaining seconds. HTTP 403 is a WAF block."
    ),
    ("ip_ban", "bybit"): (
        "Bybit: HTTP 403 'access too frequent' is the IP ban; wait at least 10 minutes after "
        "stopping all sessions. US and mainland-China IPs also get 403."
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
    ("clock_skew", "kraken"): (
        "Kraken: 'EAPI:Invalid nonce' when nonces go backwards; its server time has 1 s "
        "resolution, so its thresholds are higher."
    ),
    ("auth", "binance"): (
        "Binance: -2015 'Invalid API-key, IP, or permissions for action' - check the key's IP "
        "whitelist first; -1022 is a bad signature."
    ),
    ("auth", "bybit"): "Bybit: 10003 invalid key, 10004 bad signature, 10010 unmatched IP.",
    ("auth", "okx"): "OKX: 50110 IP not in whitelist, 50111 invalid key, 50113 bad signature.",
    ("maintenance", "binance"): (
        "Binance: GET /sapi/v1/system/status returns status 1 in maintenance."
    ),
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
    ("partial_outage", "binance"): (
        "Binance: a 5XX means execution status UNKNOWN; -1008 SERVER_BUSY and -1007 TIMEOUT are "
        "exchange-side; HTTP 403 is a WAF block."
    ),
}

_EVIDENCE_LIMIT = 700
_EVIDENCE_LABELS = ("exchange", "endpoint", "window", "severity", "instance", "code")

#: Classes whose advice the evidence may put first: sentence and action templates.
#: ``{codes}`` is the list of codes seen (e.g. ``-1021 ×12``), ``{n}`` their total.
_CLASS_TEXT: dict[str, tuple[str, str]] = {
    "timestamp": (
        "Timestamp errors over the window ({codes}): signed requests fall outside the exchange's "
        "recvWindow - a clock problem on our side, not an exchange outage.",
        "Fix the clock first: check `chronyc tracking` / `timedatectl` on the bot and exporter "
        "hosts and resync (`chronyc makestep`); timestamp errors ({codes}) stop once the skew is "
        "inside recvWindow.",
    ),
    "rate_limit": (
        "Rate-limit answers over the window ({codes}): this IP is over {exchange}'s request "
        "limit, which every process on the IP shares.",
        "Cut request weight on this IP now and honour Retry-After on every 429 ({codes}); "
        "continuing leads to an IP ban (Binance 418, Bybit 403).",
    ),
    "ban": (
        "Ban answers over the window ({codes}): {exchange} is blocking this IP.",
        "Stop every client on this IP hitting {exchange} ({codes}): retries during a ban extend "
        "it; wait for Retry-After (Bybit: at least 10 minutes).",
    ),
    "waf": (
        "HTTP 403 answers over the window ({codes}): a firewall block - Binance answers 403 when "
        "a WAF rule is violated; restricted regions get 403 too.",
        "Stop the traffic that triggers the 403s and check the egress IP ({codes}): WAF rule, "
        "restricted region, or an IP limit; do not retry in a loop.",
    ),
    "auth": (
        "Credential errors over the window ({codes}): the key is invalid, lacks a permission, "
        "or our IP is not on its whitelist.",
        "Check the API key on {exchange}: enabled, permissions, expiry and the IP whitelist "
        "against our current egress IP ({codes}); a Binance -2015 on a key that used to work can "
        "be a temporary ban.",
    ),
    "exchange_error": (
        "Exchange-side errors over the window ({codes}): {exchange} fails internally; order "
        "requests that got these have an UNKNOWN execution status.",
        _RECONCILE,
    ),
    "maintenance": (
        "Maintenance answers over the window ({codes}).",
        "Check {exchange}'s status endpoint and announcements for the end of the maintenance "
        "({codes}); pause strategies and use cancel-only windows to protect open orders.",
    ),
    "request": (
        "Request errors over the window ({codes}): {exchange} rejects our parameters (symbol "
        "halted/delisted, or an API change).",
        "Check {exchange}'s API changelog and the symbol's status ({codes}) and update the "
        "probe/bot configuration.",
    ),
    "network": (
        "Timeouts and connection failures over the window ({codes}): no answer at all.",
        "Trace the path to {exchange} from this host (DNS, TCP connect, TLS) and test from "
        "another network ({codes}).",
    ),
    "bad_response": (
        "Malformed answers over the window ({codes}): a proxy/CDN error page or an undocumented "
        "API change.",
        "Fetch one raw response from the failing endpoint: an HTML page means a proxy/CDN, "
        "changed JSON means an API change ({codes}).",
    ),
}

_CATEGORY_WORDS = {
    "rate_limit": "rate limiting",
    "ip_ban": "an IP ban / block",
    "clock_skew": "clock skew",
    "auth": "credentials",
    "maintenance": "maintenance",
    "partial_outage": "exchange-side errors",
    "outage": "an outage",
    "network": "our own network",
}


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


# --- evidence from the context ----------------------------------------------------------------


@dataclass
class Findings:
    """What the context adds: a category override, sentences, actions (most urgent first)."""

    category: RootCauseCategory | None = None
    sentences: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    support: bool = False  # the evidence confirms the alert's own category
    classes: list[str] = field(default_factory=list)  # classes whose advice was added


#: (class, entry) → index of the entry's action that the class's evidence-specific action
#: supersedes (same advice, without the codes seen).
_SUPERSEDED: dict[tuple[str, int], int] = {
    ("timestamp", id(_CLOCK_SKEW)): 0,
    ("rate_limit", id(_RATE_LIMITED)): 1,
    ("ban", id(_IP_BAN)): 0,
    ("waf", id(_IP_BAN)): 0,
    ("auth", id(_AUTH)): 0,
    ("maintenance", id(_MAINTENANCE)): 0,
}


def _code_list(items: list[CodeCount], limit: int = 4) -> str:
    bits = []
    for c in items[:limit]:
        label = c.code if c.kind != "http_status" else f"HTTP {c.code}"
        where = f" on {c.endpoint}" if c.endpoint else ""
        bits.append(f"{label} ×{fmt_count(c.count)}{where}")
    return ", ".join(bits)


def _class_tally(ctx: Context) -> dict[str, tuple[float, list[CodeCount]]]:
    """Per class: the count (max over the three sources, to avoid double counting) and items."""
    by_source: dict[str, dict[str, float]] = {}
    items: dict[str, list[CodeCount]] = {}
    for c in ctx.counts:
        if c.cls in ("ok", "unknown"):
            continue
        if c.kind == "result" and c.code in ("http_error", "api_error"):
            continue  # detailed by HTTP statuses and error codes
        by_source.setdefault(c.cls, {}).setdefault(c.kind, 0.0)
        by_source[c.cls][c.kind] += c.count
        items.setdefault(c.cls, []).append(c)
    tally: dict[str, tuple[float, list[CodeCount]]] = {}
    for cls, sources in by_source.items():
        # Prefer the most specific source for display: codes, then statuses, then results.
        ordered = sorted(
            items[cls],
            key=lambda c: (
                {"error_code": 0, "http_status": 1, "result": 2}[c.kind],
                -c.count,
            ),
        )
        if any(c.kind != "result" for c in ordered):
            ordered = [c for c in ordered if c.kind != "result"]  # codes say it more precisely
        tally[cls] = (max(sources.values()), ordered)
    return tally


def _other_exchanges(ctx: Context) -> tuple[int, int]:
    others = {k: v for k, v in ctx.exchanges_up.items() if k != ctx.exchange}
    return sum(1 for up in others.values() if up), len(others)


def _analyse(alert: Alert, entry: RuleEntry, ctx: Context | None, v: dict[str, str]) -> Findings:
    out = Findings()
    name = alert.alertname
    if name == "ExchangeApiAvailabilityBudgetBurn":
        window = alert.labels.get("window")
        if window == "fast":
            out.sentences.append("Fast burn: 2% of the 30-day budget per hour - an incident.")
        elif window == "slow":
            out.sentences.append("Slow burn: 5% of the budget in 6 hours - a ticket, not a page.")
    if ctx is None:
        return out
    symptom = name in SYMPTOM_ALERTS or name not in KNOWLEDGE_BASE
    up, others = _other_exchanges(ctx)

    # 1. Error codes, HTTP statuses and probe results.
    tally = _class_tally(ctx)
    total = sum(count for count, _ in tally.values())
    ranked = sorted(tally.items(), key=lambda kv: -kv[1][0])
    for cls, (_count, items) in ranked[:2]:
        texts = _CLASS_TEXT.get(cls)
        if texts is None:
            continue
        values = {**v, "codes": _code_list(items), "n": fmt_count(_count)}
        out.sentences.append(_fill(texts[0], values))
        if cls == "network" and others >= 1 and up == 0:
            continue  # the network override below brings its own actions
        out.actions.append(_fill(texts[1], values))
        out.classes.append(cls)
    if ranked:
        dominant, (count, _) = ranked[0]
        category = CLASS_CATEGORY.get(dominant)
        exchange_side = {category, entry.category} <= {"outage", "partial_outage"}
        if category == entry.category or exchange_side:
            out.support = True
        elif category is not None and symptom and count >= 3 and count >= 0.5 * total:
            out.category = cast(RootCauseCategory, category)

    # 2. Our side or theirs: the other exchanges' state.
    per_exchange = ctx.exchange is not None
    if (
        per_exchange
        and others >= 2
        and up == 0
        and name not in ("ExchangeMaintenance", "ExchangeClockSkewHigh")
    ):
        out.sentences.insert(
            0,
            f"Every other monitored exchange is down too (0/{others} up): the fault is on our "
            f"side (network, DNS, egress), not {v['exchange']}.",
        )
        if symptom or entry.category in ("latency_degradation", "data_quality"):
            out.category = "network"
        out.actions.insert(
            0,
            "Check our egress first: DNS resolution, default route, firewall/NAT/proxy from the "
            "exporter and bot hosts - every exchange fails at once.",
        )
    elif (
        per_exchange
        and others >= 1
        and entry.category
        in (
            "outage",
            "partial_outage",
            "latency_degradation",
        )
    ):
        out.sentences.append(
            f"Other exchanges answer ({up}/{others} up): the problem is specific to "
            f"{v['exchange']} or our route to it."
        )
        if entry.category == "outage":
            out.support = True

    elif not per_exchange and others >= 1 and entry.category == "network":
        down = sorted(k for k, ok in ctx.exchanges_up.items() if not ok)
        sentence = f"Right now {up}/{others} exchanges have an endpoint answering"
        sentence += f" (failing: {', '.join(down[:6])})." if down else "."
        out.sentences.append(sentence)

    # 3. Series statistics where they matter for this alert.
    category = out.category or entry.category
    lat = ctx.stats("latency_p99")
    err = ctx.stats("error_ratio")
    rl = ctx.stats("rate_limit_usage")
    skew = ctx.stats("clock_skew")
    if category == "latency_degradation" and lat is not None:
        sentence = f"{lat.text}."
        if lat.z is not None and lat.z >= 3:
            sentence = (
                f"p99 latency is {fmt_value(lat.current, 'seconds')}, {lat.z:.1f} standard "
                "deviations above its level before the alert "
                f"({baseline_text(lat, 'seconds')})"
            )
            slope = slope_text(lat, "seconds")
            if lat.trend == "rising":
                sentence += f", and still rising ({slope})"
            elif lat.trend == "falling":
                sentence += f", but falling again ({slope}): recovering"
            sentence += "."
            out.support = True
        out.sentences.append(sentence)
        if rl is not None and rl.current >= 0.5 and rl.trend == "rising":
            out.sentences.append(
                f"Rate-limit usage is {fmt_value(rl.current, 'ratio')} and rising: the slowdown "
                "may be the exchange throttling this IP before it answers 429."
            )
            out.actions.insert(
                0,
                f"Cut request weight on {v['exchange']} now: rate-limit usage is "
                f"{fmt_value(rl.current, 'ratio')} and rising alongside latency.",
            )
    if category in ("rate_limit", "ip_ban") and rl is not None:
        sentence = f"{rl.text}."
        slope = rl.slope_per_minute
        if rl.trend == "rising" and slope is not None and slope > 0 and rl.current < 1:
            minutes = (1 - rl.current) / slope
            sentence += f" At this trend the limit is reached in about {fmt_number(minutes)} min."
        out.sentences.append(sentence)
        if rl.current >= 0.75:
            out.support = True
        codes = {c.code for c in ctx.counts if c.kind == "error_code"}
        if "-1015" in codes:
            out.sentences.append(
                "-1015 TOO_MANY_ORDERS is Binance's order-count limit, not request weight: slow "
                "down order placement rather than market-data polling."
            )
    if category == "clock_skew" and skew is not None:
        ahead = skew.current < 0
        magnitude = fmt_value(abs(skew.current), "seconds")
        if ahead:
            sentence = (
                f"Our clock is {magnitude} ahead of {v['exchange']}: Binance rejects timestamps "
                "more than 1 s ahead of its server time (-1021 '...ahead of the server's time')."
            )
        else:
            sentence = (
                f"Our clock is {magnitude} behind {v['exchange']}: signed requests look old and "
                "are rejected once they are older than recvWindow (-1021 'outside of the "
                "recvWindow', Bybit 10002)."
            )
        if skew.trend != "flat" and skew.slope_per_minute is not None:
            sentence += (
                f" It is drifting {fmt_value(abs(skew.slope_per_minute), 'seconds')}/min: time "
                "sync is not correcting it."
            )
        elif skew.z is not None and abs(skew.z) >= 3:
            sentence += (
                " It jumped as a step (flat since): look for a VM migration, suspend/resume or a "
                "manual clock change."
            )
        out.sentences.append(sentence + f" ({skew.text}).")
        out.support = True
    if category == "data_quality" and skew is not None and abs(skew.current) >= 1.0:
        out.sentences.append(
            f"Clock skew is {fmt_value(skew.current, 'seconds', signed=True)}: the age is "
            "measured with the skew correction, so a wrong clock distorts it - fix the clock "
            "before trusting this alert."
        )
        out.actions.insert(0, _CLOCK_SKEW.actions[0])
    if category in ("outage", "partial_outage") and err is not None:
        sentence = f"{err.text}."
        if err.z is not None and err.z >= 3:
            out.support = True
        out.sentences.append(sentence)
        if lat is not None and lat.z is not None and lat.z >= 3:
            out.sentences.append(f"Latency is up too: {lat.text}.")
    if category in ("rate_limit", "ip_ban") and lat is not None and (lat.z or 0) >= 3:
        out.sentences.append(f"Latency rose with it: {lat.text}.")
    if out.category == entry.category:
        out.category = None
        out.support = True
    return out


def _dedup(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def diagnose_with_rules(
    alert: Alert, *, extra_evidence: str | None = None, context: Context | None = None
) -> Diagnosis:
    """Diagnose one alert from the knowledge base and the context (``source="rules"``).

    Args:
        alert: the alert; its own ``status`` decides between the firing and recovered texts.
        extra_evidence: optional already-capped text (e.g. the alert expression's value)
            appended to the diagnosis.
        context: the Prometheus context; its findings sharpen category, text and actions. It is
            not attached to the result (the engine does that).

    Returns:
        A valid :class:`Diagnosis`; never raises for any label/annotation/context content.
    """
    if alert.status == "resolved":
        return _recovered(alert)
    entry = lookup_rule(alert.alertname)
    values = _values(alert)
    exact = alert.alertname in KNOWLEDGE_BASE
    findings = _analyse(alert, entry, context, values)
    final = CATEGORY_ENTRY.get(findings.category, entry) if findings.category else entry
    category: RootCauseCategory = findings.category or entry.category

    text = [_fill(entry.diagnosis, values)]
    if findings.category:
        text.append(
            f"The evidence points at {_CATEGORY_WORDS.get(category, category)} rather than "
            f"{_CATEGORY_WORDS.get(entry.category, entry.category.replace('_', ' '))}: "
            + _fill(final.diagnosis, values)
        )
    text.extend(findings.sentences)
    hint = _EXCHANGE_HINTS.get((category, alert.labels.get("exchange", "").lower()))
    if hint:
        text.append(hint)
    evidence = _evidence(alert)
    if evidence:
        text.append(evidence)
    alert_value = extra_evidence or (context.alert_value if context is not None else None)
    if alert_value:
        text.append(alert_value)

    severity = alert.labels.get("severity", "").lower()
    impact = _fill(final.impact, values)
    if severity == "critical":
        impact = "Severity critical. " + impact
    superseded = {
        (id(e), _SUPERSEDED[(cls, id(e))])
        for cls in findings.classes
        for e in (final, entry)
        if (cls, id(e)) in _SUPERSEDED
    }
    actions = _dedup(
        [
            *findings.actions,
            *(
                _fill(a, values)
                for e in (final, entry)
                for i, a in enumerate(e.actions)
                if (id(e), i) not in superseded
            ),
        ]
    )
    confidence = entry.confidence if exact else max(0.2, entry.confidence - 0.25)
    if findings.category:
        confidence = max(0.7, min(0.85, final.confidence))
    elif findings.support:
        confidence = min(0.95, confidence + 0.1)
    return Diagnosis(
        diagnosis=" ".join(text),
        impact=impact,
        action_items=actions[:5],
        rollback_plan=_fill(final.rollback, values),
        estimated_recovery_time=final.eta,
        root_cause_category=category,
        confidence=round(confidence, 2),
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
    if alert.alertname == "ExchangeExporterDown":
        actions = [
            "Check which exchange alerts fired or resolved while the exporter was down: their "
            "resolutions during the gap mean nothing.",
            *actions[3:],
        ]
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
