"""Evidence for the API-key alerts: what the ``result`` label and the key's earlier state mean.

One evidence function, :func:`api_key` (the :data:`~receiver.diagnosis.case.Evidence`
signature), for the alerts of :mod:`receiver.diagnosis.knowledge.keys`. It reads the alert's
``exchange``, ``key`` and ``result`` labels, the key's state over the window
(:class:`~receiver.diagnosis.schema.KeyState`: accepted earlier, checks by result, IP binding and
whether it changed, permissions, expiry) and the exchange's clock skew series, and tells apart:

* **clock skew** - timestamp rejections, or key/signature rejections while
  ``|exchange_clock_skew_seconds|`` reached :data:`SKEW_LARGE_SECONDS`: "clock skew, not a bad
  key: fix NTP" (category ``clock_skew``);
* **an IP allow-list change** - ``ip_not_allowed``, or ``invalid_key`` on an exchange that answers
  one code for both (Binance -2015) while the key was IP-bound;
* **a revoked or deleted key** - ``invalid_key`` after ``ok`` checks in the window, the key not
  IP-bound or its binding unchanged;
* **a wrong secret** (``invalid_signature``), **an expired key** (``expired``), **a permission
  change** (``permission_denied``);

and for the other key alerts: the expiry countdown and its likely source, the withdraw permission
with or without IP binding, the exchange's documented consequence of a key without IP binding,
and whether a timestamp rejection came with a measurable skew.

Sentences name the key by its configured name only (the ``key`` label): no key, secret or
passphrase ever reaches the receiver.
"""

from __future__ import annotations

from dataclasses import replace

from receiver.diagnosis.case import Case, Finding, Findings
from receiver.diagnosis.keycontext import expiry_text
from receiver.diagnosis.knowledge import fill
from receiver.diagnosis.knowledge.keys import (
    AMBIGUOUS_INVALID_KEY,
    KEY_ALERT_NAMES,
    NEW_KEY,
    NO_IP_CONSEQUENCES,
    POLICY_EXPIRY,
    SKEW_LARGE_SECONDS,
)
from receiver.diagnosis.redact import redact_text
from receiver.diagnosis.schema import KeyState, SeriesStats
from receiver.diagnosis.stats import fmt_count, fmt_value
from receiver.text import cap, strip_control

__all__ = ["SKEW_LARGE_SECONDS", "api_key"]

#: Lead action for a revoked or deleted key.
REVOKED_ACTION = (
    "The key was deleted or revoked on {exchange}: create a new read-only key (bound to our "
    "egress IPs), deploy it through key_file/secret_file, and find out in the account's security "
    "log who removed the old one."
)
#: Lead action for an IP allow-list change.
IP_ACTION = (
    "Our egress IP is no longer on the key's allow-list: check the NAT/egress IP of the exporter "
    "and bot hosts and the key's IP list on {exchange}; add the current egress IP (or restore "
    "the old egress) rather than removing the binding."
)
#: Lead action when the skew explains the rejections.
SKEW_ACTION = (
    "Clock skew, not a bad key: fix NTP on the exporter host (`chronyc tracking`, `chronyc "
    "makestep`) before touching the key; the key check recovers at its next run."
)
SECRET_ACTION = (
    "Wrong secret: deploy the secret (OKX, Coinbase Exchange: and passphrase) that belongs to "
    "this key through secret_file/passphrase_file; exchanges show a secret only once, so if it "
    "is lost create a new read-only key."
)
EXPIRED_ACTION = "The key expired: " + NEW_KEY[0].lower() + NEW_KEY[1:]
PERMISSION_ACTION = (
    "A permission changed: check the key's permissions on {exchange} (the key check needs read "
    "access) and restore read; find out who edited the key and why."
)


def _key_name(case: Case) -> str:
    raw = case.alert.labels.get("key", "")
    name = cap(" ".join(redact_text(strip_control(raw)).split()), 64)
    return f"Key '{name}'" if name else "The key"


def _skew_peak(skew: SeriesStats | None) -> float | None:
    if skew is None:
        return None
    return max(abs(skew.current), abs(skew.minimum), abs(skew.maximum))


def _result(case: Case, state: KeyState | None) -> str:
    """The ``result`` label, else the most frequent failing result of the window."""
    label = case.alert.labels.get("result", "").strip().lower()
    if label or state is None:
        return label
    failing = [(n, r) for r, n in state.checks.items() if r != "ok"]
    return max(failing)[1] if failing else ""


def _ok_text(state: KeyState) -> str:
    ok = state.checks.get("ok", 0.0)
    return f" (ok ×{fmt_count(ok)})" if ok >= 0.5 else ""


def _skew_finding(case: Case, result: str, peak: float, timestamps: float) -> Finding:
    ex = case.values["exchange"]
    seen = f", and the key check also got timestamp rejections ×{fmt_count(timestamps)}"
    sentence = (
        f"Clock skew, not a bad key: our clock and {ex}'s differed by up to "
        f"{fmt_value(peak, 'seconds')} over the window{seen if timestamps >= 0.5 else ''}; a "
        "signed request outside the exchange's time window can come back as "
        f"{result or 'a key error'}."
    )
    return Finding(
        lead_sentences=(sentence,),
        lead_actions=(fill(SKEW_ACTION, case.values),),
        category="clock_skew",
    )


def _ip_finding(case: Case, result: str, state: KeyState | None, exchange: str) -> Finding:
    ex = case.values["exchange"]
    sentences = [
        f"{_key_name(case)}: our egress IP is no longer on the key's allow-list on {ex} (an "
        "edited IP list or a changed NAT/egress IP)."
    ]
    actions = [fill(IP_ACTION, case.values)]
    if result == "invalid_key" or exchange in AMBIGUOUS_INVALID_KEY:
        why = AMBIGUOUS_INVALID_KEY.get(exchange, f"{ex} answers one code for both")
        sentences.append(
            f"{why}; the key was IP-bound, so an allow-list change is the likelier cause - if "
            "our egress IP is on the list, the key was deleted."
        )
        actions.append(
            "If the egress IP is on the key's list, the key was deleted: "
            + fill(NEW_KEY[0].lower() + NEW_KEY[1:], case.values)
        )
    if state is not None and state.ip_binding_changed:
        sentences.append(
            "The key's IP binding changed within the window: someone edited its allow-list."
        )
    if state is not None and state.ok_before:
        sentences.append(
            f"The key was accepted earlier in the window{_ok_text(state)}: it existed and its "
            "secret was right."
        )
    return Finding(lead_sentences=tuple(sentences), lead_actions=tuple(actions), support=True)


def _invalid_key_finding(case: Case, state: KeyState | None) -> Finding:
    ex = case.values["exchange"]
    name = _key_name(case)
    if state is not None and state.ok_before:
        if state.ip_restricted_max is not None and state.ip_restricted_max < 1:
            binding = ", and it is not IP-bound"
        elif state.ip_restricted_max is not None and not state.ip_binding_changed:
            binding = ", with its IP binding unchanged"
        else:
            binding = ""
        sentence = (
            f"{name} was accepted earlier in the window{_ok_text(state)} and is now rejected as "
            f"unknown{binding}: the key was deleted or revoked on {ex}."
        )
        return Finding(
            lead_sentences=(sentence,),
            lead_actions=(fill(REVOKED_ACTION, case.values),),
            support=True,
        )
    if state is not None:
        sentence = (
            f"{name} was not accepted at any time in the window: a wrong key in "
            "key_env/key_file, a key of another environment (testnet or demo against live), or "
            "one deleted before the window."
        )
        action = (
            f"Compare the configured key's account and environment with the exporter's base_url "
            f"for {ex}; if the key is gone there: " + fill(NEW_KEY, case.values)
        )
        return Finding(lead_sentences=(sentence,), lead_actions=(action,))
    sentence = (
        f"{name} is rejected as unknown: most likely deleted or revoked on {ex} (without the "
        "key's earlier state from Prometheus this cannot be confirmed)."
    )
    return Finding(lead_sentences=(sentence,), lead_actions=(fill(REVOKED_ACTION, case.values),))


def _permissions_text(state: KeyState | None) -> str:
    if state is None or not state.permissions:
        return ""
    on = sorted(p for p, v in state.permissions.items() if v >= 1)
    return f" (last permissions seen: {', '.join(on) if on else 'none'})"


def _invalid(case: Case, state: KeyState | None, skew: SeriesStats | None) -> Finding | None:
    exchange = case.alert.labels.get("exchange", "").lower()
    result = _result(case, state)
    peak = _skew_peak(skew)
    timestamps = state.checks.get("timestamp", 0.0) if state is not None else 0.0
    skew_large = peak is not None and peak >= SKEW_LARGE_SECONDS
    stale_signature = result in ("invalid_key", "invalid_signature", "") or timestamps >= 0.5
    if skew_large and peak is not None and stale_signature:
        return _skew_finding(case, result, peak, timestamps)
    finding = _invalid_by_result(case, state, result, exchange)
    if finding is not None and skew_large and peak is not None:
        also = (
            f"Our clock is also off by up to {fmt_value(peak, 'seconds')}: fix NTP too, but "
            f"{case.values['exchange']}'s answer ({result}) names the cause."
        )
        finding = replace(finding, sentences=(*finding.sentences, also))
    return finding


def _invalid_by_result(
    case: Case, state: KeyState | None, result: str, exchange: str
) -> Finding | None:
    ip_bound = state is not None and (state.ip_restricted_max or 0.0) >= 1
    if result == "ip_not_allowed" or (
        result == "invalid_key" and exchange in AMBIGUOUS_INVALID_KEY and ip_bound
    ):
        return _ip_finding(case, result, state, exchange)
    ex = case.values["exchange"]
    name = _key_name(case)
    ok_before = state is not None and state.ok_before
    if result == "invalid_key":
        return _invalid_key_finding(case, state)
    if result == "invalid_signature":
        sentence = (
            f"{name} is known to {ex} but its signature does not verify: the secret (or "
            "passphrase) deployed with it is wrong"
            + (
                " - it was accepted earlier in the window, so the secret file or environment "
                "changed under the running exporter (a rotated key with the old secret?)."
                if ok_before
                else "."
            )
        )
        return Finding(
            lead_sentences=(sentence,),
            lead_actions=(fill(SECRET_ACTION, case.values),),
            support=True,
        )
    if result == "expired":
        when = ""
        if state is not None and state.expiry is not None:
            when = f" (expiry {expiry_text(state.expiry, _now(case))})"
        sentence = f"{name} passed its expiry on {ex}{when}."
        return Finding(
            lead_sentences=(sentence,),
            lead_actions=(fill(EXPIRED_ACTION, case.values),),
            support=True,
        )
    if result == "permission_denied":
        sentence = (
            f"{name} is refused for a missing permission{_permissions_text(state)}: a permission "
            f"was removed from the key on {ex}."
        )
        return Finding(
            lead_sentences=(sentence,),
            lead_actions=(fill(PERMISSION_ACTION, case.values),),
            support=True,
        )
    return None


def _now(case: Case) -> float:
    ctx = case.context
    return ctx.end if ctx is not None and ctx.end > 0 else 0.0


def _timestamp(case: Case, state: KeyState | None, skew: SeriesStats | None) -> Finding | None:
    peak = _skew_peak(skew)
    ex = case.values["exchange"]
    exchange = case.alert.labels.get("exchange", "").lower()
    if peak is not None and peak >= SKEW_LARGE_SECONDS:
        return Finding(
            lead_sentences=(
                f"Clock skew confirmed: our clock and {ex}'s differed by up to "
                f"{fmt_value(peak, 'seconds')} over the window - fix NTP, not the key.",
            ),
            support=True,
        )
    if exchange == "kraken":
        return Finding(
            lead_sentences=(
                "Kraken's EAPI:Invalid nonce means a nonce not above the last one accepted for "
                "this key: another process using the same key, or a nonce that went back after a "
                "restart - not the clock alone.",
            ),
        )
    if peak is not None:
        return Finding(
            sentences=(
                f"The measured skew stayed small (at most {fmt_value(peak, 'seconds')}): look for "
                "short clock steps between measurements or a recv_window too tight for the "
                "latency.",
            ),
        )
    return None


def _expiring(case: Case, state: KeyState | None) -> Finding | None:
    if state is None or state.expiry is None:
        return None
    exchange = case.alert.labels.get("exchange", "").lower()
    sentences = [f"{_key_name(case)} expires {expiry_text(state.expiry, _now(case))}."]
    actions: list[str] = []
    policy = POLICY_EXPIRY.get(exchange)
    if policy is not None and state.ip_restricted is not None and state.ip_restricted < 1:
        sentences.append(
            f"It is not IP-bound, so this is most likely {policy}: binding the key to our egress "
            "IPs removes the expiry."
        )
        actions.append(
            f"Bind the key to our egress IPs on {case.values['exchange']} before the date: the "
            "policy expiry no longer applies to IP-bound keys."
        )
    return Finding(lead_sentences=tuple(sentences), lead_actions=tuple(actions), support=True)


def _withdraw(case: Case, state: KeyState | None) -> Finding | None:
    if state is None or "withdraw" not in state.permissions:
        return None
    name = _key_name(case)
    if state.permissions["withdraw"] < 1:
        return Finding(
            sentences=(
                f"{name} reads withdraw 0 now: the permission was removed; the alert clears at the "
                "next evaluation.",
            )
        )
    if state.ip_restricted is not None and state.ip_restricted < 1:
        return Finding(
            lead_sentences=(
                f"{name} can withdraw and is not IP-bound: anyone with its secret can withdraw "
                "from anywhere.",
            ),
            lead_actions=(
                f"Delete this key on {case.values['exchange']} now and create a read-only, "
                "IP-bound one; then review the withdrawal history.",
            ),
            support=True,
        )
    return Finding(
        lead_sentences=(f"{name} can withdraw{_permissions_text(state)}.",), support=True
    )


def _no_ip(case: Case, state: KeyState | None) -> Finding | None:
    exchange = case.alert.labels.get("exchange", "").lower()
    consequence = NO_IP_CONSEQUENCES.get(exchange)
    sentences: list[str] = []
    if consequence is not None:
        sentences.append(f"{consequence}.")
    if state is not None and state.expiry is not None and exchange in POLICY_EXPIRY:
        sentences.append(
            f"The exporter expects this key to expire {expiry_text(state.expiry, _now(case))}."
        )
    support = state is not None and state.ip_restricted is not None and state.ip_restricted < 1
    if not sentences and not support:
        return None
    return Finding(lead_sentences=tuple(sentences), support=support)


def api_key(case: Case, so_far: Findings) -> Finding | None:
    """API-key alerts: the key's earlier state and the skew decide the cause (see the module)."""
    name = case.alert.alertname
    if not case.exact or name not in KEY_ALERT_NAMES:
        return None
    ctx = case.context
    state = ctx.key if ctx is not None else None
    skew = ctx.stats("clock_skew") if ctx is not None else None
    if name == "ExchangeApiKeyInvalid":
        return _invalid(case, state, skew)
    if name == "ExchangeApiKeyTimestampRejected":
        return _timestamp(case, state, skew)
    if name == "ExchangeApiKeyExpiringSoon":
        return _expiring(case, state)
    if name == "ExchangeApiKeyWithdrawEnabled":
        return _withdraw(case, state)
    return _no_ip(case, state)
