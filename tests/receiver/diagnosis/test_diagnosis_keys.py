"""Rules diagnosis of the API-key alerts: revoked key vs IP allow-list change vs clock skew, etc.

Every case is canned context (a :class:`KeyState` and the exchange's clock-skew series), as the
context builder would attach it; no Prometheus, no server.
"""

from __future__ import annotations

from typing import Any

import pytest

from receiver.diagnosis.keyhealth import SKEW_LARGE_SECONDS
from receiver.diagnosis.knowledge import KNOWLEDGE_BASE
from receiver.diagnosis.rules import diagnose_with_rules
from receiver.diagnosis.schema import Context, Diagnosis, KeyState, SeriesStats
from receiver.models import Alert

#: End of the context window: 2026-09-21T11:06:40Z.
END = 1_790_000_000.0
DAY = 86400.0


def key_alert(alertname: str, exchange: str = "binance", **labels: str) -> Alert:
    severity = KNOWLEDGE_BASE[alertname].severities[0]
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {
                "alertname": alertname,
                "severity": severity,
                "exchange": exchange,
                "key": "monitor",
                **labels,
            },
            "annotations": {"summary": f"{exchange} API key monitor: {alertname}"},
            "startsAt": "2026-09-21T10:50:00Z",
            "fingerprint": "k1",
        }
    )


def state(**overrides: Any) -> KeyState:
    """A key accepted for the first part of the window, rejected now, not IP-bound."""
    base: dict[str, Any] = {
        "name": "monitor",
        "up": 0.0,
        "up_max": 1.0,
        "checks": {"ok": 20.0, "invalid_key": 5.0},
        "ip_restricted": 0.0,
        "ip_restricted_min": 0.0,
        "ip_restricted_max": 0.0,
        "permissions": {"read": 1.0, "trade": 0.0, "withdraw": 0.0},
    }
    return KeyState(**(base | overrides))


def bound(**overrides: Any) -> KeyState:
    """The same key, IP-bound over the whole window."""
    return state(ip_restricted=1.0, ip_restricted_min=1.0, ip_restricted_max=1.0, **overrides)


def never_ok(**overrides: Any) -> KeyState:
    return state(up_max=0.0, checks={"invalid_key": 25.0}, **overrides)


def ctx(key: KeyState | None, skew: float | None = None, exchange: str = "binance") -> Context:
    series = []
    if skew is not None:
        series.append(
            SeriesStats(
                key="clock_skew",
                label="clock skew",
                unit="seconds",
                current=skew,
                minimum=min(0.0, skew),
                maximum=max(0.0, skew),
                points=100,
                trend="flat",
                text=f"clock skew {skew:+.2f} s",
            )
        )
    return Context(exchange=exchange, start=END - 2700, end=END, step=23, series=series, key=key)


def run(alert: Alert, context: Context | None) -> Diagnosis:
    return diagnose_with_rules(alert, context=context)


def text_of(d: Diagnosis) -> str:
    return " ".join([d.diagnosis, d.impact, *d.action_items, d.rollback_plan])


# --- ExchangeApiKeyInvalid: the distinctions ---------------------------------------------------


def test_revoked_key_after_ok_checks_not_ip_bound() -> None:
    d = run(key_alert("ExchangeApiKeyInvalid", result="invalid_key"), ctx(state()))
    assert d.root_cause_category == "auth"
    assert "was accepted earlier in the window (ok ×20)" in d.diagnosis
    assert "it is not IP-bound: the key was deleted or revoked on Binance" in d.diagnosis
    assert d.action_items[0].startswith("The key was deleted or revoked on Binance: create a new")
    assert "read-only key" in d.action_items[0]
    assert "allow-list" not in d.action_items[0]
    assert d.confidence > KNOWLEDGE_BASE["ExchangeApiKeyInvalid"].confidence  # confirmed


def test_revoked_key_with_unchanged_ip_binding_on_an_unambiguous_exchange() -> None:
    """Bybit answers 10003 for an unknown key and 10010 for an IP: invalid_key is the key."""
    d = run(
        key_alert("ExchangeApiKeyInvalid", exchange="bybit", result="invalid_key"),
        ctx(bound(), exchange="bybit"),
    )
    assert d.root_cause_category == "auth"
    assert "with its IP binding unchanged: the key was deleted or revoked on Bybit" in d.diagnosis
    assert d.action_items[0].startswith("The key was deleted or revoked on Bybit")


def test_ip_not_allowed_is_an_allow_list_change() -> None:
    d = run(
        key_alert("ExchangeApiKeyInvalid", exchange="okx", result="ip_not_allowed"),
        ctx(bound(checks={"ok": 12.0, "ip_not_allowed": 4.0}), exchange="okx"),
    )
    assert d.root_cause_category == "auth"
    assert "our egress IP is no longer on the key's allow-list on OKX" in d.diagnosis
    assert d.action_items[0].startswith("Our egress IP is no longer on the key's allow-list")
    assert "NAT/egress IP" in d.action_items[0] and "IP list" in d.action_items[0]
    assert "it existed and its secret was right" in d.diagnosis
    assert "deleted or revoked" not in d.action_items[0]


def test_binance_2015_on_an_ip_bound_key_is_an_allow_list_change() -> None:
    """One code for both on Binance: the earlier IP binding decides."""
    d = run(key_alert("ExchangeApiKeyInvalid", result="invalid_key"), ctx(bound()))
    assert d.root_cause_category == "auth"
    assert d.action_items[0].startswith("Our egress IP is no longer on the key's allow-list")
    assert "-2015" in d.diagnosis and "the key was IP-bound" in d.diagnosis
    # The other reading stays on the list, second.
    assert d.action_items[1].startswith("If the egress IP is on the key's list, the key was")


def test_binance_2015_on_a_key_that_became_ip_bound_in_the_window() -> None:
    changed = state(ip_restricted=1.0, ip_restricted_min=0.0, ip_restricted_max=1.0)
    d = run(key_alert("ExchangeApiKeyInvalid", result="invalid_key"), ctx(changed))
    assert d.action_items[0].startswith("Our egress IP is no longer on the key's allow-list")
    assert "IP binding changed within the window" in d.diagnosis


def test_binance_2015_on_a_key_never_ip_bound_is_a_revoked_key() -> None:
    d = run(key_alert("ExchangeApiKeyInvalid", result="invalid_key"), ctx(state()))
    assert d.action_items[0].startswith("The key was deleted or revoked")


@pytest.mark.parametrize("result", ["invalid_key", "invalid_signature"])
def test_large_skew_means_clock_not_key(result: str) -> None:
    d = run(key_alert("ExchangeApiKeyInvalid", result=result), ctx(bound(), skew=2.5))
    assert d.root_cause_category == "clock_skew"
    assert "Clock skew, not a bad key" in d.diagnosis
    assert "2.50 s" in d.diagnosis
    assert d.action_items[0].startswith("Clock skew, not a bad key: fix NTP")
    assert not any(a.startswith("The key was deleted") for a in d.action_items)
    assert 0.7 <= d.confidence <= 0.85


def test_timestamp_checks_with_large_skew_point_at_the_clock_even_for_other_results() -> None:
    skewed = bound(checks={"ok": 3.0, "timestamp": 6.0, "permission_denied": 2.0})
    d = run(
        key_alert("ExchangeApiKeyInvalid", result="permission_denied"),
        ctx(skewed, skew=-3.0),
    )
    assert d.root_cause_category == "clock_skew"
    assert "timestamp rejections ×6" in d.diagnosis


def test_small_skew_does_not_blame_the_clock() -> None:
    small = SKEW_LARGE_SECONDS / 4
    d = run(key_alert("ExchangeApiKeyInvalid", result="invalid_key"), ctx(state(), skew=small))
    assert d.root_cause_category == "auth"
    assert d.action_items[0].startswith("The key was deleted or revoked")


def test_explicit_ip_answer_keeps_its_cause_but_mentions_a_large_skew() -> None:
    d = run(
        key_alert("ExchangeApiKeyInvalid", exchange="bybit", result="ip_not_allowed"),
        ctx(bound(), skew=2.0, exchange="bybit"),
    )
    assert d.root_cause_category == "auth"
    assert d.action_items[0].startswith("Our egress IP is no longer")
    assert "Our clock is also off by up to 2.00 s" in d.diagnosis


@pytest.mark.parametrize("ok_before", [True, False])
def test_invalid_signature_is_a_wrong_secret(ok_before: bool) -> None:
    key = state(checks={"ok": 9.0, "invalid_signature": 3.0}) if ok_before else never_ok()
    d = run(
        key_alert("ExchangeApiKeyInvalid", exchange="okx", result="invalid_signature"), ctx(key)
    )
    assert d.root_cause_category == "auth"
    assert d.action_items[0].startswith("Wrong secret")
    assert "signature does not verify" in d.diagnosis
    assert ("rotated key with the old secret" in d.diagnosis) is ok_before


def test_expired_key_with_its_expiry_date() -> None:
    key = bound(checks={"ok": 5.0, "expired": 4.0}, expiry=END - 2 * DAY)
    d = run(key_alert("ExchangeApiKeyInvalid", exchange="kraken", result="expired"), ctx(key))
    assert d.root_cause_category == "auth"
    assert "passed its expiry on Kraken (expiry passed 2.0 d ago (2026-09-19" in d.diagnosis
    assert d.action_items[0].startswith("The key expired: create a new read-only key")


def test_permission_denied_is_a_permission_change() -> None:
    key = bound(checks={"ok": 5.0, "permission_denied": 4.0}, permissions={"read": 0.0})
    d = run(
        key_alert("ExchangeApiKeyInvalid", exchange="bybit", result="permission_denied"),
        ctx(key, exchange="bybit"),
    )
    assert d.root_cause_category == "auth"
    assert "(last permissions seen: none)" in d.diagnosis
    assert d.action_items[0].startswith("A permission changed")


def test_never_accepted_key_is_a_configuration_problem() -> None:
    d = run(
        key_alert("ExchangeApiKeyInvalid", exchange="okx", result="invalid_key"), ctx(never_ok())
    )
    assert d.root_cause_category == "auth"
    assert "not accepted at any time in the window" in d.diagnosis
    assert "environment" in d.action_items[0]


def test_without_context_the_result_label_still_decides() -> None:
    revoked = run(key_alert("ExchangeApiKeyInvalid", result="invalid_key"), None)
    assert revoked.root_cause_category == "auth"
    assert "most likely deleted or revoked" in revoked.diagnosis
    ip = run(key_alert("ExchangeApiKeyInvalid", exchange="bybit", result="ip_not_allowed"), None)
    assert ip.action_items[0].startswith("Our egress IP is no longer")
    secret = run(key_alert("ExchangeApiKeyInvalid", result="invalid_signature"), None)
    assert secret.action_items[0].startswith("Wrong secret")


def test_missing_result_label_uses_the_dominant_failing_check() -> None:
    key = state(checks={"ok": 4.0, "invalid_signature": 7.0, "rate_limited": 1.0})
    d = run(key_alert("ExchangeApiKeyInvalid"), ctx(key))
    assert d.action_items[0].startswith("Wrong secret")


@pytest.mark.parametrize(
    "result", ["invalid_key", "invalid_signature", "ip_not_allowed", "expired", "permission_denied"]
)
def test_every_invalid_result_has_root_cause_auth(result: str) -> None:
    for context in (None, ctx(state()), ctx(bound())):
        d = run(key_alert("ExchangeApiKeyInvalid", result=result), context)
        assert d.root_cause_category == "auth", (result, context)
        assert d.source == "rules" and 1 <= len(d.action_items) <= 5
        assert "Severity critical." in d.impact


# --- the other key alerts ----------------------------------------------------------------------


def test_timestamp_rejected_with_large_skew_confirms_the_clock() -> None:
    d = run(key_alert("ExchangeApiKeyTimestampRejected"), ctx(state(), skew=-1.8))
    assert d.root_cause_category == "clock_skew"
    assert "Clock skew confirmed" in d.diagnosis and "fix NTP, not the key" in d.diagnosis
    assert "Our clock is 1.80 s ahead of Binance" in d.diagnosis
    assert "chronyc" in d.action_items[0]


def test_timestamp_rejected_on_kraken_with_small_skew_is_the_nonce() -> None:
    d = run(
        key_alert("ExchangeApiKeyTimestampRejected", exchange="kraken"),
        ctx(state(), skew=0.2, exchange="kraken"),
    )
    assert d.root_cause_category == "clock_skew"
    assert "EAPI:Invalid nonce means a nonce not above the last one" in d.diagnosis
    assert "another process using the same key" in d.diagnosis


def test_timestamp_rejected_with_small_skew_elsewhere() -> None:
    d = run(key_alert("ExchangeApiKeyTimestampRejected"), ctx(state(), skew=0.1))
    assert "The measured skew stayed small" in d.diagnosis


def test_expiring_policy_key_without_ip_binding() -> None:
    key = state(up=1.0, checks={"ok": 40.0}, expiry=END + 3.5 * DAY)
    d = run(key_alert("ExchangeApiKeyExpiringSoon"), ctx(key))
    assert d.root_cause_category == "auth"
    assert "Key 'monitor' expires in 3.5 d" in d.diagnosis
    assert "Binance's 30-day rule" in d.diagnosis
    assert d.action_items[0].startswith("Bind the key to our egress IPs on Binance")


def test_expiring_exchange_set_expiry() -> None:
    key = bound(up=1.0, checks={"ok": 40.0}, expiry=END + 6 * DAY)
    d = run(key_alert("ExchangeApiKeyExpiringSoon", exchange="kraken"), ctx(key, exchange="kraken"))
    assert "expires in 6.0 d" in d.diagnosis
    assert not d.action_items[0].startswith("Bind the key")
    assert any("create a new read-only key" in a for a in d.action_items)


def test_withdraw_enabled_without_ip_binding_says_delete_now() -> None:
    key = state(up=1.0, checks={"ok": 40.0}, permissions={"read": 1.0, "withdraw": 1.0})
    d = run(key_alert("ExchangeApiKeyWithdrawEnabled", exchange="okx"), ctx(key, exchange="okx"))
    assert d.root_cause_category == "auth"
    assert "can withdraw and is not IP-bound" in d.diagnosis
    assert d.action_items[0].startswith("Delete this key on OKX now")


def test_withdraw_enabled_on_a_bound_key() -> None:
    key = bound(up=1.0, checks={"ok": 40.0}, permissions={"read": 1.0, "withdraw": 1.0})
    d = run(key_alert("ExchangeApiKeyWithdrawEnabled"), ctx(key))
    assert d.action_items[0].startswith("Switch off the withdrawal permission")
    assert "(last permissions seen: read, withdraw)" in d.diagnosis


@pytest.mark.parametrize(
    ("exchange", "words"),
    [("binance", "30 days after activation"), ("bybit", "90 days"), ("okx", "14 days")],
)
def test_no_ip_restriction_names_the_exchange_consequence(exchange: str, words: str) -> None:
    key = state(up=1.0, checks={"ok": 40.0})
    d = run(
        key_alert("ExchangeApiKeyNoIpRestriction", exchange=exchange), ctx(key, exchange=exchange)
    )
    assert d.root_cause_category == "auth"
    lead = d.diagnosis.split("). ", 1)[1]  # after the entry's own text
    assert words in lead
    assert "allow-list" in d.action_items[0]
