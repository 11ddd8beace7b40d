"""``make demo`` and ``make up``: run the native stack and narrate what happens.

- ``python deploy/run_stack.py demo``: the whole stack against the simulator; a scripted incident
  (Binance's API drops every connection for about a minute, then recovers) with a live account
  of targets, alerts and each notification with its diagnosis; stops everything at the end.
- ``python deploy/run_stack.py up``: the same stack against the real exchanges
  (``deploy/exporter.yml``) until Ctrl-C.
- ``python deploy/run_stack.py ha`` (``make ha``): the high-availability topology
  (deploy/ha_stack.py: two exporters as two locations, two Prometheus replicas,
  VictoriaMetrics, two clustered Alertmanagers, two receivers on PostgreSQL) against the
  simulator, until Ctrl-C.

Every process started is stopped on exit, Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.stack import ROOT, Stack, StackError, StackOptions

SCENARIO = "binance-outage"
"""The simulator's scripted incident (simulator/scenarios/binance-outage.yml)."""
INCIDENT_EXCHANGE = "binance"
INCIDENT_SECONDS = 60.0
WAIT_RESOLVED_SECONDS = 150.0


class Narrator:
    """Prints a timestamped live account and tracks what changed since the last poll."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.t0 = time.monotonic()
        self.client = httpx.Client(timeout=3.0, trust_env=False)
        self.alert_states: dict[tuple[str, str], str] = {}
        self.target_health: dict[str, str] = {}
        self.notify_offset = 0
        self.notifications: list[dict[str, Any]] = []

    def say(self, text: str) -> None:
        """Print ``text`` with the time since the narrator started."""
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def close(self) -> None:
        """Release the HTTP client."""
        self.client.close()

    def _get(self, url: str) -> Any:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = self.client.get(url)
            if response.status_code == 200:
                return response.json()
        return None

    def poll(self) -> list[dict[str, Any]]:
        """Print changes in targets, Prometheus alerts and notifications; return new ones."""
        prometheus = self.stack.urls["prometheus"]
        targets = self._get(f"{prometheus}/api/v1/targets?state=active")
        if targets:
            for target in targets["data"]["activeTargets"]:
                job, health = target["labels"].get("job", "?"), target["health"]
                if self.target_health.get(job) != health:
                    self.target_health[job] = health
                    self.say(f"target {job} is {health} ({target['scrapeUrl']})")
        alerts = self._get(f"{prometheus}/api/v1/alerts")
        if alerts is not None:
            current: dict[tuple[str, str], str] = {}
            for alert in alerts["data"]["alerts"]:
                labels = alert["labels"]
                if labels.get("alertname") == "Watchdog":
                    continue
                key = (labels.get("alertname", "?"), labels.get("exchange", ""))
                current[key] = alert["state"]
            for key, state in current.items():
                if self.alert_states.get(key) != state:
                    self.say(f"Prometheus alert {key[0]}{{exchange={key[1]}}} is {state}")
            for key in self.alert_states.keys() - current.keys():
                self.say(f"Prometheus alert {key[0]}{{exchange={key[1]}}} is inactive")
            self.alert_states = current
        return self._read_notifications()

    def _read_notifications(self) -> list[dict[str, Any]]:
        path = self.stack.notify_file
        if not path.exists():
            return []
        with path.open("rb") as handle:
            handle.seek(self.notify_offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.notify_offset += len(complete)
        fresh = [json.loads(line) for line in complete.splitlines() if line.strip()]
        for item in fresh:
            self.notifications.append(item)
            self._print_notification(item)
        return fresh

    def _print_notification(self, item: dict[str, Any]) -> None:
        d = item.get("diagnosis") or {}
        mark = "FIRING  " if item.get("status") == "firing" else "RESOLVED"
        self.say(
            f"NOTIFICATION {mark} {item.get('alertname')} exchange={item.get('exchange')} "
            f"severity={item.get('severity')}"
        )
        pad = " " * 10
        print(f"{pad}summary:   {item.get('summary')}")
        print(
            f"{pad}diagnosis: [{d.get('source')}, {d.get('root_cause_category')}, "
            f"confidence {d.get('confidence')}] {d.get('diagnosis')}"
        )
        print(f"{pad}impact:    {d.get('impact')}")
        for i, action in enumerate(d.get("action_items") or [], 1):
            print(f"{pad}  {i}. {action}")
        print(f"{pad}recovery:  {d.get('estimated_recovery_time')}", flush=True)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, every: float = 1.0) -> bool:
        """Poll (printing changes) until ``predicate()`` or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if predicate():
                return True
            time.sleep(every)
        return False


def print_urls(stack: Stack) -> None:
    """Print where to look."""
    urls = stack.urls
    print("\nexchange-watch is running. Where to look:", flush=True)
    rows = [
        ("Prometheus (graphs, alerts)", f"{urls['prometheus']}/alerts"),
        ("Alertmanager", urls["alertmanager"]),
        ("exporter metrics", f"{urls['exporter']}/metrics"),
        ("exporter status, API keys", f"{urls['exporter']}/status"),
        ("receiver", f"{urls['receiver']}/healthz"),
    ]
    if "simulator" in urls:
        rows.append(("simulator faults", f"{urls['simulator']}/_control/faults"))
        rows.append(("simulator API keys (revoke)", f"{urls['simulator']}/_control/keys"))
    rows += [
        ("notifications (JSONL)", str(stack.notify_file)),
        ("logs and data", str(stack.run_dir)),
    ]
    for label, where in rows:
        print(f"  {label:<30} {where}")
    print(flush=True)


def _all_exchanges_up(narrator: Narrator) -> bool:
    query = "count(min by (exchange) (exchange_api_up) == 1)"
    data = narrator._get(f"{narrator.stack.urls['prometheus']}/api/v1/query?query={query}")
    try:
        return int(float(data["data"]["result"][0]["value"][1])) >= 5
    except (TypeError, KeyError, IndexError, ValueError):
        return False


def _has(narrator: Narrator, alertname: str, status: str) -> bool:
    return any(
        n.get("alertname") == alertname
        and n.get("exchange") == INCIDENT_EXCHANGE
        and n.get("status") == status
        for n in narrator.notifications
    )


def _scenario_finished(narrator: Narrator, control: str) -> bool:
    status = narrator._get(control)
    return bool(status and status.get("scenario") and status["scenario"]["state"] != "running")


def run_demo(run_dir: Path) -> int:
    """Run the scripted incident; return 0 when firing and resolved notifications arrived."""
    options = StackOptions(run_dir=run_dir)
    print("Starting simulator, exporter, receiver, Alertmanager and Prometheus ...", flush=True)
    with Stack(options) as stack:
        print_urls(stack)
        narrator = Narrator(stack)
        try:
            narrator.say("waiting for the first scrapes: every exchange should be up")
            if not narrator.wait_for(lambda: _all_exchanges_up(narrator), 60):
                narrator.say("not every exchange came up within 60 s; see the logs")
                return 1
            narrator.say("all five exchanges are up")
            control = f"{stack.urls['simulator']}/_control/scenario"
            response = narrator.client.post(control, json={"name": SCENARIO})
            response.raise_for_status()
            injected = time.monotonic()
            narrator.say(
                f"INCIDENT (scenario {SCENARIO}): {response.json()['scenario']['description']}"
            )
            fired = narrator.wait_for(
                lambda: _has(narrator, "ExchangeApiDown", "firing"), INCIDENT_SECONDS + 30
            )
            firing_after = time.monotonic() - injected if fired else None
            narrator.wait_for(lambda: _scenario_finished(narrator, control), INCIDENT_SECONDS + 30)
            recovered = time.monotonic()
            narrator.say(f"RECOVERY: {INCIDENT_EXCHANGE} answers again (scenario finished)")
            resolved = narrator.wait_for(
                lambda: _has(narrator, "ExchangeApiDown", "resolved"), WAIT_RESOLVED_SECONDS
            )
            resolved_after = time.monotonic() - recovered if resolved else None
        finally:
            narrator.close()
        print("\nSummary", flush=True)
        print(f"  firing notification   {_seconds(firing_after)} after the fault was injected")
        print(f"  resolved notification {_seconds(resolved_after)} after recovery")
        print(f"  notifications written {len(narrator.notifications)} to {stack.notify_file}")
        print("Stopping every process ...", flush=True)
    print("Stopped. Nothing is left running.", flush=True)
    return 0 if fired and resolved else 1


def run_up(run_dir: Path) -> int:
    """Run against the real exchanges until Ctrl-C."""
    options = StackOptions(
        run_dir=run_dir, exporter_config=ROOT / "deploy" / "exporter.yml", with_simulator=False
    )
    with Stack(options) as stack:
        print_urls(stack)
        print("Probing the real exchanges; Ctrl-C stops everything.", flush=True)
        narrator = Narrator(stack)
        try:
            while True:
                narrator.poll()
                bad = [name for name, alive in stack.running().items() if not alive]
                if bad:
                    narrator.say(f"{', '.join(bad)} stopped unexpectedly; see {stack.run_dir}")
                    return 1
                time.sleep(2.0)
        finally:
            narrator.close()


def run_ha(run_dir: Path) -> int:
    """Run the HA topology until Ctrl-C, printing where to look, each new notification and
    any component that stops."""
    from deploy.ha_stack import HAOptions, HAStack

    print(
        "Starting the HA topology: simulator, two exporters (two locations), PostgreSQL, "
        "VictoriaMetrics, two receivers, two Alertmanagers, two Prometheus ...",
        flush=True,
    )
    with HAStack(HAOptions(run_dir=run_dir)) as ha:
        print("\nexchange-watch HA is running. Where to look:", flush=True)
        for label, where in ha.where_to_look():
            print(f"  {label:<36} {where}")
        print(
            "\nTry: kill one receiver, Alertmanager or Prometheus (its pid is in "
            f"{ha.run_dir / 'pids.txt'}) and watch the other carry on. Ctrl-C stops everything.",
            flush=True,
        )
        (ha.run_dir / "pids.txt").write_text(
            "".join(
                f"{name} {c.process.pid}\n"
                for name, c in ha.components.items()
                if c.process is not None
            )
        )
        t0 = time.monotonic()
        offset = 0
        reported: set[str] = set()
        while True:
            if ha.notify_file.exists():
                with ha.notify_file.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
                complete = data[: data.rfind(b"\n") + 1]
                offset += len(complete)
                for line in complete.splitlines():
                    with contextlib.suppress(ValueError):
                        item = json.loads(line)
                        print(
                            f"[{time.monotonic() - t0:6.1f}s] NOTIFICATION "
                            f"{item.get('status')} {item.get('alertname')} "
                            f"exchange={item.get('exchange')} severity={item.get('severity')}",
                            flush=True,
                        )
            for name, alive in ha.running().items():
                if not alive and name not in reported:
                    reported.add(name)
                    print(f"[{time.monotonic() - t0:6.1f}s] {name} is not running", flush=True)
            time.sleep(2.0)


def _seconds(value: float | None) -> str:
    return f"{value:5.1f} s" if value is not None else "   not seen"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``demo``, ``up`` or ``ha``; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("mode", choices=["demo", "up", "ha"])
    parser.add_argument("--run-dir", type=Path, help="default: run/<mode> in the repository")
    args = parser.parse_args(argv)
    run_dir = args.run_dir or ROOT / "run" / args.mode
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    try:
        runners = {"demo": run_demo, "up": run_up, "ha": run_ha}
        return runners[args.mode](run_dir)
    except KeyboardInterrupt:
        print("\nInterrupted; every process started has been stopped.", flush=True)
        return 130
    except StackError as exc:
        print(f"\nexchange-watch stack failed: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
