"""The ``process`` domain: a child OS process, forked from the warm zygote.

The MMU is the boundary: a segfault, ``os._exit``, a leak or a runaway C
extension ends this domain only. One domain hosts one or many processes; a
domain made by ``spawn(..., domain="process")`` hosts just that one and goes
away with it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from .._core import _wire
from .._core._channel import socket_endpoint
from .._core._contract import Role
from .._core._domain import Domain, DomainHost
from .._core._errors import ChannelError, DomainError, NotImportableError
from .._core._events import Event, EventKind
from .._core._exit import ExitReason
from .._core._process import FunctionRef, ProcessSpec
from ._control import DOMAIN_CONTROL, Exited, Kill, Start, Stop, Violated
from ._zygote import Zygote

KILL_ESCALATION = 1.0
"""Seconds a killed process may take to stop before its whole domain is SIGKILLed."""
REAP_TIMEOUT = 5.0


class ProcessDomain(Domain):
    """Processes inside a child OS process of the kernel's zygote.

    Options: ``fresh_exec=True`` re-executes the interpreter after the fork,
    for a fresh address-space layout (slower to start); ``memory_limit``
    (bytes) caps the domain's address space with ``RLIMIT_AS``.
    """

    kind = "process"

    def __init__(
        self,
        host: DomainHost,
        name: str,
        *,
        ephemeral: bool = False,
        fresh_exec: bool = False,
        memory_limit: int | None = None,
    ) -> None:
        super().__init__(host, name, ephemeral=ephemeral)
        self.memory_limit = memory_limit
        self.fresh_exec = fresh_exec
        self._zygote = self._get_zygote()
        mine, theirs = _wire.new_pair()
        try:
            self._forked = self._fork(theirs)
        finally:
            theirs.close()
        self._os_pid: int | None = None
        self._pidfd = -1
        self._ctl = socket_endpoint(DOMAIN_CONTROL, Role.IMPORTER, mine)
        self._send_lock = threading.Lock()
        self._pid_lock = threading.Lock()
        self._timers: dict[int, threading.Timer] = {}
        self._kill_reasons: dict[int, ExitReason] = {}
        self._stopping = False
        self.exit_reason: ExitReason | None = None
        self._reader = threading.Thread(
            target=self._read, name=f"sipkernel-{name}-control", daemon=True
        )
        self._reader.start()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} os_pid={self._os_pid}>"

    # -- what a subclass may change ---------------------------------------------------

    def _get_zygote(self) -> Zygote:
        """The zygote this domain forks from (one per kernel and kind)."""
        host = self.host
        zygote: Zygote = host.shared("process.zygote", lambda: Zygote(host.preload))
        _load_kernel_script(zygote)
        return zygote

    def _fork(self, ctl: socket.socket) -> Callable[[], int]:
        """Ask the zygote for the domain's OS process; returns how to get its pid."""
        limit = self.memory_limit
        rlimits = [] if limit is None else [(resource.RLIMIT_AS, limit)]
        return self._zygote.fork(ctl, fresh_exec=self.fresh_exec, rlimits=rlimits)

    def _exit_reason(self, status: int | None) -> ExitReason:
        """Why the domain's OS process ended, from its wait status (None: it vanished)."""
        if status is None:
            return ExitReason.peer_gone("the domain's OS process vanished")
        return ExitReason.from_wait_status(status)

    @property
    def os_pid(self) -> int:
        """The domain's OS process id (waits for the zygote's fork, the first time)."""
        if self._os_pid is None:
            with self._pid_lock:
                if self._os_pid is None:
                    pid = self._forked()
                    with contextlib.suppress(ProcessLookupError):  # already dead and reaped
                        self._pidfd = os.pidfd_open(pid)
                    self._os_pid = pid
        return self._os_pid

    # -- the Domain interface ----------------------------------------------------

    def check_function(self, function: FunctionRef) -> None:
        function.resolve()
        self._check_importable(function.module, str(function))

    def _check_importable(self, module: str, what: str) -> None:
        """Make sure a new domain can import ``module`` (for ``__main__``: the script)."""
        if module != "__main__":
            return
        path = getattr(sys.modules["__main__"], "__file__", None)
        if path is None:
            raise NotImportableError(
                f"{what} lives in an interactive __main__, which a process domain "
                "cannot import; move it to a module"
            )
        error = _load_kernel_script(self._zygote)
        if error is not None:
            raise NotImportableError(
                f"{what} is in the script {path}, which failed to import in a new "
                f"domain ({error}); guard the script's main code with "
                "`if __name__ == '__main__':` or move it to a module"
            )

    def start_process(self, spec: ProcessSpec) -> None:
        for endpoint in spec.endpoints:
            contract = endpoint.contract
            self._check_importable(contract.module, f"contract {contract.name}")
        start = Start(
            spec.pid,
            spec.name,
            spec.function.module,
            spec.function.qualname,
            spec.function.is_async,
            spec.args,
            spec.endpoints,
            spec.exit_signals,
        )
        self._send(start)

    def kill_process(self, pid: int, reason: ExitReason) -> None:
        try:
            self._send(Kill(pid, reason))
        except (ChannelError, DomainError):
            return  # the domain is already gone; its exits are being reported
        timer = threading.Timer(KILL_ESCALATION, self._escalate, args=(pid,))
        timer.daemon = True
        with self._pid_lock:
            self._kill_reasons[pid] = reason  # the last word: a hard kill after a request
            if pid not in self.pids or pid in self._timers:
                return
            self._timers[pid] = timer
        timer.start()

    def close(self, grace: float) -> None:
        if self.closed:
            return
        self.closed = True
        self._stopping = True
        with contextlib.suppress(ChannelError):
            self._send(Stop(grace))
        self._reader.join(grace + KILL_ESCALATION)
        if self._reader.is_alive():
            self.sigkill()
            self._reader.join()
        self.host.forget_domain(self)

    @property
    def is_alive(self) -> bool:
        return self.exit_reason is None and not self.closed

    # -- the OS process -------------------------------------------------------------

    def sigkill(self) -> None:
        """Kill the domain's OS process now (its processes exit with ``signal: SIGKILL``)."""
        self.os_pid  # noqa: B018 - waits for the fork, opens the pidfd
        with self._pid_lock:
            if self._pidfd < 0:
                return  # it died before we could hold it, or it is already reaped
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _escalate(self, pid: int) -> None:
        with self._pid_lock:
            self._timers.pop(pid, None)
        if pid in self.pids and self.exit_reason is None:
            self.sigkill()

    def report_exit(self, pid: int, reason: ExitReason) -> None:
        with self._pid_lock:
            timer = self._timers.pop(pid, None)
            self._kill_reasons.pop(pid, None)
        if timer is not None:
            timer.cancel()
        super().report_exit(pid, reason)

    def _cancel_timers(self) -> None:
        with self._pid_lock:
            timers = list(self._timers.values())
            self._timers.clear()
        for timer in timers:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join()

    def _send(self, message: Any) -> None:
        with self._send_lock:
            if self.exit_reason is not None:
                raise DomainError(f"domain {self.name} has exited ({self.exit_reason.describe()})")
            self._ctl.send(message)

    def _before_reading(self) -> None:
        """In the control reader's thread, before it reads (a subclass's set-up wait)."""

    def _read(self) -> None:
        self._before_reading()
        while True:
            try:
                message = self._ctl.recv()
            except ChannelError:
                break
            if isinstance(message, Violated):
                self.host.emit(
                    Event(
                        EventKind.CONTRACT_VIOLATION,
                        pid=message.pid,
                        name=message.name,
                        domain=self.name,
                        detail=message.detail,
                    )
                )
            elif isinstance(message, Exited):
                self.report_exit(message.pid, message.reason)
                if self.ephemeral and not self.pids and not self._stopping:
                    self._stopping = True
                    self._send_quietly(Stop(0.0))
        self._finish()

    def _send_quietly(self, message: Any) -> None:
        with contextlib.suppress(ChannelError, DomainError):
            self._send(message)

    def _finish(self) -> None:
        try:
            status = self._zygote.wait_reaped(self.os_pid, REAP_TIMEOUT)
        except DomainError:
            status = None
        reason = self._exit_reason(status)
        with self._send_lock:
            self.exit_reason = reason
            self._ctl.close()
        self._cancel_timers()
        with self._pid_lock:
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1
        for pid in self.pids:  # a process we asked to kill died of it, whatever the signal
            self.report_exit(pid, self._kill_reasons.get(pid, reason))
        self.closed = True
        self.host.emit(
            Event(EventKind.DOMAIN_EXITED, name=self.name, domain=self.name, reason=reason)
        )
        self.host.forget_domain(self)


def _load_kernel_script(zygote: Zygote) -> str | None:
    """Have the zygote import the kernel's ``__main__`` script before it forks.

    Functions and contracts defined in the script can then be found in every
    domain forked afterwards. Returns the import error, if there was one.
    """
    path = getattr(sys.modules["__main__"], "__file__", None)
    return None if path is None else zygote.load_main(path)
