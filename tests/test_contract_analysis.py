"""Tests of contract static analysis and diagrams."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from sipkernel._core import _contract
from sipkernel._core._contract import Contract
from sipkernel._core._contract_analysis import (
    Finding,
    FindingKind,
    analyse,
    to_graphviz,
    to_mermaid,
)


class A(msgspec.Struct, tag=True):
    pass


class B(msgspec.Struct, tag=True):
    pass


class C(msgspec.Struct, tag=True):
    pass


class D(msgspec.Struct, tag=True):
    pass


class E(msgspec.Struct, tag=True):
    pass


class Request(msgspec.Struct, tag=True):
    pass


class Reply(msgspec.Struct, tag=True):
    pass


class Failure(msgspec.Struct, tag=True):
    pass


MESSAGES: list[type[msgspec.Struct]] = [A, B, C, D, E, Request, Reply, Failure]
_names = (f"Analysed{n}" for n in itertools.count())


def make(spec: str) -> Contract:
    """A contract under a fresh name."""
    return Contract(next(_names), spec, MESSAGES)


def kinds(findings: list[Finding]) -> list[FindingKind]:
    return [f.kind for f in findings]


REQUEST_REPLY = make("state Start: Request? -> (Reply! or Failure!) -> Start;")
ENDS = make("state Start: Request? -> (Reply! or Failure!) -> Start | A? -> Bye; state Bye;")


def test_clean_contracts_have_no_findings() -> None:
    assert analyse(REQUEST_REPLY) == []
    assert REQUEST_REPLY.analyse() == []
    assert analyse(ENDS) == []
    assert analyse(make("state S: A? -> B! -> Done; state Done;")) == []


def test_unreachable_state() -> None:
    findings = analyse(make("state S: A? -> T; state T; state X: B? -> T; state Y;"))
    assert kinds(findings) == [FindingKind.UNREACHABLE_STATE] * 2
    assert [f.states for f in findings] == [("X",), ("Y",)]
    assert "cannot be reached from S" in findings[0].detail


def test_deadlock_after_a_race() -> None:
    # Importer sends A (-> P), exporter sends B (-> Q); after both receive, the
    # exporter is in R1 and the importer in R2, both waiting to receive.
    contract = make(
        """
        state S: A? -> P | B! -> Q;
        state P: B! -> R2;
        state Q: A? -> R1;
        state R1: D? -> S;
        state R2: E! -> S;
        """
    )
    findings = analyse(contract)
    assert kinds(findings) == [FindingKind.DEADLOCK]
    assert findings[0].states == ("R1", "R2")
    assert "3 queued messages" in findings[0].detail


def test_terminal_on_one_side_only_is_a_deadlock() -> None:
    # Importer sends A, exporter sends B; after both receive, the importer has
    # finished (Done) while the exporter waits for C.
    contract = make(
        "state S: A? -> T | B! -> U; state T: B! -> Done; state U: A? -> X; state X: C? -> S;"
        "state Done;"
    )
    findings = analyse(contract)
    assert kinds(findings) == [FindingKind.DEADLOCK]
    assert findings[0].states == ("X", "Done")


def test_unspecified_reception() -> None:
    contract = make("state S: A? -> T | B! -> U; state T: C! -> S; state U: D? -> S;")
    findings = analyse(contract)
    assert kinds(findings) == [FindingKind.UNSPECIFIED_RECEPTION] * 2
    details = " ".join(f.detail for f in findings)
    assert "the exporter in state U may have to receive A" in details
    assert "the importer in state T may have to receive B" in details


def test_unbounded_cycle_self_loop() -> None:
    findings = analyse(make("state S: A! -> S;"))
    assert findings == [
        Finding(
            FindingKind.UNBOUNDED_CYCLE,
            ("S",),
            "the exporter can send A! around this cycle forever without receiving anything, "
            "so the importer's queue grows without bound",
        )
    ]


def test_unbounded_cycle_components_per_sender() -> None:
    contract = make(
        "state S: A? -> T; state T: B? -> S | C! -> U;state U: D! -> V; state V: E! -> U | A? -> S;"
    )
    cycles = [f for f in analyse(contract) if f.kind is FindingKind.UNBOUNDED_CYCLE]
    assert [(f.states, f.detail.split()[1]) for f in cycles] == [
        (("S", "T"), "importer"),
        (("U", "V"), "exporter"),
    ]


def test_findings_are_sorted_and_deterministic() -> None:
    spec = "state S: A? -> T | B! -> T; state T: C? -> S; state Z;"
    first, second = analyse(make(spec)), analyse(make(spec))
    assert first == second
    assert kinds(first) == sorted(kinds(first), key=list(FindingKind).index)
    assert set(kinds(first)) == {
        FindingKind.UNREACHABLE_STATE,
        FindingKind.UNSPECIFIED_RECEPTION,
        FindingKind.UNBOUNDED_CYCLE,
    }


def test_queue_bound_limits_exploration() -> None:
    # The exporter reaches U with C at the head of its queue only if it sent two
    # A's before the importer received any (two messages in flight).
    contract = make("state S: A! -> T | C? -> Z; state T: A! -> U; state U: B? -> S; state Z;")
    shallow = {f.detail.split(" may ")[0] for f in analyse(contract, queue_bound=1)}
    deep = {f.detail.split(" may ")[0] for f in analyse(contract)}
    assert "the exporter in state U" not in shallow
    assert deep == shallow | {"the exporter in state U"}
    assert analyse(make("state S: A! -> S;"), queue_bound=1) == analyse(make("state S: A! -> S;"))


# -- diagrams ---------------------------------------------------------------------

DIAGRAMMED = make(
    """
    state Start: Request? -> (Reply! or Failure!) -> Start | A? -> Busy;
    state Busy: B! -> Busy | C? -> Done;
    state Done;
    """
)


def test_mermaid_has_every_state_and_edge() -> None:
    text = to_mermaid(DIAGRAMMED)
    assert text == DIAGRAMMED.to_mermaid()
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert '    state "Start#1" as Start_1' in lines
    assert "    [*] --> Start" in lines
    assert "    Done --> [*]" in lines
    edges = [line for line in lines if re.fullmatch(r"    \w+ --> \w+: \w+[?!]", line)]
    assert len(edges) == len(DIAGRAMMED.transitions)
    for t in DIAGRAMMED.transitions:
        assert sum(line.endswith(f": {t.label}") for line in edges) >= 1
    for state in DIAGRAMMED.states:
        assert state in text
    assert "#" not in "".join(line for line in lines if "state " not in line)


def test_mermaid_ids_do_not_collide_or_use_keywords() -> None:
    contract = make("state S_1: A? -> S#1; state S#1: B! -> end; state end;")
    text = to_mermaid(contract)
    assert '    state "S#1" as S_1_' in text
    assert '    state "end" as end_' in text
    assert "    S_1_ --> end_: B!" in text


def test_graphviz_has_every_state_and_edge() -> None:
    text = to_graphviz(DIAGRAMMED)
    assert text == DIAGRAMMED.to_graphviz()
    assert text.startswith(f'digraph "{DIAGRAMMED.name}" {{')
    assert text.count("{") == text.count("}") == 1
    assert text.rstrip().endswith("}")
    labelled = [line for line in text.splitlines() if " -> " in line and "[label=" in line]
    assert len(labelled) == len(DIAGRAMMED.transitions)
    for t in DIAGRAMMED.transitions:
        assert f'    "{t.source}" -> "{t.target}" [label="{t.label}"];' in labelled
    for state in DIAGRAMMED.states:
        assert f'"{state}"' in text
    assert '    "Done" [shape=doublecircle];' in text
    assert '    "__start__" [shape=point, style=invis];' in text
    assert '    "__start__" -> "Start";' in text


def test_core_does_not_import_analysis_at_import_time() -> None:
    # Only module-level imports outside ``if TYPE_CHECKING:`` run at import time.
    source = Path(_contract.__file__).read_text(encoding="utf-8")
    imported: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom):
            imported += [node.module or "", *(alias.name for alias in node.names)]
        elif isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
    assert imported
    assert not [name for name in imported if "_contract_analysis" in name]


# -- properties -------------------------------------------------------------------


@st.composite
def specs(draw: st.DrawFn) -> str:
    """Random well-formed declaration text over messages A..E."""
    states = [f"S{i}" for i in range(draw(st.integers(1, 4)))]
    steps = st.tuples(st.sampled_from("ABCDE"), st.sampled_from("?!"))
    lines = []
    for state in states:
        pairs = draw(st.lists(steps, unique=True, max_size=3))
        paths = [f"{m}{mark} -> {draw(st.sampled_from(states))}" for m, mark in pairs]
        lines.append(f"state {state}: {' | '.join(paths)};" if paths else f"state {state};")
    return "\n".join(lines)


@given(specs())
def test_analysis_and_diagrams_cover_random_contracts(spec: str) -> None:
    contract = make(spec)
    findings = analyse(contract, queue_bound=2)
    assert findings == analyse(contract, queue_bound=2)
    assert findings == sorted(findings, key=lambda f: (list(FindingKind).index(f.kind), f.states))
    dot = to_graphviz(contract)
    assert dot.count(" -> ") == len(contract.transitions) + 1
    mermaid = to_mermaid(contract)
    assert mermaid.count(" --> ") == len(contract.transitions) + 1 + sum(
        contract.is_terminal(s) for s in contract.states
    )
