"""What every serving process shares: the request loop and how an answer is made.

A serving process answers one request at a time, in order, until its holder
goes away (or breaks the contract, which the kernel already logs as a
contract violation) or the broker revokes the grant (which kills it).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from .._core._endpoint import Endpoint
from .._core._errors import BrokenChannelError, ProtocolViolation
from ._audit import refuse
from ._errors import CapabilityRefused
from ._messages import CHUNK, Data, IOFailed

SMALL = 64 * 1024
"""What a read past the size a file had a moment ago asks for (it may have grown)."""


def serve_forever(requests: Endpoint, answer: Callable[[Any], Any]) -> None:
    """Receive each request, send ``answer(request)``; return when the holder is gone."""
    while True:
        try:
            request = requests.recv()
        except (BrokenChannelError, ProtocolViolation):
            return
        reply = answer(request)
        try:
            requests.send(reply)
        except BrokenChannelError:
            return


def guarded(sink: str, by: str, what: str, action: Callable[[], Any]) -> Any:
    """``action()``'s reply; a refusal becomes ``Refused`` (audited), an OSError ``IOFailed``."""
    try:
        return action()
    except CapabilityRefused as refused:
        return refuse(sink, by, what, refused.reason)
    except OSError as exc:
        return io_failed(exc)


def io_failed(exc: OSError) -> IOFailed:
    """The reply standing for an operating-system error (no host path in it)."""
    code = exc.errno or errno.EIO
    return IOFailed(code, exc.strerror or str(exc) or errno.errorcode.get(code, "I/O error"))


def invalid(text: str) -> OSError:
    """An ``EINVAL`` error for a malformed request (a negative offset, say)."""
    return OSError(errno.EINVAL, text)


def read_at(fd: int, offset: int, size: int, file_size: int) -> Data:
    """At most ``size`` (and ``CHUNK``) bytes from ``offset``.

    The buffer is sized by what the file holds: asking the OS for a whole
    chunk to read a few bytes would cost more than the rest of the request.
    """
    if offset < 0 or size < 0:
        raise invalid("offset and size must not be negative")
    remaining = file_size - offset
    want = min(size, CHUNK, remaining if remaining > 0 else SMALL)
    data = os.pread(fd, want, offset)
    return Data(data, eof=offset + len(data) >= file_size)
