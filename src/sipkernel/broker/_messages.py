"""The messages capabilities are asked and answered with.

Every request carries ``by``: the asking process's own description of itself
(``name<pid> in kind``), filled in by the client wrappers. It is what the
audit line names as the asker; a sandbox can put anything there, so it is a
claim, never an authority. Nothing in any request names a host path outside
the grant, another file, or a network address: what a capability reaches is
fixed when it is granted.

Replies to a request are its answer, ``Refused`` (the grant does not allow
it: an audit line in the kernel, ``CapabilityRefused`` in the asker),
``IOFailed`` (an operating-system error, raised as the matching ``OSError``
subclass) or, for application services, ``Failed``.
"""

from __future__ import annotations

import msgspec

CHUNK = 512 * 1024
"""Most bytes one message carries: half a channel's default ``max_message``."""


# -- replies shared by every capability ------------------------------------------------


class Refused(msgspec.Struct, frozen=True, tag=True):
    """The grant does not allow this request; ``reason`` says why."""

    reason: str


class IOFailed(msgspec.Struct, frozen=True, tag=True):
    """The request was allowed but the operating system said no (``code`` is an errno)."""

    code: int
    message: str


class Failed(msgspec.Struct, frozen=True, tag=True):
    """An application service's handler raised; the kernel's log has the details."""

    error: str


class Data(msgspec.Struct, frozen=True, tag=True):
    """Bytes read; ``eof`` when nothing follows them."""

    data: bytes
    eof: bool = False


class Written(msgspec.Struct, frozen=True, tag=True):
    """How many bytes a write or send took."""

    count: int


class Size(msgspec.Struct, frozen=True, tag=True):
    """A file's size in bytes."""

    size: int


# -- a read-only directory --------------------------------------------------------------


class DirEntry(msgspec.Struct, frozen=True):
    """One name in a listing: ``kind`` is ``file``, ``directory``, ``symlink`` or ``other``."""

    name: str
    kind: str
    size: int


class ListDir(msgspec.Struct, frozen=True, tag=True):
    """List ``path`` (relative to the granted directory), from entry ``start`` on."""

    path: str = "."
    start: int = 0
    by: str = ""


class Listing(msgspec.Struct, frozen=True, tag=True):
    """Entries sorted by name; ``complete`` unless more follow (ask again from there)."""

    entries: list[DirEntry]
    complete: bool


class StatPath(msgspec.Struct, frozen=True, tag=True):
    """Describe ``path`` (relative to the granted directory)."""

    path: str
    by: str = ""


class Status(msgspec.Struct, frozen=True, tag=True):
    """What ``StatPath`` found: ``kind`` as in ``DirEntry``, permission bits, mtime."""

    kind: str
    size: int
    mode: int
    mtime: float


class ReadFile(msgspec.Struct, frozen=True, tag=True):
    """Read at most ``size`` bytes of ``path`` from ``offset`` (capped at ``CHUNK``)."""

    path: str
    offset: int = 0
    size: int = CHUNK
    by: str = ""


class WriteFile(msgspec.Struct, frozen=True, tag=True):
    """Write into ``path``: a directory grant always refuses it (it is read-only)."""

    path: str
    data: bytes
    offset: int | None = None
    by: str = ""


# -- one file ---------------------------------------------------------------------------------


class ReadAt(msgspec.Struct, frozen=True, tag=True):
    """Read at most ``size`` bytes of the granted file from ``offset``."""

    offset: int = 0
    size: int = CHUNK
    by: str = ""


class WriteAt(msgspec.Struct, frozen=True, tag=True):
    """Write ``data`` at ``offset``, or at the end when ``offset`` is None."""

    data: bytes
    offset: int | None = None
    by: str = ""


class Truncate(msgspec.Struct, frozen=True, tag=True):
    """Cut (or extend) the granted file to ``size`` bytes."""

    size: int = 0
    by: str = ""


class GetSize(msgspec.Struct, frozen=True, tag=True):
    """Ask for the granted file's size."""

    by: str = ""


# -- one TCP address --------------------------------------------------------------------------


class Connect(msgspec.Struct, frozen=True, tag=True):
    """Open a connection to the granted address (it has no field naming one)."""

    by: str = ""


class Connected(msgspec.Struct, frozen=True, tag=True):
    """The connection is open; ``peer`` is the address it reached."""

    peer: str


class Send(msgspec.Struct, frozen=True, tag=True):
    """Send ``data`` (at most ``CHUNK`` bytes) on the connection."""

    data: bytes
    by: str = ""


class Recv(msgspec.Struct, frozen=True, tag=True):
    """Receive at most ``max_bytes``; ``timeout`` seconds at most (None: wait)."""

    max_bytes: int = 65536
    timeout: float | None = None
    by: str = ""


class Disconnect(msgspec.Struct, frozen=True, tag=True):
    """Close the connection (the capability stays: ``Connect`` may follow)."""

    by: str = ""


class Disconnected(msgspec.Struct, frozen=True, tag=True):
    """The connection is closed."""
