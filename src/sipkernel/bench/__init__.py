"""``sipkernel bench``: micro-benchmarks run side by side with their baselines.

Each benchmark measures sipkernel and a plain-Python baseline in the same run,
in interleaved rounds, and reports ``ratio = value / baseline_value`` against a
target ratio. Run them from the command line (``sipkernel bench``) or here::

    from sipkernel.bench import run_benchmarks
    results = run_benchmarks(["rtt_local"], quick=True)

See BENCHMARKS.md for what each benchmark measures and the latest numbers.

Names are imported on first use: a domain that imports the benchmarks'
process functions (``sipkernel.bench._procs``) does not pay for the suite.
"""

from __future__ import annotations

import typing as _typing

from .._lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:
    from ._harness import BenchResult, stderr_progress
    from ._report import format_table, markdown_section, update_markdown, write_json
    from ._suite import BENCHMARK_NAMES, UnknownBenchmarkError, run_benchmarks

_HOMES = {
    "BENCHMARK_NAMES": "._suite",
    "BenchResult": "._harness",
    "UnknownBenchmarkError": "._suite",
    "format_table": "._report",
    "markdown_section": "._report",
    "run_benchmarks": "._suite",
    "stderr_progress": "._harness",
    "update_markdown": "._report",
    "write_json": "._report",
}

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


__getattr__ = _lazy_names(__name__, _HOMES)
