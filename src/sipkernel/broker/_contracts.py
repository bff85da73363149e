"""The contracts of the capabilities: what a holder may ask, and what it may be told.

Written from the broker's side (the exporter): ``Msg?`` is a request the
broker receives, ``Msg!`` a reply it sends. Both ends check every message,
so a holder cannot ask what its contract does not list: a directory's
contract has no way to name a host path, a file's none to name another file,
a TCP connection's none to name another address.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import msgspec

from .._core._contract import Contract, Direction
from .._core._errors import UsageError
from ._messages import (
    Connect,
    Connected,
    Data,
    Disconnect,
    Disconnected,
    Failed,
    GetSize,
    IOFailed,
    ListDir,
    Listing,
    ReadAt,
    ReadFile,
    Recv,
    Refused,
    Send,
    Size,
    StatPath,
    Status,
    Truncate,
    WriteAt,
    WriteFile,
    Written,
)

DIRECTORY = Contract(
    "Directory",
    """
    state Ready:
        ListDir? -> (Listing! or Refused! or IOFailed!) -> Ready
      | StatPath? -> (Status! or Refused! or IOFailed!) -> Ready
      | ReadFile? -> (Data! or Refused! or IOFailed!) -> Ready
      | WriteFile? -> Refused! -> Ready;
    """,
    [ListDir, Listing, StatPath, Status, ReadFile, Data, WriteFile, Refused, IOFailed],
)
"""A read-only directory: list, stat and read beneath it; a write is always refused."""

FILE = Contract(
    "File",
    """
    state Ready:
        ReadAt? -> (Data! or Refused! or IOFailed!) -> Ready
      | WriteAt? -> (Written! or Refused! or IOFailed!) -> Ready
      | Truncate? -> (Size! or Refused! or IOFailed!) -> Ready
      | GetSize? -> (Size! or IOFailed!) -> Ready;
    """,
    [ReadAt, Data, WriteAt, Written, Truncate, Size, GetSize, Refused, IOFailed],
)
"""Exactly one file: read, write at an offset or at the end, truncate, size."""

TCP = Contract(
    "TcpConnection",
    """
    state Idle: Connect? -> Dialing;
    state Dialing: Connected! -> Open | IOFailed! -> Idle;
    state Open:
        Send? -> (Written! or IOFailed!) -> Open
      | Recv? -> (Data! or IOFailed!) -> Open
      | Disconnect? -> Disconnected! -> Idle;
    """,
    [Connect, Connected, Send, Recv, Data, Written, Disconnect, Disconnected, IOFailed],
)
"""A TCP connection to the one granted address, relayed by the broker."""

SERVICE_REPLIES: tuple[type[msgspec.Struct], ...] = (Refused, IOFailed, Failed)
"""What an application service may answer besides its own replies."""


def service_contract(
    name: str,
    requests: Sequence[type[msgspec.Struct]],
    replies: Sequence[type[msgspec.Struct]],
) -> Contract:
    """The contract of an application's capability service: each request gets one reply.

    ``state Ready: (Req1? or Req2?) -> (Rep1! or Refused! or IOFailed! or Failed!) -> Ready;``

    Call it at module level, as for any contract: another domain finds a
    contract by its module and name, so the module that makes it must make it
    when imported. The contract belongs to the calling module.
    """
    if not requests or not replies:
        raise UsageError("a service contract needs at least one request and one reply type")
    asked = " or ".join(f"{t.__name__}?" for t in requests)
    answered = " or ".join(f"{t.__name__}!" for t in [*replies, *SERVICE_REPLIES])
    spec = f"state Ready: ({asked}) -> ({answered}) -> Ready;"
    module = str(sys._getframe(1).f_globals.get("__name__", "__main__"))
    if module == "__mp_main__":  # a script re-run in a domain stands for the kernel's __main__
        module = "__main__"
    return Contract(name, spec, [*requests, *replies, *SERVICE_REPLIES], module=module)


def reply_types(contract: Contract) -> tuple[type, ...]:
    """Every message the exporter of ``contract`` may send."""
    return tuple({t.message for t in contract.transitions if t.direction is Direction.OUT})


def check_service_contract(contract: Contract) -> None:
    """Refuse a contract ``service_contract`` did not make (it could not carry a refusal)."""
    if not isinstance(contract, Contract):
        raise UsageError(f"grant_service needs a Contract, not {type(contract).__name__}")
    missing = [t.__name__ for t in SERVICE_REPLIES if t not in contract.message_types]
    if missing:
        raise UsageError(
            f"contract {contract.name} cannot answer {', '.join(missing)}: "
            "make it with sipkernel.broker.service_contract()"
        )
