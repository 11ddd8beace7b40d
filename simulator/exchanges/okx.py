"""OKX v5 REST (``/okx`` prefix): public time, system status, spot ticker and order book.

Facts: envelope ``{"code": "0", "msg": "", "data": [...]}`` with a **string** code [OKX-MD,
OKX-ERR]; time [OKX-TIME]; status records [OKX-STATUS]; error codes with their HTTP status
[OKX-ERR]. No ping endpoint and no rate-limit usage headers are documented (UNVERIFIED absence).

Maintenance: ``/api/v5/system/status`` lists an ``ongoing`` record and the market-data endpoints
(ticker, books) answer HTTP 503 code ``50001`` "Service temporarily unavailable. Please try again
later." — the documented maintenance error [OKX-ERR; ccxt maps 50001 → OnMaintenance]. The time
endpoint keeps answering.

Faults: ``rate_limited`` → code ``50011`` on HTTP 429 (default) or 200 (``http_status``), both
documented [OKX-ERR]; ``Retry-After`` only when ``retry_after`` is given (not documented for OKX:
UNVERIFIED). ``api_error`` → ``{"code": "<code>", "msg": ..., "data": []}`` with the HTTP status
of :data:`API_ERRORS` for documented codes, else 200. No IP-ban answer is documented, so
``banned`` is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.bodies import BookFrame
from simulator.exchanges.base import Exchange, RequestContext, Route, fault_int, reject_params
from simulator.faults import Fault, FaultError
from simulator.market import VenueView
from simulator.responses import Header, Reply, json_reply
from simulator.specs import choice

__all__ = ["API_ERRORS", "OkxExchange"]

_MAX_SZ = 400  # sz max 400, default 1 [OKX-MD]

_ERRORS: dict[int, tuple[str, str]] = {
    401: ("50111", "Invalid OK-ACCESS-KEY."),
    429: ("50011", "Too Many Requests"),
    500: ("50026", "System error. Try again later"),
    503: ("50001", "Service temporarily unavailable. Please try again later."),
}


_RATE_LIMIT_429 = "Too Many Requests"
_RATE_LIMIT_200 = (
    "Rate limit reached. Please refer to API documentation and throttle requests accordingly."
)

API_ERRORS: dict[str, tuple[int, str]] = {
    "50001": (503, "Service temporarily unavailable. Please try again later."),
    "50004": (
        400,
        "API endpoint request timeout (does not mean that the request was successful or "
        "failed...)",  # abbreviated as in the facts file
    ),
    "50011": (429, _RATE_LIMIT_429),
    "50013": (429, "Systems are busy. Please try again later."),
    "50026": (500, "System error. Try again later"),
    "50030": (200, "No permission to use this API"),  # paraphrase: facts give no verbatim text
    "50061": (200, "You've reached the maximum order rate limit for this account."),
    "50100": (400, "API frozen, please contact customer service."),
    "50101": (401, "APIKey does not match current environment."),
    "50102": (401, "Timestamp request expired."),
    "50105": (401, 'Request header "OK-ACCESS-PASSPHRASE" incorrect.'),
    "50110": (401, "Your IP 127.0.0.1 is not included in your API key's IP whitelist."),
    "50111": (401, "Invalid OK-ACCESS-KEY."),
    "50112": (401, "Invalid OK-ACCESS-TIMESTAMP."),
    "50113": (401, "Invalid signature."),
    "50120": (200, "API key doesn't have permission"),  # paraphrase, see 50030
}
"""HTTP status and message per documented code for ``api_error`` [OKX-ERR]; 50011 is listed
with 429 (the fault's default; 200 is documented too). Unknown codes: HTTP 200,
``"Simulated error <code>."``."""


def _okx_code(value: Any) -> str | None:
    """``api_error`` ``code``: an int ≥ 0 or a string of 1–10 digits, normalised to a string."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        return value
    return None


def _body(code: str, msg: str, data: list[Any] | None = None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": [] if data is None else data}


def ticker_item(v: VenueView, ts_ms: int) -> dict[str, str]:
    """One SPOT ticker as REST ``/api/v5/market/ticker`` and the ``tickers`` channel both send
    it: every field a string, ``ts`` = generation time in ms [OKX-MD]."""
    st = v.stats
    return {
        "instType": "SPOT",
        "instId": v.venue.symbol,
        "last": v.price(v.last),
        "lastSz": v.qty(v.last_qty),
        "askPx": v.price(v.best_ask),
        "askSz": v.qty(v.ask_qty),
        "bidPx": v.price(v.best_bid),
        "bidSz": v.qty(v.bid_qty),
        "open24h": v.price(v.scaled(st.open_24h)),
        "high24h": v.price(max(v.scaled(st.high_24h), v.last)),
        "low24h": v.price(min(v.scaled(st.low_24h), v.last)),
        "volCcy24h": f"{v.volume_24h * v.scaled(st.vwap_24h):.4f}",
        "vol24h": v.qty(v.volume_24h),
        "sodUtc0": v.price(v.scaled(st.open_today)),
        "sodUtc8": v.price(v.scaled(st.sod_utc8)),
        "ts": str(ts_ms),
    }


def _status_record(state: str, begin_ms: int, end_ms: int) -> dict[str, str]:
    """One ``/api/v5/system/status`` record (the documented fields, all strings)
    [OKX-STATUS]."""
    return {
        "begin": str(begin_ms),
        "end": str(end_ms),
        "href": "",
        "preOpenBegin": "",
        "scheDesc": "",
        "serviceType": "5",
        "state": state,
        "maintType": "1",
        "env": "1",
        "system": "unified",
        "title": "Trading system maintenance",
    }


class OkxExchange(Exchange):
    """Simulated OKX v5 public REST API (see module docstring for sources)."""

    name = "okx"
    gateway_server = "cloudflare"
    json_gateway_statuses = frozenset({503})  # 50001 "Service temporarily unavailable" [OKX-ERR]

    def build_routes(self) -> dict[str, Route]:
        """Routes: ``/api/v5/public/time``, ``/api/v5/system/status``,
        ``/api/v5/market/ticker``, ``/api/v5/market/books`` [OKX-TIME, OKX-STATUS, OKX-MD]."""
        return {
            "/api/v5/public/time": Route("time", self.time),
            "/api/v5/system/status": Route("status", self.status),
            "/api/v5/market/ticker": Route("ticker", self.ticker),
            "/api/v5/market/books": Route("orderbook", self.books),
        }

    def _inst_error(self, ctx: RequestContext) -> Reply | None:
        """Missing ``instId`` → HTTP 400 code 50014; unknown → HTTP 200 code 51001. Neither
        code is in the facts file (OKX doc codes quoted from memory: UNVERIFIED)."""
        inst = ctx.query.get("instId")
        if not inst:
            return json_reply(400, _body("50014", "Parameter instId can not be empty."))
        if ctx.market_for(inst) is None:
            return json_reply(
                200,
                _body("51001", "Instrument ID, Instrument ID code, or Spread ID doesn't exist."),
            )
        return None

    # -- handlers ---------------------------------------------------------------------------
    def time(self, ctx: RequestContext) -> Reply:
        """``GET /api/v5/public/time`` → ``data[0].ts`` (ms **string**, skewed) [OKX-TIME]."""
        return json_reply(200, _body("0", "", [{"ts": str(ctx.server_ms)}]))

    def status(self, ctx: RequestContext) -> Reply:
        """``GET /api/v5/system/status[?state=...]`` → ``data: []`` normally; under
        ``maintenance`` (the fault, or inside a window announced with
        ``/_control/maintenance``) one ``ongoing`` record; before an announced window one
        ``scheduled`` record. ``begin``/``end`` are ms strings, ``serviceType`` "5" (trading
        service), ``maintType`` "1" (scheduled) [OKX-STATUS]. A ``state`` filter other than the
        record's hides it (the default filter shows scheduled, ongoing and pre_open)."""
        data: list[dict[str, str]] = []
        state = ctx.query.get("state")
        if ctx.maintenance and state in (None, "", "ongoing"):
            assert ctx.fault is not None
            begin = int(ctx.fault.created_at * 1000)
            end = begin + int((ctx.fault.duration_s or 3600) * 1000)
            data.append(_status_record("ongoing", begin, end))
        window = ctx.scheduled_window()
        if window is not None and state in (None, "", "scheduled"):
            begin = int(window.starts_at * 1000)
            data.append(_status_record("scheduled", begin, int(window.ends_at * 1000)))
        return json_reply(200, _body("0", "", data))

    def ticker(self, ctx: RequestContext) -> Reply:
        """``GET /api/v5/market/ticker?instId=BTC-USDT`` → one SPOT ticker, every field a string,
        ``ts`` = ms string (lags under ``stale``) [OKX-MD]."""
        error = self._inst_error(ctx)
        if error is not None:
            return error
        v = ctx.view(ctx.market_for(ctx.query["instId"]))
        return json_reply(200, _body("0", "", [ticker_item(v, ctx.data_ms)]))

    def books(self, ctx: RequestContext) -> Reply:
        """``GET /api/v5/market/books?instId=BTC-USDT&sz=N`` → ``data[0]`` ``{"asks": [[px, sz,
        "0", orderCount]], "bids": ..., "ts": ms string}``; ``sz`` 1–400, default 1 [OKX-MD].
        Invalid ``sz`` → HTTP 400 code 51000 (UNVERIFIED)."""
        error = self._inst_error(ctx)
        if error is not None:
            return error
        sz = ctx.int_param("sz", 1)
        if sz is None or not 1 <= sz <= _MAX_SZ:
            return json_reply(400, _body("51000", "Parameter sz error"))
        v = ctx.view(ctx.market_for(ctx.query["instId"]))
        bids, asks = v.levels(sz)
        book = {
            "asks": [[p, q, "0", str(n)] for p, q, n, _ in asks],
            "bids": [[p, q, "0", str(n)] for p, q, n, _ in bids],
            "ts": str(ctx.data_ms),
        }
        return json_reply(200, _body("0", "", [book]))

    # -- errors and faults ------------------------------------------------------------------
    def maintenance_reply(self, ctx: RequestContext) -> Reply | None:
        """HTTP 503 code ``50001`` during maintenance [OKX-ERR]."""
        return json_reply(503, _body(*_ERRORS[503]))

    def not_found(self, ctx: RequestContext) -> Reply:
        """Unknown path → HTTP 404 with the OKX envelope ``{"code": "404", "msg": "Not Found",
        "data": []}`` (OKX's real 404 body is not in the facts file: simulator choice)."""
        return json_reply(404, _body("404", "Not Found"))

    def error_body(self, ctx: RequestContext, status: int) -> Reply:
        """``http_error`` JSON: 401 → 50111, 429 → 50011, 500 → 50026, 503 → 50001 [OKX-ERR];
        other 5xx → 50026, other 4xx → 51000 "Parameter error" (UNVERIFIED)."""
        code, msg = _ERRORS.get(
            status, _ERRORS[500] if status >= 500 else ("51000", "Parameter error")
        )
        return json_reply(status, _body(code, msg))

    api_code_help = "a non-negative integer or a string of digits"

    def fault_params(self, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``rate_limited``: ``http_status`` 200 or 429 (default 429) and optional
        ``retry_after`` (int s; sends ``Retry-After``, UNVERIFIED for OKX); ``banned``:
        rejected (no documented IP-ban answer); ``api_error``: ``code`` (int or digit string),
        optional ``http_status`` and ``message``."""
        if kind == "api_error":
            return self.api_error_params(spec, _okx_code)
        if kind == "banned":
            return super().fault_params(kind, spec)
        reject_params(spec, ("http_status", "retry_after"), "okx rate_limited")
        status = choice(spec, "http_status", (200, 429), 429, error=FaultError)
        params: dict[str, Any] = {"http_status": status}
        retry_after = fault_int(spec, "retry_after", 0, 259_200, None)
        if retry_after is not None:
            params["retry_after"] = retry_after
        return params

    def rate_limited(self, ctx: RequestContext, fault: Fault) -> Reply:
        """Code ``50011`` [OKX-ERR]: HTTP 429 ``"Too Many Requests"`` (default) or HTTP 200
        ``"Rate limit reached. Please refer to API documentation and throttle requests
        accordingly."`` (which message goes with which status is a simulator choice);
        ``Retry-After`` only with ``retry_after`` (UNVERIFIED)."""
        status = fault.params["http_status"]
        msg = _RATE_LIMIT_429 if status == 429 else _RATE_LIMIT_200
        headers: list[Header] = []
        if "retry_after" in fault.params:
            headers.append((b"Retry-After", b"%d" % fault.params["retry_after"]))
        return json_reply(status, _body("50011", msg), headers)

    def api_error(self, ctx: RequestContext, fault: Fault) -> Reply:
        """``{"code": "<code>", "msg": ..., "data": []}`` with the documented HTTP status and
        message of :data:`API_ERRORS` (e.g. 50001 → 503, 50013 → 429, 50026 → 500, 50102 →
        401, 50004 → 400), else HTTP 200 [OKX-ERR]; ``http_status`` / ``message`` override."""
        params = fault.params
        code = params["code"]
        status, msg = API_ERRORS.get(code, (200, f"Simulated error {code}."))
        return json_reply(
            params.get("http_status", status), _body(code, params.get("message", msg))
        )

    def book_frame(self, ctx: RequestContext) -> BookFrame:
        """``huge_body``: the ``/api/v5/market/books`` envelope, levels ``[px, sz, "0", n]``
        [OKX-MD]."""
        tail = b'],"ts":"%d"}]}' % ctx.data_ms
        head = b'{"code":"0","msg":"","data":[{"asks":['
        return BookFrame(head, b'],"bids":[', tail, '["%d.%02d","0.5","0","1"]', bids_first=False)
