"""The serving process of a one-file grant.

The broker opened the file once, when it was granted; every request works on
that descriptor with positional reads and writes. No request carries a path,
so the capability reaches that file and nothing else, even if the file is
later renamed or its name is replaced by a link.
"""

from __future__ import annotations

import os
from typing import Any

from .._core._endpoint import Endpoint
from ._errors import CapabilityRefused
from ._messages import Data, GetSize, ReadAt, Size, Truncate, WriteAt, Written
from ._serving import guarded, invalid, read_at, serve_forever


class FileGrant:
    """What a file grant allows: its descriptor, whether it may write, its size cap."""

    def __init__(self, fd: int, writable: bool, max_size: int | None) -> None:
        self.fd = fd
        self.writable = writable
        self.max_size = max_size

    def read(self, request: ReadAt) -> Data:
        """Up to ``CHUNK`` bytes from ``request.offset``."""
        return read_at(self.fd, request.offset, request.size, os.fstat(self.fd).st_size)

    def write(self, request: WriteAt) -> Written:
        """Write all of ``request.data`` at its offset (or at the end)."""
        self._check_writable()
        offset = self.size().size if request.offset is None else request.offset
        if offset < 0:
            raise invalid("offset must not be negative")
        self._may_reach(offset + len(request.data))
        view = memoryview(request.data)
        while view:
            done = os.pwrite(self.fd, view, offset)
            view, offset = view[done:], offset + done
        return Written(len(request.data))

    def truncate(self, request: Truncate) -> Size:
        """Cut or extend the file to ``request.size`` bytes."""
        self._check_writable()
        if request.size < 0:
            raise invalid("size must not be negative")
        self._may_reach(request.size)
        os.ftruncate(self.fd, request.size)
        return Size(request.size)

    def size(self) -> Size:
        """The file's current size."""
        return Size(os.fstat(self.fd).st_size)

    def _check_writable(self) -> None:
        if not self.writable:
            raise CapabilityRefused("the file is granted read-only")

    def _may_reach(self, end: int) -> None:
        if self.max_size is not None and end > self.max_size:
            raise CapabilityRefused(f"the file may not grow beyond {self.max_size} bytes")


def serve_file(
    requests: Endpoint, fd: int, writable: bool, max_size: int | None, sink: str
) -> None:
    """Answer ``FILE`` requests about the file open as ``fd``."""
    grant = FileGrant(fd, writable, max_size)
    serve_forever(requests, lambda request: _answer(grant, request, sink))


def _answer(grant: FileGrant, request: Any, sink: str) -> Any:
    if isinstance(request, ReadAt):
        what = f"to read {request.size} bytes at {request.offset}"
        return guarded(sink, request.by, what, lambda: grant.read(request))
    if isinstance(request, WriteAt):
        where = "the end" if request.offset is None else str(request.offset)
        what = f"to write {len(request.data)} bytes at {where}"
        return guarded(sink, request.by, what, lambda: grant.write(request))
    if isinstance(request, Truncate):
        what = f"to truncate to {request.size} bytes"
        return guarded(sink, request.by, what, lambda: grant.truncate(request))
    assert isinstance(request, GetSize)
    return guarded(sink, request.by, "for the size", grant.size)
