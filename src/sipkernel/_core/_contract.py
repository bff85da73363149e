"""Channel contracts: typed message state machines, their runtime checker and registry.

A contract (after Singularity's Sing# channel contracts) is written from the point
of view of the *exporter* (server) side of a channel: ``Msg?`` is a message the
exporter receives (the importer sends it), ``Msg!`` one the exporter sends. Each
endpoint holds a :class:`ContractChecker` for its :class:`Role` and advances it on
every send and receive.

Analysis and diagrams live in :mod:`sipkernel._core._contract_analysis`, imported lazily.
"""

from __future__ import annotations

import enum
import importlib
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import msgspec

from ._contract_syntax import DirectionMark, parse_spec, render_spec
from ._errors import ContractDefinitionError, ProtocolViolation

if TYPE_CHECKING:
    from ._contract_analysis import Finding

__all__ = ["Contract", "ContractChecker", "Direction", "Role", "Transition"]


class Direction(enum.Enum):
    """Direction of a message, seen from the exporter."""

    IN = "?"
    """To the exporter (the importer sends it)."""
    OUT = "!"
    """From the exporter (the importer receives it)."""


class Role(enum.Enum):
    """The side of a channel an endpoint plays."""

    EXPORTER = "exporter"
    IMPORTER = "importer"

    @property
    def peer(self) -> Role:
        """The role of the other endpoint."""
        return Role.IMPORTER if self is Role.EXPORTER else Role.EXPORTER

    def sends(self, direction: Direction) -> bool:
        """Whether this role is the sender of messages of ``direction``."""
        return (direction is Direction.OUT) == (self is Role.EXPORTER)


@dataclass(frozen=True)
class Transition:
    """``source --message(direction)--> target``."""

    source: str
    message: type[msgspec.Struct]
    direction: Direction
    target: str

    @property
    def sender(self) -> Role:
        """The role that sends this transition's message."""
        return Role.EXPORTER if self.direction is Direction.OUT else Role.IMPORTER

    @property
    def label(self) -> str:
        """``Msg?`` or ``Msg!``."""
        return f"{self.message.__name__}{self.direction.value}"


class _Node:
    """A state as seen by one role: what it may send and receive, and where each leads."""

    __slots__ = ("name", "receives", "sends")

    def __init__(self, name: str) -> None:
        self.name = name
        self.sends: dict[type, _Node] = {}
        self.receives: dict[type, _Node] = {}


_REGISTRY: dict[tuple[str, str], Contract] = {}
_REGISTRY_LOCK = threading.Lock()


def _check_messages(messages: Sequence[type[msgspec.Struct]]) -> tuple[type[msgspec.Struct], ...]:
    seen: set[str] = set()
    for message in messages:
        if not (isinstance(message, type) and issubclass(message, msgspec.Struct)):
            raise ContractDefinitionError(
                f"contract messages must be msgspec.Struct subclasses, got {message!r}"
            )
        name = message.__name__
        if name in seen:
            raise ContractDefinitionError(f"two contract messages are named {name!r}")
        seen.add(name)
        if message.__struct_config__.tag is None:
            raise ContractDefinitionError(
                f"message {name} has no tag; every contract message is decoded as part of a "
                f"tagged union: declare it as `class {name}(msgspec.Struct, tag=True)`"
            )
    return tuple(messages)


def _union_of(types: tuple[type[msgspec.Struct], ...]) -> Any:
    if len(types) == 1:
        return types[0]
    union: Any = Union
    result = union[types]
    try:
        msgspec.msgpack.Decoder(type=result)
    except TypeError as exc:
        raise ContractDefinitionError(
            f"contract messages do not form a tagged union: {exc}"
        ) from exc
    return result


class Contract:
    """A channel contract: a state machine of typed messages, seen from the exporter.

    ``Contract(name, spec, messages, initial=None)`` parses ``spec`` (see
    :mod:`sipkernel._core._contract_syntax`) against ``messages`` (``msgspec.Struct``
    subclasses declared with ``tag=True``, with distinct class names). ``initial``
    defaults to the first declared state. The contract registers itself under
    ``(module, name)``, ``module`` being the constructing caller's module unless
    given, so another process can find it with :meth:`lookup`.
    """

    __slots__ = (
        "_by_state",
        "_initial",
        "_message_types",
        "_module",
        "_name",
        "_nodes",
        "_spec",
        "_states",
        "_transitions",
        "_union",
    )

    def __init__(
        self,
        name: str,
        spec: str,
        messages: Sequence[type[msgspec.Struct]],
        *,
        initial: str | None = None,
        module: str | None = None,
    ) -> None:
        self._name = name
        self._module = module if module is not None else _caller_module()
        self._message_types = _check_messages(messages)
        self._union = _union_of(self._message_types)
        by_name = {message.__name__: message for message in self._message_types}
        parsed = parse_spec(spec, list(by_name))
        self._spec = spec
        self._states = parsed.states
        self._transitions = tuple(
            Transition(t.source, by_name[t.message], Direction(t.direction), t.target)
            for t in parsed.transitions
        )
        self._by_state: dict[str, tuple[Transition, ...]] = {
            state: tuple(t for t in self._transitions if t.source == state)
            for state in self._states
        }
        self._initial = self._states[0] if initial is None else initial
        if self._initial not in self._by_state:
            raise ContractDefinitionError(
                f"contract {name}: unknown initial state {self._initial!r}"
            )
        self._nodes = {role: self._build_nodes(role) for role in Role}
        self._register()

    # -- attributes ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The contract's name."""
        return self._name

    @property
    def module(self) -> str:
        """The ``__name__`` of the module that constructed the contract."""
        return self._module

    @property
    def ref(self) -> tuple[str, str]:
        """``(module, name)``: enough for :meth:`lookup` in any process."""
        return (self._module, self._name)

    @property
    def spec(self) -> str:
        """The declaration text as given."""
        return self._spec

    @property
    def initial(self) -> str:
        """The initial state."""
        return self._initial

    @property
    def states(self) -> tuple[str, ...]:
        """All states in declaration order, generated intermediate states included."""
        return self._states

    @property
    def message_types(self) -> tuple[type[msgspec.Struct], ...]:
        """The message types, in the order given."""
        return self._message_types

    @property
    def message_union(self) -> Any:
        """``Union[...]`` of the message types (or the single type), for a msgspec Decoder."""
        return self._union

    @property
    def transitions(self) -> tuple[Transition, ...]:
        """All transitions, grouped by source state in declaration order."""
        return self._transitions

    def transitions_from(self, state: str) -> tuple[Transition, ...]:
        """The transitions leaving ``state``."""
        try:
            return self._by_state[state]
        except KeyError:
            raise ContractDefinitionError(f"contract {self._name} has no state {state!r}") from None

    def is_terminal(self, state: str) -> bool:
        """Whether ``state`` has no transitions (the conversation is over)."""
        return not self.transitions_from(state)

    def to_spec(self) -> str:
        """Canonical declaration text that parses back to the same states and transitions."""
        return render_spec(
            self._states,
            {
                state: [(t.message.__name__, _mark(t.direction), t.target) for t in transitions]
                for state, transitions in self._by_state.items()
            },
        )

    def to_mermaid(self) -> str:
        """A Mermaid ``stateDiagram-v2`` of the contract."""
        from . import _contract_analysis

        return _contract_analysis.to_mermaid(self)

    def to_graphviz(self) -> str:
        """A Graphviz DOT ``digraph`` of the contract."""
        from . import _contract_analysis

        return _contract_analysis.to_graphviz(self)

    def analyse(self) -> list[Finding]:
        """Static findings: unreachable states, deadlocks, races, unbounded cycles."""
        from . import _contract_analysis

        return _contract_analysis.analyse(self)

    def __repr__(self) -> str:
        return (
            f"Contract({self._name!r}, module={self._module!r}, initial={self._initial!r}, "
            f"states={len(self._states)}, messages={len(self._message_types)})"
        )

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (Contract.lookup, (self._name, self._module))

    # -- checker tables -----------------------------------------------------------

    def _build_nodes(self, role: Role) -> dict[str, _Node]:
        nodes = {state: _Node(state) for state in self._states}
        for t in self._transitions:
            table = nodes[t.source].sends if role.sends(t.direction) else nodes[t.source].receives
            table[t.message] = nodes[t.target]
        return nodes

    def _nodes_for(self, role: Role) -> dict[str, _Node]:
        return self._nodes[role]

    # -- registry -----------------------------------------------------------------

    def _identity(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.to_spec(), self._initial, tuple(m.__name__ for m in self._message_types))

    def _register(self) -> None:
        with _REGISTRY_LOCK:
            old = _REGISTRY.get(self.ref)
            if old is not None and old._identity() != self._identity():
                raise ContractDefinitionError(
                    f"contract {self._name!r} is already defined in module {self._module!r} "
                    "with a different definition"
                )
            _REGISTRY[self.ref] = self

    @classmethod
    def registered(cls) -> tuple[Contract, ...]:
        """Every contract constructed in this interpreter so far."""
        with _REGISTRY_LOCK:
            return tuple(_REGISTRY.values())

    @classmethod
    def lookup(cls, name: str, module: str) -> Contract:
        """The contract registered as ``(module, name)``, importing ``module`` if needed."""
        with _REGISTRY_LOCK:
            found = _REGISTRY.get((module, name))
        if found is not None:
            return found
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ContractDefinitionError(
                f"cannot import module {module!r} to find contract {name!r}: {exc}"
            ) from exc
        with _REGISTRY_LOCK:
            found = _REGISTRY.get((module, name))
        if found is None:
            raise ContractDefinitionError(f"module {module!r} defines no contract named {name!r}")
        return found


def _mark(direction: Direction) -> DirectionMark:
    return "?" if direction is Direction.IN else "!"


def _caller_module() -> str:
    # Frame 0 is this function, 1 is Contract.__init__, 2 is whoever called Contract(...).
    module = str(sys._getframe(2).f_globals.get("__name__", "__main__"))
    # A script re-run in a domain as ``__mp_main__`` stands for the kernel's ``__main__``.
    return "__main__" if module == "__mp_main__" else module


def _names(types: Sequence[type]) -> str:
    return ", ".join(t.__name__ for t in types)


class ContractChecker:
    """Tracks one endpoint's position in a contract and rejects messages it forbids.

    ``check_send`` / ``check_receive`` are one dict lookup on ``type(msg)`` plus an
    assignment when the message is allowed; on a violation they raise
    :class:`ProtocolViolation` and leave the state unchanged.
    """

    __slots__ = ("_contract", "_node", "_role")

    def __init__(self, contract: Contract, role: Role, state: str | None = None) -> None:
        nodes = contract._nodes_for(role)
        start = contract.initial if state is None else state
        if start not in nodes:
            raise ContractDefinitionError(f"contract {contract.name} has no state {start!r}")
        self._contract = contract
        self._role = role
        self._node = nodes[start]

    @property
    def contract(self) -> Contract:
        """The contract checked."""
        return self._contract

    @property
    def role(self) -> Role:
        """The role of this endpoint."""
        return self._role

    @property
    def state(self) -> str:
        """The current state."""
        return self._node.name

    def check_send(self, msg: object) -> None:
        """Advance past sending ``msg``, or raise :class:`ProtocolViolation` if forbidden."""
        self.step_send(msg)

    def check_receive(self, msg: object) -> None:
        """Advance past receiving ``msg``; a forbidden one raises with ``by_peer=True``."""
        node = self._node.receives.get(type(msg))
        if node is None:
            raise self._violation(msg, by_peer=True)
        self._node = node

    def step_send(self, msg: object) -> object:
        """``check_send``, returning the mark to :meth:`rewind` to if the send fails."""
        node = self._node
        target = node.sends.get(type(msg))
        if target is None:
            raise self._violation(msg, by_peer=False)
        self._node = target
        return node

    def rewind(self, mark: object) -> None:
        """Go back to the state :meth:`step_send` returned (a send that did not happen)."""
        if (
            not isinstance(mark, _Node)
            or mark is not self._contract._nodes_for(self._role)[mark.name]
        ):
            raise ValueError("not a state mark of this checker")
        self._node = mark

    def can_send(self) -> tuple[type, ...]:
        """Message types this endpoint may send in the current state."""
        return tuple(self._node.sends)

    def can_receive(self) -> tuple[type, ...]:
        """Message types this endpoint may receive in the current state."""
        return tuple(self._node.receives)

    def is_terminal(self) -> bool:
        """Whether the current state ends the conversation."""
        return not self._node.sends and not self._node.receives

    def __repr__(self) -> str:
        return f"ContractChecker({self._contract.name!r}, {self._role.value}, state={self.state!r})"

    def _violation(self, msg: object, *, by_peer: bool) -> ProtocolViolation:
        node, kind = self._node, type(msg).__name__
        sender = (self._role.peer if by_peer else self._role).value
        allowed = tuple(node.receives if by_peer else node.sends)
        other = tuple(node.sends if by_peer else node.receives)
        if type(msg) in self._contract.message_types:
            what, subject = f"the {sender} may not send {kind} here", "it"
        else:
            what, subject = f"{kind} is not a message of this contract", f"the {sender}"
        if by_peer:
            what += f" (received by the {self._role.value})"
        if allowed:
            tail = f"{subject} may send {_names(allowed)}"
        elif other:
            tail = f"{subject} must wait to receive {_names(other)}"
        else:
            tail = f"{subject} may send nothing here; state {node.name} is terminal"
        return ProtocolViolation(
            f"contract {self._contract.name}, state {node.name}: {what}; {tail}",
            contract=self._contract.name,
            state=node.name,
            message_type=kind,
            by_peer=by_peer,
        )
