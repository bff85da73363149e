"""``sipkernel sandbox -- CMD``: run any program in a sandbox, report why it ended.

The command's stdin, stdout and stderr pass through; the exit status is the
command's own when it exits by itself. When the sandbox ended it, one line on
stderr says why (``sipkernel: killed: seccomp violation: ptrace``) and the
status says so too:

======  ==============================================
status  meaning
======  ==============================================
N       the command exited with N
124     killed: wall-clock time limit
125     the sandbox could not be built (the line names the step)
126     the command could not be executed
127     the command was not found
128+S   killed by signal S (``137`` SIGKILL, memory limit included;
        ``152`` SIGXCPU, CPU time limit; ``159`` SIGSYS, seccomp violation)
130     interrupted (Ctrl-C reached sipkernel, which killed the sandbox)
======  ==============================================
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import sys
import time
from typing import NoReturn

from .._core._exit import ExitKind, ExitReason
from . import _linux
from ._compose import compose
from ._contain import keeper_enter, keeper_fork_init, report_failed, report_ready
from ._errors import SandboxError, SandboxUnavailable
from ._policy import Policy
from ._seccomp import Program, SyscallPolicy, compile_filter, prepare_load
from ._supervise import Sandbox

EXIT_TIME_LIMIT = 124
EXIT_SETUP_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130

_MAX_MESSAGE = 1 << 16  # the id-map answer with the filter: 4096 instructions at most, 32 KiB

_TYPED_EXIT_CODES = {
    (ExitKind.START_FAILED, None): EXIT_SETUP_FAILED,
    (ExitKind.LIMIT, "time"): EXIT_TIME_LIMIT,
    (ExitKind.LIMIT, "memory"): 128 + signal.SIGKILL,
    (ExitKind.LIMIT, "cpu"): 128 + signal.SIGXCPU,
    (ExitKind.SECCOMP_VIOLATION, None): 128 + signal.SIGSYS,
}


class CommandResult:
    """How a sandboxed command ended, with what it cost."""

    def __init__(
        self,
        reason: ExitReason,
        status: int | None,
        wall: float,
        cpu: float,
        peak_memory: int | None,
        *,
        interrupted: bool,
    ) -> None:
        self.reason = reason
        self.status = status
        self.wall_seconds = wall
        self.cpu_seconds = cpu
        self.peak_memory = peak_memory
        self.interrupted = interrupted

    @property
    def exit_code(self) -> int:
        """The status ``sipkernel sandbox`` exits with (see the module's table)."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        special = _TYPED_EXIT_CODES.get((self.reason.kind, self.reason.limit))
        if special is not None:
            return special
        status = self.status
        if status is None:
            return EXIT_SETUP_FAILED
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)

    def line(self) -> str | None:
        """The one line that says why the sandbox ended it, or None if it exited by itself."""
        kind = self.reason.kind
        if self.interrupted:
            return "killed: interrupted"
        if kind is ExitKind.START_FAILED:
            return self.reason.message
        if kind is ExitKind.SECCOMP_VIOLATION:
            return f"killed: seccomp violation: {self.reason.message}"
        if kind is ExitKind.LIMIT:
            return f"killed: {self.reason.message}"
        if kind is ExitKind.SIGNAL:
            return f"killed: signal {self.reason.message}"
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "exit_code": self.exit_code,
            "reason": self.reason.kind.value,
            "detail": self.line() or self.reason.describe(),
            "wall_seconds": round(self.wall_seconds, 6),
            "cpu_seconds": round(self.cpu_seconds, 6),
            "peak_memory_bytes": self.peak_memory,
        }


def run_command(policy: Policy, argv: list[str], *, json_status: str | None = None) -> int:
    """Run ``argv`` in a sandbox built from ``policy``; the status to exit with."""
    result = run(policy, argv)
    line = result.line()
    if line is not None:
        print(f"sipkernel: {line}", file=sys.stderr, flush=True)
    if json_status is not None:
        import json  # only for --json-status: not on every command's start

        with open(json_status, "w") as f:
            json.dump(result.to_json(), f, indent=2)
            f.write("\n")
    return result.exit_code


def run(policy: Policy, argv: list[str]) -> CommandResult:
    """Run ``argv`` in a sandbox and wait for it; ``SandboxError`` if it cannot start."""
    composed = compose(policy, command=argv[0])
    sandbox = Sandbox(policy, composed, "command")
    start = time.monotonic()
    try:
        pid, report = _start(sandbox, argv)
        try:
            _handshake(sandbox, pid, report[1])
        except BaseException:
            report[0].close()
            os.waitpid(pid, 0)
            raise
        sandbox.await_ready(report[0])
        status, usage, interrupted = _wait(sandbox, pid)
        cpu = usage.ru_utime + usage.ru_stime
        result = CommandResult(
            sandbox.reason(status, cpu_seconds=cpu),
            status,
            time.monotonic() - start,
            cpu,
            sandbox.peak_memory() or usage.ru_maxrss * 1024,
            interrupted=interrupted,
        )
    finally:
        sandbox.close()
    return result


def _start(sandbox: Sandbox, argv: list[str]) -> tuple[int, tuple[socket.socket, socket.socket]]:
    """Fork the keeper; the report socket and the id-map handshake socket stay here."""
    report_outside, report_inside = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sync_outside, sync_inside = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        report_outside.close()
        sync_outside.close()
        _keeper(sandbox, argv, report_inside, sync_inside)
    report_inside.close()
    sync_inside.close()
    sandbox.keeper_started(pid)
    return pid, (report_outside, sync_outside)


def _handshake(sandbox: Sandbox, pid: int, sync: socket.socket) -> None:
    """Map the keeper's ids once it has entered its namespaces, and hand it the seccomp
    filter, compiled here meanwhile: libseccomp's milliseconds are off pid 1's path."""
    try:
        program = _compiled(sandbox.launch.syscalls)
        answer = sync.recv(4096)
        if answer.startswith(b"e"):
            raise SandboxUnavailable(answer[1:].decode())
        if answer != b"u":
            raise SandboxError("the sandbox's keeper died before entering its namespaces")
        sandbox.map(pid)
        sync.send(b"m" + _program_bytes(program))
    except OSError as exc:
        sandbox.kill()
        raise SandboxError(f"mapping the sandbox's user ids failed: {exc}") from None
    finally:
        sync.close()


def _compiled(syscalls: SyscallPolicy) -> Program | None:
    """The sandbox's filter, compiled by the supervisor; None if it cannot be (pid 1
    then compiles it itself, and its failure names the step)."""
    try:
        return compile_filter(syscalls, listener=True)
    except Exception:
        return None


def _program_bytes(program: Program | None) -> bytes:
    """``program`` as the keeper reads it (:func:`_program_from`); empty for None."""
    if program is None:
        return b""
    return (b"n" if program.notify else b"-") + program.bpf


def _program_from(data: bytes) -> Program | None:
    """The keeper's side of :func:`_program_bytes`."""
    return Program(data[1:], data[:1] == b"n") if data else None


def _wait(sandbox: Sandbox, pid: int) -> tuple[int, resource.struct_rusage, bool]:
    interrupted = False
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            return status, usage, interrupted
        except KeyboardInterrupt:
            interrupted = True
            sandbox.kill()


# -- inside: the keeper, then pid 1 --------------------------------------------------------


def _keeper(
    sandbox: Sandbox,
    argv: list[str],
    report: socket.socket,
    sync: socket.socket,
) -> NoReturn:
    try:
        _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        launch = sandbox.launch
        try:
            keeper_enter(launch)
        except SandboxUnavailable as exc:
            sync.send(b"e" + str(exc).encode())
            os._exit(EXIT_SETUP_FAILED)
        sync.send(b"u")
        with contextlib.suppress(OSError):  # else pid 1 fails to load, and says so
            prepare_load()  # while the ids are mapped: pid 1, forked next, inherits it
        mapped = sync.recv(_MAX_MESSAGE)
        if mapped[:1] != b"m":
            os._exit(EXIT_SETUP_FAILED)
        sync.close()
        program = _program_from(mapped[1:])
        try:
            listener = keeper_fork_init(launch, keep=(report.fileno(),), program=program)
        except BaseException as exc:  # pid 1: a set-up step failed
            report_failed(report, exc)
            raise
        report_ready(report, listener)
        _exec(argv, launch.spec.env)  # pid 1, built and filtered
    except BaseException as exc:
        print(f"sipkernel: the sandbox failed to start: {exc!r}", file=sys.stderr)
    finally:
        os._exit(EXIT_SETUP_FAILED)


def _exec(argv: list[str], env: dict[str, str]) -> NoReturn:
    """Become the command: exactly one ``execve`` (without ``--allow-exec`` the
    filter lets only the first one through, so the path is found beforehand)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    path = shutil.which(argv[0], path=env.get("PATH")) if "/" not in argv[0] else argv[0]
    if path is None or not os.path.exists(path):
        print(f"sipkernel: {argv[0]}: command not found in the sandbox", file=sys.stderr)
        os._exit(EXIT_NOT_FOUND)
    try:
        os.execve(path, argv, env)
    except OSError as exc:
        print(f"sipkernel: {argv[0]}: cannot execute: {exc.strerror}", file=sys.stderr)
        os._exit(EXIT_CANNOT_EXECUTE)
