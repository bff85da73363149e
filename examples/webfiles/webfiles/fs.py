"""The file system: serves ``Files`` over the disk driver's ``Blocks``.

At start it reads the superblock and the directory. A read of a file range
costs at most one ``ReadBlocks`` request, covering all the blocks it needs
(small reads go through a 64-block LRU cache first), and is answered with
one ``FileData`` reply: no transfer is split into many small messages.

When the disk driver dies, the connection to it breaks; the file system
dials the restarted driver (``sipkernel.app.connect`` waits for it) and
retries the request, so its own clients never see the crash.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Protocol

import sipkernel as sk
from sipkernel import app

from .image import DirEntry, Superblock, decode_directory
from .protocol import (
    BLOCK_SIZE,
    MAX_READ,
    BlockError,
    FileData,
    FileError,
    FileInfo,
    Lookup,
    ReadBlocks,
    ReadRange,
)

CACHE_BLOCKS = 64
"""Blocks the cache holds."""

CACHED_READ = 4
"""Reads of at most this many blocks go through the cache; larger ones bypass it."""

DISK_TIMEOUT = 30.0
"""Seconds to wait for the disk driver to be up (it may be restarting)."""

RETRIES = 3
"""Times one request is retried on a restarted driver before giving up."""


class DiskError(Exception):
    """The disk driver refused a request (a bug here, or a damaged image)."""


class BlockSource(Protocol):
    """Where blocks come from: the disk driver (or, in tests, an in-memory stand-in)."""

    def read(self, first: int, count: int) -> bytes:
        """Blocks ``first .. first + count - 1``."""
        ...


class Disk:
    """The connection to the disk driver, dialled again whenever the driver restarts."""

    def __init__(self, dialer: sk.Endpoint) -> None:
        self.dialer = dialer
        self.connection = app.connect(dialer, DISK_TIMEOUT)
        self.reconnects = 0

    def read(self, first: int, count: int) -> bytes:
        """Blocks ``first .. first + count - 1``, surviving driver restarts."""
        for attempt in range(RETRIES + 1):
            try:
                self.connection.send(ReadBlocks(first, count))
                reply = self.connection.recv()
            except sk.BrokenChannelError:
                if attempt == RETRIES:
                    raise
                self._redial()
                continue
            if isinstance(reply, BlockError):
                raise DiskError(f"blocks {first}+{count}: {reply.reason}")
            data: bytes = reply.data
            return data
        raise AssertionError("unreachable")  # the loop returns or raises

    def _redial(self) -> None:
        self.connection.close()
        self.connection = app.connect(self.dialer, DISK_TIMEOUT)
        self.reconnects += 1
        print(
            f"fs: the disk driver restarted; reconnected ({self.reconnects})",
            file=sys.stderr,
            flush=True,
        )


class BlockCache:
    """A least-recently-used cache of blocks in front of the disk."""

    def __init__(self, disk: BlockSource, capacity: int = CACHE_BLOCKS) -> None:
        self.disk = disk
        self.capacity = capacity
        self.blocks: OrderedDict[int, bytes] = OrderedDict()

    def read(self, first: int, count: int) -> bytes:
        """Blocks ``first .. first + count - 1``: one disk request at most."""
        if count > CACHED_READ:
            return self.disk.read(first, count)
        wanted = range(first, first + count)
        missing = [block for block in wanted if block not in self.blocks]
        if missing:
            self._fetch(missing[0], missing[-1] - missing[0] + 1)
        for block in wanted:
            self.blocks.move_to_end(block)
        data = b"".join(self.blocks[block] for block in wanted)
        while len(self.blocks) > self.capacity:  # evict only once the read is served
            self.blocks.popitem(last=False)
        return data

    def _fetch(self, first: int, count: int) -> None:
        data = self.disk.read(first, count)
        for i in range(count):
            self.blocks[first + i] = data[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE]


class FileSystem:
    """The directory, read once at start, and reads of file ranges through the cache."""

    def __init__(self, cache: BlockCache) -> None:
        self.cache = cache
        superblock = Superblock.decode(cache.read(0, 1))
        table = cache.disk.read(superblock.dir_first, superblock.dir_blocks)
        self.directory: dict[str, DirEntry] = decode_directory(table, superblock.file_count)

    def lookup(self, request: Lookup) -> FileInfo | FileError:
        """The size of file ``request.name``."""
        entry = self.directory.get(request.name)
        if entry is None:
            return FileError(request.name, "no such file")
        return FileInfo(entry.name, entry.size)

    def read(self, request: ReadRange) -> FileData | FileError:
        """Up to ``MAX_READ`` bytes of a file, from one (cached or uncached) block read."""
        entry = self.directory.get(request.name)
        if entry is None:
            return FileError(request.name, "no such file")
        if request.offset < 0 or request.size < 0 or request.offset > entry.size:
            return FileError(request.name, f"bad range {request.offset}+{request.size}")
        size = min(request.size, MAX_READ, entry.size - request.offset)
        if size == 0:
            return FileData(request.offset, b"", entry.size)
        start = entry.first * BLOCK_SIZE + request.offset
        first, skip = divmod(start, BLOCK_SIZE)
        count = -(-(skip + size) // BLOCK_SIZE)
        try:
            blocks = self.cache.read(first, count)
        except DiskError as exc:
            return FileError(request.name, str(exc))
        data = blocks if skip == 0 and len(blocks) == size else blocks[skip : skip + size]
        return FileData(request.offset, data, entry.size)

    def answer(self, request: Lookup | ReadRange) -> FileInfo | FileData | FileError:
        """The reply to any request of the ``Files`` contract."""
        if isinstance(request, ReadRange):
            return self.read(request)
        return self.lookup(request)


def serve(connection: sk.Endpoint, filesystem: FileSystem) -> None:
    """Answer one client's requests until it goes away."""
    with connection:
        while True:
            try:
                request = connection.recv()
            except sk.BrokenChannelError:
                return  # the client went away: wait for its next call
            reply = filesystem.answer(request)
            try:
                connection.send(reply)
            except sk.BrokenChannelError:
                return


def fs(clients: sk.Endpoint, disk: sk.Endpoint) -> None:
    """The process: mount the image through ``disk``, serve each connection on ``clients``.

    The manifest gives this service one caller, so one connection at a time
    is enough; a caller's next connection is accepted when its previous one
    breaks.
    """
    filesystem = FileSystem(BlockCache(Disk(disk)))
    while True:
        try:
            connection = app.accept(clients)
        except sk.BrokenChannelError:
            return  # the application is shutting down
        serve(connection, filesystem)
