"""OKX v5: every documented rate-limit, timestamp, maintenance/unavailable, busy and
internal-error answer, with the verdict the profile must give it.

Sources: https://www.okx.com/docs-v5/en/#error-code-rest-api-public [OKX-ERR] (codes with
their HTTP status and message), …/#status-get-status [OKX-STATUS], and ccxt's exception map
(``okx.py`` ``exceptions``) [CCXT-OKX].
"""

from __future__ import annotations

import pytest

from exporter.profiles.base import ErrorKind, Result
from tests.exporter.test_error_dialect_common import Answer, check, ids, uncovered

OKX_ERR = "okx docs-v5 #error-code-rest-api-public"
OKX_STATUS = "okx docs-v5 #status-get-status"

RATE = "Rate limit reached. Please refer to API documentation and throttle requests accordingly."
BUSY = "Systems are busy. Please try again later."
UNAVAILABLE = "Service temporarily unavailable. Please try again later."
TIMEOUT = "API endpoint request timeout (does not mean that the request was successful or "
TIMEOUT += "failed, please check the request result)."

A, R = ErrorKind, Result


def err(code: str, message: str) -> dict[str, object]:
    """The v5 envelope with an error [OKX-ERR]."""
    return {"code": code, "msg": message, "data": []}


ANSWERS = [
    # --- rate limits
    Answer("50011 on 200", 200, err("50011", RATE), R.RATE_LIMITED, "50011", A.RATE_LIMIT,
           f"{OKX_ERR} 50011 (HTTP 200)", backoff=10.0),
    Answer("50011 on 429", 429, err("50011", "Too Many Requests"), R.RATE_LIMITED, "50011",
           A.RATE_LIMIT, f"{OKX_ERR} 50011 (HTTP 429)"),
    Answer("50061 sub-account order rate", 200,
           err("50061", "You've reached the maximum order rate limit for this account."),
           R.RATE_LIMITED, "50061", A.RATE_LIMIT, f"{OKX_ERR} 50061"),
    # --- busy on 429: the exchange's load, not our rate (was: rate_limited)
    Answer("50013 busy on 429", 429, err("50013", BUSY), R.API_ERROR, "50013", A.BUSY,
           f"{OKX_ERR} 50013 (HTTP 429); ccxt ExchangeNotAvailable"),
    # --- maintenance / unavailable
    Answer("50001 unavailable", 503, err("50001", UNAVAILABLE), R.MAINTENANCE, "50001",
           A.MAINTENANCE, f"{OKX_ERR} 50001 (HTTP 503); ccxt OnMaintenance"),
    # --- timeout, internal
    Answer("50004 endpoint timeout", 400, err("50004", TIMEOUT), R.API_ERROR, "50004", A.BUSY,
           f"{OKX_ERR} 50004 (HTTP 400)"),
    Answer("50026 system error", 500, err("50026", "System error. Try again later"),
           R.API_ERROR, "50026", A.INTERNAL, f"{OKX_ERR} 50026 (HTTP 500)"),
    # --- timestamp
    Answer("50102 timestamp expired", 401, err("50102", "Timestamp request expired."),
           R.API_ERROR, "50102", A.TIMESTAMP, f"{OKX_ERR} 50102 (HTTP 401)"),
    Answer("50112 invalid timestamp", 401, err("50112", "Invalid OK-ACCESS-TIMESTAMP."),
           R.API_ERROR, "50112", A.TIMESTAMP, f"{OKX_ERR} 50112 (HTTP 401)"),
    # --- bodies with a message and no code: the documented messages
    Answer("msg only: rate limit reached", 400, {"msg": RATE}, R.RATE_LIMITED, "50011",
           A.RATE_LIMIT, f"{OKX_ERR} 50011 message"),
    Answer("msg only: too many requests on 429", 429, {"msg": "Too Many Requests"},
           R.RATE_LIMITED, None, A.RATE_LIMIT, f"{OKX_ERR} 50011 (HTTP 429 message)"),
    Answer("msg only: order rate", 400,
           {"msg": "You've reached the maximum order rate limit for this account."},
           R.RATE_LIMITED, "50061", A.RATE_LIMIT, f"{OKX_ERR} 50061 message"),
    Answer("msg only: busy on 429", 429, {"msg": BUSY}, R.API_ERROR, "50013", A.BUSY,
           f"{OKX_ERR} 50013 (HTTP 429 message)"),
    Answer("msg only: unavailable", 503, {"msg": UNAVAILABLE}, R.MAINTENANCE, "50001",
           A.MAINTENANCE, f"{OKX_ERR} 50001 (HTTP 503 message)"),
    Answer("msg only: endpoint timeout", 400, {"msg": TIMEOUT}, R.API_ERROR, "50004", A.BUSY,
           f"{OKX_ERR} 50004 message"),
    Answer("msg only: system error", 500, {"msg": "System error. Try again later"},
           R.API_ERROR, "50026", A.INTERNAL, f"{OKX_ERR} 50026 message"),
    Answer("msg only: timestamp expired", 401, {"msg": "Timestamp request expired."},
           R.API_ERROR, "50102", A.TIMESTAMP, f"{OKX_ERR} 50102 message"),
    Answer("msg only: invalid timestamp", 401, {"msg": "Invalid OK-ACCESS-TIMESTAMP."},
           R.API_ERROR, "50112", A.TIMESTAMP, f"{OKX_ERR} 50112 message"),
    # --- maintenance: the status endpoint reports it (a correct answer: ok)
    Answer("status: ongoing record", 200,
           {"code": "0", "msg": "", "data": [
               {"begin": "1672823400000", "end": "1672823520000", "state": "ongoing",
                "serviceType": "8", "title": "Trading account system upgrade"}]},
           R.OK, None, None, f"{OKX_STATUS} (state ongoing)", endpoint="status",
           maintenance=True),
    Answer("status: nothing scheduled", 200, {"code": "0", "msg": "", "data": []}, R.OK, None,
           None, f"{OKX_STATUS} (empty data)", endpoint="status", maintenance=False),
]  # fmt: skip


@pytest.mark.parametrize("answer", ANSWERS, ids=ids(ANSWERS))
def test_okx_error_answer(answer: Answer) -> None:
    check("okx", answer)


def test_every_documented_okx_answer_has_a_row() -> None:
    assert uncovered("okx", ANSWERS) == set()
