"""Issue 13 acceptance: keep-alive conformance per exchange — "the simulator disconnects a
client that does not keep the connection alive, ours never is".

The simulator's keep-alive rules are shortened for the test (its dialects expose them as class
attributes); the exporter's ping interval is shortened to match, so that ours pings faster than
the shortened deadline exactly as it pings faster than the real one. Per exchange, at once:

(a) a bare client (:class:`testsupport.ws_harness.BareClient`: never answers a ping, never
    pings) that breaks the rule is disconnected;
(b) the exporter's stream over the same rules stays connected with zero reconnects for at
    least four deadlines.

Bybit and OKX count server pushes as traffic (a busy subscribed stream needs no pings), so
their case runs under ``ws_stall``: subscribed, acknowledged, and no data — only pings keep
such a connection. Kraken requires no keep-alive [KR-HB2] and the simulator enforces none: a
bare client that subscribes stays connected on the server's heartbeats, and so does ours.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from exporter.streams.dialects.bybit import BybitDialect
from exporter.streams.dialects.okx import OkxDialect
from simulator import simulator_in_thread
from simulator.ws.dialect import KeepAliveRule
from simulator.ws.dialects import binance as sim_binance
from simulator.ws.dialects import bybit as sim_bybit
from simulator.ws.dialects import coinbase as sim_coinbase
from simulator.ws.dialects import kraken as sim_kraken
from simulator.ws.dialects import okx as sim_okx
from testsupport.ws_harness import VENUES, BareClient, RunningExporter, stream_config, until

pytestmark = pytest.mark.e2e  # an in-thread simulator and the exporter's stream loops

DEADLINE = {"binance": 2.0, "bybit": 2.0, "okx": 2.0, "coinbase": 1.0, "kraken": 2.0}
"""Seconds after which the shortened rule cuts a client that breaks it: Binance ping every
0.5 s + pong deadline 1.5 s (real 20 s + 60 s); Bybit and OKX 2 s without traffic (real 600 s
and 30 s); Coinbase 1 s to subscribe (real 5 s); Kraken: no rule (2 s is only the unit of the
hold below)."""
HOLD_DEADLINES = 4
OUR_PING_INTERVAL = 0.5
"""The exporter's ping interval for Bybit and OKX in the test (shipped: 20 s, below OKX's 30 s
[OKX-OV §Connect] and Bybit's recommended 20 s [BY-CONNECT §How to Send the Heartbeat
Packet]): a quarter of the shortened 2 s deadline, as 20 s is under the real ones."""
STALE_AFTER = 30.0
"""Long, so that a stalled feed is not replaced for staleness during the hold (2 × 30 s)."""
STALLED = ("bybit", "okx")

BARE_SUBSCRIBE = {
    # Binance's raw stream path names its stream: no message needed [BN-WS §General WSS info].
    "binance": None,
    "bybit": {"req_id": "1", "op": "subscribe", "args": ["tickers.BTCUSDT"]},
    "okx": {"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]},
    # Coinbase: the bare client never subscribes (the rule is "subscribe within 5 s").
    "coinbase": None,
    "kraken": {"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}},
}
BARE_PATH = {"binance": "/binance/ws/btcusdt@trade"}


def shorten_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten the simulator's keep-alive rules and our client-ping intervals (see
    :data:`DEADLINE`)."""
    rule = sim_binance.Dialect.keepalive
    monkeypatch.setattr(
        sim_binance.Dialect,
        "keepalive",
        KeepAliveRule(
            server_ping_interval=0.5,  # real 20 s [BN-WS §General WSS information]
            pong_deadline=1.5,  # real 60 s
            max_incoming_per_s=rule.max_incoming_per_s,
            max_lifetime=rule.max_lifetime,
            close_code=rule.close_code,
        ),
    )
    monkeypatch.setattr(sim_bybit.Dialect, "idle_close_s", 2.0)  # real 600 s [BY-CONNECT]
    monkeypatch.setattr(sim_okx.Dialect, "idle_close_s", 2.0)  # real 30 s [OKX-OV §Connect]
    # real 5 s [CB-EX-OV §Subscribe]
    monkeypatch.setattr(sim_coinbase.Dialect, "keepalive", KeepAliveRule(subscribe_deadline=1.0))
    monkeypatch.setattr(BybitDialect, "ping_interval", OUR_PING_INTERVAL)
    monkeypatch.setattr(OkxDialect, "ping_interval", OUR_PING_INTERVAL)


@dataclass
class KeepAliveOutcome:
    """One exchange: how the bare client ended and what our stream did."""

    bare_closed_after: float | None = None
    bare_close: str = ""
    bare_texts: int = 0
    ours_reconnects: dict[str, float] = field(default_factory=dict)
    ours_min_connected: float = 1.0
    held: float = 0.0


async def bare_client(origin: str, exchange: str, out: KeepAliveOutcome) -> None:
    """Connect, subscribe as :data:`BARE_SUBSCRIBE` says, and wait to be cut (or, on Kraken,
    not to be cut over the hold)."""
    client = BareClient(origin + BARE_PATH.get(exchange, VENUES[exchange].dialect_path))
    await client.connect()
    try:
        message = BARE_SUBSCRIBE[exchange]
        if message is not None:
            await client.send(json.dumps(message))
        if exchange == "kraken":
            await asyncio.sleep(DEADLINE[exchange] * HOLD_DEADLINES)
            out.bare_closed_after = (
                None if client.closed_at is None else client.closed_at - client.opened_at
            )
        else:
            out.bare_closed_after = await client.wait_closed(DEADLINE[exchange] * 5 + 5)
        out.bare_close = f"{client.close_code} {client.close_reason!r}"
        out.bare_texts = len(client.texts)
    finally:
        await client.aclose()


async def ours(rig: RunningExporter, exchange: str, out: KeepAliveOutcome) -> None:
    """Wait until our stream is connected (and, where data flows, every channel up), then hold
    it for :data:`HOLD_DEADLINES` deadlines watching ``exchange_ws_connected``."""

    def ready() -> bool:
        if exchange in STALLED:
            return rig.value("exchange_ws_connected", exchange=exchange) == 1
        return rig.healthy(exchange)

    await until(ready, 45, f"{exchange}: our stream connected")
    before = rig.counters(exchange)
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + DEADLINE[exchange] * HOLD_DEADLINES
    while loop.time() < end:
        connected = rig.value("exchange_ws_connected", exchange=exchange)
        out.ours_min_connected = min(out.ours_min_connected, connected)
        await asyncio.sleep(0.05)
    out.held = loop.time() - start
    after = rig.counters(exchange)
    out.ours_reconnects = {
        reason: after.get(name, reason) - before.get(name, reason)
        for name, reason in before.values
        if name == "exchange_ws_reconnects_total"
    }


async def run_all(sim_url: str) -> dict[str, KeepAliveOutcome]:
    """Every exchange at once: bare clients and the exporter over the shortened rules."""
    origin = "ws://" + sim_url.removeprefix("http://")
    results = {name: KeepAliveOutcome() for name in VENUES}
    async with httpx.AsyncClient(base_url=sim_url, timeout=10.0, trust_env=False) as http:
        await http.delete("/_control/faults")
        for name in STALLED:
            reply = await http.post(
                "/_control/faults", json={"exchange": name, "fault": "ws_stall"}
            )
            assert reply.status_code == 200, reply.text
        try:
            config = stream_config(sim_url, list(VENUES), STALE_AFTER)
            async with RunningExporter(config) as rig:
                jobs = [bare_client(origin, n, results[n]) for n in VENUES]
                jobs += [ours(rig, n, results[n]) for n in VENUES]
                await asyncio.gather(*jobs)
        finally:
            await http.delete("/_control/faults")
    return results


@pytest.fixture(scope="module")
def keepalive(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[dict[str, KeepAliveOutcome]]:
    """Run every exchange's keep-alive case once, on one in-thread simulator."""
    shorten_rules(monkeypatch_module)
    with simulator_in_thread() as sim:
        yield asyncio.run(asyncio.wait_for(run_all(sim.url), 120))


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    """A module-scoped monkeypatch (the rules stay shortened for the module's one run)."""
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("exchange", list(VENUES))
def test_a_client_breaking_the_keepalive_rule_is_cut(
    exchange: str, keepalive: dict[str, KeepAliveOutcome]
) -> None:
    out = keepalive[exchange]
    print(f"\n{exchange}: bare client closed after {out.bare_closed_after}s: {out.bare_close}")
    if exchange == "kraken":
        # No keep-alive is required [KR-HB2]; the simulator enforces none, and the server's
        # heartbeats (plus data) reach even a client that never pings.
        assert sim_kraken.Dialect.keepalive == KeepAliveRule()
        assert out.bare_closed_after is None, out.bare_close
        assert out.bare_texts > 0
        return
    assert out.bare_closed_after is not None
    if exchange == "okx":
        assert out.bare_close.startswith("4004"), out.bare_close  # [OKX-ERR §Close Frame]


@pytest.mark.parametrize("exchange", list(VENUES))
def test_our_stream_is_never_cut(exchange: str, keepalive: dict[str, KeepAliveOutcome]) -> None:
    out = keepalive[exchange]
    print(
        f"\n{exchange}: ours held {out.held:.1f}s, min connected {out.ours_min_connected:g}, "
        f"reconnects {out.ours_reconnects}"
    )
    assert out.held >= DEADLINE[exchange] * HOLD_DEADLINES
    assert out.ours_min_connected == 1
    assert out.ours_reconnects and not any(out.ours_reconnects.values()), out.ours_reconnects
