"""``sipkernel bench isolation``: one application under every configuration, in one run.

Singularity's experiment, redone: the same application (by default
WebFiles) runs under each of its manifest's isolation configurations, in
interleaved rounds (round 1 in manifest order, round 2 reversed, ...) after
one untimed warm-up of each, so drift on a shared host hits all alike. Each
run is timed in two parts: *start-up*, ``Application.start()`` (every domain
made and every process started), and *work*, from then to the main process's
exit. The overhead is computed on the work, as Singularity's was (its SIPs
were running when the clock started); start-up is reported beside it.

All runs share one kernel, as the applications of a long-lived deployment
would: its zygotes are started (and warmed by the warm-up round) once, and
every run makes and closes its own domains.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._core._errors import UsageError
from .._core._kernel import Kernel
from ..app._commands import placement_text
from ..app._resolve import Blueprint, load_blueprint
from ..app._runner import Application
from ._harness import Progress, quiet

DEFAULT_APP = Path(__file__).resolve().parents[3] / "examples" / "webfiles" / "app.toml"
"""WebFiles, when sipkernel runs from its source tree."""

BASELINE = "monolithic"

RUN_TIMEOUT = 600.0
"""Seconds one run may take before the benchmark gives up on it."""


@dataclasses.dataclass(frozen=True)
class IsolationResult:
    """The timed runs of one configuration."""

    configuration: str
    placement: str
    seconds: tuple[float, ...]
    """The work of each round: from the end of start-up to the main process's exit."""
    startup: tuple[float, ...]
    """The start-up of each round: ``Application.start()``."""
    operations: int
    unit: str

    @property
    def startup_median(self) -> float:
        return statistics.median(self.startup)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def throughput(self) -> float:
        """Operations per second at the median time."""
        return self.operations / self.median

    def overhead(self, baseline: IsolationResult) -> float:
        """Median time relative to ``baseline``'s, minus one (0.05 is +5%)."""
        return self.median / baseline.median - 1.0

    def to_record(self, baseline: IsolationResult) -> dict[str, Any]:
        return {
            "configuration": self.configuration,
            "placement": self.placement,
            "seconds": list(self.seconds),
            "startup_s": list(self.startup),
            "median_s": self.median,
            "min_s": min(self.seconds),
            "max_s": max(self.seconds),
            "operations": self.operations,
            "unit": self.unit,
            "throughput_per_s": self.throughput,
            "overhead_vs_baseline": self.overhead(baseline),
            "baseline": baseline.configuration,
        }


def run_isolation(
    manifest: str | Path = DEFAULT_APP,
    *,
    rounds: int | None = None,
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Progress = quiet,
) -> list[IsolationResult]:
    """Run the application under each configuration; results in manifest order."""
    blueprint = load_blueprint(manifest)
    bench = blueprint.manifest.bench
    if bench is None:
        raise UsageError(f"{manifest} has no [bench] section: say what counts as the work done")
    if BASELINE not in blueprint.manifest.isolation:
        raise UsageError(f"{manifest} has no {BASELINE!r} configuration to compare against")
    rounds = bench.rounds if rounds is None else rounds
    if rounds < 1:
        raise UsageError(f"rounds must be at least 1, not {rounds}")
    configs = list(blueprint.manifest.isolation)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
    with Kernel(preload=_modules(blueprint)) as kernel:
        run = _Runner(kernel, blueprint, data_dir, overrides or {})
        for name in configs:
            progress(f"warm-up: {name}")
            run(name)
        for number in range(rounds):
            order = configs if number % 2 == 0 else configs[::-1]
            for name in order:
                startup, work = run(name)
                times[name].append((startup, work))
                progress(f"round {number + 1}/{rounds}: {name} {work:.3f} s")
    operations = _operations(blueprint, overrides or {})
    return [
        IsolationResult(
            configuration=name,
            placement=placement_text(blueprint, name),
            seconds=tuple(work for _, work in times[name]),
            startup=tuple(startup for startup, _ in times[name]),
            operations=operations,
            unit=bench.unit,
        )
        for name in configs
    ]


def _modules(blueprint: Blueprint) -> list[str]:
    """The application's modules, for the zygotes to import once."""
    return sorted({fn.__module__ for fn in blueprint.functions.values()})


@dataclasses.dataclass
class _Runner:
    kernel: Kernel
    blueprint: Blueprint
    data_dir: str | Path | None
    overrides: Mapping[str, Mapping[str, Any]]

    def __call__(self, configuration: str) -> tuple[float, float]:
        """Run once under ``configuration``: seconds of start-up, then of work."""
        app = Application(
            self.blueprint,
            self.kernel,
            configuration=configuration,
            data_dir=self.data_dir,
            overrides=self.overrides,
        )
        started = time.perf_counter()
        try:
            app.start()
            running = time.perf_counter()
            outcome = app.wait(RUN_TIMEOUT)
            finished = time.perf_counter()
        finally:
            app.stop()
        if outcome is None or not outcome.is_normal:
            what = "did not finish" if outcome is None else outcome.describe()
            raise UsageError(f"{configuration}: the application failed: {what}")
        return running - started, finished - running


def _operations(blueprint: Blueprint, overrides: Mapping[str, Mapping[str, Any]]) -> int:
    bench = blueprint.manifest.bench
    assert bench is not None  # checked by the caller
    process, _, arg = bench.operations.partition(".")
    value = overrides.get(process, {}).get(arg, blueprint.manifest.processes[process].args[arg])
    return int(value)


def _cells(result: IsolationResult, baseline: IsolationResult) -> tuple[str, ...]:
    overhead = "baseline" if result is baseline else f"{result.overhead(baseline):+.1%}"
    return (
        result.configuration,
        f"{result.median:.3f} ({min(result.seconds):.3f}-{max(result.seconds):.3f})",
        f"{result.throughput:,.0f}",
        overhead,
        f"{1000 * result.startup_median:.0f}",
        result.placement,
    )


def _header(unit: str) -> tuple[str, ...]:
    return (
        "configuration",
        "work s (min-max)",
        f"{unit}/s",
        "overhead",
        "start-up ms",
        "placement",
    )


def format_isolation_table(results: Sequence[IsolationResult]) -> str:
    """The paper's table: time and throughput per configuration, overhead vs monolithic."""
    baseline = baseline_of(results)
    rows = [_header(results[0].unit), *(_cells(r, baseline) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def isolation_markdown(results: Sequence[IsolationResult]) -> str:
    """The same table in Markdown."""
    baseline = baseline_of(results)
    header = _header(results[0].unit)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cells(r, baseline)) + " |" for r in results]
    return "\n".join(lines)


def write_isolation_json(
    path: str | Path, results: Sequence[IsolationResult], command: str
) -> None:
    """One record per configuration, with the command that produced them."""
    baseline = baseline_of(results)
    document = {"command": command, "results": [r.to_record(baseline) for r in results]}
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def baseline_of(results: Sequence[IsolationResult]) -> IsolationResult:
    """The result every other one is compared with (``monolithic``)."""
    for result in results:
        if result.configuration == BASELINE:
            return result
    raise UsageError(f"no {BASELINE!r} result to compare against")
