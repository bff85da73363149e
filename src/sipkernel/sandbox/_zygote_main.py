"""The zygote of sandboxed domains: the standard zygote, plus containment ahead of time.

Started with a clean environment and importing sipkernel only. Its spares
are sandboxes already built (Chrome's zygote model), the next one and one in
reserve: for the policy of the latest request it makes a cgroup, forks the
keeper, which enters its namespaces and is mapped from here, and pid 1
builds its root, drops its privileges, installs its seccomp filter, imports
the kernel's preload modules in a thread of its own, and waits. A request
for the same policy hands the next spare the domain's sockets: it gives its
seccomp listener to the kernel and serves. A request for another policy
retires the spares and builds one on the spot.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import threading

import msgspec

from ..domains import _zygote_protocol as proto
from ..domains._child import serve
from ..domains._runner import LoopThread
from ..domains._script import warm_codecs
from ..domains._zygote_main import Spare, StartFailed, Zygote, main
from . import _landlock, _linux, _seccomp
from ._cgroups import Cgroup
from ._contain import (
    Launch,
    SandboxPayload,
    keeper_enter,
    keeper_fork_init,
    map_keeper,
    report_failed,
    report_ready,
)
from ._supervise import EXIT_CPU_LIMIT

BUILD_TIMEOUT = 30.0
"""Seconds a spare may take to build its sandbox before the start fails."""
RESERVE = 1
"""Sandboxes kept built beyond the next spare. A sandbox takes longer to build
(namespaces, a dozen mounts, Landlock, seccomp: 10-20 ms on a busy 2-vCPU VM)
than a domain started right after another takes to start, so with one spare
only, back-to-back starts wait for it; with one more, each has had two starts'
time to build."""


class SandboxSpare(Spare):
    """A spare sandbox, built for one policy (``payload``), in its own cgroup."""

    def __init__(
        self,
        pid: int,
        sock: socket.socket,
        payload: bytes,
        cgroup: Cgroup | None,
        maps: tuple[str, str] | None,
    ):
        super().__init__(pid, sock)
        self.payload = payload
        self.cgroup = cgroup
        self.maps = maps
        self.fd = sock.fileno()
        """The socket's descriptor number, watched by the zygote until the keeper is mapped."""
        self.mapped = False
        """The keeper's ids are written (or ``error`` says why not)."""
        self.error: str | None = None
        self.ready = False
        """Pid 1 said it is built (or ``error`` says why it is not)."""


class SandboxZygote(Zygote):
    """Forks sandboxed domains (one zygote per kernel)."""

    warm_loop = False

    def __init__(self, sock: socket.socket, preload: tuple[str, ...] = ()) -> None:
        super().__init__(sock)
        self.payload: bytes | None = None  # the latest request's: what the next spare is for
        self.preload = preload
        """The kernel's preload modules: each spare imports them, inside its sandbox."""
        self.reserve: list[SandboxSpare] = []
        """Spares built after the next one, oldest first (see ``RESERVE``)."""

    # -- spares ------------------------------------------------------------------------------

    def make_spare(self, last: proto.Fork | None) -> Spare | None:
        if last is not None and last.payload is not None:
            if last.payload != self.payload:
                self._drop_reserve()  # built for another policy
            self.payload = last.payload
        if self.payload is None:
            return None
        spare = self.reserve.pop(0) if self.reserve else self._build(self.payload)
        while len(self.reserve) < RESERVE:
            self.reserve.append(self._build(self.payload))
        return spare

    def take_spare(self, request: proto.Fork) -> Spare:
        if request.payload is None:
            raise StartFailed("a sandboxed domain was requested without its launch plan")
        spare, self.spare = self.spare, None
        if isinstance(spare, SandboxSpare) and spare.payload == request.payload:
            if self._ready(spare).error is None:
                return spare
            self.discard(spare)  # it died waiting: build one now (a real failure repeats)
        elif spare is not None:
            self.discard(spare)  # built for another policy
        return self._ready(self._build(request.payload))

    def _ready(self, spare: SandboxSpare) -> SandboxSpare:
        """``spare`` mapped and built, waiting for it as needed (or with ``error``)."""
        self._map(spare)
        return _built(spare)

    def discard(self, spare: Spare, *, dead: bool = False) -> None:
        if isinstance(spare, SandboxSpare):
            self.unwatch(spare.fd)
        super().discard(spare, dead=dead)
        if isinstance(spare, SandboxSpare) and spare.cgroup is not None:
            with contextlib.suppress(OSError):
                spare.cgroup.close()

    def _drop_reserve(self) -> None:
        reserve, self.reserve = self.reserve, []
        for spare in reserve:
            self.discard(spare)

    def assigned(self, spare: Spare, request: proto.Fork) -> bytes | None:
        """The domain is the kernel's now, and so is its cgroup: say which it is."""
        assert isinstance(spare, SandboxSpare)
        if spare.error is not None:
            raise StartFailed(spare.error)
        handle = None if spare.cgroup is None else spare.cgroup.handle()
        return msgspec.msgpack.encode(handle)

    def closing(self) -> None:
        for spare in [self.spare, *self.reserve]:  # their processes are already killed
            if isinstance(spare, SandboxSpare) and spare.cgroup is not None:
                with contextlib.suppress(OSError):
                    spare.cgroup.close()

    # -- building one ------------------------------------------------------------------------

    def _build(self, payload_bytes: bytes) -> SandboxSpare:
        """Fork a keeper for ``payload_bytes``; it is mapped when it asks, pid 1 builds alone.

        The zygote waits for neither the keeper nor pid 1 here: it maps the
        keeper's ids when the keeper asks (``_map``, from its loop), serves
        requests while the sandbox builds on another CPU, and waits for it
        (``_ready``) only when a request takes the spare.
        """
        payload = msgspec.msgpack.decode(payload_bytes, type=SandboxPayload)
        name = f"domain-{os.getppid()}"  # the kernel's pid: whose sandboxes these are
        cgroup = None if payload.cgroup is None else Cgroup.create(name, payload.cgroup)
        launch = payload.launch
        if cgroup is not None:
            launch = msgspec.structs.replace(launch, cgroup_procs=cgroup.attach_paths())
        program = _compiled(launch)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            # Nothing of the zygote's but what _detach closes: no other domain's socket.
            keep = {0, 1, 2, theirs.fileno(), self.sock.fileno(), self.wake_r, self.wake_w}
            _linux.close_fds_except(keep)
            self._contain(launch, theirs, program)
        theirs.close()
        self.children.add(pid)
        spare = SandboxSpare(pid, mine, payload_bytes, cgroup, payload.id_maps)
        self.watch(spare.fd, lambda: self._map(spare))
        return spare

    def _map(self, spare: SandboxSpare) -> None:
        """Once the keeper has entered its namespaces ("u"), write its id maps ("m").

        Called from the zygote's loop when the keeper speaks, so that the
        zygote serves requests meanwhile, or by a request that takes the
        spare before then (it waits for the keeper here).
        """
        self.unwatch(spare.fd)
        if spare.mapped:
            return
        spare.mapped = True
        try:
            _expect(spare.sock, b"u")
            if spare.maps is not None:
                map_keeper(spare.pid, spare.maps)
            spare.sock.send(b"m")
        except (StartFailed, OSError) as exc:
            spare.error = str(exc)

    def _contain(
        self, launch: Launch, zygote: socket.socket, program: _seccomp.Program | None
    ) -> None:
        """In the new keeper: contain, and in pid 1 wait to be assigned (never returns)."""
        try:
            self._detach()
            try:
                keeper_enter(launch)
            except Exception as exc:
                zygote.send(b"e" + str(exc).encode())
                return
            zygote.send(b"u")  # entered: the zygote maps our ids from outside
            if zygote.recv(16) != b"m":
                return
            try:
                listener = keeper_fork_init(launch, keep=(zygote.fileno(),), program=program)
            except BaseException as exc:  # pid 1: a set-up step failed
                report_failed(zygote, exc)
                return
            zygote.send(b"r")  # built: wait for a domain to become
            _wait_and_serve(zygote, listener, self.preload)
        finally:
            os._exit(71)


def _built(spare: SandboxSpare) -> SandboxSpare:
    """``spare``, once pid 1 has reported its sandbox built (or failed: ``error``)."""
    if not spare.ready and spare.error is None:
        try:
            _expect(spare.sock, b"r")
        except StartFailed as exc:
            spare.error = str(exc)
    spare.ready = True
    return spare


def _compiled(launch: Launch) -> _seccomp.Program | None:
    """The spare's seccomp filter, compiled here once per policy; None if it cannot be
    (pid 1 then compiles it itself, and its failure names the step). Also asks here,
    once, what pid 1 would ask the kernel on every build."""
    _landlock.abi_version()
    _linux.last_capability()
    try:
        return _seccomp.compile_filter(launch.syscalls, listener=True)
    except Exception:
        return None


def _wait_and_serve(zygote: socket.socket, listener: int | None, preload: tuple[str, ...]) -> None:
    """In pid 1, built and filtered: take the domain's sockets, report, serve.

    The event loop for ``async def`` processes starts while the spare waits
    (it is sipkernel's code, and the thread inherits every layer, the filter
    included), so a start does not pay for it; so does the import of the
    kernel's ``preload`` modules (see :func:`_preload`).
    """
    loop_thread = LoopThread("sipkernel-domain-loop")
    if preload:
        threading.Thread(target=_preload, args=(preload,), name="sipkernel-preload").start()
    request = proto.recv_request_blocking(zygote)
    if request is None:
        return  # retired
    _message, fds = request
    ctl_fd, report_fd = fds
    zygote.close()
    report_ready(socket.socket(fileno=report_fd), listener)
    # Only now may the application's code load (its modules as its processes start,
    # its script when sent). As pid 1 it would ignore SIGXCPU: exit saying so instead.
    signal.signal(signal.SIGXCPU, lambda *_: os._exit(EXIT_CPU_LIMIT))
    serve(ctl_fd, loop_thread, kind="sandbox")


def _preload(modules: tuple[str, ...]) -> None:
    """Import ``modules`` and build their contracts' codecs, in a spare's own thread.

    This is the application's code, running inside the sandbox, every layer
    in force. It runs beside the wait for a request, not before it: a module
    that blocks, or stops on a denied system call (which waits for the kernel
    to take the seccomp listener and name it), never holds the hand-over up.
    A module that fails to import is left alone: the process that needs it
    meets the same error, as its own exit reason.
    """
    for module in modules:
        try:
            __import__(module)
        except BaseException:  # the spawn that needs it reports it
            continue
    warm_codecs()


def _expect(sock: socket.socket, what: bytes) -> None:
    """Wait for ``what`` from a spare being built; StartFailed with its reason otherwise."""
    if not select.select([sock], [], [], BUILD_TIMEOUT)[0]:
        raise StartFailed("the sandbox took too long to build")
    answer = sock.recv(65536)
    if answer == what:
        return
    if answer.startswith(b"e"):
        raise StartFailed(answer[1:].decode())
    failure = _failure(answer)
    raise StartFailed(failure or "the sandbox died while it was being built")


def _failure(answer: bytes) -> str | None:
    from ._contain import Failed, Report

    if not answer:
        return None
    try:
        report = msgspec.msgpack.decode(answer, type=Report)
    except msgspec.DecodeError:
        return None
    if isinstance(report, Failed):
        return f"sandbox setup failed at step {report.step!r}: {report.detail}"
    return None


def _sandbox_main(argv: list[str]) -> None:
    """``argv``: the socket, sipkernel's own modules, then the modules spares import."""
    preload = tuple(json.loads(argv[2])) if len(argv) > 2 else ()
    main(argv[:2], lambda sock: SandboxZygote(sock, preload))


if __name__ == "__main__":
    _sandbox_main(sys.argv[1:])
