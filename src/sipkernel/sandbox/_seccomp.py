"""The seccomp-BPF layer of the sandbox: a denylist that shrinks the kernel's attack surface.

The namespaces and Landlock are the sandbox's first layer: they decide what the
sandboxed code can see and touch. This layer keeps it away from the parts of the
kernel it has no business calling (other processes' memory, mounts, namespaces,
kernel modules, the keyring, eBPF, io_uring, ...). Like Docker's default profile
it is a denylist: every call not listed is allowed, since an allowlist would
break ordinary Python code for little gain once the namespaces are in place.

What a dangerous call does depends on :attr:`SyscallPolicy.on_violation`:

* ``"kill"`` with a listener: the kernel holds the call and reports it to a
  supervisor (seccomp user notification), whose :class:`ViolationWatcher` names
  it; the supervisor kills the sandbox, and the call fails with EPERM meanwhile;
* ``"kill"`` without a listener (or in an exported program): the kernel kills
  the process at once, and the exit is an unnamed SIGSYS;
* ``"errno"``: the call fails with EPERM.

Some calls are never violations: ``clone3`` always fails with ENOSYS (its flags
are in memory, out of the filter's reach; glibc and CPython fall back to
``clone``, whose flags are checked), ``personality`` fails with EPERM for
anything but a query or ``PER_LINUX``, and ``socket``/``socketpair`` fail with
EAFNOSUPPORT outside :attr:`SyscallPolicy.socket_families`.

libseccomp (through pyseccomp) builds the filter for the native architecture
only; a call made through another ABI (``int 0x80``, x32) kills the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import itertools
import os
import re
import select
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Final, Literal, NamedTuple

import msgspec

from .._core._errors import UsageError

if TYPE_CHECKING:
    import logging

DANGEROUS_SYSCALLS: Final = (
    # Reading, writing or stealing from other processes.
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # Changing the mount table or the root directory.
    "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick",
    # Entering or making namespaces (clone with namespace flags is a rule below).
    "unshare", "setns",
    # Large subsystems with a long record of exploitable bugs.
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register",
    # The kernel keyring, which namespaces do not separate.
    "keyctl", "add_key", "request_key",
    # Loading code into the kernel, or replacing it.
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    # State of the whole machine: power, swap, accounting, quotas, the kernel log, clocks.
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    # Opening files by handle, which bypasses path checks (and Landlock).
    "open_by_handle_at", "name_to_handle_at",
    # Raw I/O ports, hanging up the terminal, an obsolete profiling hook.
    "iopl", "ioperm", "vhangup", "lookup_dcookie",
)  # fmt: skip
"""Calls the sandbox never needs; :attr:`SyscallPolicy.allow` may remove some."""

ALLOWABLE: Final = frozenset((*DANGEROUS_SYSCALLS, "clone", "ioctl", "personality"))
"""What ``allow`` may name: the set above and the calls with argument rules
(``"clone"`` lifts the namespace-flag rule and the ``clone3`` ENOSYS together)."""

SOCKET_FAMILIES: Final[Mapping[str, int]] = {
    "unix": socket.AF_UNIX,
    "inet": socket.AF_INET,
    "inet6": socket.AF_INET6,
    "netlink": socket.AF_NETLINK,
    "packet": socket.AF_PACKET,
}
"""The address families a policy may name."""

# CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET}, and CLONE_NEWTIME, which clone() reads
# as part of the exit signal: no real signal sets it, so denying it costs nothing.
_NAMESPACE_FLAGS: Final = (
    0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x80,
)  # fmt: skip
_TTY_REQUESTS: Final = (0x5412, 0x541C)  # TIOCSTI (types into a terminal), TIOCLINUX
_LOW32: Final = 0xFFFFFFFF  # ioctl requests and personalities are 32-bit; registers are not
_USER_NOTIF_FLAG_CONTINUE: Final = 1  # SECCOMP_USER_NOTIF_FLAG_CONTINUE: run the held call
_PR_SET_NO_NEW_PRIVS: Final = 38
_SET_MODE_FILTER: Final = 1  # SECCOMP_SET_MODE_FILTER
_FLAG_TSYNC: Final = 1  # SECCOMP_FILTER_FLAG_TSYNC: every thread of the process
_FLAG_NEW_LISTENER: Final = 1 << 3  # SECCOMP_FILTER_FLAG_NEW_LISTENER
_FLAG_TSYNC_ESRCH: Final = 1 << 4  # a thread that cannot sync fails the call (ESRCH)

_SONAMES: Final = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}
"""The usual sonames of the libraries pyseccomp looks up as it is imported."""


class SyscallPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The seccomp section of a sandbox policy; names are checked when it is made."""

    deny_extra: tuple[str, ...] = ()
    """More system calls to treat as dangerous."""
    allow: tuple[str, ...] = ()
    """Calls to remove from the dangerous set (see ``ALLOWABLE``), for users who insist."""
    socket_families: tuple[str, ...] = ("unix",)
    """Address families ``socket``/``socketpair`` may use; others get EAFNOSUPPORT."""
    allow_exec: bool = True
    """When False, ``execve`` and ``execveat`` are dangerous calls too."""
    exec_once: bool = False
    """With ``allow_exec=False``: the first ``execve`` is let through (a command
    sandbox's own start, by its trusted launcher), every later one is a violation.
    Needs a listener: the watcher counts."""
    on_violation: Literal["kill", "errno"] = "kill"
    """``kill``: the sandbox dies and the call is named; ``errno``: the call fails (EPERM)."""

    def __post_init__(self) -> None:
        _check_syscalls("deny_extra", self.deny_extra)
        _check_syscalls("allow", self.allow)
        if extra := sorted(set(self.allow) - ALLOWABLE):
            raise UsageError(f"allow: not in the default dangerous set: {', '.join(extra)}")
        if both := sorted(set(self.allow) & set(self.deny_extra)):
            raise UsageError(f"both allowed and denied: {', '.join(both)}")
        _check_tuple("socket_families", self.socket_families)
        if unknown := sorted(set(self.socket_families) - SOCKET_FAMILIES.keys()):
            known = ", ".join(SOCKET_FAMILIES)
            raise UsageError(f"unknown socket families {unknown} (known: {known})")
        if self.exec_once and (self.allow_exec or self.on_violation != "kill"):
            raise UsageError('exec_once goes with allow_exec=False and on_violation="kill"')
        if self.on_violation not in ("kill", "errno"):
            raise UsageError(f'on_violation must be "kill" or "errno", not {self.on_violation!r}')


def _check_tuple(field: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(item, str) for item in value):
        raise UsageError(f"{field} must be a tuple of names, not {value!r}")


def _check_syscalls(field: str, names: tuple[str, ...]) -> None:
    _check_tuple(field, names)
    for name in names:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or -100 < syscall_number(name) < 0:
            raise UsageError(f"{field}: unknown system call {name!r}")


def syscall_number(name: str) -> int:
    """The number of system call ``name`` on this machine's architecture.

    -1 for a name libseccomp does not know; below -100 (a "pseudo" number, which
    rules ignore) for one it knows that this architecture lacks.
    """
    seccomp = _pyseccomp()
    return int(seccomp.resolve_syscall(seccomp.Arch.NATIVE, name))


def syscall_name(number: int) -> str:
    """The name of system call ``number`` on this machine's architecture (``syscall#N`` if none)."""
    seccomp = _pyseccomp()
    try:
        name = seccomp.resolve_syscall(seccomp.Arch.NATIVE, number)
    except ValueError:
        return f"syscall#{number}"
    return bytes(name).decode()


# -- the rules ---------------------------------------------------------------------------------

_Cmp = tuple[int, int, int, int]
"""One argument comparison as libseccomp takes it: (argument, operator, datum_a, datum_b)."""


class _Rule(NamedTuple):
    action: int
    syscall: str
    args: tuple[_Cmp, ...] = ()  # all must hold; one per argument at most


def _masked(arg: int, mask: int, value: int) -> tuple[_Cmp]:
    return ((arg, _pyseccomp().MASKED_EQ, mask, value),)


def _rules(policy: SyscallPolicy, action: int) -> Iterator[_Rule]:
    """Every rule of ``policy``'s filter, dangerous calls getting ``action``."""
    dangerous = {*DANGEROUS_SYSCALLS, *policy.deny_extra}
    if not policy.allow_exec:
        dangerous |= {"execve", "execveat"}
    dangerous -= set(policy.allow)
    yield from (_Rule(action, name) for name in sorted(dangerous))
    lifted = dangerous | set(policy.allow)  # a call denied or allowed whole has no argument rules
    if "clone" not in lifted:
        yield from (_Rule(action, "clone", _masked(0, flag, flag)) for flag in _NAMESPACE_FLAGS)
    if not lifted & {"clone", "clone3"}:
        yield _Rule(_pyseccomp().ERRNO(errno.ENOSYS), "clone3")
    if "ioctl" not in lifted:
        yield from (_Rule(action, "ioctl", _masked(1, _LOW32, req)) for req in _TTY_REQUESTS)
    if "personality" not in lifted:
        yield from _personality_rules()
    families = sorted({SOCKET_FAMILIES[name] for name in policy.socket_families})
    for call in ("socket", "socketpair"):
        if call not in lifted:
            yield from _family_rules(call, families)


def _personality_rules() -> Iterator[_Rule]:
    # Rules are OR-ed, with one comparison per argument each. "Neither 0 (PER_LINUX) nor
    # 0xFFFFFFFF (the query)" is "some bit is 0 and the next one, cyclically, is 1".
    for bit in range(32):
        after = 1 << (bit + 1) % 32
        yield _Rule(
            _pyseccomp().ERRNO(errno.EPERM), "personality", _masked(0, 1 << bit | after, after)
        )


def _family_rules(call: str, families: list[int]) -> Iterator[_Rule]:
    seccomp = _pyseccomp()
    deny = seccomp.ERRNO(errno.EAFNOSUPPORT)
    if not families:
        yield _Rule(deny, call)
        return
    # 64-bit bounds: a family with stray high bits fails (closed) instead of passing.
    yield _Rule(deny, call, ((0, seccomp.LT, families[0], 0),))
    yield _Rule(deny, call, ((0, seccomp.GT, families[-1], 0),))
    for low, high in itertools.pairwise(families):
        yield from (_Rule(deny, call, _masked(0, _LOW32, f)) for f in range(low + 1, high))


def _bpf(policy: SyscallPolicy, *, notify: bool) -> bytes:
    """``policy``'s filter as libseccomp generates it (raw ``struct sock_filter``
    instructions); ``notify``: report dangerous calls to a listener."""
    fd = os.memfd_create("sipkernel-seccomp", os.MFD_CLOEXEC)
    with open(fd, "w+b", buffering=0) as file:
        _build(policy, notify=notify).export_bpf(file)
        file.seek(0)
        return file.read()


def _build(policy: SyscallPolicy, *, notify: bool) -> Any:
    """A pyseccomp filter for ``policy``; ``notify``: report dangerous calls to a listener."""
    seccomp = _pyseccomp()
    if policy.on_violation == "errno":
        action = seccomp.ERRNO(errno.EPERM)
    else:
        action = seccomp.NOTIFY if notify else seccomp.KILL_PROCESS
    flt = seccomp.SyscallFilter(seccomp.ALLOW)
    flt.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)  # int 0x80, x32
    flt.set_attr(seccomp.Attr.CTL_NNP, 1)  # no_new_privs: set-uid programs gain nothing
    flt.set_attr(seccomp.Attr.CTL_TSYNC, 1)  # every thread, not only the caller
    for rule in _rules(policy, action):
        number = syscall_number(rule.syscall)
        if number >= 0:  # else no such call on this architecture
            flt.add_rule(rule.action, number, *(seccomp.Arg(*cmp) for cmp in rule.args))
    return flt


@functools.cache
def _pyseccomp() -> Any:
    """pyseccomp, imported on first use, without its slow library search.

    As it is imported, pyseccomp looks libc and libseccomp up with
    ``ctypes.util.find_library``, which runs ``ldconfig -p`` once per name:
    some 40 ms, over a quarter of a ``sipkernel sandbox`` command's start.
    While it is imported, a name whose usual soname loads as it is gets that
    soname at once; any other name, or a soname that does not load, gets the
    real search.
    """
    import ctypes.util

    search = ctypes.util.find_library

    def find(name: str) -> str | None:
        soname = _SONAMES.get(name)
        if soname is not None:
            with contextlib.suppress(OSError):
                ctypes.CDLL(soname)
                return soname
        return search(name)

    ctypes.util.find_library = find
    try:
        import pyseccomp  # type: ignore[import-untyped]
    finally:
        ctypes.util.find_library = search
    return pyseccomp


# -- installing and exporting ------------------------------------------------------------------


class Program(NamedTuple):
    """A filter compiled to classic BPF, ready for :func:`load` (see :func:`compile_filter`)."""

    bpf: bytes
    """The ``struct sock_filter`` instructions, as libseccomp generates them."""
    notify: bool
    """Dangerous calls go to a listener, which loading it returns."""


@functools.lru_cache(maxsize=16)
def compile_filter(policy: SyscallPolicy, *, listener: bool) -> Program:
    """``policy``'s filter as BPF, compiled once per policy (libseccomp takes milliseconds).

    A zygote compiles here, before it forks, and each sandbox only loads the
    program: the same instructions libseccomp's own load would generate.
    ``listener`` as for :func:`install`.
    """
    notify = listener and policy.on_violation == "kill"
    if policy.exec_once and not notify:
        raise UsageError("exec_once needs a listener to let the first execve through")
    prepare_load()  # here too: a forked child only loads
    return Program(_bpf(policy, notify=notify), notify)


def install(policy: SyscallPolicy, *, listener: bool) -> int | None:
    """Load ``policy``'s filter into the calling process (all its threads); returns the listener.

    With ``listener`` and ``on_violation="kill"``, dangerous calls are held and
    reported on the returned descriptor (a seccomp listener, close-on-exec), to
    be sent to a supervisor (SCM_RIGHTS) and given to a :class:`ViolationWatcher`.
    Otherwise the result is None: dangerous calls kill the process at once
    (SIGSYS, unnamed), or with ``on_violation="errno"`` fail with EPERM.

    Security: the caller MUST close its copy of the listener before any
    untrusted code runs. A sandboxed process holding its own listener could
    answer its own notifications and so let any dangerous call through.

    Also sets no_new_privs. The filter stays for the life of the process and
    of its children. The kernel allows one listener per chain of filters: a
    process whose filters already have one gets OSError here.
    """
    return load(compile_filter(policy, listener=listener))


class _SockFprog(ctypes.Structure):
    """``struct sock_fprog``: the instruction count and where they are."""

    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


def load(program: Program) -> int | None:
    """Load ``program`` into the calling process as libseccomp's load would: set
    no_new_privs, then ``seccomp(SET_MODE_FILTER)`` synchronising every thread
    (failing if one cannot be), asking for a listener when ``program.notify``.
    Returns the listener (close-on-exec), or None; see :func:`install`."""
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0:
        raise _errno_error("prctl(PR_SET_NO_NEW_PRIVS)")
    flags = _FLAG_TSYNC | _FLAG_TSYNC_ESRCH
    if program.notify:
        flags |= _FLAG_NEW_LISTENER
    fprog = _SockFprog(len(program.bpf) // 8, program.bpf)
    rc = libc.syscall(_seccomp_number(), _SET_MODE_FILTER, flags, ctypes.byref(fprog))
    if rc < 0:
        raise _errno_error("seccomp(SECCOMP_SET_MODE_FILTER)")
    return rc if program.notify else None


def prepare_load() -> None:
    """Find what :func:`load` needs (libc, the number of ``seccomp``, which loads
    libseccomp), so that a child forked afterwards only loads."""
    _libc(), _seccomp_number()


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


@functools.cache
def _seccomp_number() -> int:
    return syscall_number("seccomp")


def _errno_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def export_bpf(policy: SyscallPolicy, target: str | os.PathLike[str] | IO[bytes]) -> None:
    """Write ``policy``'s filter as a raw BPF program (for ``bwrap --seccomp FD`` and the like).

    ``target`` is a path or an open binary file. Such a program has no listener,
    so with ``on_violation="kill"`` dangerous calls kill the process (SIGSYS).
    """
    bpf = _bpf(policy, notify=False)
    if isinstance(target, str | os.PathLike):
        with open(target, "wb") as file:
            file.write(bpf)
    else:
        target.write(bpf)
        target.flush()  # on its descriptor now, for a program handed the descriptor


# -- the supervisor's side ---------------------------------------------------------------------


class _Notif(ctypes.Structure):
    """``struct seccomp_notif``, with its ``struct seccomp_data`` inlined (same layout)."""

    _fields_ = (
        ("id", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("nr", ctypes.c_int),
        ("arch", ctypes.c_uint32),
        ("instruction_pointer", ctypes.c_uint64),
        ("args", ctypes.c_uint64 * 6),
    )


class _Resp(ctypes.Structure):
    """``struct seccomp_notif_resp``."""

    _fields_ = (
        ("id", ctypes.c_uint64),
        ("val", ctypes.c_int64),
        ("error", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
    )


@functools.cache
def _libseccomp() -> ctypes.CDLL:
    """libseccomp with errno kept: the library pyseccomp loaded (same soname, same state)."""
    lib = ctypes.CDLL(_SONAMES["seccomp"], use_errno=True)
    lib.seccomp_notify_fd.argtypes = (ctypes.c_void_p,)
    lib.seccomp_notify_receive.argtypes = (ctypes.c_int, ctypes.POINTER(_Notif))
    lib.seccomp_notify_respond.argtypes = (ctypes.c_int, ctypes.POINTER(_Resp))
    # libseccomp 2.5 refuses receive/respond (EOPNOTSUPP) in a process that has not
    # probed the kernel for user notification; asking for the API level probes it.
    lib.seccomp_api_get()
    return lib


def _call(function: Callable[..., int], *args: object) -> int:
    """Call a libseccomp function (again if interrupted); 0, or the errno it failed with."""
    while True:
        ctypes.set_errno(0)
        rc = int(function(*args))
        failed = 0 if rc >= 0 else ctypes.get_errno() or -rc
        if failed != errno.EINTR:
            return failed


class Violation(msgspec.Struct, frozen=True):
    """A dangerous system call a sandboxed task attempted."""

    syscall: str
    """Its name, e.g. ``"ptrace"``."""
    number: int
    """Its number on this architecture."""
    pid: int
    """The task that made it, as the supervisor sees it (0 if out of its sight)."""
    args: tuple[int, ...]
    """The six raw argument registers."""


class ViolationWatcher:
    """Names the dangerous calls reported on a seccomp listener, from a daemon thread.

    Owns ``fd``. For each report it calls ``on_violation(violation)``, which is
    expected to kill the sandbox; the call is then never answered, so it cannot
    return while the kill lands. If the callback raises (logged), the call fails
    with EPERM instead, so the task is not stuck. When no filtered task is left (the
    last one has exited) the thread ends by itself; :meth:`close` ends it sooner.
    Either way it closes ``fd``, and held or later calls fail with ENOSYS.
    """

    def __init__(
        self, fd: int, on_violation: Callable[[Violation], None], *, exec_once: bool = False
    ) -> None:
        self._fd = fd
        self._on_violation = on_violation
        self._exec_allowed = exec_once  # one execve may pass (see SyscallPolicy.exec_once)
        self._lock = threading.Lock()
        self._open = True  # only the thread closes the descriptors, under the lock
        try:
            _libseccomp()
            self._wake = os.eventfd(0, os.EFD_CLOEXEC)
        except BaseException:
            os.close(fd)
            raise
        self._thread = threading.Thread(
            target=self._run, name="sipkernel-seccomp-watcher", daemon=True
        )
        try:
            self._thread.start()
        except BaseException:
            self._release()
            raise

    def __enter__(self) -> ViolationWatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop watching and close the listener; idempotent. Waits for a running callback."""
        with self._lock:
            if self._open:
                os.eventfd_write(self._wake, 1)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (no filtered task left, or closed); True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException:  # a thread of ours never raises out
            _log().exception("seccomp: the violation watcher failed")
        finally:
            self._release()

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if self._wake in ready:
                return
            events = ready.get(self._fd, 0)
            if events & select.POLLIN:
                if not self._handle_one():
                    return
            elif events:  # POLLHUP: no task uses the filter any more (or POLLERR, POLLNVAL)
                return

    def _handle_one(self) -> bool:
        """Receive, report and answer one notification; False to give up."""
        lib = _libseccomp()
        notif = _Notif()  # zeroed, as the kernel wants
        failed = _call(lib.seccomp_notify_receive, self._fd, ctypes.byref(notif))
        if failed == errno.ENOENT:
            return True  # the task died before we looked
        if failed:
            _log().error("seccomp: cannot receive a notification: %s", os.strerror(failed))
            return False
        violation = _violation(notif)
        if self._exec_allowed and violation.syscall in ("execve", "execveat"):
            self._exec_allowed = False  # the launcher's own exec: let it run, once
            response = _Resp(id=notif.id, val=0, error=0, flags=_USER_NOTIF_FLAG_CONTINUE)
        elif self._report(violation):
            return True  # held: the call never returns; the task dies in it
        else:
            response = _Resp(id=notif.id, val=0, error=-errno.EPERM, flags=0)
        failed = _call(lib.seccomp_notify_respond, self._fd, ctypes.byref(response))
        if failed and failed != errno.ENOENT:  # ENOENT: the task is gone, as it should be
            _log().warning("seccomp: cannot answer a notification: %s", os.strerror(failed))
        return True

    def _report(self, violation: Violation) -> bool:
        """Tell the callback; True if it took charge (the call is then never answered:
        a kill takes a moment to land, and the call must not return meanwhile)."""
        try:
            self._on_violation(violation)  # first: the kill must not wait for the log
        except Exception:
            _log().exception("seccomp: the violation callback failed")
            return False
        finally:
            _log().info("seccomp: task %d attempted %s", violation.pid, violation.syscall)
        return True

    def _release(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                for fd in (self._fd, self._wake):
                    with contextlib.suppress(OSError):
                        os.close(fd)


def _log() -> logging.Logger:
    """The sandbox's logger; ``logging`` is imported when there is something to say."""
    import logging

    return logging.getLogger("sipkernel.sandbox")


def _violation(notif: _Notif) -> Violation:
    number = int(notif.nr)
    return Violation(
        syscall=syscall_name(number),
        number=number,
        pid=int(notif.pid),
        args=tuple(int(arg) for arg in notif.args),
    )
