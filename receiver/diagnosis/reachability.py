"""Whether each LLM provider answers at all: so that a page never waits for one that is hung.

A critical page waits for its diagnosis at most ``LLM_CRITICAL_BUDGET_SECONDS``
(:mod:`receiver.updates`). That wait is worth it only when the provider the chain asks first
can answer within it; a provider that accepts connections and never answers (hung), or that
cannot be reached, would cost every page the whole budget for nothing. So each provider's
reachability is kept here, from two sources:

- every LLM call (:meth:`LLMReachability.note`, from the engine): a timeout or a connection
  failure marks the provider unreachable; any HTTP answer (a diagnosis, an error status, a
  malformed body) marks it reachable;
- a probe every ``LLM_PROBE_INTERVAL_SECONDS`` (default 30, 0 = off) while no call has said
  anything more recent: ``GET {base_url}/models`` with the provider's key, the OpenAI API's
  model list ("List models", https://platform.openai.com/docs/api-reference/models/list),
  which costs no tokens. Any HTTP status counts as reachable (a proxy without that route
  answers 404 quickly, which is all this asks); no answer within
  :data:`PROBE_TIMEOUT_SECONDS` or a connection failure counts as unreachable.

The worker asks :meth:`LLMReachability.unreachable` before it waits: a provider never judged yet
is given the benefit of the doubt. The state is exported as
``alert_receiver_llm_reachable{provider}`` (1, 0; absent until judged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import Gauge

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 5.0
"""Longest a probe waits for an answer (a healthy API lists its models in well under a second)."""

#: ``() -> True`` (answered) / ``False`` (timed out, unreachable): one provider's probe.
Probe = Callable[[], Awaitable[bool]]


class LLMReachability:
    """Reachability of the LLM providers, in chain order.

    Args:
        probes: ``(provider name, probe)`` in the chain's order (primary first).
        interval: seconds between probes of a provider no call has judged since (0: no probes).
        gauge: ``alert_receiver_llm_reachable`` with a ``provider`` label (optional).
        monotonic: clock, injectable for tests.
    """

    def __init__(
        self,
        probes: Sequence[tuple[str, Probe]],
        interval: float,
        gauge: Gauge | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._probes = list(probes)
        self._interval = max(0.0, interval)
        self._gauge = gauge
        self._monotonic = monotonic or _loop_time
        self._state: dict[str, tuple[bool, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, provider: str, reachable: bool) -> None:
        """Record what a call to ``provider`` showed (True: it answered; False: it timed out or
        could not be reached). Logs a change."""
        before = self._state.get(provider)
        self._state[provider] = (reachable, self._monotonic())
        if self._gauge is not None:
            self._gauge.labels(provider).set(1 if reachable else 0)
        if before is None or before[0] != reachable:
            if reachable:
                log.info("LLM provider %s answers", provider)
            else:
                log.warning(
                    "LLM provider %s does not answer: critical pages will not wait for it",
                    provider,
                )

    def reachable(self, provider: str) -> bool | None:
        """The last verdict on ``provider`` (None: never judged)."""
        state = self._state.get(provider)
        return None if state is None else state[0]

    def unreachable(self) -> bool:
        """Whether the first provider of the chain is known not to answer (then the diagnosis
        cannot come within a page's budget: the chain waits its whole timeout first)."""
        return bool(self._probes) and self.reachable(self._probes[0][0]) is False

    async def probe_once(self) -> None:
        """Probe every provider that no call has judged within the interval, concurrently."""
        now = self._monotonic()
        due = [
            (name, probe)
            for name, probe in self._probes
            if name not in self._state or now - self._state[name][1] >= self._interval
        ]
        results = await asyncio.gather(*(probe() for _, probe in due), return_exceptions=True)
        for (name, _), result in zip(due, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                log.error("LLM probe of %s crashed: %s", name, result.__class__.__name__)
                continue
            self.note(name, result)

    def start(self) -> None:
        """Start probing in the background (no-op without providers or with interval 0)."""
        if self._task is None and self._probes and self._interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="llm-probe")

    async def stop(self) -> None:
        """Stop probing."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self._interval)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
