"""Waiting on several endpoints at once (Singularity's ``switch receive``)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from typing import Any

from ._endpoint import Endpoint, EndpointCore, await_any
from ._errors import BrokenChannelError, NoLiveChannels, ReceiveTimeout, UsageError
from ._waiter import FdThreadWaiter, FutureWaiter, ThreadWaiter, Waiter


def select(endpoints: Sequence[Endpoint], timeout: float | None = None) -> tuple[Endpoint, Any]:
    """Return ``(endpoint, message)`` for the first endpoint with a message.

    Endpoints whose peer is gone (and drained) are skipped; when none of them
    can ever deliver, raises ``NoLiveChannels``. Raises ``ReceiveTimeout`` when
    nothing arrives in ``timeout`` seconds.
    """
    _check(endpoints)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        socks = _sockets(endpoints)  # held while waited on: their descriptors stay theirs
        fds = [sock.fileno() for sock in socks]
        waiter: ThreadWaiter | FdThreadWaiter = FdThreadWaiter() if fds else ThreadWaiter()
        try:
            ready = _poll_all(endpoints, waiter)
            if ready is not None:
                return ready
            if _sockets(endpoints) != socks:
                continue  # an end changed transport meanwhile: wait on what it uses now
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise ReceiveTimeout(f"no message on any of {len(endpoints)} endpoints")
            if isinstance(waiter, FdThreadWaiter):
                waiter.wait(fds, remaining)
            else:
                waiter.wait(remaining)
        finally:
            _forget(endpoints, waiter)
            if isinstance(waiter, FdThreadWaiter):
                waiter.close()


async def aselect(
    endpoints: Sequence[Endpoint], timeout: float | None = None
) -> tuple[Endpoint, Any]:
    """Awaitable ``select`` for ``async def`` processes."""
    _check(endpoints)
    try:
        async with asyncio.timeout(timeout):
            while True:
                waiter = FutureWaiter()
                try:
                    ready = _poll_all(endpoints, waiter)
                    if ready is not None:
                        return ready
                    await await_any([_core(ep) for ep in endpoints], waiter)
                finally:
                    _forget(endpoints, waiter)
    except TimeoutError:
        raise ReceiveTimeout(f"no message on any of {len(endpoints)} endpoints") from None


def _check(endpoints: Sequence[Endpoint]) -> None:
    if not endpoints:
        raise UsageError("select needs at least one endpoint")
    for ep in endpoints:
        if not isinstance(ep, Endpoint):
            raise UsageError(f"select takes endpoints, not {type(ep).__name__}")


def _sockets(endpoints: Sequence[Endpoint]) -> list[socket.socket]:
    """The sockets to wait on: those of endpoints whose peer is in another OS process.

    An in-process endpoint switches to a socket when its peer moves out (and
    back when it returns: see ``_rejoin``); a waiter registered before the
    switch would never hear of what then arrives, so ``select`` compares this
    list before it waits.
    """
    return [sock for sock in (_core(ep).sock for ep in endpoints) if sock is not None]


def _core(ep: Endpoint) -> EndpointCore:
    return ep.live_core()


def _poll_all(endpoints: Sequence[Endpoint], waiter: Waiter) -> tuple[Endpoint, Any] | None:
    live = 0
    for ep in endpoints:
        try:
            got, message = ep.poll(waiter)
        except BrokenChannelError:
            continue
        live += 1
        if got:
            return ep, message
    if live == 0:
        raise NoLiveChannels("every endpoint's peer is gone: no message can ever arrive")
    return None


def _forget(endpoints: Sequence[Endpoint], waiter: Waiter) -> None:
    for ep in endpoints:
        ep.forget(waiter)
