"""The keys of prometheus/thresholds.yml ``defaults`` and ``exchanges`` and the values each
accepts: the table prometheus/render_thresholds.py validates against and renders (one recording
rule ``exchange:threshold:<key>`` per key of KEYS; DURATION_KEYS go into a rule's ``for:``).

Imported by render_thresholds.py as a sibling module (the script's directory is on sys.path when
it runs as ``python prometheus/render_thresholds.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """One threshold: what it is for and which values are valid."""

    alert: str
    check: Callable[[float], bool]
    expected: str


def _positive(v: float) -> bool:
    return v > 0


def _count(v: float) -> bool:
    """An event count an alert compares ``increase()`` with: 1, 2, 3 ..."""
    return v >= 1 and float(v).is_integer()


KEYS: dict[str, Key] = {
    "down_quorum": Key("ExchangeApiDown", _count, "a whole number >= 1"),
    "api_down_consecutive_failures": Key("ExchangeApiDown", _count, "a whole number >= 1"),
    "api_down_fresh_seconds": Key("ExchangeApiDown", _positive, "a number > 0"),
    "latency_p99_seconds": Key("ExchangeApiLatencyHigh", _positive, "a number > 0"),
    "latency_degraded_ratio": Key("ExchangeApiLatencyDegraded", lambda v: v > 1, "a number > 1"),
    "latency_degraded_min_seconds": Key("ExchangeApiLatencyDegraded", _positive, "a number > 0"),
    "error_ratio": Key("ExchangeApiErrorRateHigh", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "rate_limit_warning_ratio": Key(
        "ExchangeRateLimitNearExhaustion", lambda v: 0 < v <= 1, "a number in (0, 1]"
    ),
    "rate_limit_critical_ratio": Key(
        "ExchangeRateLimitNearExhaustion", lambda v: 0 < v <= 1, "a number in (0, 1]"
    ),
    "clock_skew_warning_seconds": Key("ExchangeClockSkewHigh", _positive, "a number > 0"),
    "clock_skew_critical_seconds": Key("ExchangeClockSkewHigh", _positive, "a number > 0"),
    "market_data_age_seconds": Key("ExchangeMarketDataStale", _positive, "a number > 0"),
    "availability_objective": Key(
        "ExchangeApiAvailabilityBudgetBurn", lambda v: 0 < v < 1, "a number in (0, 1)"
    ),
    "budget_burn_min_failed_probes": Key(
        "ExchangeApiAvailabilityBudgetBurn", _count, "a whole number >= 1"
    ),
    "ws_lag_p90_seconds": Key("ExchangeWebSocketLagHigh", _positive, "a number > 0"),
    "ws_sequence_gaps": Key("ExchangeWebSocketSequenceGaps", _count, "a whole number >= 1"),
    "ws_checksum_mismatches": Key(
        "ExchangeWebSocketChecksumMismatch", _count, "a whole number >= 1"
    ),
    "ws_reconnects": Key("ExchangeWebSocketReconnecting", _count, "a whole number >= 1"),
    "api_key_expiry_warning_days": Key("ExchangeApiKeyExpiringSoon", _positive, "a number > 0"),
    "tls_cert_expiry_days": Key("ExchangeTlsCertExpiringSoon", _positive, "a number > 0"),
    "market_fresh_seconds": Key("the market-integrity rules", _positive, "a number > 0"),
    "price_deviation_bps": Key("ExchangePriceDeviation", _positive, "a number > 0"),
    "price_deviation_critical_bps": Key("ExchangePriceDeviation", _positive, "a number > 0"),
    "price_spike_sigma": Key("ExchangePriceSpike", _positive, "a number > 0"),
    "price_spike_min_bps": Key("ExchangePriceSpike", _positive, "a number > 0"),
    "volume_spike_ratio": Key("ExchangeVolumeSpike", lambda v: v > 1, "a number > 1"),
    "volume_spike_min_quote_per_second": Key("ExchangeVolumeSpike", _positive, "a number > 0"),
    "rate_limit_forecast_seconds": Key(
        "ExchangeRateLimitExhaustionPredicted", _positive, "a number > 0"
    ),
    "maintenance_notice_seconds": Key("ExchangeMaintenanceScheduled", _positive, "a number > 0"),
}


@dataclass(frozen=True)
class DurationKey:
    """A rule's ``for:`` set in thresholds.yml ``defaults`` (a Prometheus duration such as
    ``1m``). One rule has one ``for``, so it cannot be overridden per exchange. The rule marks
    the line ``for: 1m  # thresholds.yml <key>`` and its THRESHOLDS table row ``(for: <key>)``;
    rendering writes the value into both."""

    alert: str


DURATION_KEYS: dict[str, DurationKey] = {
    "api_key_invalid_for": DurationKey("ExchangeApiKeyInvalid"),
}

DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")

ORDERED = [
    ("rate_limit_warning_ratio", "rate_limit_critical_ratio"),
    ("clock_skew_warning_seconds", "clock_skew_critical_seconds"),
    ("price_deviation_bps", "price_deviation_critical_bps"),
]
"""(warning, critical) pairs: the warning threshold must be the lower one."""
