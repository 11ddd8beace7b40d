"""Diagnosis settings (LLM providers, cost controls, Prometheus context), from the environment.

Declared once here; :class:`receiver.settings.Settings` extends :class:`DiagnosisSettings` with
the receiver's own fields. Every field is the upper-case environment variable of the same name:

===============================  ==========================================================
``LLM_BASE_URL``                 primary OpenAI-compatible base URL (``http://host/v1``)
``LLM_API_KEY`` / ``_FILE``      primary bearer token (secret), or a file holding it
``LLM_MODEL``                    primary model; the primary is used when URL and model are set
``LLM_SECONDARY_BASE_URL``       optional second provider, tried when the primary fails
``LLM_SECONDARY_API_KEY``/``_FILE``
``LLM_SECONDARY_MODEL``
``LLM_TIMEOUT_SECONDS``          per provider attempt, repair turn and response_format retry
                                 included (default 20)
``LLM_TOTAL_TIMEOUT_SECONDS``    whole LLM stage incl. waiting for a concurrency slot (default
                                 ``LLM_TIMEOUT_SECONDS`` × number of providers); rules after it
``LLM_CACHE_SECONDS``            reuse an LLM diagnosis per (alertname, exchange, endpoint, key,
                                 result) for this long (default 900; 0 disables)
``LLM_MAX_CONCURRENCY``          LLM diagnoses in flight at once, all providers (default 2)
``LLM_CRITICAL_BUDGET_SECONDS``  longest a *firing* notification on the ``critical`` route waits
                                 for its diagnosis (context + LLM; default 2, ≥ 0): after it the
                                 page goes out with the rules' diagnosis and the LLM's answer
                                 follows as an update of the message (see
                                 :mod:`receiver.updates`); other routes wait the full stage
``LLM_PROBE_INTERVAL_SECONDS``   how often a provider no call has judged meanwhile is probed
                                 (``GET {base_url}/models``, no tokens) to know whether it
                                 answers at all (default 30; 0 = off): a critical page does
                                 not wait for a first provider that does not
                                 (:mod:`receiver.diagnosis.reachability`)
``LLM_PRICES``                   JSON ``{"model": {"input_per_1k": 0.00015,
                                 "output_per_1k": 0.0006}}``, USD per 1000 tokens
``LLM_PRICES_FILE``              the same as a YAML (or JSON) file; ``LLM_PRICES`` wins per model
``PROMETHEUS_URL``               Prometheus base URL for the alert context (unset: no context)
``CONTEXT_DEADLINE_SECONDS``     overall deadline of the concurrent context queries (default 3)
``CONTEXT_LOOKBACK_SECONDS``     window starts this long before ``startsAt`` (default 1800)
``CONTEXT_MAX_POINTS``           points per ``query_range`` series (default 120)
===============================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from receiver.config_helpers import EnvSettings, SettingsError, base_url, pick_secret

ProviderName = Literal["primary", "secondary"]


class DiagnosisSettingsError(SettingsError):
    """A diagnosis setting is invalid (message names the variable; secrets redacted)."""


class ModelPrice(BaseModel):
    """Price of one model in USD per 1000 tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_1k: float = Field(ge=0, le=1000)
    output_per_1k: float = Field(ge=0, le=1000)


@dataclass(frozen=True)
class ProviderConfig:
    """One configured LLM provider (``name`` is the bounded metric label)."""

    name: ProviderName
    base_url: str
    model: str
    api_key: SecretStr | None


class DiagnosisSettings(EnvSettings):
    """Settings of the diagnosis engine (see the module docstring for every variable).

    The receiver's :class:`receiver.settings.Settings` extends this class, so each variable is
    declared once and the receiver loads the environment once, at start, then hands the same
    object to the engine.
    """

    #: Fields holding secrets: error messages show ``<redacted>`` instead of their values.
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"llm_api_key", "llm_secondary_api_key"})

    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_api_key_file: Path | None = None
    llm_model: str | None = None
    llm_secondary_base_url: str | None = None
    llm_secondary_api_key: SecretStr | None = None
    llm_secondary_api_key_file: Path | None = None
    llm_secondary_model: str | None = None
    llm_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    llm_total_timeout_seconds: float | None = Field(default=None, gt=0, le=1800)
    llm_cache_seconds: float = Field(default=900.0, ge=0, le=7 * 86400)
    llm_max_concurrency: int = Field(default=2, ge=1, le=64)
    llm_critical_budget_seconds: float = Field(default=2.0, ge=0, le=600, allow_inf_nan=False)
    llm_probe_interval_seconds: float = Field(default=30.0, ge=0, le=3600, allow_inf_nan=False)
    llm_prices: dict[str, ModelPrice] = Field(default_factory=dict)
    llm_prices_file: Path | None = None
    prometheus_url: str | None = None
    context_deadline_seconds: float = Field(default=3.0, gt=0, le=60)
    context_lookback_seconds: float = Field(default=1800.0, ge=60, le=86400)
    context_max_points: int = Field(default=120, ge=10, le=1000)

    @field_validator("llm_prices", mode="before")
    @classmethod
    def _none_prices(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("llm_base_url", "llm_secondary_base_url", "prometheus_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return base_url(value)

    @field_validator("llm_model", "llm_secondary_model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and len(value) > 200:
            raise ValueError("must be at most 200 characters")
        return value.strip() if value else value

    @model_validator(mode="after")
    def _check(self) -> DiagnosisSettings:
        for key in ("llm_api_key", "llm_secondary_api_key"):
            path = getattr(self, f"{key}_file")
            text = pick_secret(key.upper(), getattr(self, key), path)
            if path is not None and text is not None:
                # Resolved once here; providers() hands the value out.
                self.__dict__[key] = SecretStr(text)
        if self.llm_prices_file is not None:
            from_file = _load_prices_file(self.llm_prices_file)
            self.__dict__["llm_prices"] = {**from_file, **self.llm_prices}
        return self

    def providers(self) -> list[ProviderConfig]:
        """The configured providers in chain order (a provider needs a base URL and a model)."""
        out: list[ProviderConfig] = []
        if self.llm_base_url and self.llm_model:
            out.append(
                ProviderConfig("primary", self.llm_base_url, self.llm_model, self.llm_api_key)
            )
        if self.llm_secondary_base_url and self.llm_secondary_model:
            out.append(
                ProviderConfig(
                    "secondary",
                    self.llm_secondary_base_url,
                    self.llm_secondary_model,
                    self.llm_secondary_api_key,
                )
            )
        return out

    @property
    def llm_enabled(self) -> bool:
        """True when both ``LLM_BASE_URL`` and ``LLM_MODEL`` are set."""
        return bool(self.llm_base_url and self.llm_model)

    def total_timeout(self) -> float:
        """Deadline of the whole LLM stage of one diagnosis, in seconds."""
        if self.llm_total_timeout_seconds is not None:
            return self.llm_total_timeout_seconds
        return self.llm_timeout_seconds * max(1, len(self.providers()))

    def price(self, model: str | None) -> ModelPrice | None:
        """The configured price of ``model``, if any."""
        return self.llm_prices.get(model) if model else None

    def secret_values(self) -> list[str]:
        """Every configured secret value (for log redaction); never log the result."""
        return [
            v.get_secret_value()
            for v in (self.llm_api_key, self.llm_secondary_api_key)
            if v is not None and v.get_secret_value()
        ]


def _load_prices_file(path: Path) -> dict[str, ModelPrice]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = exc.__class__.__name__
        raise ValueError(f"LLM_PRICES_FILE: cannot read {path} ({reason})") from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError("LLM_PRICES_FILE: must map model names to prices")
    try:
        return {str(k): ModelPrice.model_validate(v) for k, v in raw.items()}
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"LLM_PRICES_FILE: {first['msg']}") from None


def load_diagnosis_settings(**overrides: Any) -> DiagnosisSettings:
    """Build :class:`DiagnosisSettings` from the environment plus keyword overrides.

    The receiver itself loads :class:`receiver.settings.Settings` (which includes these fields)
    once at start; this is for using the diagnosis engine on its own.

    Raises:
        DiagnosisSettingsError: an invalid value; the message names each variable (secrets
            ``<redacted>``), e.g. ``LLM_MAX_CONCURRENCY='x': Input should be a valid integer``.
    """
    settings: DiagnosisSettings = DiagnosisSettings.load(DiagnosisSettingsError, **overrides)
    return settings
