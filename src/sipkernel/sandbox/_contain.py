"""How an OS process becomes a sandbox: three processes, each with one job.

* The **warden** (the kernel's zygote, or the ``sipkernel sandbox`` command)
  stays outside. It forks the keeper and writes the keeper's uid and gid maps
  from outside the new user namespace: only a process there may map the
  sandbox's uid to an id other than its own (``nobody`` for a root caller).
* The **keeper** joins the sandbox's cgroups, drops supplementary groups,
  enters new namespaces, waits to be mapped, then
  forks the sandbox's first process and waits for it. It exits as that
  process did (same code, same signal), so whoever waits on the keeper reads
  the sandbox's own exit; if the keeper dies, the sandbox dies with it.
* The **init** process is pid 1 of the new pid namespace. It runs the set-up
  plan, installs the seccomp filter, hands the filter's listener to the
  supervisor, and only then runs anything of the caller's.

Messages from the init process to the supervisor travel on the *report*
socket: one :class:`Ready` (with the seccomp listener as SCM_RIGHTS) or one
:class:`Failed` naming the step.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import select
import signal
import socket
from typing import NoReturn

import msgspec

from . import _linux, _seccomp
from ._cgroups import CgroupLimits
from ._errors import SandboxSetupError, SandboxUnavailable
from ._plan import SandboxSpec, execute, plan
from ._policy import Namespaces

NOBODY = 65534


class Ready(msgspec.Struct, tag=True, frozen=True):
    """The sandbox is built; the seccomp listener (if any) rides along."""

    pid: int
    listener: bool


class Failed(msgspec.Struct, tag=True, frozen=True):
    """Building the sandbox failed at ``step``."""

    step: str
    detail: str


Report = Ready | Failed
_report_decoder = msgspec.msgpack.Decoder(Report)


def namespace_flags(namespaces: Namespaces) -> int:
    """The ``unshare`` flags for ``namespaces``."""
    table = (
        (namespaces.user, _linux.CLONE_NEWUSER),
        (namespaces.pid, _linux.CLONE_NEWPID),
        (namespaces.net, _linux.CLONE_NEWNET),
        (namespaces.mount, _linux.CLONE_NEWNS),
        (namespaces.ipc, _linux.CLONE_NEWIPC),
        (namespaces.uts, _linux.CLONE_NEWUTS),
        (namespaces.cgroup, _linux.CLONE_NEWCGROUP),
    )
    flags = 0
    for wanted, flag in table:
        if wanted:
            flags |= flag
    return flags


class Launch(msgspec.Struct, frozen=True, kw_only=True):
    """What the keeper and the init process need (sent to a zygote as data)."""

    spec: SandboxSpec
    unshare: int
    syscalls: _seccomp.SyscallPolicy
    uid: int
    gid: int
    cgroup_procs: tuple[str, ...] = ()


class SandboxPayload(msgspec.Struct, frozen=True):
    """What a sandboxed domain's fork request carries for the sandbox zygote."""

    launch: Launch
    id_maps: tuple[str, str] | None
    cgroup: CgroupLimits | None
    """Limits for the cgroup the zygote makes for the sandbox (it hands it over)."""


# -- the warden -------------------------------------------------------------------------


def id_maps(
    inside_uid: int, inside_gid: int, outside_uid: int | None, outside_gid: int | None
) -> tuple[str, str]:
    """The uid and gid maps of a sandbox's user namespace.

    The sandbox's ids map to the caller's own (``nobody`` for root, unless
    the policy names others). A root caller also maps 0 to 0, so that pid 1
    can build the filesystem view from paths only root may reach; pid 1 then
    switches to the sandbox's ids, which leaves it no capability and no way
    back. An unprivileged caller may map its own ids only, and needs no more.
    """
    uid = os.getuid() if outside_uid is None else outside_uid
    gid = os.getgid() if outside_gid is None else outside_gid
    root = os.getuid() == 0
    if root and outside_uid is None:
        uid = NOBODY
    if root and outside_gid is None:
        gid = NOBODY
    uid_map = f"{inside_uid} {uid} 1\n"
    gid_map = f"{inside_gid} {gid} 1\n"
    if root:
        uid_map, gid_map = "0 0 1\n" + uid_map, "0 0 1\n" + gid_map
    return uid_map, gid_map


def map_keeper(pid: int, maps: tuple[str, str]) -> None:
    """Write the keeper's id maps (from outside its user namespace)."""
    _linux.write_id_maps(pid, *maps)


def receive_report(sock: socket.socket) -> tuple[Report, int | None]:
    """Block for pid 1's report; the seccomp listener fd if one came along.

    A closed socket (the sandbox died before reporting) reads as ``Failed``.
    """
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, 4096, 2)
    except OSError as exc:
        return Failed(step="start", detail=f"report socket: {exc.strerror}"), None
    if not data:
        return Failed(step="start", detail="the sandbox died before it was built"), None
    for fd in fds[1:]:
        os.close(fd)
    return _report_decoder.decode(data), (fds[0] if fds else None)


# -- the keeper -------------------------------------------------------------------------


def keeper_enter(launch: Launch) -> None:
    """In the keeper, before mapping: join the cgroups, drop groups, enter namespaces."""
    for procs in launch.cgroup_procs:
        _join(procs)
    if os.getuid() == 0:
        # root's supplementary groups must not follow it in; inside a user namespace
        # that denies setgroups, uid 0 is no real root, and its groups stay as they are
        with contextlib.suppress(PermissionError):
            os.setgroups([])
    try:
        _linux.unshare(launch.unshare)
    except OSError as exc:
        raise SandboxUnavailable(explain_unshare_failure(exc, launch.unshare)) from None


def _join(procs: str) -> None:
    """Move this (single-threaded) process into a cgroup. On v1, through ``tasks``
    and pid 0: moving one thread skips the lock whose release costs an RCU grace
    period, as a whole-process move through ``cgroup.procs`` would."""
    tasks = os.path.join(os.path.dirname(procs), "tasks")
    if os.path.exists(tasks):
        with open(tasks, "w") as f:
            f.write("0")
        return
    with open(procs, "w") as f:
        f.write(str(os.getpid()))


def explain_unshare_failure(exc: OSError, flags: int) -> str:
    """Why this machine refused the namespaces, and how to fix it."""
    if exc.errno == errno.ENOSPC:
        return (
            "the kernel's namespace limit is reached (user.max_user_namespaces or a "
            "sibling limit is 0 or used up): raise it with sysctl"
        )
    if exc.errno == errno.EPERM and flags & _linux.CLONE_NEWUSER:
        return (
            "user namespaces are refused to this user. Ubuntu 23.10 and later restrict "
            "them with AppArmor (sysctl kernel.apparmor_restrict_unprivileged_userns=0, "
            "or an AppArmor profile with 'userns,' for this interpreter); Docker's default "
            "seccomp profile blocks them (run the container with a profile that allows "
            "unshare and clone with CLONE_NEWUSER); older Debian kernels need sysctl "
            "kernel.unprivileged_userns_clone=1"
        )
    if exc.errno == errno.EPERM:
        return "namespaces other than user need root, or the user namespace (namespaces.user)"
    return f"unshare failed: {exc.strerror}"


def keeper_fork_init(
    launch: Launch, keep: tuple[int, ...] = (), program: _seccomp.Program | None = None
) -> int | None:
    """In the keeper, once mapped: fork pid 1 and return in it, built and filtered.

    Returns, in pid 1, the seccomp listener, which the caller must hand to the
    supervisor with :func:`report_ready` before any untrusted code runs; a
    failed step raises (``SandboxSetupError`` names it) for the caller to
    report with :func:`report_failed`. ``keep`` lists descriptors (besides 0,
    1 and 2) that pid 1 keeps open. ``program`` is ``launch.syscalls``'s
    filter compiled ahead (``_seccomp.compile_filter`` with a listener), or
    None to compile it in pid 1. The keeper itself never returns: it waits
    for pid 1 and exits as it did.
    """
    alive_r, alive_w = os.pipe()  # end-of-file on alive_r: the keeper is gone
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        return _build_init(launch, (*keep, alive_r), alive_r, program)
    os.close(alive_r)
    _keep(pid, alive_w)


def _keep(child: int, alive: int) -> NoReturn:
    """Wait for the sandbox's pid 1, then end the same way it did."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        _linux.close_fds_except({0, 1, 2, alive})
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(70)
    _exit_like(status)


def _exit_like(status: int) -> NoReturn:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        with contextlib.suppress(OSError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot be caught
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # a signal that does not kill (SIGCHLD, ...): say which
    os._exit(os.waitstatus_to_exitcode(status))


# -- pid 1 --------------------------------------------------------------------------------


def _build_init(
    launch: Launch, keep: tuple[int, ...], keeper_alive: int, program: _seccomp.Program | None
) -> int | None:
    execute(plan(launch.spec, launch.uid, launch.gid))
    _die_with_the_keeper(keeper_alive)
    _linux.close_fds_except({0, 1, 2, *keep})
    try:
        if program is None:
            program = _seccomp.compile_filter(launch.syscalls, listener=True)
        return _seccomp.load(program)
    except Exception as exc:
        raise SandboxSetupError("install the seccomp filter", str(exc)) from exc


def report_ready(report: socket.socket, listener: int | None) -> None:
    """Hand the seccomp listener to the supervisor, then close it here (for good:
    a process holding its own listener could answer its own calls)."""
    try:
        fds = [] if listener is None else [listener]
        _send(report, Ready(pid=os.getpid(), listener=listener is not None), fds)
    finally:
        if listener is not None:
            os.close(listener)
        report.close()


def report_failed(report: socket.socket, exc: BaseException) -> None:
    """Tell the supervisor which step failed."""
    if isinstance(exc, SandboxSetupError):
        _send(report, Failed(step=exc.step, detail=exc.detail))
    else:
        _send(report, Failed(step="start", detail=f"{type(exc).__name__}: {exc}"))


def _die_with_the_keeper(alive: int) -> None:
    """Arm the parent-death signal, now that the ids are final (a uid change clears
    it), then make sure the keeper did not die before it was armed."""
    _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    poller = select.poll()
    poller.register(alive, select.POLLIN)
    if poller.poll(0):  # end-of-file: the keeper is gone, and nobody would kill us
        os._exit(72)
    os.close(alive)


def _send(sock: socket.socket, message: Report, fds: list[int] | None = None) -> None:
    with contextlib.suppress(OSError):
        socket.send_fds(sock, [msgspec.msgpack.encode(message)], fds or [])
