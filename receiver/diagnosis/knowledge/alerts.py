"""One entry per alert: what it means, its likely causes, impact, actions, rollback, recovery.

Every alert a rule in ``prometheus/rules/`` defines has exactly one entry here (the WebSocket
stream alerts' in :mod:`receiver.diagnosis.knowledge.streams`, the API-key alerts' in
:mod:`receiver.diagnosis.knowledge.keys`, the market-integrity alerts' in
:mod:`receiver.diagnosis.knowledge.market`, the network-path (DNS, TLS) alerts' in
:mod:`receiver.diagnosis.knowledge.path`, all appended to :data:`ALERTS`), and so
has the receiver's own ``AlertingPipelineDown`` (the dead man's switch); ``docs/alerts.md`` has a
section for each. ``tests/receiver/diagnosis/test_diagnosis_knowledge.py`` checks the three
against each other (names, severities, scope). The exchange facts quoted per cause live in
:mod:`receiver.diagnosis.knowledge.causes`.
"""

from __future__ import annotations

from receiver.diagnosis.knowledge.keys import KEY_ALERTS
from receiver.diagnosis.knowledge.market import MARKET_ALERTS
from receiver.diagnosis.knowledge.model import Entry
from receiver.diagnosis.knowledge.path import PATH_ALERTS
from receiver.diagnosis.knowledge.streams import STREAM_ALERTS

#: Shared action: an order whose request got a 5xx or timed out may have been filled.
RECONCILE = (
    "Reconcile open orders and positions on {exchange} through a second path (another endpoint, "
    "WebSocket user stream or the web UI) before resubmitting anything: a 5xx or timeout means "
    "the execution status is unknown and the order may have been filled."
)

OUTAGE = Entry(
    name="ExchangeApiDown",
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
        RECONCILE,
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
    severities=("critical",),
    symptom=True,
)

FROM_LOCATION = Entry(
    name="ExchangeApiDownFromLocation",
    category="network",
    confidence=0.7,
    diagnosis=(
        "Every probed endpoint of {exchange} fails from one probing location (the alert's "
        "`location` label) while other locations still get answers: not an exchange outage "
        "(that would fail everywhere and page as ExchangeApiDown) but that location's path to "
        "it: a broken route or peering, DNS, a firewall or NAT change, or its egress IP "
        "banned or geo-blocked by {exchange}."
    ),
    impact=(
        "Bots and services trading on {exchange} from that location (same egress IP or "
        "network) are likely cut off too: their orders and cancels may fail or hang with an "
        "unknown outcome. {exchange} itself still works from the other locations."
    ),
    actions=(
        "Compare with the other locations: which endpoints and results fail only at this one "
        "(exchange_api_requests_total by location and result; the exporter's /status there).",
        "Check that location's egress IP for a ban or rate limit (HTTP 418/403/429 answers, "
        "ExchangeIpBanned or ExchangeRateLimited with the same location) and whether the "
        "exchange allow-lists or geo-blocks it.",
        "Check the route and DNS from that location (`dig` and `curl -v` to the {exchange} "
        "host, traceroute against the same from another location).",
        "Move execution for {exchange} to a location that still reaches it, or pause the "
        "bots there and rely on cancel-on-disconnect.",
        RECONCILE,
    ),
    rollback=(
        "Once probes succeed from that location again, reconcile the orders sent from it and "
        "move flow back only after several minutes of clean probes."
    ),
    eta="5-60 minutes (routing and DNS issues usually clear within an hour; a ban lasts as "
    "long as the exchange's penalty)",
    severities=("warning",),
)

ENDPOINT_DOWN = Entry(
    name="ExchangeEndpointDown",
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
        RECONCILE,
    ),
    rollback=(
        "Once {endpoint} answers again, switch back from the alternative source, check data "
        "continuity, and resume paused strategies one at a time."
    ),
    eta="5-30 minutes",
    severities=("warning",),
    symptom=True,
)

LATENCY_HIGH = Entry(
    name="ExchangeApiLatencyHigh",
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
    severities=("warning",),
)

LATENCY_DEGRADED = Entry(
    name="ExchangeApiLatencyDegraded",
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
    severities=("warning",),
)

ERROR_RATE = Entry(
    name="ExchangeApiErrorRateHigh",
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
        RECONCILE,
        "Add retries with backoff on idempotent calls; throttle strategies that depend on the "
        "failing endpoints.",
    ),
    rollback="Restore normal request rates once the error ratio is back under threshold.",
    eta="5-30 minutes",
    severities=("warning",),
    symptom=True,
)

BUDGET_BURN = Entry(
    name="ExchangeApiAvailabilityBudgetBurn",
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
        RECONCILE,
    ),
    rollback="None beyond fixing the cause; the burn alert clears as the windows recover.",
    eta="hours (the long burn window must recover)",
    severities=("warning", "critical"),
    symptom=True,
    label_notes=(
        ("window", "fast", "Fast burn: 2% of the 30-day budget per hour - an incident."),
        ("window", "slow", "Slow burn: 5% of the budget in 6 hours - a ticket, not a page."),
    ),
)

RATE_LIMIT_NEAR = Entry(
    name="ExchangeRateLimitNearExhaustion",
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
    severities=("warning", "critical"),
)

RATE_LIMITED = Entry(
    name="ExchangeRateLimited",
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
    severities=("critical",),
    superseded={"rate_limit": 1},
)

IP_BAN = Entry(
    name="ExchangeIpBanned",
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
    severities=("critical",),
    superseded={"ban": 0, "waf": 0},
)

CLOCK_SKEW = Entry(
    name="ExchangeClockSkewHigh",
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
    severities=("warning", "critical"),
    blame_network=False,
    superseded={"timestamp": 0},
)

MAINTENANCE = Entry(
    name="ExchangeMaintenance",
    category="maintenance",
    confidence=0.8,
    diagnosis=(
        "{exchange} reports maintenance on its system-status endpoint or in its answers (OKX "
        "50001, Kraken cancel_only/post_only): planned or emergency work, not an "
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
    severities=("info",),
    blame_network=False,
    superseded={"maintenance": 0},
)

CIRCUIT = Entry(
    name="ExchangeCircuitOpen",
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
        RECONCILE,
    ),
    rollback="None: the breaker closes by itself on the first successful trial probe.",
    eta="1-15 minutes",
    severities=("warning",),
    symptom=True,
)

STALE_DATA = Entry(
    name="ExchangeMarketDataStale",
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
    severities=("warning",),
)

EXPORTER_DOWN = Entry(
    name="ExchangeExporterDown",
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
    scope="global",
    severities=("critical",),
)

NETWORK = Entry(
    name="ExchangeMonitorNetworkDown",
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
    scope="global",
    severities=("critical",),
)

WATCHDOG = Entry(
    name="Watchdog",
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
    scope="global",
    severities=("none",),
)

PIPELINE_DOWN = Entry(
    name="AlertingPipelineDown",
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
    source="receiver",
    scope="global",
    severities=("critical",),
)

#: One entry per alert: every alert in prometheus/rules/ plus the receiver's own.
ALERTS: tuple[Entry, ...] = (
    OUTAGE,
    FROM_LOCATION,
    ENDPOINT_DOWN,
    LATENCY_HIGH,
    LATENCY_DEGRADED,
    ERROR_RATE,
    BUDGET_BURN,
    RATE_LIMIT_NEAR,
    RATE_LIMITED,
    IP_BAN,
    CLOCK_SKEW,
    MAINTENANCE,
    CIRCUIT,
    STALE_DATA,
    *STREAM_ALERTS,
    *KEY_ALERTS,
    *MARKET_ALERTS,
    *PATH_ALERTS,
    EXPORTER_DOWN,
    NETWORK,
    WATCHDOG,
    PIPELINE_DOWN,
)
