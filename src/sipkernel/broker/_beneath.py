"""Opening a path strictly beneath a directory that is held open.

The broker walks a relative path one component at a time from the granted
directory's descriptor, opening each component with ``O_NOFOLLOW`` relative
to the one before (``openat``), and keeps the chain of directories it opened:

* an absolute path is refused before anything is opened;
* ``..`` steps back along that chain, never through the file system, and
  refuses to step above the granted directory;
* the operating system never follows a symbolic link for the broker: a
  component that is a link fails to open, and the broker reads the link and
  walks its target in its place, the same way: a relative target that stays
  beneath is followed, an absolute target or one that climbs out is refused.

Every step is relative to a descriptor the broker holds, so renaming or
replacing directories or links while a request is served cannot move it
outside. This is what ``openat2(RESOLVE_BENEATH)`` does in one system call;
the walk is used instead because it runs on every Linux the kernel runs on
and where a container's seccomp profile hides ``openat2``, needs no
system-call number or structure layout through ctypes, and costs one
``openat`` per component, a few microseconds next to a channel round trip.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from ._errors import CapabilityRefused

MAX_PATH = 4096
MAX_LINKS = 40
"""Symbolic links one request may pass through (Linux's own limit)."""

_THROUGH = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""How a directory on the way is opened: only to look things up in it."""


def check_relative(path: str) -> None:
    """Refuse what is not a relative path; fail on what no file system accepts."""
    if path.startswith("/"):
        raise CapabilityRefused(
            "absolute paths are not allowed; name a path inside the granted directory"
        )
    if "\0" in path:
        raise OSError(errno.EINVAL, "path contains a NUL character")
    if len(path) > MAX_PATH:
        raise OSError(errno.ENAMETOOLONG, "path is too long")


@contextmanager
def open_beneath(root_fd: int, path: str, flags: int) -> Iterator[int]:
    """Open ``path`` beneath the directory ``root_fd`` with ``flags``; yield the descriptor.

    Raises ``CapabilityRefused`` for a path that would leave the directory, and
    ``OSError`` for what the file system refuses (``ENOENT``, ``ENOTDIR``, ...).
    """
    check_relative(path)
    chain: list[int] = []
    try:
        fd = _walk(root_fd, path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, chain)
    finally:
        for opened in chain:
            os.close(opened)
    try:
        yield fd
    finally:
        os.close(fd)


def _walk(root_fd: int, path: str, flags: int, chain: list[int]) -> int:
    """Open ``path`` with ``flags``; the directories opened on the way go to ``chain``.

    Each component is opened with ``O_NOFOLLOW``; one that fails that way and
    turns out to be a symbolic link is replaced by the link's target.
    """
    pending = deque(path.split("/"))
    links: list[str] = []
    while pending:
        name = pending.popleft()
        if name in ("", "."):
            continue
        if name == "..":
            if not chain:
                raise CapabilityRefused(_climbing_out(links))
            os.close(chain.pop())
            continue
        here = chain[-1] if chain else root_fd
        last = all(rest in ("", ".") for rest in pending)
        try:
            fd = os.open(name, flags if last else _THROUGH, dir_fd=here)
        except OSError:
            if _follow(here, name, links, pending):
                continue
            raise
        if not last:
            chain.append(fd)
            continue
        if not (flags & os.O_PATH and stat.S_ISLNK(os.fstat(fd).st_mode)):
            return fd
        os.close(fd)  # O_PATH opened the link itself: follow it as any other
        if not _follow(here, name, links, pending):
            raise OSError(errno.ELOOP, "the path changed while it was resolved")
    return os.open(".", flags, dir_fd=chain[-1] if chain else root_fd)


def _climbing_out(links: list[str]) -> str:
    if links:
        return f"the symbolic link {links[-1]!r} leads outside the granted directory"
    return "'..' would leave the granted directory"


def _follow(directory: int, name: str, links: list[str], pending: deque[str]) -> bool:
    """If ``name`` is a symbolic link, put its target in its place; False if it is not one."""
    try:
        target = os.readlink(name, dir_fd=directory)
    except OSError:
        return False
    links.append(name)
    if len(links) > MAX_LINKS:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
    if target.startswith("/"):
        raise CapabilityRefused(
            f"{name!r} is a symbolic link to an absolute path, outside the grant"
        )
    pending.extendleft(reversed(target.split("/")))
    return True


def kind_of(mode: int) -> str:
    """``file``, ``directory``, ``symlink`` or ``other``."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"
