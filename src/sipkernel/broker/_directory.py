"""The serving process of a read-only directory grant.

It holds the granted directory open (the broker opened it and closes it when
this process ends) and resolves every requested path beneath it (see
``_beneath``). Only regular files are read: a FIFO or a device inside the
directory could block the broker or reach hardware, so reading one is refused.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from .._core._endpoint import Endpoint
from ._audit import quoted, refuse
from ._beneath import kind_of, open_beneath
from ._errors import CapabilityRefused
from ._messages import (
    CHUNK,
    Data,
    DirEntry,
    ListDir,
    Listing,
    ReadFile,
    StatPath,
    Status,
    WriteFile,
)
from ._serving import guarded, invalid, read_at, serve_forever

_ENTRY_OVERHEAD = 64
"""A generous bound on one listing entry's encoded size, besides its name."""


def serve_directory(requests: Endpoint, root_fd: int, sink: str) -> None:
    """Answer ``DIRECTORY`` requests about the directory open as ``root_fd``."""
    serve_forever(requests, lambda request: _answer(request, root_fd, sink))


def _answer(request: Any, root: int, sink: str) -> Any:
    if isinstance(request, WriteFile):
        what = f"to write {quoted(request.path)}"
        return refuse(sink, request.by, what, "the directory is granted read-only")
    if isinstance(request, ReadFile):
        what = f"to read {quoted(request.path)}"
        return guarded(sink, request.by, what, lambda: read(root, request))
    if isinstance(request, StatPath):
        what = f"to stat {quoted(request.path)}"
        return guarded(sink, request.by, what, lambda: status(root, request.path))
    what = f"to list {quoted(request.path)}"
    return guarded(sink, request.by, what, lambda: listing(root, request))


def read(root: int, request: ReadFile) -> Data:
    """Up to ``CHUNK`` bytes of a regular file beneath ``root``."""
    with open_beneath(root, request.path, os.O_RDONLY | os.O_NONBLOCK) as fd:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(info.st_mode):
            raise CapabilityRefused(f"{request.path!r} is not a regular file; only files are read")
        return read_at(fd, request.offset, request.size, info.st_size)


def status(root: int, path: str) -> Status:
    """What ``path`` beneath ``root`` is (a symbolic link beneath is followed)."""
    with open_beneath(root, path, os.O_PATH) as fd:
        info = os.fstat(fd)
    return Status(kind_of(info.st_mode), info.st_size, stat.S_IMODE(info.st_mode), info.st_mtime)


def listing(root: int, request: ListDir) -> Listing:
    """One page of a directory's sorted entries, from ``request.start``."""
    if request.start < 0:
        raise invalid("start must not be negative")
    with open_beneath(root, request.path, os.O_RDONLY | os.O_DIRECTORY) as fd:
        names = sorted(name for name in os.listdir(fd) if _nameable(name))
        entries: list[DirEntry] = []
        budget = CHUNK
        for name in names[request.start :]:
            budget -= 4 * len(name) + _ENTRY_OVERHEAD
            if budget < 0 and entries:
                return Listing(entries, complete=False)
            entries.append(_entry(fd, name))
    return Listing(entries, complete=True)


def _nameable(name: str) -> bool:
    """Whether a request could name this entry (a name that is not UTF-8 cannot)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _entry(directory: int, name: str) -> DirEntry:
    try:
        info = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:  # removed while we listed
        return DirEntry(name, "other", 0)
    return DirEntry(name, kind_of(info.st_mode), info.st_size)
