"""Tests of the LLM critical budget benchmark (``benchmarks/bench_llm_budget.py``): the section
built from made-up runs (targets met and missed, failed runs), the webhook and environment it
uses, and one short end-to-end run against real receivers (structure only, no timing checks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import bench_llm_budget as bench
from receiver.models import AlertmanagerWebhook

T = bench.Timings()


def _late(page: float, update: float | None = 5.0, recorded: bool = True) -> bench.RunResult:
    return bench.RunResult(page, "rules", True, update, recorded)


def _results(
    none: list[float | None],
    hung: list[float | None],
    late: list[bench.RunResult],
    hung_next: list[float | None] | None = None,
) -> dict[str, list[bench.RunResult]]:
    following = hung_next if hung_next is not None else [p and p - 1.9 for p in hung]
    return {
        "none": [bench.RunResult(p, "rules") for p in none],
        "hung": [bench.RunResult(p, "rules", True) for p in hung],
        "hung_noticed": [bench.RunResult(p and p - 1.95, "rules", True) for p in hung],
        "late": late,
        "hung_next": [bench.RunResult(p, "rules", True) for p in following],
    }


def _targets(section: dict[str, object]) -> dict[str, dict[str, object]]:
    targets = section["targets"]
    assert isinstance(targets, list)
    return {t["name"]: t for t in targets}


def test_section_meets_the_targets_when_the_page_waits_only_the_budget() -> None:
    results = _results([0.1, 0.2, 0.3], [2.1, 2.2, 2.9], [_late(2.1), _late(2.2), _late(2.3)])
    section = bench.build_section(results, T, 3)
    assert section["name"] == "llm_budget" and section["title"] == bench.TITLE
    assert section["runs"] == 3
    assert [r["configuration"] for r in section["rows"]] == [
        "no LLM",
        "hung LLM, not yet noticed",
        "hung LLM, noticed",
        "late LLM",
        "hung LLM, next page",
    ]
    none, hung, noticed, late, following = section["rows"]
    assert noticed["page_minus_no_llm_s"] == pytest.approx(0.05)
    assert following["page_median_s"] == pytest.approx(0.3)
    assert none["runs"] == "3/3" and none["page_median_s"] == pytest.approx(0.2)
    assert hung["page_max_s"] == pytest.approx(2.9)
    assert hung["page_minus_no_llm_s"] == pytest.approx(2.0)
    assert late["updated_runs"] == "3/3" and hung["updated_runs"] == "n/a"
    assert late["update_median_s"] == pytest.approx(5.0)
    assert hung["page_diagnosis"] == "rules"
    targets = _targets(section)
    assert len(targets) == 6 and all(t["met"] for t in targets.values())
    strict = targets["hung LLM, noticed − no LLM, critical page (median)"]
    assert strict["value"] == pytest.approx(0.05) and strict["limit"] == 1.0
    following_gap = targets["hung LLM − no LLM, next page of the incident (median)"]
    assert following_gap["value"] == pytest.approx(0.1) and following_gap["limit"] == 1.0
    median = targets["hung LLM, not yet noticed − no LLM, critical page (median)"]
    assert median["value"] == pytest.approx(2.0)
    assert median["limit"] == pytest.approx(T.budget + bench.MARGIN_SECONDS)
    assert targets["hung LLM, not yet noticed − no LLM, critical page (slowest run)"][
        "value"
    ] == pytest.approx(2.7)
    assert any("hung − no LLM" in note and "noticed" in note for note in section["notes"])
    json.dumps(section)  # what run.py writes


def test_a_page_held_for_the_llm_timeout_and_a_missing_update_miss_the_targets() -> None:
    missing = bench.RunResult(2.0, "rules", True, None, False, error="no Slack update")
    late = [_late(2.0), missing, _late(2.0, recorded=False)]
    results = _results([0.1, 0.1, 0.1], [2.0, 20.1, 20.2], late)
    section = bench.build_section(results, T, 3)
    targets = _targets(section)
    assert not targets["hung LLM, not yet noticed − no LLM, critical page (median)"]["met"]
    assert not targets["hung LLM, not yet noticed − no LLM, critical page (slowest run)"]["met"]
    share = targets["late diagnosis delivered as an update (share of runs)"]
    assert share["value"] == pytest.approx(1 / 3) and not share["met"]
    assert section["rows"][3]["updated_runs"] == "1/3"
    assert any("late LLM run 2 failed: no Slack update" in n for n in section["notes"])


def test_a_failed_page_counts_as_infinitely_late() -> None:
    results = _results([0.1], [None], [_late(2.0)])
    results["hung"] = [bench.RunResult(None, error="no firing Slack message within 30 s")]
    section = bench.build_section(results, T, 1)
    hung = section["rows"][1]
    assert hung["runs"] == "0/1" and hung["page_each_run_s"] == "failed"
    assert math.isnan(hung["page_median_s"])
    assert not _targets(section)["hung LLM, not yet noticed − no LLM, critical page (median)"][
        "met"
    ]
    assert any("hung LLM, not yet noticed run 1 failed" in n for n in section["notes"])


def test_webhook_is_a_firing_critical_alert_distinct_per_run() -> None:
    hooks = [AlertmanagerWebhook.model_validate(bench.webhook(seq)) for seq in (0, 1)]
    alerts = [w.alerts[0] for w in hooks]
    assert {a.labels["severity"] for a in alerts} == {"critical"}
    assert {a.status for a in alerts} == {"firing"}
    assert alerts[0].fingerprint != alerts[1].fingerprint


def test_receiver_env_sets_the_shipped_budget_and_no_llm_when_asked(tmp_path: Path) -> None:
    env = bench.receiver_env("http://127.0.0.1:1/slack/x", tmp_path, None, T)
    assert env["LLM_BASE_URL"] == "" and env["LLM_MODEL"] == ""
    assert float(env["LLM_CRITICAL_BUDGET_SECONDS"]) == bench.SHIPPED_BUDGET == 2.0
    assert float(env["LLM_TIMEOUT_SECONDS"]) == bench.SHIPPED_TIMEOUT
    assert env["RECEIVER_ROUTING_FILE"] == "" and env["DISCORD_WEBHOOK_URL"] == ""
    with_llm = bench.receiver_env("http://127.0.0.1:1/slack/x", tmp_path, "http://llm/v1", T)
    assert with_llm["LLM_BASE_URL"] == "http://llm/v1" and with_llm["LLM_MODEL"]


def test_registered_as_a_make_bench_section() -> None:
    from benchmarks.run import BENCHMARKS

    assert "llm_budget" in BENCHMARKS


@pytest.mark.e2e
def test_one_short_run_of_every_configuration() -> None:
    quick = bench.Timings(budget=0.5, late_after=2.0, hung_after=600.0)
    section = bench.run(1, quick)
    rows = {r["configuration"]: r for r in section["rows"]}
    assert set(rows) == set(bench.CONFIGS.values())
    assert rows["hung LLM, next page"]["page_diagnosis"] == "rules"
    assert all(r["runs"] == "1/1" for r in rows.values()), section["notes"]
    assert rows["hung LLM, not yet noticed"]["page_diagnosis"] == "rules"  # not waited for
    assert rows["hung LLM, noticed"]["page_diagnosis"] == "rules"
    assert rows["late LLM"]["updated_runs"] == "1/1", section["notes"]
    assert not math.isnan(rows["late LLM"]["update_median_s"])
    assert len(section["targets"]) == 6
    assert {"name", "value", "op", "limit", "unit", "met"} <= set(section["targets"][0])
