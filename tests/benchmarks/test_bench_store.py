"""The store benchmark's section (``benchmarks/bench_store.py``) from made-up figures: one row
per measurement with a column per backend, the storm's size series and the takeover target (the
measurements themselves are left to ``make bench``)."""

from __future__ import annotations

from typing import Any

from benchmarks import bench_store

MB = bench_store.MB


def _backend(rate: float) -> dict[str, Any]:
    return {
        "http": {
            "rate": rate,
            "p50": 20.0,
            "p99": 90.0,
            "stored": 100,
            "acked": 100,
            "errors": 0,
            "server_cpu": 0.8,
        },
        "ingest1": 1000.0,
        "ingest64": 5000.0,
        "storm": {
            "samples": [
                (10.0, 8 * MB, 400, 800, 5),
                (20.0, 12 * MB, 800, 1600, 3),
                (30.0, 11 * MB, 500, 900, 2),
            ],
            "acked": 1200,
            "errors": 0,
            "pruned": 1000.0,
        },
    }


def test_section_rows_notes_and_target() -> None:
    figures = {"sqlite": _backend(500.0), "postgresql": _backend(300.0)}
    takeovers = {
        15.0: {
            "leased": 4,
            "leased_done": 12.5,
            "all_done": 14.0,
            "delivered": 1.0,
            "duplicates": 1,
        },
        3.0: {"leased": 4, "leased_done": 3.2, "all_done": 6.0, "delivered": 1.0, "duplicates": 0},
    }
    result = bench_store._section(figures, takeovers, [1], [0])
    assert result["name"] == "store"
    rows = {row["measurement"]: row for row in result["rows"]}
    assert all(set(row) == {"measurement", "sqlite", "postgresql"} for row in rows.values())
    assert rows["HTTP intake, webhooks/s (16 conns)"]["postgresql"] == 300.0
    assert rows["storm: database MB, largest sample"]["sqlite"] == 12.0
    assert rows["storm: database MB at the end"]["sqlite"] == 11.0
    assert rows["storm: notifications pending at the end"]["sqlite"] == 2
    assert rows["takeover, lease 15 s: kill → dead one's leased done s"]["postgresql"] == 12.5
    (target,) = result["targets"]
    assert target["value"] == 12.5 and target["met"]
    assert any(
        "Storm on postgresql" in note and "20s 12.0 MB (800/1600/3)" in note
        for note in result["notes"]
    )
