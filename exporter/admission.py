"""The gate every probe request of an exchange passes: its schedule, its request-weight budget and
any rate-limit or ban pause, enforced at the moment of sending.

The scheduler plans probes well inside these bounds; this gate makes them hold whatever the
scheduler, a wake-up, a sweep, a retry or a future caller asks for, so that the monitor can never
spend the request weight the trading bots on the same IP depend on. For an exchange whose
endpoints ``e`` have interval ``I_e`` and request weight ``w_e``, and whose profile documents
limits ``L`` per window ``W`` (:class:`exporter.profiles.LimitRule`), with ``weight_budget`` ``b``:

- **Schedule.** Endpoint ``e`` sends at most ``1 + CONFIRMATION_PROBES + T / I_e`` requests in any
  ``T`` seconds: a token bucket that gains one token per interval and holds at most
  ``1 + CONFIRMATION_PROBES`` (so one confirmation re-probe may come early, and its token is paid
  back by the interval after it).
- **Budget.** The weight sent against each limit never exceeds ``b × L`` in any ``W`` seconds
  (sliding, so also in any of the exchange's own fixed windows). Where one request outweighs
  ``b × L`` (OKX ``/api/v5/system/status``: 1 request per 5 s at 10 % is 0.1), the window is
  scaled: at most ``k × b × L`` in any ``k × W`` seconds, ``k`` the least whole number that admits
  the heaviest request — the same average, never above the limit itself.
- **Pauses.** Nothing is sent while a rate-limit or ban pause (:class:`RateLimitGate`) holds.

Config validation (:func:`exporter.config.check_budget`) checks the schedule against the same
:class:`BudgetWindow` objects, so a valid schedule is never held back by the budget on average.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from exporter.profiles.base import LimitRule
from exporter.resilience import RateLimitGate

CONFIRMATION_PROBES = 1
"""Requests an endpoint may send ahead of its interval (an outage confirmation or a recovery
re-probe); each is paid back by the following interval."""

_EPSILON = 1e-9


class HoldReason(StrEnum):
    """Why the gate held a probe back: the ``reason`` label of
    ``exchange_exporter_probes_held_total``."""

    SCHEDULE = "schedule"
    """The endpoint already used its requests for this interval."""
    BUDGET = "budget"
    """The exchange's share of a documented limit is used up for the current window."""
    PAUSED = "paused"
    """A rate-limit or ban pause is in force."""


@dataclass(frozen=True, slots=True)
class BudgetWindow:
    """The share of one documented limit that the exporter may use, as enforced.

    Attributes:
        rule: the documented limit.
        span_seconds: the window the cap applies to: ``k × rule.window_seconds``.
        cap: weight allowed in any ``span_seconds``: ``k × weight_budget × rule.limit``.
        scale: ``k``, the least whole number for which ``cap`` admits the heaviest request
            (1 unless one request outweighs ``weight_budget × rule.limit``).
    """

    rule: LimitRule
    span_seconds: float
    cap: float
    scale: int

    @classmethod
    def of(cls, rule: LimitRule, weight_budget: float, heaviest: float) -> BudgetWindow:
        """Derive the enforced window of ``rule`` for ``weight_budget`` (0–1] and the heaviest
        request weight that counts against it."""
        allowed = weight_budget * rule.limit
        scale = max(1, math.ceil(heaviest / allowed - _EPSILON)) if allowed > 0 else 1
        return cls(rule, rule.window_seconds * scale, allowed * scale, scale)

    def usage(self, schedule: Mapping[str, tuple[float, float]]) -> float:
        """Average weight per ``span_seconds`` that ``schedule`` (endpoint → (interval s,
        weight)) spends against this limit."""
        return sum(
            weight * self.span_seconds / interval
            for name, (interval, weight) in schedule.items()
            if self.rule.applies_to(name)
        )


def budget_windows(
    rules: Sequence[LimitRule], weight_budget: float, weights: Mapping[str, float]
) -> tuple[BudgetWindow, ...]:
    """The enforced windows of every documented limit, for endpoints of the given weights."""
    windows = []
    for rule in rules:
        covered = [w for name, w in weights.items() if rule.applies_to(name)]
        windows.append(BudgetWindow.of(rule, weight_budget, max(covered, default=1.0)))
    return tuple(windows)


@dataclass(slots=True)
class _Bucket:
    interval: float
    weight: float
    tokens: float
    updated: float


@dataclass(slots=True)
class _WindowLog:
    window: BudgetWindow
    sent: deque[tuple[float, float]] = field(default_factory=deque)
    total: float = 0.0

    def expire(self, now: float) -> None:
        cutoff = now - self.window.span_seconds
        while self.sent and self.sent[0][0] <= cutoff:
            self.total -= self.sent.popleft()[1]
        if not self.sent:
            self.total = 0.0

    def wait(self, weight: float, now: float) -> float:
        """Seconds until ``weight`` more fits under the cap (0: it fits now)."""
        excess = self.total + weight - self.window.cap
        if excess <= _EPSILON:
            return 0.0
        for at, sent in self.sent:
            excess -= sent
            if excess <= _EPSILON:
                return max(at + self.window.span_seconds - now, _EPSILON)
        return self.window.span_seconds  # unreachable: the cap admits the heaviest request

    def record(self, weight: float, now: float) -> None:
        """Count ``weight`` sent at ``now``."""
        self.sent.append((now, weight))
        self.total += weight


class ProbeAdmission:
    """Admits or holds back each request of one exchange (see the module docstring).

    Args:
        pause: the exchange's rate-limit/ban pause.
        monotonic: monotonic clock in seconds (injectable for tests).

    Call :meth:`configure` before the first request, and again after a config reload (the
    history of sent requests is kept, so a reload cannot reset the budget).
    """

    def __init__(self, pause: RateLimitGate, monotonic: Callable[[], float]) -> None:
        self.pause = pause
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._logs: list[_WindowLog] = []

    def configure(
        self, schedule: Mapping[str, tuple[float, float]], windows: Sequence[BudgetWindow]
    ) -> None:
        """Take the schedule ``{endpoint: (interval s, request weight)}`` and budget windows.

        Endpoints and windows that stay keep their tokens and sent requests; new endpoints
        start with a full bucket (their first probe and one confirmation).
        """
        now = self._monotonic()
        buckets: dict[str, _Bucket] = {}
        for name, (interval, weight) in schedule.items():
            old = self._buckets.get(name)
            if old is not None:
                self._refill(old, now)
                buckets[name] = _Bucket(interval, weight, old.tokens, now)
            else:
                buckets[name] = _Bucket(interval, weight, 1.0 + CONFIRMATION_PROBES, now)
        self._buckets = buckets
        old_logs = {log.window.rule: log for log in self._logs}
        logs = []
        for window in windows:
            previous = old_logs.get(window.rule)
            log = _WindowLog(window)
            if previous is not None:
                covered = [(at, w) for at, w in previous.sent]
                log.sent.extend(covered)
                log.total = sum(w for _, w in covered)
            logs.append(log)
        self._logs = logs

    def try_admit(self, endpoint: str) -> tuple[float, HoldReason | None]:
        """Admit one request of ``endpoint`` now, or say how long to wait and why.

        Returns:
            ``(0.0, None)`` when admitted (the request is counted: send it now); else
            ``(seconds, reason)``: nothing was counted, ask again after ``seconds``.

        Raises:
            KeyError: ``endpoint`` is not in the configured schedule (nothing may bypass it).
        """
        bucket = self._buckets.get(endpoint)
        if bucket is None:
            raise KeyError(f"endpoint {endpoint!r} is not in the exchange's probe schedule")
        paused = self.pause.remaining()
        if paused > 0:
            return paused, HoldReason.PAUSED
        now = self._monotonic()
        self._refill(bucket, now)
        if bucket.tokens < 1.0 - _EPSILON:
            return (1.0 - bucket.tokens) * bucket.interval, HoldReason.SCHEDULE
        wait = self._spend(self._covering(endpoint), bucket.weight, now)
        if wait > 0:
            return wait, HoldReason.BUDGET
        bucket.tokens -= 1.0
        return 0.0, None

    def try_admit_weight(self, endpoint: str, weight: float) -> tuple[float, HoldReason | None]:
        """Admit one request outside the probe schedule (a stream's REST book snapshot) that
        costs ``weight`` against every documented limit covering ``endpoint``, or say how long
        to wait and why. Rate-limit and ban pauses hold it like a probe; it takes no schedule
        token, but its weight counts in the same budget windows, so probes and snapshots
        together never exceed ``weight_budget`` of any limit.

        Returns:
            ``(0.0, None)`` when admitted (counted: send it now); else ``(seconds, reason)``.

        Raises:
            ValueError: ``weight`` is not positive, or exceeds a window's whole cap (it could
                never be admitted: the exchange's budget is too small for the request).
        """
        if not weight > 0:
            raise ValueError(f"request weight must be positive, got {weight!r}")
        covering = self._covering(endpoint)
        for log in covering:
            if weight > log.window.cap + _EPSILON:
                raise ValueError(
                    f"a request of weight {weight:g} exceeds the budget of {log.window.cap:g} "
                    f"per {log.window.span_seconds:g}s ({log.window.rule.name} "
                    f"{log.window.rule.source}); raise weight_budget"
                )
        paused = self.pause.remaining()
        if paused > 0:
            return paused, HoldReason.PAUSED
        wait = self._spend(covering, weight, self._monotonic())
        if wait > 0:
            return wait, HoldReason.BUDGET
        return 0.0, None

    def _covering(self, endpoint: str) -> list[_WindowLog]:
        return [log for log in self._logs if log.window.rule.applies_to(endpoint)]

    @staticmethod
    def _spend(covering: list[_WindowLog], weight: float, now: float) -> float:
        """Count ``weight`` in every covering window if it fits all of them (0.0), else
        count nothing and return the seconds until it would fit."""
        wait = 0.0
        for log in covering:
            log.expire(now)
            wait = max(wait, log.wait(weight, now))
        if wait > 0:
            return wait
        for log in covering:
            log.record(weight, now)
        return 0.0

    def usage(self) -> list[tuple[BudgetWindow, float]]:
        """Each enforced window with the weight sent in it up to now."""
        now = self._monotonic()
        for log in self._logs:
            log.expire(now)
        return [(log.window, log.total) for log in self._logs]

    @staticmethod
    def _refill(bucket: _Bucket, now: float) -> None:
        capacity = 1.0 + CONFIRMATION_PROBES
        gained = (now - bucket.updated) / bucket.interval
        bucket.tokens = min(capacity, bucket.tokens + max(gained, 0.0))
        bucket.updated = now
