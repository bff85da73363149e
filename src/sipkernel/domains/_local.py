"""The ``local`` domain: processes in the kernel's own interpreter.

No boundary but the language's: a process is a thread (``def``) or a task on
the domain's event loop (``async def``): the loop of ``async with Kernel()``
when the kernel was entered that way, else a loop thread of the domain's own.
Arguments and messages are copied, so processes share no mutable object. It
contains exceptions and private state, not crashes: a segfault here takes the
kernel down. Starts in microseconds.
"""

from __future__ import annotations

import asyncio

from .._core._codec import join_args
from .._core._domain import Domain, DomainHost
from .._core._endpoint import Endpoint
from .._core._events import Event, EventKind
from .._core._exit import ExitReason
from .._core._process import FunctionRef, ProcessSpec
from ._runner import LoopThread, ProcessRunner


class LocalDomain(Domain):
    """Processes as threads and tasks of the kernel's interpreter."""

    kind = "local"

    def __init__(self, host: DomainHost, name: str, *, ephemeral: bool = False) -> None:
        super().__init__(host, name, ephemeral=ephemeral)
        self._loop_thread: LoopThread | None = None
        self._runner = ProcessRunner("local", self.report_exit, self._loop)

    def _loop(self) -> asyncio.AbstractEventLoop:
        shared = self.host.event_loop
        if shared is not None and not shared.is_closed():
            return shared  # the loop of ``async with Kernel()``: no thread hop at all
        if self._loop_thread is None:
            self._loop_thread = LoopThread(f"sipkernel-{self.name}-loop")
        return self._loop_thread.loop

    def check_function(self, function: FunctionRef) -> None:
        function.resolve()

    def start_process(self, spec: ProcessSpec) -> None:
        carried = [Endpoint(endpoint.take_core()) for endpoint in spec.endpoints]
        args = join_args(spec.args, carried)
        fn = spec.function.resolve()
        self._runner.start(
            spec.pid,
            spec.name,
            fn,
            args=args,
            carried=carried,
            is_async=spec.function.is_async,
            exit_signals=spec.exit_signals,
        )

    def kill_process(self, pid: int, reason: ExitReason) -> None:
        self._runner.kill(pid, reason)

    def close(self, grace: float) -> None:
        if self.closed:
            return
        self.closed = True
        stuck = self._runner.stop_all(ExitReason.shutdown(), grace)
        for pid in stuck:
            self.host.emit(
                Event(
                    EventKind.EXITED,
                    pid=pid,
                    domain=self.name,
                    detail="thread did not stop within the grace period; abandoned",
                )
            )
            self.report_exit(pid, ExitReason.killed("did not stop within the grace period"))
        if self._loop_thread is not None:
            self._loop_thread.close()
            self._loop_thread = None
        self.host.forget_domain(self)

    @property
    def is_alive(self) -> bool:
        return not self.closed
