"""The inside of a ``process`` domain: serves its control channel, runs processes.

Entered in a child forked from the zygote (or re-executed fresh with
``python -m sipkernel.domains._child FD``). It ends when the kernel says
``Stop``, or at once when the control channel breaks (the kernel is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import sys
import threading
import traceback

import msgspec

from .._core._channel import socket_endpoint
from .._core._codec import join_args
from .._core._contract import Role
from .._core._endpoint import Endpoint
from .._core._endpoint_core import violation_listeners
from .._core._errors import ChannelError, ProtocolViolation, UndeliverableMessage
from .._core._exit import ExitReason
from .._core._process import FunctionRef, current_process
from ._control import DOMAIN_CONTROL, Exited, Kill, LoadScript, Start, Stop, Violated
from ._runner import LoopThread, ProcessRunner, Report
from ._script import load_main


def serve(ctl_fd: int, loop_thread: LoopThread | None = None, kind: str = "process") -> None:
    """Run the domain until stopped; never returns (exits the OS process).

    ``loop_thread``, if given, is the event loop (already running) for the
    domain's ``async def`` processes; otherwise one starts on first need.
    """
    code = 0
    try:
        _serve(ctl_fd, loop_thread, kind)
    except BaseException:
        traceback.print_exc()  # the domain's runtime failed: say where, on its stderr
        code = 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _serve(ctl_fd: int, premade: LoopThread | None, kind: str) -> None:
    """The control loop, on the main thread; async processes get a loop thread on demand."""
    ctl = socket_endpoint(DOMAIN_CONTROL, Role.EXPORTER, socket.socket(fileno=ctl_fd))
    send_lock = threading.Lock()
    loop_thread: list[LoopThread] = [] if premade is None else [premade]

    def tell(message: Exited | Violated) -> None:
        # If the kernel is gone, so are we, shortly: nobody is left to tell.
        with send_lock, contextlib.suppress(ChannelError):
            ctl.send(message)

    def report(pid: int, reason: ExitReason) -> None:
        tell(Exited(pid, reason))

    def violated(violation: ProtocolViolation) -> None:
        ctx = current_process()
        if ctx is not None:  # the control channel's own checks are not a process's
            tell(Violated(ctx.pid, ctx.name, str(violation)))

    violation_listeners.append(violated)

    def loop() -> asyncio.AbstractEventLoop:
        if not loop_thread:
            loop_thread.append(LoopThread("sipkernel-domain-loop"))
        return loop_thread[0].loop

    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    runner = ProcessRunner(kind, report, loop, memory_limited=limit != resource.RLIM_INFINITY)
    while True:
        try:
            message = ctl.recv()
        except UndeliverableMessage as undelivered:
            _refuse_start(undelivered, report)
            continue
        except ChannelError:
            return  # the kernel is gone: leave without ceremony
        if isinstance(message, Start):
            start_process(runner, message, report)
        elif isinstance(message, Kill):
            runner.kill(message.pid, message.reason)
        elif isinstance(message, LoadScript):
            load_main(message.path)  # a failure shows as the next Start's import error
        elif isinstance(message, Stop):
            for pid in runner.stop_all(ExitReason.shutdown(), message.grace):
                report(pid, ExitReason.killed("did not stop within the grace period"))
            with send_lock:
                ctl.close()
            return


def start_process(runner: ProcessRunner, message: Start, report: Report) -> None:
    """Run the process a ``Start`` describes; a failure to begin is its exit."""
    try:
        fn = FunctionRef(message.module, message.qualname, message.is_async).resolve()
        args = join_args(message.args, message.endpoints)
    except BaseException as exc:
        _close(message.endpoints, message.exit_signals)
        report(message.pid, ExitReason.from_exception(exc))
        return
    runner.start(
        message.pid,
        message.name,
        fn,
        args=args,
        carried=message.endpoints,
        is_async=message.is_async,
        exit_signals=message.exit_signals,
    )


class _StartHead(msgspec.Struct, tag="Start"):
    """The one field of a ``Start`` needed to answer it when the rest cannot be read."""

    pid: int


_start_head = msgspec.msgpack.Decoder(_StartHead)


def _refuse_start(undelivered: UndeliverableMessage, report: Report) -> None:
    """A ``Start`` carried an endpoint whose contract this domain cannot import.

    That process fails, with the reason; the domain and its other processes
    go on. (Only a ``Start`` carries endpoints; the endpoints it carried are
    already closed, so their peers see them gone.)
    """
    try:
        pid = _start_head.decode(undelivered.payload).pid
    except msgspec.MsgspecError:
        return
    report(pid, ExitReason.from_exception(undelivered))


def _close(endpoints: list[Endpoint], extra: Endpoint | None) -> None:
    for endpoint in [*endpoints, *([extra] if extra else [])]:
        endpoint.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
