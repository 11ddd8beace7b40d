"""Coinbase Exchange WebSocket feed (``ws-feed``), as the simulator serves it at
``/coinbase/ws`` (the real feed lives at the host root).

Facts (tags are Coinbase's own documentation pages):

* Subscribe ``{"type":"subscribe","product_ids":[…],"channels":["level2_batch","heartbeat",
  {"name":"ticker","product_ids":[…]}]}`` → ``{"type":"subscriptions","channels":[{"name":…,
  "product_ids":[…]},…]}`` listing every current subscription; ``unsubscribe`` without
  ``product_ids`` drops the whole channel [CB-EX-OV §Subscribe, §Unsubscribe, §Subscriptions
  Message]. A subscribe must arrive **within 5 s** of connecting or the server disconnects
  [CB-EX-OV §Subscribe].
* Errors ``{"type":"error","message":…}`` [CB-EX-OLD §Protocol]; a bad product answers
  ``{"type":"error","message":"Failed to subscribe","reason":"BTC-USDX is not a valid product"}``
  (OBSERVED). ``level2``, ``full``, ``user``, ``level3`` and ``rfq_matches`` need
  authentication [CB-EX-AUTH]: refused with ``"Failed to subscribe"`` and a reason naming the
  channel (reason text UNVERIFIED, as are the texts for an unknown channel and a bad message).
* Channels [CB-EX-CH]: ``heartbeat`` (per product every second: ``sequence``,
  ``last_trade_id``, ``time``); ``ticker`` (per match; the latest on subscribe); ``ticker_batch``
  (same body, every ~5 s); ``matches`` (``match`` per trade, ``side`` = maker side);
  ``level2_batch`` (``snapshot`` then ``l2update`` with absolute sizes, ``0`` removes, 50 ms
  batches [CB-HELP] → one per 100 ms model tick, no ``sequence``); ``status`` (all products and
  currencies periodically; cadence undocumented, here every 5 s and on subscribe). ``time`` is
  RFC3339 with µs; ``sequence`` is a per-product increasing counter, of which ticker, matches
  and heartbeat carry samples [CB-EX-OV §Sequence Numbers].
* The level-2 snapshot has the same 50 levels as REST ``/products/<id>/book?level=2``.

Faults: ``ws_gap`` drops ``match`` messages (one in :attr:`Dialect.gap_every`, the first at
once), so ``trade_id`` jumps and the heartbeat's ``last_trade_id`` runs ahead of the last match
seen — the documented way to notice dropped matches [CB-EX-CH §Heartbeat Channel]. ``ws_reject``
answers every subscribe with the OBSERVED ``Failed to subscribe`` error. Coinbase books have no
checksum. :meth:`Dialect.maintenance_notice` is a ``status`` message with the products
``offline`` and ``cancel_only`` (the docs define no maintenance event, UNVERIFIED).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from simulator.market import TICK_MS, Level, VenueView, book_diff
from simulator.timefmt import iso_us
from simulator.ws.dialect import KeepAliveRule, WsDialect, WsSession

__all__ = ["Dialect"]

_PUBLIC = ("heartbeat", "ticker", "ticker_batch", "matches", "level2_batch", "status")
_AUTH_ONLY = frozenset({"level2", "full", "user", "level3", "rfq_matches"})
_KIND = {"ticker": "ticker", "ticker_batch": "ticker", "matches": "trades"}
_KIND["level2_batch"] = "book"
_L2_DEPTH = 50  # as REST /products/<id>/book?level=2 in this simulator
_HEARTBEAT_TICKS = 1000 // TICK_MS  # every second [CB-EX-CH §Heartbeat Channel]
_BATCH_TICKS = 5000 // TICK_MS  # ticker_batch ~5 s [CB-EX-CH]
_STATUS_TICKS = 5000 // TICK_MS  # status cadence undocumented (UNVERIFIED)
_CHANGES: dict[tuple[int, str, int, int], list[list[str]]] = {}
"""(market object, product, from tick, to tick) → ``l2update`` changes, shared by connections."""
_CHANGES_MAX = 2048


def _error(message: str, reason: str | None = None) -> str:
    body = {"type": "error", "message": message}
    if reason is not None:
        body["reason"] = reason
    return json.dumps(body, separators=(",", ":"))


class Dialect(WsDialect):
    """Coinbase Exchange public feed (see the module docstring for facts and sources).

    Class attributes tests may change: ``gap_every`` (10). The 5 s subscribe deadline is
    enforced by the transport (:attr:`keepalive`, asking :meth:`is_subscribed`).
    """

    exchange: ClassVar[str] = "coinbase"
    paths: ClassVar[tuple[str, ...]] = ("/ws",)
    keepalive: ClassVar[KeepAliveRule] = KeepAliveRule(subscribe_deadline=5.0)
    gap_every: ClassVar[int] = 10

    def __init__(self, session: WsSession, path: str, query: Mapping[str, str]) -> None:
        """Per-connection state: subscriptions per channel, per-product counters."""
        super().__init__(session, path, query)
        self.subs: dict[str, list[str]] = {}
        """channel → product ids (``status``: empty list)."""
        self._subscribed = False
        self._started: dict[tuple[str, str], int] = {}
        self._last_trade: dict[tuple[str, str], int] = {}
        self._books: dict[str, tuple[list[Level], list[Level], int]] = {}
        self._seq: dict[str, int] = {}
        self._gap_count: dict[str, int] = {}
        self._last_tick = -1

    def is_subscribed(self) -> bool:
        """True once a subscribe succeeded (the 5 s rule is about the first subscribe)."""
        return self._subscribed

    # -- client messages --------------------------------------------------------------------
    def _products(self) -> dict[str, str]:
        """Product id (``BTC-USD``) → unified market (``BTC/USD``)."""
        return {m.replace("/", "-"): m for m in self.session.market.markets(self.exchange)}

    def on_text(self, text: str) -> None:
        """Handle ``subscribe`` / ``unsubscribe`` [CB-EX-OV]; answers ``subscriptions`` or an
        ``error`` and changes nothing on error."""
        try:
            msg = json.loads(text)
        except ValueError:
            self.session.send_control_text(_error("Malformed JSON"))  # text UNVERIFIED
            return
        kind = msg.get("type") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or kind not in ("subscribe", "unsubscribe"):
            reason = "Type has to be either subscribe or unsubscribe"  # UNVERIFIED
            self.session.send_control_text(_error("Failed to subscribe", reason))
            return
        wanted = self._requested(msg)
        if isinstance(wanted, str):
            self.session.send_control_text(_error("Failed to subscribe", wanted))
            return
        if kind == "subscribe":
            self._subscribed = True
            for channel, products in wanted.items():
                have = self.subs.setdefault(channel, [])
                have.extend(p for p in products if p not in have)
                for pid in products:  # (re)subscribing starts afresh: a new level-2 snapshot
                    self._forget(channel, pid)
        else:
            for channel, products in wanted.items():
                if channel in self.subs and (not products or channel == "status"):
                    del self.subs[channel]
                elif channel in self.subs:
                    left = [p for p in self.subs[channel] if p not in products]
                    self.subs[channel] = left
                    if not left:
                        del self.subs[channel]
        for key in [k for k in self._started if k[1] not in self.subs.get(k[0], ())]:
            self._forget(*key)
        channels = [{"name": c, "product_ids": list(p)} for c, p in self.subs.items()]
        self.session.send_control_text(json.dumps({"type": "subscriptions", "channels": channels}))

    def _forget(self, channel: str, pid: str) -> None:
        """Drop the per-subscription cursor of ``channel`` × ``pid``."""
        self._started.pop((channel, pid), None)
        self._last_trade.pop((channel, pid), None)
        if channel == "level2_batch":
            self._books.pop(pid, None)

    def _requested(self, msg: dict[str, Any]) -> dict[str, list[str]] | str:
        """The channels → product ids a (un)subscribe names, or the error ``reason``."""
        default = msg.get("product_ids", [])
        channels = msg.get("channels")
        if not isinstance(channels, list) or not channels or not isinstance(default, list):
            return "No channels provided"  # UNVERIFIED text
        known = self._products()
        out: dict[str, list[str]] = {}
        for entry in channels:
            if isinstance(entry, dict):
                name, products = entry.get("name"), entry.get("product_ids", default)
            else:
                name, products = entry, default
            if name in _AUTH_ONLY and msg.get("type") == "subscribe":
                return f"{name} channel requires authentication"  # UNVERIFIED text
            if name not in _PUBLIC or not isinstance(products, list):
                return f"{name} is not a valid channel"  # UNVERIFIED text
            for product in products:
                if product not in known:
                    return f"{product} is not a valid product"  # OBSERVED
            if msg.get("type") == "subscribe":
                if name != "status" and not products:
                    return f"{name} requires product_ids"  # UNVERIFIED text
                reject = self.active_fault("ws_reject", None)
                if reject is not None and reject.get("channel") in (None, _KIND.get(str(name))):
                    return f"{products[0] if products else name} is not a valid product"
            out[str(name)] = [] if name == "status" else [str(p) for p in products]
        return out

    # -- faults -----------------------------------------------------------------------------
    def _gap_now(self, product: str) -> bool:
        """Under ``ws_gap`` (trades): True for the first match, then every :attr:`gap_every`."""
        if self.active_fault("ws_gap", "trades") is None:
            self._gap_count.pop(product, None)
            return False
        n = self._gap_count.get(product, 0)
        self._gap_count[product] = n + 1
        return n % self.gap_every == 0

    def _next_seq(self, product: str, candidate: int) -> int:
        """A per-product sequence sample: the model's update id, strictly increasing."""
        seq = max(candidate, self._seq.get(product, 0) + 1)
        self._seq[product] = seq
        return seq

    def _send(self, body: Mapping[str, Any], channel: str) -> None:
        """A market-data frame of ``channel`` (``ticker``, ``trades`` or ``book``)."""
        self.session.send_text(json.dumps(body, separators=(",", ":")), channel)

    def _control(self, body: Mapping[str, Any]) -> None:
        """``heartbeat`` and ``status``: liveness and state, not market data, so they keep
        flowing under ``ws_stall`` (as pings are answered) and are not delayed by ``ws_lag``."""
        self.session.send_control_text(json.dumps(body, separators=(",", ":")))

    # -- data -------------------------------------------------------------------------------
    def on_tick(self, now_ms: int) -> None:
        """Send what is due for every subscription at ``now_ms``."""
        now_ms = self.session.now_ms()  # the exchange's clock (clock_skew applied)
        tick = now_ms // TICK_MS
        if tick == self._last_tick:
            return
        self._last_tick = tick
        products = self._products()
        for channel, ids in list(self.subs.items()):
            if channel == "status":
                if self._due(channel, "", tick, _STATUS_TICKS):
                    self._control(self._status(now_ms, self._maintenance()))
                continue
            for pid in ids:
                v = self.session.market.view(self.exchange, now_ms, products[pid])
                if channel == "heartbeat" and self._due(channel, pid, tick, _HEARTBEAT_TICKS):
                    self._heartbeat(pid, v, now_ms)
                elif channel == "ticker":
                    self._ticker(channel, pid, v, every=1, tick=tick)
                elif channel == "ticker_batch":
                    self._ticker(channel, pid, v, every=_BATCH_TICKS, tick=tick)
                elif channel == "matches":
                    self._matches(pid, v)
                elif channel == "level2_batch":
                    self._level2(pid, v, now_ms)

    def _due(self, channel: str, pid: str, tick: int, every: int) -> bool:
        """True on the first tick of a subscription and every ``every`` ticks after it."""
        start = self._started.setdefault((channel, pid), tick)
        return (tick - start) % every == 0

    def _heartbeat(self, pid: str, v: VenueView, now_ms: int) -> None:
        """``{"type":"heartbeat","sequence","last_trade_id","product_id","time"}``."""
        seq = max(v.update_id, self._seq.get(pid, 0))
        self._seq[pid] = seq
        body = {"type": "heartbeat", "sequence": seq, "last_trade_id": v.trade_id}
        body.update({"product_id": pid, "time": iso_us(now_ms / 1000.0)})
        self._control(body)

    def _ticker(self, channel: str, pid: str, v: VenueView, every: int, tick: int) -> None:
        """The ticker after new trades (and once on subscribe), as in the documented sample:
        ``time`` = last trade time, ``trade_id``/``last_size`` of that trade."""
        key = (channel, pid)
        first = key not in self._started
        start = self._started.setdefault(key, tick)
        last = self._last_trade.get(key)
        if not first and ((tick - start) % every or last == v.trade_id):
            return
        self._last_trade[key] = v.trade_id
        st = v.stats
        body = {
            "type": "ticker",
            "sequence": self._next_seq(pid, v.update_id),
            "product_id": pid,
            "price": v.price(v.last),
            "open_24h": v.price(v.scaled(st.open_24h)),
            "volume_24h": v.qty(v.volume_24h),
            "low_24h": v.price(min(v.scaled(st.low_24h), v.last)),
            "high_24h": v.price(max(v.scaled(st.high_24h), v.last)),
            "volume_30d": v.qty(v.volume_24h * 30),
            "best_bid": v.price(v.best_bid),
            "best_bid_size": v.qty(v.bid_qty),
            "best_ask": v.price(v.best_ask),
            "best_ask_size": v.qty(v.ask_qty),
            "side": "buy" if v.last >= v.best_ask else "sell",
            "time": iso_us(v.trade_ms / 1000.0),
            "trade_id": v.trade_id,
            "last_size": v.qty(v.last_qty),
        }
        self._send(body, "ticker")

    def _matches(self, pid: str, v: VenueView) -> None:
        """One ``match`` per trade since the last tick; ``side`` is the maker's side."""
        key = ("matches", pid)
        last = self._last_trade.get(key)
        self._last_trade[key] = v.trade_id
        if last is None or v.trade_id <= last:
            return
        interval = v.venue.trade_interval_ms
        first = max(last + 1, v.trade_id - 100)
        for trade_id in range(first, v.trade_id + 1):
            if self._gap_now(pid):
                continue
            body = {
                "type": "match",
                "trade_id": trade_id,
                "sequence": self._next_seq(pid, v.update_id),
                "maker_order_id": f"{trade_id * 2:032x}",
                "taker_order_id": f"{trade_id * 2 + 1:032x}",
                "time": iso_us((v.trade_ms - (v.trade_id - trade_id) * interval) / 1000.0),
                "product_id": pid,
                "size": v.qty(v.last_qty),
                "price": v.price(v.last),
                "side": "sell" if v.last >= v.best_ask else "buy",
            }
            self._send(body, "trades")

    def _level2(self, pid: str, v: VenueView, now_ms: int) -> None:
        """``snapshot`` (50 levels, as REST level 2), then ``l2update`` batches of changes."""
        bids, asks = v.levels(_L2_DEPTH)
        prev = self._books.get(pid)
        self._books[pid] = (bids, asks, v.tick)
        if prev is None:
            body: dict[str, Any] = {"type": "snapshot", "product_id": pid}
            body["bids"] = [[p, q] for p, q, _, _ in bids]
            body["asks"] = [[p, q] for p, q, _, _ in asks]
            self._send(body, "book")
            return
        key = (id(self.session.market), pid, prev[2], v.tick)
        changes = _CHANGES.get(key)
        if changes is None:  # the same for every connection of this product at this tick
            zero = v.zero_qty
            changes = [
                ["buy", p, q] for p, q in book_diff(prev[0], bids, zero=zero, descending=True)
            ]
            changes += [
                ["sell", p, q] for p, q in book_diff(prev[1], asks, zero=zero, descending=False)
            ]
            if len(_CHANGES) >= _CHANGES_MAX:
                _CHANGES.clear()
            _CHANGES[key] = changes
        if changes:
            body = {"type": "l2update", "product_id": pid, "time": iso_us(now_ms / 1000.0)}
            body["changes"] = changes
            self._send(body, "book")

    # -- status and maintenance -------------------------------------------------------------
    def _maintenance(self) -> bool:
        return self.active_fault("ws_maintenance_notice", None) is not None

    def _status(self, now_ms: int, maintenance: bool) -> dict[str, Any]:
        """``{"type":"status","products":[…],"currencies":[…]}`` [CB-EX-CH §Status Channel]."""
        products = []
        currencies: dict[str, dict[str, Any]] = {}
        for pid, market in self._products().items():
            base, _, quote = market.partition("/")
            products.append(
                {
                    "id": pid,
                    "base_currency": base,
                    "quote_currency": quote,
                    "display_name": pid.replace("-", "/"),
                    "status": "offline" if maintenance else "online",
                    "status_message": "Scheduled maintenance" if maintenance else None,
                    "post_only": False,
                    "limit_only": False,
                    "cancel_only": maintenance,
                }
            )
            for cur in (base, quote):
                currencies[cur] = {"id": cur, "name": cur, "status": "online"}
        return {"type": "status", "products": products, "currencies": list(currencies.values())}

    def maintenance_notice(self) -> str | None:
        """A ``status`` message with every product ``offline`` / ``cancel_only`` when the
        client subscribed to ``status``; None otherwise (Coinbase sends nothing else)."""
        if "status" not in self.subs:
            return None
        return json.dumps(self._status(self.session.now_ms(), True), separators=(",", ":"))
