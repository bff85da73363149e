"""Can a sandbox's user read the code a process needs? Checked before it starts.

A sandbox shows the kernel's import path read-only, but file permissions
still apply inside: a checkout in a directory only its owner may enter (mode
0700, as ``mktemp -d`` makes them) cannot be imported by a root kernel's
sandbox, whose code runs as ``nobody`` outside. Found inside the domain, that
is an import error in the middle of a start; found here, at ``spawn``, it is
an error that names the directory and the fix.

Only permission bits are read: an access control list or a Landlock rule of
the host's own is not evaluated (the import inside then still fails, later).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable

from .._core._errors import NotImportableError
from ._contain import NOBODY
from ._policy import Policy

_READ = 4
_SEARCH = 1


class Reader:
    """Who a sandbox's code is, outside it: a uid, a gid and the groups it keeps."""

    def __init__(self, policy: Policy) -> None:
        identity = policy.identity
        own = policy.namespaces.user and os.getuid() != 0
        self.uid = _pick(identity.outside_uid, os.getuid() if own else NOBODY)
        self.gid = _pick(identity.outside_gid, os.getgid() if own else NOBODY)
        # Only an unprivileged caller keeps its supplementary groups (it cannot drop them).
        self.groups = frozenset(os.getgroups()) if own else frozenset()

    def may(self, info: os.stat_result, bits: int) -> bool:
        """Do the permission bits of ``info`` grant this reader ``bits`` (r=4, x=1)?"""
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid == self.uid:
            granted = mode >> 6
        elif info.st_gid == self.gid or info.st_gid in self.groups:
            granted = mode >> 3
        else:
            granted = mode
        return granted & bits == bits


def _pick(chosen: int | None, default: int) -> int:
    return default if chosen is None else chosen


def check_module(module: str, what: str, shown: Iterable[str], reader: Reader) -> None:
    """Raise ``NotImportableError`` if ``reader`` cannot import ``module`` from ``shown``.

    ``module`` is one the kernel has imported (others are not checked);
    ``shown`` are the host directories the sandbox shows.
    """
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    if not isinstance(path, str):
        return  # built in, or a namespace package: nothing to read
    try:
        _check_file(os.path.realpath(path), module, what, shown, reader)
    except OSError:
        return  # gone or unreachable here: the import inside reports it


def _check_file(path: str, module: str, what: str, shown: Iterable[str], reader: Reader) -> None:
    root = _root_of(path, shown)
    if root is None:
        raise NotImportableError(
            f"{what} cannot be imported in this sandbox: its module {module!r} is in "
            f"{path}, which the sandbox does not show; put its directory on sys.path "
            "before the domain starts, or grant it with filesystem.ro"
        )
    blocker = _first_unreadable(path, root, reader)
    if blocker is not None:
        where, info = blocker
        raise NotImportableError(
            f"{what} cannot be imported in this sandbox: {where} (mode "
            f"{stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}) is not readable by "
            f"the sandbox's user (uid {reader.uid} outside it); make it readable "
            "(chmod o+rx for directories, o+r for files), or keep the code in a "
            "directory others may read"
        )


def _root_of(path: str, shown: Iterable[str]) -> str | None:
    """The longest shown directory that holds ``path``."""
    best = None
    for root in shown:
        base = root.rstrip("/") + "/"
        if path.startswith(base) and (best is None or len(root) > len(best)):
            best = root
    return best


def _first_unreadable(path: str, root: str, reader: Reader) -> tuple[str, os.stat_result] | None:
    """The first directory from ``root`` down, or the file, that ``reader`` may not read.

    Directories need read (the import system lists them) and search; the
    file needs read.
    """
    relative = os.path.relpath(os.path.dirname(path), root)
    directory = root
    steps = [] if relative == "." else relative.split(os.sep)
    for step in ["", *steps]:
        directory = os.path.join(directory, step) if step else directory
        info = os.stat(directory)
        if not reader.may(info, _READ | _SEARCH):
            return directory, info
    info = os.stat(path)
    return None if reader.may(info, _READ) else (path, info)
