"""One entry per API-key health alert (prometheus/rules/exchange-key-alerts.yml), and key facts.

The same data shape as :mod:`receiver.diagnosis.knowledge.alerts` (which appends
:data:`KEY_ALERTS` to its ``ALERTS``); ``docs/alerts.md`` has a section for each. Templates use
``{exchange}``, ``{endpoint}`` and ``{severity}`` only. The alerts carry the labels
``exchange``, ``key`` (the key's configured *name*, never the key) and, for
``ExchangeApiKeyInvalid``, ``result`` (``invalid_key``, ``invalid_signature``,
``ip_not_allowed``, ``expired``, ``permission_denied``); nothing here asks for, or says, a key,
secret or passphrase. What depends on ``result`` and on the key's earlier state (the exporter's
``exchange_api_key_*`` series, :mod:`receiver.diagnosis.keycontext`) is decided by
:mod:`receiver.diagnosis.keyhealth` from the data below.

Exchange facts, with the exchanges' own documentation they come from:

* Binance answers ``-2015`` "Invalid API-key, IP, or permissions for action." for an unknown or
  deleted key, an IP outside the key's allow-list and a missing permission alike, ``-1022`` for a
  bad signature, ``-1021`` for a timestamp outside ``recvWindow`` [BN-ERR]; keys without an IP
  restriction lose "Enable Spot & Margin Trading" 30 days after activation, IP-restricted keys do
  not expire [BN-ANN-2021]; withdrawals require an IP restriction [BN-APIKEY].
* Bybit: ``10003`` invalid key, ``10004`` bad signature, ``10002`` request time outside
  ``recv_window``, ``10010`` unmatched IP, ``10005`` permission denied, ``33004`` key expired
  [BY-ERR]; a key without IP binding is invalid after 90 days, and 7 days after the account
  password changes [BY-SUBKEY, BY-V3-MODIFY].
* OKX: ``50111`` invalid key, ``50119`` key does not exist, ``50113`` bad signature, ``50105``
  wrong passphrase, ``50102`` timestamp expired, ``50110`` IP not in the whitelist, ``50120`` /
  ``50030`` no permission [OKX-ERR]; keys not linked to an IP that have ``trade`` or ``withdraw``
  expire after 14 days without use [OKX-AUTH §API key security].
* Kraken: ``EAPI:Invalid key`` for a missing, deleted or revoked key, ``EAPI:Invalid signature``,
  ``EAPI:Invalid nonce`` for a nonce not above the last one [KR-ERRORS], ``EGeneral:Permission
  denied`` [KR-SUPPORT-ERR]; its answer to an IP outside the allow-list or a key past
  ``validUntil`` is not documented (UNVERIFIED: treated as ambiguous like Binance -2015).
* Coinbase: HTTP 401 for a bad key and a bad JWT/signature alike; no IP-denied or expired-key
  answer is documented (UNVERIFIED) and the key-info answer tells neither IP allow-list nor
  expiry [CB-KEYPERM, CB-EX-AUTH].
"""

from __future__ import annotations

from receiver.diagnosis.knowledge.model import Entry

#: The results ``ExchangeApiKeyInvalid`` is raised for (its ``result`` label).
INVALID_RESULTS: tuple[str, ...] = (
    "invalid_key",
    "invalid_signature",
    "ip_not_allowed",
    "expired",
    "permission_denied",
)

#: Exchanges whose "invalid key" answer may also mean "IP not on the allow-list" (one answer for
#: both): Binance -2015 [BN-ERR]; Kraken and Coinbase document no IP answer (UNVERIFIED).
AMBIGUOUS_INVALID_KEY: dict[str, str] = {
    "binance": (
        "Binance answers -2015 'Invalid API-key, IP, or permissions for action' for a deleted "
        "key and for an IP outside the key's allow-list alike"
    ),
    "kraken": (
        "Kraken documents no answer of its own for an IP outside the key's allow-list, so its "
        "key errors may mean either"
    ),
    "coinbase": (
        "Coinbase answers 401 for a bad key and documents no answer of its own for a refused IP"
    ),
}

#: Absolute clock skew (seconds) from which timestamps are rejected: Binance and Bybit reject a
#: timestamp 1 s or more ahead of their clock [BN-REST §Timing security, BY-GUIDE].
SKEW_LARGE_SECONDS = 1.0

#: What each exchange does to a key that is not bound to IPs (documented consequences).
NO_IP_CONSEQUENCES: dict[str, str] = {
    "binance": (
        "Binance switches 'Enable Spot & Margin Trading' off 30 days after activation on a key "
        "without an IP restriction; IP-restricted keys do not expire, and only they may withdraw"
    ),
    "bybit": (
        "Bybit invalidates a key without IP binding after 90 days, and 7 days after the account "
        "password is changed"
    ),
    "okx": (
        "OKX expires a key not linked to an IP after 14 days without use if it can trade or "
        "withdraw (read-only keys are exempt; the key check counts as use)"
    ),
    "kraken": (
        "Kraken documents no expiry for keys without an IP allow-list: the risk is a leaked "
        "secret usable from anywhere"
    ),
}

#: Exchanges whose documented policy sets an expiry on keys without IP binding.
POLICY_EXPIRY: dict[str, str] = {
    "binance": "Binance's 30-day rule for the trading permission of keys without IP restriction",
    "bybit": "Bybit's 90-day rule for keys without IP binding",
}

#: Shared action: a replacement key and how it reaches the exporter (never through chat).
NEW_KEY = (
    "Create a new read-only key on {exchange}, bound to our egress IPs, and give it to the "
    "exporter through key_file/secret_file (Docker secrets); never paste a key or secret into "
    "chat, tickets or alerts."
)

KEY_INVALID = Entry(
    name="ExchangeApiKeyInvalid",
    category="auth",
    confidence=0.75,
    diagnosis=(
        "{exchange} rejects the signed key check of a configured API key (the key label is its "
        "configured name). The result label says how: invalid_key (deleted, revoked or wrong "
        "key; on Binance also an IP outside the allow-list), invalid_signature (wrong secret or "
        "passphrase), ip_not_allowed (our egress IP is not on the key's allow-list), expired, "
        "permission_denied (a permission was removed)."
    ),
    impact=(
        "Bots using this key cannot place, cancel or query orders on {exchange}: every signed "
        "request fails the same way while market data still works."
    ),
    actions=(
        "Read the key's state on the exporter's /status and exchange_api_key_checks_total by "
        "result: which answer, since when, and whether the key was accepted before.",
        "Look the key up on {exchange} by its configured name: still there, enabled, our current "
        "egress IP on its allow-list, its permissions and expiry.",
        NEW_KEY,
        "Rule out clock skew when ExchangeClockSkewHigh fires too: timestamp errors can look like "
        "auth failures.",
        "Pause the bots that share this key until a signed read-only call succeeds again.",
    ),
    rollback=(
        "Once the key check succeeds again (exchange_api_key_up 1), resume the paused bots and "
        "delete the key that was replaced."
    ),
    eta="5-60 minutes (key management on the exchange)",
    severities=("critical",),
    blame_network=False,
    superseded={"auth": 1},
)

KEY_EXPIRING = Entry(
    name="ExchangeApiKeyExpiringSoon",
    category="auth",
    confidence=0.85,
    diagnosis=(
        "An API key of {exchange} expires soon (within the warning window, 7 days by default): "
        "either the exchange set an expiry on the key, or its documented policy sets one because "
        "the key is not IP-bound (Binance switches spot trading off 30 days after activation, "
        "Bybit invalidates the key after 90 days)."
    ),
    impact=(
        "At expiry signed requests with this key fail on {exchange} (Binance: trading is switched "
        "off while reads keep working): bots lose order entry without further warning."
    ),
    actions=(
        "Check on the exporter's /status whether the expiry comes from the exchange or from its "
        "policy, and when it is.",
        "Policy expiry of a key without IP restriction: bind the key to our egress IPs - "
        "IP-bound keys do not expire under Binance's 30-day or Bybit's 90-day rule.",
        "Expiry set on the key: " + NEW_KEY[0].lower() + NEW_KEY[1:],
        "Schedule the rotation with the bots' owners so that every process switches key together.",
    ),
    rollback=(
        "None: the alert clears once the key no longer expires within the window (new key or IP "
        "binding)."
    ),
    eta="before the expiry date (plan the rotation now)",
    severities=("warning",),
    blame_network=False,
)

KEY_WITHDRAW = Entry(
    name="ExchangeApiKeyWithdrawEnabled",
    category="auth",
    confidence=0.9,
    diagnosis=(
        "A monitoring API key of {exchange} has the withdrawal permission "
        "(exchange_api_key_permission for withdraw is 1). A monitoring key must be read-only: "
        "whoever obtains its secret can move funds off the account."
    ),
    impact=(
        "A security exposure, not an outage: a leaked monitoring key could drain the account on "
        "{exchange}. Nothing fails yet."
    ),
    actions=(
        "Switch off the withdrawal permission of this key on {exchange} now, or delete the key "
        "and create a read-only one.",
        "Check {exchange}'s withdrawal history and withdrawal-address whitelist for anything "
        "unexpected since the key was created.",
        "Bind the key to our egress IPs if it is not (Binance allows withdrawals only on "
        "IP-restricted keys).",
        "Rotate the secret if it was ever stored outside the secret store (env files, tickets, "
        "chat).",
        "Confirm the withdraw permission reads 0 at the next key check.",
    ),
    rollback="None: keep the key read-only; the alert clears at the next key check.",
    eta="minutes (one change on the exchange's key page)",
    severities=("critical",),
    blame_network=False,
)

KEY_NO_IP = Entry(
    name="ExchangeApiKeyNoIpRestriction",
    category="auth",
    confidence=0.85,
    diagnosis=(
        "An API key of {exchange} is not bound to IP addresses: anyone holding its secret can "
        "use it from anywhere, and exchanges attach consequences to such keys (Binance switches "
        "spot trading off after 30 days, Bybit invalidates the key after 90 days, OKX expires "
        "trade or withdraw keys after 14 days without use)."
    ),
    impact=(
        "More exposure if the secret leaks, and a scheduled loss of the key or of its trading "
        "permission on {exchange} under the exchange's policy."
    ),
    actions=(
        "Add our egress IPs (the NAT gateway's public addresses) to the key's IP allow-list on "
        "{exchange}.",
        "Make sure every host using this key leaves through those IPs, or its checks will fail "
        "with ip_not_allowed.",
        "If this key type cannot be bound, replace it: " + NEW_KEY[0].lower() + NEW_KEY[1:],
        "Watch ExchangeApiKeyExpiringSoon: a policy expiry disappears once the key is IP-bound.",
    ),
    rollback=(
        "If the key check fails with ip_not_allowed after binding, add the missing egress IP "
        "rather than removing the binding."
    ),
    eta="minutes (one change on the exchange's key page)",
    severities=("warning",),
    blame_network=False,
)

KEY_TIMESTAMP = Entry(
    name="ExchangeApiKeyTimestampRejected",
    category="clock_skew",
    confidence=0.75,
    diagnosis=(
        "{exchange} rejects the key check's timestamp (Binance -1021, Bybit 10002, OKX 50102, "
        "Coinbase 'request timestamp expired', Kraken EAPI:Invalid nonce): clock skew between "
        "the exporter host and the exchange, not a bad key. ExchangeClockSkewHigh suppresses "
        "this alert while the skew gauge is over its threshold, so here the skew is short "
        "spikes, a recv_window too tight for the latency, or (Kraken) a nonce that did not "
        "increase."
    ),
    impact=(
        "Signed requests from hosts with the same clock fail on {exchange} now and then: orders "
        "may be rejected while market data works."
    ),
    actions=(
        "Check NTP on the exporter and bot hosts: `chronyc tracking` / `timedatectl`; resync "
        "(`chronyc makestep`) and keep chrony running.",
        "Compare exchange_clock_skew_seconds of {exchange} over the last hour: spikes point at the "
        "host clock, a flat small value at recv_window or latency.",
        "Kraken: make sure no other process uses this key - nonces must increase per key, so "
        "each process needs its own key.",
        "Only once the clock is right, widen the key's recv_window modestly (Binance max "
        "60000 ms).",
    ),
    rollback="Restore the default recv_window once timestamps are accepted again.",
    eta="1-5 minutes after the clock is resynchronised",
    severities=("warning",),
    blame_network=False,
    superseded={"timestamp": 0},
)

#: The API-key alerts, in the order of the rule file.
KEY_ALERTS: tuple[Entry, ...] = (
    KEY_INVALID,
    KEY_EXPIRING,
    KEY_WITHDRAW,
    KEY_NO_IP,
    KEY_TIMESTAMP,
)

#: Their names.
KEY_ALERT_NAMES: frozenset[str] = frozenset(entry.name for entry in KEY_ALERTS)
