"""Diagnosis knowledge as data: entries ↔ prometheus/rules/ ↔ docs/alerts.md, and its shape."""

from __future__ import annotations

import inspect
import re
from typing import get_args

import pytest

from receiver.diagnosis.analysis import EVIDENCE, Case, Findings, analyse, label_notes
from receiver.diagnosis.codes import CodeClass
from receiver.diagnosis.knowledge import (
    CAUSES,
    EVIDENCE_CLASSES,
    KNOWLEDGE_BASE,
    RUNBOOKS,
    Entry,
    cause_runbook,
    fill,
    lookup_rule,
)
from receiver.diagnosis.knowledge.causes import KEYWORDS
from receiver.diagnosis.schema import ROOT_CAUSE_CATEGORIES, Context
from receiver.models import Alert
from tests.receiver.shipped_alerts import (
    ALERTS_DOC,
    RECEIVER_ALERTS,
    rule_alerts,
    shipped_alertnames,
)

SEVERITIES = ("critical", "warning", "info", "none")
EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")
VALUES = {"exchange": "Binance", "endpoint": "ticker", "severity": "warning"}


def doc_sections() -> dict[str, str]:
    """``## AlertName`` sections of docs/alerts.md → their first line (severity · scope)."""
    sections: dict[str, str] = {}
    for match in re.finditer(r"^## (\w+)\n\n(.+)$", ALERTS_DOC.read_text(encoding="utf-8"), re.M):
        sections[match.group(1)] = match.group(2)
    return sections


def test_every_alert_has_an_entry_and_every_entry_names_an_alert() -> None:
    shipped = set(shipped_alertnames())
    assert not shipped - set(KNOWLEDGE_BASE), "alerts without a knowledge entry"
    assert not set(KNOWLEDGE_BASE) - shipped, "entries naming an alert nothing raises"


def test_entry_sources_and_severities_match_the_rules() -> None:
    rules = rule_alerts()
    for name, entry in KNOWLEDGE_BASE.items():
        assert entry.name == name
        if entry.source == "prometheus":
            assert name in rules, f"{name}: no rule defines it"
            assert set(entry.severities) == rules[name], name
        else:
            assert name in RECEIVER_ALERTS, f"{name}: the receiver does not raise it"


def test_docs_and_entries_do_not_drift() -> None:
    sections = doc_sections()
    assert set(sections) == set(KNOWLEDGE_BASE), "docs/alerts.md sections ≠ knowledge entries"
    for name, line in sections.items():
        entry = KNOWLEDGE_BASE[name]
        documented = {s for s in SEVERITIES if re.search(rf"\b{s}\b", line)}
        assert documented == set(entry.severities), f"{name}: {line!r}"
        assert ("global" in line) == (entry.scope == "global"), f"{name}: {line!r}"
        assert ("raised by the receiver" in line) == (entry.source == "receiver"), name


def test_docs_sections_have_meaning_causes_and_actions() -> None:
    text = ALERTS_DOC.read_text(encoding="utf-8")
    for name in KNOWLEDGE_BASE:
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Meaning**", "**Likely causes", "**What to do**"):
            assert part in section, f"{name}: {part} missing in docs/alerts.md"


@pytest.mark.parametrize("entry", list(RUNBOOKS.values()), ids=list(RUNBOOKS))
def test_entries_are_complete_templates(entry: Entry) -> None:
    assert entry.category in ROOT_CAUSE_CATEGORIES
    assert 0 < entry.confidence <= 1
    assert 1 <= len(entry.actions) <= 5
    for template in (entry.diagnosis, entry.impact, entry.rollback, *entry.actions):
        assert "{" not in fill(template, VALUES)
    classes = {item.cls for item in EVIDENCE_CLASSES}
    for cls, index in entry.superseded.items():
        assert cls in classes and 0 <= index < len(entry.actions), (entry.name, cls)
    for label, value, sentence in entry.label_notes:
        assert label and value and sentence


def test_causes_classes_and_keywords_resolve() -> None:
    for cause in CAUSES:
        assert cause.category in ROOT_CAUSE_CATEGORIES
        assert cause_runbook(cause.category) is RUNBOOKS[cause.runbook]
        assert set(cause.facts) <= set(EXCHANGES), cause.category
    assert len({cause.category for cause in CAUSES}) == len(CAUSES)
    code_classes = set(get_args(CodeClass))
    assert {item.cls for item in EVIDENCE_CLASSES} <= code_classes
    for item in EVIDENCE_CLASSES:
        assert "{" not in fill(item.sentence + item.action, {**VALUES, "codes": "x", "n": "1"})
        assert item.runbook is None or item.runbook in RUNBOOKS, item.cls
    for _words, name in KEYWORDS:
        assert name in RUNBOOKS
    assert lookup_rule("BinanceWeightHigh") is KNOWLEDGE_BASE["ExchangeRateLimited"]
    assert lookup_rule("ExchangeAuthFailing") is RUNBOOKS["auth"]  # keyword, not an entry


def test_evidence_functions_share_one_signature() -> None:
    for evidence in EVIDENCE:
        assert list(inspect.signature(evidence).parameters) == ["case", "so_far"]
        assert evidence.__doc__, evidence.__name__


def _case(alertname: str, context: Context | None = None, **labels: str) -> Case:
    alert = Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": alertname, **labels},
            "startsAt": "2026-11-21T07:22:00Z",
            "fingerprint": "f",
        }
    )
    return Case(alert=alert, entry=lookup_rule(alertname), context=context, values=VALUES)


def test_label_notes_only_for_the_alert_itself() -> None:
    burn = _case("ExchangeApiAvailabilityBudgetBurn", window="fast")
    finding = label_notes(burn, Findings())
    assert finding is not None and finding.sentences[0].startswith("Fast burn")
    assert label_notes(_case("SloBurn", window="fast"), Findings()) is None  # keyword match


def test_without_context_only_labels_count() -> None:
    found = analyse(_case("ExchangeApiDown"))
    assert (found.category, found.sentences, found.actions, found.support) == (None, [], [], False)


def test_our_network_goes_first_and_sets_the_category() -> None:
    context = Context(exchange="binance", exchanges_up={"binance": False, "a": False, "b": False})
    found = analyse(_case("ExchangeApiDown", context, exchange="binance"))
    assert found.category == "network"
    assert found.sentences[0].startswith("Every other monitored exchange is down too (0/2 up)")
    assert found.actions[0].startswith("Check our egress first")
    skew = analyse(_case("ExchangeClockSkewHigh", context, exchange="binance"))
    assert skew.category is None and not skew.sentences  # not blamed on the network
