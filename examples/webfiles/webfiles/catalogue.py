"""The file set, after SPECweb99: its names, its sizes and every file's expected bytes.

SPECweb99 serves directories of 36 files: four classes of nine files, class
``c`` file ``i`` holding ``(i + 1) * UNIT[c]`` bytes (0.1-0.9 KB, 1-9 KB,
10-90 KB, 100-900 KB). A file's contents are a function of its name alone
(SHAKE-256 of the name), so the client checks every byte it reads without
trusting the disk image, the disk driver or the file system.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

CLASS_UNITS = (102, 1024, 10 * 1024, 100 * 1024)
"""Bytes per size step of each class: file ``i`` of class ``c`` is ``(i + 1) * CLASS_UNITS[c]``."""

FILES_PER_CLASS = 9

DIRECTORIES = 4
"""Directories in the image: about 5 MB each, so about 20 MB in all."""

CONTENT_KEY = b"sipkernel webfiles v1\0"
"""What keys every file's contents (changing it changes every byte, and the image's digest)."""


@dataclass(frozen=True)
class FileSpec:
    """One file of the set: where it sits in SPECweb99's scheme, its name and size."""

    directory: int
    size_class: int
    index: int

    @property
    def name(self) -> str:
        """SPECweb99's path, e.g. ``dir00001/class2_7``."""
        return f"dir{self.directory:05d}/class{self.size_class}_{self.index}"

    @property
    def size(self) -> int:
        """Its size in bytes."""
        return (self.index + 1) * CLASS_UNITS[self.size_class]


def catalogue(directories: int = DIRECTORIES) -> tuple[FileSpec, ...]:
    """Every file of an image of ``directories`` directories, in image order."""
    return tuple(
        FileSpec(directory, size_class, index)
        for directory in range(directories)
        for size_class in range(len(CLASS_UNITS))
        for index in range(FILES_PER_CLASS)
    )


def content(name: str, size: int) -> bytes:
    """The ``size`` bytes file ``name`` holds: a SHAKE-256 stream keyed by its name."""
    return hashlib.shake_256(CONTENT_KEY + name.encode()).digest(size)
