"""Diagnosis knowledge as data: one entry per alert, the causes evidence can point at.

* :mod:`.model`: the frozen dataclasses (:class:`Entry`, :class:`Cause`, :class:`EvidenceClass`);
* :mod:`.alerts`: one :class:`Entry` per alert (``prometheus/rules/`` and the receiver's own),
  matching ``docs/alerts.md`` (the stream alerts' from :mod:`.streams`, the API-key alerts' and
  their exchange facts from :mod:`.keys`, the DNS/TLS alerts' and the network-path runbook from
  :mod:`.path`);
* :mod:`.causes`: per root cause, the exchange facts and the runbook used when the evidence
  changes an alert's category; what to say per evidence class; keywords for unknown alerts.

This package holds no logic beyond the indexes below and :func:`lookup_rule`; the analysis lives
in :mod:`receiver.diagnosis.analysis`, the composition in :mod:`receiver.diagnosis.rules`.
"""

from __future__ import annotations

from receiver.diagnosis.knowledge.alerts import ALERTS, RECONCILE
from receiver.diagnosis.knowledge.causes import (
    AUTH,
    CAUSES,
    DEFAULT,
    EVIDENCE_CLASSES,
    KEYWORDS,
)
from receiver.diagnosis.knowledge.model import Cause, Entry, EvidenceClass, fill
from receiver.diagnosis.knowledge.path import NETWORK_PATH

__all__ = [
    "ALERTS",
    "AUTH",
    "CAUSES",
    "CAUSE_BY_CATEGORY",
    "CLASS_BY_NAME",
    "DEFAULT",
    "EVIDENCE_CLASSES",
    "KNOWLEDGE_BASE",
    "NETWORK_PATH",
    "RECONCILE",
    "RUNBOOKS",
    "Cause",
    "Entry",
    "EvidenceClass",
    "cause_runbook",
    "fill",
    "lookup_rule",
]

#: Knowledge base keyed by the ``alertname`` label: one entry per alert.
KNOWLEDGE_BASE: dict[str, Entry] = {entry.name: entry for entry in ALERTS}

#: Every entry by name: the alerts' plus the runbooks no alert names.
RUNBOOKS: dict[str, Entry] = {
    **KNOWLEDGE_BASE,
    AUTH.name: AUTH,
    DEFAULT.name: DEFAULT,
    NETWORK_PATH.name: NETWORK_PATH,
}

#: Causes by root cause category.
CAUSE_BY_CATEGORY: dict[str, Cause] = {cause.category: cause for cause in CAUSES}

#: Evidence classes by code class.
CLASS_BY_NAME: dict[str, EvidenceClass] = {item.cls: item for item in EVIDENCE_CLASSES}

_KEYWORD_RUNBOOKS: tuple[tuple[tuple[str, ...], Entry], ...] = tuple(
    (words, RUNBOOKS[name]) for words, name in KEYWORDS
)
_CAUSE_RUNBOOKS: dict[str, Entry] = {cause.category: RUNBOOKS[cause.runbook] for cause in CAUSES}


def cause_runbook(category: str) -> Entry | None:
    """The entry whose texts apply when the evidence points at ``category`` (``None``: none)."""
    return _CAUSE_RUNBOOKS.get(category)


def lookup_rule(alertname: str) -> Entry:
    """Return the knowledge-base entry for ``alertname``.

    Exact name first, then keywords in the name (e.g. ``BinanceWeightHigh`` → rate limit),
    else the generic ``unknown`` entry.
    """
    entry = KNOWLEDGE_BASE.get(alertname)
    if entry is not None:
        return entry
    lowered = alertname.lower()
    for words, candidate in _KEYWORD_RUNBOOKS:
        if any(word in lowered for word in words):
            return candidate
    return DEFAULT
