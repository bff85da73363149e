"""The state of a channel end: a carried endpoint whose contract cannot be found on arrival.

Over a socket, a message may carry an endpoint whose contract's module the
receiving OS process cannot import. On a one-state contract that message is
dropped alone (``UndeliverableMessage``); on any other it breaks the channel.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import msgspec
import pytest

import sipkernel as sk
from procs import CARRIER, ECHO, STREAM, Carry
from sipkernel._core._channel import socket_endpoint
from sipkernel._core._contract import Role

pytestmark = pytest.mark.timeout(30)


class Hand(msgspec.Struct, tag=True):
    ep: sk.Endpoint


class Thanks(msgspec.Struct, tag=True):
    pass


HANDOVER = sk.Contract(
    "Handover", "state Wait: Hand? -> Got; state Got: Thanks! -> Wait;", [Hand, Thanks]
)
"""Two states: a dropped ``Hand`` would leave the ends disagreeing on the state."""


@contextlib.contextmanager
def _socket_channel(contract: sk.Contract) -> Iterator[tuple[sk.Endpoint, sk.Endpoint]]:
    """(exporter, importer) over a socket pair, as between two OS processes."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    exporter = socket_endpoint(contract, Role.EXPORTER, a)
    importer = socket_endpoint(contract, Role.IMPORTER, b)
    try:
        yield exporter, importer
    finally:  # nobody owns these ends: close them here
        exporter.close()
        importer.close()


def _unknown_here(monkeypatch: pytest.MonkeyPatch, contract: sk.Contract) -> None:
    """From now on, ``contract`` cannot be found when an endpoint of it arrives."""
    lookup = sk.Contract.lookup

    def failing(name: str, module: str) -> sk.Contract:
        if (module, name) == contract.ref:
            raise sk.ContractDefinitionError(f"cannot import module {module!r}")
        return lookup(name, module)

    monkeypatch.setattr(sk.Contract, "lookup", staticmethod(failing))


def test_on_a_one_state_channel_an_undeliverable_message_is_dropped_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost_peer, lost = sk.channel(STREAM)
    kept_peer, kept = sk.channel(ECHO)
    with _socket_channel(CARRIER) as (exporter, importer):
        importer.send(Carry(lost, label="lost"))
        importer.send(Carry(kept, label="kept"))
        _unknown_here(monkeypatch, STREAM)
        with pytest.raises(sk.UndeliverableMessage, match="contract 'Stream'"):
            exporter.recv(timeout=5)
        arrived = exporter.recv(timeout=5)  # the channel goes on
        assert arrived.label == "kept"
        assert not kept_peer.peer_gone  # the endpoint it carried arrived alive
        arrived.ep.close()
    with pytest.raises(sk.BrokenChannelError):  # the dropped end was closed
        lost_peer.recv(timeout=5)


def test_on_other_channels_an_undeliverable_message_breaks_the_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, carried = sk.channel(STREAM)
    with _socket_channel(HANDOVER) as (exporter, importer):
        importer.send(Hand(carried))
        _unknown_here(monkeypatch, STREAM)
        with pytest.raises(sk.ProtocolViolation, match="contract 'Stream'") as caught:
            exporter.recv(timeout=5)
        assert caught.value.by_peer
        with pytest.raises(sk.BrokenChannelError):
            importer.recv(timeout=5)
