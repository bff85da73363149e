"""sipkernel: software-isolated processes for Python.

Programs are small processes that share nothing and talk over typed,
contract-checked channels; how strongly each process is isolated is chosen
when it is deployed (``local``, ``process``, ...), not in its code.

The public surface is exactly ``__all__``; everything in underscore modules is
internal.
"""

import typing as _typing

from ._lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:
    from ._core._channel import channel
    from ._core._contract import Contract, ContractChecker, Direction, Role, Transition
    from ._core._domain import Domain, DomainHost, domain_kinds, register_domain_kind
    from ._core._endpoint import Endpoint
    from ._core._errors import (
        BrokenChannelError,
        ChannelError,
        ClosedEndpointError,
        ContractDefinitionError,
        DomainError,
        EndpointMovedError,
        JoinTimeout,
        KernelClosedError,
        LinkedExit,
        MessageTooLarge,
        NoLiveChannels,
        NotImportableError,
        ProcessError,
        ProcessFailed,
        ProtocolViolation,
        ReceiveTimeout,
        RegistryError,
        SipkernelError,
        UndeliverableMessage,
        UnknownDomainError,
        UsageError,
    )
    from ._core._events import Event, EventBus, EventKind, EventStream
    from ._core._exit import ExitKind, ExitReason
    from ._core._kernel import ExitSignal, Kernel
    from ._core._process import Monitor, ProcessContext, ProcessHandle, current
    from ._core._select import aselect, select
    from ._supervisor import Supervisor
    from ._supervisor_spec import ChildRestart, ChildSpec, Restart, Strategy, SupervisorSpec

__version__ = "0.1.0"

__all__ = [
    "BrokenChannelError",
    "ChannelError",
    "ChildRestart",
    "ChildSpec",
    "ClosedEndpointError",
    "Contract",
    "ContractChecker",
    "ContractDefinitionError",
    "Direction",
    "Domain",
    "DomainError",
    "DomainHost",
    "Endpoint",
    "EndpointMovedError",
    "Event",
    "EventBus",
    "EventKind",
    "EventStream",
    "ExitKind",
    "ExitReason",
    "ExitSignal",
    "JoinTimeout",
    "Kernel",
    "KernelClosedError",
    "LinkedExit",
    "MessageTooLarge",
    "Monitor",
    "NoLiveChannels",
    "NotImportableError",
    "ProcessContext",
    "ProcessError",
    "ProcessFailed",
    "ProcessHandle",
    "ProtocolViolation",
    "ReceiveTimeout",
    "RegistryError",
    "Restart",
    "Role",
    "SipkernelError",
    "Strategy",
    "Supervisor",
    "SupervisorSpec",
    "Transition",
    "UndeliverableMessage",
    "UnknownDomainError",
    "UsageError",
    "__version__",
    "aselect",
    "channel",
    "current",
    "domain_kinds",
    "register_domain_kind",
    "select",
]


__getattr__ = _lazy_names(__name__, dict.fromkeys(__all__, "._api"))


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
