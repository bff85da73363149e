"""The messages and the two contracts of WebFiles: ``Blocks`` (disk) and ``Files`` (fs).

Each contract is written from its server's side: ``Msg?`` is a request the
server receives, ``Msg!`` a reply it sends. Every message is a frozen struct
of plain fields, so a channel inside one interpreter passes it as it is.
"""

from __future__ import annotations

import msgspec

import sipkernel as sk

BLOCK_SIZE = 4096
"""Bytes in one block of the disk image."""

MAX_READ = 512 * 1024
"""Most bytes one ``ReadRange`` answers (half a channel's 1 MiB message limit)."""

MAX_BLOCKS = MAX_READ // BLOCK_SIZE + 1
"""Most blocks one ``ReadBlocks`` may ask for: an unaligned ``MAX_READ`` spans one more."""


# -- Blocks: the disk driver's service --------------------------------------------------


class ReadBlocks(msgspec.Struct, frozen=True, tag=True):
    """Read ``count`` consecutive blocks starting at block ``first``."""

    first: int
    count: int


class BlockData(msgspec.Struct, frozen=True, tag=True):
    """The blocks asked for: ``count * BLOCK_SIZE`` bytes from block ``first``."""

    first: int
    data: bytes


class BlockError(msgspec.Struct, frozen=True, tag=True):
    """The request was refused (out of range, too large) or the read failed."""

    reason: str


BLOCKS = sk.Contract(
    "Blocks",
    "state Ready: ReadBlocks? -> (BlockData! or BlockError!) -> Ready;",
    [ReadBlocks, BlockData, BlockError],
)
"""A read-only block device."""


# -- Files: the file system's service ---------------------------------------------------


class Lookup(msgspec.Struct, frozen=True, tag=True):
    """Is there a file ``name``, and how big is it?"""

    name: str


class FileInfo(msgspec.Struct, frozen=True, tag=True):
    """File ``name`` exists and holds ``size`` bytes."""

    name: str
    size: int


class ReadRange(msgspec.Struct, frozen=True, tag=True):
    """Up to ``size`` bytes (at most ``MAX_READ``) of file ``name`` from ``offset``."""

    name: str
    offset: int
    size: int


class FileData(msgspec.Struct, frozen=True, tag=True):
    """Bytes of a file from ``offset``; ``file_size`` is the whole file's size."""

    offset: int
    data: bytes
    file_size: int


class FileError(msgspec.Struct, frozen=True, tag=True):
    """No such file, a bad range, or the disk failed; ``reason`` says which."""

    name: str
    reason: str


FILES = sk.Contract(
    "Files",
    """
    state Ready:
        Lookup? -> (FileInfo! or FileError!) -> Ready
      | ReadRange? -> (FileData! or FileError!) -> Ready;
    """,
    [Lookup, FileInfo, ReadRange, FileData, FileError],
)
"""A read-only file system of named files."""
