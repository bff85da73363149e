"""The outside of one sandbox: start it, watch it, say why it ended.

:class:`Sandbox` is what the ``sipkernel sandbox`` command and the
``sandbox`` domain kind share: the cgroup, the keeper's id maps, the report
of pid 1, the seccomp watcher, the wall-clock timer, and the typed reason at
the end (a named seccomp violation, a memory, task, CPU or time limit, or
the plain exit).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading

import msgspec

from .._core._exit import ExitReason
from ._cgroups import Cgroup, CgroupHandle
from ._compose import Composed
from ._contain import Failed, id_maps, map_keeper, receive_report
from ._errors import SandboxSetupError
from ._policy import MiB, Policy
from ._seccomp import Violation, ViolationWatcher

EXIT_CPU_LIMIT = 128 + signal.SIGXCPU
"""The exit code of a domain's pid 1 on SIGXCPU (as pid 1 it cannot die of it)."""


class Sandbox:
    """The supervisor's view of one sandbox, from its keeper's fork to its exit."""

    def __init__(
        self, policy: Policy, composed: Composed, name: str, *, make_cgroup: bool = True
    ) -> None:
        """``make_cgroup=False``: whoever forks the keeper makes the cgroup (for
        ``limits``) and the supervisor adopts it in :meth:`started`."""
        self.policy = policy
        self.composed = composed
        self.name = name
        self.limits = composed.cgroup
        self.cgroup: Cgroup | None = None
        if make_cgroup and composed.cgroup is not None:
            self.cgroup = Cgroup.create(name, composed.cgroup)
        self.launch = composed.launch
        if self.cgroup is not None:
            self.launch = msgspec.structs.replace(
                self.launch, cgroup_procs=self.cgroup.attach_paths()
            )
        identity = policy.identity
        self.maps: tuple[str, str] | None = None
        if policy.namespaces.user:
            self.maps = id_maps(
                identity.uid, identity.gid, identity.outside_uid, identity.outside_gid
            )
        self.violation: Violation | None = None
        self.timed_out = False
        self.setup_error: SandboxSetupError | None = None
        self._keeper_pidfd = -1
        self._watcher: ViolationWatcher | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    # -- start -----------------------------------------------------------------------------

    def started(self, pid: int, cgroup: CgroupHandle | None) -> None:
        """The keeper exists, in the cgroup its forker made: take charge of both."""
        if cgroup is not None:
            self.cgroup = Cgroup.adopt(self.name, cgroup)
        self.keeper_started(pid)

    def keeper_started(self, pid: int) -> None:
        """The keeper exists: hold it by a pidfd (so a kill never hits a recycled pid)."""
        with contextlib.suppress(ProcessLookupError):
            self._keeper_pidfd = os.pidfd_open(pid)

    def map(self, pid: int) -> None:
        """Write the keeper's id maps (it waits for this before it forks pid 1)."""
        if self.maps is not None:
            map_keeper(pid, self.maps)

    def await_ready(self, report: socket.socket) -> bool:
        """Read pid 1's report; start the watcher and the timer. False if set-up failed."""
        message, listener = receive_report(report)
        report.close()
        if isinstance(message, Failed):
            self.setup_error = SandboxSetupError(message.step, message.detail)
            self.kill()
            return False
        if listener is not None:
            self._watcher = ViolationWatcher(
                listener, self._violated, exec_once=self.launch.syscalls.exec_once
            )
        wall = self.policy.limits.wall_seconds
        if wall is not None:
            self._timer = threading.Timer(wall, self._time_up)
            self._timer.daemon = True
            self._timer.start()
        return True

    # -- stop ------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the keeper; pid 1 and everything in the sandbox die with it."""
        with self._lock:
            if self._keeper_pidfd >= 0:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._keeper_pidfd, signal.SIGKILL)
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.kill()

    def _violated(self, violation: Violation) -> None:
        if self.violation is None:
            self.violation = violation
        self.kill()

    def _time_up(self) -> None:
        self.timed_out = True
        self.kill()

    def close(self) -> None:
        """Stop watching and reclaim the cgroup (after the keeper was reaped)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.close()
        with self._lock:
            if self._keeper_pidfd >= 0:
                os.close(self._keeper_pidfd)
                self._keeper_pidfd = -1
        if self.cgroup is not None:
            self.cgroup.close()

    # -- why it ended ----------------------------------------------------------------------

    def reason(self, status: int | None, cpu_seconds: float | None = None) -> ExitReason:
        """The typed reason for the keeper's wait status (None: it vanished).

        ``cpu_seconds`` is the CPU time the sandbox used, where the caller knows it
        (a ``wait4`` of the keeper); the cgroup's account is used otherwise.
        """
        if self.setup_error is not None:
            return ExitReason.start_failed(str(self.setup_error))
        if self.violation is not None:
            return ExitReason.seccomp_violation(self.violation.syscall)
        if self.timed_out:
            wall = self.policy.limits.wall_seconds
            return ExitReason.limit_exceeded("time", f"time limit {wall:g} s")
        limit = self._limit_hit(status, cpu_seconds)
        if limit is not None:
            return limit
        if status is None:
            return ExitReason.peer_gone("the sandbox's OS process vanished")
        return ExitReason.from_wait_status(status)

    def _limit_hit(self, status: int | None, cpu_seconds: float | None) -> ExitReason | None:
        limits = self.policy.limits
        if self.cgroup is not None and limits.memory and self.cgroup.oom_killed():
            return ExitReason.limit_exceeded("memory", f"memory limit {_size(limits.memory)}")
        if limits.cpu_seconds is not None and self._cpu_limit_hit(status, cpu_seconds):
            return ExitReason.limit_exceeded("cpu", f"cpu time limit {limits.cpu_seconds} s")
        return None

    def _cpu_limit_hit(self, status: int | None, cpu_seconds: float | None) -> bool:
        """SIGXCPU; or, for a pid 1 (which ignores SIGXCPU), the SIGKILL of the hard
        limit with the CPU time spent; or the exit code a domain's pid 1 uses."""
        if status is None:
            return False
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status) == EXIT_CPU_LIMIT and self.launch.spec.new_pid
        signum = os.WTERMSIG(status)
        if signum == signal.SIGXCPU:
            return True
        if signum != signal.SIGKILL:
            return False
        if cpu_seconds is None and self.cgroup is not None:
            used = self.cgroup.cpu_time_ns()
            cpu_seconds = None if used is None else used / 1e9
        limit = self.policy.limits.cpu_seconds
        return cpu_seconds is not None and limit is not None and cpu_seconds >= limit

    def peak_memory(self) -> int | None:
        return None if self.cgroup is None else self.cgroup.memory_peak()


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"
