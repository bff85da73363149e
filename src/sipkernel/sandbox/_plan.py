"""Building a sandbox as an ordered list of named steps, then running them.

The list is planned from the policy before anything is done (bubblewrap's
``SetupOp`` idea): a reader can print it, and a failure names the step that
failed. The steps run in the sandbox's first process (pid 1 of its new pid
namespace), after its user namespace has been mapped, in this order:

1. mounts made private, then a new root built on a tmpfs: read-only binds,
   ``/tmp``, ``/proc``, ``/dev``, ``/etc``;
2. ``pivot_root`` into it, the old root detached, the new root read-only;
3. host name, loopback, working directory, rlimits;
4. the switch to the sandbox's uid and gid, Landlock, a new session,
   capabilities dropped, the environment replaced;
5. the seccomp filter, last, so that nothing above has to pass it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import NamedTuple

import msgspec

from . import _landlock, _linux
from ._errors import SandboxSetupError
from ._policy import Bind
from ._rlimits import Rlimits, apply_rlimits
from ._view import DEVICES_RO, DEVICES_RW

STAGE = "/tmp"
"""Where the new root is assembled (in the sandbox's own mount namespace)."""

_BIND_FLAGS = _linux.MS_BIND | _linux.MS_REC
_SAFE = _linux.MS_NOSUID | _linux.MS_NODEV


class SandboxSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the inside of a sandbox needs to build itself (plain data)."""

    binds: tuple[Bind, ...]
    symlinks: dict[str, str]
    files: dict[str, str]
    tmp_size: int
    workdir: str
    hostname: str
    new_pid: bool
    new_uts: bool
    loopback: bool
    rlimits: Rlimits
    landlock: _landlock.LandlockPolicy | None
    env: dict[str, str]


class Step(NamedTuple):
    """One named action of the set-up."""

    name: str
    run: Callable[[], None]


def plan(spec: SandboxSpec, uid: int, gid: int) -> list[Step]:
    """The ordered set-up of ``spec``, ending as ``uid``/``gid`` with no privilege."""
    sources: dict[str, int] = {}
    steps = [
        Step("make mounts private", _make_private),
        Step("open bind sources", lambda: sources.update(open_sources(spec.binds))),
        Step("mount the new root", _stage_root),
        Step("mount /tmp", lambda: _mount_tmp(spec.tmp_size)),
    ]
    for bind in sorted(spec.binds, key=lambda b: b.inside.count("/")):
        steps.append(Step(f"bind {bind.source}", functools.partial(_bind, bind, sources)))
    steps += [
        Step("close bind sources", lambda: _close_all(sources)),
        Step("symlinks", lambda: _symlinks(spec.symlinks)),
        Step("mount /dev", _mount_dev),
    ]
    if spec.new_pid:
        steps.append(Step("mount /proc", _mount_proc))
    steps += [
        Step("write /etc", lambda: _write_files(spec.files)),
        Step("pivot_root", _pivot),
        Step("make the root read-only", _root_read_only),
    ]
    if spec.new_uts:
        steps.append(Step("set the host name", lambda: _linux.sethostname(spec.hostname)))
    if spec.loopback:
        steps.append(Step("bring up loopback", _linux.bring_up_loopback))
    steps += [
        Step("enter the working directory", lambda: os.chdir(spec.workdir)),
        Step("set rlimits", lambda: apply_rlimits(spec.rlimits)),
        Step("empty the capability bounding set", _linux.drop_bounding_set),
        Step("become the sandbox user", lambda: _become(uid, gid)),
    ]
    if spec.landlock is not None:
        policy = spec.landlock
        steps.append(Step("apply Landlock rules", lambda: _restrict(policy)))
    steps += [
        Step("start a new session", _new_session),
        Step("drop capabilities", _drop_capabilities),
        Step("replace the environment", lambda: _replace_env(spec.env)),
    ]
    return steps


def execute(steps: list[Step]) -> None:
    """Run ``steps`` in order; ``SandboxSetupError`` names the one that failed."""
    for step in steps:
        try:
            step.run()
        except Exception as exc:
            raise SandboxSetupError(step.name, _explain(exc)) from exc


def _explain(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def open_sources(binds: tuple[Bind, ...]) -> dict[str, int]:
    """Open every bind source (O_PATH) before the new root hides any of them."""
    fds: dict[str, int] = {}
    for bind in binds:
        if bind.source not in fds:
            fds[bind.source] = os.open(bind.source, os.O_PATH | os.O_CLOEXEC)
    return fds


# -- the new root -----------------------------------------------------------------------


def _inside(path: str) -> str:
    return STAGE + path


def _make_private() -> None:
    _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)


def _stage_root() -> None:
    _linux.mount("tmpfs", STAGE, "tmpfs", _SAFE, "mode=0755,size=4m")


def _bind(bind: Bind, sources: dict[str, int]) -> None:
    source_fd = sources[bind.source]
    target = _inside(bind.inside)
    _make_target(target, directory=os.path.isdir(f"/proc/self/fd/{source_fd}"))
    _linux.mount(f"/proc/self/fd/{source_fd}", target, None, _BIND_FLAGS)
    flags = _linux.MS_REMOUNT | _linux.MS_BIND | _SAFE | _locked_flags(target)
    if not bind.writable:
        flags |= _linux.MS_RDONLY
    _linux.mount(None, target, None, flags)
    if not bind.writable:
        for submount in _submounts(target):
            _linux.mount(None, submount, None, flags | _locked_flags(submount))


def _locked_flags(path: str) -> int:
    """Flags the source mount has that a remount must keep (the kernel locks them)."""
    flags = os.statvfs(path).f_flag
    kept = 0
    if flags & os.ST_NOEXEC:
        kept |= _linux.MS_NOEXEC
    if flags & os.ST_RDONLY:
        kept |= _linux.MS_RDONLY
    return kept


def _submounts(target: str) -> list[str]:
    prefix = target.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(prefix)]


def _make_target(target: str, *, directory: bool) -> None:
    if os.path.lexists(target):
        return  # inside an earlier bind (the command beneath a granted directory)
    if directory:
        os.makedirs(target, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "a"):
        pass


def _symlinks(links: dict[str, str]) -> None:
    for path, target in links.items():
        os.symlink(target, _inside(path))


def _mount_tmp(size: int) -> None:
    path = _inside("/tmp")
    os.makedirs(path, exist_ok=True)
    _linux.mount("tmpfs", path, "tmpfs", _SAFE, f"mode=1777,size={size}")


def _mount_dev() -> None:
    dev = _inside("/dev")
    os.makedirs(dev, exist_ok=True)
    _linux.mount("tmpfs", dev, "tmpfs", _SAFE | _linux.MS_NOEXEC, "mode=0755,size=64k")
    for device in (*DEVICES_RW, *DEVICES_RO):
        if os.path.exists(device):
            target = _inside(device)
            _make_target(target, directory=False)
            _linux.mount(device, target, None, _linux.MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, os.path.join(dev, name))
    os.symlink("/proc/self/fd/1", os.path.join(dev, "stdout"))
    os.symlink("/proc/self/fd/2", os.path.join(dev, "stderr"))
    shm = os.path.join(dev, "shm")
    os.makedirs(shm)
    _linux.mount("tmpfs", shm, "tmpfs", _SAFE | _linux.MS_NOEXEC, "mode=1777,size=16m")


def _mount_proc() -> None:
    proc = _inside("/proc")
    os.makedirs(proc, exist_ok=True)
    _linux.mount("proc", proc, "proc", _SAFE | _linux.MS_NOEXEC)


def _write_files(files: dict[str, str]) -> None:
    for path, text in files.items():
        target = _inside(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(text)


def _pivot() -> None:
    os.chdir(STAGE)
    _linux.pivot_root(".", ".")
    _linux.umount(".", _linux.MNT_DETACH)
    os.chdir("/")


def _root_read_only() -> None:
    flags = _linux.MS_REMOUNT | _linux.MS_BIND | _linux.MS_RDONLY | _SAFE
    _linux.mount(None, "/", None, flags)


# -- the process ------------------------------------------------------------------------


def _restrict(policy: _landlock.LandlockPolicy) -> None:
    present = tuple(rule for rule in policy.fs if os.path.exists(rule.path))
    _landlock.restrict(msgspec.structs.replace(policy, fs=present))


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


def _become(uid: int, gid: int) -> None:
    """Switch to the sandbox's ids inside (from uid 0 inside, this drops every capability)."""
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _new_session() -> None:
    if os.getsid(0) != os.getpid():
        os.setsid()


def _drop_capabilities() -> None:
    _linux.prctl(_linux.PR_SET_NO_NEW_PRIVS, 1)
    _linux.clear_capabilities()
    if _linux.capabilities_effective():
        raise OSError(0, "capabilities remain after capset")


def _replace_env(env: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(env)
