"""``sipkernel bench``: micro-benchmarks run side by side with their baselines.

Each benchmark measures sipkernel and a plain-Python baseline in the same run,
in interleaved rounds, and reports ``ratio = value / baseline_value`` against a
target ratio. Run them from the command line (``sipkernel bench``) or here::

    from sipkernel.bench import run_benchmarks
    results = run_benchmarks(["rtt_local"], quick=True)

See BENCHMARKS.md for what each benchmark measures and the latest numbers.
"""

from __future__ import annotations

from ._harness import BenchResult, stderr_progress
from ._report import format_table, markdown_section, update_markdown, write_json
from ._suite import BENCHMARK_NAMES, UnknownBenchmarkError, run_benchmarks

__all__ = [
    "BENCHMARK_NAMES",
    "BenchResult",
    "UnknownBenchmarkError",
    "format_table",
    "markdown_section",
    "run_benchmarks",
    "stderr_progress",
    "update_markdown",
    "write_json",
]
