"""Channel ends that meet again in one OS process go back to memory.

Once one end of a channel leaves for another OS process, the two ends talk
over a socket pair. When both end up in the same OS process again (the
common case: the kernel makes a channel and starts both of its processes in
one domain, each with one end), the socket is a detour through the OS for
every message. This module links such ends in memory again, as if the
channel had been made there.

It is opportunistic, and takes the chance only when nothing can be lost or
reordered: the end already here is idle on the sending side (its write lock
is free), and the socket holds nothing in either direction. Then both ends
switch under the resident end's lock, and the arriving end's socket is
closed, so that anyone still blocked on the resident end's socket reads its
end and, seeing that the end no longer has a socket, starts over in memory
(``EndpointCore`` readers and writers check the socket they used). Otherwise
the ends keep their socket, which is always correct.
"""

from __future__ import annotations

import socket
import weakref

from ._endpoint_core import UNLIMITED, EndpointCore, EndpointStatus

_resident: weakref.WeakValueDictionary[tuple[str, str], EndpointCore] = (
    weakref.WeakValueDictionary()
)
"""Socket-backed ends in this OS process, by channel and role."""


def register(core: EndpointCore) -> None:
    """``core`` talks over a socket from here: an arriving peer may find it."""
    _resident[(core.channel_id, core.checker.role.value)] = core


def arrived(core: EndpointCore) -> bool:
    """``core`` just came into this OS process: link it with its peer if that is
    here and idle (True), or register it for its peer to find (False)."""
    if core.sock is None:
        return False
    peer = _resident.get((core.channel_id, core.checker.role.peer.value))
    if peer is not None and _link(core, peer):
        return True
    register(core)
    return False


def _link(core: EndpointCore, peer: EndpointCore) -> bool:
    """Link ``core`` (not yet seen by anyone else) with the resident ``peer``."""
    if not peer.write_lock.acquire(blocking=False):
        return False  # a send is on its way through the socket
    try:
        with peer.lock:
            mine, theirs = core.sock, peer.sock
            if mine is None or theirs is None or not (_usable(peer) and _usable(core)):
                return False
            if not (_empty(theirs) and _empty(mine)):
                return False  # messages in flight: they must arrive through the socket
            core.lock = peer.lock  # one lock for the pair, as channel() makes them
            core.peer, peer.peer = peer, core
            core.sock = peer.sock = None
            peer.retired = theirs
            for end in (core, peer):
                end.credit, end.unacked = UNLIMITED, 0
    finally:
        peer.write_lock.release()
    mine.close()  # the resident end's socket now reads end-of-file: its waiters wake
    return True


def _usable(core: EndpointCore) -> bool:
    return (
        core.status is EndpointStatus.OPEN
        and core.peer is None
        and core.broken is None
        and not core.sending_async
    )


def _empty(sock: socket.socket) -> bool:
    """Nothing waits to be read on ``sock``."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False  # a message (or end-of-file: the peer is gone)
