"""The kernel's side of the zygote: start it, ask it to fork, hear what it reaped."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading

from .._core import _wire
from .._core._errors import DomainError
from . import _zygote_protocol as proto


class _Pending:
    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: proto.Forked | proto.MainLoaded | None = None


class Forking:
    """A fork request on its way: call it for the pid (waits for the zygote)."""

    def __init__(self, zygote: Zygote, pending: _Pending) -> None:
        self._zygote = zygote
        self._pending = pending

    def __call__(self) -> int:
        reply = self._reply()
        if reply.error:
            raise DomainError(f"could not fork a domain: {reply.error}")
        return reply.pid

    @property
    def payload(self) -> bytes | None:
        """The zygote's opaque answer (for a zygote that extends the standard one)."""
        return self._reply().payload

    def _reply(self) -> proto.Forked:
        reply = self._zygote._reply(self._pending)
        assert isinstance(reply, proto.Forked)
        return reply


class Zygote:
    """A warm interpreter that forks domains on request (one per kernel)."""

    def __init__(
        self,
        preload: tuple[str, ...],
        *,
        env: dict[str, str] | None = None,
        main: str = "sipkernel.domains._zygote_main",
        main_args: tuple[str, ...] = (),
    ) -> None:
        """Start a zygote importing sipkernel and ``preload``.

        ``env`` replaces the kernel's environment (a zygote for untrusted code
        gets a clean one: its children could read whatever it started with);
        ``main`` is the module that runs the zygote (a domain kind may extend it)
        and ``main_args`` are more arguments for it.
        """
        mine, theirs = _wire.new_pair()
        base = os.environ if env is None else env
        env = dict(base, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        modules = ["sipkernel._api", *preload]
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                main,
                str(theirs.fileno()),
                json.dumps(modules),
                *main_args,
            ],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._sock = mine
        self._lock = threading.Lock()
        self._requests = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._reaped: dict[int, int] = {}
        self._reaped_cond = threading.Condition(self._lock)
        self._main_error: str | bool | None = False  # False: not loaded yet
        self._alive = True
        self._reader = threading.Thread(target=self._read, name="sipkernel-zygote", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self) -> None:
        try:
            while True:
                reply = proto.recv_reply(self._sock)
                if isinstance(reply, proto.Reaped):
                    with self._lock:
                        self._reaped[reply.pid] = reply.status
                        self._reaped_cond.notify_all()
                    continue
                with self._lock:
                    pending = self._pending.pop(reply.request, None)
                if pending is not None:
                    pending.reply = reply
                    pending.done.set()
        except (_wire.PeerVanished, OSError):
            pass
        with self._lock:
            self._alive = False
            pending_all = list(self._pending.values())
            self._pending.clear()
            self._reaped_cond.notify_all()
        for pending in pending_all:
            pending.done.set()

    def _post(self, message: proto.Fork | proto.LoadMain, fds: list[int]) -> _Pending:
        pending = _Pending()
        with self._lock:
            if not self._alive:
                raise DomainError("the zygote is gone; no new process domains can start")
            self._pending[message.request] = pending
            proto.send(self._sock, message, fds)
        return pending

    @staticmethod
    def _reply(pending: _Pending) -> proto.Forked | proto.MainLoaded:
        pending.done.wait()
        if pending.reply is None:
            raise DomainError("the zygote died while starting a domain")
        return pending.reply

    def fork(
        self,
        ctl: socket.socket,
        *,
        fresh_exec: bool = False,
        rlimits: list[tuple[int, int]] | None = None,
        payload: bytes | None = None,
        extra_fds: tuple[socket.socket, ...] = (),
    ) -> Forking:
        """Ask for a domain whose control socket is ``ctl``; returns how to get its pid.

        The request is only posted: the caller can go on (and even write to the
        control socket) while the zygote forks. ``payload`` and ``extra_fds``
        are for a zygote ``main`` that extends the standard one.
        """
        request = proto.Fork(next(self._requests), fresh_exec, rlimits or [], payload)
        fds = [ctl.fileno(), *(sock.fileno() for sock in extra_fds)]
        return Forking(self, self._post(request, fds))

    def load_main(self, path: str) -> str | None:
        """Make the kernel's ``__main__`` importable in new domains; the error, if any."""
        if self._main_error is False:
            reply = self._reply(self._post(proto.LoadMain(next(self._requests), path), []))
            assert isinstance(reply, proto.MainLoaded)
            self._main_error = reply.error
        return self._main_error if isinstance(self._main_error, str) else None

    def wait_reaped(self, pid: int, timeout: float) -> int | None:
        """The ``waitpid`` status of a domain, once the zygote has reaped it."""
        with self._lock:
            self._reaped_cond.wait_for(lambda: pid in self._reaped or not self._alive, timeout)
            return self._reaped.pop(pid, None)

    def close(self) -> None:
        """Close the socket: the zygote kills what is left of its children and exits."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join()
        self._sock.close()
        self._proc.wait()
