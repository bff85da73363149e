"""The benchmark harness: settings, records, interleaved rounds, CPU pinning.

Every benchmark measures sipkernel and its baseline *in the same run*, in
interleaved rounds (A B, then B A, ...), so that noise from a shared host hits
both alike. A round yields one number per contender (the mean over that
round's iterations); the reported value is the median over rounds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Settings:
    """How hard to run: ``quick`` for tests, ``rounds`` for the number of timed rounds."""

    quick: bool = False
    rounds: int = 7

    def scale(self, full: int, quick: int) -> int:
        """An iteration count: ``full`` normally, ``quick`` under ``--quick``."""
        return quick if self.quick else full


@dataclasses.dataclass(frozen=True)
class BenchResult:
    """One benchmark's outcome; ``ratio = value / baseline_value``, met if ``ratio <= target``."""

    name: str
    unit: str
    value: float
    baseline: str
    baseline_value: float
    target: float
    notes: str = ""
    placement: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value

    @property
    def met(self) -> bool:
        return self.ratio <= self.target

    def to_record(self) -> dict[str, Any]:
        """The JSON record: every field, plus the derived ``ratio`` and ``met``."""
        return {
            "name": self.name,
            "unit": self.unit,
            "value": self.value,
            "baseline": self.baseline,
            "baseline_value": self.baseline_value,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "notes": self.notes,
            "placement": self.placement,
        }


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A family of benchmarks run together (they share set-up, e.g. a kernel)."""

    names: tuple[str, ...]
    run: Callable[[Settings, Progress, frozenset[str]], list[BenchResult]]
    """Called with the settings, a progress printer and the selected names."""


def stderr_progress(stream: TextIO | None = None) -> Progress:
    """A progress printer writing timestamped lines to stderr."""
    start = time.monotonic()

    def progress(message: str) -> None:
        out = stream or sys.stderr
        print(f"[{time.monotonic() - start:6.1f}s] {message}", file=out, flush=True)

    return progress


def quiet(message: str) -> None:
    """A progress printer that prints nothing."""


# -- timing ------------------------------------------------------------------------------


def interleave(
    contenders: Sequence[tuple[str, Callable[[], float]]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each contender once per round, alternating the order; returns samples by label.

    ``warmup`` rounds run first and are discarded.
    """
    samples: dict[str, list[float]] = {label: [] for label, _ in contenders}
    for i in range(warmup + rounds):
        order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
        for label, fn in order:
            value = fn()
            if i >= warmup:
                samples[label].append(value)
    return samples


def per_op_us(fn: Callable[[int], None], n: int) -> float:
    """Microseconds per operation of ``fn(n)``, which performs ``n`` operations."""
    start = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - start) / n / 1000.0


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def spread(samples: Sequence[float]) -> str:
    """``median (min-max), n rounds`` for the notes."""
    low, mid, high = (_num(v) for v in (min(samples), median(samples), max(samples)))
    return f"{mid} ({low}-{high}), {len(samples)} rounds"


def compare(mine: Sequence[float], base: Sequence[float]) -> str:
    """Both spreads, and the spread of the per-round ratios (rounds are paired)."""
    ratios = [m / b for m, b in zip(mine, base, strict=True)]
    low, mid, high = min(ratios), median(ratios), max(ratios)
    return (
        f"sipkernel us: {spread(mine)}; baseline us: {spread(base)}; "
        f"per-round ratio {mid:.2f}x ({low:.2f}-{high:.2f})"
    )


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


# -- CPU placement -------------------------------------------------------------------------


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


@contextlib.contextmanager
def pinned_thread(cpus: set[int]) -> Iterator[None]:
    """Pin the calling thread (only) to ``cpus`` for the block."""
    before = os.sched_getaffinity(0)  # pid 0: the calling thread
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pin_os_process(pid: int, cpus: set[int]) -> None:
    """Pin every thread of OS process ``pid`` (and so the threads it starts later)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(tid, cpus)


# -- memory ----------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this OS process, from ``/proc/self/statm``."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def unpinned_result(
    name: str, samples: dict[str, list[float]], *, baseline: str, target: float, notes: str
) -> BenchResult:
    """The record of an unpinned benchmark timed in microseconds: the medians of the
    ``sipkernel`` and ``baseline`` samples, with their spread before ``notes``."""
    mine, base = samples["sipkernel"], samples["baseline"]
    return BenchResult(
        name=name,
        unit="us",
        value=median(mine),
        baseline=baseline,
        baseline_value=median(base),
        target=target,
        placement="unpinned",
        notes=f"{compare(mine, base)}; {notes}",
    )
