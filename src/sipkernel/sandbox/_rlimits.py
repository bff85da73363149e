"""Resource limits (``setrlimit``) a sandboxed process sets on itself before it runs.

Unlike cgroups, rlimits bind one process at a time (each child inherits its
parent's) and need no privilege to lower. ``apply_rlimits`` sets the soft and
the hard limit together, so the sandboxed code cannot raise them again.

Python ignores ``SIGXFSZ`` (and a program it execs inherits that), so a write
past ``file_size`` fails with ``EFBIG`` instead of killing the process. A
process past ``cpu_seconds`` gets ``SIGXCPU``, which ``rlimit_signal_reason``
turns back into words.
"""

from __future__ import annotations

import resource
import signal as _signal

import msgspec

from .._core._errors import SipkernelError, UsageError

__all__ = ["RlimitError", "Rlimits", "apply_rlimits", "rlimit_signal_reason"]


class RlimitError(SipkernelError):
    """``setrlimit`` refused a limit; ``limit`` names the ``Rlimits`` field."""

    def __init__(self, limit: str, value: int, error: OSError | ValueError) -> None:
        super().__init__(f"cannot set the {limit} limit to {value}: {error}")
        self.limit = limit
        self.value = value


class Rlimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-process limits; ``None`` keeps the inherited value, ``core`` defaults to 0."""

    # RLIMIT_AS, bytes of virtual memory: a bigger mmap or brk fails (MemoryError
    # in Python). Counts reservations, not use: runtimes reserving large arenas
    # (Go, the JVM, some allocators) need room above their real use.
    address_space: int | None = None
    # RLIMIT_DATA, bytes of heap and private anonymous mappings (Linux 4.7+).
    data: int | None = None
    # RLIMIT_CPU, seconds of CPU time: SIGXCPU at the limit, SIGKILL one second
    # later if SIGXCPU is caught or ignored.
    cpu_seconds: int | None = None
    # RLIMIT_NOFILE: open descriptors; opening past it fails with EMFILE.
    open_files: int | None = None
    # RLIMIT_NPROC: processes (threads count) of the real user id across the
    # whole host, not just this sandbox: other processes of the same user use it
    # up too. Counted per user namespace and in each ancestor namespace for the
    # mapped id. Root (CAP_SYS_RESOURCE or CAP_SYS_ADMIN) is exempt. Prefer the
    # cgroup pids limit; this is a backstop for a sandbox with its own uid.
    processes: int | None = None
    # RLIMIT_FSIZE, bytes: writing a file past it fails with EFBIG (see above).
    file_size: int | None = None
    # RLIMIT_CORE, bytes of core dump: 0 writes none (a crash leaks no memory).
    core: int = 0
    # RLIMIT_STACK, bytes of the main thread's stack; also shapes the mmap layout.
    stack: int | None = None

    def __post_init__(self) -> None:
        for field in self.__struct_fields__:
            value = getattr(self, field)
            if value is None and field != "core":
                continue
            if type(value) is not int or value < 0:
                kind = "a non-negative int" + (" or None" if field != "core" else "")
                raise UsageError(f"{field} must be {kind}, not {value!r}")


_RESOURCES = {
    "address_space": resource.RLIMIT_AS,
    "data": resource.RLIMIT_DATA,
    "cpu_seconds": resource.RLIMIT_CPU,
    "open_files": resource.RLIMIT_NOFILE,
    "processes": resource.RLIMIT_NPROC,
    "file_size": resource.RLIMIT_FSIZE,
    "core": resource.RLIMIT_CORE,
    "stack": resource.RLIMIT_STACK,
}


def _clamp(value: int, hard: int) -> int:
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def apply_rlimits(limits: Rlimits) -> None:
    """Set each limit given (soft and hard) on the calling process.

    A value above the current hard limit is lowered to it: a sandbox never
    raises a limit, for root and unprivileged callers alike. ``cpu_seconds``
    keeps a hard limit one second above the soft one, so the process gets
    ``SIGXCPU`` (a reason) before ``SIGKILL``. Raises ``RlimitError`` naming
    the limit when the kernel refuses one for another reason.
    """
    if not isinstance(limits, Rlimits):
        raise UsageError(f"limits must be an Rlimits, not {type(limits).__name__}")
    for field, which in _RESOURCES.items():
        value = getattr(limits, field)
        if value is None:
            continue
        _, hard = resource.getrlimit(which)
        soft = _clamp(value, hard)
        new_hard = _clamp(soft + 1, hard) if which == resource.RLIMIT_CPU else soft
        try:
            resource.setrlimit(which, (soft, new_hard))
        except (OSError, ValueError) as e:
            raise RlimitError(field, value, e) from e


def rlimit_signal_reason(signal: int, limits: Rlimits) -> str | None:
    """Words for a death by ``signal`` that one of ``limits`` explains, else None."""
    if signal == _signal.SIGXCPU:
        n = limits.cpu_seconds
        return "cpu time limit (inherited)" if n is None else f"cpu time limit {n} s"
    if signal == _signal.SIGXFSZ:
        n = limits.file_size
        return "file size limit (inherited)" if n is None else f"file size limit {n} bytes"
    return None
