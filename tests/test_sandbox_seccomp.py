"""The seccomp layer of the sandbox: each case forks a child that filters itself.

The child installs a filter, says what it saw on a pipe (one line per check:
``ok``, a value, or the name of an errno), then makes the forbidden call. The
parent asserts the exact outcome: the child's lines, how it ended (SIGSYS,
SIGKILL or a normal exit) and, with a listener, the violation the parent's
:class:`ViolationWatcher` named. A filter can never be removed, so it is only
ever installed in a forked child, never in the test process.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import importlib
import logging
import mmap
import os
import platform
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from sipkernel._core._errors import UsageError
from sipkernel.sandbox._seccomp import (
    SyscallPolicy,
    Violation,
    ViolationWatcher,
    compile_filter,
    export_bpf,
    install,
    syscall_name,
    syscall_number,
)

pytestmark = pytest.mark.timeout(30)

Say = Callable[[str], None]
"""How a child reports a line to the parent."""

CLONE_NEWUSER = 0x10000000
NAMESPACE_FLAGS = {
    "NEWNS": 0x00020000,
    "NEWCGROUP": 0x02000000,
    "NEWUTS": 0x04000000,
    "NEWIPC": 0x08000000,
    "NEWUSER": CLONE_NEWUSER,
    "NEWPID": 0x20000000,
    "NEWNET": 0x40000000,
}
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
LIBC = ctypes.CDLL(None, use_errno=True)


def syscall(name: str, *args: int) -> str:
    """Make system call ``name`` raw; its result as text, or the name of its errno."""
    function = LIBC["syscall"]  # a new function object: argument types of our own
    function.argtypes = (ctypes.c_long, *(ctypes.c_ulong for _ in args))
    function.restype = ctypes.c_long
    ctypes.set_errno(0)
    result = function(syscall_number(name), *args)
    return errno.errorcode[ctypes.get_errno()] if result == -1 else str(result)


def ptrace_traceme() -> str:
    return syscall("ptrace", 0, 0, 0, 0)


# -- children ---------------------------------------------------------------------------------


def fork(body: Callable[[Say], None]) -> tuple[int, int]:
    """Fork a child running ``body``; returns its pid and the read end of its report pipe."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() beside pytest-timeout's watchdog thread; the
        # child never takes a lock that thread could hold.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(read_end)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS would dump core

            def say(line: str) -> None:
                os.write(write_end, f"{line}\n".encode())

            try:
                body(say)
                code = 0
            except BaseException as exc:
                os.write(write_end, f"child failed: {exc!r}\n".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def finish(pid: int, read_end: int) -> tuple[int, list[str]]:
    """Read the child's report to the end, reap it; its exit code (-N: signal N) and lines."""
    with open(read_end, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), lines


def run(body: Callable[[Say], None]) -> tuple[int, list[str]]:
    return finish(*fork(body))


def filtered(policy: SyscallPolicy, then: Callable[[Say], None]) -> Callable[[Say], None]:
    """A child body: install ``policy`` without a listener, say so, then run ``then``."""

    def body(say: Say) -> None:
        assert install(policy, listener=False) is None
        say("installed")
        then(say)

    return body


def fork_with_listener(
    policy: SyscallPolicy, then: Callable[[Say], None], go: bool = False
) -> tuple[int, int, int, socket.socket]:
    """Fork a child that installs ``policy``, sends its listener here and closes it.

    With ``go`` the child waits for a byte on the returned socket before ``then``.
    Returns the child's pid, its report pipe, the listener and that socket.
    """
    ours, theirs = socket.socketpair()

    def body(say: Say) -> None:
        ours.close()
        listener = install(policy, listener=True)
        assert listener is not None
        socket.send_fds(theirs, [b"L"], [listener])
        os.close(listener)  # a listener left here could answer its own notifications
        if go:
            theirs.recv(1)
        theirs.close()
        then(say)

    pid, read_end = fork(body)
    theirs.close()
    _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    if not fds:
        ours.close()
        pytest.fail(f"the child sent no listener: {finish(pid, read_end)}")
    return pid, read_end, fds[0], ours


def named(policy: SyscallPolicy, then: Callable[[Say], None]) -> tuple[Violation, list[str]]:
    """Run ``then`` under ``policy`` with a watcher that kills the child at the first violation.

    Asserts the child died of that SIGKILL and the watcher ended by itself; returns
    the violation and what the child said.
    """
    pid, read_end, listener, sock = fork_with_listener(policy, then)
    sock.close()
    seen: list[Violation] = []
    killed = threading.Event()

    def kill(violation: Violation) -> None:
        seen.append(violation)
        os.kill(pid, signal.SIGKILL)
        # Wait (without reaping) until it is dead: the answer then meets ENOENT.
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        killed.set()

    with ViolationWatcher(listener, kill) as watcher:
        killed.wait(10)  # only then may the child be reaped
        code, lines = finish(pid, read_end)
        assert watcher.wait(10), "the watcher did not end once the filtered child was gone"
    assert code == -signal.SIGKILL, lines
    assert len(seen) == 1
    assert seen[0].pid == pid
    return seen[0], lines


# -- the policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"deny_extra": ("no_such_call",)}, "unknown system call 'no_such_call'"),
        ({"deny_extra": ("ptrace; rm",)}, "unknown system call"),
        ({"allow": ("nonsense",)}, "unknown system call 'nonsense'"),
        ({"allow": ("read",)}, "not in the default dangerous set: read"),
        ({"allow": ("bpf",), "deny_extra": ("bpf",)}, "both allowed and denied: bpf"),
        ({"socket_families": ("unix", "ipx")}, "unknown socket families ['ipx']"),
        ({"socket_families": "unix"}, "must be a tuple of names"),
        ({"on_violation": "log"}, 'on_violation must be "kill" or "errno"'),
    ],
)
def test_a_bad_policy_is_refused_when_made(fields: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        SyscallPolicy(**fields)  # type: ignore[arg-type]


def test_a_decoded_policy_is_checked_too() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown system call 'nope'"):
        msgspec.json.decode(b'{"deny_extra": ["nope"]}', type=SyscallPolicy)
    with pytest.raises(msgspec.ValidationError, match="Object contains unknown field"):
        msgspec.json.decode(b'{"deny": ["bpf"]}', type=SyscallPolicy)
    policy = msgspec.json.decode(b'{"allow": ["kcmp"], "allow_exec": false}', type=SyscallPolicy)
    assert policy == SyscallPolicy(allow=("kcmp",), allow_exec=False)


def test_syscall_names_and_numbers_round_trip() -> None:
    assert syscall_name(syscall_number("ptrace")) == "ptrace"
    assert syscall_number("no_such_call") == -1
    assert syscall_name(99_999) == "syscall#99999"


# -- what a dangerous call does ---------------------------------------------------------------


def test_without_a_listener_a_dangerous_call_kills_with_sigsys() -> None:
    code, lines = run(filtered(SyscallPolicy(), lambda say: say(ptrace_traceme())))
    assert (code, lines) == (-signal.SIGSYS, ["installed"])


def test_with_a_listener_the_violation_is_named(caplog: pytest.LogCaptureFixture) -> None:
    violation, lines = named(SyscallPolicy(), lambda say: say(ptrace_traceme()))
    assert violation.syscall == "ptrace"
    assert violation.number == syscall_number("ptrace")
    assert violation.args[:4] == (0, 0, 0, 0)  # PTRACE_TRACEME
    assert lines == []
    # The answer met a dead task (ENOENT): expected, so nothing above INFO was logged.
    assert [r for r in caplog.records if r.levelno > logging.INFO] == []


def test_the_call_fails_with_eperm_if_the_supervisor_does_not_kill(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pid, read_end, listener, sock = fork_with_listener(
        SyscallPolicy(), lambda say: say(ptrace_traceme())
    )
    sock.close()
    seen: list[Violation] = []

    def report_and_fail(violation: Violation) -> None:
        seen.append(violation)
        raise RuntimeError("a callback that fails")

    with ViolationWatcher(listener, report_and_fail) as watcher:
        code, lines = finish(pid, read_end)
        assert watcher.wait(10)
    assert (code, lines) == (0, ["EPERM"])
    assert [v.syscall for v in seen] == ["ptrace"]
    assert "the violation callback failed" in caplog.text


def test_threads_started_before_the_filter_are_filtered_too() -> None:
    def body(say: Say) -> None:
        installed = threading.Event()
        # unshare(0) changes nothing when it passes: a harmless dangerous call.
        thread = threading.Thread(target=lambda: installed.wait() and say(syscall("unshare", 0)))
        thread.start()
        install(SyscallPolicy(on_violation="errno"), listener=False)
        installed.set()
        thread.join()

    assert run(body) == (0, ["EPERM"])


def test_on_violation_errno_fails_the_call_with_eperm() -> None:
    policy = SyscallPolicy(on_violation="errno")

    def body(say: Say) -> None:
        say(str(install(policy, listener=True)))  # no listener: nothing to report
        say(ptrace_traceme())
        say(syscall("unshare", CLONE_NEWUSER))

    assert run(body) == (0, ["None", "EPERM", "EPERM"])


def test_unshare_of_a_user_namespace_is_named() -> None:
    violation, _ = named(SyscallPolicy(), lambda say: say(syscall("unshare", CLONE_NEWUSER)))
    assert (violation.syscall, violation.args[0]) == ("unshare", CLONE_NEWUSER)


def test_clone_into_a_new_user_namespace_is_named() -> None:
    flags = CLONE_NEWUSER | signal.SIGCHLD
    violation, _ = named(SyscallPolicy(), lambda say: say(syscall("clone", flags, 0, 0, 0, 0)))
    assert (violation.syscall, violation.args[0]) == ("clone", flags)


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS.values(), ids=NAMESPACE_FLAGS.keys())
def test_clone_with_any_namespace_flag_kills(flag: int) -> None:
    body = filtered(SyscallPolicy(), lambda say: say(syscall("clone", flag | signal.SIGCHLD)))
    assert run(body) == (-signal.SIGSYS, ["installed"])


def test_clone3_fails_with_enosys_and_threads_still_start() -> None:
    def then(say: Say) -> None:
        say(syscall("clone3", 0, 0))  # glibc and CPython fall back to clone on ENOSYS
        thread = threading.Thread(target=say, args=("thread ran",))
        thread.start()
        thread.join()

    assert run(filtered(SyscallPolicy(), then)) == (0, ["installed", "ENOSYS", "thread ran"])


def test_tiocsti_is_named_while_tcgets_works() -> None:
    def then(say: Say) -> None:
        _, tty = os.openpty()
        say(f"tcgetattr: {len(termios.tcgetattr(tty))} fields")
        fcntl.ioctl(tty, TIOCSTI, b"x")
        say("TIOCSTI passed")

    violation, lines = named(SyscallPolicy(), then)
    assert lines == ["tcgetattr: 7 fields"]
    assert (violation.syscall, violation.args[1]) == ("ioctl", TIOCSTI)


@pytest.mark.parametrize(
    "request_", [TIOCLINUX, TIOCSTI | 0xFFFF_FFFF << 32], ids=["TIOCLINUX", "TIOCSTI-high-bits"]
)
def test_terminal_injection_kills_whatever_the_high_bits(request_: int) -> None:
    def then(say: Say) -> None:
        _, tty = os.openpty()
        say(syscall("ioctl", tty, request_, ctypes.addressof(ctypes.c_char(b"x"))))

    assert run(filtered(SyscallPolicy(), then)) == (-signal.SIGSYS, ["installed"])


def test_personality_may_only_be_queried_or_reset() -> None:
    def then(say: Say) -> None:
        for persona in (0xFFFFFFFF, 0, 0x0008, 0x0040000, 1, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF):
            say(syscall("personality", persona))

    code, lines = run(filtered(SyscallPolicy(), then))
    assert (code, lines) == (0, ["installed", "0", "0", *["EPERM"] * 5, "0"])


@pytest.mark.parametrize(
    ("families", "expected"),
    [
        (("unix",), ["ok", "ok", "EAFNOSUPPORT", "EAFNOSUPPORT", "EAFNOSUPPORT", "EAFNOSUPPORT"]),
        (("unix", "inet"), ["ok", "ok", "ok", "EAFNOSUPPORT", "EAFNOSUPPORT", "EAFNOSUPPORT"]),
        (("inet6", "netlink"), ["EAFNOSUPPORT"] * 3 + ["ok", "ok", "EAFNOSUPPORT"]),
        ((), ["EAFNOSUPPORT"] * 6),
    ],
)
def test_socket_families_outside_the_policy_get_eafnosupport(
    families: tuple[str, ...], expected: list[str]
) -> None:
    def attempt(make: Callable[[], object]) -> str:
        try:
            made = make()
        except OSError as exc:
            return errno.errorcode[exc.errno or 0]
        for sock in made if isinstance(made, tuple) else [made]:
            assert isinstance(sock, socket.socket)
            sock.close()
        return "ok"

    def then(say: Say) -> None:
        say(attempt(lambda: socket.socket(socket.AF_UNIX)))
        say(attempt(lambda: socket.socketpair(socket.AF_UNIX)))
        say(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
        say(attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)))
        say(attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)))
        say(attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)))
        # Families the policy cannot name, and an allowed one with stray high bits.
        for family in (0, 3, 45, 1 | 1 << 32, 2**64 - 1):
            say(syscall("socket", family, socket.SOCK_STREAM, 0))

    code, lines = run(filtered(SyscallPolicy(socket_families=families), then))
    assert (code, lines) == (0, ["installed", *expected, *["EAFNOSUPPORT"] * 5])


def test_exec_is_dangerous_when_not_allowed() -> None:
    def then(say: Say) -> None:
        try:
            os.execv(sys.executable, [sys.executable, "-c", "pass"])
        except OSError as exc:
            say(errno.errorcode[exc.errno or 0])

    policy = SyscallPolicy(allow_exec=False, on_violation="errno")
    assert run(filtered(policy, then)) == (0, ["installed", "EPERM"])
    violation, _ = named(SyscallPolicy(allow_exec=False), then)
    assert violation.syscall == "execve"


def test_allow_and_deny_extra_change_the_set() -> None:
    def then(say: Say) -> None:
        say(syscall("kcmp", os.getpid(), os.getpid(), 0, 0, 0))  # KCMP_FILE of fd 0 and 0
        say(syscall("personality", 0x0008))
        say(syscall("unshare", 0))  # unshare(0) does nothing, but unshare is allowed now
        say(syscall("getcpu", 0, 0, 0))

    policy = SyscallPolicy(allow=("kcmp", "personality", "unshare"), deny_extra=("getcpu",))
    assert run(filtered(policy, then)) == (-signal.SIGSYS, ["installed", "0", "0", "0"])


def test_ordinary_python_still_works() -> None:
    def then(say: Say) -> None:
        sys.modules.pop("json", None)
        json = importlib.import_module("json")  # open, read, mmap of a real import
        say(json.dumps({"sum": sum(i * i for i in range(1000))}))
        results: list[int] = []
        thread = threading.Thread(target=lambda: results.append(len(str(2**10_000))))
        thread.start()
        thread.join()
        say(f"thread: {results}")
        with mmap.mmap(-1, 4096) as memory:
            memory[:5] = b"hello"
            say(f"mmap: {memory[:5].decode()}")
        with open(__file__, "rb") as source:
            say(f"read: {source.read(3).decode()}")
        child = os.fork()
        if child == 0:
            os._exit(7)
        say(f"fork: {os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])}")
        done = subprocess.run(
            [sys.executable, "-c", "print(6 * 7)"], capture_output=True, check=True
        )
        say(f"subprocess: {done.stdout.decode().strip()}")

    code, lines = run(filtered(SyscallPolicy(), then))
    assert code == 0, lines
    assert lines == [
        "installed",
        '{"sum": 332833500}',
        "thread: [3011]",
        "mmap: hello",
        'read: """',
        "fork: 7",
        "subprocess: 42",
    ]


# -- the watcher ------------------------------------------------------------------------------


def test_the_watcher_ends_by_itself_when_the_filtered_child_exits() -> None:
    pid, read_end, listener, sock = fork_with_listener(SyscallPolicy(), lambda say: say("done"))
    sock.close()
    seen: list[Violation] = []
    watcher = ViolationWatcher(listener, seen.append)
    try:
        assert finish(pid, read_end) == (0, ["done"])
        assert watcher.wait(10)  # POLLHUP: no task uses the filter any more
    finally:
        watcher.close()
    watcher.close()  # idempotent
    assert seen == []


def test_close_stops_the_watcher_and_held_calls_then_fail_with_enosys() -> None:
    pid, read_end, listener, sock = fork_with_listener(
        SyscallPolicy(), lambda say: say(ptrace_traceme()), go=True
    )
    seen: list[Violation] = []
    with sock:
        watcher = ViolationWatcher(listener, seen.append)
        assert not watcher.wait(0)  # the child still holds the filter
        watcher.close()
        assert watcher.wait(0)
        watcher.close()
        sock.send(b"g")
    # No listener any more: the kernel fails the call instead of holding it.
    assert finish(pid, read_end) == (0, ["ENOSYS"])
    assert seen == []


# -- the exported program ---------------------------------------------------------------------


def _instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("<HBBI", program, at) for at in range(0, len(program), 8)]


def test_export_bpf_writes_a_whole_program(tmp_path: Path) -> None:
    export_bpf(SyscallPolicy(), tmp_path / "filter.bpf")
    program = (tmp_path / "filter.bpf").read_bytes()
    assert len(program) > 0
    assert len(program) % 8 == 0  # struct sock_filter
    with open(tmp_path / "again.bpf", "wb") as file:
        file.write(b"")  # a buffered file object works as well
        export_bpf(SyscallPolicy(), file)
    assert (tmp_path / "again.bpf").read_bytes() == program


def test_a_compiled_filter_is_the_exported_program_and_is_made_once(tmp_path: Path) -> None:
    export_bpf(SyscallPolicy(), tmp_path / "filter.bpf")
    program = compile_filter(SyscallPolicy(), listener=False)
    assert (program.bpf, program.notify) == ((tmp_path / "filter.bpf").read_bytes(), False)
    assert compile_filter(SyscallPolicy(), listener=False) is program
    notifying = compile_filter(SyscallPolicy(), listener=True)
    assert notifying.notify
    assert notifying.bpf != program.bpf  # dangerous calls held for a listener, not killed
    assert not compile_filter(SyscallPolicy(on_violation="errno"), listener=True).notify


@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86_64 constants")
def test_the_exported_program_kills_foreign_abis(tmp_path: Path) -> None:
    export_bpf(SyscallPolicy(on_violation="errno"), tmp_path / "filter.bpf")
    code = _instructions((tmp_path / "filter.bpf").read_bytes())
    ret, jge, kill_process, x32_bit = 0x06, 0x35, 0x80000000, 0x40000000
    assert code[0] == (0x20, 0, 0, 4)  # load seccomp_data.arch
    assert (code[1][0], code[1][3]) == (0x15, 0xC000003E)  # AUDIT_ARCH_X86_64, else bad arch
    assert any(op == jge and k == x32_bit for op, _, _, k in code)  # x32 numbers: bad arch
    # Only the bad-arch action kills: dangerous calls get EPERM in "errno" mode.
    assert [k for op, _, _, k in code if op == ret and k == kill_process] == [kill_process]


def test_exec_once_goes_with_exec_denied_and_a_kill() -> None:
    with pytest.raises(UsageError, match="exec_once goes with allow_exec=False"):
        SyscallPolicy(exec_once=True)
    with pytest.raises(UsageError, match="exec_once goes with allow_exec=False"):
        SyscallPolicy(allow_exec=False, exec_once=True, on_violation="errno")


def test_exec_once_needs_a_listener() -> None:
    with pytest.raises(UsageError, match="exec_once needs a listener"):
        install(SyscallPolicy(allow_exec=False, exec_once=True), listener=False)
