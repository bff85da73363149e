"""What a sandbox sees: the host paths its new root is built from.

The root is an empty tmpfs; everything in it is either a read-only bind of a
host path, at the same path inside, or a file written for the sandbox
(``/etc/passwd`` with the sandbox's own user, ``/etc/hosts``). Parents of a
bound path are empty directories: binding an interpreter installed under a
home directory shows that one prefix, not the rest of the home.
"""

from __future__ import annotations

import os
import sys

from .._core._errors import UsageError
from ._policy import Bind, Policy

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Where programs and shared libraries live; shown read-only (or as their symlinks)."""

ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives", "/etc/mime.types")
"""The host's ``/etc`` entries a sandbox sees; nothing else of ``/etc`` is shown."""

DEVICES_RW = ("/dev/null", "/dev/zero", "/dev/full")
DEVICES_RO = ("/dev/random", "/dev/urandom")


class View:
    """The binds, symlinks and written files of one sandbox's root."""

    def __init__(
        self, policy: Policy, *, extra_ro: tuple[str, ...] = (), import_path: bool = True
    ) -> None:
        self.symlinks: dict[str, str] = {}
        self.binds: list[Bind] = []
        self.files = _etc_files(policy)
        self._seen: set[str] = set(self.files)  # written for the sandbox, never bound
        for path in SYSTEM_DIRS:
            self._add_system(path)
        for path in ETC_FILES:
            if os.path.exists(path):
                self._add(Bind(source=path))
        if policy.filesystem.python:
            for path in python_paths(import_path=import_path):
                self._add(Bind(source=path))
        for path in extra_ro:
            self._add(Bind(source=path))
        for bind in policy.filesystem.all_binds():
            _check_grant(bind.source)
            self._add(bind)

    def _add_system(self, path: str) -> None:
        if os.path.islink(path):
            self.symlinks[path] = os.readlink(path)
        elif os.path.isdir(path):
            self._add(Bind(source=path))

    def _add(self, bind: Bind) -> None:
        if bind.inside in self._seen:
            return
        if not os.path.exists(bind.source):
            return
        if not bind.writable and _covered(bind.source, self._seen):
            return
        self._seen.add(bind.inside)
        self.binds.append(bind)


def _check_grant(path: str) -> None:
    """A granted path must exist and be reached without symlinks: a link planted
    by earlier sandboxed code in a writable grant must not redirect a later grant."""
    if not os.path.exists(path):
        raise UsageError(f"cannot show {path} in the sandbox: it does not exist")
    real = os.path.realpath(path)
    if real != os.path.normpath(path):
        raise UsageError(
            f"cannot show {path} in the sandbox: it leads through a symlink to {real}; "
            "grant that path itself"
        )


def python_paths(*, import_path: bool = True) -> list[str]:
    """Host paths of the running interpreter: its prefixes, and (``import_path``)
    every directory of ``sys.path`` and sipkernel's own."""
    paths = [sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix]
    if import_path:
        paths += [p for p in sys.path if p and os.path.isdir(p)]
        paths.append(_package_root())
    real = []
    for path in paths:
        resolved = os.path.realpath(path)
        if resolved not in real and resolved != "/":
            real.append(resolved)
    real.sort(key=len)
    return [p for i, p in enumerate(real) if not _covered(p, set(real[:i]))]


def _package_root() -> str:
    """The directory sipkernel itself is imported from (an editable install's ``src``)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(here))


def _covered(path: str, parents: set[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def _etc_files(policy: Policy) -> dict[str, str]:
    uid, gid = policy.identity.uid, policy.identity.gid
    return {
        "/etc/passwd": (
            f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
            f"sandbox:x:{uid}:{gid}:sandbox:/tmp:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        "/etc/group": f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n",
        "/etc/hosts": f"127.0.0.1 localhost {policy.hostname}\n::1 localhost\n",
        "/etc/hostname": f"{policy.hostname}\n",
    }
