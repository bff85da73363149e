"""Static analysis of channel contracts, and diagrams (Mermaid, Graphviz).

Kept out of :mod:`sipkernel._core._contract` so the core stays small; the
``Contract.analyse()/to_mermaid()/to_graphviz()`` methods import this lazily.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._contract import Contract, Role

__all__ = [
    "DEFAULT_QUEUE_BOUND",
    "Finding",
    "FindingKind",
    "analyse",
    "to_graphviz",
    "to_mermaid",
]

DEFAULT_QUEUE_BOUND = 3
"""Messages explored in flight per direction by :func:`analyse`."""


class FindingKind(enum.Enum):
    """What a :class:`Finding` is about (declaration order is the report order)."""

    UNREACHABLE_STATE = "unreachable-state"
    DEADLOCK = "deadlock"
    UNSPECIFIED_RECEPTION = "unspecified-reception"
    UNBOUNDED_CYCLE = "unbounded-cycle"


@dataclass(frozen=True)
class Finding:
    """One problem found in a contract, with the states involved and an explanation."""

    kind: FindingKind
    states: tuple[str, ...]
    detail: str


_KIND_ORDER = {kind: index for index, kind in enumerate(FindingKind)}
_MessageQueue = tuple[type, ...]
_Config = tuple[str, str, _MessageQueue, _MessageQueue]  # exporter, importer, to_exp, to_imp


def analyse(contract: Contract, *, queue_bound: int = DEFAULT_QUEUE_BOUND) -> list[Finding]:
    """Findings about ``contract``, sorted by kind, then states, then detail.

    * ``UNREACHABLE_STATE``: a state not reachable from the initial state.
    * ``DEADLOCK`` and ``UNSPECIFIED_RECEPTION``: found by exploring the
      *asynchronous* product of the exporter's and the importer's views, each
      advancing on its own sends and receives, with one FIFO queue per direction.
      Queues are bounded: at most ``queue_bound`` (default 3) messages in flight
      per direction are explored, so problems that need more are not seen. A
      deadlock is a configuration with both queues empty where neither side may
      send and not both are in terminal states; an unspecified reception is a
      queue head its receiver has no transition for (a race).
    * ``UNBOUNDED_CYCLE``: a cycle all of whose messages are sent by the same
      side (one finding per strongly connected component, self-loops included).
    """
    findings = [
        *_unreachable(contract),
        *_explore(contract, queue_bound),
        *_one_way_cycles(contract),
    ]
    return sorted(findings, key=lambda f: (_KIND_ORDER[f.kind], f.states, f.detail))


# -- reachability ---------------------------------------------------------------------


def _reachable(contract: Contract, start: str, sender: Role | None = None) -> set[str]:
    """States reachable from ``start`` in one or more steps (optionally one sender only)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for t in contract.transitions_from(todo.pop()):
            if (sender is None or t.sender is sender) and t.target not in seen:
                seen.add(t.target)
                todo.append(t.target)
    return seen


def _unreachable(contract: Contract) -> list[Finding]:
    reachable = _reachable(contract, contract.initial) | {contract.initial}
    return [
        Finding(
            FindingKind.UNREACHABLE_STATE,
            (state,),
            f"state {state} cannot be reached from {contract.initial}",
        )
        for state in contract.states
        if state not in reachable
    ]


# -- one-way cycles -------------------------------------------------------------------


def _one_way_cycles(contract: Contract) -> list[Finding]:
    findings: list[Finding] = []
    for role in Role:
        reach = {state: _reachable(contract, state, role) for state in contract.states}
        done: set[str] = set()
        for state in contract.states:
            if state in done or state not in reach[state]:
                continue
            component = tuple(s for s in contract.states if s in reach[state] and state in reach[s])
            done.update(component)
            findings.append(_cycle_finding(contract, role, component))
    return findings


def _cycle_finding(contract: Contract, role: Role, component: tuple[str, ...]) -> Finding:
    labels = sorted(
        {
            t.label
            for s in component
            for t in contract.transitions_from(s)
            if t.sender is role and t.target in component
        }
    )
    return Finding(
        FindingKind.UNBOUNDED_CYCLE,
        component,
        f"the {role.value} can send {', '.join(labels)} around this cycle forever without "
        f"receiving anything, so the {role.peer.value}'s queue grows without bound",
    )


# -- asynchronous product -------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    """One role's view: per state, what it sends (in order) and what it receives."""

    sends: Mapping[str, Sequence[tuple[type, str]]]
    receives: Mapping[str, Mapping[type, str]]

    @classmethod
    def of(cls, contract: Contract, role: Role) -> _View:
        sends = {
            s: [(t.message, t.target) for t in contract.transitions_from(s) if t.sender is role]
            for s in contract.states
        }
        receives = {
            s: {t.message: t.target for t in contract.transitions_from(s) if t.sender is not role}
            for s in contract.states
        }
        return cls(sends, receives)


class _Explorer:
    """Breadth-first search of the bounded asynchronous product of both views."""

    def __init__(self, contract: Contract, bound: int) -> None:
        self._contract = contract
        self._bound = bound
        self._exp = _View.of(contract, Role.EXPORTER)
        self._imp = _View.of(contract, Role.IMPORTER)
        self._findings: dict[tuple[object, ...], Finding] = {}

    def run(self) -> list[Finding]:
        start: _Config = (self._contract.initial, self._contract.initial, (), ())
        seen = {start}
        todo = deque([start])
        while todo:
            for nxt in self._step(todo.popleft()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return list(self._findings.values())

    def _step(self, config: _Config) -> list[_Config]:
        exp, imp, to_exp, to_imp = config
        result: list[_Config] = []
        if len(to_imp) < self._bound:
            result += [(t, imp, to_exp, (*to_imp, m)) for m, t in self._exp.sends[exp]]
        if len(to_exp) < self._bound:
            result += [(exp, t, (*to_exp, m), to_imp) for m, t in self._imp.sends[imp]]
        if to_exp:
            target = self._receive(Role.EXPORTER, exp, to_exp[0], config)
            result += [] if target is None else [(target, imp, to_exp[1:], to_imp)]
        if to_imp:
            target = self._receive(Role.IMPORTER, imp, to_imp[0], config)
            result += [] if target is None else [(exp, target, to_exp, to_imp[1:])]
        if not (to_exp or to_imp or self._exp.sends[exp] or self._imp.sends[imp]):
            self._deadlock(exp, imp)
        return result

    def _receive(self, role: Role, state: str, message: type, config: _Config) -> str | None:
        view = self._exp if role is Role.EXPORTER else self._imp
        target = view.receives[state].get(message)
        if target is None and (role, state, message) not in self._findings:
            detail = (
                f"the {role.value} in state {state} may have to receive {message.__name__} "
                f"(sent by the {role.peer.value}) but has no transition for it; exporter in "
                f"{config[0]}, importer in {config[1]}"
            )
            self._findings[(role, state, message)] = Finding(
                FindingKind.UNSPECIFIED_RECEPTION, (config[0], config[1]), detail
            )
        return target

    def _deadlock(self, exp: str, imp: str) -> None:
        if self._contract.is_terminal(exp) and self._contract.is_terminal(imp):
            return
        detail = (
            f"the exporter in {exp} and the importer in {imp} both wait to receive with "
            f"nothing in transit (explored up to {self._bound} queued messages per direction)"
        )
        self._findings.setdefault(
            ("deadlock", exp, imp), Finding(FindingKind.DEADLOCK, (exp, imp), detail)
        )


def _explore(contract: Contract, bound: int) -> list[Finding]:
    return _Explorer(contract, bound).run()


# -- diagrams -------------------------------------------------------------------------

_MERMAID_RESERVED = frozenset(
    {"state", "note", "end", "direction", "class", "classDef", "style", "click"}
)


def _mermaid_ids(states: Sequence[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    used: set[str] = set()
    for state in states:
        ident = re.sub(r"\W", "_", state)
        while ident in used or ident in _MERMAID_RESERVED or (ident != state and ident in states):
            ident += "_"
        ids[state] = ident
        used.add(ident)
    return ids


def to_mermaid(contract: Contract) -> str:
    """A Mermaid ``stateDiagram-v2``: ``[*]`` to the initial state, one labelled edge
    per transition (``Msg?``/``Msg!``), terminal states to ``[*]``. States whose name
    is not a valid Mermaid identifier (``Start#1``) get one, with the name as label."""
    ids = _mermaid_ids(contract.states)
    lines = ["stateDiagram-v2"]
    lines += [f'    state "{state}" as {ident}' for state, ident in ids.items() if ident != state]
    lines.append(f"    [*] --> {ids[contract.initial]}")
    lines += [f"    {ids[t.source]} --> {ids[t.target]}: {t.label}" for t in contract.transitions]
    lines += [f"    {ids[s]} --> [*]" for s in contract.states if contract.is_terminal(s)]
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_graphviz(contract: Contract) -> str:
    """A Graphviz DOT ``digraph``: an invisible start node pointing to the initial
    state, double circles for terminal states, edges labelled ``Msg?``/``Msg!``."""
    start = "__start__"
    while start in contract.states:
        start += "_"
    lines = [f"digraph {_dot_id(contract.name)} {{", "    rankdir=LR;", "    node [shape=circle];"]
    lines.append(f"    {_dot_id(start)} [shape=point, style=invis];")
    for state in contract.states:
        shape = " [shape=doublecircle]" if contract.is_terminal(state) else ""
        lines.append(f"    {_dot_id(state)}{shape};")
    lines.append(f"    {_dot_id(start)} -> {_dot_id(contract.initial)};")
    for t in contract.transitions:
        lines.append(f"    {_dot_id(t.source)} -> {_dot_id(t.target)} [label={_dot_id(t.label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
