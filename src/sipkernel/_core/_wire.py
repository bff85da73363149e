"""Framing of channel traffic on a UNIX ``SOCK_SEQPACKET`` socket.

Each record starts with one kind byte:

* ``M`` -- the last (often only) fragment of a message,
* ``P`` -- a fragment with more to follow,
* ``C`` -- the sender closed its endpoint; the payload is its encoded reason;
* ``K`` -- credit: the sender consumed that many messages, so its peer may send
  that many more (the channel's capacity, counted in messages).

File descriptors (endpoints moving inside the message) ride on the first
fragment as ``SCM_RIGHTS``. Records are atomic, so a record is never split or
merged by the kernel, and a broken peer shows up as end-of-file.
"""

from __future__ import annotations

import array
import asyncio
import errno
import math
import os
import select
import socket
import time
from collections.abc import Callable
from typing import Final

from ._waiter import in_slices

FRAGMENT: Final = 60 * 1024
MAX_FDS: Final = 64
KIND_MESSAGE: Final = ord("M")
KIND_PARTIAL: Final = ord("P")
KIND_CLOSE: Final = ord("C")
KIND_CREDIT: Final = ord("K")

_ANCILLARY = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
# Plain ints: or-ing the socket module's flag enums costs microseconds per call.
_RECV_FLAGS: Final = int(socket.MSG_CMSG_CLOEXEC)
_DONTWAIT: Final = int(socket.MSG_DONTWAIT)
_SEND_FLAGS: Final = int(socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
_MESSAGE_PREFIX: Final = b"M"


class PeerVanished(Exception):
    """End of file, or the socket was reset: the peer end is gone."""


class Record:
    """One complete frame as received: kind, payload and attached fds."""

    __slots__ = ("fds", "kind", "payload")

    def __init__(self, kind: int, payload: bytes, fds: list[int]) -> None:
        self.kind = kind
        self.payload = payload
        self.fds = fds


def new_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of close-on-exec SEQPACKET sockets."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def frames(kind: int, payload: bytes) -> list[bytes]:
    """Split a payload into records of at most ``FRAGMENT`` bytes."""
    if len(payload) <= FRAGMENT:
        return [bytes((kind,)) + payload]
    view = memoryview(payload)
    chunks = [view[i : i + FRAGMENT] for i in range(0, len(payload), FRAGMENT)]
    return [b"P" + chunk for chunk in chunks[:-1]] + [bytes((kind,)) + chunks[-1]]


def _ancillary(fds: list[int]) -> list[tuple[int, int, bytes]]:
    if not fds:
        return []
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]


def _fds_of(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - (len(data) % fds.itemsize)
            fds.frombytes(data[:usable])
    return list(fds)


# -- blocking side (threads) ---------------------------------------------------


def send_message(
    sock: socket.socket, payload: bytes, fds: list[int], timeout: float | None
) -> None:
    """Send one message (fragmented if large), waiting at most ``timeout`` for space."""
    if try_send(sock, payload, fds):
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    for i, record in enumerate(frames(KIND_MESSAGE, payload)):
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        send_record(sock, record, fds if i == 0 else [], remaining)


def try_send(sock: socket.socket, payload: bytes, fds: list[int]) -> bool:
    """Send a message of one record if the socket takes it now; False if it would
    have to wait for buffer space, or needs fragments (nothing was sent then)."""
    if len(payload) > FRAGMENT:
        return False
    try:  # the common case: one record
        if fds:
            sock.sendmsg([_MESSAGE_PREFIX, payload], _ancillary(fds), _SEND_FLAGS)
        else:
            sock.send(_MESSAGE_PREFIX + payload, _SEND_FLAGS)
        return True
    except BlockingIOError:
        return False
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise PeerVanished from exc


def send_record(sock: socket.socket, record: bytes, fds: list[int], timeout: float | None) -> None:
    """Send one record, waiting at most ``timeout`` for buffer space."""
    while True:
        try:
            sock.sendmsg([record], _ancillary(fds), _SEND_FLAGS)
            return
        except BlockingIOError:
            if not wait_fd(sock.fileno(), select.POLLOUT, timeout):
                raise TimeoutError("channel full") from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise PeerVanished from exc


def wait_fd(fd: int, events: int, timeout: float | None) -> bool:
    poller = select.poll()
    poller.register(fd, events)

    def poll(timeout: float | None) -> bool:
        return bool(poller.poll(None if timeout is None else max(math.ceil(timeout * 1000), 0)))

    return in_slices(poll, timeout, bool)


def try_recv_record(sock: socket.socket) -> Record | None:
    """Receive one whole message without blocking, or None if nothing is waiting."""
    return recv_record(sock, block=False)


def recv_record(sock: socket.socket, *, block: bool, fds: bool = True) -> Record | None:
    """Receive one whole message; without ``block``, None if nothing is waiting.

    With ``fds=False`` no descriptors are accepted: the kernel closes any that a
    peer attached (and the cheaper ``recv`` is used). Once the first fragment is
    here the rest is read blocking: the sender writes a message's fragments
    back to back.
    """
    read = _recv_one if fds else _recv_one_plain
    first = read(sock, 0 if block else _DONTWAIT)
    if first is None:
        return None
    if first.kind != KIND_PARTIAL:
        return first
    return _rest_of(sock, first, read)


def recv_plain(sock: socket.socket, *, block: bool) -> bytes | None:
    """``recv_record(..., fds=False)`` as one ``bytes``: the kind byte, then the payload.

    The hot path of an endpoint whose messages carry no descriptors: one
    ``recv`` and no ``Record`` for a message of one fragment.
    """
    try:
        data = sock.recv(_RECV_SIZE, 0 if block else _DONTWAIT)
    except OSError as exc:
        _nothing_or_vanished(exc)
        return None
    if not data:
        raise PeerVanished
    if data[0] != KIND_PARTIAL:
        return data
    whole = _rest_of(sock, Record(KIND_PARTIAL, data[1:], _NO_FDS), _recv_one_plain)
    return bytes((whole.kind,)) + whole.payload


def _rest_of(sock: socket.socket, first: Record, read: _Reader) -> Record:
    """Read the fragments that follow ``first`` (blocking: they are sent back to back)."""
    parts = [first.payload]
    while True:
        nxt = read(sock, 0)
        if nxt is None:  # pragma: no cover - blocking read never returns None
            continue
        parts.append(nxt.payload)
        if nxt.kind != KIND_PARTIAL:
            return Record(nxt.kind, b"".join(parts), first.fds)


def discard_pending(sock: socket.socket) -> None:
    """Read and drop whatever waits in the socket (fds that came along are closed)."""
    while True:
        try:
            record = _recv_one(sock, _DONTWAIT)
        except (PeerVanished, OSError):
            return
        if record is None:
            return
        for fd in record.fds:
            os.close(fd)


def _recv_one(sock: socket.socket, flags: int) -> Record | None:
    try:
        data, ancdata, _, _ = sock.recvmsg(FRAGMENT + 1, _ANCILLARY, flags | _RECV_FLAGS)
    except OSError as exc:
        _nothing_or_vanished(exc)
        return None
    if not data:
        raise PeerVanished
    return Record(data[0], data[1:], _fds_of(ancdata))


def _recv_one_plain(sock: socket.socket, flags: int) -> Record | None:
    try:
        data = sock.recv(_RECV_SIZE, flags)
    except OSError as exc:
        _nothing_or_vanished(exc)
        return None
    if not data:
        raise PeerVanished
    return Record(data[0], data[1:], _NO_FDS)


def _nothing_or_vanished(exc: OSError) -> None:
    """A failed read: nothing is waiting (return), or the peer is gone (raise)."""
    if isinstance(exc, BlockingIOError):
        return
    if isinstance(exc, ConnectionResetError) or exc.errno in (errno.EBADF, errno.ENOTCONN):
        raise PeerVanished from exc
    raise exc


_NO_FDS: list[int] = []
_RECV_SIZE: Final = FRAGMENT + 1
_Reader = Callable[[socket.socket, int], Record | None]


# -- asyncio side ----------------------------------------------------------------


async def async_send_message(sock: socket.socket, payload: bytes, fds: list[int]) -> None:
    """Send one message from a task (fragmented if large)."""
    for i, record in enumerate(frames(KIND_MESSAGE, payload)):
        await async_send_record(sock, record, fds if i == 0 else [])


async def async_send_record(sock: socket.socket, record: bytes, fds: list[int]) -> None:
    """Send one record from a task, waiting on the loop for buffer space."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            sock.sendmsg([record], _ancillary(fds), _SEND_FLAGS)
            return
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            fd = sock.fileno()
            loop.add_writer(fd, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_writer(fd)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise PeerVanished from exc


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
