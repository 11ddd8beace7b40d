"""The check loop of one monitored key: one signed key-info call per interval, admitted by the
exchange's probe gate, classified by the exchange's :class:`~exporter.keys.exchanges.KeyApi`,
recorded in ``exchange_api_key_*`` and ``/status``.

Every call passes :meth:`exporter.admission.ProbeAdmission.try_admit_weight` under the name
``api_key``: it waits out rate-limit and ban pauses and counts in the same budget windows as the
probes, so probes, book snapshots and key checks together never exceed ``weight_budget`` of any
documented limit. An answer that says our IP is over a per-IP limit (Binance 429/418, Bybit HTTP
403) pauses the whole exchange like a probe's would; per-key or per-account limits only delay
the next check of that key.

The exchange's message is kept (capped) for ``/status`` and the logs after every credential
value is scrubbed out of it: Bybit echoes the signed string, which contains the API key.
"""

from __future__ import annotations

import asyncio
import logging
import random

import httpx

from exporter.clock import Clock
from exporter.keys.exchanges import KEY_ENDPOINT, KeyApi
from exporter.keys.metrics import KeyMetrics
from exporter.keys.model import Credentials, KeyResult, KeyVerdict
from exporter.keys.settings import ApiKeyConfig
from exporter.keys.status import KeyStatus
from exporter.metrics import ExporterMetrics
from exporter.profiles import Profile, Result
from exporter.state import ExchangeState

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
"""Largest key-info answer read (they are under 2 KiB)."""

REDACTED = "<redacted>"


def scrub(text: str, credentials: Credentials) -> str:
    """``text`` with every credential value (key, secret, passphrase, private key) replaced by
    ``<redacted>``."""
    for value in credentials.values():
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class KeyProber:
    """Checks one key until cancelled.

    Args:
        exchange: the exchange's configured name (``exchange`` label).
        config: the key's config (``name`` is the ``key`` label).
        base_url: where the key-info call goes (the key's ``base_url`` or the exchange's).
        api: the exchange's key API, one instance per key (Kraken keeps its nonce there).
        profile: the exchange's profile (its default rate-limit and ban pauses).
        state: the exchange's shared state (probe gate, rate-limit pause).
        metrics: the exporter's metrics.
        status: the key's ``/status`` record (kept across reloads).
        client: the HTTP client.
        clock: the time source.
        rng: jitter for the first check.
    """

    def __init__(
        self,
        exchange: str,
        config: ApiKeyConfig,
        base_url: str,
        api: KeyApi,
        profile: Profile,
        state: ExchangeState,
        metrics: ExporterMetrics,
        status: KeyStatus,
        client: httpx.AsyncClient,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.exchange = exchange
        self.config = config
        self.base_url = base_url
        self.api = api
        self.profile = profile
        self.state = state
        self.metrics = metrics
        self.status = status
        self.client = client
        self.clock = clock
        self._rng = rng or random.Random()

    @property
    def _keys(self) -> KeyMetrics:
        return self.metrics.keys

    async def run(self) -> None:
        """Check every ``interval`` (the first within a few seconds) until cancelled."""
        loop = asyncio.get_running_loop()
        interval = self.config.interval
        next_at = loop.time() + self._rng.uniform(0.0, min(interval, 5.0))
        while True:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            wait, reason = self.state.admission.try_admit_weight(KEY_ENDPOINT, self.api.weight)
            if wait > 0:
                if reason is not None:
                    self.metrics.probes_held.labels(self.exchange, reason.value).inc()
                next_at = loop.time() + wait + self._rng.uniform(0.0, 1.0)
                continue
            try:
                verdict = await self.check()
            except Exception:  # a bug must not silence the key's checks
                log.exception("key check of %s/%s failed", self.exchange, self.config.name)
                verdict = KeyVerdict(KeyResult.OTHER, message="internal error")
                self.record(verdict)
            next_at += interval
            if verdict.result is KeyResult.RATE_LIMITED and verdict.retry_after:
                next_at = max(next_at, loop.time() + verdict.retry_after)
            if next_at < loop.time():
                next_at = loop.time() + interval

    async def check(self) -> KeyVerdict:
        """Send one signed key-info call now (the caller has admitted it), classify and record
        the answer; return the verdict (message scrubbed)."""
        credentials = self.config.credentials
        now = self.clock.time()
        try:
            request = self.api.sign(credentials, self.base_url, now, self.config.recv_window_ms())
        except Exception as exc:  # never echo the exception text: it may quote a secret
            verdict = KeyVerdict(KeyResult.OTHER, message=f"cannot sign: {type(exc).__name__}")
            self.record(verdict)
            return verdict
        try:
            async with self.client.stream(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.body or None,
                timeout=self.config.effective_timeout(),
            ) as response:
                body = await _read_capped(response)
                status, headers = response.status_code, response.headers
        except httpx.TimeoutException:
            verdict = KeyVerdict(KeyResult.OTHER, message="timeout")
        except httpx.HTTPError as exc:
            verdict = KeyVerdict(KeyResult.OTHER, message=f"transport error: {type(exc).__name__}")
        except _BodyTooLargeError:
            verdict = KeyVerdict(KeyResult.OTHER, message=f"answer over {MAX_BODY_BYTES} bytes")
        else:
            verdict = self.api.classify(status, headers, body, self.status.facts, now)
        verdict.message = scrub(verdict.message, credentials)[:200]
        if verdict.error_code is not None:
            verdict.error_code = scrub(verdict.error_code, credentials)[:80]
        self.record(verdict)
        return verdict

    def record(self, verdict: KeyVerdict) -> None:
        """Update metrics, ``/status``, the rate-limit pause and the log for one verdict."""
        name = self.config.name
        result = verdict.result
        ok = result is KeyResult.OK
        status = self.status
        previous = status.last_result
        now = self.clock.time()
        facts = verdict.facts if ok else None
        self._keys.record(self.exchange, name, result, facts)
        status.last_result = result
        status.last_check_at = now
        if ok:
            status.last_success_at = now
            status.consecutive_failures = 0
            status.last_error_code = None
            status.last_message = ""
            if facts is not None:
                status.facts = facts
        else:
            status.consecutive_failures += 1
            status.last_error_code = verdict.error_code
            status.last_message = verdict.message
        if result is KeyResult.RATE_LIMITED and verdict.ip_wide:
            seconds = verdict.retry_after
            kind = Result.BANNED if verdict.banned else Result.RATE_LIMITED
            if seconds is None:
                seconds = self.profile.backoff_seconds.get(kind, 60.0)
            gate = self.state.gate
            self.metrics.backoff_until.labels(self.exchange).set(
                gate.block(seconds, ban=verdict.banned)
            )
            self.metrics.ban_until.labels(self.exchange).set(gate.ban_until)
        if result is not previous:
            if ok:
                log.info("API key %s/%s: accepted", self.exchange, name)
            else:
                log.warning(
                    "API key %s/%s: %s (code %s) %s",
                    self.exchange,
                    name,
                    result.value,
                    verdict.error_code,
                    verdict.message,
                )


class _BodyTooLargeError(Exception):
    """The answer is longer than :data:`MAX_BODY_BYTES`."""


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)
