"""Endpoints: the two ends of a channel, each an unforgeable capability.

An :class:`Endpoint` is a thin handle over an :class:`EndpointCore`, which holds
the channel's state at this end: the contract checker, the inbox of messages
already delivered here, and the transport to the peer.

The transport is chosen by where the two ends live, and can change while the
channel is in use:

* both ends in this OS process: the sender copies the message (encode, then
  decode) straight into the peer's bounded inbox;
* the ends in different OS processes: a private ``SOCK_SEQPACKET`` socket pair.
  When an end moves to another OS process the pair is created (if needed) and
  the socket travels with ``SCM_RIGHTS``, so later traffic goes directly
  between the two processes, never through a relay.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _wire
from ._endpoint_core import EndpointCore, EndpointStatus, Entry, broken_text
from ._errors import (
    BrokenChannelError,
    ClosedEndpointError,
    EndpointMovedError,
    ProtocolViolation,
    ReceiveTimeout,
    UndeliverableMessage,
    UsageError,
)
from ._exit import ExitReason
from ._process import ProcessKilled
from ._process import _current as _current_process_var
from ._spin import SPIN_MAX_NS, judge_spin
from ._waiter import FutureWaiter, ThreadWaiter, Waiter

if TYPE_CHECKING:
    import socket

    from ._codec import _Transfer
    from ._contract import Contract, Role

__all__ = ["Endpoint", "EndpointCore", "EndpointStatus", "Entry", "await_any"]


class Endpoint:
    """One end of a channel: send, receive, select, move, close.

    Every operation has a blocking form for ``def`` processes (``send``,
    ``recv``) and an awaitable form for ``async def`` processes (``asend``,
    ``arecv``); both check each message against the channel's contract.

    Sending an endpoint inside a message *moves* it: the sender's handle is dead
    afterwards (``EndpointMovedError``), and the receiver's handle works the same
    in whatever domain it lives.
    """

    __slots__ = ("__weakref__", "_core", "_gone")

    def __init__(self, core: EndpointCore) -> None:
        self._core: EndpointCore | None = core
        self._gone = EndpointStatus.OPEN

    # -- introspection ---------------------------------------------------------------------

    @property
    def contract(self) -> Contract:
        return self._live().checker.contract

    @property
    def role(self) -> Role:
        return self._live().checker.role

    @property
    def state(self) -> str:
        """The contract state this end is in."""
        return self._live().checker.state

    @property
    def closed(self) -> bool:
        core = self._core
        return core is None or core.status is not EndpointStatus.OPEN

    @property
    def peer_gone(self) -> bool:
        """True once the peer has closed or vanished (queued messages may remain)."""
        core = self._live()
        return core.broken is not None

    def __repr__(self) -> str:
        core = self._core
        if core is None:
            return f"<Endpoint {self._gone.value}>"
        checker = core.checker
        return (
            f"<Endpoint {checker.contract.name}/{checker.role.value} "
            f"state={checker.state} {core.status.value}>"
        )

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Close this end (idempotent). The peer sees ``BrokenChannelError``."""
        self.close_with(ExitReason.normal("peer closed its endpoint"))

    def close_with(self, reason: ExitReason) -> None:
        """Close this end, telling the peer ``reason``."""
        core, self._core = self._core, None
        if core is not None:
            self._gone = EndpointStatus.CLOSED
            core.close(reason)

    def __del__(self) -> None:
        # A dropped handle is a closed endpoint, as with files and sockets.
        try:
            core = getattr(self, "_core", None)  # None too if __init__ never finished
            if core is not None and core.status is EndpointStatus.OPEN:
                core.close(ExitReason.normal("the peer's endpoint was dropped"))
        except ProcessKilled:
            pass  # a kill cannot leave a finaliser; the runner repeats it outside

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def live_core(self) -> EndpointCore:
        """The core, if this handle is still usable (internal)."""
        return self._live()

    def _live(self) -> EndpointCore:
        ctx = _process_context()  # check_killed(), inlined: every operation starts here
        if ctx is not None and ctx.kill_requested:
            raise ProcessKilled
        core = self._core
        if core is None or core.status is not _OPEN:
            if self._gone is EndpointStatus.MOVED:
                raise EndpointMovedError("this endpoint was sent away; it is no longer yours")
            raise ClosedEndpointError("this endpoint is closed")
        return core

    def take_core(self) -> EndpointCore:
        """Give the core away (a move); this handle is dead afterwards (internal)."""
        core = self._live()
        self._core = None
        self._gone = EndpointStatus.MOVED
        return core

    def restore_core(self, core: EndpointCore) -> None:
        """Undo ``take_core`` after a send that did not happen (internal)."""
        self._core = core
        self._gone = EndpointStatus.OPEN

    # -- sending ------------------------------------------------------------------------

    def send(self, message: Any, timeout: float | None = None) -> None:
        """Send ``message``; block while the peer's queue is full.

        Raises ``ProtocolViolation`` if the contract forbids it here or a field
        has the wrong type (and breaks the channel), ``BrokenChannelError`` if
        the peer is gone, ``MessageTooLarge`` and ``TimeoutError`` as their names
        say; after those two the endpoint is as it was before the call.
        """
        ctx, core = _process_context(), self._core  # _live(), inlined
        if (ctx is not None and ctx.kill_requested) or core is None or core.status is not _OPEN:
            core = self._live()
        try:
            mark = core.checker.step_send(message)  # the rewind mark if the send fails
        except ProtocolViolation as violation:
            core.fail(violation)
            raise
        try:
            if core.peer is not None or not self._send_socket(core, message, timeout):
                entry, undo = core.codec.copy(message)
                if not _enqueue(core, entry, None):
                    self._send_local_slow(core, entry, undo, message, timeout)
        except BaseException as exc:
            _unsend(core, mark, exc)
            raise

    async def asend(self, message: Any, timeout: float | None = None) -> None:
        """Awaitable ``send`` for ``async def`` processes."""
        ctx, core = _process_context(), self._core  # _live(), inlined
        if (ctx is not None and ctx.kill_requested) or core is None or core.status is not _OPEN:
            core = self._live()
        try:
            mark = core.checker.step_send(message)  # the rewind mark if the send fails
        except ProtocolViolation as violation:
            core.fail(violation)
            raise
        try:
            if core.peer is not None or not await self._asend_socket(core, message, timeout):
                entry, undo = core.codec.copy(message)
                if not _enqueue(core, entry, None):
                    await self._asend_local_slow(core, entry, undo, message, timeout)
        except BaseException as exc:
            _unsend(core, mark, exc)
            raise

    def _send_local_slow(
        self, core: EndpointCore, entry: Entry, undo: Undo, message: Any, timeout: float | None
    ) -> None:
        deadline = _deadline(timeout)
        while True:
            waiter = ThreadWaiter()
            done = _enqueue(core, entry, waiter)
            if done:
                return
            if done is None:  # the channel now crosses OS processes
                undo()
                self._send_socket(core, message, _remaining(deadline))
                return
            if not waiter.wait(_remaining(deadline)):
                undo()
                raise TimeoutError("the peer's queue stayed full")

    async def _asend_local_slow(
        self, core: EndpointCore, entry: Entry, undo: Undo, message: Any, timeout: float | None
    ) -> None:
        deadline = _deadline(timeout)
        while True:
            waiter = FutureWaiter()
            done = _enqueue(core, entry, waiter)
            if done:
                return
            if done is None:
                undo()
                await self._asend_socket(core, message, _remaining(deadline))
                return
            try:
                await asyncio.wait_for(waiter.future, _remaining(deadline))
            except TimeoutError:
                undo()
                raise TimeoutError("the peer's queue stayed full") from None

    def _send_socket(self, core: EndpointCore, message: Any, timeout: float | None) -> bool:
        """Send over the socket; False if the end rejoined its peer in memory first."""
        sock = core.sock or core.socket_or_broken()
        deadline = None if timeout is None else _deadline(timeout)
        if core.credit > 0:  # room in the peer's queue (UNLIMITED is negative)
            core.credit -= 1
        elif core.credit == 0:
            self._wait_for_credit(core, sock, deadline)
        payload, fds, transfer = _encode_or_give_back(core, message)
        write = core.write_lock
        try:
            write.acquire()
            try:
                if core.sock is not sock:  # rejoined (see _rejoin): send in memory
                    _give_back(transfer)
                    return False
                _wire.send_message(
                    sock, payload, fds, None if deadline is None else _remaining(deadline)
                )
            finally:
                write.release()
        except _wire.PeerVanished:
            _give_back(transfer)
            raise core.vanished() from None
        except BaseException:
            _give_back(transfer)
            core.give_back_credit()
            raise
        if transfer is not None:
            transfer.finish_export()
        return True

    @staticmethod
    def _wait_for_credit(core: EndpointCore, sock: socket.socket, deadline: float | None) -> None:
        """The peer's queue is full: wait for its credit, then take one."""
        while not core.take_credit():
            if not _wire.wait_fd(sock.fileno(), _POLLIN, _remaining(deadline)):
                raise TimeoutError("the peer's queue stayed full")
            core.absorb()

    async def _asend_socket(self, core: EndpointCore, message: Any, timeout: float | None) -> bool:
        """Send over the socket; False if the end rejoined its peer in memory first."""
        sock = core.socket_or_broken()
        if not core.take_credit():
            async with asyncio.timeout(timeout):
                while not core.take_credit():
                    await await_any([core], FutureWaiter())
                    core.absorb()
        payload, fds, transfer = _encode_or_give_back(core, message)
        try:
            with core.write_lock:
                if core.sock is not sock:  # rejoined (see _rejoin): send in memory
                    _give_back(transfer)
                    return False
                sent = _wire.try_send(sock, payload, fds)
                core.sending_async += not sent  # no rejoin until this send is through
            if not sent:  # no room now, or in fragments: wait on the loop
                try:
                    async with asyncio.timeout(timeout):
                        await _wire.async_send_message(sock, payload, fds)
                finally:
                    with core.write_lock:
                        core.sending_async -= 1
        except _wire.PeerVanished:
            _give_back(transfer)
            raise core.vanished() from None
        except BaseException:
            _give_back(transfer)
            core.give_back_credit()
            raise
        if transfer is not None:
            transfer.finish_export()
        return True

    # -- receiving --------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Any:
        """Receive the next message, waiting at most ``timeout`` seconds.

        Raises ``ReceiveTimeout``, ``BrokenChannelError`` (the peer is gone and
        every message it sent has been received) or ``ProtocolViolation``
        (``by_peer=True``: the peer sent what the contract forbids).
        """
        ctx, core = _process_context(), self._core  # _live(), inlined
        if (ctx is not None and ctx.kill_requested) or core is None or core.status is not _OPEN:
            core = self._live()
        if timeout is None and core.sock is not None:
            return self._recv_socket(core)
        message = self._take(core, None)
        if message is not _EMPTY:
            return message
        deadline = _deadline(timeout)
        while True:
            sock = core.sock  # held while waited on: its descriptor stays this socket's
            if sock is None:
                waiter = ThreadWaiter()
                message = self._take(core, waiter)
                if message is not _EMPTY:
                    return message
                if not waiter.wait(_remaining(deadline)):
                    self.forget(waiter)
                    raise ReceiveTimeout(f"no message within {timeout} s")
            elif not _wire.wait_fd(sock.fileno(), _POLLIN, _remaining(deadline)):
                raise ReceiveTimeout(f"no message within {timeout} s")
            message = self._take(core, None)
            if message is not _EMPTY:
                return message

    def _recv_socket(self, core: EndpointCore) -> Any:
        """Receive from another OS process: spin briefly, then block.

        Waking a thread that sleeps on another CPU costs tens of microseconds
        on a VM, more than a whole round trip. So first poll the socket for up
        to ``SPIN_MAX_NS`` (yielding the CPU between polls), then block. Where
        spins keep missing (the peer is slow, or shares this CPU) this end
        blocks at once for a while (``_spin.judge_spin``).
        """
        now = time.perf_counter_ns()
        if now >= core.spin_paused_until:
            message = self._take(core, None)
            if message is not _EMPTY:  # already here: nothing to judge
                return message
            deadline = now + SPIN_MAX_NS
            cpu_start = time.thread_time_ns()
            while True:
                os.sched_yield()
                message = self._take(core, None)
                if message is not _EMPTY:
                    judge_spin(core, now, cpu_start, caught=True)
                    return message
                if time.perf_counter_ns() >= deadline:
                    judge_spin(core, now, cpu_start, caught=False)
                    break
        message = self._take(core, None, True)
        if message is not _EMPTY:
            return message
        return self.recv()  # the channel changed under us (moved or drained): start over

    async def arecv(self, timeout: float | None = None) -> Any:
        """Awaitable ``recv`` for ``async def`` processes."""
        ctx, core = _process_context(), self._core  # _live(), inlined
        if (ctx is not None and ctx.kill_requested) or core is None or core.status is not _OPEN:
            core = self._live()
        if timeout is not None:
            return await self._arecv_within(timeout)
        while True:
            # A waiter (a future) only when no message is there; the take re-checks.
            waiter = None if core.inbox else FutureWaiter()
            message = self._take(core, waiter)
            if message is not _EMPTY:
                return message
            if waiter is None:
                continue
            try:
                if core.sock is None:
                    await waiter.future
                else:
                    await await_any([core], waiter)
            except BaseException:  # cancelled (a timeout, a kill): stop waiting
                self.forget(waiter)  # (a waiter that was woken is no longer registered)
                raise
            message = self._take(core, None)
            if message is not _EMPTY:
                return message

    async def _arecv_within(self, timeout: float) -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await self.arecv()
        except TimeoutError:
            raise ReceiveTimeout(f"no message within {timeout} s") from None

    def poll(self, waiter: Waiter | None) -> tuple[bool, Any]:
        """Take a message if one is ready, else register ``waiter`` (internal).

        Raises when nothing can ever arrive (closed here, or broken and drained).
        """
        message = self._take(self._live(), waiter)
        return (False, None) if message is _EMPTY else (True, message)

    def _take(self, core: EndpointCore, waiter: Waiter | None, block: bool = False) -> Any:
        """The next message, checked; or ``_EMPTY``, with ``waiter`` registered if given."""
        lock = core.lock
        lock.acquire()  # not ``with``: this is the hottest lock, and ``with`` costs twice as much
        try:
            if core.status is not _OPEN:
                self._live()  # raises the right error
            if core.inbox:
                entry: Entry | None = core.inbox.popleft()
                woken = core.space_waiters or None  # senders waiting for room in this inbox
                if woken is not None:
                    core.space_waiters = []
            elif core.sock is None:
                if core.broken is not None:
                    raise BrokenChannelError(broken_text(core.broken), core.broken)
                if waiter is not None:
                    core.recv_waiters.append(waiter)
                return _EMPTY
            else:
                entry = woken = None
        finally:
            lock.release()
        if entry is None:
            entry = core.read_entry(block=block)
            if entry is None:  # none waits; or the end rejoined its peer (or moved): look again
                return _EMPTY if core.sock is not None else self._take(core, waiter)
        elif woken is not None:
            _wake_all(woken)
        message = _accept(core, entry)
        if core.sock is not None:
            core.consumed()  # it came from the socket (perhaps queued here on the way)
        return message

    def forget(self, waiter: Waiter) -> None:
        """Drop a waiter registered by ``poll`` (internal)."""
        core = self._core
        if core is None:
            return
        with core.lock:
            if waiter in core.recv_waiters:
                core.recv_waiters.remove(waiter)


_POLLIN = 0x001
_OPEN = EndpointStatus.OPEN
_process_context = _current_process_var.get
"""``current_process()`` without its Python frame: the ContextVar's own getter."""
_EMPTY: Any = object()
"""What a take returns when no message is there."""


def _enqueue(core: EndpointCore, entry: Entry, waiter: Waiter | None) -> bool | None:
    """Put ``entry`` in the peer's inbox: True if done, False if full, None if moved."""
    lock = core.lock
    lock.acquire()  # not ``with``: the hottest lock, and ``with`` costs twice as much
    try:
        peer = core.peer  # never set on an end that is not open
        if peer is None:
            if core.status is not _OPEN:
                raise ClosedEndpointError("this endpoint was closed while sending")
            if core.broken is not None:
                raise BrokenChannelError(broken_text(core.broken), core.broken)
            return None
        inbox = peer.inbox
        if len(inbox) >= peer.capacity:
            if waiter is not None:
                peer.space_waiters.append(waiter)
            return False
        inbox.append(entry)
        waiters = peer.recv_waiters
        if waiters:
            peer.recv_waiters = []
    finally:
        lock.release()
    for woken in waiters:
        woken.wake()
    return True


def _wake_all(waiters: list[Waiter]) -> None:
    for waiter in waiters:
        waiter.wake()


def _accept(core: EndpointCore, entry: Entry) -> Any:
    """Check a received message against the contract; adopt the endpoints inside it."""
    message, carried = entry
    if type(message) is UndeliverableMessage:  # read on the way, dropped (see the error)
        raise message
    try:
        core.checker.check_receive(message)
    except ProtocolViolation as violation:
        core.fail(violation)
        raise
    if carried:
        _adopt(core, carried)
    return message


def _adopt(core: EndpointCore, carried: list[Endpoint]) -> None:
    """The endpoints that came inside a message now belong to the receiver's owner."""
    for endpoint in carried:
        inner = endpoint._core
        if inner is not None:
            inner.set_owner(core.owner)


Undo = Callable[[], None]


def _unsend(core: EndpointCore, mark: object, exc: BaseException) -> None:
    """A send failed: a malformed message breaks the channel; otherwise nothing happened."""
    if isinstance(exc, ProtocolViolation):
        core.fail(exc)
    elif core.status is EndpointStatus.OPEN:
        core.checker.rewind(mark)


async def await_any(cores: list[EndpointCore], waiter: FutureWaiter) -> None:
    """Wait for ``waiter`` or for any of the cores' sockets to be readable."""
    # The sockets themselves are held until the readers are removed: a socket closed
    # meanwhile (an end that rejoined its peer) must not free its descriptor's number.
    socks = [sock for sock in (core.sock for core in cores) if sock is not None]
    if not socks:
        await waiter.future
        return
    loop = asyncio.get_running_loop()
    fds = [sock.fileno() for sock in socks]
    for fd in fds:
        loop.add_reader(fd, waiter.wake)
    try:
        await waiter.future
    finally:
        for fd in fds:
            loop.remove_reader(fd)


def _deadline(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if timeout < 0:
        raise UsageError(f"timeout must be >= 0, not {timeout}")
    return time.monotonic() + timeout


def _encode_or_give_back(core: EndpointCore, message: Any) -> Any:
    """Encode for the socket; if that fails (too large, a bad field), the unit of
    credit taken for this send goes back, or ``capacity`` such failures would
    leave the sender waiting for credit forever."""
    try:
        return core.codec.encode_for_socket(message)
    except BaseException:
        core.give_back_credit()
        raise


def _give_back(transfer: _Transfer | None) -> None:
    """A send over the socket failed: the endpoints it carried stay here."""
    if transfer is not None:
        transfer.undo()


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), 0.0)
