"""Everything public, imported at once, with the domain kinds registered.

``import sipkernel`` stays light (the ``sipkernel sandbox`` command starts
without asyncio or the kernel); the first use of a public name imports this
module, which brings in the kernel core, registers the ``local``, ``process``
and ``sandbox`` kinds, and marks the public objects as living in ``sipkernel``.
"""

import sys

from . import domains as _domains  # registers the built-in domain kinds
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
from .sandbox._domain import SandboxDomain as _SandboxDomain

register_domain_kind(_SandboxDomain.kind, _SandboxDomain)
del _domains

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
    "aselect",
    "channel",
    "current",
    "domain_kinds",
    "register_domain_kind",
    "select",
]

# Public classes and functions say they live in the package, where users import
# them from (so tracebacks and exit reasons read ``sipkernel.ProtocolViolation``),
# and the package holds them all from now on (msgspec resolves a Struct's
# annotations in the namespace of the module it says it lives in).
_package = sys.modules["sipkernel"]
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        _obj.__module__ = "sipkernel"
    setattr(_package, _name, _obj)
del _name, _obj, _package
