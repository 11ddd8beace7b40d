"""The ``/status`` record of one monitored key: what its last checks said, without a secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.keys.model import KeyFacts, KeyResult


@dataclass(slots=True)
class KeyStatus:
    """The state of one key as ``/status`` shows it.

    Attributes:
        api: the key API checked (``binance``, ``coinbase-advanced-trade``, ...).
        interval: seconds between checks.
        last_result: the last check's result, or None before the first.
        last_error_code: the exchange's error code of the last failed check, or None.
        last_message: the exchange's message of the last failed check, credentials scrubbed
            (at most 200 characters), or "".
        last_check_at / last_success_at: Unix seconds, 0 before the first.
        consecutive_failures: failed checks since the last accepted one.
        facts: what the last accepted answer said about the key, or None.
    """

    api: str
    interval: float
    last_result: KeyResult | None = None
    last_error_code: str | None = None
    last_message: str = ""
    last_check_at: float = 0.0
    last_success_at: float = 0.0
    consecutive_failures: int = 0
    facts: KeyFacts | None = None

    def document(self) -> dict[str, Any]:
        """The JSON record: ``{"api", "up", "last_result", "last_error_code", "last_message",
        "last_check_at", "last_success_at", "consecutive_failures", "interval_seconds",
        "permissions": {permission: bool} | None, "ip_restricted", "ips",
        "expiry": None | {"at", "source", "note"}, "created_at"}``; times Unix seconds."""
        facts = self.facts
        expiry = None
        if facts is not None and facts.expires_at is not None:
            expiry = {
                "at": facts.expires_at,
                "source": facts.expiry_source,
                "note": facts.expiry_note,
            }
        return {
            "api": self.api,
            "up": None if self.last_result is None else self.last_result is KeyResult.OK,
            "last_result": None if self.last_result is None else self.last_result.value,
            "last_error_code": self.last_error_code,
            "last_message": self.last_message,
            "last_check_at": self.last_check_at or None,
            "last_success_at": self.last_success_at or None,
            "consecutive_failures": self.consecutive_failures,
            "interval_seconds": self.interval,
            "permissions": None
            if facts is None
            else {p.value: granted for p, granted in facts.permissions.items()},
            "ip_restricted": None if facts is None else facts.ip_restricted,
            "ips": [] if facts is None else list(facts.ips),
            "expiry": expiry,
            "created_at": None if facts is None else facts.created_at,
        }
