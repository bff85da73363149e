"""The zygote: a warm, single-threaded interpreter that forks new domains.

Started once per kernel (on the first ``process`` domain) with a fresh
``exec`` of the interpreter. It imports sipkernel and the modules the kernel
asks to preload, then waits. Each ``Fork`` request becomes a child that is
already warm, so a domain is ready in a few milliseconds (Chrome's zygote).

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
import runpy
import select
import signal
import socket
import sys
import traceback

from .._core import _wire
from .._core._kernel import NESTED_ENV
from . import _zygote_protocol as proto
from ._child import serve

_libc = ctypes.CDLL(None, use_errno=True)

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    sock_fd, preload = int(argv[0]), json.loads(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the kernel's to handle
    os.environ[NESTED_ENV] = "1"
    sock = socket.socket(fileno=sock_fd)
    for module in preload:
        __import__(module)
    gc.freeze()  # keep the warm heap out of the collector: fewer copy-on-write faults
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    try:
        while True:
            for fd, _ in poller.poll():
                if fd == wake_r:
                    _drain(wake_r)
                    _reap(sock, children)
                elif not _serve_one(sock, children, (wake_r, wake_w)):
                    return
    finally:
        _kill_all(children)


def _serve_one(sock: socket.socket, children: set[int], wake: tuple[int, int]) -> bool:
    try:
        request = proto.recv_request(sock)
    except _wire.PeerVanished:
        return False  # the kernel is gone
    if request is None:
        return True
    message, fds = request
    if isinstance(message, proto.Fork):
        pid = _fork_domain(message, fds[0], sock, wake)
        children.add(pid)
        proto.send(sock, proto.Forked(message.request, pid))
    else:
        proto.send(sock, proto.MainLoaded(message.request, _load_main(message.path)))
    for fd in fds:
        os.close(fd)
    return True


def _load_main(path: str) -> str | None:
    """Run the kernel's script as ``__mp_main__`` so its functions can be found."""
    if "__mp_main__" in sys.modules:
        return None
    try:
        namespace = runpy.run_path(path, run_name="__mp_main__")
    except BaseException as exc:
        return "".join(traceback.format_exception_only(exc)).strip()
    module = type(sys)("__mp_main__")
    module.__dict__.update(namespace)
    sys.modules["__mp_main__"] = module
    sys.modules["__main__"] = module
    return None


def _fork_domain(
    request: proto.Fork, ctl_fd: int, sock: socket.socket, wake: tuple[int, int]
) -> int:
    zygote = os.getpid()
    pid = os.fork()
    if pid:
        # Limits are in force before anyone learns the pid (the child sets them too,
        # before it runs any process: whichever comes first wins, with equal values).
        for kind, limit in request.rlimits:
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(pid, kind, (limit, limit))
        return pid
    try:  # the child: never returns into the zygote's loop
        _become_domain(request, ctl_fd, zygote, sock, wake)
    finally:
        os._exit(70)


def _become_domain(
    request: proto.Fork, ctl_fd: int, zygote: int, sock: socket.socket, wake: tuple[int, int]
) -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sock.close()
    for fd in wake:
        os.close(fd)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != zygote:  # the zygote died before the death signal was armed
        os._exit(1)
    for kind, limit in request.rlimits:
        resource.setrlimit(kind, (limit, limit))
    if request.fresh_exec:
        os.set_inheritable(ctl_fd, True)
        os.execv(
            sys.executable,
            [sys.executable, "-m", "sipkernel.domains._child", str(ctl_fd)],
        )
    serve(ctl_fd)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _reap(sock: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        try:
            proto.send(sock, proto.Reaped(pid, status))
        except _wire.PeerVanished:
            return


def _kill_all(children: set[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main(sys.argv[1:])
