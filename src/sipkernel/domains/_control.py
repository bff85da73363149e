"""The control channel between the kernel and one ``process`` domain.

It is an ordinary sipkernel channel over the domain's socket: the kernel sends
``Start``/``Kill``/``Stop`` (and ``LoadScript`` where the domain must run the
kernel's script itself); the domain answers ``Exited`` for every process it
ran. Endpoints handed to a new process ride inside ``Start`` and so move
directly to the domain.
"""

from __future__ import annotations

import msgspec

from .._core._contract import Contract
from .._core._endpoint import Endpoint
from .._core._exit import ExitReason


class Start(msgspec.Struct, tag=True):
    pid: int
    name: str
    module: str
    qualname: str
    is_async: bool
    args: bytes
    endpoints: list[Endpoint]
    exit_signals: Endpoint | None = None


class Kill(msgspec.Struct, tag=True):
    pid: int
    reason: ExitReason


class LoadScript(msgspec.Struct, tag=True):
    """Run the kernel's ``__main__`` script here as ``__mp_main__`` (once)."""

    path: str


class Stop(msgspec.Struct, tag=True):
    grace: float


class Exited(msgspec.Struct, tag=True):
    pid: int
    reason: ExitReason


class Violated(msgspec.Struct, tag=True):
    """A process of the domain broke (or saw a peer break) a contract."""

    pid: int | None
    name: str
    detail: str


DOMAIN_CONTROL = Contract(
    "DomainControl",
    "state Up: Start? -> Up | Kill? -> Up | LoadScript? -> Up | Stop? -> Up"
    " | Exited! -> Up | Violated! -> Up;",
    [Start, Kill, LoadScript, Stop, Exited, Violated],
)
"""Exporter: the domain. Importer: the kernel. One state; both may always send."""
