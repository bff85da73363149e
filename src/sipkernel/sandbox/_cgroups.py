"""Control groups: memory, process-count and CPU limits on a sandbox's processes together.

A sandbox gets one cgroup directory per hierarchy it needs, made under the
cgroup this process already sits in (delegation: whoever limits us still limits
what we start). Each controller is chosen on its own: v2 when it is enabled, or
can be, in the v2 tree where we can make children; else v1 when its hierarchy
is mounted and writable; else ``cgroup_support`` says why and how to fix it,
and asking for that limit raises ``CgroupUnavailable``. No limit is dropped.

A writable v2 tree always gets a directory, even with no v2 controller: it gives
``cgroup.kill``, ``cgroup.freeze`` and CPU time. Without one, the v1 ``cpuacct``
and ``freezer`` hierarchies stand in. v2 lets no controller be enabled for the
children of a cgroup that holds processes: when this process is the only one
in its cgroup, ``cgroup_support`` moves it into a leaf child named
``sipkernel-supervisor`` first.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import math
import os
import re
import signal
import time
from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple

import msgspec

from .._core._errors import SipkernelError, UsageError

__all__ = [
    "Cgroup",
    "CgroupError",
    "CgroupLimits",
    "CgroupSupport",
    "CgroupUnavailable",
    "ControllerSupport",
    "cgroup_support",
    "join_cgroup",
]

Version = Literal["v2", "v1"]
CgroupHandle = tuple[tuple[str, Version, tuple[str, ...]], ...]
"""A cgroup as plain data: (directory, version, controllers) per hierarchy."""
_CPU_PERIOD_US = 100_000
_MIN_CPU_CORES = 0.01  # the kernel's smallest quota is 1 ms per 100 ms period
_SETTLE_S = 5.0  # how long close() waits for killed processes to leave
_FREEZE_S = 1.0  # how long kill() waits for a freeze before killing anyway
_FIX = "run as root or delegate a cgroup v2 subtree (systemd-run --user --scope -p Delegate=yes)"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_counter = itertools.count(1)
_ALL = ("memory", "pids", "cpu", "unified", "cpuacct", "freezer")


class CgroupError(SipkernelError):
    """A cgroup could not be created, written, emptied or removed."""


class CgroupUnavailable(CgroupError, UsageError):
    """A requested limit cannot be enforced here; ``reason`` names the cause and the fix."""

    def __init__(self, controller: str, reason: str) -> None:
        why = reason.removeprefix(f"{controller}: ")
        super().__init__(f"cannot enforce the {controller} limit: {why}")
        self.controller = controller
        self.reason = reason


class CgroupLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits on all the processes of one sandbox together; ``None`` means no limit."""

    memory_bytes: int | None = None  # RAM and swap; past it the OOM killer kills inside
    pids: int | None = None  # processes and threads at once; fork fails with EAGAIN past it
    cpu_cores: float | None = None  # CPU bandwidth (0.5: half a CPU); throttles, never kills

    def __post_init__(self) -> None:
        for field in ("memory_bytes", "pids"):
            value = getattr(self, field)
            if value is not None and (type(value) is not int or value <= 0):
                raise UsageError(f"{field} must be a positive int or None, not {value!r}")
        cores = self.cpu_cores
        if cores is None:
            return
        if not isinstance(cores, int | float) or isinstance(cores, bool):
            raise UsageError(f"cpu_cores must be a number or None, not {cores!r}")
        if not math.isfinite(cores) or cores < _MIN_CPU_CORES:
            raise UsageError(f"cpu_cores must be finite and at least {_MIN_CPU_CORES}, not {cores}")


class ControllerSupport(msgspec.Struct, frozen=True, kw_only=True):
    """How this machine provides one cgroup facility."""

    name: str
    version: Version | None = None  # "v2" or "v1"; None when unavailable
    parent: str | None = None  # the directory sandbox cgroups are made in
    reason: str | None = None  # why it is unavailable, and the fix

    @property
    def available(self) -> bool:
        """True when sandbox cgroups can use this facility."""
        return self.version is not None


class CgroupSupport(msgspec.Struct, frozen=True, kw_only=True):
    """What this machine offers, facility by facility (see ``cgroup_support``)."""

    memory: ControllerSupport
    pids: ControllerSupport
    cpu: ControllerSupport
    unified: ControllerSupport  # the v2 tree: membership, cgroup.kill/freeze, CPU time
    cpuacct: ControllerSupport  # v1 CPU time, used when there is no v2 tree
    freezer: ControllerSupport  # v1 freezer, used by kill() when there is no v2 tree
    cgroup_kill: bool  # the v2 tree has cgroup.kill (Linux 5.14)

    def get(self, name: str) -> ControllerSupport:
        """The support of the facility called ``name``."""
        found: ControllerSupport = getattr(self, name)
        return found

    def describe(self) -> str:
        """One line per facility: its version and parent, or why it is unavailable."""
        lines = []
        for name in _ALL:
            s = self.get(name)
            lines.append(f"{name}: {s.version} in {s.parent}" if s.available else f"{s.reason}")
        return "\n".join([*lines, f"cgroup.kill: {'yes' if self.cgroup_kill else 'no'}"])


# -- finding the hierarchies and our place in them ---------------------------------------


class _Mount(NamedTuple):
    root: str
    point: str


def _mounts() -> tuple[_Mount | None, dict[str, _Mount]]:
    """The cgroup2 mount, and the v1 mount of each controller (by mount option)."""
    v2: _Mount | None = None
    v1: dict[str, _Mount] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, (fstype, _source, options, *_) = left.split(), right.split()
            unescaped = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), x) for x in fields]
            mount = _Mount(unescaped[3], unescaped[4])
            if fstype == "cgroup2" and v2 is None:
                v2 = mount
            elif fstype == "cgroup":
                for option in options.split(","):
                    v1.setdefault(option, mount)
    return v2, v1


def _own_paths() -> dict[str, str]:
    """Our cgroup path per v1 controller, and under ``""`` in the v2 tree."""
    with open("/proc/self/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    return {name: path for _, names, path in lines for name in names.split(",")}


def _place(
    name: str, version: Version, mount: _Mount | None, path: str | None
) -> tuple[ControllerSupport, bool]:
    """Where sandbox cgroups of ``name`` go, proven by making a probe child there,
    and whether that child had ``cgroup.kill``."""
    tree = "v2 tree" if version == "v2" else "v1 hierarchy"
    root = "" if mount is None else mount.root.rstrip("/")
    if mount is None or path is None:
        why = f"no {tree} is mounted"
    elif path != root and not path.startswith(root + "/"):
        why = f"our cgroup is outside the mounted {tree}"
    else:
        parent = os.path.normpath(mount.point + "/" + path[len(root) :])
        probe = os.path.join(parent, f"sipkernel-probe-{os.getpid()}")
        try:
            os.makedirs(probe, exist_ok=True)
        except OSError as e:
            why = f"the {tree} is not writable ({e.strerror})"
        else:
            has_kill = os.path.exists(os.path.join(probe, "cgroup.kill"))
            os.rmdir(probe)
            return ControllerSupport(name=name, version=version, parent=parent), has_kill
    return ControllerSupport(name=name, reason=f"{name}: {why}"), False


def _enable_v2(controller: str, parent: str) -> str | None:
    """Enable ``controller`` for children of ``parent``; None on success, else why not."""
    if controller not in _words(os.path.join(parent, "cgroup.controllers")):
        return "no v2 controller"
    subtree = os.path.join(parent, "cgroup.subtree_control")
    for attempt in range(2):
        if controller in _words(subtree):
            return None
        try:
            _write(subtree, f"+{controller}")
        except OSError as e:
            if attempt == 0 and e.errno == errno.EBUSY and _move_self_to_leaf(parent):
                continue
            return f"the v2 controller cannot be enabled for children ({e.strerror})"
    return None


def _move_self_to_leaf(parent: str) -> bool:
    """Leave ``parent`` for a leaf child when we are its only process (see module doc)."""
    if _pids(os.path.join(parent, "cgroup.procs")) != (os.getpid(),):
        return False
    leaf = os.path.join(parent, "sipkernel-supervisor")
    try:
        os.makedirs(leaf, exist_ok=True)
        _write(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
    except OSError:
        return False
    return True


@functools.cache
def cgroup_support() -> CgroupSupport:
    """What this machine offers for sandbox cgroups, per controller (computed once).

    Probing makes and removes an empty ``sipkernel-probe-PID`` directory in each
    hierarchy, and may enable v2 controllers for the children of our cgroup.
    """
    try:
        v2, v1 = _mounts()
        own = _own_paths()
    except OSError:  # no /proc, not Linux: every facility reports "not mounted"
        v2, v1, own = None, {}, {}
    unified, has_kill = _place("unified", "v2", v2, own.get(""))
    found = {}
    for name in ("memory", "pids", "cpu"):
        why_v2 = (unified.reason or "").removeprefix("unified: ")
        if unified.parent is not None:
            why_v2 = _enable_v2(name, unified.parent) or ""
            if not why_v2:
                found[name] = ControllerSupport(name=name, version="v2", parent=unified.parent)
                continue
        legacy, _ = _place(name, "v1", v1.get(name), own.get(name))
        why_v1 = (legacy.reason or "").removeprefix(f"{name}: ")
        reason = f"{name}: {why_v2} and {why_v1}: {_FIX}"
        found[name] = legacy if legacy.available else ControllerSupport(name=name, reason=reason)
    return CgroupSupport(
        **found,
        unified=unified,
        cpuacct=_place("cpuacct", "v1", v1.get("cpuacct"), own.get("cpuacct"))[0],
        freezer=_place("freezer", "v1", v1.get("freezer"), own.get("freezer"))[0],
        cgroup_kill=has_kill,
    )


# -- files -----------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _keyed(path: str) -> dict[str, int]:
    """``{key: value}`` of a flat-keyed cgroup file (``memory.events``, ``cpu.stat``...)."""
    found = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            found[key] = int(value)
    return found


def _words(path: str) -> list[str]:
    return (_read(path) or "").split()


def _pids(path: str) -> tuple[int, ...]:
    return tuple(int(word) for word in _words(path))


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    finally:
        os.close(fd)


def join_cgroup(paths: Iterable[str]) -> None:
    """Move the calling process into a cgroup: write ``0`` to each of its procs files.

    Meant for a freshly forked child, given ``Cgroup.attach_paths()``: it joins
    before it runs anything untrusted. Join *before* unsharing a user namespace
    or dropping privileges: afterwards the kernel may refuse the write (EACCES).
    Raises ``OSError``; uses no lock, so it is safe after ``fork``.
    """
    for path in paths:
        _write(path, "0")


# -- a sandbox's cgroup ------------------------------------------------------------------


class _Dir(NamedTuple):
    path: str
    version: Version
    controllers: frozenset[str]


def _plan(support: CgroupSupport, limits: CgroupLimits) -> dict[str, tuple[Version, set[str]]]:
    """``{parent: (version, facilities)}``: one directory per hierarchy needed."""
    plan: dict[str, tuple[Version, set[str]]] = {}
    wanted = {"memory": limits.memory_bytes, "pids": limits.pids, "cpu": limits.cpu_cores}
    needed = [support.get(name) for name, value in wanted.items() if value is not None]
    for found in needed:
        if not found.available:
            raise CgroupUnavailable(found.name, found.reason or f"{found.name}: unavailable")
    extras = _extras(support, needed)
    for found in needed + extras:
        if found.version is not None and found.parent is not None:
            plan.setdefault(found.parent, (found.version, set()))[1].add(found.name)
    return plan


def _extras(support: CgroupSupport, needed: list[ControllerSupport]) -> list[ControllerSupport]:
    """The hierarchies for killing and CPU time: the v2 tree, or v1 cpuacct and freezer.

    When every limit is on v1 and v1 has both, the v2 tree is left out: joining a
    v2 cgroup costs an RCU grace period (milliseconds) that a single-threaded
    process joining v1 through ``tasks`` does not pay.
    """
    v1 = [support.cpuacct, support.freezer]
    all_v1 = needed and all(found.version == "v1" for found in needed)
    if all_v1 and all(found.available for found in v1):
        return v1
    return [support.unified] if support.unified.available else v1


class Cgroup:
    """One sandbox's cgroup: a directory in each hierarchy it needs (make with ``create``).

    Use it as a context manager, or call ``close``: it kills whatever is still
    inside and removes the directories.
    """

    def __init__(self, name: str, dirs: tuple[_Dir, ...]) -> None:
        self.name = name
        self._dirs = dirs
        self._closed = False

    @classmethod
    def create(cls, name: str, limits: CgroupLimits) -> Cgroup:
        """Make the directories of a new cgroup and write ``limits`` into them.

        Raises ``CgroupUnavailable`` when a requested limit cannot be enforced
        here, ``CgroupError`` when the kernel refuses a directory or a limit.
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UsageError(f"cgroup name must be 1-64 of [A-Za-z0-9_.-], not {name!r}")
        if not isinstance(limits, CgroupLimits):
            raise UsageError(f"limits must be a CgroupLimits, not {type(limits).__name__}")
        plan = _plan(cgroup_support(), limits)
        leaf = f"sipkernel-{name}-{os.getpid()}-{next(_counter)}"
        made: list[_Dir] = []
        try:
            for parent, (version, facilities) in plan.items():
                os.mkdir(os.path.join(parent, leaf))
                made.append(_Dir(os.path.join(parent, leaf), version, frozenset(facilities)))
            group = cls(name, tuple(made))
            group._write_limits(limits)
        except OSError as e:
            for d in made:
                with contextlib.suppress(OSError):
                    os.rmdir(d.path)
            raise CgroupError(f"cannot set up cgroup {leaf}: {e}") from e
        return group

    @classmethod
    def adopt(cls, name: str, handle: CgroupHandle) -> Cgroup:
        """Take charge of a cgroup another process made (see :meth:`handle`)."""
        return cls(
            name, tuple(_Dir(path, version, frozenset(ctl)) for path, version, ctl in handle)
        )

    def handle(self) -> CgroupHandle:
        """Plain data naming this cgroup, for :meth:`adopt` in another process."""
        return tuple((d.path, d.version, tuple(sorted(d.controllers))) for d in self._dirs)

    def __repr__(self) -> str:
        return f"Cgroup({self.name!r}, {list(self.directories)!r})"

    def __enter__(self) -> Cgroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def directories(self) -> tuple[str, ...]:
        """The cgroup's directories, one per hierarchy."""
        return tuple(d.path for d in self._dirs)

    def directory_of(self, facility: str) -> str | None:
        """The directory serving ``facility`` (``"memory"``, ``"cpu"``...), if any."""
        found = self._dir(facility)
        return None if found is None else found.path

    def _dir(self, facility: str) -> _Dir | None:
        return next((d for d in self._dirs if facility in d.controllers), None)

    def _file(self, facility: str, name: str) -> str | None:
        found = self._dir(facility)
        return None if found is None else os.path.join(found.path, name)

    def _write_limits(self, limits: CgroupLimits) -> None:
        memory, pids, cpu = self._dir("memory"), self._file("pids", "pids.max"), self._dir("cpu")
        if memory is not None and limits.memory_bytes is not None:
            value, path = str(limits.memory_bytes), memory.path
            v2 = memory.version == "v2"
            _write(f"{path}/memory.max" if v2 else f"{path}/memory.limit_in_bytes", value)
            swap = f"{path}/memory.swap.max" if v2 else f"{path}/memory.memsw.limit_in_bytes"
            if os.path.exists(swap):  # memsw (memory + swap) must not be below the limit
                _write(swap, "0" if v2 else value)
        if pids is not None and limits.pids is not None:
            _write(pids, str(limits.pids))
        if cpu is not None and limits.cpu_cores is not None:
            quota = round(limits.cpu_cores * _CPU_PERIOD_US)
            if cpu.version == "v2":
                _write(f"{cpu.path}/cpu.max", f"{quota} {_CPU_PERIOD_US}")
            else:
                _write(f"{cpu.path}/cpu.cfs_period_us", str(_CPU_PERIOD_US))
                _write(f"{cpu.path}/cpu.cfs_quota_us", str(quota))

    def attach(self, pid: int) -> None:
        """Move process ``pid``, all its threads, into every hierarchy of this cgroup."""
        if self._closed:
            raise CgroupError(f"{self!r} is closed")
        try:
            for path in self.attach_paths():
                _write(path, str(pid))
        except OSError as e:
            raise CgroupError(f"cannot attach process {pid}: {e}") from e

    def attach_paths(self) -> tuple[str, ...]:
        """The procs file of each hierarchy, for a child to join itself (``join_cgroup``).

        A child writes ``0`` (or its pid) to each before it drops privileges. A
        child in a new user namespace may lose the right to write them, so it
        must join before it unshares.
        """
        return tuple(os.path.join(d.path, "cgroup.procs") for d in self._dirs)

    def procs(self) -> tuple[int, ...]:
        """The processes now in the cgroup (in any of its hierarchies)."""
        return tuple(sorted({pid for path in self.attach_paths() for pid in _pids(path)}))

    def memory_peak(self) -> int | None:
        """The most memory the group has used, in bytes; None without a memory hierarchy."""
        memory = self._dir("memory")
        if memory is None:
            return None
        name = "memory.peak" if memory.version == "v2" else "memory.max_usage_in_bytes"
        text = _read(os.path.join(memory.path, name))
        return None if text is None else int(text)

    def oom_killed(self) -> bool:
        """True once the kernel OOM killer has killed a process of the group."""
        memory = self._dir("memory")
        if memory is None:
            return False
        name = "memory.events" if memory.version == "v2" else "memory.oom_control"
        return _keyed(os.path.join(memory.path, name)).get("oom_kill", 0) > 0

    def pids_limit_hit(self) -> bool:
        """True once a fork or clone in the group failed on the pids limit."""
        events = self._file("pids", "pids.events")
        return events is not None and _keyed(events).get("max", 0) > 0

    def cpu_time_ns(self) -> int | None:
        """CPU time the group's processes have used, in nanoseconds; None if unknown."""
        for d in self._dirs:
            if d.version == "v2":
                usage = _keyed(os.path.join(d.path, "cpu.stat")).get("usage_usec")
                return None if usage is None else usage * 1000
        usage_file = self._file("cpuacct", "cpuacct.usage")
        text = None if usage_file is None else _read(usage_file)
        return None if text is None else int(text)

    def kill(self) -> None:
        """SIGKILL every process in the group, those it forks meanwhile included.

        ``cgroup.kill`` when the v2 tree has it; else freeze the group (so a fork
        bomb cannot race us), SIGKILL what is listed, thaw, and repeat until empty.
        """
        dirs = [d for d in self._dirs if os.path.isdir(d.path)]
        v2 = next((d.path for d in dirs if d.version == "v2"), None)
        freezer = next((d.path for d in dirs if "freezer" in d.controllers), None)
        try:
            if v2 is not None and os.path.exists(f"{v2}/cgroup.kill"):
                _write(f"{v2}/cgroup.kill", "1")
                return
            if v2 is not None:
                self._frozen_kill(f"{v2}/cgroup.freeze", "1", "0", f"{v2}/cgroup.events")
            elif freezer is not None:
                self._frozen_kill(f"{freezer}/freezer.state", "FROZEN", "THAWED", None)
        except OSError as e:
            raise CgroupError(f"cannot kill the processes of {self!r}: {e}") from e
        _until(lambda: not self._signal_all(), _FREEZE_S)

    def _frozen_kill(self, state: str, frozen: str, thawed: str, events: str | None) -> None:
        """Freeze (waiting a bounded time for it to take), SIGKILL everyone, thaw."""
        _write(state, frozen)
        try:
            if events is not None:  # v2 reports a finished freeze in cgroup.events
                _until(lambda: _keyed(events).get("frozen") == 1, _FREEZE_S)
            else:
                _until(lambda: (_read(state) or "").strip() == frozen, _FREEZE_S)
            self._signal_all()
        finally:
            _write(state, thawed)

    def _signal_all(self) -> tuple[int, ...]:
        """SIGKILL each process listed now; returns them."""
        pids = self.procs()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def close(self) -> None:
        """Kill what is left, wait for it to leave, remove every directory (idempotent)."""
        if self._closed:
            return
        self.kill()
        deadline = time.monotonic() + _SETTLE_S
        _until(lambda: not self._signal_all(), _SETTLE_S)
        for d in reversed(self._dirs):
            if not _until(functools.partial(_rmdir, d.path), deadline - time.monotonic()):
                left = _pids(f"{d.path}/cgroup.procs")
                raise CgroupError(f"cannot remove {d.path}: still busy with {left}")
        self._closed = True


def _rmdir(path: str) -> bool:
    """Remove an empty cgroup directory: True once gone, False while busy."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise CgroupError(f"cannot remove {path}: {e.strerror}") from e
        return False
    return True


def _until(done: Callable[[], bool], seconds: float) -> bool:
    """Poll ``done`` every millisecond for at most ``seconds``; whether it came true."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
    return True
