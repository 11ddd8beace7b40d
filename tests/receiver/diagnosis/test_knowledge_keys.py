"""Knowledge entries of the API-key alerts: one per alert, categories, no request for secrets."""

from __future__ import annotations

import re

import pytest

from receiver.diagnosis.knowledge import KNOWLEDGE_BASE, Entry, fill, lookup_rule
from receiver.diagnosis.knowledge.alerts import ALERTS
from receiver.diagnosis.knowledge.causes import CAUSES
from receiver.diagnosis.knowledge.keys import (
    AMBIGUOUS_INVALID_KEY,
    KEY_ALERT_NAMES,
    KEY_ALERTS,
    NO_IP_CONSEQUENCES,
)
from receiver.diagnosis.schema import ROOT_CAUSE_CATEGORIES
from tests.receiver.shipped_alerts import rule_alerts

VALUES = {"exchange": "Binance", "endpoint": "(all endpoints)", "severity": "critical"}

#: alert → (root cause category, severities of the rule file).
KEY_ALERT_SPEC: dict[str, tuple[str, tuple[str, ...]]] = {
    "ExchangeApiKeyInvalid": ("auth", ("critical",)),
    "ExchangeApiKeyExpiringSoon": ("auth", ("warning",)),
    "ExchangeApiKeyWithdrawEnabled": ("auth", ("critical",)),
    "ExchangeApiKeyNoIpRestriction": ("auth", ("warning",)),
    "ExchangeApiKeyTimestampRejected": ("clock_skew", ("warning",)),
}

#: Words that would ask the desk (or a model) for a credential.
_ASKS_FOR_SECRET = re.compile(
    r"(?<!never )\b(send|share|paste|post|include|provide|give us|tell us)\b[^.]{0,40}\b"
    r"(secret|passphrase|private key|api key value)",
    re.IGNORECASE,
)


@pytest.mark.parametrize("name", sorted(KEY_ALERT_SPEC))
def test_each_key_alert_has_its_entry(name: str) -> None:
    category, severities = KEY_ALERT_SPEC[name]
    entry = KNOWLEDGE_BASE[name]
    assert lookup_rule(name) is entry
    assert entry.category == category
    assert entry.category in ROOT_CAUSE_CATEGORIES
    assert entry.severities == severities
    assert entry.scope == "exchange" and entry.source == "prometheus"
    assert not entry.blame_network  # a key check that got an answer is not our network
    assert not entry.symptom  # only the key evidence may change the category


def test_invalid_key_root_cause_is_auth() -> None:
    assert KNOWLEDGE_BASE["ExchangeApiKeyInvalid"].category == "auth"
    assert "clock_skew" in {cause.category for cause in CAUSES}  # the skew category exists


def test_key_entries_are_registered_with_the_other_alerts() -> None:
    assert {e.name for e in KEY_ALERTS} == set(KEY_ALERT_SPEC) == KEY_ALERT_NAMES
    assert all(entry in ALERTS for entry in KEY_ALERTS)


def test_key_entries_match_the_rule_file_when_present() -> None:
    rules = rule_alerts()
    missing = set(KEY_ALERT_SPEC) - set(rules)
    if missing == set(KEY_ALERT_SPEC):
        pytest.skip("prometheus/rules/exchange-key-alerts.yml not written yet")
    assert not missing
    for name, (_, severities) in KEY_ALERT_SPEC.items():
        assert rules[name] == set(severities), name


@pytest.mark.parametrize("entry", KEY_ALERTS, ids=lambda e: e.name)
def test_entries_never_ask_for_a_secret(entry: Entry) -> None:
    texts = [entry.diagnosis, entry.impact, entry.rollback, *entry.actions]
    for template in texts:
        text = fill(template, VALUES)
        assert "{" not in text
        assert not _ASKS_FOR_SECRET.search(text), text


def test_actions_are_what_a_desk_can_act_on() -> None:
    invalid = " ".join(KNOWLEDGE_BASE["ExchangeApiKeyInvalid"].actions)
    assert "read-only" in invalid and "key_file/secret_file" in invalid and "/status" in invalid
    withdraw = KNOWLEDGE_BASE["ExchangeApiKeyWithdrawEnabled"].actions[0]
    assert withdraw.startswith("Switch off the withdrawal permission")
    timestamp = KNOWLEDGE_BASE["ExchangeApiKeyTimestampRejected"].actions[0]
    assert "chronyc" in timestamp


def test_exchange_fact_tables_name_known_exchanges() -> None:
    exchanges = {"binance", "bybit", "okx", "coinbase", "kraken"}
    assert set(AMBIGUOUS_INVALID_KEY) <= exchanges and "binance" in AMBIGUOUS_INVALID_KEY
    assert "-2015" in AMBIGUOUS_INVALID_KEY["binance"]
    assert set(NO_IP_CONSEQUENCES) <= exchanges
    assert "30 days" in NO_IP_CONSEQUENCES["binance"]
    assert "90 days" in NO_IP_CONSEQUENCES["bybit"]
