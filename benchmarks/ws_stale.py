"""Figure 5 of the WebSocket benchmark: from a stream's last message to the
``ExchangeWebSocketStale`` notification at a fake Slack, with the shipped defaults.

The native stack of ``deploy/stack.py`` runs every shipped config unchanged (exporter
``deploy/exporter.demo.yml`` with its ``websocket:`` blocks, Prometheus intervals, the rules of
``prometheus/rules/``, ``deploy/alertmanager.yml`` routing) with the receiver posting to a local
fake Slack, as in ``bench_notify.py``. Every exchange of the demo config is sampled in each run,
concurrently and staggered (Alertmanager groups by alertname and exchange, so exchanges cannot
delay each other; the stagger keeps their Slack posts apart): after a random 0–5 s phase delay,
``{"exchange": X, "fault": "ws_stall"}`` goes to ``POST /_control/faults`` (the connection stays
open and answers pings, no data flows); 2.5 s later the exporter's ``/metrics`` gives the last
message time, ``max(exchange_ws_last_message_timestamp_seconds{exchange=X})`` over the channels
(the gauge holds the exact receive time of the last message, written within a second); the run
ends at the first firing ``ExchangeWebSocketStale`` Slack message for X, and the fault is
cleared. A further run of the same exchange waits for the resolved message first.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.common import median
from benchmarks.probe_runs import parse_metrics
from benchmarks.slack_messages import SLACK_PATH, wait_for_message
from benchmarks.stack_bench import StackBench, join_all, slack_only_receiver_env
from deploy.stack import ALERTMANAGER_CONFIG, DEMO_EXPORTER_CONFIG, Stack, StackOptions, free_port
from exporter.durations import parse_duration
from testsupport.fake_chat import FakeChat

ALERT = "ExchangeWebSocketStale"
RULES_DIR = Path(__file__).resolve().parent.parent / "prometheus" / "rules"
STAGGER_SECONDS = 9.0
PHASE_JITTER_SECONDS = 5.0
LAST_MESSAGE_DELAY = 2.5
"""Seconds after the injection at which the last-message gauge is read (the exporter writes it
at most a second after a message)."""
STARTUP_TIMEOUT = 120.0
READY_TIMEOUT = 240.0
NOTIFY_TIMEOUT = 90.0
RESOLVE_TIMEOUT = 420.0
WS_PATHS: dict[str, str] = {"coinbase": "/coinbase/ws"}


def _log(text: str) -> None:
    print(f"[bench_ws {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def demo_streams(path: Path = DEMO_EXPORTER_CONFIG) -> list[str]:
    """Exchanges of the demo config with an enabled ``websocket:`` block."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        e["name"]
        for e in data.get("exchanges", [])
        if isinstance(e.get("websocket"), dict) and e["websocket"].get("enabled", True)
    ]


def stale_rule(rules_dir: Path = RULES_DIR) -> dict[str, Any] | None:
    """The shipped ``ExchangeWebSocketStale`` rule, or None when it is not there (yet)."""
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("alert") == ALERT:
                    return dict(rule)
    return None


def route_group_wait(alertname: str = ALERT, config: Path = ALERTMANAGER_CONFIG) -> float:
    """``group_wait`` of the first child route whose matchers name ``alertname``, else of the
    root route (Alertmanager's default 30 s where none is set)."""
    root = yaml.safe_load(config.read_text(encoding="utf-8")).get("route", {})
    wait = root.get("group_wait", "30s")
    for child in root.get("routes", []) or []:
        matchers = [str(m).replace(" ", "") for m in child.get("matchers", []) or []]
        if f'alertname="{alertname}"' in matchers:
            wait = child.get("group_wait", wait)
            break
    return parse_duration(wait)


def derived_config(simulator_port: int, into: Path, demo: Path = DEMO_EXPORTER_CONFIG) -> Path:
    """The demo config with a ``websocket:`` block (only ``url``: every other setting its
    default) per exchange on the simulator at ``simulator_port``, and without its API-key
    checks; for when the shipped demo config has no streams yet."""
    data = yaml.safe_load(demo.read_text(encoding="utf-8"))
    for exchange in data["exchanges"]:
        name = exchange["name"]
        path = WS_PATHS.get(name, f"/{name}")
        exchange["websocket"] = {"url": f"ws://127.0.0.1:{simulator_port}{path}"}
        exchange.pop("api_keys", None)  # key checks are not what this measures
    into.mkdir(parents=True, exist_ok=True)
    target = into / "exporter.ws.yml"
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


@dataclass(frozen=True)
class StaleRun:
    """One sample (seconds; None when not measured).

    Attributes:
        exchange: the stalled exchange.
        from_last_s: last message → firing Slack message.
        from_injection_s: injection → firing Slack message.
        error: why the sample failed.
    """

    exchange: str
    from_last_s: float | None
    from_injection_s: float | None = None
    error: str | None = None


class StaleBench(StackBench):
    """The stack, the fake Slack and the per-exchange sampling threads."""

    def streams_up(self, client: httpx.Client, exchange: str | None = None) -> int:
        """Exchanges (or 0/1 for ``exchange``) whose every channel is up in Prometheus."""
        selector = f',exchange="{exchange}"' if exchange else ""
        result = self.query(
            client,
            f'count(min by (exchange) (exchange_ws_up{{job="exchange-exporter"{selector}}}) == 1)',
        )
        return int(float(result[0]["value"][1])) if result else 0

    def ready(self, client: httpx.Client, exchange: str) -> bool:
        """Every channel of ``exchange`` up and no stale alert pending or firing for it."""
        if self.streams_up(client, exchange) != 1:
            return False
        return not self.query(client, f'ALERTS{{alertname="{ALERT}",exchange="{exchange}"}}')

    def last_message(self, client: httpx.Client, exchange: str) -> float | None:
        """The exporter's last-message time of ``exchange`` (max over channels), Unix s."""
        try:
            response = client.get(f"{self.stack.urls['exporter']}/metrics")
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        samples = parse_metrics(response.text)
        values = [
            v
            for labels, v in samples.get("exchange_ws_last_message_timestamp_seconds", [])
            if labels.get("exchange") == exchange and v > 0
        ]
        return max(values) if values else None

    def sample(self, exchange: str, runs: int, offset: float) -> list[StaleRun]:
        """``runs`` samples of ``exchange``, the first after ``offset`` seconds."""
        out: list[StaleRun] = []
        with self.client() as client:
            self.abort.wait(offset)
            for index in range(runs):
                if not self.wait(lambda: self.ready(client, exchange), READY_TIMEOUT):
                    out.append(StaleRun(exchange, None, error="not ready (stream down or alert)"))
                    continue
                out.append(self._one(client, exchange, last_run=index == runs - 1))
        return out

    def _one(self, client: httpx.Client, exchange: str, last_run: bool) -> StaleRun:
        self.abort.wait(self.rng.uniform(0, PHASE_JITTER_SECONDS))
        try:
            self.fault(client, {"exchange": exchange, "fault": "ws_stall"})
        except httpx.HTTPError as exc:
            return StaleRun(exchange, None, error=f"injecting failed: {exc!r}")
        injected = time.monotonic()
        offset = time.time() - injected  # wall = monotonic + offset
        try:
            self.abort.wait(LAST_MESSAGE_DELAY)
            last_wall = self.last_message(client, exchange)
            found = wait_for_message(
                self.slack,
                lambda m: m.matches(ALERT, exchange, "firing"),
                injected,
                NOTIFY_TIMEOUT,
                self.abort,
            )
        finally:
            with contextlib.suppress(httpx.HTTPError):
                self.fault(client, {"exchange": exchange, "fault": "none"})
        cleared = time.monotonic()
        if found is None:
            return StaleRun(exchange, None, error=f"no firing {ALERT} within {NOTIFY_TIMEOUT:g} s")
        arrived = found[0].arrived
        from_last = arrived + offset - last_wall if last_wall is not None else None
        _log(
            f"{exchange}: stale notified {arrived - injected:.1f} s after the stall, "
            + (f"{from_last:.1f} s after the last message" if from_last is not None else "")
        )
        if not last_run:
            wait_for_message(
                self.slack,
                lambda m: m.matches(ALERT, exchange, "resolved"),
                cleared,
                RESOLVE_TIMEOUT,
                self.abort,
            )
        return StaleRun(exchange, from_last, arrived - injected)


def measure(runs: int, run_dir: Path) -> tuple[list[StaleRun], list[str]]:
    """Start the stack and the fake Slack, sample every streamed exchange ``runs`` times.

    Returns:
        (samples, notes): notes say which config ran.

    Raises:
        deploy.stack.StackError: the stack did not start; RuntimeError: the streams never came
        up.
    """
    notes: list[str] = []
    shipped = demo_streams()
    sim_port = free_port()
    if shipped:
        config = DEMO_EXPORTER_CONFIG
        exchanges = shipped
    else:
        config = derived_config(sim_port, run_dir.parent / f"{run_dir.name}-config")
        exchanges = [e["name"] for e in yaml.safe_load(config.read_text())["exchanges"]]
        notes.append(
            "deploy/exporter.demo.yml had no websocket: blocks when this ran: the demo config "
            "plus `websocket: {url: ws://<simulator>/<exchange>}` (every other stream setting "
            "its default) was used instead."
        )
    abort = threading.Event()
    slack = FakeChat().start()
    results: list[StaleRun] = []
    try:
        options = StackOptions(
            run_dir=run_dir,
            exporter_config=config,
            receiver_env=slack_only_receiver_env(f"{slack.url}{SLACK_PATH}"),
            ports={"simulator": sim_port},
        )
        _log(f"starting the stack in {run_dir}")
        with Stack(options) as stack:
            bench = StaleBench(stack, slack, abort)
            with bench.client() as client:
                if not bench.wait(
                    lambda: bench.streams_up(client) >= len(exchanges), STARTUP_TIMEOUT
                ):
                    raise RuntimeError(
                        f"not every stream was up within {STARTUP_TIMEOUT:g} s:\n"
                        + stack.log_tail("exporter")
                    )
            _log(f"every stream is up; stalling {', '.join(exchanges)}")
            collected: dict[str, list[StaleRun]] = {}
            threads = []
            for index, exchange in enumerate(exchanges):

                def work(exchange: str = exchange, offset: float = index * STAGGER_SECONDS) -> None:
                    try:
                        collected[exchange] = bench.sample(exchange, runs, offset)
                    except Exception as exc:  # one exchange's bug must not hang the others
                        collected[exchange] = [StaleRun(exchange, None, error=repr(exc))]

                thread = threading.Thread(target=work, name=f"stale-{exchange}", daemon=True)
                thread.start()
                threads.append(thread)
            join_all(threads, abort, grace=0.0)
            for exchange in exchanges:
                results += collected.get(exchange, [])
    finally:
        slack.stop()
    return results, notes


def expected_seconds() -> tuple[float, float, str]:
    """(low, high, terms) of the time from the last message to the notification that the
    shipped intervals allow: the shortest default ``stale_after`` of any channel, the
    exporter's ≤ 1 s staleness tick, scrape, evaluation, ``for`` and the route's
    ``group_wait``."""
    from exporter.streams.dialects import DIALECTS

    prometheus = yaml.safe_load(
        (RULES_DIR.parent / "prometheus.yml").read_text(encoding="utf-8")
    ).get("global", {})
    scrape = parse_duration(prometheus.get("scrape_interval", "1m"))
    evaluation = parse_duration(prometheus.get("evaluation_interval", "1m"))
    rule = stale_rule() or {}
    rule_for = parse_duration(rule.get("for", 0))
    wait = route_group_wait()
    stale = min(min(d.default_stale_after.values()) for d in DIALECTS.values())
    low = stale + rule_for + wait
    high = stale + 1.0 + scrape + evaluation + rule_for + wait
    terms = (
        f"stale_after ≥ {stale:g} s + staleness tick ≤ 1 s + scrape ≤ {scrape:g} s + "
        f"evaluation ≤ {evaluation:g} s + for {rule_for:g} s + group_wait {wait:g} s"
    )
    return low, high, terms


def summary(samples: Sequence[StaleRun]) -> dict[str, Any]:
    """Medians and extremes of the samples; ``target_value`` is the worst sample, a failed
    sample counting as infinitely late."""
    from_last = [s.from_last_s for s in samples if s.from_last_s is not None]
    from_injection = [s.from_injection_s for s in samples if s.from_injection_s is not None]
    strict = [s.from_last_s if s.from_last_s is not None else math.inf for s in samples]
    return {
        "samples": f"{len(from_last)}/{len(samples)}",
        "median_s": median(from_last),
        "max_s": max(from_last) if from_last else math.nan,
        "min_s": min(from_last) if from_last else math.nan,
        "from_injection_median_s": median(from_injection),
        "target_value": max(strict) if strict else math.nan,
        "each": ", ".join(
            f"{s.exchange} {s.from_last_s:.1f}" if s.from_last_s is not None else f"{s.exchange} —"
            for s in samples
        ),
    }
