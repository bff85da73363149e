"""The client: reads whole files chosen as SPECweb99 does and checks every byte.

It knows the file set (:mod:`webfiles.catalogue`) and so what every file
must hold, independently of the image, the disk driver and the file system.
The first wrong byte ends it with :class:`CorruptData` naming the file and
the offset: a configuration that loses or corrupts data fails loudly.
"""

from __future__ import annotations

import time

import sipkernel as sk
from sipkernel import app

from .catalogue import FileSpec, catalogue, content
from .protocol import MAX_READ, FileData, FileError, FileInfo, Lookup, ReadRange
from .workload import FileChooser

CONNECT_TIMEOUT = 30.0
"""Seconds to wait for the file system to be up."""


class CorruptData(Exception):
    """A file read back differs from what it must hold."""


class ReadFailed(Exception):
    """The file system answered a request with an error."""


def expected_contents(specs: list[FileSpec]) -> dict[str, bytes]:
    """What each distinct file of ``specs`` must hold, computed from its name."""
    return {spec.name: content(spec.name, spec.size) for spec in set(specs)}


def verify(spec: FileSpec, data: bytes, expected: bytes) -> None:
    """Raise :class:`CorruptData` unless ``data`` is exactly ``expected``."""
    if data == expected:
        return
    for offset, (got, want) in enumerate(zip(data, expected, strict=False)):
        if got != want:
            raise CorruptData(
                f"{spec.name}: byte {offset} of {spec.size} is {got:#04x}, expected {want:#04x}"
            )
    raise CorruptData(f"{spec.name}: read {len(data)} bytes, expected {len(expected)}")


def read_file(connection: sk.Endpoint, name: str) -> bytes:
    """All of file ``name``, in ranges of at most ``MAX_READ`` bytes."""
    parts: list[bytes] = []
    offset = 0
    while True:
        connection.send(ReadRange(name, offset, MAX_READ))
        reply = connection.recv()
        if isinstance(reply, FileError):
            raise ReadFailed(f"{name} at {offset}: {reply.reason}")
        assert isinstance(reply, FileData)  # the contract admits nothing else
        parts.append(reply.data)
        offset += len(reply.data)
        if offset >= reply.file_size or not reply.data:
            return parts[0] if len(parts) == 1 else b"".join(parts)


def check_directory(connection: sk.Endpoint, files: tuple[FileSpec, ...]) -> None:
    """Every file of the set is there with its size (before any timed read)."""
    for spec in files:
        connection.send(Lookup(spec.name))
        reply = connection.recv()
        if isinstance(reply, FileError):
            raise ReadFailed(f"looking up {spec.name}: {reply.reason}")
        assert isinstance(reply, FileInfo)
        if reply.size != spec.size:
            message = f"{spec.name}: the directory says {reply.size} bytes, not {spec.size}"
            raise CorruptData(message)


def summary(reads: int, total: int, elapsed: float) -> str:
    """The one line the client prints at the end."""
    rate = reads / elapsed if elapsed > 0 else float("inf")
    throughput = total / elapsed / 1e6 if elapsed > 0 else float("inf")
    return (
        f"webfiles: {reads} reads, {total / 1e6:.1f} MB, all verified, {elapsed:.3f} s, "
        f"{rate:.0f} reads/s, {throughput:.1f} MB/s, isolation {sk.current().isolation()}"
    )


def client(fs: sk.Endpoint, reads: int = 1000, seed: int = 1) -> None:
    """The process: ``reads`` whole-file reads from ``fs``, every byte checked."""
    files = catalogue()
    connection = app.connect(fs, CONNECT_TIMEOUT)
    check_directory(connection, files)
    chooser = FileChooser(files, seed)
    plan = [chooser.choose() for _ in range(reads)]
    expected = expected_contents(plan)  # computed before the clock starts
    total = 0
    start = time.perf_counter()
    for spec in plan:
        data = read_file(connection, spec.name)
        verify(spec, data, expected[spec.name])
        total += len(data)
    elapsed = time.perf_counter() - start
    connection.close()
    print(summary(reads, total, elapsed), flush=True)
