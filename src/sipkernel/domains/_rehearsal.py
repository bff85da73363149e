"""A spare domain's dress rehearsal: its first steps, run once before it is needed.

A child forked from the zygote pays on its first use of each code path: a
copy-on-write fault for every page of the zygote's heap that Python touches
(reference counts are writes), a fault for every fresh page it allocates, and
the caches Python and msgspec fill lazily. On this kind of machine a page fault
costs microseconds, and a domain's first ``Start`` touches hundreds of pages.

So a spare that is not asked for at once (``REHEARSE_AFTER`` in the zygote)
plays the part once, while it waits, on a throwaway control channel: it
receives a ``Start`` carrying an endpoint, runs an ``async def`` process that
answers over that endpoint, reports its exit, and tears it all down. The real
start then finds those pages already its own and the caches full. Nothing of
the rehearsal outlives it: every endpoint and socket it made is closed, and the
processes it ran are reported and forgotten.
"""

from __future__ import annotations

from .._core import _wire
from .._core._channel import channel, socket_endpoint
from .._core._codec import split_args
from .._core._contract import Role
from .._core._endpoint import Endpoint
from .._core._exit import ExitReason
from ._child import start_process
from ._control import DOMAIN_CONTROL, Exited, Start, Stop
from ._runner import LoopThread, ProcessRunner

REHEARSAL_TIMEOUT = 5.0
"""Seconds the rehearsal waits for each of its own steps (each takes microseconds)."""


async def rehearsal_process(reply: Endpoint, note: str) -> None:
    """The rehearsed process: answer once over the endpoint it was handed.

    ``note`` is there so that a copied argument is unpickled too, as in most
    real starts.
    """
    await reply.asend(Stop(float(len(note))))


def rehearse(loop_thread: LoopThread) -> ExitReason:
    """Run a domain's first ``Start`` once, on channels of its own (see the module).

    Returns the rehearsed process's exit reason, as the kernel's side of the
    throwaway control channel received it.
    """
    domain_side, kernel_side = (
        socket_endpoint(DOMAIN_CONTROL, role, sock)
        for role, sock in zip((Role.EXPORTER, Role.IMPORTER), _wire.new_pair(), strict=True)
    )
    mine, theirs = channel(DOMAIN_CONTROL)

    def report(pid: int, reason: ExitReason) -> None:
        domain_side.send(Exited(pid, reason))

    runner = ProcessRunner("process", report, lambda: loop_thread.loop)
    try:
        data, carried = split_args((theirs, "rehearsal"))
        kernel_side.send(
            Start(0, "rehearsal", __name__, rehearsal_process.__qualname__, True, data, carried)
        )
        start = domain_side.recv(timeout=REHEARSAL_TIMEOUT)
        assert isinstance(start, Start)
        start_process(runner, start, report)
        mine.recv(timeout=REHEARSAL_TIMEOUT)
        exited = kernel_side.recv(timeout=REHEARSAL_TIMEOUT)
        assert isinstance(exited, Exited)
        return exited.reason
    finally:
        for endpoint in (mine, domain_side, kernel_side):
            endpoint.close()
