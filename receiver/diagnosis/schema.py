"""The diagnosis schema shared by the LLM path, the rules engine and every notifier.

Shape (JSON)::

    {"diagnosis": str, "impact": str, "action_items": [str, ... at most 5],
     "rollback_plan": str, "estimated_recovery_time": str,
     "root_cause_category": one of ROOT_CAUSE_CATEGORIES, "confidence": float in [0, 1],
     "source": "llm" | "rules"}

Out-of-range values (6+ action items, confidence 3, unknown category, missing field) are
*rejected* so that the LLM path can ask for a repair or fall back to rules. Over-long strings are
*capped* instead (they are harmless once cut), so a verbose model is not penalised.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from receiver.text import cap, strip_control

RootCauseCategory = Literal[
    "rate_limit",
    "ip_ban",
    "outage",
    "partial_outage",
    "latency_degradation",
    "maintenance",
    "clock_skew",
    "auth",
    "network",
    "data_quality",
    "monitoring",
    "unknown",
]

#: The allowed ``root_cause_category`` values, in documentation order.
ROOT_CAUSE_CATEGORIES: tuple[str, ...] = get_args(RootCauseCategory)

MAX_ACTION_ITEMS = 5


def _capper(limit: int) -> AfterValidator:
    def _cap(value: str) -> str:
        # Lone surrogates (possible in model output) would break UTF-8 writes later.
        value = value.encode("utf-8", "replace").decode("utf-8")
        value = strip_control(value).strip()
        if not value:
            raise ValueError("must not be empty")
        return cap(value, limit)

    return AfterValidator(_cap)


ShortText = Annotated[str, _capper(120)]
ItemText = Annotated[str, _capper(400)]
MediumText = Annotated[str, _capper(1200)]
LongText = Annotated[str, _capper(2000)]


class Diagnosis(BaseModel):
    """A validated diagnosis of one alert notification.

    Attributes:
        diagnosis: what is happening and why (≤2000 chars after capping).
        impact: what this means for trading (≤1200 chars).
        action_items: 1–5 concrete steps, most urgent first (each ≤400 chars).
        rollback_plan: how to undo mitigations once healthy (≤1200 chars).
        estimated_recovery_time: human estimate such as "5-30 minutes" (≤120 chars).
        root_cause_category: one of :data:`ROOT_CAUSE_CATEGORIES`.
        confidence: 0.0–1.0.
        source: ``"llm"`` or ``"rules"``.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    diagnosis: LongText
    impact: MediumText
    action_items: list[ItemText] = Field(min_length=1, max_length=MAX_ACTION_ITEMS)
    rollback_plan: MediumText
    estimated_recovery_time: ShortText
    root_cause_category: RootCauseCategory
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    source: Literal["llm", "rules"]
