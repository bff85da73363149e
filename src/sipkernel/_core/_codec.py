"""The wire codec: msgspec MessagePack, with endpoints travelling inside messages.

Every message is encoded and decoded, even between two processes of one OS
process: the copy is what guarantees that a receiver never shares a mutable
object with its sender, and the decode is what checks every field's type.

An endpoint inside a message is replaced by a token while encoding:

* ``_LocalToken`` when the message stays in this OS process: the endpoint's
  core is handed over as it is;
* ``TransferRecord`` when the message crosses to another OS process: the
  core's state, the messages already queued at it, and the index of its
  socket among the ``SCM_RIGHTS`` descriptors of the record.
"""

from __future__ import annotations

import io
import itertools
import keyword
import os
import pickle
import socket
import threading
from collections.abc import Callable
from typing import Any

import msgspec
import msgspec.inspect

from . import _rejoin, _wire
from ._contract import Contract, ContractChecker, Role
from ._endpoint import Endpoint, EndpointCore, EndpointStatus, Entry
from ._endpoint_core import UNLIMITED
from ._errors import (
    ClosedEndpointError,
    ContractDefinitionError,
    MessageTooLarge,
    ProtocolViolation,
    UndeliverableMessage,
    UsageError,
)
from ._exit import ExitReason
from ._owner import EndpointOwner

DEFAULT_CAPACITY = 64
DEFAULT_MAX_MESSAGE = 1 << 20


class _LocalToken(msgspec.Struct, tag="sipkernel.local"):
    key: int


class TransferRecord(msgspec.Struct, tag="sipkernel.transfer"):
    """An endpoint on its way to another OS process (internal)."""

    channel: str
    contract: tuple[str, str]
    role: str
    state: str
    capacity: int
    max_message: int
    fd: int
    inbox: list[bytes]
    broken: ExitReason | None = None
    credit: int = UNLIMITED
    unacked: int = 0


_LOCAL, _EXPORT, _VALIDATE, _IMPORT = range(4)
_keys = itertools.count()
_tls = threading.local()


class _Transfer:
    """What one encode/decode moved, so it can be completed or undone."""

    def __init__(self, mode: int, incoming: list[int] | None = None) -> None:
        self.mode = mode
        self.taken: list[tuple[Endpoint, EndpointCore, EndpointOwner | None]] = []
        self.local: dict[int, EndpointCore] = {}
        self.fds: list[int] = []
        self.exported: list[tuple[EndpointCore, list[Entry]]] = []
        self.incoming = incoming or []
        self.used_fds: set[int] = set()
        self.adopted: list[Endpoint] = []

    def __enter__(self) -> _Transfer:
        self.outer = getattr(_tls, "transfer", None)
        _tls.transfer = self
        return self

    def __exit__(self, *exc: object) -> None:
        _tls.transfer = self.outer

    def undo(self) -> None:
        """The message was not delivered: give every endpoint back to its sender."""
        for endpoint in self.adopted:
            endpoint.take_core()
        for core, entries in self.exported:
            with core.lock:
                core.status = EndpointStatus.OPEN
                core.inbox.extendleft(reversed(entries))
        for endpoint, core, owner in self.taken:
            endpoint.restore_core(core)
            core.set_owner(owner)

    def finish_export(self) -> None:
        """The record was sent: the sockets now live in the other OS process."""
        for core, _ in self.exported:
            sock, core.sock = core.sock, None
            if sock is not None:
                sock.close()
            core.set_owner(None)


def _current() -> _Transfer:
    transfer: _Transfer | None = getattr(_tls, "transfer", None)
    if transfer is None:
        raise UsageError("an Endpoint can only be encoded inside a channel send")
    return transfer


def _enc_hook(obj: object) -> object:
    if not isinstance(obj, Endpoint):
        raise NotImplementedError(f"cannot send objects of type {type(obj).__name__}")
    transfer = _current()
    core = obj.take_core()
    transfer.taken.append((obj, core, core.owner))
    core.set_owner(None)  # in flight: owned by nobody until received
    if transfer.mode == _LOCAL:
        key = next(_keys)
        transfer.local[key] = core
        return _LocalToken(key)
    return export_core(core, transfer)


_TOKEN = _LocalToken | TransferRecord
"""What an endpoint field holds on the wire: a key (same OS process) or a record."""


def warm_transfer_types() -> None:
    """Have msgspec work out the transfer tokens' types now, not on the first endpoint
    each new domain receives: its annotations are evaluated from strings, about 1 ms.
    (A zygote calls this before it forks; its domains inherit the result.)"""
    msgspec.convert({"type": "sipkernel.local", "key": 0}, _TOKEN)


def _dec_hook(kind: type, obj: object) -> object:
    if not (isinstance(kind, type) and issubclass(kind, Endpoint)):
        raise NotImplementedError(f"cannot decode {kind!r}")
    transfer = _current()
    if transfer.mode == _VALIDATE:
        return _placeholder()
    token = msgspec.convert(obj, _TOKEN)
    if isinstance(token, _LocalToken):
        core = transfer.local.pop(token.key)
    else:
        core = import_core(token, transfer)
    endpoint = Endpoint(core)
    transfer.adopted.append(endpoint)
    return endpoint


def _placeholder() -> Endpoint:
    """A dead handle standing in for an endpoint while a message is only validated."""
    endpoint = Endpoint.__new__(Endpoint)
    endpoint.restore_core(None)  # type: ignore[arg-type]
    endpoint.close()
    return endpoint


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_NO_FDS: list[int] = []
_FIELD_OVERHEAD = 64  # a generous bound on a field's name, tag and length prefix


def _nothing() -> None:
    """Nothing to complete or undo (a message without endpoints)."""


_SCALARS: dict[type, tuple[type, ...]] = {
    msgspec.inspect.IntType: (int,),
    msgspec.inspect.FloatType: (float, int),
    msgspec.inspect.StrType: (str,),
    msgspec.inspect.BoolType: (bool,),
    msgspec.inspect.BytesType: (bytes,),
    msgspec.inspect.NoneType: (type(None),),
}


def flat_fields(message_type: type) -> tuple[tuple[str, tuple[type, ...]], ...] | None:
    """For a frozen Struct of unconstrained scalar fields: each field's allowed types."""
    config = getattr(message_type, "__struct_config__", None)
    if config is None or not config.frozen:
        return None
    info = msgspec.inspect.type_info(message_type)
    if not isinstance(info, msgspec.inspect.StructType):
        return None
    fields = []
    for field in info.fields:
        kinds = _scalar_kinds(field.type)
        if kinds is None:
            return None
        fields.append((field.name, kinds))
    return tuple(fields)


def plain_check(
    fields: tuple[tuple[str, tuple[type, ...]], ...], max_message: int
) -> Callable[[Any], bool] | None:
    """A compiled type check for a flat message of fixed-size fields, or None.

    Such a message (no ``str`` or ``bytes`` field) cannot near the size limit,
    so checking it is only checking each field's type: the check is built as
    one expression, ``type(m.a) in k0 and type(m.b) in k1``, which costs a
    tenth of a loop over the fields.
    """
    if any(kind in (str, bytes) for _, kinds in fields for kind in kinds):
        return None
    if _FIELD_OVERHEAD * len(fields) >= max_message:
        return None
    if not all(name.isidentifier() and not keyword.iskeyword(name) for name, _ in fields):
        return None
    namespace: dict[str, Any] = {f"k{i}": kinds for i, (_, kinds) in enumerate(fields)}
    namespace["type"] = type
    terms = [f"type(m.{name}) in k{i}" for i, (name, _) in enumerate(fields)] or ["True"]
    exec(f"def check(m):\n    return {' and '.join(terms)}\n", namespace)
    check: Callable[[Any], bool] = namespace["check"]
    return check


def _scalar_kinds(node: msgspec.inspect.Type) -> tuple[type, ...] | None:
    members = node.types if isinstance(node, msgspec.inspect.UnionType) else (node,)
    kinds: list[type] = []
    for member in members:
        scalar = _SCALARS.get(type(member))
        constrained = any(
            getattr(member, name, None) is not None
            for name in (
                "gt",
                "ge",
                "lt",
                "le",
                "multiple_of",
                "pattern",
                "min_length",
                "max_length",
                "tz",
            )
        )
        if scalar is None or constrained:
            return None
        kinds.extend(scalar)
    return tuple(kinds)


def mentions_endpoint(types: tuple[type, ...]) -> bool:
    """Whether any of these message types can hold an ``Endpoint`` anywhere inside."""
    seen: set[int] = set()
    pending: list[object] = list(msgspec.inspect.multi_type_info(types))
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, msgspec.inspect.CustomType) and issubclass(node.cls, Endpoint):
            return True
        if isinstance(node, msgspec.inspect.Field):
            pending.append(node.type)
        elif isinstance(node, msgspec.inspect.Type):
            for name in node.__struct_fields__:
                value = getattr(node, name)
                pending.extend(value if isinstance(value, tuple) else [value])
    return False


_reason_decoder = msgspec.msgpack.Decoder(ExitReason)


class MessageCodec:
    """Encodes and decodes the messages of one contract (internal)."""

    def __init__(self, contract: Contract, max_message: int) -> None:
        self.contract = contract
        self.max_message = max_message
        self.decoder = msgspec.msgpack.Decoder(contract.message_union, dec_hook=_dec_hook)
        self.carries_endpoints = mentions_endpoint(contract.message_types)
        """False for contracts whose messages can hold no endpoint: the fast path."""
        self.shareable = {t: fields for t in contract.message_types if (fields := flat_fields(t))}
        """Frozen messages of plain scalar fields: checked field by field, never copied."""
        self.plain = {
            t: check
            for t, fields in self.shareable.items()
            if (check := plain_check(fields, max_message))
        }
        """The shareable types whose size cannot matter, with their compiled checks."""

    def _encode(self, message: Any, encoder: msgspec.msgpack.Encoder = _encoder) -> bytes:
        try:
            payload = encoder.encode(message)
        except (TypeError, NotImplementedError) as exc:
            raise UsageError(f"cannot encode {type(message).__name__}: {exc}") from exc
        if len(payload) > self.max_message:
            raise MessageTooLarge(
                f"{type(message).__name__} is {len(payload)} bytes encoded; "
                f"this channel's limit is {self.max_message} bytes"
            )
        return payload

    def _decode(self, payload: bytes, by_peer: bool) -> Any:
        try:
            return self.decoder.decode(payload)
        except msgspec.ValidationError as exc:
            raise self._malformed(exc, by_peer) from exc

    def _malformed(self, exc: msgspec.ValidationError, by_peer: bool) -> ProtocolViolation:
        return ProtocolViolation(
            f"contract {self.contract.name}: malformed message: {exc}",
            contract=self.contract.name,
            by_peer=by_peer,
        )

    def _fields_ok(self, message: Any) -> bool:
        """True for a frozen flat message whose fields have their declared types.

        False when the message is not of that shape, or might be near the size
        limit: the caller then encodes it, which checks both exactly.
        """
        fields = self.shareable.get(type(message))
        if fields is None:
            return False
        size = 0
        for name, kinds in fields:
            value = getattr(message, name)
            if type(value) not in kinds:
                self._decode(self._encode(message), by_peer=False)  # raises the precise error
            if type(value) is str:
                size += 4 * len(value)  # UTF-8: at most four bytes a character
            elif type(value) is bytes:
                size += len(value)
        return size + _FIELD_OVERHEAD * len(fields) < self.max_message

    def copy(self, message: Any) -> tuple[Entry, Callable[[], None]]:
        """A private copy for a receiver in this OS process, and how to undo it.

        Frozen messages whose fields are all plain scalars cannot be changed by
        anyone, so they are checked field by field and shared, not copied.
        """
        check = self.plain.get(type(message))  # the common case, inlined
        if (check is not None and check(message)) or self._fields_ok(message):
            return (message, None), _nothing
        if not self.carries_endpoints:
            return (self._decode(self._encode(message), by_peer=False), None), _nothing
        with _Transfer(_LOCAL) as transfer:
            try:
                payload = self._encode(message)
                copy = self._decode(payload, by_peer=False)
            except BaseException:
                transfer.undo()
                raise
        return (copy, transfer.adopted or None), transfer.undo

    def encode_for_socket(self, message: Any) -> tuple[bytes, list[int], _Transfer | None]:
        """Payload and descriptors for the socket, and the endpoints moving with them.

        Those (if any) are on their way out: ``finish_export()`` once the
        payload is sent, ``undo()`` if it is not.
        """
        if not self.carries_endpoints:
            payload = self._encode(message)
            check = self.plain.get(type(message))  # as in copy()
            if (check is None or not check(message)) and not self._fields_ok(message):
                self._decode(payload, by_peer=False)  # checks every field, raises precisely
            return payload, _NO_FDS, None
        with _Transfer(_EXPORT) as transfer:
            try:
                payload = self._encode(message)
                with _Transfer(_VALIDATE):
                    self._decode(payload, by_peer=False)
            except BaseException:
                transfer.undo()
                raise
        return payload, transfer.fds, transfer

    def decode_from_socket(self, payload: bytes, fds: list[int]) -> Entry:
        """Decode a received message, adopting the endpoints it carries."""
        if not fds and not self.carries_endpoints:
            try:  # _decode(), inlined
                return self.decoder.decode(payload), None
            except msgspec.ValidationError as exc:
                raise self._malformed(exc, True) from exc
        with _Transfer(_IMPORT, fds) as transfer:
            try:
                message = self._decode(payload, by_peer=True)
            except BaseException as exc:
                reason = ExitReason.peer_gone("it arrived in a malformed message")
                for endpoint in transfer.adopted:
                    endpoint.close_with(reason)
                if isinstance(exc, UndeliverableMessage):
                    exc.payload = payload
                raise
            finally:
                _close_unused(fds, transfer.used_fds)
        return message, transfer.adopted or None

    def decode_nested(self, payload: bytes, transfer: _Transfer) -> Entry:
        """Decode a queued message travelling inside a transfer record."""
        outer, transfer.adopted = transfer.adopted, []
        try:
            decoder = msgspec.msgpack.Decoder(self.contract.message_union, dec_hook=_dec_hook)
            message = decoder.decode(payload)
            carried = transfer.adopted
        finally:
            transfer.adopted = outer
        return message, carried or None

    def encode_reason(self, reason: ExitReason) -> bytes:
        return msgspec.msgpack.encode(reason)

    def decode_reason(self, payload: bytes) -> ExitReason:
        try:
            return _reason_decoder.decode(payload)
        except msgspec.DecodeError:
            return ExitReason.peer_gone("the peer closed with an unreadable reason")


def _close_unused(fds: list[int], used: set[int]) -> None:
    for fd in fds:
        if fd not in used:
            os.close(fd)


# -- moving an endpoint core across OS processes ------------------------------------


def export_core(core: EndpointCore, transfer: _Transfer) -> TransferRecord:
    """Prepare ``core`` to leave this OS process (called while encoding)."""
    while True:
        sock = _ensure_socket(core)
        with core.lock:
            if core.sock is not sock:
                continue  # it rejoined its peer in memory meanwhile: a socket again
            entries = list(core.inbox)
            core.inbox.clear()
            core.status = EndpointStatus.MOVED
            break
    transfer.exported.append((core, entries))
    fd = -1
    if sock is not None:
        fd = len(transfer.fds)
        transfer.fds.append(sock.fileno())
    nested = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
    inbox = [nested.encode(message) for message, _ in entries]
    checker = core.checker
    return TransferRecord(
        channel=core.channel_id,
        contract=checker.contract.ref,
        role=checker.role.value,
        state=checker.state,
        capacity=core.capacity,
        max_message=core.codec.max_message,
        fd=fd,
        inbox=inbox,
        broken=core.broken,
        credit=core.credit,
        unacked=core.unacked,
    )


def _ensure_socket(core: EndpointCore) -> socket.socket | None:
    """Switch an in-process pair to a socket pair; the peer stays here."""
    with core.lock:
        if core.status is not EndpointStatus.OPEN:
            raise ClosedEndpointError("this endpoint is closed")
        peer = core.peer
        if core.sock is not None or peer is None:
            return core.sock
        mine, theirs = _wire.new_pair()
        core.sock, peer.sock = mine, theirs
        core.peer = peer.peer = None
        retired = [end.retired for end in (core, peer) if end.retired is not None]
        core.retired = peer.retired = None
        # Each side may send what the other's queue has room for; queued
        # messages keep their places (the leaving side takes its inbox along).
        core.credit = max(peer.capacity - len(peer.inbox), 0)
        peer.credit = max(core.capacity - len(core.inbox), 0)
        core.unacked = peer.unacked = 0
        waiters = peer.recv_waiters + peer.space_waiters + core.space_waiters
        peer.recv_waiters, peer.space_waiters, core.space_waiters = [], [], []
    for waiter in waiters:
        waiter.wake()
    for sock in retired:
        sock.close()
    _rejoin.register(peer)  # it stays: the leaving end may come back
    return mine


def import_core(record: TransferRecord, transfer: _Transfer) -> EndpointCore:
    """Rebuild an endpoint core that arrived from another OS process."""
    module, name = record.contract
    try:
        contract = Contract.lookup(name, module)
    except Exception as exc:  # its module failed to import, or does not define it
        # UndeliverableMessage is no ValueError, so msgspec lets it through unwrapped.
        cause = str(exc) if isinstance(exc, ContractDefinitionError) else repr(exc)
        raise UndeliverableMessage(
            f"a message carried an endpoint of contract {name!r}, which cannot be found "
            f"in this OS process: {cause}"
        ) from exc
    checker = ContractChecker(contract, Role(record.role), record.state)
    core = EndpointCore(
        record.channel,
        checker,
        codec_for(contract, record.max_message),
        record.capacity,
        threading.Lock(),
    )
    if record.fd >= 0:
        fd = transfer.incoming[record.fd]
        transfer.used_fds.add(fd)
        core.attach_socket(socket.socket(fileno=fd))
    core.broken = record.broken
    core.credit, core.unacked = record.credit, record.unacked
    for payload in record.inbox:
        core.inbox.append(core.codec.decode_nested(payload, transfer))
    _rejoin.arrived(core)  # its peer may be here already: then they talk in memory
    return core


_codecs: dict[tuple[int, int], MessageCodec] = {}


def codec_for(contract: Contract, max_message: int = DEFAULT_MAX_MESSAGE) -> MessageCodec:
    """The shared codec of a contract and size limit."""
    key = (id(contract), max_message)
    codec = _codecs.get(key)
    if codec is None:
        codec = _codecs[key] = MessageCodec(contract, max_message)
    return codec


# -- spawn arguments ------------------------------------------------------------------
# Arguments may be any picklable objects: they are copied. Endpoints among them
# are pulled out into a list (pickled as their index), so that the list can be
# moved like any endpoints: in-process, or inside a control message.

_PERSISTENT_TAG = "sipkernel.endpoint"


class _ArgPickler(pickle.Pickler):
    def __init__(self, buffer: io.BytesIO) -> None:
        super().__init__(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        self.endpoints: list[Endpoint] = []

    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, Endpoint):
            obj.live_core()  # a closed or moved endpoint fails here, at the call site
            self.endpoints.append(obj)
            return (_PERSISTENT_TAG, len(self.endpoints) - 1)
        return None


class _ArgUnpickler(pickle.Unpickler):
    def __init__(self, buffer: io.BytesIO, endpoints: list[Endpoint]) -> None:
        super().__init__(buffer)
        self.endpoints = endpoints

    def persistent_load(self, pid: object) -> object:
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == _PERSISTENT_TAG):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return self.endpoints[pid[1]]


def split_args(args: tuple[Any, ...]) -> tuple[bytes, list[Endpoint]]:
    """Pickle spawn arguments, pulling out the endpoints among them."""
    buffer = io.BytesIO()
    pickler = _ArgPickler(buffer)
    try:
        pickler.dump(args)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise UsageError(f"the arguments cannot be copied into a process: {exc}") from exc
    if len(set(map(id, pickler.endpoints))) != len(pickler.endpoints):
        raise UsageError("the same endpoint appears twice in the arguments; it can move once")
    return buffer.getvalue(), pickler.endpoints


def join_args(data: bytes, endpoints: list[Endpoint]) -> tuple[Any, ...]:
    """Rebuild arguments from ``split_args`` output, with the moved endpoints."""
    args = _ArgUnpickler(io.BytesIO(data), endpoints).load()
    if not isinstance(args, tuple):
        raise UsageError("malformed spawn arguments")
    return args
