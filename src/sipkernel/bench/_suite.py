"""The benchmark suite: which benchmarks exist, in which order they run.

The suite names each benchmark's module and function, imported when it runs:
listing the names (``sipkernel --help`` does) imports no kernel.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

from ._harness import Benchmark, BenchResult, Progress, Settings, quiet

QUICK_ROUNDS = 3
DEFAULT_ROUNDS = 7

Runner = Callable[[Settings, Progress, frozenset[str]], list[BenchResult]]


def _deferred(module: str, function: str) -> Runner:
    """``sipkernel.bench.<module>.<function>``, imported when called."""

    def run(settings: Settings, progress: Progress, selected: frozenset[str]) -> list[BenchResult]:
        runner: Runner = getattr(importlib.import_module(f"{__package__}.{module}"), function)
        return runner(settings, progress, selected)

    return run


SUITE: tuple[Benchmark, ...] = (
    Benchmark(("rtt_local",), _deferred("_messaging", "run_local")),
    Benchmark(
        ("rtt_process_same_core", "rtt_process_cross_core"),
        _deferred("_messaging", "run_process"),
    ),
    Benchmark(("spawn_local_first_reply",), _deferred("_spawning", "run_spawn_local")),
    Benchmark(("idle_local_async_100k",), _deferred("_memory", "run_idle")),
    Benchmark(("process_domain_start",), _deferred("_spawning", "run_process_domain")),
    Benchmark(("sandbox_domain_start",), _deferred("_sandboxing", "run_sandbox_start")),
    Benchmark(("rtt_sandbox",), _deferred("_sandboxing", "run_sandbox_rtt")),
    Benchmark(("sandbox_command_true",), _deferred("_sandboxing", "run_sandbox_command")),
)

BENCHMARK_NAMES: tuple[str, ...] = tuple(name for bench in SUITE for name in bench.names)


class UnknownBenchmarkError(ValueError):
    """A benchmark name that the suite does not have."""


def run_benchmarks(
    names: Iterable[str] | None = None,
    *,
    quick: bool = False,
    rounds: int | None = None,
    progress: Progress = quiet,
) -> list[BenchResult]:
    """Run the named benchmarks (all by default) and return their results in suite order.

    ``quick`` runs few iterations (for tests); ``rounds`` is the number of
    timed rounds per benchmark (default 7, or 3 with ``quick``).
    """
    selected = frozenset(BENCHMARK_NAMES if names is None else names)
    unknown = sorted(selected - set(BENCHMARK_NAMES))
    if unknown:
        raise UnknownBenchmarkError(
            f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARK_NAMES)})"
        )
    if rounds is None:
        rounds = QUICK_ROUNDS if quick else DEFAULT_ROUNDS
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    settings = Settings(quick=quick, rounds=rounds)
    results: list[BenchResult] = []
    for bench in SUITE:
        if selected.isdisjoint(bench.names):
            continue
        for result in bench.run(settings, progress, selected):
            if result.name in selected:
                results.append(result)
                progress(
                    f"{result.name}: {result.value:.4g} {result.unit} vs baseline "
                    f"{result.baseline_value:.4g} {result.unit} = {result.ratio:.2f}x "
                    f"(target <= {result.target:g}x: {'met' if result.met else 'missed'})"
                )
    return results
