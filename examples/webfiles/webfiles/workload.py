"""Which file the client reads next: SPECweb99's static-GET mix, from a seeded generator.

SPECweb99 picks a request's size class with fixed probabilities (35 % class
0, 50 % class 1, 14 % class 2, 1 % class 3) and a file within the class by
a Zipf distribution whose most popular file is in the middle: the nine
files' popularity ranks are 9, 6, 4, 2, 1, 3, 5, 7, 8 (file 4 is asked for
35 % of the time, file 0 4 %). Directories are equally likely here.

The whole mix is flattened into one cumulative table, so a choice is one
random number and one binary search.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence

from .catalogue import FILES_PER_CLASS, FileSpec

CLASS_WEIGHTS = (0.35, 0.50, 0.14, 0.01)
"""The probability of each size class."""

FILE_RANKS = (9, 6, 4, 2, 1, 3, 5, 7, 8)
"""The Zipf rank of each file within a class (rank 1 is the most popular)."""


def zipf(ranks: Sequence[int]) -> list[float]:
    """Probabilities proportional to ``1 / rank``, one per rank, summing to 1."""
    weights = [1.0 / rank for rank in ranks]
    total = sum(weights)
    return [weight / total for weight in weights]


FILE_WEIGHTS = tuple(zipf(FILE_RANKS))
"""The probability of each file within its class."""

assert len(FILE_WEIGHTS) == FILES_PER_CLASS


def probability(spec: FileSpec, directories: int) -> float:
    """How likely one request is to name ``spec``, in a set of ``directories`` directories."""
    return CLASS_WEIGHTS[spec.size_class] * FILE_WEIGHTS[spec.index] / directories


class FileChooser:
    """Chooses files from ``files`` with the SPECweb99 mix; the same ``seed``, the same files."""

    def __init__(self, files: Sequence[FileSpec], seed: int) -> None:
        self.files = tuple(files)
        directories = len({spec.directory for spec in self.files})
        weights = [probability(spec, directories) for spec in self.files]
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]
        self._random = random.Random(seed)

    def choose(self) -> FileSpec:
        """The next file to read."""
        point = self._random.random() * self._total
        index = bisect.bisect_right(self._cumulative, point)
        return self.files[min(index, len(self.files) - 1)]
