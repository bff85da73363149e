"""Tests of the contract model, its parser, the runtime checker and the registry."""

from __future__ import annotations

import itertools
import pickle
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sipkernel._core import _contract
from sipkernel._core._contract import Contract, ContractChecker, Direction, Role, Transition
from sipkernel._core._errors import ContractDefinitionError, ProtocolViolation


class Request(msgspec.Struct, tag=True):
    body: str = ""


class Reply(msgspec.Struct, tag=True):
    body: str = ""


class Failure(msgspec.Struct, tag=True):
    reason: str = ""


class Ping(msgspec.Struct, tag=True):
    pass


class Pong(msgspec.Struct, tag=True):
    pass


class Bye(msgspec.Struct, tag=True):
    pass


class Stranger(msgspec.Struct, tag=True):
    """Never part of any contract in this module."""


class Untagged(msgspec.Struct):
    pass


POOL: tuple[type[msgspec.Struct], ...] = (Request, Reply, Failure, Ping, Pong)
ALL = [Request, Reply, Failure, Ping, Pong, Bye]
_names = (f"Generated{n}" for n in itertools.count())

ECHO = Contract("Echo", "state Start: Request? -> (Reply! or Failure!) -> Start;", ALL[:3])

EXAMPLE_SPEC = """\
state Start: Request? -> (Reply! or Failure!) -> Start;
state Idle: Ping? -> Busy;          # comments with '#'
state Busy: Pong! -> Idle | Bye! -> Done;
state Done;                          # terminal state: no transitions
"""
EXAMPLE = Contract("Example", EXAMPLE_SPEC, ALL)


def edges(contract: Contract) -> list[tuple[str, str, str, str]]:
    """Transitions as plain tuples, in order."""
    return [
        (t.source, t.message.__name__, t.direction.value, t.target) for t in contract.transitions
    ]


def fresh(spec: str, messages: list[type[msgspec.Struct]] | None = None, **kw: str) -> Contract:
    """A contract with a name never used before (so the registry never conflicts)."""
    return Contract(next(_names), spec, ALL if messages is None else messages, **kw)


# -- parser -------------------------------------------------------------------------


def test_example_states_and_transitions() -> None:
    assert EXAMPLE.states == ("Start", "Start#1", "Idle", "Busy", "Done")
    assert EXAMPLE.initial == "Start"
    assert edges(EXAMPLE) == [
        ("Start", "Request", "?", "Start#1"),
        ("Start#1", "Reply", "!", "Start"),
        ("Start#1", "Failure", "!", "Start"),
        ("Idle", "Ping", "?", "Busy"),
        ("Busy", "Pong", "!", "Idle"),
        ("Busy", "Bye", "!", "Done"),
    ]
    assert EXAMPLE.is_terminal("Done")
    assert not EXAMPLE.is_terminal("Start#1")
    assert EXAMPLE.transitions_from("Done") == ()


def test_generated_states_are_numbered_per_declaring_state_in_order() -> None:
    c = fresh(
        "state S: Ping? -> Pong! -> (Reply! or Failure!) -> S | Request? -> Reply! -> T;\n"
        "state T: Bye! -> Ping? -> T"
    )
    assert c.states == ("S", "S#1", "S#2", "S#3", "T", "T#1")
    assert edges(c) == [
        ("S", "Ping", "?", "S#1"),
        ("S#1", "Pong", "!", "S#2"),
        ("S#2", "Reply", "!", "S"),
        ("S#2", "Failure", "!", "S"),
        ("S", "Request", "?", "S#3"),
        ("S#3", "Reply", "!", "T"),
        ("T", "Bye", "!", "T#1"),
        ("T#1", "Ping", "?", "T"),
    ]


def test_free_layout_comments_and_missing_final_semicolon() -> None:
    c = fresh("# header\n  state\nA :\n Ping ?\n->\nB#1 |Pong!->A;# note\nstate B#1 # comment\n")
    assert c.states == ("A", "B#1")
    assert edges(c) == [("A", "Ping", "?", "B#1"), ("A", "Pong", "!", "A")]


def test_same_message_in_both_directions_is_deterministic() -> None:
    c = fresh("state S: Bye? -> D | Bye! -> D; state D;")
    assert [t.sender for t in c.transitions] == [Role.IMPORTER, Role.EXPORTER]


def test_unused_message_is_allowed() -> None:
    assert fresh("state S: Ping? -> S;").message_types == tuple(ALL)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "state Start: Request? -> Start;\nstate B: Reqest? -> B;",
            "line 2, col 10: unknown message 'Reqest' (known: Request, Reply, Failure)",
        ),
        ("state A: Request? -> B;", "line 1, col 22: unknown state 'B' (known: A)"),
        (
            "state A;\n  state A;",
            "line 2, col 9: duplicate state 'A' (first declared at line 1, col 7)",
        ),
        (
            "state A: Request? -> A | Request? -> A;",
            "line 1, col 26: state 'A' already has a transition on Request?",
        ),
        (
            "state A: (Reply! or Reply!) -> A;",
            "line 1, col 21: state 'A' already has a transition on Reply!",
        ),
        ("state A: Request -> A;", "line 1, col 18: expected '?' or '!' after message 'Request'"),
        (
            "state A: Request? A;",
            "line 1, col 19: expected '->' after a message step, found name 'A'",
        ),
        ("state A: (Reply! Failure!) -> A;", "line 1, col 18: expected ')'"),
        ("state A: () -> A;", "line 1, col 11: expected a message name in '( ... )', found ')'"),
        (
            "state A: Request? -> A\nstate B;",
            "line 2, col 1: expected '|' or ';' after target state 'A', found keyword 'state'",
        ),
        ("state A: B;", "line 1, col 10: expected a message step (Msg? or Msg!) before 'B'"),
        (
            "state A: Request? -> ;",
            "line 1, col 22: expected a message step (Msg? or Msg!) or a target state, found ';'",
        ),
        (
            "A: Request? -> A;",
            "line 1, col 1: expected 'state' at the start of a declaration, found name 'A'",
        ),
        ("state A @", "line 1, col 9: unexpected character '@'"),
        ("state ;", "line 1, col 7: expected a state name after 'state', found ';'"),
        ("  # nothing\n", "line 1, col 1: expected at least one 'state' declaration"),
        (
            "state S: Request? -> Reply! -> S;\nstate S#1;",
            "line 1, col 10: generated state 'S#1' collides",
        ),
    ],
)
def test_parse_errors_name_line_col_and_expectation(spec: str, expected: str) -> None:
    with pytest.raises(ContractDefinitionError) as info:
        fresh(spec, ALL[:3])
    assert expected in str(info.value)


def test_to_spec_round_trip() -> None:
    text = EXAMPLE.to_spec()
    assert "state Start#1: Reply! -> Start | Failure! -> Start;" in text
    assert "state Done;" in text
    again = fresh(text)
    assert again.states == EXAMPLE.states
    assert edges(again) == edges(EXAMPLE)
    assert again.to_spec() == text


def test_initial_state_option_and_unknown_initial() -> None:
    assert fresh(EXAMPLE_SPEC, initial="Idle").initial == "Idle"
    with pytest.raises(ContractDefinitionError, match="unknown initial state 'Nowhere'"):
        fresh(EXAMPLE_SPEC, initial="Nowhere")


def _another_class_named_request() -> type[msgspec.Struct]:
    class Request(msgspec.Struct, tag=True):
        pass

    return Request


def test_message_validation() -> None:
    with pytest.raises(
        ContractDefinitionError, match=r"class Untagged\(msgspec.Struct, tag=True\)"
    ):
        fresh("state S: Untagged? -> S;", [Request, Untagged])
    with pytest.raises(ContractDefinitionError, match=r"msgspec\.Struct subclasses"):
        fresh("state S;", [int])  # type: ignore[list-item]
    other_request = _another_class_named_request()
    with pytest.raises(ContractDefinitionError, match="two contract messages are named 'Request'"):
        fresh("state S;", [Request, other_request])


def test_message_union_decodes_every_message() -> None:
    decoder = msgspec.msgpack.Decoder(type=EXAMPLE.message_union)
    for message in (Request("x"), Reply("y"), Failure("z"), Ping(), Pong(), Bye()):
        assert decoder.decode(msgspec.msgpack.encode(message)) == message
    single = fresh("state S: Ping? -> S;", [Ping])
    assert single.message_union is Ping


def test_model_details() -> None:
    assert ECHO.name == "Echo"
    assert ECHO.module == __name__
    assert ECHO.ref == (__name__, "Echo")
    assert Role.EXPORTER.peer is Role.IMPORTER
    assert Role.IMPORTER.peer is Role.EXPORTER
    assert Transition("A", Reply, Direction.OUT, "B").sender is Role.EXPORTER
    assert Transition("A", Request, Direction.IN, "B").sender is Role.IMPORTER
    assert "Echo" in repr(ECHO)
    with pytest.raises(ContractDefinitionError, match="no state 'Nope'"):
        ECHO.transitions_from("Nope")


# -- checker ------------------------------------------------------------------------


def test_request_reply_for_both_roles() -> None:
    exporter, importer = ContractChecker(ECHO, Role.EXPORTER), ContractChecker(ECHO, Role.IMPORTER)
    assert importer.can_send() == (Request,)
    assert importer.can_receive() == ()
    assert exporter.can_send() == ()
    assert exporter.can_receive() == (Request,)
    for answer in (Reply(), Failure(), Reply()):
        importer.check_send(Request())
        exporter.check_receive(Request())
        assert importer.state == exporter.state == "Start#1"
        assert exporter.can_send() == (Reply, Failure)
        exporter.check_send(answer)
        importer.check_receive(answer)
        assert importer.state == exporter.state == "Start"
    assert importer.role is Role.IMPORTER
    assert importer.contract is ECHO


def test_wrong_type_is_a_violation_and_state_does_not_advance() -> None:
    importer = ContractChecker(ECHO, Role.IMPORTER)
    with pytest.raises(ProtocolViolation) as info:
        importer.check_send(Reply())
    err = info.value
    assert (
        str(err)
        == "contract Echo, state Start: the importer may not send Reply here; it may send Request"
    )
    assert (err.contract, err.state, err.message_type, err.by_peer) == (
        "Echo",
        "Start",
        "Reply",
        False,
    )
    assert importer.state == "Start"
    importer.check_send(Request())
    with pytest.raises(ProtocolViolation) as info:
        importer.check_send(Request())
    assert str(info.value) == (
        "contract Echo, state Start#1: the importer may not send Request here; "
        "it must wait to receive Reply, Failure"
    )
    assert importer.state == "Start#1"


def test_type_not_in_contract_is_a_violation() -> None:
    exporter = ContractChecker(ECHO, Role.EXPORTER, "Start#1")
    for msg in (Stranger(), "text", 3):
        with pytest.raises(
            ProtocolViolation,
            match="is not a message of this contract; the exporter may send Reply, Failure",
        ):
            exporter.check_send(msg)
    assert exporter.state == "Start#1"


def test_terminal_state_allows_nothing() -> None:
    checker = ContractChecker(EXAMPLE, Role.EXPORTER, "Busy")
    checker.check_send(Bye())
    assert checker.state == "Done"
    assert checker.is_terminal()
    with pytest.raises(
        ProtocolViolation,
        match="state Done: the exporter may not send Pong here; "
        "it may send nothing here; state Done is terminal",
    ):
        checker.check_send(Pong())
    with pytest.raises(ProtocolViolation) as info:
        checker.check_receive(Ping())
    assert info.value.by_peer
    assert info.value.state == "Done"
    assert checker.state == "Done"


def test_receive_violation_is_by_peer() -> None:
    exporter = ContractChecker(ECHO, Role.EXPORTER)
    with pytest.raises(ProtocolViolation) as info:
        exporter.check_receive(Reply())
    err = info.value
    assert err.by_peer
    assert err.message_type == "Reply"
    assert err.contract == "Echo"
    assert (
        "the importer may not send Reply here (received by the exporter); it may send Request"
        in str(err)
    )
    assert exporter.state == "Start"


def test_checker_start_state_must_exist() -> None:
    with pytest.raises(ContractDefinitionError, match="no state 'Nope'"):
        ContractChecker(ECHO, Role.EXPORTER, "Nope")


# -- registry -----------------------------------------------------------------------


def test_lookup_finds_registered_contract() -> None:
    assert Contract.lookup("Echo", __name__) is ECHO
    assert pickle.loads(pickle.dumps(ECHO)) is ECHO


def test_same_definition_replaces_and_different_one_conflicts() -> None:
    name = next(_names)
    first = Contract(name, "state S: Ping? -> S;", [Ping, Pong])
    second = Contract(name, "state S:\n  Ping? -> S", [Ping, Pong])
    assert Contract.lookup(name, __name__) is second is not first
    with pytest.raises(ContractDefinitionError, match="different definition"):
        Contract(name, "state S: Pong! -> S;", [Ping, Pong])
    with pytest.raises(ContractDefinitionError, match="different definition"):
        Contract(name, "state S: Ping? -> S;", [Ping, Pong, Bye])
    assert Contract.lookup(name, __name__) is second


def test_lookup_imports_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.delitem(sys.modules, "contract_fixtures", raising=False)
    monkeypatch.delitem(_contract._REGISTRY, ("contract_fixtures", "Greeting"), raising=False)
    found = Contract.lookup("Greeting", "contract_fixtures")
    assert "contract_fixtures" in sys.modules
    assert found is sys.modules["contract_fixtures"].GREETING
    assert found.ref == ("contract_fixtures", "Greeting")


def test_lookup_failures() -> None:
    with pytest.raises(ContractDefinitionError, match="cannot import module"):
        Contract.lookup("X", "sipkernel_no_such_module_for_tests")
    with pytest.raises(ContractDefinitionError, match="defines no contract named 'Nope'"):
        Contract.lookup("Nope", __name__)


# -- properties ---------------------------------------------------------------------

Table = dict[str, list[tuple[type[msgspec.Struct], str, str]]]


@st.composite
def machines(draw: st.DrawFn) -> tuple[list[str], Table]:
    """Random well-formed machines: states S0..Sn, deterministic transitions from POOL."""
    states = [f"S{i}" for i in range(draw(st.integers(1, 6)))]
    steps = st.tuples(st.sampled_from(POOL), st.sampled_from("?!"))
    table: Table = {}
    for state in states:
        pairs = draw(st.lists(steps, unique=True, max_size=4))
        table[state] = [(m, mark, draw(st.sampled_from(states))) for m, mark in pairs]
    return states, table


def render(states: list[str], table: Table, gap: str) -> str:
    """Declaration text for ``table`` using ``gap`` as the whitespace between tokens."""
    lines = []
    for state in states:
        paths = f"{gap}|{gap}".join(
            f"{m.__name__}{mark}{gap}->{gap}{t}" for m, mark, t in table[state]
        )
        lines.append(f"state {state}{gap}:{gap}{paths};" if paths else f"state {state};")
    return "\n".join(lines)


@given(machines(), st.sampled_from([" ", "\n", "  # a comment\n", "\t"]))
def test_parsing_generated_specs_gives_the_same_transitions(
    machine: tuple[list[str], Table], gap: str
) -> None:
    states, table = machine
    c = fresh(render(states, table, gap), list(POOL))
    expected = [(s, m.__name__, mark, t) for s in states for m, mark, t in table[s]]
    assert c.states == tuple(states)
    assert edges(c) == expected
    again = fresh(c.to_spec(), list(POOL))
    assert edges(again) == expected
    assert again.states == c.states


@given(machines(), st.lists(st.integers(0, 1000), max_size=30), st.sampled_from(Role), st.data())
def test_random_walks_are_accepted_in_lockstep_and_extra_message_is_rejected(
    machine: tuple[list[str], Table], choices: list[int], role: Role, data: st.DataObject
) -> None:
    states, table = machine
    c = fresh(render(states, table, " "), list(POOL))
    exporter, importer = ContractChecker(c, Role.EXPORTER), ContractChecker(c, Role.IMPORTER)
    state = c.initial
    for choice in choices:
        outgoing = c.transitions_from(state)
        if not outgoing:
            break
        t = outgoing[choice % len(outgoing)]
        sender, receiver = (
            (exporter, importer) if t.direction is Direction.OUT else (importer, exporter)
        )
        msg = t.message()
        sender.check_send(msg)
        receiver.check_receive(msg)
        state = t.target
        assert exporter.state == importer.state == state
    checker = exporter if role is Role.EXPORTER else importer
    candidates: list[type[msgspec.Struct]] = [*POOL, Stranger]
    forbidden = [m for m in candidates if m not in checker.can_send()]
    assume(forbidden)
    extra = data.draw(st.sampled_from(forbidden))
    with pytest.raises(ProtocolViolation) as info:
        checker.check_send(extra())
    assert checker.state == state
    assert (info.value.state, info.value.message_type) == (state, extra.__name__)
