"""LLM critical budget: a hung LLM does not hold the critical page; a late diagnosis follows.

The real receiver (``python -m receiver.cli`` on a free loopback port, SQLite and a JSONL file in
a temporary directory) notifies a local fake Slack incoming webhook (``testsupport/fake_chat.py``)
and asks a local OpenAI-compatible server (``testsupport/fake_llm.py``) when an LLM is configured.
Each run posts one Alertmanager webhook, a firing critical ``ExchangeApiDown`` for binance, on
``POST /alerts/critical`` (the route the budget applies to), to a freshly started receiver (no
diagnosis cache, no earlier LLM request holding a slot). Three configurations, interleaved:

* no LLM configured (the rules diagnosis only): the baseline;
* a hung LLM (no answer to anything, its model list included, until long after
  ``LLM_TIMEOUT_SECONDS``), the page posted as soon as the receiver is ready, before its
  reachability probe has judged the LLM: the page waits the shipped
  ``LLM_CRITICAL_BUDGET_SECONDS``;
* the hung LLM, the page posted once the receiver has noticed (its probe of ``GET /models``
  timed out: ``alert_receiver_llm_reachable{provider="primary"} 0``), as on any receiver that
  runs before an incident: the page does not wait (``receiver/diagnosis/reachability.py``);
* a late LLM answering a valid diagnosis after 5 s (past the budget, within the timeout; its
  model list answers at once);
* the hung LLM again, and a second page of the same incident (another exchange) posted once the
  first has gone out: while the first diagnosis is still running past its budget, the next
  page does not wait at all (``receiver/updates.py``).

Page time: from just before the ``POST`` to the firing message's arrival at the fake Slack. Update
time: to the Slack follow-up carrying the LLM's diagnosis, which must also be appended to the
JSONL file as an ``update`` record with source ``llm``.

    python benchmarks/bench_llm_budget.py --runs 5     # about 3 minutes
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common
from benchmarks.bench_receiver import SCRUBBED_ENV
from benchmarks.slack_messages import parse_slack_message
from benchmarks.stack_bench import run_stack_section, slack_only_receiver_env
from deploy.stack import StackError, free_port, wait_for_http
from receiver.diagnosis.config import DiagnosisSettings
from receiver.notifiers.followup import UPDATE_PREFIX
from receiver.notifiers.slack import SlackNotifier
from receiver.routing import CRITICAL_ROUTE
from testsupport.fake_chat import ChatRequest, FakeChat
from testsupport.fake_llm import DEFAULT_DIAGNOSIS, FakeLLM

NAME = "llm_budget"
TITLE = "LLM critical budget: critical page with no LLM, a hung LLM and a late LLM"
HOST = "127.0.0.1"
ALERTNAME, EXCHANGE = "ExchangeApiDown", "binance"
NEXT_EXCHANGE = "bybit"
"""The second page of the incident in the ``hung_next`` configuration."""
SHIPPED_BUDGET = float(DiagnosisSettings.model_fields["llm_critical_budget_seconds"].default)
SHIPPED_TIMEOUT = float(DiagnosisSettings.model_fields["llm_timeout_seconds"].default)
MARGIN_SECONDS = 1.0
"""The acceptance point's 1 s, added to the budget the page is designed to wait."""
STOP_TIMEOUT = 3.0
"""SIGTERM, then SIGKILL after this long (a receiver with a hung diagnosis waits 5 s for it)."""
#: The late LLM's answer: the fake's own diagnosis, marked so the update can be told apart.
LATE_DIAGNOSIS: dict[str, Any] = {
    **DEFAULT_DIAGNOSIS,
    "diagnosis": "Late LLM diagnosis: Binance REST is failing on every endpoint.",
}
CONFIGS: dict[str, str] = {
    "none": "no LLM",
    "hung": "hung LLM, not yet noticed",
    "hung_noticed": "hung LLM, noticed",
    "late": "late LLM",
    "hung_next": "hung LLM, next page",
}
NOTICE_TIMEOUT = 30.0
"""Longest wait for the receiver to report the hung LLM unreachable (its probe times out in 5 s)."""


def _log(text: str) -> None:
    print(f"[bench_llm_budget {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Timings:
    """The receiver's budget and timeout, and when the fake LLMs answer (seconds)."""

    budget: float = SHIPPED_BUDGET
    llm_timeout: float = SHIPPED_TIMEOUT
    late_after: float = 5.0
    hung_after: float = 3600.0

    @property
    def wait_limit(self) -> float:
        """Longest wait for a message: past the LLM timeout, so a page held for the whole LLM
        stage is still measured (not counted as failed)."""
        return self.llm_timeout + 10.0


@dataclass(frozen=True)
class RunResult:
    """One run of one configuration.

    Attributes:
        page_s: POST → firing Slack message, or None when it did not come.
        page_source: the page's diagnosis source in the JSONL record (``rules``/``llm``).
        llm_asked: the fake LLM had been asked when the page arrived.
        update_s: POST → Slack follow-up with the LLM's diagnosis (late LLM only).
        update_recorded: a JSONL ``update`` record with source ``llm`` was written.
        error: what went wrong, if anything.
    """

    page_s: float | None
    page_source: str | None = None
    llm_asked: bool = False
    update_s: float | None = None
    update_recorded: bool = False
    error: str | None = None

    @property
    def updated(self) -> bool:
        """The late diagnosis reached Slack and the JSONL file as an update."""
        return self.update_s is not None and self.update_recorded


def webhook(seq: int, exchange: str = EXCHANGE) -> dict[str, Any]:
    """A firing critical ``ExchangeApiDown`` webhook for ``exchange``, firing since now
    (``seq`` makes its fingerprint distinct)."""
    labels = {"alertname": ALERTNAME, "exchange": exchange, "severity": "critical"}
    return {
        "version": "4",
        "groupKey": f'{{}}/{{severity="critical"}}:{{alertname="{ALERTNAME}", '
        f'exchange="{exchange}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "exchange-watch-critical",
        "groupLabels": {"alertname": ALERTNAME, "exchange": exchange},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {**labels, "job": "exchange-exporter"},
                "annotations": {"summary": f"{exchange} API is down"},
                "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.local:9090/graph",
                "fingerprint": f"11b0d9e7{seq:04x}{len(exchange):04x}",
            }
        ],
    }


def receiver_env(slack_url: str, data: Path, llm_url: str | None, t: Timings) -> dict[str, str]:
    """The receiver's environment: the fake Slack, a JSONL file and SQLite in ``data``, the LLM
    at ``llm_url`` (None: none), the budget and timeout of ``t``; nothing else configured."""
    env = dict.fromkeys(SCRUBBED_ENV, "")
    env.update(slack_only_receiver_env(slack_url))
    env.update(
        {
            "RECEIVER_DB_PATH": str(data / "receiver.db"),
            "RECEIVER_DATABASE_URL": "",
            "RECEIVER_DATABASE_URL_FILE": "",
            "NOTIFY_FILE": str(data / "notifications.jsonl"),
            "LLM_BASE_URL": llm_url or "",
            "LLM_MODEL": "bench-model" if llm_url else "",
            "LLM_CRITICAL_BUDGET_SECONDS": repr(t.budget),
            "LLM_TIMEOUT_SECONDS": repr(t.llm_timeout),
            "LLM_TOTAL_TIMEOUT_SECONDS": "",
        }
    )
    return env


def _record(path: Path, wanted: Callable[[dict[str, Any]], bool], timeout: float) -> Any:
    """The first JSONL record of ``path`` that is ``wanted``, waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        found = [r for r in (json.loads(x) for x in lines if x.strip()) if wanted(r)]
        if found or time.monotonic() >= deadline:
            return found[0] if found else None
        time.sleep(0.05)


def _slack_path(seq: int) -> str:
    return f"/slack/T000/B000/llm-budget-{seq}"  # one per run: the fake Slack is shared


def _is_update(body: Any) -> bool:
    text = body.get("text") if isinstance(body, dict) else None
    return isinstance(text, str) and UPDATE_PREFIX in text and LATE_DIAGNOSIS["diagnosis"] in text


def measure_once(config: str, chat: FakeChat, t: Timings, seq: int) -> RunResult:
    """One run of ``config`` (``none``, ``hung`` or ``late``) on a fresh receiver; never raises
    for a failed run (the result says why)."""
    hung = config.startswith("hung")
    delay = t.hung_after if hung else t.late_after
    llm = (
        None
        if config == "none"
        else FakeLLM(
            diagnosis=LATE_DIAGNOSIS, delay=delay, models_delay=t.hung_after if hung else 0.0
        ).start()
    )
    slack_path = _slack_path(seq)
    with tempfile.TemporaryDirectory(prefix="bench-llm-budget-") as tmp:
        data, port = Path(tmp), free_port()
        env = receiver_env(chat.url + slack_path, data, llm.url if llm else None, t)
        argv = [common.python(), "-m", "receiver.cli", "--listen", f"{HOST}:{port}"]
        child = common.start(argv, "receiver", env=env, log=data / "receiver.log")
        try:
            wait_for_http(f"http://{HOST}:{port}/readyz", timeout=30.0, process=child.process)
            if config == "hung_noticed" and not _noticed(port):
                return RunResult(
                    None, error=f"the LLM not reported unreachable in {NOTICE_TIMEOUT:g} s"
                )
            return _post_and_wait(config, chat, llm, t, seq, port, data)
        except (StackError, httpx.HTTPError) as exc:
            return RunResult(None, error=f"{exc.__class__.__name__}: {exc}")
        finally:
            common.stop([child], timeout=STOP_TIMEOUT)
            if llm is not None:
                llm.stop()


def _noticed(port: int) -> bool:
    """Wait until the receiver on ``port`` reports its primary LLM unreachable."""
    wanted = 'alert_receiver_llm_reachable{provider="primary"} 0.0'
    deadline = time.monotonic() + NOTICE_TIMEOUT
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if wanted in client.get(f"http://{HOST}:{port}/metrics").text:
                return True
            time.sleep(0.1)
    return False


def _post_and_wait(
    config: str, chat: FakeChat, llm: FakeLLM | None, t: Timings, seq: int, port: int, data: Path
) -> RunResult:
    """POST the webhook to the receiver on ``port``, wait for the page (and the update)."""
    slack_path = _slack_path(seq)

    def firing(exchange: str) -> Callable[[Any], bool]:
        def matches(body: Any) -> bool:
            message = parse_slack_message(body)
            return message is not None and message.matches(ALERTNAME, exchange, "firing")

        return matches

    exchanges = [EXCHANGE, NEXT_EXCHANGE] if config == "hung_next" else [EXCHANGE]
    page: ChatRequest | None = None
    began = time.monotonic()
    for exchange in exchanges:  # with hung_next, the second page is the one measured
        if page is not None:  # past Slack's one message per second per channel (pacing)
            time.sleep(SlackNotifier.min_send_interval + 0.1)
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            began = time.monotonic()
            body = webhook(seq, exchange)
            answer = client.post(f"http://{HOST}:{port}/alerts/{CRITICAL_ROUTE}", json=body)
        if answer.status_code != 200:
            return RunResult(None, error=f"POST answered {answer.status_code}")
        page = chat.wait_for(slack_path, firing(exchange), t.wait_limit, after=began)
        if page is None:
            return RunResult(None, error=f"no firing Slack message within {t.wait_limit:g} s")
    assert page is not None
    asked = llm is not None and bool(llm.chat_requests())
    journal = data / "notifications.jsonl"
    first = _record(journal, lambda r: "kind" not in r, 5.0)
    source = first["diagnosis"]["source"] if first else None
    if config != "late":
        return RunResult(page.arrived - began, source, asked)
    remaining = max(0.0, began + t.wait_limit - time.monotonic())
    update = chat.wait_for(slack_path, _is_update, remaining, after=page.arrived)
    recorded = _record(
        journal, lambda r: r.get("kind") == "update" and r["diagnosis"]["source"] == "llm", 5.0
    )
    update_s = update.arrived - began if update is not None else None
    error = None if update is not None else f"no Slack update within {t.wait_limit:g} s of the POST"
    return RunResult(page.arrived - began, source, asked, update_s, recorded is not None, error)


def measure(runs: int, t: Timings) -> dict[str, list[RunResult]]:
    """Run every configuration ``runs`` times, interleaved, against one fake Slack."""
    chat = FakeChat().start()
    results: dict[str, list[RunResult]] = {c: [] for c in CONFIGS}
    try:
        for index in range(runs):
            for number, config in enumerate(CONFIGS):
                r = measure_once(config, chat, t, seq=index * len(CONFIGS) + number)
                results[config].append(r)
                page = "failed" if r.page_s is None else f"{r.page_s:.3f} s ({r.page_source})"
                more = f", update {r.update_s:.3f} s" if r.update_s is not None else ""
                _log(f"run {index + 1}/{runs} {CONFIGS[config]}: page {page}{more}")
    finally:
        chat.stop()
    return results


def _each(values: Sequence[float | None]) -> str:
    return ", ".join("failed" if v is None else f"{v:.2f}" for v in values)


def build_section(
    results: Mapping[str, Sequence[RunResult]], t: Timings, runs: int
) -> dict[str, Any]:
    """The section (see :func:`common.section`) from measured runs; a failed page counts as
    infinitely late in the targets, a missing update as not delivered."""
    pages = {c: [r.page_s for r in results.get(c, [])] for c in CONFIGS}
    ok = {c: [v for v in pages[c] if v is not None] for c in CONFIGS}
    all_pages = {c: [math.inf if v is None else v for v in pages[c]] for c in CONFIGS}
    baseline = common.median(all_pages["none"])
    rows: list[dict[str, Any]] = []
    for config, label in CONFIGS.items():
        measured = list(results.get(config, []))
        updates = [r.update_s for r in measured]
        sources = sorted({r.page_source or "?" for r in measured if r.page_s is not None})
        updated = f"{sum(r.updated for r in measured)}/{len(measured)}"
        rows.append(
            {
                "configuration": label,
                "runs": f"{len(ok[config])}/{len(measured)}",
                "page_median_s": common.median(ok[config]),
                "page_p95_s": common.percentile(ok[config], 95),
                "page_max_s": max(ok[config], default=math.nan),
                "page_minus_no_llm_s": common.median(all_pages[config]) - baseline,
                "page_each_run_s": _each(pages[config]),
                "page_diagnosis": ", ".join(sources) or "-",
                "update_median_s": common.median([u for u in updates if u is not None]),
                "update_max_s": max((u for u in updates if u is not None), default=math.nan),
                "updated_runs": updated if config == "late" else "n/a",
            }
        )
    hung = all_pages["hung"]
    following = common.median(all_pages["hung_next"]) - baseline
    noticed = common.median(all_pages["hung_noticed"]) - baseline
    noticed_worst = max(all_pages["hung_noticed"], default=math.nan) - baseline
    late = list(results.get("late", []))
    gap = common.median(hung) - baseline
    worst = (max(hung) if hung else math.nan) - baseline
    limit = t.budget + MARGIN_SECONDS
    share = sum(r.updated for r in late) / runs if runs else math.nan
    notes = [
        f"Receiver settings: LLM_CRITICAL_BUDGET_SECONDS={t.budget:g}, LLM_TIMEOUT_SECONDS="
        f"{t.llm_timeout:g} (shipped defaults: {SHIPPED_BUDGET:g}, {SHIPPED_TIMEOUT:g}); hung LLM "
        f"answers after {t.hung_after:g} s (never within a run), late LLM after {t.late_after:g} "
        "s. Each run starts a fresh receiver; times run from just before the POST to the "
        "arrival at the fake Slack.",
        f"What is compared: once the receiver knows the LLM does not answer (its probe of "
        f"GET /models timed out, or an earlier call did), a page does not wait for it: hung "
        f"LLM, noticed − no LLM ≤ {MARGIN_SECONDS:g} s (measured {noticed:+.2f} s median, "
        f"{noticed_worst:+.2f} s slowest run). Before it knows (a page in the first seconds "
        f"after the LLM hung or after a restart), the page waits up to the budget "
        f"({t.budget:g} s): checked as hung − no LLM ≤ budget + {MARGIN_SECONDS:g} s = "
        f"{limit:g} s; measured {gap:.2f} s median, {worst:.2f} s slowest run; the page never "
        f"waited for LLM_TIMEOUT_SECONDS ({t.llm_timeout:g} s).",
        "Hung LLM: asked before the page in "
        f"{sum(r.llm_asked for r in results.get('hung', []))}/{len(hung)} runs; late LLM: the "
        "update is a Slack follow-up message (incoming webhooks cannot edit) naming the page, "
        "and a JSONL 'update' record with diagnosis source llm; updated_runs counts both.",
        "hung LLM, next page: the same hung LLM; a second critical alert of the incident "
        f"({NEXT_EXCHANGE}) is posted 1.1 s after the first page ({EXCHANGE}) went out (past "
        "Slack's one message per second per channel, which the receiver keeps), while its "
        "diagnosis is still running past the budget: that page does not wait (times from its "
        "own POST).",
        "page_minus_no_llm_s: median page time minus the no-LLM median (failed runs as "
        "infinitely late); page_p95_s interpolates between runs (numpy default).",
    ]
    for config, runs_of in results.items():
        for index, r in enumerate(runs_of, 1):
            if r.error:
                notes.append(f"{CONFIGS[config]} run {index} failed: {r.error}.")
    targets = [
        common.target(
            "hung LLM, noticed − no LLM, critical page (median)", noticed, "<=", MARGIN_SECONDS, "s"
        ),
        common.target(
            "hung LLM, noticed − no LLM, critical page (slowest run)",
            noticed_worst,
            "<=",
            MARGIN_SECONDS,
            "s",
        ),
        common.target(
            "hung LLM, not yet noticed − no LLM, critical page (median)", gap, "<=", limit, "s"
        ),
        common.target(
            "hung LLM, not yet noticed − no LLM, critical page (slowest run)",
            worst,
            "<=",
            limit,
            "s",
        ),
        common.target(
            "hung LLM − no LLM, next page of the incident (median)",
            following,
            "<=",
            MARGIN_SECONDS,
            "s",
        ),
        common.target("late diagnosis delivered as an update (share of runs)", share, ">=", 1.0),
    ]
    return common.section(NAME, TITLE, rows, targets, notes, runs=runs)


def run(runs: int = 5, timings: Timings | None = None) -> dict[str, Any]:
    """Measure every configuration ``runs`` times (at least one); return the section."""
    runs = max(1, runs)
    t = timings or Timings()
    return build_section(measure(runs, t), t, runs)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--runs N`` (default 5), ``--json PATH``; prints the section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per configuration (default 5)")
    parser.add_argument("--json", type=Path, help="also write the section as JSON here")
    args = parser.parse_args(argv)
    return run_stack_section(lambda: run(args.runs), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
