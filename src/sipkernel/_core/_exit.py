"""Typed exit reasons: every process exit and every broken channel has one."""

from __future__ import annotations

import enum
import os
import signal
import traceback as traceback_module

import msgspec


class ExitKind(enum.Enum):
    """Why a process ended (or why a channel broke)."""

    NORMAL = "normal"
    """The function returned, or the peer closed its endpoint."""
    EXCEPTION = "exception"
    """The function raised; ``exc_type`` and ``traceback`` say what."""
    KILLED = "killed"
    """Someone called ``kill`` (the reason text says who and why)."""
    SIGNAL = "signal"
    """The OS process hosting it died of a signal (SIGKILL, SIGSEGV, ...)."""
    LIMIT = "limit"
    """A resource limit (memory, CPU, time, queue) was exceeded."""
    PEER_GONE = "peer_gone"
    """The domain or peer it depended on vanished without a reason."""
    LINKED = "linked"
    """A linked process exited abnormally and the exit propagated here."""
    PROTOCOL_VIOLATION = "protocol_violation"
    """A channel contract was broken."""
    SHUTDOWN = "shutdown"
    """The kernel (or a supervisor) shut it down in order."""
    SECCOMP_VIOLATION = "seccomp_violation"
    """A sandbox made a system call its policy forbids; ``message`` names it."""
    START_FAILED = "start_failed"
    """The domain could not be built (the message names the step that failed)."""


class ExitReason(msgspec.Struct, frozen=True, kw_only=True):
    """An immutable, serialisable description of an exit.

    Construct one with the class methods (``ExitReason.normal()``,
    ``ExitReason.from_exception(exc)``, ...). ``describe()`` gives one line a
    person can read.
    """

    kind: ExitKind
    message: str = ""
    signal: int | None = None
    exit_code: int | None = None
    exc_type: str | None = None
    traceback: str | None = None
    limit: str | None = None

    # -- constructors ---------------------------------------------------------

    @classmethod
    def normal(cls, message: str = "") -> ExitReason:
        return cls(kind=ExitKind.NORMAL, message=message)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ExitReason:
        exc_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
        text = "".join(traceback_module.format_exception(exc))
        return cls(kind=ExitKind.EXCEPTION, message=str(exc), exc_type=exc_type, traceback=text)

    @classmethod
    def killed(cls, message: str = "killed") -> ExitReason:
        return cls(kind=ExitKind.KILLED, message=message)

    @classmethod
    def from_wait_status(cls, status: int) -> ExitReason:
        """Translate an ``os.waitpid`` status of a domain's OS process."""
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            return cls(kind=ExitKind.SIGNAL, signal=signum, message=_signal_name(signum))
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        if code == 0:
            return cls(kind=ExitKind.PEER_GONE, exit_code=0, message="domain exited")
        return cls(kind=ExitKind.PEER_GONE, exit_code=code, message=f"domain exited with {code}")

    @classmethod
    def limit_exceeded(cls, limit: str, message: str = "") -> ExitReason:
        return cls(kind=ExitKind.LIMIT, limit=limit, message=message or f"{limit} exceeded")

    @classmethod
    def peer_gone(cls, message: str) -> ExitReason:
        return cls(kind=ExitKind.PEER_GONE, message=message)

    @classmethod
    def linked(cls, pid: int, reason: ExitReason) -> ExitReason:
        return cls(kind=ExitKind.LINKED, message=f"linked process {pid}: {reason.describe()}")

    @classmethod
    def protocol_violation(cls, message: str) -> ExitReason:
        return cls(kind=ExitKind.PROTOCOL_VIOLATION, message=message)

    @classmethod
    def shutdown(cls, message: str = "shutdown") -> ExitReason:
        return cls(kind=ExitKind.SHUTDOWN, message=message)

    @classmethod
    def seccomp_violation(cls, syscall: str) -> ExitReason:
        return cls(kind=ExitKind.SECCOMP_VIOLATION, message=syscall)

    @classmethod
    def start_failed(cls, message: str) -> ExitReason:
        return cls(kind=ExitKind.START_FAILED, message=message)

    # -- queries ----------------------------------------------------------------

    @property
    def is_normal(self) -> bool:
        """True for a normal return or an ordered shutdown (Erlang's ``normal``/``shutdown``)."""
        return self.kind in (ExitKind.NORMAL, ExitKind.SHUTDOWN)

    def describe(self) -> str:
        """One line a person can read, e.g. ``signal: SIGSEGV``."""
        if self.kind is ExitKind.EXCEPTION:
            return f"exception: {self.exc_type}: {self.message}"
        if self.kind is ExitKind.SIGNAL:
            return f"signal: {self.message}"
        if self.kind is ExitKind.SECCOMP_VIOLATION:
            return f"seccomp violation: {self.message}"
        if self.message:
            return f"{self.kind.value}: {self.message}"
        return str(self.kind.value)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
