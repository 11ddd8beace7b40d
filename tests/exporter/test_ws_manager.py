"""Streams wired into the running exporter: they start with the scheduler, show in /status and
/metrics, follow reloads (kept / restarted / stopped with their series) and stop cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_ws_fakes import FakeDialect, FakeExchange, until

from exporter.config import load_config
from exporter.metrics import ExporterMetrics
from exporter.runtime import ExporterRuntime
from exporter.streams import dialects

pytestmark = pytest.mark.e2e  # starts a loopback WebSocket server and the exporter's loops


def _config(url: str, b_channels: str | None = "[ticker, trades, book]") -> str:
    text = "exchanges:\n"
    names = ["wsa"] + (["wsb"] if b_channels is not None else [])
    for name in names:
        channels = "[ticker, trades, book]" if name == "wsa" else b_channels
        text += f"""
  - name: {name}
    profile: binance
    base_url: http://127.0.0.1:9
    interval: 60s
    timeout: 1s
    endpoints: [time]
    markets: [BTC/USDT, ETH/USDT]
    websocket: {{url: '{url}', channels: {channels}, stale_after: {{ticker: 2s}}}}
"""
    return text


def test_streams_follow_the_exporter_lifecycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(dialects.DIALECTS, "binance", FakeDialect)

    async def body() -> None:
        async with FakeExchange() as ex:
            path = tmp_path / "exporter.yml"
            path.write_text(_config(ex.url))
            metrics = ExporterMetrics()
            runtime = ExporterRuntime(path, load_config(path), metrics)
            stop = asyncio.Event()
            task = asyncio.create_task(runtime.run(stop))

            def value(name: str, **labels: str) -> float | None:
                return metrics.registry.get_sample_value(name, labels)

            for name in ("wsa", "wsb"):
                await until(lambda n=name: value("exchange_ws_connected", exchange=n) == 1)  # type: ignore[misc]
            await until(lambda: value("exchange_ws_up", exchange="wsa", channel="book") == 1)

            status = runtime.status()["exchanges"]["wsa"]["streams"]
            assert status["url"] == ex.url and status["connected"] is True
            assert set(status["reconnects"]) == {
                "closed_by_server", "ping_timeout", "stale", "error", "resync", "scheduled",
                "maintenance",
            }  # fmt: skip
            ticker = status["channels"]["ticker"]
            assert ticker["stale_after_seconds"] == 2.0 and ticker["messages"] > 0
            assert set(ticker["lag_seconds"]) == {"p50", "p99", "count"}
            for key in ("ping_rtt_seconds", "sequence_gaps", "checksum_mismatches",
                        "book_resyncs", "book_crossed", "subscription_errors", "last_error",
                        "since", "maintenance"):  # fmt: skip
                assert key in status, key
            text = metrics.render().decode()
            assert 'exchange_ws_messages_total{channel="ticker",exchange="wsa"}' in text
            assert 'exchange_ws_reconnects_total{exchange="wsb",reason="stale"} 0.0' in text

            # Reload: wsa unchanged (kept, same connection), wsb changed (restarted).
            connections = len(ex.connections)
            path.write_text(_config(ex.url, b_channels="[ticker]"))
            result = runtime.reload()
            assert (result["streams_kept"], result["streams_started"]) == (1, 1), result
            assert value("exchange_ws_up", exchange="wsb", channel="book") is None
            await until(lambda: value("exchange_ws_connected", exchange="wsb") == 1)
            assert len(ex.connections) == connections + 1  # only wsb reconnected

            # Reload: wsb removed: stopped, its series gone.
            path.write_text(_config(ex.url, b_channels=None))
            assert runtime.reload()["streams_stopped"] == 1
            assert value("exchange_ws_connected", exchange="wsb") is None
            assert runtime.scheduler.streams is not None
            await until(lambda: len(runtime.scheduler.streams.tasks()) == 1)  # type: ignore[union-attr]
            await until(lambda: len(ex.open) == 1, what="wsb's connection closed")

            stop.set()
            await asyncio.wait_for(task, 30)
            assert len(ex.open) == 0 or await _closed(ex)
            leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert not [t for t in leftover if (t.get_name() or "").startswith("stream")], leftover
            assert value("exchange_ws_connected", exchange="wsa") == 0

    asyncio.run(asyncio.wait_for(body(), 120))


async def _closed(ex: FakeExchange) -> bool:
    await until(lambda: len(ex.open) == 0, what="every stream connection closed")
    return True
