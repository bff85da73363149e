"""The zygote of sandboxed domains: the standard zygote, plus containment.

Started with a clean environment and importing sipkernel only. Its spares
stay single-threaded (a multi-threaded process cannot enter a new user
namespace). When a spare is assigned a sandboxed domain it becomes the
sandbox's keeper (see ``_contain``): it enters its namespaces and tells the
zygote, which writes its id maps from outside; it then forks pid 1, which
builds and filters itself and only then imports the application's code.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys

import msgspec

from ..domains import _zygote_protocol as proto
from ..domains._child import serve
from ..domains._runner import LoopThread
from ..domains._zygote_main import Spare, StartFailed, Zygote, main
from ._contain import SandboxPayload, keeper_enter, keeper_fork_init, map_keeper
from ._supervise import EXIT_CPU_LIMIT

MAP_TIMEOUT = 10.0
"""Seconds a spare may take to enter its namespaces before the start fails."""


class SandboxZygote(Zygote):
    """Forks sandboxed domains (one zygote per kernel)."""

    warm_loop = False

    def assigned(self, spare: Spare, request: proto.Fork) -> None:
        """Map the spare's ids once it has entered its user namespace."""
        payload = _payload(request)
        if not select.select([spare.sock], [], [], MAP_TIMEOUT)[0]:
            raise StartFailed("the sandbox did not enter its namespaces in time")
        answer = spare.sock.recv(4096)
        if answer.startswith(b"e"):
            raise StartFailed(answer[1:].decode())
        if answer != b"u":
            raise StartFailed("the sandbox died before entering its namespaces")
        if payload.id_maps is not None:
            map_keeper(spare.pid, payload.id_maps)
        spare.sock.send(b"m")

    def become(
        self,
        request: proto.Fork,
        fds: list[int],
        zygote: socket.socket,
        loop_thread: LoopThread | None,
    ) -> None:
        """Become the keeper, then (in pid 1, contained) the domain."""
        payload = _payload(request)
        ctl_fd, report_fd = fds
        try:
            keeper_enter(payload.launch)
        except Exception as exc:
            zygote.send(b"e" + str(exc).encode())
            os._exit(71)
        zygote.send(b"u")  # entered: the zygote maps our ids from outside
        if zygote.recv(16) != b"m":
            os._exit(71)
        zygote.close()
        report = socket.socket(fileno=report_fd)
        keeper_fork_init(payload.launch, report, keep=(ctl_fd,))
        # pid 1 of the sandbox, built and filtered: only now may the application's
        # code load (its modules as its processes start, its script when sent).
        # As pid 1 it would ignore SIGXCPU: exit with a code that says so instead.
        signal.signal(signal.SIGXCPU, lambda *_: os._exit(EXIT_CPU_LIMIT))
        serve(ctl_fd, None, kind="sandbox")


def _payload(request: proto.Fork) -> SandboxPayload:
    if request.payload is None:
        raise StartFailed("a sandboxed domain was requested without its launch plan")
    return msgspec.msgpack.decode(request.payload, type=SandboxPayload)


if __name__ == "__main__":
    main(sys.argv[1:], SandboxZygote)
