"""Typed wrappers a capability's holder uses, in whatever domain it runs.

Each wraps the endpoint it was handed: a request goes out, its reply comes
back, and a refusal or an I/O error is raised here, in the holder:
``CapabilityRefused`` (a ``PermissionError``) or the ``OSError`` subclass of
the errno. Large reads and writes are split into ``CHUNK``-sized messages,
so none nears the channel's message-size limit. A revoked capability raises
``BrokenChannelError`` (its ``reason`` says ``killed: revoked``).

A wrapper does not own its endpoint's lifetime: send the endpoint away (it
moves, and this wrapper is dead with it) or close it, as with any endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core._endpoint import Endpoint
from .._core._process import current_process
from ._errors import raise_for
from ._messages import (
    CHUNK,
    Connect,
    Connected,
    Data,
    DirEntry,
    Disconnect,
    GetSize,
    ListDir,
    Listing,
    ReadAt,
    ReadFile,
    Recv,
    Send,
    Size,
    StatPath,
    Status,
    Truncate,
    WriteAt,
    Written,
)


def _who() -> str:
    ctx = current_process()
    return "the kernel" if ctx is None else f"{ctx.name}<{ctx.pid}> in {ctx.isolation()}"


class Capability:
    """A capability endpoint, used one request at a time.

    ``timeout`` bounds each wait for a reply (``ReceiveTimeout``); a reply that
    comes too late leaves the conversation half done, so the capability is
    unusable after one.
    """

    def __init__(self, endpoint: Endpoint, *, timeout: float | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.by = _who()
        """How requests name their asker in the kernel's audit lines."""

    def call(self, request: Any, filename: str | None = None) -> Any:
        """Send one request and return its reply, raising for a refusal or an error."""
        self.endpoint.send(request, timeout=self.timeout)
        return raise_for(self.endpoint.recv(timeout=self.timeout), filename)

    def release(self) -> None:
        """Give the capability up: close the endpoint (its serving process then ends)."""
        self.endpoint.close()


def _read_chunks(ask: Callable[[int, int], Data], offset: int, size: int | None) -> bytes:
    parts: list[bytes] = []
    got = 0
    while size is None or got < size:
        want = CHUNK if size is None else min(CHUNK, size - got)
        reply = ask(offset + got, want)
        parts.append(reply.data)
        got += len(reply.data)
        if reply.eof or not reply.data:
            break
    return b"".join(parts)


class Directory(Capability):
    """A read-only directory: list, stat and read paths relative to it."""

    def list(self, rel: str = ".") -> list[DirEntry]:
        """The entries of ``rel``, sorted by name."""
        entries: list[DirEntry] = []
        while True:
            page: Listing = self.call(ListDir(rel, len(entries), self.by), rel)
            entries += page.entries
            if page.complete or not page.entries:
                return entries

    def read(self, rel: str, offset: int = 0, size: int | None = None) -> bytes:
        """The bytes of file ``rel`` from ``offset``: ``size`` of them, or all to the end."""
        return _read_chunks(
            lambda at, n: self.call(ReadFile(rel, at, n, self.by), rel), offset, size
        )

    def stat(self, rel: str) -> Status:
        """What ``rel`` is: its kind, size, permission bits and modification time."""
        status: Status = self.call(StatPath(rel, self.by), rel)
        return status


class File(Capability):
    """Exactly one file: read, write, truncate, size."""

    def read(self, offset: int = 0, size: int | None = None) -> bytes:
        """The file's bytes from ``offset``: ``size`` of them, or all to the end."""
        return _read_chunks(lambda at, n: self.call(ReadAt(at, n, self.by)), offset, size)

    def write(self, data: bytes, offset: int | None = None) -> int:
        """Write ``data`` at ``offset``, or at the end when None; returns the count."""
        written = 0
        for start in range(0, len(data), CHUNK):
            at = None if offset is None else offset + start
            reply: Written = self.call(WriteAt(data[start : start + CHUNK], at, self.by))
            written += reply.count
        return written

    def truncate(self, size: int = 0) -> None:
        """Cut (or extend with zeros) the file to ``size`` bytes."""
        self.call(Truncate(size, self.by))

    def size(self) -> int:
        """The file's size in bytes."""
        reply: Size = self.call(GetSize(self.by))
        return reply.size


class TcpConnection(Capability):
    """A TCP connection to the one address the capability names, relayed by the broker.

    ``send`` and ``recv`` connect first if no connection is open; ``close``
    ends the connection but keeps the capability (a later call reconnects).
    """

    def __init__(self, endpoint: Endpoint, *, timeout: float | None = None) -> None:
        super().__init__(endpoint, timeout=timeout)
        self.peer: str | None = None
        """``host:port`` while a connection is open."""

    def connect(self) -> str:
        """Open the connection; returns ``host:port``."""
        if self.peer is None:
            reply: Connected = self.call(Connect(self.by))
            self.peer = reply.peer
        return self.peer

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        self.connect()
        for start in range(0, len(data), CHUNK):
            self.call(Send(data[start : start + CHUNK], self.by))

    def recv(self, max_bytes: int = 65536, timeout: float | None = None) -> bytes:
        """At most ``max_bytes`` bytes, as soon as some arrive; ``b""`` at end of stream.

        ``timeout``: seconds to wait for data (``TimeoutError`` after that).
        """
        self.connect()
        reply: Data = self.call(Recv(max_bytes, timeout, self.by))
        return reply.data

    def close(self) -> None:
        """Close the connection (not the capability)."""
        if self.peer is not None:
            self.peer = None
            self.call(Disconnect(self.by))

    def __enter__(self) -> TcpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Service(Capability):
    """An application's capability service: ``call(request)`` returns its reply."""
