"""Pydantic models of the Alertmanager webhook payload (version "4").

Field list from the Alertmanager docs (https://prometheus.io/docs/alerting/latest/configuration/
#webhook_config) and source up to v0.34, summarised in shared/reference/alertmanager-and-
notifiers.md. Parsing is lenient where Alertmanager may differ between versions or a custom
``payload:`` template (v0.32+) is used: unknown fields are ignored, ``notification_reason``
(v0.32+), ``routeLabels`` (v0.34+) and ``truncatedAlerts`` are optional. It is strict where a wrong
value would poison storage: ``status`` and ``alerts`` are required, labels/annotations must be
string maps, and times must be RFC 3339.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

#: Alertmanager's "zero" endsAt for firing alerts (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("invalid unicode (lone surrogate)") from None
    return value


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (nanosecond fractions allowed, truncated to microseconds).

    Args:
        value: e.g. ``2026-11-21T07:22:00.568123456Z`` or ``...+02:00``.

    Returns:
        A timezone-aware :class:`datetime`.

    Raises:
        ValueError: not RFC 3339 (date-only, missing offset, impossible date...).
    """
    m = _RFC3339.match(value)
    if not m:
        raise ValueError("must be an RFC 3339 timestamp such as 2026-11-21T07:22:00.568Z")
    year, month, day, hour, minute, second, frac, offset = m.groups()
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    tz = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(
            f"{year}-{month}-{day}T{hour}:{minute}:{second}.{micro:06d}{tz}"
        )
    except ValueError as exc:
        raise ValueError(f"must be a valid RFC 3339 timestamp ({exc})") from None


def _check_rfc3339(value: str) -> str:
    parse_rfc3339(value)
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
RFC3339 = Annotated[
    str,
    AfterValidator(_check_rfc3339),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339, e.g. 2026-11-21T07:22:00.568Z",
        }
    ),
]
StrMap = dict[Text, Text]


class Alert(BaseModel):
    """One alert of a webhook.

    ``startsAt``/``endsAt`` keep the exact string Alertmanager sent (it is part of the
    idempotency key); ``endsAt`` is ``0001-01-01T00:00:00Z`` while firing. ``fingerprint`` is
    derived from the labels when a custom payload omits it.
    """

    # By the wire (alias) names only: a "generator_url" key is an unknown extra, as the
    # OpenAPI schema (by alias) says, not the field.
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: StrMap
    annotations: StrMap = Field(default_factory=dict)
    starts_at: RFC3339 = Field(alias="startsAt")
    ends_at: RFC3339 = Field(default=ZERO_TIME, alias="endsAt")
    generator_url: Text = Field(default="", alias="generatorURL")
    fingerprint: Text = ""

    @model_validator(mode="after")
    def _default_fingerprint(self) -> Alert:
        if not self.fingerprint:
            blob = json.dumps(self.labels, sort_keys=True, ensure_ascii=True)
            self.fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return self

    @property
    def alertname(self) -> str:
        """The ``alertname`` label, or ``"unknown"``."""
        return self.labels.get("alertname") or "unknown"


class AlertmanagerWebhook(BaseModel):
    """The whole webhook body (Alertmanager ``version`` "4")."""

    # By the wire (alias) names only: a "generator_url" key is an unknown extra, as the
    # OpenAPI schema (by alias) says, not the field.
    model_config = ConfigDict(extra="ignore")

    version: Text = "4"
    group_key: Text = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: Text = ""
    group_labels: StrMap = Field(default_factory=dict, alias="groupLabels")
    common_labels: StrMap = Field(default_factory=dict, alias="commonLabels")
    common_annotations: StrMap = Field(default_factory=dict, alias="commonAnnotations")
    external_url: Text = Field(default="", alias="externalURL")
    notification_reason: Text | None = None
    route_labels: StrMap | None = Field(default=None, alias="routeLabels")
    alerts: list[Alert]


def format_validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Turn pydantic ``errors()`` into ``[{"field": "alerts.0.startsAt", "message": ...}]``.

    Field paths use the wire (alias) names because validation runs on aliases.
    """
    out: list[dict[str, str]] = []
    for err in errors:
        loc = ".".join(str(part) for part in err.get("loc", ())) or "body"
        msg = str(err.get("msg", "invalid"))
        out.append({"field": loc, "message": msg})
    return out


# --- HTTP API response bodies (documented in the OpenAPI schema) -------------------------------


class FieldError(BaseModel):
    """One invalid input field: ``{"field": "alerts.0.startsAt", "message": "..."}``."""

    field: str
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: ``detail`` names the field(s); ``errors`` lists them one by one."""

    detail: str
    errors: list[FieldError] | None = None


class WebhookStored(BaseModel):
    """``POST /alerts`` success: the webhook is on disk (``new`` alerts will be notified)."""

    status: Literal["stored"]
    alerts: int = Field(description="alerts in the webhook")
    new: int = Field(description="alerts stored for notification")
    duplicates: int = Field(description="alerts already stored (not notified again)")


class HeartbeatRecorded(BaseModel):
    """``POST /heartbeat`` success."""

    status: Literal["ok"]
    received_at: float = Field(description="Unix seconds")


class DeadmanStatus(BaseModel):
    """The dead man's switch part of ``GET /heartbeat``."""

    state: Literal["disarmed", "ok", "alarm"]
    timeout_seconds: float
    alarm_since: float | None
    leader: bool = Field(
        default=False,
        description="This receiver checks for silence (one receiver of those sharing a database).",
    )
    instance: str = Field(default="", description="This receiver's name (RECEIVER_INSTANCE).")


class HeartbeatStatus(BaseModel):
    """``GET /heartbeat``: the last Watchdog heartbeat (persisted across restarts)."""

    last_heartbeat: float | None
    age_seconds: float | None
    heartbeats: int
    deadman: DeadmanStatus


class Health(BaseModel):
    """``GET /healthz`` and a ready ``GET /readyz``."""

    status: Literal["ok"]


class NotReady(BaseModel):
    """``GET /readyz`` when not ready: one reason per failed check."""

    status: Literal["unavailable"]
    reasons: list[str]
