"""Wake-up primitives: how a blocked thread or task learns that it can go on.

An endpoint keeps a list of waiters; whoever changes its state (a message
arrives, the peer closes, the channel moves) calls ``wake()`` on each. A
waiter is single-use: it is woken at most once.
"""

from __future__ import annotations

import asyncio
import asyncio.events as asyncio_events
import contextlib
import math
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

_T = TypeVar("_T")


SIGNAL_SLICE = 0.1
"""Longest single block of the main thread, in seconds (see :func:`in_slices`)."""

_MAIN_THREAD = threading.main_thread().ident
_get_ident = threading.get_ident


def in_slices(
    wait: Callable[[float | None], _T], timeout: float | None, done: Callable[[_T], bool]
) -> _T:
    """``wait(timeout)``, but in the main thread in slices of at most ``SIGNAL_SLICE``.

    CPython runs a signal's handler (Ctrl-C's ``KeyboardInterrupt``) between
    bytecodes of the main thread. A signal that lands after the last check
    and before the thread blocks interrupts nothing: the handler would wait
    for the block to end, which may be never. Between slices Python gets the
    chance to run it. Other threads block in one piece.
    """
    if threading.get_ident() != _MAIN_THREAD:
        return wait(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = SIGNAL_SLICE if deadline is None else deadline - time.monotonic()
        result = wait(max(min(remaining, SIGNAL_SLICE), 0.0))
        if done(result) or (deadline is not None and time.monotonic() >= deadline):
            return result


class Waiter(Protocol):
    """Something that can be woken from any thread."""

    def wake(self) -> None: ...


class ThreadWaiter:
    """Blocks one thread until woken (a pre-acquired lock; cheapest wake-up there is)."""

    __slots__ = ("_lock", "_woken")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._woken = False

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        """Block until woken or until ``timeout`` seconds pass; True if woken."""
        if timeout is None:  # the hot path, kept to a few bytecodes
            acquire = self._lock.acquire
            if _get_ident() != _MAIN_THREAD:
                return acquire()
            while not acquire(timeout=SIGNAL_SLICE):
                pass  # a signal's handler (Ctrl-C) runs here: see in_slices
            return True
        return in_slices(self._acquire, timeout, bool)

    def _acquire(self, timeout: float | None) -> bool:
        return self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))


class FdThreadWaiter:
    """Blocks one thread on a set of socket fds *and* an in-process wake-up.

    Used when a thread waits on several endpoints at once and some of them are
    backed by sockets: the in-process side writes to an eventfd, the sockets are
    polled directly, so no helper thread sits in between.
    """

    __slots__ = ("_efd", "_lock", "_woken")

    def __init__(self) -> None:
        self._efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._woken = False
        self._lock = threading.Lock()

    def wake(self) -> None:
        # A waker takes the waiter from an endpoint's list under the endpoint's
        # lock but wakes it after; by then the waiting thread may have returned
        # and closed the eventfd, whose number another file may already have.
        with self._lock:
            if not self._woken and self._efd >= 0:
                self._woken = True
                os.eventfd_write(self._efd, 1)

    def wait(self, fds: list[int], timeout: float | None) -> list[int]:
        """Wait for the wake-up or for any of ``fds`` to be readable; returns ready fds."""
        poller = select.poll()
        poller.register(self._efd, select.POLLIN)
        for fd in fds:
            poller.register(fd, select.POLLIN)

        def poll(timeout: float | None) -> list[int]:
            ms = None if timeout is None else max(math.ceil(timeout * 1000), 0)
            return [fd for fd, _ in poller.poll(ms)]

        return [fd for fd in in_slices(poll, timeout, bool) if fd != self._efd]

    def close(self) -> None:
        with self._lock:
            efd, self._efd = self._efd, -1
        if efd >= 0:
            os.close(efd)


class FutureWaiter:
    """Wakes an asyncio task, from the loop's own thread or from any other.

    ``future`` is a plain attribute and the future is made directly, not by
    ``loop.create_future()``: a waiter is made on every receive that has to
    wait, and those two Python-level calls were a tenth of its cost.
    """

    __slots__ = ("_loop", "future")

    def __init__(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = _Future(loop=loop)

    def wake(self) -> None:
        if _get_running_loop() is self._loop:  # on the loop's own thread: no hop
            future = self.future
            if not future.done():
                future.set_result(None)
        else:
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


_Future = asyncio.Future
_get_running_loop = asyncio_events._get_running_loop
