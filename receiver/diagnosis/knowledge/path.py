"""The network path between the probes and an exchange: DNS, the TCP connect, the TLS handshake.

One entry per path alert (appended to :data:`receiver.diagnosis.knowledge.alerts.ALERTS`;
``docs/alerts.md`` has a section for each):

* ``ExchangeTlsCertExpiringSoon``: the earliest ``notAfter`` of the chain presented for an
  exchange (``exchange_tls_cert_expiry_timestamp_seconds``, lowest over 1 h) is within
  ``tls_cert_expiry_days``;
* ``ExchangeMonitorDnsFailing``: name resolution fails for every exchange of a location
  (``dns_error``): our resolver.

A failing TLS handshake has no alert of its own: it pages as ``ExchangeApiDown`` with
``tls_error`` results, which the evidence (class ``tls``) moves to :data:`NETWORK_PATH`, a
runbook no alert names. Its texts apply whenever the evidence moves an alert to the path: slow
connect or TLS phases of a latency alert (:mod:`receiver.diagnosis.pathhealth`), dominant
``dns_error`` or ``tls_error`` results (:mod:`receiver.diagnosis.analysis`).

How the exporter measures it (exporter/egress.py): ``resolve`` is the name lookup (the proxy's
name when a proxy is configured: the proxy then resolves the exchange itself), ``connect`` the
TCP connect plus the proxy's ``CONNECT``, ``tls`` the handshake verified against the system
trust store or the exchange's ``tls.ca_file``, with ``tls.server_name`` as SNI and expected name.
Exchanges publish no certificate lifetimes; public CAs issue certificates of at most 398 days
(CA/Browser Forum Baseline Requirements §6.3.2) and the large exchanges renew well ahead, so a
chain close to expiry is more often a TLS-inspecting proxy's own CA.
"""

from __future__ import annotations

from receiver.diagnosis.knowledge.model import Entry

NETWORK_PATH = Entry(
    name="network_path",
    category="network",
    confidence=0.7,
    diagnosis=(
        "The path between us and {exchange} is slow or failing before a request reaches its API: "
        "DNS resolution, the TCP connect through our ISP, the egress proxy or the route, or the "
        "TLS handshake (a TLS-inspecting middlebox, an untrusted or expired certificate, a wrong "
        "server name). {exchange}'s servers answer normally once a request gets through."
    ),
    impact=(
        "Bots reaching {exchange} over the same path (same host, network or proxy) are slowed or "
        "cut off the same way: orders and cancels are acknowledged late, or time out with an "
        "unknown outcome."
    ),
    actions=(
        "Check the egress proxy in front of {exchange} (the exporter's `proxy_url`): its load, "
        "its own DNS and its logs; compare with a probe from another location or without it.",
        "Trace the route to the {exchange} API host from the exporter host (`mtr`, "
        "`traceroute`) and compare with another network: loss or a detour is our ISP or the "
        "route.",
        "Time our DNS resolver (`dig` the {exchange} API host) and check the TLS chain presented "
        "(`openssl s_client -showcerts`): an unexpected issuer means a TLS-inspecting middlebox.",
        "Move latency-sensitive execution for {exchange} to a location or egress with a clean "
        "path; widen client timeouts meanwhile.",
        "Treat timed-out order requests as unknown outcomes and reconcile before retrying.",
    ),
    rollback=(
        "Move flow back once the connect and TLS times (exchange_api_request_phase_seconds) are "
        "at their baseline again for several minutes."
    ),
    eta="5-60 minutes (routing, proxy and DNS problems)",
)

TLS_CERT_EXPIRING = Entry(
    name="ExchangeTlsCertExpiringSoon",
    category="network",
    confidence=0.75,
    diagnosis=(
        "A certificate in the TLS chain presented for {exchange} expires within the "
        "`tls_cert_expiry_days` threshold (thresholds.yml, default 14 days). Exchanges renew "
        "their own certificates well ahead, so the likelier owner is a TLS-inspecting corporate "
        "proxy or middlebox on our path, re-signing the traffic with its own CA (the one the "
        "exporter trusts through `tls.ca_file`), or a stale intermediate in the chain."
    ),
    impact=(
        "Nothing fails yet. When it expires, every TLS handshake with {exchange} over this path "
        "fails (tls_error): probes, bots, orders and cancels alike, all at the same moment."
    ),
    actions=(
        "Find which certificate in the chain expires (`openssl s_client -showcerts` from the "
        "exporter host, through its proxy): an issuer that is your own CA (the one in "
        "`tls.ca_file`) means the TLS-inspecting proxy - renew that proxy's CA/certificate.",
        "Roll the renewed proxy CA out to every host that trusts it (the bots and the "
        "exporter's `tls.ca_file`), not only one: they all fail at the same moment.",
        "If it is {exchange}'s own certificate, expect a renewal: watch "
        "exchange_tls_cert_expiry_timestamp_seconds move on the next new connection, and ask "
        "{exchange} support if it does not within days.",
        "Check that `tls.server_name` and `tls.ca_file` in the exporter config still match the "
        "path: a stale CA file or name hides a renewed chain.",
    ),
    rollback=(
        "None needed; the alert resolves once a new connection presents a chain whose earliest "
        "expiry is beyond the threshold."
    ),
    eta="days (a certificate renewal and its rollout)",
    severities=("warning",),
    blame_network=False,
)

DNS_FAILING = Entry(
    name="ExchangeMonitorDnsFailing",
    category="network",
    confidence=0.8,
    diagnosis=(
        "Name resolution fails for every monitored exchange (probe result dns_error on all of "
        "them): our resolver - the host's configured DNS servers, a local caching resolver, or "
        "the path to them - not the exchanges, whose DNS does not fail all at once."
    ),
    impact=(
        "No venue can be reached by name from this host: new connections of the bots on the "
        "same resolver fail too, while existing keep-alive connections may still work a while."
    ),
    actions=(
        "Check our resolver from the exporter host: `resolvectl status` (or /etc/resolv.conf), "
        "then `dig` an exchange API host against it and against another resolver.",
        "Restart or fail over the local resolver (systemd-resolved, dnsmasq, unbound), or point "
        "the host at a working one.",
        "Check the bots on the same resolver: pause those that cannot resolve and rely on "
        "cancel-on-disconnect.",
        "Reconcile orders on every venue once names resolve again.",
    ),
    rollback="Re-enable strategies venue by venue once names resolve and probes succeed.",
    eta="5-30 minutes",
    scope="global",
    severities=("critical",),
)

#: The path alerts, appended to ``ALERTS``.
PATH_ALERTS: tuple[Entry, ...] = (TLS_CERT_EXPIRING, DNS_FAILING)
