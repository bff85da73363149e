"""The cost-of-isolation plot: overhead per configuration against the baseline.

Drawn with matplotlib (the ``bench`` extra) on the Agg backend, so it needs
no display; written as PNG and SVG next to each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._core._errors import UsageError
from ._isolation import BASELINE, IsolationResult, baseline_of


def plot_overheads(results: Sequence[IsolationResult], stem: str | Path, title: str) -> list[Path]:
    """Write ``STEM.png`` and ``STEM.svg``: bars of median overhead, whiskers to min/max."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise UsageError("the plot needs matplotlib: pip install 'sipkernel[bench]'") from None
    baseline = baseline_of(results)
    names = [r.configuration for r in results]
    medians = [100 * r.overhead(baseline) for r in results]
    low = [
        m - 100 * (min(r.seconds) / baseline.median - 1)
        for m, r in zip(medians, results, strict=True)
    ]
    high = [
        100 * (max(r.seconds) / baseline.median - 1) - m
        for m, r in zip(medians, results, strict=True)
    ]
    figure, axes = pyplot.subplots(figsize=(7, 4), layout="constrained")
    bars = axes.bar(names, medians, yerr=[low, high], capsize=6, color="#4c72b0")
    axes.bar_label(bars, labels=[f"{m:+.1f}%" for m in medians], padding=3)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.margins(y=0.15)  # room for the labels above the tallest whisker
    axes.set_ylabel(f"time vs {BASELINE} (%)")
    axes.set_title(title)
    stem = Path(stem)
    written = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in written:  # no creation date in the files: a rerun changes only the data
        metadata = {"Date": None} if path.suffix == ".svg" else {"Software": None}
        figure.savefig(path, dpi=120, metadata=metadata)
    pyplot.close(figure)
    return written
