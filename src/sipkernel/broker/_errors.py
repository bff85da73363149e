"""The errors a capability's holder sees, and how a reply becomes one."""

from __future__ import annotations

from typing import Any

from .._core._errors import SipkernelError
from ._messages import Failed, IOFailed, Refused


class CapabilityRefused(SipkernelError, PermissionError):
    """The grant does not allow what was asked (the kernel logged an audit line).

    Raised inside the asking process, whatever its domain; a handler of an
    application service raises it to refuse a request. It is a
    ``PermissionError``, so ``except PermissionError`` catches it too.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class ServiceFailed(SipkernelError, RuntimeError):
    """An application service's handler failed on this request (see the kernel's log)."""


def raise_for(reply: Any, filename: str | None = None) -> Any:
    """Return ``reply``, or raise the error it stands for.

    ``Refused`` raises :class:`CapabilityRefused`; ``IOFailed`` the ``OSError``
    subclass of its errno (``FileNotFoundError``, ``IsADirectoryError``, ...);
    ``Failed`` raises :class:`ServiceFailed`.
    """
    if isinstance(reply, Refused):
        raise CapabilityRefused(reply.reason)
    if isinstance(reply, IOFailed):
        if filename is None:
            raise OSError(reply.code, reply.message)
        raise OSError(reply.code, reply.message, filename)
    if isinstance(reply, Failed):
        raise ServiceFailed(reply.error)
    return reply
