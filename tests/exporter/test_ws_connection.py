"""The stream core against a loopback fake exchange: subscribe/ack, gauges, staleness, keep-alive,
reconnect reasons, the ban gate (tests/exporter/test_ws_fakes.py has the fake protocol)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar

import pytest
from test_ws_fakes import FakeDialect, FakeExchange, Rig, make_plan, until

from exporter.streams.dialect import KeepAlive
from exporter.streams.events import Channel

pytestmark = pytest.mark.e2e  # every test here starts a loopback WebSocket server

LAST = "exchange_ws_last_message_timestamp_seconds"
LAG_COUNT = "exchange_ws_message_lag_seconds_count"
RECONNECTS = "exchange_ws_reconnects_total"
SUB_ERRORS = "exchange_ws_subscription_errors_total"


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 120))


def test_subscribe_ack_sets_connected_and_up_per_channel() -> None:
    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url, markets=("BTC/USDT", "ETH/USDT"))).start()
            try:
                await until(lambda: rig.value("exchange_ws_connected") == 1, what="connected")
                for channel in ("ticker", "trades", "book"):
                    await until(
                        lambda c=channel: rig.value("exchange_ws_up", channel=c) == 1,  # type: ignore[misc]
                        what=f"{channel} up",
                    )
                await until(
                    lambda: (rig.value("exchange_ws_messages_total", channel="trades") or 0) > 5
                )
                subs = [f for f in ex.received if '"sub"' in f]
                assert len(subs) == 6  # 3 channels x 2 markets
                assert rig.status.connected and rig.status.since is not None
                lag = rig.value("exchange_ws_message_lag_seconds_count", channel="ticker")
                assert lag is not None and lag > 0
                await until(lambda: rig.value(LAST, channel="ticker"), what="last message time")
                assert rig.value("exchange_ws_reconnects_total", reason="error") == 0
            finally:
                await rig.stop()
            assert rig.value("exchange_ws_connected") == 0

    run(body)


def test_a_silent_channel_flips_up_to_zero_and_back() -> None:
    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url, stale_after=1.5)).start()
            try:
                await until(lambda: rig.value("exchange_ws_up", channel="trades") == 1)
                ex.channels.discard(Channel.TRADES)
                await until(
                    lambda: rig.value("exchange_ws_up", channel="trades") == 0, what="stale"
                )
                assert rig.value("exchange_ws_up", channel="ticker") == 1
                assert rig.value("exchange_ws_connected") == 1
                ex.channels.add(Channel.TRADES)
                await until(lambda: rig.value("exchange_ws_up", channel="trades") == 1, what="back")
                assert rig.value("exchange_ws_reconnects_total", reason="stale") == 0
            finally:
                await rig.stop()

    run(body)


def test_lag_is_corrected_by_the_measured_clock_skew() -> None:
    async def body() -> None:
        async with FakeExchange() as ex:
            ex.lag = 0.5  # event times 0.5 s in the past: the exchange clock is behind
            rig = Rig(make_plan(ex.url, channels=(Channel.TICKER,)))
            rig.state.clock_skew = -0.5  # server minus local, as the REST time probe measures
            rig.start()
            try:
                await until(lambda: rig.status.channels[Channel.TICKER].lag.percentiles()["count"])
                await until(lambda: (rig.value(LAG_COUNT, channel="ticker") or 0) >= 10)
                p50 = rig.status.channels[Channel.TICKER].lag.percentiles()["p50"]
                assert p50 is not None and p50 < 0.25, p50  # not ~0.5 s
            finally:
                await rig.stop()

    run(body)


def test_missing_pongs_reconnect_with_ping_timeout() -> None:
    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url, stale_after=5.0)).start()
            try:
                await until(lambda: rig.value("exchange_ws_connected") == 1)
                await until(lambda: rig.status.ping_rtt is not None, what="rtt")
                assert rig.value("exchange_ws_ping_rtt_seconds") is not None
                ex.answer_pings = False
                await until(
                    lambda: rig.value("exchange_ws_reconnects_total", reason="ping_timeout") == 1,
                    what="ping_timeout",
                )
                assert "pong" in rig.status.last_error
                await until(lambda: len(ex.connections) >= 2, what="reconnected")
            finally:
                await rig.stop()

    run(body)


def test_a_connection_silent_on_every_channel_is_replaced_as_stale() -> None:
    class Quiet(FakeDialect):
        pong_timeout: ClassVar[float] = 30.0

    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url, stale_after=0.3), dialect=Quiet).start()
            try:
                await until(lambda: rig.value("exchange_ws_connected") == 1)
                ex.send_data = False  # open, pings answered, no data
                await until(
                    lambda: rig.value("exchange_ws_reconnects_total", reason="stale") == 1,
                    what="stale reconnect",
                )
                assert rig.value("exchange_ws_reconnects_total", reason="ping_timeout") == 0
            finally:
                await rig.stop()

    run(body)


def test_a_server_close_counts_closed_by_server_and_reconnects() -> None:
    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url)).start()
            try:
                await until(lambda: rig.value("exchange_ws_connected") == 1)
                await ex.close_all(4004, "No data received in 30s")
                await until(
                    lambda: (
                        rig.value("exchange_ws_reconnects_total", reason="closed_by_server") == 1
                    )
                )
                assert "4004" in rig.status.last_error
                await until(
                    lambda: len(ex.connections) == 2 and rig.value("exchange_ws_connected") == 1
                )
            finally:
                await rig.stop()

    run(body)


def test_max_lifetime_reconnects_ahead_as_scheduled() -> None:
    class ShortLived(FakeDialect):
        max_lifetime: ClassVar[float | None] = 1.0

    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url), dialect=ShortLived).start()
            try:
                await until(lambda: (rig.value(RECONNECTS, reason="scheduled") or 0) >= 2)
                assert rig.value("exchange_ws_reconnects_total", reason="closed_by_server") == 0
                gaps = [b - a for a, b in zip(ex.connections, ex.connections[1:], strict=False)]
                assert all(g >= 0.85 for g in gaps), gaps  # ahead of 1 s, not much earlier
            finally:
                await rig.stop()

    run(body)


def test_shutdown_notice_reconnects_as_maintenance_and_maintenance_is_shown() -> None:
    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url)).start()
            try:
                await until(lambda: rig.value("exchange_ws_connected") == 1)
                await ex.broadcast({"notice": "maintenance"})
                await until(lambda: rig.state.in_maintenance(), what="maintenance")
                await ex.broadcast({"notice": "online"})
                await until(lambda: not rig.state.in_maintenance(), what="online")
                await ex.broadcast({"notice": "shutdown"})
                await until(
                    lambda: rig.value("exchange_ws_reconnects_total", reason="maintenance") == 1
                )
            finally:
                await rig.stop()

    run(body)


def test_refused_subscriptions_are_counted_per_channel() -> None:
    async def body() -> None:
        async with FakeExchange() as ex:
            ex.reject = {Channel.BOOK}
            rig = Rig(make_plan(ex.url, markets=("BTC/USDT", "ETH/USDT"))).start()
            try:
                await until(lambda: rig.value(SUB_ERRORS, channel="book") == 2)
                assert rig.value("exchange_ws_subscription_errors_total", channel="ticker") == 0
                assert rig.value("exchange_ws_connected") == 1  # the other channels were acked
                assert "refused" in rig.status.last_error
            finally:
                await rig.stop()

    run(body)


def test_no_connection_attempt_while_the_ip_is_banned() -> None:
    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url))
            rig.state.gate.block(1.5, ban=True)
            started = time.time()
            rig.start()
            try:
                await asyncio.sleep(0.5)
                assert ex.connections == [] and "banned" in rig.status.waiting
                await until(lambda: rig.value("exchange_ws_connected") == 1, what="after the ban")
                assert time.time() - started >= 1.4
            finally:
                await rig.stop()

    run(body)


def test_failed_attempts_back_off_and_count_as_error() -> None:
    async def body() -> None:
        rig = Rig(make_plan("ws://127.0.0.1:9")).start()  # discard port: refused
        try:
            await until(
                lambda: (rig.value("exchange_ws_reconnects_total", reason="error") or 0) >= 3
            )
            assert "connect failed" in rig.status.last_error
            assert rig.backoff.failures >= 3
            assert rig.value("exchange_ws_connected") == 0
        finally:
            await rig.stop()

    run(body)


def test_server_ping_dialect_times_protocol_pings_and_a_stall_is_stale_not_ping_timeout() -> None:
    class ServerPing(FakeDialect):
        keepalive: ClassVar[KeepAlive] = KeepAlive.SERVER_PING
        ping_interval: ClassVar[float] = 0.3
        pong_timeout: ClassVar[float] = 1.0  # silence limit 1.3 s < stale limit 3 s

    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url, stale_after=1.5), dialect=ServerPing).start()
            try:
                await until(lambda: rig.status.ping_rtt is not None, what="protocol ping rtt")
                assert not [f for f in ex.received if '"ping"' in f]  # no application pings
                ex.send_data = False  # the library still answers our pings
                await until(lambda: rig.value(RECONNECTS, reason="stale") == 1, what="stale")
                assert rig.value(RECONNECTS, reason="ping_timeout") == 0
            finally:
                await rig.stop()

    run(body)


def test_heartbeat_dialect_ignores_missing_pongs_but_not_silence() -> None:
    class Heartbeats(FakeDialect):
        keepalive: ClassVar[KeepAlive] = KeepAlive.HEARTBEAT
        ping_interval: ClassVar[float] = 0.2
        pong_timeout: ClassVar[float] = 2.0

    async def body() -> None:
        async with FakeExchange() as ex:
            rig = Rig(make_plan(ex.url, stale_after=5.0), dialect=Heartbeats).start()
            try:
                await until(lambda: rig.status.ping_rtt is not None, what="application ping rtt")
                ex.answer_pings = False  # pongs stop, data keeps flowing: the link is alive
                await asyncio.sleep(3.0)
                assert rig.value(RECONNECTS, reason="ping_timeout") == 0
                ex.send_data = False  # now nothing at all arrives
                await until(lambda: rig.value(RECONNECTS, reason="ping_timeout") == 1)
                assert "nothing received" in rig.status.last_error
            finally:
                await rig.stop()

    run(body)


def test_a_skew_within_the_server_time_resolution_is_not_applied() -> None:
    async def body() -> None:
        async with FakeExchange() as ex:
            plan = dataclasses.replace(make_plan(ex.url, channels=(Channel.TICKER,)),
                                       skew_resolution=1.0)  # fmt: skip
            rig = Rig(plan)
            rig.state.clock_skew = -0.6  # a whole-second server time: noise, not skew
            rig.start()
            try:
                await until(lambda: (rig.value(LAG_COUNT, channel="ticker") or 0) >= 10)
                p50 = rig.status.channels[Channel.TICKER].lag.percentiles()["p50"]
                assert p50 is not None and 0.0 < p50 < 0.3, p50  # not clamped to 0 by -0.6 s
            finally:
                await rig.stop()

    run(body)
