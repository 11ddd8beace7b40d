"""Kraken spot: every documented rate-limit, lockout, nonce, unavailable/maintenance and busy
answer, with the verdict the profile must give it.

Sources: https://docs.kraken.com/exchange/guides/general/errors [KR-ERRORS],
https://docs.kraken.com/exchange/guides/rest/introduction [KR-REST-INTRO] (errors in the body's
``error`` array as ``<E|W><category>:<message>``; HTTP status "generally not used"; non-200 means
the request did not reach Kraken), https://support.kraken.com/articles/360001491786-api-error-
messages [KR-SUPPORT-ERR], https://support.kraken.com/articles/206548367-what-are-the-api-rate-
limits- [KR-SUPPORT-RL], https://docs.kraken.com/api/docs/rest-api/get-system-status/
[KR-STATUS] and ccxt's exception map (``kraken.py``) [CCXT-KR].
"""

from __future__ import annotations

import pytest

from exporter.profiles.base import ErrorKind, Result
from tests.exporter.test_error_dialect_common import Answer, check, ids, uncovered

KR_ERRORS = "https://docs.kraken.com/exchange/guides/general/errors"
KR_INTRO = "https://docs.kraken.com/exchange/guides/rest/introduction"
KR_SUPPORT_ERR = "https://support.kraken.com/articles/360001491786-api-error-messages"
KR_SUPPORT_RL = "https://support.kraken.com/articles/206548367-what-are-the-api-rate-limits-"
KR_STATUS = "https://docs.kraken.com/api/docs/rest-api/get-system-status/"
CCXT_KR = "ccxt kraken.py exceptions"

A, R = ErrorKind, Result


def err(*entries: str) -> dict[str, list[str]]:
    """An errors-only body [KR-REST-INTRO]."""
    return {"error": list(entries)}


def status(state: str) -> dict[str, object]:
    """A SystemStatus body [KR-STATUS]."""
    return {"error": [], "result": {"status": state, "timestamp": "2023-07-06T18:52:00Z"}}


ANSWERS = [
    # --- rate limits and lockout (HTTP 200: the status is not used)
    Answer("EAPI rate limit", 200, err("EAPI:Rate limit exceeded"), R.RATE_LIMITED,
           "EAPI:Rate limit exceeded", A.RATE_LIMIT,
           f"{KR_ERRORS}; {CCXT_KR}; {KR_SUPPORT_RL} (a few seconds or longer)", backoff=15.0),
    Answer("EGeneral too many requests", 200, err("EGeneral:Too many requests"),
           R.RATE_LIMITED, "EGeneral:Too many requests", A.RATE_LIMIT,
           f"{KR_ERRORS}; {CCXT_KR}"),
    Answer("EOrder rate limit", 200, err("EOrder:Rate limit exceeded"), R.RATE_LIMITED,
           "EOrder:Rate limit exceeded", A.RATE_LIMIT, f"{KR_ERRORS}; {CCXT_KR}"),
    Answer("temporary lockout", 200, err("EGeneral:Temporary lockout"), R.BANNED,
           "EGeneral:Temporary lockout", A.BAN, f"{KR_ERRORS} (typically a few minutes)",
           backoff=300.0),
    # --- nonce (Kraken's timestamp analogue)
    Answer("invalid nonce", 200, err("EAPI:Invalid nonce"), R.API_ERROR, "EAPI:Invalid nonce",
           A.TIMESTAMP, f"{KR_ERRORS}; {CCXT_KR}"),
    # --- unavailable, busy, market modes
    Answer("service unavailable", 200, err("EService:Unavailable"), R.API_ERROR,
           "EService:Unavailable", A.BUSY, f"{CCXT_KR} (ExchangeNotAvailable)"),
    Answer("service busy", 200, err("EService:Busy"), R.API_ERROR, "EService:Busy", A.BUSY,
           CCXT_KR),
    Answer("cancel_only mode", 200, err("EService:Market in cancel_only mode"), R.MAINTENANCE,
           "EService:Market in cancel_only mode", A.MAINTENANCE, CCXT_KR),
    Answer("post_only mode", 200, err("EService:Market in post_only mode"), R.MAINTENANCE,
           "EService:Market in post_only mode", A.MAINTENANCE, CCXT_KR),
    Answer("non-200 did not reach Kraken", 520, b"<html>520</html>", R.HTTP_ERROR, None, None,
           f"{KR_INTRO}; ccxt kraken.py (520 ExchangeNotAvailable)"),
    # --- the documented format: detail after another colon; warnings are not failures
    Answer("error with detail", 200, err("EGeneral:Invalid arguments:ordertype"), R.API_ERROR,
           "EGeneral:Invalid arguments", A.REQUEST, f"{KR_INTRO}; {KR_SUPPORT_ERR}"),
    Answer("rate limit with detail", 200, err("EAPI:Rate limit exceeded:extra"),
           R.RATE_LIMITED, "EAPI:Rate limit exceeded", A.RATE_LIMIT,
           f"{KR_INTRO} (<E|W><category>:<message> plus detail)"),
    Answer("warning before the error", 200, err("WGeneral:Example warning", "EService:Busy"),
           R.API_ERROR, "EService:Busy", A.BUSY, f"{KR_INTRO} (severity W vs E)"),
    # --- maintenance: the status endpoint reports it (a correct answer: ok)
    Answer("status maintenance", 200, status("maintenance"), R.OK, None, None, KR_STATUS,
           endpoint="status", maintenance=True),
    Answer("status cancel_only", 200, status("cancel_only"), R.OK, None, None, KR_STATUS,
           endpoint="status", maintenance=True),
    Answer("status post_only", 200, status("post_only"), R.OK, None, None, KR_STATUS,
           endpoint="status", maintenance=True),
    Answer("status limit_only", 200, status("limit_only"), R.OK, None, None,
           f"{KR_STATUS} (REST client docs list limit_only)", endpoint="status",
           maintenance=True),
    Answer("status online", 200, status("online"), R.OK, None, None, KR_STATUS,
           endpoint="status", maintenance=False),
]  # fmt: skip


@pytest.mark.parametrize("answer", ANSWERS, ids=ids(ANSWERS))
def test_kraken_error_answer(answer: Answer) -> None:
    check("kraken", answer)


def test_every_documented_kraken_answer_has_a_row() -> None:
    assert uncovered("kraken", ANSWERS) == set()
