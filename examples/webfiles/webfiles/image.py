"""The disk image: fixed 4096-byte blocks holding a superblock, a directory and the files.

Layout (all integers little-endian)::

    block 0                 superblock: magic, version, block size, block count,
                            first directory block, directory blocks, file count,
                            and a digest of the whole layout
    blocks 1 .. D           directory: one 64-byte entry per file
                            (name, NUL-padded UTF-8; first block; size in bytes)
    blocks D+1 ..           file contents, each file starting on a block boundary

:func:`prepare` (the manifest's ``[app] prepare`` hook) writes the image
when it is missing or stale. Staleness is decided by the superblock and the
file's length alone, never by the contents: an image whose data was
corrupted on purpose is left as it is, so the client can catch it.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .catalogue import CONTENT_KEY, FileSpec, catalogue, content
from .protocol import BLOCK_SIZE

IMAGE_NAME = "disk.img"
MAGIC = b"WEBFILES"
VERSION = 1

SUPERBLOCK = struct.Struct("<8sIIIIII16s")
"""magic, version, block size, block count, directory's first block and length, files, digest."""

ENTRY = struct.Struct("<56sII")
"""One directory entry: name, first block, size in bytes (64 bytes)."""


class ImageError(ValueError):
    """The bytes read are not a WebFiles image of this version."""


@dataclass(frozen=True)
class DirEntry:
    """Where one file's bytes are: its first block and its size."""

    name: str
    first: int
    size: int

    @property
    def blocks(self) -> int:
        """Blocks the file occupies (at least one)."""
        return max(1, -(-self.size // BLOCK_SIZE))


@dataclass(frozen=True)
class Superblock:
    """Block 0 of the image."""

    block_count: int
    dir_first: int
    dir_blocks: int
    file_count: int
    digest: bytes

    def encode(self) -> bytes:
        """The superblock as a whole block."""
        packed = SUPERBLOCK.pack(
            MAGIC,
            VERSION,
            BLOCK_SIZE,
            self.block_count,
            self.dir_first,
            self.dir_blocks,
            self.file_count,
            self.digest,
        )
        return packed.ljust(BLOCK_SIZE, b"\0")

    @classmethod
    def decode(cls, block: bytes) -> Superblock:
        """Read a superblock; :class:`ImageError` if it is not one of this version."""
        if len(block) < SUPERBLOCK.size:
            raise ImageError(f"a superblock needs {SUPERBLOCK.size} bytes, got {len(block)}")
        magic, version, block_size, blocks, dir_first, dir_blocks, files, digest = (
            SUPERBLOCK.unpack_from(block)
        )
        if magic != MAGIC:
            raise ImageError(f"bad magic {magic!r} (not a WebFiles image)")
        if version != VERSION or block_size != BLOCK_SIZE:
            raise ImageError(f"image version {version} with {block_size}-byte blocks")
        return cls(blocks, dir_first, dir_blocks, files, digest)


@dataclass(frozen=True)
class Layout:
    """Where everything goes in an image of a given file set."""

    superblock: Superblock
    entries: tuple[DirEntry, ...]


def plan(files: tuple[FileSpec, ...]) -> Layout:
    """The layout of an image holding ``files``, in order."""
    dir_blocks = -(-len(files) * ENTRY.size // BLOCK_SIZE)
    entries: list[DirEntry] = []
    next_block = 1 + dir_blocks
    for spec in files:
        entry = DirEntry(spec.name, next_block, spec.size)
        entries.append(entry)
        next_block += entry.blocks
    digest = hashlib.blake2b(digest_size=16)
    digest.update(CONTENT_KEY)
    for entry in entries:
        digest.update(ENTRY.pack(entry.name.encode(), entry.first, entry.size))
    superblock = Superblock(next_block, 1, dir_blocks, len(entries), digest.digest())
    return Layout(superblock, tuple(entries))


def encode_directory(entries: tuple[DirEntry, ...]) -> bytes:
    """The directory table, padded to whole blocks."""
    table = b"".join(ENTRY.pack(e.name.encode(), e.first, e.size) for e in entries)
    return table.ljust(-(-len(table) // BLOCK_SIZE) * BLOCK_SIZE, b"\0")


def decode_directory(data: bytes, count: int) -> dict[str, DirEntry]:
    """Name -> entry, for the first ``count`` entries of a directory table."""
    if len(data) < count * ENTRY.size:
        raise ImageError(f"a directory of {count} entries needs {count * ENTRY.size} bytes")
    directory: dict[str, DirEntry] = {}
    for raw, first, size in ENTRY.iter_unpack(data[: count * ENTRY.size]):
        name = raw.rstrip(b"\0").decode()
        directory[name] = DirEntry(name, first, size)
    return directory


def write_image(path: Path, layout: Layout) -> None:
    """Write the image for ``layout`` at ``path`` (atomically: a temporary file, renamed)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as out:
        out.write(layout.superblock.encode())
        out.write(encode_directory(layout.entries))
        for entry in layout.entries:
            out.seek(entry.first * BLOCK_SIZE)
            out.write(content(entry.name, entry.size))
        out.truncate(layout.superblock.block_count * BLOCK_SIZE)
    os.replace(temporary, path)


def is_current(path: Path, layout: Layout) -> bool:
    """Does ``path`` hold an image of ``layout``? (superblock and length; never contents)."""
    try:
        with path.open("rb") as image:
            head = image.read(BLOCK_SIZE)
            length = os.fstat(image.fileno()).st_size
        found = Superblock.decode(head)
    except (OSError, ImageError):
        return False
    return found == layout.superblock and length == found.block_count * BLOCK_SIZE


def prepare(data_dir: Path) -> Path:
    """Make sure ``data_dir/disk.img`` is a current image; write it if not. Returns its path."""
    path = Path(data_dir) / IMAGE_NAME
    layout = plan(catalogue())
    if not is_current(path, layout):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, layout)
    return path
