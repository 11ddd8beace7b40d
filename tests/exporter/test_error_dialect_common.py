"""The shared machinery of the error-dialect tables (one module per exchange imports it), and
the classification flow every profile shares: code-less bodies, status overrides.

Each exchange's table lives in ``test_error_dialect_<exchange>.py``: one :class:`Answer` per
documented error answer, with the expected verdict and the exchange documentation it comes
from (e.g. binance-spot-api-docs ``errors.md`` [BN-ERR], okx.com docs-v5
#error-code-rest-api-public [OKX-ERR]).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from exporter.profiles import PROFILES, get_profile
from exporter.profiles.base import ErrorKind, MessageRule, Result, match_message


@dataclass(frozen=True)
class Answer:
    """One documented answer and the verdict it must get.

    Attributes:
        name: the row's id in test output.
        status: HTTP status.
        body: the JSON body (dumped) or raw bytes.
        result: the expected probe result.
        code: the expected ``error_code`` (None: the verdict carries none).
        kind: the expected ``error_kind`` (None: none).
        source: the exchange documentation the answer comes from.
        headers: response headers.
        endpoint: the probed endpoint.
        retry_after: the wait the verdict must carry (from ``Retry-After``), or None.
        backoff: for a rate-limit or ban answer without a wait, the profile's documented
            pause (``backoff_seconds``) the prober falls back on; None: not checked.
        maintenance: the expected ``Verdict.maintenance`` (a status endpoint's report).
        label: the expected ``code`` label of ``exchange_api_errors_total`` when it is not
            the code itself.
    """

    name: str
    status: int
    body: Any
    result: Result
    code: str | None
    kind: ErrorKind | None
    source: str
    headers: dict[str, str] = field(default_factory=dict)
    endpoint: str = "ticker"
    retry_after: float | None = None
    backoff: float | None = None
    maintenance: bool | None = None
    label: str | None = None


def raw(body: Any) -> bytes:
    """``body`` as sent on the wire."""
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def check(profile_name: str, answer: Answer) -> None:
    """Classify ``answer`` with ``profile_name`` and compare with its expectations."""
    assert answer.source.strip(), "every row cites the exchange's documentation"
    profile = get_profile(profile_name)
    verdict = profile.classify(
        answer.endpoint, answer.status, httpx.Headers(answer.headers), raw(answer.body)
    )
    got = (verdict.result, verdict.error_code, verdict.error_kind)
    assert got == (answer.result, answer.code, answer.kind), verdict
    assert verdict.retry_after == answer.retry_after
    assert verdict.maintenance == answer.maintenance
    if answer.backoff is not None:
        assert profile.backoff_seconds[answer.result] == answer.backoff
    if answer.code is not None:
        assert profile.error_label(answer.code) == (answer.label or answer.code)


def ids(answers: Iterable[Answer]) -> list[str]:
    """Row ids for ``pytest.mark.parametrize``."""
    return [a.name for a in answers]


IN_SCOPE = frozenset(
    {
        ErrorKind.RATE_LIMIT,
        ErrorKind.BAN,
        ErrorKind.TIMESTAMP,
        ErrorKind.MAINTENANCE,
        ErrorKind.BUSY,
        ErrorKind.INTERNAL,
    }
)
"""The kinds every table must cover code by code: rate limit, ban, timestamp, maintenance /
unavailable, busy and internal errors."""


def uncovered(profile_name: str, answers: Iterable[Answer], exempt: Iterable[str] = ()) -> set[str]:
    """Documented in-scope codes and message rules of the profile that no row exercises."""
    profile = get_profile(profile_name)
    rows = list(answers)
    codes = {a.code for a in rows}
    missing: set[str] = {
        code
        for code, kind in profile.error_codes.items()
        if kind in IN_SCOPE and code not in codes and code not in set(exempt)
    }
    for rule in profile.message_rules:
        if rule.kind in IN_SCOPE and not any(_matches(rule, a.body) for a in rows):
            missing.add(f"message {rule.needle!r}")
    return missing


def _matches(rule: MessageRule, body: Any) -> bool:
    if isinstance(body, bytes):
        return False
    return rule.needle in json.dumps(body).lower()


# ---------------------------------------------------------------------------------------------
# The shared flow


def test_message_rules_are_lowercase_and_sourced() -> None:
    """Needles are matched against the lowercased message, so they must be lowercase; every
    rule cites its documentation."""
    for name in PROFILES:
        for rule in get_profile(name).message_rules:
            assert rule.needle == rule.needle.lower(), (name, rule)
            assert rule.source, (name, rule)
            if rule.code is not None:
                # The code's own meaning, but for a rate-limit code whose message says ban
                # (Binance -1003 "IP banned until").
                meaning = get_profile(name).error_codes.get(rule.code)
                assert meaning == rule.kind or (meaning, rule.kind) == (
                    ErrorKind.RATE_LIMIT,
                    ErrorKind.BAN,
                ), (name, rule)


def test_match_message_keeps_rule_order_and_caps_the_scan() -> None:
    rules = (
        MessageRule("ip banned until", ErrorKind.BAN, "1"),
        MessageRule("too much request weight", ErrorKind.RATE_LIMIT, "2"),
    )
    text = "Way too much request weight used; IP banned until 1."
    assert match_message(rules, text) == rules[0]
    assert match_message(rules, "nothing") is None
    assert match_message(rules, "") is None
    assert match_message(rules, "x" * 300 + "ip banned until") is None  # beyond 200 chars


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_message_only_body_on_success_is_not_an_error(name: str) -> None:
    """A documented error message in a 2xx body without a code is not taken as an error: the
    endpoint's own reader decides (Binance's status body has a ``msg`` of its own)."""
    profile = get_profile(name)
    body = raw({"msg": "Too much request weight used", "message": "Too many requests"})
    verdict = profile.classify("ticker", 200, httpx.Headers(), body)
    assert verdict.result in (Result.BAD_RESPONSE, Result.OK)
    assert verdict.error_kind is None


def test_unknown_message_on_an_error_status_stays_http_error() -> None:
    for name in ("binance", "bybit", "okx", "kraken"):
        verdict = get_profile(name).classify(
            "ticker", 502, httpx.Headers(), raw({"msg": "gateway says no"})
        )
        assert (verdict.result, verdict.error_kind) == (Result.HTTP_ERROR, None)


def test_only_the_head_of_a_message_is_scanned() -> None:
    """Every probe is classified, so a code-less body costs a few substring tests on at most
    200 characters, however long the message: a documented text further in is not looked for
    (speed is measured by the probe benchmark, not here)."""
    rule = MessageRule("too many requests", ErrorKind.RATE_LIMIT)
    assert match_message((rule,), "Too many requests; slow down") is rule
    assert match_message((rule,), "x" * 200 + "too many requests") is None
