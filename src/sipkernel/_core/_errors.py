"""The one hierarchy of sipkernel errors, named by who caused them.

* ``Closed...`` errors mean *you* closed or gave away the resource.
* ``Broken...`` errors mean *the peer* (or its domain) went away; they carry the
  peer's typed reason.
* ``ProtocolViolation`` means *you* broke the channel's contract.
* ``UsageError`` subclasses are bad input at the call site.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._exit import ExitReason


class SipkernelError(Exception):
    """Base class of every error sipkernel raises."""


# -- bad input at the call site ---------------------------------------------


class UsageError(SipkernelError, ValueError):
    """The caller passed something sipkernel cannot accept."""


class NotImportableError(UsageError):
    """The function cannot be found by name in the target domain.

    Lambdas, closures and ``__main__`` functions of a script are rejected at
    ``spawn`` time for domains that must import them by name.
    """


class ContractDefinitionError(UsageError):
    """A contract declaration is malformed (unknown message, bad syntax, ...)."""


class MessageTooLarge(UsageError):
    """An encoded message exceeds the channel's size limit."""


class UnknownDomainError(UsageError):
    """No domain of that name or kind exists in this kernel."""


# -- channels -----------------------------------------------------------------


class ChannelError(SipkernelError):
    """Base class of errors raised by endpoint operations."""


class ClosedEndpointError(ChannelError):
    """You closed this endpoint; it can no longer be used."""


class EndpointMovedError(ClosedEndpointError):
    """You sent this endpoint away (move semantics); it is no longer yours."""


class BrokenChannelError(ChannelError):
    """The peer endpoint is gone: closed, its process exited, or its domain died.

    ``reason`` is the peer's typed exit reason when one is known.
    """

    def __init__(self, message: str, reason: ExitReason | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class ProtocolViolation(ChannelError):
    """A message broke the channel's contract.

    Raised in the process that tried to send (or, if a peer bypassed its own
    check, in the receiver with ``by_peer=True``).
    """

    def __init__(
        self,
        message: str,
        *,
        contract: str = "",
        state: str = "",
        message_type: str = "",
        by_peer: bool = False,
    ) -> None:
        super().__init__(message)
        self.contract = contract
        self.state = state
        self.message_type = message_type
        self.by_peer = by_peer


class UndeliverableMessage(ChannelError):
    """A message carried an endpoint whose contract cannot be found or imported here.

    The message and the endpoints it carried are dropped (their peers see them
    closed). On a channel whose contract has one state, where dropping a
    message cannot put the two ends out of step, the receiver gets this error
    and the channel goes on; on any other channel the receiver gets a
    ``ProtocolViolation`` that says so, and the channel breaks.
    """

    def __init__(self, message: str, payload: bytes = b"") -> None:
        super().__init__(message)
        self.payload = payload
        """The undelivered message, encoded (for the runtime, to tell who it was for)."""


class ReceiveTimeout(ChannelError, TimeoutError):
    """No message arrived before the timeout."""


class NoLiveChannels(BrokenChannelError):
    """A select can never complete: every endpoint's peer is gone."""


# -- processes, domains, kernel ----------------------------------------------


class ProcessError(SipkernelError):
    """Base class of errors about processes."""


class ProcessFailed(ProcessError):
    """A process ended abnormally; ``reason`` says how.

    For an exception exit the remote traceback is in ``reason.traceback`` and
    in this error's message.
    """

    def __init__(self, reason: ExitReason) -> None:
        super().__init__(reason.describe())
        self.reason = reason


class JoinTimeout(ProcessError, TimeoutError):
    """The process did not exit before the timeout."""


class LinkedExit(ProcessError):
    """Raised inside a process whose linked peer exited abnormally."""

    def __init__(self, pid: int, reason: ExitReason) -> None:
        super().__init__(f"linked process {pid} exited: {reason.describe()}")
        self.pid = pid
        self.reason = reason


class DomainError(SipkernelError):
    """A domain could not be started or has failed."""


class KernelClosedError(SipkernelError):
    """The kernel has shut down (or is shutting down)."""


class RegistryError(SipkernelError, KeyError):
    """A name is already registered, or no process has that name."""
