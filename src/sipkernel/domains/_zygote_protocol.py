"""Messages between the kernel and its zygote (plain msgspec over a SEQPACKET socket)."""

from __future__ import annotations

import socket

import msgspec

from .._core import _wire


class Fork(msgspec.Struct, tag=True):
    """Fork a new domain; its control socket rides along as SCM_RIGHTS.

    ``payload`` is opaque data for a zygote that extends this one (a domain
    kind of its own), and more descriptors may follow the control socket.
    """

    request: int
    fresh_exec: bool = False
    rlimits: list[tuple[int, int]] = []
    payload: bytes | None = None


class LoadMain(msgspec.Struct, tag=True):
    """Import the kernel's ``__main__`` script (as ``__mp_main__``) before forking."""

    request: int
    path: str


class Forked(msgspec.Struct, tag=True):
    request: int
    pid: int
    error: str | None = None
    payload: bytes | None = None
    """Opaque data from a zygote that extends this one."""


class MainLoaded(msgspec.Struct, tag=True):
    request: int
    error: str | None = None


class Reaped(msgspec.Struct, tag=True):
    """A domain ended; ``status`` is its ``waitpid`` status."""

    pid: int
    status: int


ToZygote = Fork | LoadMain
FromZygote = Forked | MainLoaded | Reaped

_to_zygote = msgspec.msgpack.Decoder(ToZygote)
_from_zygote = msgspec.msgpack.Decoder(FromZygote)


def send(sock: socket.socket, message: msgspec.Struct, fds: list[int] | None = None) -> None:
    record = bytes((_wire.KIND_MESSAGE,)) + msgspec.msgpack.encode(message)
    _wire.send_record(sock, record, fds or [], None)


def recv_request(sock: socket.socket) -> tuple[ToZygote, list[int]] | None:
    """A request from the kernel, or None if none is waiting."""
    record = _wire.try_recv_record(sock)
    if record is None:
        return None
    return _to_zygote.decode(record.payload), record.fds


def recv_request_blocking(sock: socket.socket) -> tuple[ToZygote, list[int]] | None:
    """Block for a request (a spare waiting for its assignment); None at end-of-file."""
    try:
        record = _wire.recv_record(sock, block=True)
    except _wire.PeerVanished:
        return None
    if record is None:
        return None
    return _to_zygote.decode(record.payload), record.fds


def recv_reply(sock: socket.socket) -> FromZygote:
    """Block for the zygote's next message."""
    while True:
        record = _wire.try_recv_record(sock)
        if record is not None:
            reply: FromZygote = _from_zygote.decode(record.payload)
            return reply
        _wire.wait_fd(sock.fileno(), 0x001, None)
