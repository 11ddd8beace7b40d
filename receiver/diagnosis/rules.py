"""Rule-based diagnosis: the knowledge entry for the alert, sharpened by the evidence.

Good on its own, without any LLM. For each exchange-watch alert (docs/alerts.md) an entry in
:mod:`receiver.diagnosis.knowledge` states the likely root cause, trading impact, up to five
actions, a rollback plan and a recovery estimate. The evidence
(:mod:`receiver.diagnosis.analysis`: error codes, the other exchanges' state, series statistics
from the alert's :class:`~receiver.diagnosis.schema.Context`) then sharpens it: evidence-driven
sentences and actions go first, and a clearly dominant cause may replace the entry's category
and texts with those of the cause's runbook (or of the runbook the evidence names, e.g.
``network_path`` for slow connect/TLS phases or DNS/TLS failures of one exchange), plus the
exchange's documented facts for it.

Labels (``exchange``, ``endpoint``, ``severity``, an API-key alert's ``key`` name and ``result``)
and annotations (``summary``, ``description``) are woven into the text as quoted evidence; they
are untrusted, secret-looking words are redacted (:mod:`receiver.diagnosis.redact`), capped here
and escaped later by each notifier. Label values are substituted into our templates, never parsed as
templates.
"""

from __future__ import annotations

from receiver.diagnosis.analysis import Case, analyse
from receiver.diagnosis.knowledge import (
    CAUSE_BY_CATEGORY,
    KNOWLEDGE_BASE,
    RUNBOOKS,
    cause_runbook,
    fill,
    lookup_rule,
)
from receiver.diagnosis.redact import redact_text
from receiver.diagnosis.schema import Context, Diagnosis, RootCauseCategory
from receiver.models import Alert
from receiver.text import cap, strip_control

__all__ = ["KNOWLEDGE_BASE", "diagnose_with_rules", "lookup_rule"]

_EVIDENCE_LIMIT = 700
_EVIDENCE_LABELS = (
    "exchange",
    "endpoint",
    "market",
    "price_group",
    "window",
    "severity",
    "instance",
    "code",
    "key",
    "result",
)

_DISPLAY_NAMES = {
    "binance": "Binance",
    "bybit": "Bybit",
    "okx": "OKX",
    "coinbase": "Coinbase",
    "kraken": "Kraken",
}


def _clean(value: str, limit: int) -> str:
    return cap(" ".join(strip_control(value).split()), limit)


def _evidence(alert: Alert) -> str:
    parts: list[str] = []
    label_bits = [
        f"{key}={_clean(redact_text(alert.labels[key]), 80)}"
        for key in _EVIDENCE_LABELS
        if alert.labels.get(key)
    ]
    if label_bits:
        parts.append("labels: " + ", ".join(label_bits))
    for key in ("summary", "description"):
        value = alert.annotations.get(key)
        if value:
            parts.append(f'{key}: "{_clean(redact_text(value), 300)}"')
    if not parts:
        return ""
    return cap("Evidence - " + "; ".join(parts) + ".", _EVIDENCE_LIMIT)


def _values(alert: Alert) -> dict[str, str]:
    raw = alert.labels.get("exchange", "")
    exchange = _DISPLAY_NAMES.get(raw.lower()) or _clean(raw, 40)
    endpoint = _clean(alert.labels.get("endpoint", ""), 80)
    return {
        "exchange": exchange or "the exchange",
        "endpoint": endpoint or "(all endpoints)",
        "severity": _clean(alert.labels.get("severity", ""), 20) or "unspecified",
    }


def _words(category: str, default: str) -> str:
    cause = CAUSE_BY_CATEGORY.get(category)
    return cause.words if cause is not None else default


def _exchange_facts(category: str, exchange: str) -> str | None:
    cause = CAUSE_BY_CATEGORY.get(category)
    return cause.facts.get(exchange.lower()) if cause is not None else None


def _dedup(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def diagnose_with_rules(
    alert: Alert, *, extra_evidence: str | None = None, context: Context | None = None
) -> Diagnosis:
    """Diagnose one alert from the knowledge base and the context (``source="rules"``).

    Args:
        alert: the alert; its own ``status`` decides between the firing and recovered texts.
        extra_evidence: optional already-capped text (e.g. the alert expression's value)
            appended to the diagnosis.
        context: the Prometheus context; its findings sharpen category, text and actions. It is
            not attached to the result (the engine does that).

    Returns:
        A valid :class:`Diagnosis`; never raises for any label/annotation/context content.
    """
    if alert.status == "resolved":
        return _recovered(alert)
    entry = lookup_rule(alert.alertname)
    values = _values(alert)
    exact = alert.alertname in KNOWLEDGE_BASE
    findings = analyse(Case(alert=alert, entry=entry, context=context, values=values))
    final = entry
    if findings.category:
        runbook = RUNBOOKS.get(findings.runbook) if findings.runbook else None
        final = runbook or cause_runbook(findings.category) or entry
    category: RootCauseCategory = findings.category or entry.category

    text = [fill(entry.diagnosis, values)]
    if findings.category:
        text.append(
            f"The evidence points at {_words(category, category)} rather than "
            f"{_words(entry.category, entry.category.replace('_', ' '))}: "
            + fill(final.diagnosis, values)
        )
    text.extend(findings.sentences)
    hint = _exchange_facts(category, alert.labels.get("exchange", ""))
    if hint:
        text.append(hint)
    evidence = _evidence(alert)
    if evidence:
        text.append(evidence)
    alert_value = extra_evidence or (context.alert_value if context is not None else None)
    if alert_value:
        text.append(alert_value)

    severity = alert.labels.get("severity", "").lower()
    impact = fill(final.impact, values)
    if severity == "critical":
        impact = "Severity critical. " + impact
    actions = _dedup(
        [
            *findings.actions,
            *(fill(a, values) for e in (final, entry) for a in e.kept_actions(findings.classes)),
        ]
    )
    confidence = entry.confidence if exact else max(0.2, entry.confidence - 0.25)
    if findings.category:
        confidence = max(0.7, min(0.85, final.confidence))
    elif findings.support:
        confidence = min(0.95, confidence + 0.1)
    return Diagnosis(
        diagnosis=" ".join(text),
        impact=impact,
        action_items=actions[:5],
        rollback_plan=fill(final.rollback, values),
        estimated_recovery_time=final.eta,
        root_cause_category=category,
        confidence=round(confidence, 2),
        source="rules",
    )


def _recovered(alert: Alert) -> Diagnosis:
    entry = lookup_rule(alert.alertname)
    values = _values(alert)
    ex = values["exchange"]
    actions = [
        f"Reconcile open orders and positions on {ex} against internal state.",
        "Re-enable paused strategies gradually (small size first) and watch fills and errors.",
        "Move any flow that was failed over to a backup venue back deliberately.",
        "Confirm the metric stays healthy for a full evaluation window; watch for flapping.",
        "Write down the timeline and cause for the post-incident review.",
    ]
    if alert.alertname == "Watchdog":
        actions = ["No action needed."]
    if alert.alertname == "ExchangeExporterDown":
        actions = [
            "Check which exchange alerts fired or resolved while the exporter was down: their "
            "resolutions during the gap mean nothing.",
            *actions[3:],
        ]
    evidence = _evidence(alert)
    diagnosis = f"{alert.alertname} has recovered ({entry.category.replace('_', ' ')} cleared)."
    if evidence:
        diagnosis += " " + evidence
    return Diagnosis(
        diagnosis=diagnosis,
        impact=f"Condition cleared; residual risk from orders placed or missed on {ex} during "
        "the incident.",
        action_items=actions,
        rollback_plan=fill(entry.rollback, values),
        estimated_recovery_time="recovered",
        root_cause_category=entry.category,
        confidence=min(0.95, entry.confidence + 0.1),
        source="rules",
    )
