"""From a :class:`Policy` to what the keeper and pid 1 execute.

Everything here runs in the supervisor, before any fork: it reads the host
(which paths exist, which cgroup controllers this machine offers) and turns
the policy into plain data. Each limit is assigned to the mechanism that
enforces it, and :attr:`Composed.enforcement` says which, so nothing is
silently dropped.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from . import _landlock
from ._cgroups import CgroupLimits, cgroup_support
from ._contain import NOBODY, Launch, namespace_flags
from ._plan import SandboxSpec
from ._policy import DEFAULT_ENV, DEFAULT_PATH, Policy
from ._rlimits import Rlimits
from ._view import DEVICES_RO, DEVICES_RW, View


@dataclass
class Composed:
    """A policy made concrete for this machine."""

    launch: Launch
    cgroup: CgroupLimits | None
    enforcement: dict[str, str] = field(default_factory=dict)
    """For each limit, what enforces it (``cgroup v1``, ``RLIMIT_AS``, ...)."""


def compose(policy: Policy, *, command: str | None = None) -> Composed:
    """Make ``policy`` concrete; ``command`` is the program a command sandbox execs."""
    exec_targets = exec_files(command) if command else ()
    # A command sees the interpreter (so Python programs run), not sipkernel's import path.
    view = View(policy, extra_ro=exec_targets, import_path=command is None)
    cgroup, rlimits, enforcement = _limits(policy)
    spec = SandboxSpec(
        binds=tuple(view.binds),
        symlinks=view.symlinks,
        files=view.files,
        tmp_size=policy.filesystem.tmp_size,
        workdir=policy.filesystem.workdir,
        hostname=policy.hostname,
        new_pid=policy.namespaces.pid,
        new_uts=policy.namespaces.uts,
        loopback=policy.network == "loopback" and policy.namespaces.net,
        rlimits=rlimits,
        landlock=_landlock_policy(policy, view, exec_targets)
        if policy.filesystem.landlock
        else None,
        env=sandbox_env(policy),
    )
    syscalls = policy.syscalls
    families = set(syscalls.socket_families)
    if policy.network == "loopback":
        families |= {"inet", "inet6"}
    syscalls = msgspec.structs.replace(
        syscalls,
        socket_families=tuple(sorted(families)),
        allow_exec=policy.allow_exec,
        exec_once=command is not None and not policy.allow_exec,  # the command's own start
    )
    identity = policy.identity
    if policy.namespaces.user:
        uid, gid = identity.uid, identity.gid
    else:  # no id mapping: the code runs as the outside ids themselves
        uid = NOBODY if identity.outside_uid is None else identity.outside_uid
        gid = NOBODY if identity.outside_gid is None else identity.outside_gid
    launch = Launch(
        spec=spec,
        unshare=namespace_flags(policy.namespaces),
        syscalls=syscalls,
        uid=uid,
        gid=gid,
    )
    return Composed(launch=launch, cgroup=cgroup, enforcement=enforcement)


def sandbox_env(policy: Policy) -> dict[str, str]:
    """The environment inside: the allow-list and ``policy.env``, when set outside."""
    env = {name: os.environ[name] for name in (*DEFAULT_ENV, *policy.env) if name in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env["HOME"] = "/tmp"
    return env


# -- limits -------------------------------------------------------------------------------


def _limits(policy: Policy) -> tuple[CgroupLimits | None, Rlimits, dict[str, str]]:
    limits = policy.limits
    support = cgroup_support()
    enforcement: dict[str, str] = {}
    memory = pids = None
    address_space = processes = None
    if limits.memory is not None:
        if support.memory.version:
            memory = limits.memory
            enforcement["memory"] = f"cgroup {support.memory.version}"
        else:
            address_space = limits.memory
            enforcement["memory"] = "RLIMIT_AS (no usable memory cgroup)"
    if limits.pids is not None:
        if support.pids.version:
            pids = limits.pids
            enforcement["pids"] = f"cgroup {support.pids.version}"
        else:
            processes = limits.pids
            enforcement["pids"] = "RLIMIT_NPROC (no usable pids cgroup)"
    if limits.cpu_cores is not None:
        enforcement["cpu_cores"] = f"cgroup {support.cpu.version}"  # raises later if absent
    cgroup = None
    if memory is not None or pids is not None or limits.cpu_cores is not None:
        cgroup = CgroupLimits(memory_bytes=memory, pids=pids, cpu_cores=limits.cpu_cores)
    rlimits = Rlimits(
        address_space=address_space,
        processes=processes,
        cpu_seconds=limits.cpu_seconds,
        open_files=limits.open_files,
        file_size=limits.file_size,
        core=0,
    )
    for name in ("cpu_seconds", "open_files", "file_size"):
        if getattr(limits, name) is not None:
            enforcement[name] = "rlimit"
    if limits.wall_seconds is not None:
        enforcement["wall_seconds"] = "supervisor timer"
    return cgroup, rlimits, enforcement


# -- Landlock ------------------------------------------------------------------------------


def _landlock_policy(
    policy: Policy, view: View, exec_targets: tuple[str, ...]
) -> _landlock.LandlockPolicy:
    """The filesystem view again, as Landlock rules (a second, independent layer)."""
    read: Literal["rx", "ro"] = "rx" if policy.allow_exec else "ro"
    rules = [_landlock.FsRule(bind.inside, "rw" if bind.writable else read) for bind in view.binds]
    rules += [_landlock.FsRule(path, "ro") for path in view.files]
    rules += [_landlock.FsRule(path, "rx") for path in exec_targets]
    rules += [_landlock.FsRule(path, "rw") for path in (*DEVICES_RW, "/tmp", "/dev/shm")]
    rules += [_landlock.FsRule(path, "ro") for path in (*DEVICES_RO, "/proc", "/dev")]
    return _landlock.LandlockPolicy(fs=tuple(rules), restrict_tcp=policy.network == "none")


def exec_files(command: str) -> tuple[str, ...]:
    """The files ``execve`` of ``command`` opens: the program and its interpreter."""
    path = command if "/" in command else shutil.which(command, path=DEFAULT_PATH)
    if path is None or not os.path.exists(path):
        return ()
    path = os.path.realpath(path)
    interpreter = _interpreter(path)
    if interpreter is None:
        return (path,)
    return (path, *exec_files(interpreter))


def _interpreter(path: str) -> str | None:
    """The ELF program interpreter, or a script's ``#!`` interpreter."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].split()
        return os.fsdecode(words[0]) if words else None
    if head.startswith(b"\x7fELF"):
        return _elf_interpreter(path)
    return None


def _elf_interpreter(path: str) -> str | None:
    """The PT_INTERP of a 64-bit little-endian ELF file (None for static programs)."""
    import struct

    with open(path, "rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[4] != 2:  # not ELFCLASS64
            return None
        (phoff,) = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        kind, _flags, offset, _vaddr, _paddr, size = struct.unpack_from(
            "<IIQQQQ", table, i * phentsize
        )
        if kind == 3:  # PT_INTERP
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode()
    return None
