"""The state of one channel end inside this OS process (internal).

An :class:`EndpointCore` holds the contract checker, the inbox of messages
already delivered to this end, and the transport to the peer: a direct pointer
to the peer's core when both ends live in this OS process, or a
``SOCK_SEQPACKET`` socket when they do not. The public handle over it is
:class:`~sipkernel._core._endpoint.Endpoint`.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from . import _wire
from ._errors import BrokenChannelError, ProtocolViolation, UndeliverableMessage
from ._exit import ExitReason
from ._owner import EndpointOwner
from ._waiter import Waiter

if TYPE_CHECKING:
    from ._codec import MessageCodec
    from ._contract import ContractChecker
    from ._endpoint import Endpoint


class EndpointStatus(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    MOVED = "moved"


UNLIMITED = -1
CLOSE_LINGER = 0.5
"""Seconds a close waits for room to tell the peer its reason (then it just closes)."""

violation_listeners: list[Callable[[ProtocolViolation], None]] = []
"""Told of every contract violation in this OS process (the kernel, or a domain's runtime)."""

# An inbox entry: the message, and the endpoints that travelled inside it.
Entry = tuple[Any, "list[Endpoint] | None"]


class EndpointCore:
    """The state of one channel end inside this OS process (internal)."""

    __slots__ = (
        "__weakref__",
        "broken",
        "capacity",
        "channel_id",
        "checker",
        "codec",
        "credit",
        "inbox",
        "lock",
        "owner",
        "peer",
        "recv_waiters",
        "retired",
        "sending_async",
        "sock",
        "space_waiters",
        "spin_misses",
        "spin_paused_until",
        "status",
        "unacked",
        "write_lock",
    )

    def __init__(
        self,
        channel_id: str,
        checker: ContractChecker,
        codec: MessageCodec,
        capacity: int,
        lock: threading.Lock,
    ) -> None:
        self.channel_id = channel_id
        self.checker = checker
        self.codec = codec
        self.capacity = capacity
        self.lock = lock
        self.inbox: collections.deque[Entry] = collections.deque()
        self.peer: EndpointCore | None = None
        self.sock: socket.socket | None = None
        self.sending_async = 0
        """Async sends waiting on the loop to finish writing to the socket (under
        ``write_lock``): while there are any, the end does not rejoin its peer."""
        self.retired: socket.socket | None = None
        """The socket this end used before it rejoined its peer in memory (see
        ``_rejoin``): kept open until the end closes, as a reader blocked on it
        when it was retired may still be polling its descriptor."""
        self.recv_waiters: list[Waiter] = []
        self.space_waiters: list[Waiter] = []
        self.status = EndpointStatus.OPEN
        self.broken: ExitReason | None = None
        self.owner: EndpointOwner | None = None
        self.write_lock = threading.Lock()
        self.spin_misses = 0
        """Spins in a row during which this thread got under half the CPU."""
        self.spin_paused_until = 0
        """``perf_counter_ns`` time before which a receive blocks without spinning."""
        self.credit = UNLIMITED
        """Over a socket: how many more messages the peer has room for (or UNLIMITED)."""
        self.unacked = 0
        """Over a socket: messages consumed here that the peer has not been credited for."""

    # -- ownership ---------------------------------------------------------------

    def set_owner(self, owner: EndpointOwner | None) -> None:
        if self.owner is not None:
            self.owner.release(self)
        self.owner = owner
        if owner is not None:
            owner.adopt(self)

    # -- delivery into this end ------------------------------------------------------

    def mark_broken(self, reason: ExitReason) -> list[Waiter]:
        """The peer is gone (lock held); returns the waiters to wake."""
        if self.broken is None:
            self.broken = reason
        self.peer = None
        waiters = self.recv_waiters + self.space_waiters
        self.recv_waiters, self.space_waiters = [], []
        return waiters

    # -- closing -------------------------------------------------------------------

    def close(self, reason: ExitReason) -> None:
        """Close this end; the peer's next receive raises ``BrokenChannelError(reason)``."""
        with self.lock:
            if self.status is not EndpointStatus.OPEN:
                return
            self.status = EndpointStatus.CLOSED
            waiters = self.recv_waiters + self.space_waiters
            self.recv_waiters, self.space_waiters = [], []
            peer, self.peer = self.peer, None
            if peer is not None:
                waiters += peer.mark_broken(reason)
            dropped = list(self.inbox)
            self.inbox.clear()
        _wake_all(waiters)
        if self.sock is not None:
            self._close_socket(reason)
        if self.retired is not None:
            self.retired.close()
        self.set_owner(None)
        _close_carried(dropped, reason)

    def _close_socket(self, reason: ExitReason) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        if self.broken is None:
            payload = self.codec.encode_reason(reason)
            record = bytes((_wire.KIND_CLOSE,)) + payload
            # If the peer is gone or not reading, end-of-file tells it the same.
            with self.write_lock, contextlib.suppress(_wire.PeerVanished, TimeoutError, OSError):
                _wire.send_record(sock, record, [], CLOSE_LINGER)
        # Closing a UNIX socket with unread data makes the peer's reads fail with
        # ECONNRESET, losing what we sent it: stop its sends, discard what came, close.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)
        _wire.discard_pending(sock)
        sock.close()

    def fail(self, violation: ProtocolViolation) -> None:
        """Break the channel after a contract violation at this end."""
        if self.status is EndpointStatus.OPEN:
            for listener in violation_listeners:
                listener(violation)
        self.close(ExitReason.protocol_violation(str(violation)))

    # -- the transport -------------------------------------------------------------------

    def attach_socket(self, sock: socket.socket) -> None:
        self.sock = sock

    # -- the socket transport (the ends are in different OS processes) ------------------

    def socket_or_broken(self) -> socket.socket:
        sock = self.sock
        if sock is None:
            reason = self.broken or ExitReason.peer_gone("the peer is gone")
            raise BrokenChannelError(broken_text(reason), reason)
        return sock

    def vanished(self) -> BrokenChannelError:
        """A send found the socket closed: learn why, keeping what the peer sent first.

        The peer may have closed on purpose (its close record, with the reason,
        is still in our receive buffer) or its OS process may have died. Messages
        it sent before that are queued here, so none is lost.
        """
        reason = self._drain_until_closed() or ExitReason.peer_gone("the peer's OS process is gone")
        with self.lock:
            _wake_all(self.mark_broken(reason))
        broken = self.broken or reason
        return BrokenChannelError(broken_text(broken), broken)

    def _drain_until_closed(self) -> ExitReason | None:
        while self.sock is not None:
            try:
                entry = self._next_entry(block=False)
            except BrokenChannelError as broken:
                return broken.reason
            except UndeliverableMessage as undelivered:
                entry = (undelivered, None)  # the receiver hears of it in its turn
            except (_wire.PeerVanished, ProtocolViolation, OSError):
                return None
            if entry is None:
                return None
            with self.lock:
                self.inbox.append(entry)
        return None

    def read_entry(self, *, block: bool) -> Entry | None:
        """Read one message from the socket (None if not ``block`` and none waits).

        Credit records on the way are counted. A close record or end-of-file
        raises ``BrokenChannelError``; an undecodable message raises
        ``ProtocolViolation`` and breaks the channel.
        """
        try:
            return self._next_entry(block=block)
        except _wire.PeerVanished:
            raise self.vanished() from None

    def _next_entry(self, *, block: bool) -> Entry | None:
        codec = self.codec
        while True:
            sock = self.sock
            if sock is None:
                return None
            try:
                if codec.carries_endpoints:
                    record = _wire.recv_record(sock, block=block)
                    if record is None:
                        return None
                    kind, payload, fds = record.kind, record.payload, record.fds
                else:  # the hot path: no Record, no descriptors
                    data = _wire.recv_plain(sock, block=block)
                    if data is None:
                        return None
                    kind, payload, fds = data[0], data[1:], _NO_FDS
            except _wire.PeerVanished:
                if self.sock is not sock:
                    return None  # the end rejoined its peer in memory (or moved) meanwhile
                raise
            if kind == _KIND_CREDIT:
                self.credit += _credit_count(payload)
                continue
            if kind == _KIND_CLOSE:
                self._closed_by_peer(payload)
            try:
                return codec.decode_from_socket(payload, fds)
            except ProtocolViolation as violation:
                self.fail(violation)
                raise
            except UndeliverableMessage as undelivered:
                self._undelivered(undelivered)

    def _undelivered(self, undelivered: UndeliverableMessage) -> NoReturn:
        """A message could not be delivered here (see ``UndeliverableMessage``).

        With one state in the contract, no message changes what may follow, so
        the channel goes on: the message counts as taken (its sender gets the
        credit back) and the receiver hears why it is missing (at once, or as
        an inbox entry when it was read on the way). Otherwise the two ends
        would disagree on the state from here on: the channel breaks.
        """
        if len(self.checker.contract.states) == 1:
            self.consumed()
            raise undelivered
        violation = ProtocolViolation(str(undelivered), by_peer=True)
        self.fail(violation)
        raise violation from undelivered

    def _closed_by_peer(self, payload: bytes) -> NoReturn:
        """The peer's close record: remember its reason and raise it."""
        reason = self.codec.decode_reason(payload)
        with self.lock:
            _wake_all(self.mark_broken(reason))
        raise BrokenChannelError(broken_text(reason), reason)

    # -- flow control over a socket (the capacity, in messages) ---------------------------

    def take_credit(self) -> bool:
        """Use one unit of credit for a send; False if the peer's queue is full."""
        if self.credit == UNLIMITED:
            return True
        if self.credit == 0:
            return False
        self.credit -= 1
        return True

    def give_back_credit(self) -> None:
        """A send that took credit did not happen."""
        if self.credit != UNLIMITED:
            self.credit += 1

    def absorb(self) -> None:
        """Read what is waiting (credit, messages into the inbox) without blocking."""
        while True:
            try:
                entry = self.read_entry(block=False)
            except UndeliverableMessage as undelivered:
                entry = (undelivered, None)  # the receiver hears of it in its turn
            if entry is None:
                return
            with self.lock:
                self.inbox.append(entry)

    def consumed(self) -> None:
        """A message was taken here: credit the peer once half the capacity is used."""
        if self.credit == UNLIMITED or self.sock is None:
            return
        self.unacked += 1
        if self.unacked >= (self.capacity // 2 or 1):
            self._send_credit()

    def _send_credit(self) -> None:
        record = bytes((_wire.KIND_CREDIT,)) + str(self.unacked).encode()
        try:
            with self.write_lock:
                sock = self.sock  # looked at under the lock: it may have rejoined its peer
                if sock is None:
                    return
                _wire.send_record(sock, record, [], 0)
        except (_wire.PeerVanished, TimeoutError, OSError):
            return  # keep counting: the next message taken tries again
        self.unacked = 0


_KIND_CREDIT = _wire.KIND_CREDIT
_KIND_CLOSE = _wire.KIND_CLOSE
_NO_FDS: list[int] = []


def _credit_count(payload: bytes) -> int:
    try:
        count = int(payload)
    except ValueError:
        return 0
    return max(count, 0)


def broken_text(reason: ExitReason) -> str:
    return f"the peer is gone ({reason.describe()})"


def _wake_all(waiters: list[Waiter]) -> None:
    for waiter in waiters:
        waiter.wake()


def _close_carried(entries: list[Entry], reason: ExitReason) -> None:
    for _, carried in entries:
        for endpoint in carried or ():
            endpoint.close_with(
                ExitReason.peer_gone(f"dropped in a closed inbox: {reason.describe()}")
            )
