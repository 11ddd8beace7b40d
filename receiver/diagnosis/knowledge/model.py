"""The shapes of the diagnosis knowledge: one :class:`Entry` per alert, causes, evidence classes.

Everything here is plain, immutable data. Text fields are our own templates: they may use
``{exchange}``, ``{endpoint}`` and ``{severity}`` (and ``{codes}`` / ``{n}`` in evidence
classes), filled by :func:`fill` with values that are substituted, never parsed as templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from receiver.diagnosis.schema import RootCauseCategory

#: Which component raises an alert: a Prometheus rule in ``prometheus/rules/`` or the receiver.
AlertSource = Literal["prometheus", "receiver"]

#: ``exchange``: one alert per exchange (``exchange`` label); ``global``: about the monitoring.
AlertScope = Literal["exchange", "global"]


def fill(template: str, values: Mapping[str, str]) -> str:
    """Fill one of our templates; label values are substituted, never parsed as templates."""
    return template.format_map(values)


@dataclass(frozen=True)
class Entry:
    """What the rules say about one alert (or one cause no alert names).

    Attributes:
        name: the ``alertname`` it answers, or a runbook name (``"auth"``, ``"unknown"``) for
            entries no alert names.
        category: root cause category.
        confidence: 0..1 confidence when the alert matches this entry by name.
        diagnosis: meaning and likely causes (template).
        impact: trading impact (template).
        actions: action-item templates, most urgent first (at most 5 are sent; evidence-driven
            actions go before them).
        rollback: rollback-plan template.
        eta: recovery estimate.
        source: who raises the alert (``prometheus`` rule or the ``receiver`` itself).
        scope: per exchange or global; must match the alert's section in ``docs/alerts.md``.
        severities: the ``severity`` labels the alert is raised with (rules and docs agree).
        symptom: the alert reports a symptom, not a cause: a clearly dominant evidence class
            may change its category (e.g. -1021 everywhere → ``clock_skew``).
        blame_network: every other exchange down at once means our own network for this alert.
        superseded: evidence class → index of the action its evidence-specific action replaces
            (same advice, with the codes seen).
        label_notes: ``(label, value, sentence)``: a sentence added when the alert carries the
            label with that value (e.g. the budget burn's ``window``).
    """

    name: str
    category: RootCauseCategory
    confidence: float
    diagnosis: str
    impact: str
    actions: tuple[str, ...]
    rollback: str
    eta: str
    source: AlertSource = "prometheus"
    scope: AlertScope = "exchange"
    severities: tuple[str, ...] = ()
    symptom: bool = False
    blame_network: bool = True
    superseded: Mapping[str, int] = field(default_factory=dict)
    label_notes: tuple[tuple[str, str, str], ...] = ()

    def kept_actions(self, classes: Iterable[str]) -> list[str]:
        """The action templates left once the evidence ``classes`` brought their own advice."""
        dropped = {self.superseded[cls] for cls in classes if cls in self.superseded}
        return [a for i, a in enumerate(self.actions) if i not in dropped]


@dataclass(frozen=True)
class Cause:
    """A root cause the evidence can point at, whatever the alert.

    Attributes:
        category: the root cause category.
        words: how the diagnosis names it ("the evidence points at rate limiting rather than …").
        runbook: name of the :class:`Entry` whose texts replace the alert's when the evidence
            changes the category to this one.
        facts: exchange label (lower case) → that exchange's documented facts for this cause
            (codes, limits, headers), quoted in the diagnosis.
    """

    category: RootCauseCategory
    words: str
    runbook: str
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EvidenceClass:
    """What to say when codes of one class (:mod:`receiver.diagnosis.codes`) were counted.

    Attributes:
        cls: the code class (``rate_limit``, ``timestamp``, ``auth`` …).
        sentence: diagnosis sentence template; ``{codes}`` lists the codes seen
            (e.g. ``-1021 ×12``), ``{n}`` is their total.
        action: action template put before the entry's own actions.
        runbook: name of the entry whose texts apply when this class changes the alert's
            category (``None``: the runbook of the category's :class:`Cause`), e.g. DNS and TLS
            failures of one exchange: the network path, not our whole network.
    """

    cls: str
    sentence: str
    action: str
    runbook: str | None = None
