"""The benchmark harness: records are complete and consistent (no timing assertions).

Each benchmark runs with ``quick=True``; the autouse leak check of conftest.py
then verifies that it left no thread, descriptor or OS process behind.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from sipkernel import bench
from sipkernel.bench import BenchResult

FIELDS: dict[str, type] = {
    "name": str,
    "unit": str,
    "value": float,
    "baseline": str,
    "baseline_value": float,
    "ratio": float,
    "target": float,
    "met": bool,
    "notes": str,
    "placement": str,
}


def check_record(record: dict[str, Any]) -> None:
    """Every field present with a sane type, and the derived fields consistent."""
    assert set(FIELDS) <= set(record), f"missing: {set(FIELDS) - set(record)}"
    for field, kind in FIELDS.items():
        assert isinstance(record[field], kind), f"{field}={record[field]!r} is not a {kind}"
    assert record["name"] in bench.BENCHMARK_NAMES
    assert record["unit"]
    assert record["baseline"]
    assert record["value"] > 0
    assert record["baseline_value"] > 0
    assert record["target"] > 0
    assert math.isclose(record["ratio"], record["value"] / record["baseline_value"])
    assert record["met"] == (record["ratio"] <= record["target"])


def run_to_json(names: list[str], path: Path, rounds: int | None = None) -> list[dict[str, Any]]:
    results = bench.run_benchmarks(names, quick=True, rounds=rounds)
    bench.write_json(path, results)
    records: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
    return records


def test_local_benchmarks_write_complete_records(tmp_path: Path) -> None:
    names = ["rtt_local", "spawn_local_first_reply"]
    records = run_to_json(names, tmp_path / "results.json", rounds=2)
    assert [r["name"] for r in records] == names  # suite order, one record each
    for record in records:
        check_record(record)
        assert record["unit"] == "us"


@pytest.mark.slow
def test_idle_processes_benchmark_is_absolute_and_cleans_up(tmp_path: Path) -> None:
    (record,) = run_to_json(["idle_local_async_100k"], tmp_path / "results.json")
    check_record(record)
    assert record["unit"] == "MB"
    assert record["baseline_value"] == 1000.0  # the 1 GB budget, so ratio = share of it
    assert "scaled linearly" in record["notes"]  # --quick spawns fewer than 100,000


@pytest.mark.slow
def test_process_round_trip_reports_its_placement(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    (record,) = run_to_json(["rtt_process_same_core"], tmp_path / "results.json", rounds=1)
    check_record(record)
    cpu = min(before)
    assert record["placement"] == f"same core: parent CPU {cpu}, child CPU {cpu}"
    assert os.sched_getaffinity(0) == before  # the pinning was undone


def test_unknown_benchmark_is_refused() -> None:
    with pytest.raises(bench.UnknownBenchmarkError, match="no_such_bench"):
        bench.run_benchmarks(["rtt_local", "no_such_bench"], quick=True)


def test_rounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        bench.run_benchmarks(["rtt_local"], quick=True, rounds=0)


# -- reporting (no benchmark runs) ----------------------------------------------------------


def fake(name: str, value: float, baseline_value: float, target: float) -> BenchResult:
    return BenchResult(
        name=name,
        unit="us",
        value=value,
        baseline="a baseline",
        baseline_value=baseline_value,
        target=target,
        notes="some notes",
        placement="unpinned",
    )


def test_record_derives_ratio_and_met() -> None:
    missed = fake("rtt_local", 30.0, 20.0, 1.0).to_record()
    check_record(missed)
    assert missed["ratio"] == 1.5
    assert missed["met"] is False
    met = fake("rtt_local", 10.0, 20.0, 0.5).to_record()
    assert met["ratio"] == 0.5
    assert met["met"] is True  # the boundary counts as met


def test_markdown_block_is_replaced_and_prose_kept(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nProse before.\n", "utf-8")
    bench.update_markdown(doc, [fake("rtt_local", 30.0, 20.0, 1.0)], "sipkernel bench")
    first = doc.read_text("utf-8")
    assert first.startswith("# Benchmarks\n\nProse before.\n")
    assert "| `rtt_local` | 30.0 µs | a baseline | 20.0 µs | 1.50x | <= 1x | **no** |" in first

    doc.write_text(first + "\nProse after.\n", "utf-8")
    bench.update_markdown(doc, [fake("rtt_local", 10.0, 20.0, 1.0)], "sipkernel bench")
    second = doc.read_text("utf-8")
    assert second.count("sipkernel-bench:begin") == 1
    assert "| 0.50x | <= 1x | yes |" in second
    assert "30.0 µs" not in second
    assert second.startswith("# Benchmarks\n\nProse before.\n")
    assert second.endswith("\nProse after.\n")


def test_markdown_file_is_created(tmp_path: Path) -> None:
    doc = tmp_path / "new.md"
    bench.update_markdown(doc, [fake("rtt_local", 1.0, 2.0, 1.0)], "sipkernel bench")
    text = doc.read_text("utf-8")
    assert text.startswith("# sipkernel benchmarks")
    assert "Machine:" in text


def test_terminal_table_lists_every_result() -> None:
    table = bench.format_table(
        [fake("rtt_local", 30.0, 20.0, 1.0), fake("spawn_local_first_reply", 1500.0, 100, 0.15)]
    )
    assert "rtt_local" in table
    assert "1.50 ms" in table  # microseconds past 1000 read as ms
    assert "NO" in table


def test_the_forkserver_baseline_is_timed_in_a_helper_that_ends_with_it() -> None:
    # The helper is started with -c: its fork server's children have no main
    # script to import again, whatever started the benchmark.
    from sipkernel.bench._spawning import ForkserverBaseline

    with ForkserverBaseline() as forkserver:
        assert forkserver.round(2) > 0
        helper = forkserver._helper
    assert helper.returncode == 0
