"""Causes the evidence can point at, whatever the alert: their exchange facts and runbooks.

The facts come from shared/reference/exchange-api-facts.md, which cites the exchanges' own
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

Besides the per-alert entries (:mod:`receiver.diagnosis.knowledge.alerts`) two runbooks no alert
names live here: :data:`AUTH` (the evidence shows rejected credentials) and :data:`DEFAULT` (an
alert nothing matches); a third, ``network_path`` (the path to one exchange: DNS, connect, TLS),
in :mod:`receiver.diagnosis.knowledge.path`. :data:`KEYWORDS` maps an unknown alert name to a
runbook.
"""

from __future__ import annotations

from receiver.diagnosis.knowledge.alerts import RECONCILE
from receiver.diagnosis.knowledge.model import Cause, Entry, EvidenceClass

AUTH = Entry(
    name="auth",
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
    superseded={"auth": 0},
)

DEFAULT = Entry(
    name="unknown",
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

#: Per cause, exchange label → that exchange's documented facts for it.
_RATE_LIMIT_FACTS: dict[str, str] = {
    "binance": (
        "Binance: REQUEST_WEIGHT is 6000/min per IP; X-MBX-USED-WEIGHT-1M on every response "
        "shows usage; 429 carries Retry-After and continuing leads to 418."
    ),
    "bybit": (
        "Bybit: retCode 10006 is the per-UID API limit; HTTP 403 'access too frequent' is the IP "
        "limit (600 requests per 5 s) - stop all sessions and wait at least 10 minutes. "
        "X-Bapi-Limit-Status shows remaining quota."
    ),
    "okx": "OKX: code 50011 'Rate limit reached' (HTTP 200 or 429); limits are per endpoint.",
    "coinbase": (
        "Coinbase Exchange: public REST allows 10 requests/s per IP (bursts to 15); 429 on excess."
    ),
    "kraken": (
        "Kraken: 'EAPI:Rate limit exceeded' in the error array (HTTP status is not used); public "
        "calls should stay around 1/s."
    ),
}

_IP_BAN_FACTS: dict[str, str] = {
    "binance": (
        "Binance: 418 means the IP is auto-banned after ignoring 429s; bans scale from 2 minutes "
        "to 3 days and Retry-After gives the remaining seconds. HTTP 403 is a WAF block."
    ),
    "bybit": (
        "Bybit: HTTP 403 'access too frequent' is the IP ban; wait at least 10 minutes after "
        "stopping all sessions. US and mainland-China IPs also get 403."
    ),
    "kraken": (
        "Kraken: 'EGeneral:Temporary lockout' typically lasts a few minutes after repeated "
        "invalid requests."
    ),
}

_CLOCK_SKEW_FACTS: dict[str, str] = {
    "binance": (
        "Binance: -1021 INVALID_TIMESTAMP when serverTime - timestamp > recvWindow (default "
        "5000 ms, max 60000) or timestamp is over 1 s ahead."
    ),
    "bybit": (
        "Bybit: retCode 10002 when the request time is outside recv_window (default 5000 ms)."
    ),
    "okx": "OKX: 50102 'Timestamp request expired'.",
    "coinbase": "Coinbase: request timestamps must be within 30 s of API time.",
    "kraken": (
        "Kraken: 'EAPI:Invalid nonce' when nonces go backwards; its server time has 1 s "
        "resolution, so its thresholds are higher."
    ),
}

_AUTH_FACTS: dict[str, str] = {
    "binance": (
        "Binance: -2015 'Invalid API-key, IP, or permissions for action' - check the key's IP "
        "whitelist first; -1022 is a bad signature."
    ),
    "bybit": "Bybit: 10003 invalid key, 10004 bad signature, 10010 unmatched IP.",
    "okx": "OKX: 50110 IP not in whitelist, 50111 invalid key, 50113 bad signature.",
    "kraken": (
        "Kraken: EAPI:Invalid key for a missing, deleted or revoked key, EAPI:Invalid signature "
        "for a bad signature, EGeneral:Permission denied for a missing permission."
    ),
    "coinbase": (
        "Coinbase: HTTP 401 for a bad key and a bad signature or JWT alike; no distinct answer "
        "for a refused IP or an expired key is documented."
    ),
}

_MAINTENANCE_FACTS: dict[str, str] = {
    "binance": "Binance: GET /sapi/v1/system/status returns status 1 in maintenance.",
    "bybit": "Bybit: GET /v5/system/status lists items with state 'ongoing'.",
    "okx": (
        "OKX: GET /api/v5/system/status shows ongoing items; 50001 'Service temporarily "
        "unavailable' during maintenance."
    ),
    "kraken": (
        "Kraken: GET /0/public/SystemStatus status is maintenance, cancel_only or post_only."
    ),
}

_OUTAGE_FACTS: dict[str, str] = {
    "binance": (
        "Binance: a 5XX means 'execution status is UNKNOWN and could have been a success'; "
        "-1007 TIMEOUT / -1001 DISCONNECTED are backend errors."
    ),
    "kraken": (
        "Kraken: a non-200 status means the request did not reach Kraken; 'EService:Unavailable' "
        "/ 'EService:Busy' are exchange-side."
    ),
    "okx": "OKX: 50001 (503) service unavailable, 50013 systems busy.",
}

_PARTIAL_OUTAGE_FACTS: dict[str, str] = {
    "binance": (
        "Binance: a 5XX means execution status UNKNOWN; -1008 SERVER_BUSY and -1007 TIMEOUT are "
        "exchange-side; HTTP 403 is a WAF block."
    ),
}

#: Every cause the evidence can point at, with its exchange facts.
CAUSES: tuple[Cause, ...] = (
    Cause("rate_limit", "rate limiting", "ExchangeRateLimited", facts=_RATE_LIMIT_FACTS),
    Cause("ip_ban", "an IP ban / block", "ExchangeIpBanned", facts=_IP_BAN_FACTS),
    Cause("clock_skew", "clock skew", "ExchangeClockSkewHigh", facts=_CLOCK_SKEW_FACTS),
    Cause("auth", "credentials", "auth", facts=_AUTH_FACTS),
    Cause("maintenance", "maintenance", "ExchangeMaintenance", facts=_MAINTENANCE_FACTS),
    Cause(
        "partial_outage",
        "exchange-side errors",
        "ExchangeApiErrorRateHigh",
        facts=_PARTIAL_OUTAGE_FACTS,
    ),
    Cause("outage", "an outage", "ExchangeApiDown", facts=_OUTAGE_FACTS),
    Cause("network", "the network (DNS, route, egress proxy)", "ExchangeMonitorNetworkDown"),
)

#: What the rules say when codes of a class were counted (classes without an entry add nothing).
EVIDENCE_CLASSES: tuple[EvidenceClass, ...] = (
    EvidenceClass(
        "timestamp",
        "Timestamp errors over the window ({codes}): signed requests fall outside the exchange's "
        "recvWindow - a clock problem on our side, not an exchange outage.",
        "Fix the clock first: check `chronyc tracking` / `timedatectl` on the bot and exporter "
        "hosts and resync (`chronyc makestep`); timestamp errors ({codes}) stop once the skew is "
        "inside recvWindow.",
    ),
    EvidenceClass(
        "rate_limit",
        "Rate-limit answers over the window ({codes}): this IP is over {exchange}'s request "
        "limit, which every process on the IP shares.",
        "Cut request weight on this IP now and honour Retry-After on every 429 ({codes}); "
        "continuing leads to an IP ban (Binance 418, Bybit 403).",
    ),
    EvidenceClass(
        "ban",
        "Ban answers over the window ({codes}): {exchange} is blocking this IP.",
        "Stop every client on this IP hitting {exchange} ({codes}): retries during a ban extend "
        "it; wait for Retry-After (Bybit: at least 10 minutes).",
    ),
    EvidenceClass(
        "waf",
        "HTTP 403 answers over the window ({codes}): a firewall block - Binance answers 403 when "
        "a WAF rule is violated; restricted regions get 403 too.",
        "Stop the traffic that triggers the 403s and check the egress IP ({codes}): WAF rule, "
        "restricted region, or an IP limit; do not retry in a loop.",
    ),
    EvidenceClass(
        "auth",
        "Credential errors over the window ({codes}): the key is invalid, lacks a permission, "
        "or our IP is not on its whitelist.",
        "Check the API key on {exchange}: enabled, permissions, expiry and the IP whitelist "
        "against our current egress IP ({codes}); a Binance -2015 on a key that used to work can "
        "be a temporary ban.",
    ),
    EvidenceClass(
        "exchange_error",
        "Exchange-side errors over the window ({codes}): {exchange} fails internally; order "
        "requests that got these have an UNKNOWN execution status.",
        RECONCILE,
    ),
    EvidenceClass(
        "maintenance",
        "Maintenance answers over the window ({codes}).",
        "Check {exchange}'s status endpoint and announcements for the end of the maintenance "
        "({codes}); pause strategies and use cancel-only windows to protect open orders.",
    ),
    EvidenceClass(
        "request",
        "Request errors over the window ({codes}): {exchange} rejects our parameters (symbol "
        "halted/delisted, or an API change).",
        "Check {exchange}'s API changelog and the symbol's status ({codes}) and update the "
        "probe/bot configuration.",
    ),
    EvidenceClass(
        "network",
        "Timeouts and connection failures over the window ({codes}): no answer at all "
        "(refused, reset, unreachable, or the egress proxy refused).",
        "Trace the path to {exchange} from this host (TCP connect, the egress proxy) and test "
        "from another network ({codes}).",
    ),
    EvidenceClass(
        "dns",
        "DNS failures over the window ({codes}): the {exchange} API host name does not resolve "
        "from here - our resolver, or {exchange}'s DNS.",
        "Check name resolution from the exporter host ({codes}): `dig` the {exchange} API host "
        "against our resolver and another one - only ours failing is our resolver; NXDOMAIN or "
        "SERVFAIL from both points at {exchange}'s DNS.",
        runbook="network_path",
    ),
    EvidenceClass(
        "tls",
        "TLS handshake failures over the window ({codes}): the path presents a certificate the "
        "exporter does not trust or that does not match {exchange}'s host - a TLS-inspecting "
        "middlebox, an expired certificate or a wrong `tls.server_name`.",
        "Check the chain presented to the exporter host ({codes}): `openssl s_client "
        "-servername <host> -showcerts` through its proxy; an unexpected issuer is a "
        "TLS-inspecting middlebox (its CA belongs in `tls.ca_file`), a name mismatch is "
        "`tls.server_name`.",
        runbook="network_path",
    ),
    EvidenceClass(
        "bad_response",
        "Malformed answers over the window ({codes}): a proxy/CDN error page or an undocumented "
        "API change.",
        "Fetch one raw response from the failing endpoint: an HTML page means a proxy/CDN, "
        "changed JSON means an API change ({codes}).",
    ),
)

#: Fallback by keyword in an unknown alertname → runbook name (checked in order, lower case).
KEYWORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("heartbeat", "pipeline", "deadman", "dead_man"), "AlertingPipelineDown"),
    (("ban", "418"), "ExchangeIpBanned"),
    (("ratelimit", "rate_limit", "throttl", "429", "weight"), "ExchangeRateLimited"),
    (("clock", "skew", "timestamp", "drift"), "ExchangeClockSkewHigh"),
    (("maintenance",), "ExchangeMaintenance"),
    (("auth", "apikey", "signature", "permission"), "auth"),
    (("stale", "lag", "freshness"), "ExchangeMarketDataStale"),
    (("latency", "slow", "duration"), "ExchangeApiLatencyHigh"),
    (("circuit",), "ExchangeCircuitOpen"),
    (("budget", "burn", "slo"), "ExchangeApiAvailabilityBudgetBurn"),
    (("error", "5xx", "failure"), "ExchangeApiErrorRateHigh"),
    (("exporter", "scrape", "targetdown"), "ExchangeExporterDown"),
    (("tls", "certificate", "handshake"), "network_path"),
    (("network", "dns", "unreachable"), "ExchangeMonitorNetworkDown"),
    (("endpoint",), "ExchangeEndpointDown"),
    (("down", "outage", "unavailable"), "ExchangeApiDown"),
)
