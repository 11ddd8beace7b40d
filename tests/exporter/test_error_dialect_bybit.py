"""Bybit v5: every documented rate-limit, ban, timestamp, busy and internal-error answer, with
the verdict the profile must give it.

Sources: bybit-exchange/docs ``docs/v5/error.mdx`` [BY-ERR], ``docs/v5/rate-limit/
rate-limit.mdx`` [BY-RL], ``docs/v5/guide.mdx`` [BY-GUIDE], ``docs/v5/system-status.mdx``
[BY-STATUS]. Business errors come with HTTP 200 and ``retCode != 0`` (ccxt ``handle_errors``
[CCXT-BY]).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from exporter.profiles import get_profile
from exporter.profiles.base import ErrorKind, Result
from tests.exporter.test_error_dialect_common import Answer, check, ids, raw, uncovered

BY_ERR = "bybit docs/v5/error.mdx"
BY_RL = "bybit docs/v5/rate-limit/rate-limit.mdx"
BY_STATUS = "bybit docs/v5/system-status.mdx"

A, R = ErrorKind, Result


def envelope(code: int, message: str) -> dict[str, Any]:
    """The v5 envelope with an error [BY-GUIDE]."""
    return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": 1}


ANSWERS = [
    # --- rate limits and the IP ban
    Answer("10006 API rate limit", 200,
           envelope(10006, "Too many visits. Exceeded the API Rate Limit."), R.RATE_LIMITED,
           "10006", A.RATE_LIMIT, f"{BY_ERR} 10006; {BY_RL}", backoff=1.0),
    Answer("10006 guide wording", 200, envelope(10006, "Too many visits!"), R.RATE_LIMITED,
           "10006", A.RATE_LIMIT, f"{BY_RL} (example retMsg)"),
    Answer("10018 IP rate limit (deprecated)", 200,
           envelope(10018, "Exceeded the IP Rate Limit"), R.RATE_LIMITED, "10018",
           A.RATE_LIMIT, f"{BY_ERR} 10018 (struck through)"),
    Answer("403 access too frequent", 403, b"access too frequent", R.BANNED, None, A.BAN,
           f"{BY_RL} (IP limit 600/5 s: 403, wait at least 10 minutes); {BY_ERR} 403",
           backoff=600.0),
    Answer("429 system frequency protection", 429, b"System level frequency protection",
           R.RATE_LIMITED, None, A.RATE_LIMIT, f"{BY_ERR} HTTP 429"),
    # --- timestamp
    Answer("10002 recv window", 200,
           envelope(10002, "The request time exceeds the time window range."), R.API_ERROR,
           "10002", A.TIMESTAMP, f"{BY_ERR} 10002"),
    # --- busy and internal errors
    Answer("10000 server timeout", 200, envelope(10000, "Server Timeout"), R.API_ERROR,
           "10000", A.BUSY, f"{BY_ERR} 10000"),
    Answer("10016 server error", 200, envelope(10016, "Server error."), R.API_ERROR, "10016",
           A.INTERNAL, f"{BY_ERR} 10016"),
    # retCode 429 is the server's load, not our rate (was: no kind); its code is not in the
    # profile's table (the receiver has no entry for it), so it is labelled ``other``.
    Answer("retCode 429 high load", 200,
           envelope(429, "The trading service is experiencing a high server load"),
           R.API_ERROR, "429", A.BUSY, f"{BY_ERR} retCode 429", label="other"),
    # --- bodies with a message and no retCode (error statuses): the documented messages
    Answer("msg only: too many visits", 400,
           {"retMsg": "Too many visits. Exceeded the API Rate Limit."}, R.RATE_LIMITED,
           "10006", A.RATE_LIMIT, f"{BY_ERR} 10006 message"),
    Answer("msg only: IP rate limit", 400, {"retMsg": "Exceeded the IP Rate Limit"},
           R.RATE_LIMITED, "10018", A.RATE_LIMIT, f"{BY_ERR} 10018 message"),
    Answer("msg only: access too frequent", 400, {"retMsg": "access too frequent"}, R.BANNED,
           None, A.BAN, f"{BY_RL} (403 'access too frequent')"),
    Answer("msg only: recv window", 400,
           {"retMsg": "The request time exceeds the time window range."}, R.API_ERROR,
           "10002", A.TIMESTAMP, f"{BY_ERR} 10002 message"),
    Answer("msg only: server timeout", 504, {"retMsg": "Server Timeout"}, R.API_ERROR,
           "10000", A.BUSY, f"{BY_ERR} 10000 message"),
    Answer("msg only: server error", 500, {"retMsg": "Server error."}, R.API_ERROR, "10016",
           A.INTERNAL, f"{BY_ERR} 10016 message"),
    Answer("msg only: high load", 503,
           {"retMsg": "The trading service is experiencing a high server load"}, R.API_ERROR,
           None, A.BUSY, f"{BY_ERR} retCode 429 message"),
    # --- maintenance: the status endpoint reports it (a correct answer: ok)
    Answer("status: ongoing record", 200,
           {"retCode": 0, "retMsg": "", "result": {"list": [
               {"id": "1", "title": "t06", "state": "ongoing", "begin": "1751596902000",
                "end": "1751597011000"}]}, "retExtInfo": {}, "time": 1},
           R.OK, None, None, f"{BY_STATUS} (state ongoing)", endpoint="status",
           maintenance=True),
]  # fmt: skip


@pytest.mark.parametrize("answer", ANSWERS, ids=ids(ANSWERS))
def test_bybit_error_answer(answer: Answer) -> None:
    check("bybit", answer)


def test_every_documented_bybit_answer_has_a_row() -> None:
    assert uncovered("bybit", ANSWERS) == set()


def test_10006_waits_until_the_documented_reset_timestamp() -> None:
    """With ``X-Bapi-Limit-Status: 0`` the wait is until ``X-Bapi-Limit-Reset-Timestamp`` (ms)
    [BY-RL: bybit docs/v5/rate-limit/rate-limit.mdx]."""
    reset_ms = int((time.time() + 3.0) * 1000)
    headers = httpx.Headers(
        {
            "X-Bapi-Limit": "10",
            "X-Bapi-Limit-Status": "0",
            "X-Bapi-Limit-Reset-Timestamp": str(reset_ms),
        }
    )
    body = raw(envelope(10006, "Too many visits. Exceeded the API Rate Limit."))
    verdict = get_profile("bybit").classify("ticker", 200, headers, body)
    assert verdict.result is Result.RATE_LIMITED
    assert verdict.retry_after == pytest.approx(3.0, abs=0.5)
