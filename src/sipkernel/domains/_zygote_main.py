"""The zygote: a warm, single-threaded interpreter that forks new domains.

Started once per kernel (on the first ``process`` domain) with a fresh
``exec`` of the interpreter. It imports sipkernel and the modules the kernel
asks to preload, then waits (Chrome's zygote).

It keeps one **spare** child forked ahead of time: a child that has already
paid for what a fresh fork costs here (copy-on-write faults as Python touches
its heap, an event loop for ``async def`` processes, a rehearsal of its first
``Start``: see ``_rehearsal``) and waits for a control socket. A ``Fork``
request hands the socket to the spare, answers at once, and only then forks
the next spare, so a domain's start pays for none of that.

Lifetimes: the zygote exits when the kernel's socket closes (the kernel
exited, even by SIGKILL), killing its children first; every child also has
``PR_SET_PDEATHSIG=SIGKILL`` on the zygote, so no domain outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable

from .._core import _wire
from .._core._kernel import NESTED_ENV
from . import _zygote_protocol as proto
from ._child import serve
from ._rehearsal import rehearse
from ._runner import LoopThread
from ._script import load_main, warm_codecs

_libc = ctypes.CDLL(None, use_errno=True)

PR_SET_PDEATHSIG = 1
REHEARSE_AFTER = 0.02
"""Seconds a spare waits for a request before it rehearses (see ``_rehearsal``).
A spare is forked as a domain starts; the wait keeps the rehearsal off that
start's CPUs, and a spare asked for sooner (domains started back to back,
where the CPUs are the limit) skips it."""


class StartFailed(Exception):
    """A new domain could not start; the message says why (sent to the kernel)."""


class Spare:
    """A forked child waiting, on its own socket, to become a domain."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock


class Zygote:
    """The zygote's state: its socket to the kernel, its children, its spare."""

    warm_loop = True
    """Start an event loop in each spare (a subclass whose spares must stay
    single-threaded, to enter namespaces, turns it off)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = os.getpid()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.children: set[int] = set()  # every child, spare or domain
        self.domains: set[int] = set()  # the children the kernel knows about
        self.spare: Spare | None = None
        self.poller = select.poll()
        self.watched: dict[int, Callable[[], None]] = {}
        """Descriptors of a subclass's, with what to do when one is readable."""

    def watch(self, fd: int, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable`` from the zygote's loop when ``fd`` is readable (or closed)."""
        self.watched[fd] = on_readable
        self.poller.register(fd, select.POLLIN)

    def unwatch(self, fd: int) -> None:
        if self.watched.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def run(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.poller.register(self.sock.fileno(), select.POLLIN)
        self.poller.register(self.wake_r, select.POLLIN)
        self.spare = self.make_spare(None)
        try:
            while True:
                for fd, _ in self.poller.poll():
                    if fd == self.wake_r:
                        _drain(self.wake_r)
                        self._reap()
                    elif fd in self.watched:
                        self.watched[fd]()
                    elif fd == self.sock.fileno() and not self._serve_one():
                        return
        finally:
            _kill_all(self.children)
            self.closing()

    # -- requests ----------------------------------------------------------------------

    def _serve_one(self) -> bool:
        try:
            request = proto.recv_request(self.sock)
        except _wire.PeerVanished:
            return False  # the kernel is gone
        if request is None:
            return True
        message, fds = request
        last: proto.Fork | None = None
        if isinstance(message, proto.Fork):
            last = message
            error, payload = None, None
            try:
                pid, payload = self._start_domain(message, fds)
            except StartFailed as exc:
                pid, error = 0, str(exc)
            except (OSError, _wire.PeerVanished) as exc:
                pid, error = 0, f"the new domain failed to start: {exc}"
            finally:
                _close_all(fds)  # before any fork: no other child may hold a domain's socket
            proto.send(self.sock, proto.Forked(message.request, pid, error, payload))
        else:
            _close_all(fds)
            if self.spare is not None:  # it predates the script: replace it
                self._retire(self.spare)
            proto.send(self.sock, proto.MainLoaded(message.request, load_main(message.path)))
        if self.spare is None:
            self.spare = self.make_spare(last)  # after the answer: off the start's path
        return True

    def _start_domain(self, request: proto.Fork, fds: list[int]) -> tuple[int, bytes | None]:
        spare = self.take_spare(request)
        try:
            _apply_limits(spare.pid, request.rlimits)
            proto.send(spare.sock, request, fds)
            payload = self.assigned(spare, request)
        except (_wire.PeerVanished, OSError, StartFailed):
            self.discard(spare)
            raise
        spare.sock.close()
        self.domains.add(spare.pid)
        return spare.pid, payload

    # -- forking -----------------------------------------------------------------------

    def _fork_spare(self) -> Spare:
        mine, theirs = _wire.new_pair()
        pid = os.fork()
        if pid:
            theirs.close()
            self.children.add(pid)
            return Spare(pid, mine)
        try:  # the child: warm up, then wait to be told what to become
            mine.close()
            self._detach()
            loop_thread = LoopThread("sipkernel-domain-loop") if self.warm_loop else None
            if loop_thread is not None and not _wire.wait_fd(
                theirs.fileno(), select.POLLIN, REHEARSE_AFTER
            ):
                _rehearse_quietly(loop_thread)  # not needed at once: get ready for a start
            request = proto.recv_request_blocking(theirs)
            if request is None:
                os._exit(0)  # the zygote retired this spare, or died
            message, fds = request
            assert isinstance(message, proto.Fork)
            self.become(message, fds, theirs, loop_thread)
        finally:
            os._exit(70)

    # -- what a subclass may change ----------------------------------------------------

    def make_spare(self, last: proto.Fork | None) -> Spare | None:
        """The next spare, made ahead of time (``last``: the latest request, if any)."""
        return self._fork_spare()

    def take_spare(self, request: proto.Fork) -> Spare:
        """The spare to hand ``request`` to (the one made ahead, or a new one)."""
        spare, self.spare = self.spare, None
        return spare if spare is not None else self._fork_spare()

    def discard(self, spare: Spare, *, dead: bool = False) -> None:
        """Get rid of a spare that failed, no longer fits, or died (already reaped)."""
        spare.sock.close()
        if not dead:
            _kill_all({spare.pid})
        self.children.discard(spare.pid)

    def assigned(self, spare: Spare, request: proto.Fork) -> bytes | None:
        """The zygote's part after handing ``request`` to ``spare``; returns the
        opaque payload of the answer to the kernel (nothing here)."""
        return None

    def closing(self) -> None:
        """The zygote is exiting (its children are already killed)."""

    def become(
        self,
        request: proto.Fork,
        fds: list[int],
        zygote: socket.socket,
        loop_thread: LoopThread | None,
    ) -> None:
        """In the spare: turn into the requested domain (never returns)."""
        zygote.close()
        _become_domain(request, fds[0], loop_thread)

    def _detach(self) -> None:
        """In a new child: drop the zygote's duties, die with the zygote."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self.pid:  # the zygote died before the death signal was armed
            os._exit(1)

    def _retire(self, spare: Spare) -> None:
        spare.sock.close()  # it sees end-of-file and exits; _reap collects it
        self.spare = None

    # -- children that ended -------------------------------------------------------------

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            if self.spare is not None and pid == self.spare.pid:
                dead, self.spare = self.spare, None
                self.discard(dead, dead=True)
                self.spare = self.make_spare(None)
            if pid not in self.domains:
                continue  # a spare the kernel never heard of
            self.domains.discard(pid)
            try:
                proto.send(self.sock, proto.Reaped(pid, status))
            except _wire.PeerVanished:
                return


def main(argv: list[str], zygote_class: Callable[[socket.socket], Zygote] = Zygote) -> None:
    """Run a zygote: ``argv`` is the kernel's socket fd and the modules to preload."""
    sock_fd, preload = int(argv[0]), json.loads(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the kernel's to handle
    os.environ[NESTED_ENV] = "1"
    sock = socket.socket(fileno=sock_fd)
    for module in preload:
        __import__(module)
    warm_codecs()
    gc.freeze()  # keep the warm heap out of the collector: fewer copy-on-write faults
    zygote_class(sock).run()


def _become_domain(request: proto.Fork, ctl_fd: int, loop_thread: LoopThread | None) -> None:
    for kind, limit in request.rlimits:
        resource.setrlimit(kind, (limit, limit))
    if request.fresh_exec:
        os.set_inheritable(ctl_fd, True)
        os.execv(
            sys.executable,
            [sys.executable, "-m", "sipkernel.domains._child", str(ctl_fd)],
        )
    serve(ctl_fd, loop_thread)


def _rehearse_quietly(loop_thread: LoopThread) -> None:
    """Rehearse a domain's first start; a failed rehearsal only costs the speed-up."""
    try:
        rehearse(loop_thread)
    except Exception:
        traceback.print_exc()


def _apply_limits(pid: int, rlimits: list[tuple[int, int]]) -> None:
    # Limits are in force before anyone learns the pid (the child sets them too,
    # before it runs any process: whichever comes first wins, with equal values).
    for kind, limit in rlimits:
        with contextlib.suppress(ProcessLookupError):
            resource.prlimit(pid, kind, (limit, limit))


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _kill_all(children: set[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main(sys.argv[1:])
