"""``sipkernel bench isolation``: every configuration timed in one run; table, JSON, plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_fixtures import edited, write_app
from sipkernel import UsageError
from sipkernel.bench._isolation import (
    format_isolation_table,
    isolation_markdown,
    run_isolation,
    write_isolation_json,
)
from sipkernel.bench._plot import plot_overheads

CONFIGURATIONS = ["monolithic", "microkernel", "sandboxed", "mixed"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list:  # type: ignore[type-arg]
    folder = tmp_path_factory.mktemp("isolation")
    seen: list[str] = []
    found = run_isolation(write_app(folder), rounds=2, progress=seen.append)
    assert [line for line in seen if line.startswith("warm-up")] == [
        f"warm-up: {name}" for name in CONFIGURATIONS
    ]
    # interleaved: round 1 in manifest order, round 2 reversed
    rounds = [line.split(":")[1].split()[0] for line in seen if line.startswith("round")]
    assert rounds == CONFIGURATIONS + CONFIGURATIONS[::-1]
    return found


def test_every_configuration_is_timed_every_round(results: list) -> None:  # type: ignore[type-arg]
    assert [r.configuration for r in results] == CONFIGURATIONS
    for result in results:
        assert len(result.seconds) == len(result.startup) == 2
        assert all(seconds > 0 for seconds in result.seconds + result.startup)
        assert result.operations == 30
        assert result.unit == "pings"
        assert result.throughput == pytest.approx(30 / result.median)


def test_the_table_compares_against_monolithic(results: list) -> None:  # type: ignore[type-arg]
    table = format_isolation_table(results)
    lines = table.splitlines()
    assert lines[0].split()[:5] == ["configuration", "work", "s", "(min-max)", "pings/s"]
    assert "baseline" in lines[2]
    assert "server: process, client: process" in lines[3]
    baseline = results[0]
    assert f"{results[1].overhead(baseline):+.1%}" in lines[3]
    markdown = isolation_markdown(results)
    assert markdown.count("\n") == len(results) + 1
    assert "| baseline |" in markdown.splitlines()[2]
    assert markdown.splitlines()[2].endswith("| server: local, client: local |")


def test_json_records_carry_the_command(
    results: list,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    path = tmp_path / "isolation.json"
    write_isolation_json(path, results, "sipkernel bench isolation app.toml")
    document = json.loads(path.read_text())
    assert document["command"] == "sipkernel bench isolation app.toml"
    records = {r["configuration"]: r for r in document["results"]}
    assert records["monolithic"]["overhead_vs_baseline"] == 0.0
    assert records["sandboxed"]["placement"] == "server: sandbox, client: sandbox"
    assert records["mixed"]["min_s"] <= records["mixed"]["median_s"] <= records["mixed"]["max_s"]


@pytest.mark.no_leak_check  # matplotlib keeps its font files open for the process's life
def test_the_plot_is_written_as_png_and_svg(
    results: list,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    written = plot_overheads(results, tmp_path / "overheads", "echo")
    assert [p.name for p in written] == ["overheads.png", "overheads.svg"]
    assert written[0].read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in written[1].read_bytes()[:1000]


def test_a_manifest_without_bench_or_baseline_is_refused(tmp_path: Path) -> None:
    from app_fixtures import ECHO_APP

    no_bench = ECHO_APP[: ECHO_APP.index("[bench]")]
    with pytest.raises(UsageError, match=r"no \[bench\] section"):
        run_isolation(write_app(tmp_path, no_bench))
    no_baseline = edited("[isolation.monolithic]", "[isolation.mono]")
    no_baseline = no_baseline.replace('isolation = "monolithic"', 'isolation = "mono"')
    with pytest.raises(UsageError, match="no 'monolithic' configuration"):
        run_isolation(write_app(tmp_path, no_baseline))
