"""The wire codec: messages arrive unchanged, as private copies, within and across OS processes.

Property tests draw random ``msgspec.Struct`` message *types* (fields of
scalars, lists, dicts, optionals and nested structs) and random values of
them, send them through a channel and check that the receiver gets an equal
object that shares nothing with the sender's.
"""

from __future__ import annotations

import itertools
import socket
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import procs
import sipkernel as sk
from procs import BUNDLE, ECHO, MIRROR, STREAM, Bundle, Inner, Item, Ping, Pong, Rich

pytestmark = pytest.mark.timeout(60)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOATS = st.floats(allow_nan=False)  # NaN != NaN: equality could not tell a good copy
_names = (f"Generated{n}" for n in itertools.count())


# -- strategies ----------------------------------------------------------------------------

TypeAndValues = tuple[Any, st.SearchStrategy[Any]]

SCALARS: list[TypeAndValues] = [
    (int, INT64),
    (str, st.text(max_size=20)),
    (bytes, st.binary(max_size=20)),
    (bool, st.booleans()),
    (float, FLOATS),
]


def _nested_struct(fields: list[TypeAndValues]) -> TypeAndValues:
    cls = msgspec.defstruct(next(_names), [(f"f{i}", t) for i, (t, _) in enumerate(fields)])
    return cls, st.builds(cls, *[values for _, values in fields])


def _extend(children: st.SearchStrategy[TypeAndValues]) -> st.SearchStrategy[TypeAndValues]:
    return st.one_of(
        children.map(lambda tv: (list[tv[0]], st.lists(tv[1], max_size=4))),
        children.map(
            lambda tv: (dict[str, tv[0]], st.dictionaries(st.text(max_size=4), tv[1], max_size=4))
        ),
        children.map(lambda tv: (tv[0] | None, st.none() | tv[1])),
        st.lists(children, min_size=1, max_size=3).map(_nested_struct),
    )


FIELD_TYPES = st.recursive(st.sampled_from(SCALARS), _extend, max_leaves=6)


@st.composite
def generated_messages(draw: st.DrawFn) -> tuple[sk.Contract, Any]:
    """A fresh tagged message type, a one-message contract for it, and a value."""
    fields = draw(st.lists(FIELD_TYPES, max_size=6))
    name = next(_names)
    cls = msgspec.defstruct(name, [(f"f{i}", t) for i, (t, _) in enumerate(fields)], tag=True)
    contract = sk.Contract(name, f"state Open: {name}? -> Open;", [cls])
    value = draw(st.builds(cls, *[values for _, values in fields]))
    return contract, value


INNERS = st.builds(Inner, INT64, st.text(max_size=10), st.lists(st.text(max_size=5), max_size=3))
RICH = st.builds(
    Rich,
    i=INT64,
    f=FLOATS,
    s=st.text(),
    b=st.binary(max_size=200),
    flag=st.booleans(),
    maybe=st.none() | INT64,
    items=st.lists(INT64, max_size=20),
    mapping=st.dictionaries(st.text(max_size=8), st.lists(st.text(max_size=8), max_size=4)),
    inner=INNERS,
    inners=st.lists(INNERS, max_size=4),
    pair=st.tuples(INT64, st.text(max_size=8)),
)


# -- helpers ---------------------------------------------------------------------------------


def _scramble(obj: Any) -> None:
    """Mutate every mutable container and struct reachable from ``obj``, in place."""
    if isinstance(obj, list):
        for item in obj:
            _scramble(item)
        obj.append(object())
    elif isinstance(obj, dict):
        for item in obj.values():
            _scramble(item)
        obj["\0scrambled"] = object()
    elif isinstance(obj, msgspec.Struct):
        for field in obj.__struct_fields__:
            value = getattr(obj, field)
            _scramble(value)
            if not isinstance(value, list | dict | msgspec.Struct):
                setattr(obj, field, object())


def _snapshot(obj: Any) -> bytes:
    return msgspec.msgpack.encode(obj)


def _shares_nothing_mutable(a: Any, b: Any) -> bool:
    """True if no list, dict or struct object is reachable from both."""

    def mutable_ids(obj: Any, out: set[int]) -> set[int]:
        if isinstance(obj, list | dict | msgspec.Struct):
            out.add(id(obj))
        children: Any = ()
        if isinstance(obj, list | tuple):
            children = obj
        elif isinstance(obj, dict):
            children = obj.values()
        elif isinstance(obj, msgspec.Struct):
            children = [getattr(obj, f) for f in obj.__struct_fields__]
        for child in children:
            mutable_ids(child, out)
        return out

    return not (mutable_ids(a, set()) & mutable_ids(b, set()))


# -- in one OS process -------------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(generated_messages())
def test_random_messages_round_trip_unchanged(generated: tuple[sk.Contract, Any]) -> None:
    contract, message = generated
    receiver, sender = sk.channel(contract)
    sender.send(message)
    received = receiver.recv(timeout=0)
    assert type(received) is type(message)
    assert received == message


@PROPERTY
@given(generated_messages())
def test_random_messages_arrive_as_private_copies(generated: tuple[sk.Contract, Any]) -> None:
    contract, message = generated
    receiver, sender = sk.channel(contract)
    before = _snapshot(message)
    sender.send(message)
    received = receiver.recv(timeout=0)
    assert received is not message
    assert _shares_nothing_mutable(received, message)
    _scramble(received)  # the receiver's changes never reach the sender ...
    assert _snapshot(message) == before


@PROPERTY
@given(generated_messages())
def test_changing_a_sent_message_never_reaches_the_receiver(
    generated: tuple[sk.Contract, Any],
) -> None:
    contract, message = generated
    receiver, sender = sk.channel(contract)
    sent = _snapshot(message)
    sender.send(message)
    _scramble(message)  # ... nor the sender's, made after the send
    assert _snapshot(receiver.recv(timeout=0)) == sent


@PROPERTY
@given(RICH)
def test_rich_messages_round_trip_as_private_copies(message: Rich) -> None:
    server, client = sk.channel(MIRROR)
    before = _snapshot(message)
    client.send(message)
    received = server.recv(timeout=0)
    assert received == message
    assert _shares_nothing_mutable(received, message)
    _scramble(received)
    assert _snapshot(message) == before


def test_exit_reasons_are_serialisable() -> None:
    try:
        raise KeyError("k")
    except KeyError as exc:
        reason = sk.ExitReason.from_exception(exc)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(reason), type=sk.ExitReason)
    assert decoded == reason
    assert decoded.kind is sk.ExitKind.EXCEPTION
    assert "KeyError" in (decoded.exc_type or "")
    assert "raise KeyError" in (decoded.traceback or "")


# -- across OS processes -------------------------------------------------------------------------


def test_rich_messages_round_trip_through_another_os_process(kernel: sk.Kernel) -> None:
    server, client = sk.channel(MIRROR)
    handle = kernel.spawn(procs.mirror, server, domain="process")

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(RICH)
    def round_trip(message: Rich) -> None:
        before = _snapshot(message)
        client.send(message, timeout=10)
        echoed = client.recv(timeout=10)
        assert echoed == message
        assert echoed is not message
        assert _snapshot(message) == before

    round_trip()
    client.close()
    assert handle.join(10).kind is sk.ExitKind.NORMAL


@pytest.mark.parametrize("size", [60 * 1024 - 8, 60 * 1024 + 1, 900 * 1024])
def test_large_messages_cross_os_processes_intact(kernel: sk.Kernel, size: int) -> None:
    """Messages bigger than one socket record travel in fragments and arrive whole."""
    server, client = sk.channel(MIRROR)
    kernel.spawn(procs.amirror, server, domain="process")
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    message = Rich(1, 0.5, "s", payload, True, None, [], {}, Inner(1, "a"), [], (1, "b"))
    for _ in range(3):
        client.send(message, timeout=10)
        assert client.recv(timeout=10) == message


def test_max_message_holds_across_os_processes(kernel: sk.Kernel) -> None:
    receiver, sender = sk.channel(STREAM, max_message=4096)
    ready, report = procs.report_channel()
    kernel.spawn(procs.count_items, receiver, report, domain="process")
    with pytest.raises(sk.MessageTooLarge):
        sender.send(Item(0, b"x" * 8192))
    sender.send(Item(0, b"y" * 1000))
    sender.close()
    result = ready.recv(timeout=10)
    assert (result.ok, result.count, result.kind) == (True, 1, "normal")


# -- endpoints inside containers -------------------------------------------------------------------


def test_a_list_of_endpoints_moves_together() -> None:
    bundle_in, bundle_out = sk.channel(BUNDLE)
    pairs = [sk.channel(ECHO) for _ in range(3)]
    bundle_out.send(Bundle([server for server, _ in pairs], {"three": 3}))
    for server, _ in pairs:
        with pytest.raises(sk.EndpointMovedError):
            server.recv(timeout=0)
    bundle = bundle_in.recv(timeout=0)
    assert bundle.names == {"three": 3}
    for (_, client), server in zip(pairs, bundle.eps, strict=True):
        client.send(Ping(4))
        assert server.recv(timeout=0) == Ping(4)
        server.send(Pong(4))
        assert client.recv(timeout=0) == Pong(4)


def test_a_list_of_endpoints_moves_to_another_os_process(kernel: sk.Kernel) -> None:
    bundle_in, bundle_out = sk.channel(BUNDLE)
    handle = kernel.spawn(procs.adopt_bundle_and_echo, bundle_in, domain="process")
    pairs = [sk.channel(ECHO) for _ in range(3)]
    pairs[2][1].send(Ping(-2))  # queued at a server end before it moves
    bundle_out.send(Bundle([server for server, _ in pairs]))
    for i, (_, client) in enumerate(pairs):
        if i == 2:
            assert client.recv(timeout=10) == Pong(-2)
        for n in range(20):
            client.send(Ping(n))
            assert client.recv(timeout=10) == Pong(n)
        client.close()
    assert handle.join(10).kind is sk.ExitKind.NORMAL


def test_an_endpoint_outside_a_channel_send_cannot_be_encoded() -> None:
    server, _client = sk.channel(ECHO)
    with pytest.raises((TypeError, sk.UsageError)):
        msgspec.msgpack.encode(procs.Carry(server))


# -- frozen flat messages: checked field by field, passed as they are ----------------------------


class Reading(msgspec.Struct, frozen=True, tag=True):
    sensor: int
    value: float
    note: int | None = None


class Label(msgspec.Struct, frozen=True, tag=True):
    text: str


class Tick(msgspec.Struct, frozen=True, tag=True):
    pass


READINGS = sk.Contract(
    "Readings",
    "state Open: Reading? -> Open | Label? -> Open | Tick? -> Open;",
    [Reading, Label, Tick],
)


@pytest.mark.parametrize("message", [Reading(1, 2.5), Reading(1, 2, 3), Label("x" * 100)], ids=repr)
def test_a_frozen_flat_message_is_shared_not_copied(message: Any) -> None:
    receiver, sender = sk.channel(READINGS)
    sender.send(message)
    assert receiver.recv(timeout=0) is message


@pytest.mark.parametrize(
    "message",
    [Reading("1", 2.5), Reading(True, 2.5), Reading(1, "2.5"), Reading(1, 2.5, 4.5)],  # type: ignore[arg-type]
    ids=repr,
)
def test_a_frozen_flat_message_with_a_wrong_field_type_is_a_violation(message: Any) -> None:
    receiver, sender = sk.channel(READINGS)
    with pytest.raises(sk.ProtocolViolation, match="malformed"):
        sender.send(message)
    with pytest.raises(sk.BrokenChannelError):
        receiver.recv(timeout=0)


def test_only_fixed_size_flat_messages_get_a_compiled_check() -> None:
    from sipkernel._core._codec import codec_for

    codec = codec_for(READINGS)
    assert set(codec.plain) == {Reading}  # Label's size depends on its text
    assert set(codec.shareable) == {Reading, Label}  # Tick, with no field, is copied
    check = codec.plain[Reading]
    assert check(Reading(1, 2.0))
    assert check(Reading(1, 2, None))
    assert not check(Reading(1.0, 2.0))  # type: ignore[arg-type]


def test_a_frozen_flat_message_near_the_size_limit_is_still_measured() -> None:
    receiver, sender = sk.channel(READINGS, max_message=256)
    with pytest.raises(sk.MessageTooLarge):
        sender.send(Label("x" * 1000))
    sender.send(Label("fits"))
    assert receiver.recv(timeout=0) == Label("fits")


# -- framing on the socket ------------------------------------------------------------------------


def test_plain_records_arrive_whole_or_not_at_all() -> None:
    from sipkernel._core import _wire

    mine, theirs = _wire.new_pair()
    with mine, theirs:
        assert _wire.recv_plain(theirs, block=False) is None  # nothing waits
        big = bytes(range(256)) * 360  # two fragments
        _wire.send_message(mine, big, [], 5)
        _wire.send_message(mine, b"small", [], 5)
        assert _wire.recv_plain(theirs, block=True) == bytes((_wire.KIND_MESSAGE,)) + big
        assert _wire.recv_plain(theirs, block=False) == b"Msmall"
        mine.shutdown(socket.SHUT_WR)
        with pytest.raises(_wire.PeerVanished):
            _wire.recv_plain(theirs, block=True)
