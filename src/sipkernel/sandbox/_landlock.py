"""Landlock: unprivileged access control for the files and TCP ports a process may use.

Landlock lets a process give up rights for itself and every process it starts
later: which paths it may read, write or execute, which TCP ports it may bind
or connect to (ABI 4), and whether it may reach abstract UNIX sockets or
signal processes outside its own Landlock domain (ABI 6). A restriction can
only be tightened, never lifted.

This layer calls the three Landlock system calls directly through ``ctypes``
(``landlock_create_ruleset`` = 444, ``landlock_add_rule`` = 445,
``landlock_restrict_self`` = 446; every architecture that uses the shared
system-call table, x86_64 and aarch64 included, has these numbers). We do not
use the ``landlock`` package from PyPI: it is an alpha release that knows only
filesystem rules, with no TCP port rules and no scoping, and those are the
parts a sandbox most needs.

Compatibility is best effort, as the kernel documentation recommends: the
ruleset handles every right the running kernel knows, and rights a newer ABI
would add are dropped. ``LandlockPolicy.required`` turns a missing feature into
an error instead.

``restrict`` acts on the calling thread only (and on the processes it starts
afterwards): call it in a fresh child process before it starts any thread.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import functools
import os
import stat
import sys
from collections.abc import Callable
from typing import Literal

import msgspec

from sipkernel._core._errors import UsageError

__all__ = [
    "AccessFs",
    "AccessNet",
    "FsRule",
    "LandlockPolicy",
    "LandlockReport",
    "Scope",
    "abi_version",
    "restrict",
]

_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2
_PR_SET_NO_NEW_PRIVS = 38
_MAX_PORT = 65535


class AccessFs(enum.IntFlag):
    """Filesystem access rights (``LANDLOCK_ACCESS_FS_*``)."""

    EXECUTE = 1 << 0
    WRITE_FILE = 1 << 1
    READ_FILE = 1 << 2
    READ_DIR = 1 << 3
    REMOVE_DIR = 1 << 4
    REMOVE_FILE = 1 << 5
    MAKE_CHAR = 1 << 6
    MAKE_DIR = 1 << 7
    MAKE_REG = 1 << 8
    MAKE_SOCK = 1 << 9
    MAKE_FIFO = 1 << 10
    MAKE_BLOCK = 1 << 11
    MAKE_SYM = 1 << 12
    REFER = 1 << 13  # ABI 2: link or rename a file into another directory
    TRUNCATE = 1 << 14  # ABI 3
    IOCTL_DEV = 1 << 15  # ABI 5: ioctl on a character or block device


class AccessNet(enum.IntFlag):
    """TCP access rights (``LANDLOCK_ACCESS_NET_*``, ABI 4)."""

    BIND_TCP = 1 << 0
    CONNECT_TCP = 1 << 1


class Scope(enum.IntFlag):
    """IPC scopes (``LANDLOCK_SCOPE_*``, ABI 6): deny reaching outside the domain."""

    ABSTRACT_UNIX_SOCKET = 1 << 0
    SIGNAL = 1 << 1


_FS_BY_ABI = {  # every filesystem right, by the ABIs that added some (4 and 6 added none)
    1: AccessFs((1 << 13) - 1),
    2: AccessFs((1 << 14) - 1),
    3: AccessFs((1 << 15) - 1),
    5: AccessFs((1 << 16) - 1),
}
_FILE_RIGHTS = (
    AccessFs.EXECUTE
    | AccessFs.WRITE_FILE
    | AccessFs.READ_FILE
    | AccessFs.TRUNCATE
    | AccessFs.IOCTL_DEV
)
_READ = AccessFs.READ_FILE | AccessFs.READ_DIR
_WRITE = AccessFs(~(_READ | AccessFs.EXECUTE) & _FS_BY_ABI[5])
_ACCESS = {
    "ro": _READ,
    "rx": _READ | AccessFs.EXECUTE,
    "rw": _READ | _WRITE,
    "rwx": _READ | _WRITE | AccessFs.EXECUTE,
}


def _handled_fs(abi: int) -> AccessFs:
    """Every filesystem right the kernel of ABI ``abi`` knows."""
    return _FS_BY_ABI[max(v for v in _FS_BY_ABI if v <= abi)] if abi >= 1 else AccessFs(0)


# -- the kernel interface -------------------------------------------------------


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _NetPortAttr(ctypes.Structure):
    _fields_ = (("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64))


_LIBC = ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *argtypes: type[ctypes.c_long | ctypes.c_void_p]) -> Callable[..., int]:
    """``syscall(2)`` bound to ``number``, with these argument types."""
    function = _LIBC["syscall"]  # indexing makes a new function object each time
    function.argtypes = (ctypes.c_long, *argtypes)
    function.restype = ctypes.c_long
    return functools.partial(function, number)


_create_ruleset = _syscall(_SYS_CREATE_RULESET, ctypes.c_void_p, ctypes.c_long, ctypes.c_long)
_add_rule = _syscall(_SYS_ADD_RULE, ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_long)
_restrict_self = _syscall(_SYS_RESTRICT_SELF, ctypes.c_long, ctypes.c_long)
_prctl = _LIBC["prctl"]
_prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_prctl.restype = ctypes.c_int


def _check(result: int, step: str) -> int:
    """``result`` of a libc call, or an OSError naming ``step`` when it failed."""
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{step}: {os.strerror(code)}")
    return result


@functools.cache
def abi_version() -> int:
    """The Landlock ABI version of the running kernel; 0 when Landlock is unavailable."""
    if sys.platform != "linux":
        return 0
    result = _create_ruleset(None, 0, _CREATE_RULESET_VERSION)
    if result < 0 and ctypes.get_errno() in (errno.ENOSYS, errno.EOPNOTSUPP):
        return 0
    return _check(result, "landlock_create_ruleset (version)")


# -- policies ------------------------------------------------------------------------


class FsRule(msgspec.Struct, frozen=True):
    """Allow ``access`` to ``path`` and everything beneath it.

    ``ro`` reads files and lists directories, ``rx`` also executes, ``rw``
    also writes, creates, removes, truncates, links or renames in, and uses
    device ioctls; ``rwx`` is both. On a path that is not a directory only the
    rights that apply to a file are granted.
    """

    path: str
    access: Literal["ro", "rx", "rw", "rwx"]

    def __post_init__(self) -> None:
        if self.access not in _ACCESS:
            raise UsageError(f"FsRule access must be one of {sorted(_ACCESS)}: {self.access!r}")
        if not self.path:
            raise UsageError("FsRule path must not be empty")


class LandlockPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a process may still do after ``restrict``.

    Every filesystem access outside the ``fs`` rules is denied. When the
    kernel supports TCP rules (ABI 4), binding and connecting to any TCP
    port outside ``tcp_bind`` and ``tcp_connect`` is denied. With ABI 6,
    ``scope_abstract_unix`` denies connecting to abstract UNIX sockets made
    outside the Landlock domain and ``scope_signals`` denies signalling
    processes outside it. ``required`` makes ``restrict`` raise rather than
    apply less than the policy asks for.
    """

    fs: tuple[FsRule, ...] = ()
    tcp_bind: tuple[int, ...] = ()
    tcp_connect: tuple[int, ...] = ()
    restrict_tcp: bool = True
    """Handle TCP at all; False leaves every port to the other layers."""
    scope_abstract_unix: bool = True
    scope_signals: bool = True
    required: bool = False

    def __post_init__(self) -> None:
        for port in (*self.tcp_bind, *self.tcp_connect):
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= _MAX_PORT:
                raise UsageError(f"TCP port must be an integer from 0 to {_MAX_PORT}: {port!r}")


class LandlockReport(msgspec.Struct, frozen=True):
    """What ``restrict`` enforced: the ABI, and which kinds of rule took effect."""

    abi: int
    enforced_fs: bool
    enforced_net: bool
    enforced_scopes: bool


def _handled_net(policy: LandlockPolicy, abi: int) -> int:
    if abi < 4 or not policy.restrict_tcp:
        return 0
    return AccessNet.BIND_TCP | AccessNet.CONNECT_TCP


def _scopes(policy: LandlockPolicy) -> Scope:
    scopes = Scope(0)
    if policy.scope_abstract_unix:
        scopes |= Scope.ABSTRACT_UNIX_SOCKET
    if policy.scope_signals:
        scopes |= Scope.SIGNAL
    return scopes


def _missing(policy: LandlockPolicy, abi: int) -> list[str]:
    """The features ``policy`` asks for that a kernel of ABI ``abi`` lacks."""
    missing = []
    if abi < 1:
        missing.append("Landlock itself")
    if abi < 4 and (policy.tcp_bind or policy.tcp_connect):
        missing.append("TCP port rules (ABI 4)")
    if abi < 6 and _scopes(policy):
        missing.append("abstract UNIX socket and signal scoping (ABI 6)")
    return missing


# -- applying a policy ---------------------------------------------------------------


def restrict(policy: LandlockPolicy) -> LandlockReport:
    """Confine the calling thread, and every process it starts later, to ``policy``.

    Sets ``no_new_privs`` first, as Landlock requires of an unprivileged
    caller: set-user-ID programs run afterwards gain no privileges.

    Raises ``UsageError`` for a rule whose path does not exist, ``OSError``
    naming the failed step when the kernel refuses, and ``OSError``
    (``EOPNOTSUPP``) when ``policy.required`` and the kernel lacks a feature
    the policy asks for. Otherwise it applies what the kernel supports and
    says so in the report.
    """
    abi = abi_version()
    missing = _missing(policy, abi)
    if missing and policy.required:
        problem = f"Landlock ABI {abi} lacks {', '.join(missing)}"
        raise OSError(errno.EOPNOTSUPP, problem)
    if abi < 1:
        return LandlockReport(abi=0, enforced_fs=False, enforced_net=False, enforced_scopes=False)
    attr = _RulesetAttr(
        handled_access_fs=_handled_fs(abi),
        handled_access_net=_handled_net(policy, abi),
        scoped=_scopes(policy) if abi >= 6 else 0,
    )
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _check(_create_ruleset(ctypes.byref(attr), size, 0), "landlock_create_ruleset")
    try:
        for rule in policy.fs:
            _add_fs_rule(ruleset, rule, AccessFs(attr.handled_access_fs))
        if attr.handled_access_net:
            _add_port_rules(ruleset, policy)
        _check(_prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl PR_SET_NO_NEW_PRIVS")
        _check(_restrict_self(ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return LandlockReport(
        abi=abi,
        enforced_fs=True,
        enforced_net=bool(attr.handled_access_net),
        enforced_scopes=bool(attr.scoped),
    )


def _open_rule_path(path: str) -> int:
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"Landlock rule path does not exist: {path}") from None
    except OSError as e:
        raise OSError(e.errno, f"open {path} for a Landlock rule: {e.strerror}") from None


def _add_fs_rule(ruleset: int, rule: FsRule, handled: AccessFs) -> None:
    fd = _open_rule_path(rule.path)
    try:
        allowed = _ACCESS[rule.access] & handled
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            allowed &= _FILE_RIGHTS
        attr = _PathBeneathAttr(allowed_access=allowed, parent_fd=fd)
        step = f"landlock_add_rule for {rule.path}"
        _check(_add_rule(ruleset, _RULE_PATH_BENEATH, ctypes.byref(attr), 0), step)
    finally:
        os.close(fd)


def _add_port_rules(ruleset: int, policy: LandlockPolicy) -> None:
    ports: dict[int, AccessNet] = {}
    for port in policy.tcp_bind:
        ports[port] = ports.get(port, AccessNet(0)) | AccessNet.BIND_TCP
    for port in policy.tcp_connect:
        ports[port] = ports.get(port, AccessNet(0)) | AccessNet.CONNECT_TCP
    for port, access in sorted(ports.items()):
        attr = _NetPortAttr(allowed_access=access, port=port)
        step = f"landlock_add_rule for TCP port {port}"
        _check(_add_rule(ruleset, _RULE_NET_PORT, ctypes.byref(attr), 0), step)
