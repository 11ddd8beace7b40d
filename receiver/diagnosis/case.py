"""What one diagnosis looks at and what the evidence finds: the types of every evidence function.

:class:`Case` (the alert, its knowledge entry, its context), :class:`Finding` (what one kind of
evidence adds), :class:`Findings` (everything found so far) and :data:`Evidence`, the signature of
every evidence function (:mod:`receiver.diagnosis.analysis`, :mod:`receiver.diagnosis.keyhealth`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from receiver.diagnosis.knowledge import KNOWLEDGE_BASE, Entry
from receiver.diagnosis.schema import Context, RootCauseCategory
from receiver.models import Alert


@dataclass(frozen=True)
class Case:
    """What one diagnosis looks at.

    Attributes:
        alert: the alert.
        entry: its knowledge entry (by name, else by keyword, else the default).
        context: the Prometheus context, or ``None`` (only the labels are evidence then).
        values: the template values (``exchange``, ``endpoint``, ``severity``), already cleaned.
    """

    alert: Alert
    entry: Entry
    context: Context | None
    values: dict[str, str]

    @property
    def exact(self) -> bool:
        """The alert has an entry of its own (not a keyword match or the default)."""
        return self.alert.alertname in KNOWLEDGE_BASE

    @property
    def symptom(self) -> bool:
        """The evidence may change the category (a symptom alert, or an alert we do not know)."""
        return not self.exact or self.entry.symptom

    def exchanges(self) -> tuple[int, int]:
        """``(up, total)`` over the exchanges other than the alert's."""
        if self.context is None:
            return 0, 0
        others = {k: v for k, v in self.context.exchanges_up.items() if k != self.context.exchange}
        return sum(1 for up in others.values() if up), len(others)


@dataclass(frozen=True)
class Finding:
    """What one kind of evidence adds.

    Attributes:
        sentences: diagnosis sentences, appended.
        actions: action items, appended.
        lead_sentences: diagnosis sentences put before everything found so far.
        lead_actions: action items put before everything found so far.
        classes: evidence classes whose advice was added (their entries' generic action with the
            same advice is dropped, see :attr:`Entry.superseded`).
        category: a root cause category that replaces the alert's.
        runbook: with ``category``, the name of the runbook (a ``RUNBOOKS`` entry) whose texts
            apply instead of the category's cause runbook (``None``: the cause's).
        support: the evidence confirms the alert's own category (raises the confidence).
    """

    sentences: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    lead_sentences: tuple[str, ...] = ()
    lead_actions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    category: RootCauseCategory | None = None
    runbook: str | None = None
    support: bool = False


@dataclass
class Findings:
    """Everything found: a category override (and its runbook), sentences, actions (most urgent
    first)."""

    category: RootCauseCategory | None = None
    runbook: str | None = None
    sentences: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    support: bool = False
    classes: list[str] = field(default_factory=list)

    def add(self, finding: Finding | None) -> None:
        """Merge one finding (``None`` adds nothing)."""
        if finding is None:
            return
        self.sentences[:0] = finding.lead_sentences
        self.sentences.extend(finding.sentences)
        self.actions[:0] = finding.lead_actions
        self.actions.extend(finding.actions)
        self.classes.extend(finding.classes)
        self.support = self.support or finding.support
        if finding.category is not None:
            self.category = finding.category
            self.runbook = finding.runbook


#: One kind of evidence: the case and the findings so far → what it adds, or ``None``.
Evidence = Callable[[Case, Findings], Finding | None]


def category_so_far(case: Case, so_far: Findings) -> str:
    """The category found so far, else the alert entry's."""
    return so_far.category or case.entry.category
