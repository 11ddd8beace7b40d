"""What the exporter's error codes, HTTP statuses and probe results mean, for diagnosis.

The exporter counts the exchange's own error code in ``exchange_api_errors_total{code}`` (Binance
``code``, Bybit ``retCode``, OKX ``code``, Kraken error string, Coinbase HTTP status; anything
undocumented is ``other``), HTTP statuses in ``exchange_api_http_responses_total{code}`` and probe
outcomes in ``exchange_api_requests_total{result}``. This table classifies them so the rules can
tell, for example, a rate limit (Binance -1003, Bybit 10006, OKX 50011) from clock skew (-1021,
10002, 50102) from a key/IP-whitelist problem (-2015, 10010, 50110) from an exchange-side
failure (-1007 "execution status unknown", 10016, 50001 maintenance). Transport failures are
split like blackbox_exporter's: ``dns_error`` (class ``dns``), ``tls_error`` (class ``tls``) and
``connect_error`` (refused, reset, unreachable, the egress proxy refused: class ``network``);
DNS and TLS failures point at the path (root cause ``network``), not at the exchange's API.

Facts from shared/reference/exchange-api-facts.md (Binance errors.md / rest-api.md, Bybit v5
error.mdx / rate-limit.mdx, OKX docs-v5 error codes, Kraken errors guide, Coinbase rate limits).
``tests/receiver/diagnosis/test_diagnosis_rules.py`` checks every code in the exporter's profile
tables is known here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CodeClass = Literal[
    "rate_limit",
    "ban",
    "waf",
    "timestamp",
    "auth",
    "exchange_error",
    "maintenance",
    "request",
    "network",
    "dns",
    "tls",
    "bad_response",
    "ok",
    "unknown",
]

#: Root cause category a dominant class points at (``None``: does not decide the category).
CLASS_CATEGORY: dict[str, str | None] = {
    "rate_limit": "rate_limit",
    "ban": "ip_ban",
    "waf": "ip_ban",
    "timestamp": "clock_skew",
    "auth": "auth",
    "exchange_error": "partial_outage",
    "maintenance": "maintenance",
    "request": None,
    "network": None,  # exchange-side or our side: decided by the other exchanges' state
    # Name resolution fails (our resolver or the exchange's DNS): the path, not the API.
    "dns": "network",
    # The handshake fails (a TLS-inspecting middlebox, an untrusted or expired certificate, a
    # wrong server name): the path or our TLS settings, not the API.
    "tls": "network",
    "bad_response": None,
    "ok": None,
    "unknown": None,
}


@dataclass(frozen=True)
class CodeInfo:
    """Classification of one code: its class and a short meaning for messages."""

    cls: CodeClass
    meaning: str


_RL: CodeClass = "rate_limit"
_TS: CodeClass = "timestamp"

#: Exchange error codes (codes do not collide between Binance, Bybit, OKX and Kraken).
ERROR_CODES: dict[str, CodeInfo] = {
    # Binance [BN-ERR]
    "-1000": CodeInfo("exchange_error", "Binance UNKNOWN error"),
    "-1001": CodeInfo("exchange_error", "Binance DISCONNECTED (internal error)"),
    "-1002": CodeInfo("auth", "Binance UNAUTHORIZED"),
    "-1003": CodeInfo(_RL, "Binance TOO_MANY_REQUESTS (request weight per IP)"),
    "-1007": CodeInfo("exchange_error", "Binance backend TIMEOUT: execution status unknown"),
    "-1008": CodeInfo("exchange_error", "Binance SERVER_BUSY"),
    "-1015": CodeInfo(_RL, "Binance TOO_MANY_ORDERS"),
    "-1016": CodeInfo("request", "Binance SERVICE_SHUTTING_DOWN (the endpoint is retired)"),
    "-1021": CodeInfo(_TS, "Binance INVALID_TIMESTAMP (outside recvWindow)"),
    "-1022": CodeInfo("auth", "Binance INVALID_SIGNATURE"),
    "-1100": CodeInfo("request", "Binance ILLEGAL_CHARS"),
    "-1102": CodeInfo("request", "Binance mandatory parameter missing"),
    "-1121": CodeInfo("request", "Binance BAD_SYMBOL"),
    "-1131": CodeInfo("request", "Binance BAD_RECV_WINDOW (recvWindow > 60000: a parameter error)"),
    "-2014": CodeInfo("auth", "Binance BAD_API_KEY_FMT"),
    "-2015": CodeInfo("auth", "Binance REJECTED_MBX_KEY (invalid key, IP or permissions)"),
    # Bybit v5 [BY-ERR, BY-RL]
    "10000": CodeInfo("exchange_error", "Bybit server timeout"),
    "10001": CodeInfo("request", "Bybit parameter error"),
    "10002": CodeInfo(_TS, "Bybit request time outside recv_window"),
    "10003": CodeInfo("auth", "Bybit invalid API key"),
    "10004": CodeInfo("auth", "Bybit signature error"),
    "10005": CodeInfo("auth", "Bybit permission denied"),
    "10006": CodeInfo(_RL, "Bybit too many visits (API rate limit)"),
    "10009": CodeInfo("auth", "Bybit service restricted (region)"),
    "10010": CodeInfo("auth", "Bybit unmatched IP (key IP whitelist)"),
    "10016": CodeInfo("exchange_error", "Bybit server error"),
    "10018": CodeInfo(_RL, "Bybit IP rate limit exceeded"),
    "33004": CodeInfo("auth", "Bybit API key expired"),
    # OKX v5 [OKX-ERR]
    "50001": CodeInfo("maintenance", "OKX service temporarily unavailable"),
    "50004": CodeInfo("exchange_error", "OKX endpoint request timeout"),
    "50011": CodeInfo(_RL, "OKX rate limit reached"),
    "50013": CodeInfo("exchange_error", "OKX systems busy"),
    "50014": CodeInfo("request", "OKX required parameter empty"),
    "50026": CodeInfo("exchange_error", "OKX system error"),
    "50030": CodeInfo("auth", "OKX no permission for this endpoint"),
    "50061": CodeInfo(_RL, "OKX sub-account order rate limit"),
    "50100": CodeInfo("auth", "OKX API frozen"),
    "50101": CodeInfo("auth", "OKX key does not match environment"),
    "50102": CodeInfo(_TS, "OKX timestamp request expired"),
    "50105": CodeInfo("auth", "OKX passphrase incorrect"),
    "50110": CodeInfo("auth", "OKX IP not in whitelist"),
    "50111": CodeInfo("auth", "OKX invalid OK-ACCESS-KEY"),
    "50112": CodeInfo(_TS, "OKX invalid OK-ACCESS-TIMESTAMP"),
    "50113": CodeInfo("auth", "OKX invalid signature"),
    "50120": CodeInfo("auth", "OKX key lacks permission"),
    "51001": CodeInfo("request", "OKX instrument does not exist"),
    # Kraken [KR-ERRORS, CCXT-KR]
    "EAPI:Rate limit exceeded": CodeInfo(_RL, "Kraken rate limit"),
    "EGeneral:Too many requests": CodeInfo(_RL, "Kraken too many requests"),
    "EOrder:Rate limit exceeded": CodeInfo(_RL, "Kraken order rate limit"),
    "EGeneral:Temporary lockout": CodeInfo("ban", "Kraken temporary lockout"),
    "EAPI:Invalid nonce": CodeInfo(_TS, "Kraken invalid nonce"),
    "EAPI:Invalid key": CodeInfo("auth", "Kraken invalid key"),
    "EAPI:Invalid signature": CodeInfo("auth", "Kraken invalid signature"),
    "EGeneral:Permission denied": CodeInfo("auth", "Kraken permission denied"),
    "EService:Unavailable": CodeInfo("exchange_error", "Kraken service unavailable"),
    "EService:Busy": CodeInfo("exchange_error", "Kraken service busy"),
    "EService:Market in cancel_only mode": CodeInfo("maintenance", "Kraken cancel-only mode"),
    "EService:Market in post_only mode": CodeInfo("maintenance", "Kraken post-only mode"),
    "EQuery:Unknown asset pair": CodeInfo("request", "Kraken unknown asset pair"),
    "EGeneral:Invalid arguments": CodeInfo("request", "Kraken invalid arguments"),
    "EGeneral:Unknown method": CodeInfo("request", "Kraken unknown method"),
}


def describe_error_code(exchange: str | None, code: str) -> CodeInfo:
    """Classify a ``code`` label of ``exchange_api_errors_total`` for ``exchange``.

    Coinbase Exchange has no codes of its own: its label is the HTTP status, classified like
    :func:`describe_http_status`.
    """
    if (exchange or "").lower() == "coinbase" and code.isdigit():
        return describe_http_status(exchange, code)
    info = ERROR_CODES.get(code)
    if info is not None:
        return info
    if code == "other":
        return CodeInfo("unknown", "undocumented error code")
    return CodeInfo("unknown", "unknown code")


def describe_http_status(exchange: str | None, status: str) -> CodeInfo:
    """Classify an HTTP status (``code`` label of ``exchange_api_http_responses_total``)."""
    ex = (exchange or "").lower()
    if status == "418":
        return CodeInfo("ban", "HTTP 418: IP auto-banned after ignoring 429s")
    if status == "429":
        return CodeInfo("rate_limit", "HTTP 429: request rate limit broken")
    if status == "403":
        if ex == "bybit":
            return CodeInfo("ban", "HTTP 403: Bybit IP rate limit ('access too frequent', ≥10 min)")
        if ex == "binance":
            return CodeInfo("waf", "HTTP 403: Binance WAF rule violated")
        if ex == "coinbase":
            return CodeInfo("auth", "HTTP 403: forbidden (key permissions or IP)")
        return CodeInfo("waf", "HTTP 403: forbidden (WAF, region or IP restriction)")
    if status == "401":
        return CodeInfo("auth", "HTTP 401: unauthorized")
    if status in ("404", "410"):
        return CodeInfo("request", f"HTTP {status}: path not found (API change?)")
    if status.startswith("5") and len(status) == 3:
        return CodeInfo("exchange_error", f"HTTP {status}: exchange-side error, status unknown")
    if status.startswith("4") and len(status) == 3:
        return CodeInfo("request", f"HTTP {status}: request rejected")
    return CodeInfo("unknown", f"HTTP {status}")


#: Probe results of ``exchange_api_requests_total`` → class.
RESULT_CLASSES: dict[str, CodeInfo] = {
    "ok": CodeInfo("ok", "succeeded"),
    "timeout": CodeInfo("network", "timed out"),
    "dns_error": CodeInfo("dns", "host name did not resolve"),
    "connect_error": CodeInfo(
        "network", "connection failed (refused, reset, unreachable, or the proxy refused)"
    ),
    "tls_error": CodeInfo("tls", "TLS handshake failed (certificate, server name, middlebox)"),
    "http_error": CodeInfo("exchange_error", "HTTP error status"),
    "rate_limited": CodeInfo("rate_limit", "rate-limited"),
    "banned": CodeInfo("ban", "IP banned"),
    "api_error": CodeInfo("unknown", "error in the exchange's envelope"),
    "bad_response": CodeInfo("bad_response", "body not as documented"),
    "maintenance": CodeInfo("maintenance", "maintenance answer"),
}


def describe_result(result: str) -> CodeInfo:
    """Classify a probe ``result`` label."""
    return RESULT_CLASSES.get(result, CodeInfo("unknown", result))
