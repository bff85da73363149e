"""Creating channels: two connected endpoints under one contract."""

from __future__ import annotations

import itertools
import os
import socket
import threading

from ._codec import DEFAULT_CAPACITY, DEFAULT_MAX_MESSAGE, codec_for
from ._contract import Contract, ContractChecker, Role
from ._endpoint import Endpoint, EndpointCore
from ._errors import UsageError
from ._owner import current_owner
from ._process import check_killed

_ids = itertools.count(1)


def channel(
    contract: Contract,
    *,
    capacity: int = DEFAULT_CAPACITY,
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> tuple[Endpoint, Endpoint]:
    """Create a channel and return its ``(exporter, importer)`` endpoints.

    The contract is written from the exporter's side: ``Msg?`` is received by
    the exporter, ``Msg!`` sent by it. ``capacity`` bounds each end's queue
    (senders wait when it is full); ``max_message`` bounds one encoded message
    in bytes. Both endpoints belong to the calling process until sent away.
    """
    check_killed()
    if not isinstance(contract, Contract):
        raise UsageError(f"channel() needs a Contract, not {type(contract).__name__}")
    if capacity < 1:
        raise UsageError(f"capacity must be at least 1, not {capacity}")
    if max_message < 64:
        raise UsageError(f"max_message must be at least 64 bytes, not {max_message}")
    codec = codec_for(contract, max_message)
    lock = threading.Lock()
    channel_id = f"{os.getpid()}.{next(_ids)}"
    exporter = EndpointCore(
        channel_id, ContractChecker(contract, Role.EXPORTER), codec, capacity, lock
    )
    importer = EndpointCore(
        channel_id, ContractChecker(contract, Role.IMPORTER), codec, capacity, lock
    )
    exporter.peer, importer.peer = importer, exporter
    owner = current_owner.get()
    exporter.set_owner(owner)
    importer.set_owner(owner)
    return Endpoint(exporter), Endpoint(importer)


def socket_endpoint(
    contract: Contract,
    role: Role,
    sock: socket.socket,
    *,
    capacity: int = DEFAULT_CAPACITY,
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> Endpoint:
    """Wrap one end of a connected ``SOCK_SEQPACKET`` pair as an endpoint.

    For runtime plumbing (a domain's control channel); the endpoint has no
    owner, so whoever made it must close it.
    """
    checker = ContractChecker(contract, role)
    core = EndpointCore(
        f"{os.getpid()}.{next(_ids)}",
        checker,
        codec_for(contract, max_message),
        capacity,
        threading.Lock(),
    )
    core.attach_socket(sock)
    return Endpoint(core)
