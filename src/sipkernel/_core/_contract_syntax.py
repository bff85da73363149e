"""Parser of the contract declaration text.

Grammar (whitespace and newlines are free; ``#`` after whitespace or punctuation
starts a comment that runs to the end of the line)::

    spec        := declaration* ;
    declaration := "state" NAME ":" path ("|" path)* ";"     # ";" optional at the end
                 | "state" NAME ";"                          # terminal state
    path        := step ("->" step)* "->" NAME                # NAME is the target state
    step        := MSG ("?" | "!")
                 | "(" MSG ("?" | "!") ("or" MSG ("?" | "!"))* ")"

A NAME is an identifier optionally followed by ``#`` and digits (``Start#1``): this
is how generated intermediate states are written in the canonical text, so that
:func:`render_spec` output parses back to the same machine. ``#`` directly after
an identifier and followed by a digit is therefore part of the name; write a space
before a comment that starts with a digit.

The parser knows nothing of message classes: it takes the message names and
returns transitions with names and direction marks (``"?"``/``"!"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ._errors import ContractDefinitionError

DirectionMark = Literal["?", "!"]

__all__ = ["DirectionMark", "ParsedSpec", "RawTransition", "parse_spec", "render_spec"]

_TOKEN_RE = re.compile(
    r"""
      (?P<ws>[ \t\r\f\v]+)
    | (?P<nl>\n)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\#[0-9]+)*)
    | (?P<comment>\#[^\n]*)
    | (?P<arrow>->)
    | (?P<punct>[?!|():;])
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"state", "or"})


@dataclass(frozen=True, slots=True)
class RawTransition:
    """One parsed transition, with the message by name and its direction mark."""

    source: str
    message: str
    direction: DirectionMark
    target: str


@dataclass(frozen=True, slots=True)
class ParsedSpec:
    """The result of :func:`parse_spec`: states in declaration order and transitions."""

    states: tuple[str, ...]
    transitions: tuple[RawTransition, ...]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "name", "keyword", "punct" (text is the symbol) or "eof"
    text: str
    line: int
    col: int

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of text"
        if self.kind == "name":
            return f"name '{self.text}'"
        if self.kind == "keyword":
            return f"keyword '{self.text}'"
        return f"'{self.text}'"


@dataclass(slots=True)
class _Step:
    alternatives: list[tuple[str, DirectionMark, _Token]]


@dataclass(slots=True)
class _Path:
    steps: list[_Step]
    target: _Token


@dataclass(slots=True)
class _Decl:
    name: _Token
    paths: list[_Path] = field(default_factory=list)


def _error(token: _Token, text: str) -> ContractDefinitionError:
    return ContractDefinitionError(f"line {token.line}, col {token.col}: {text}")


def _tokenise(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        col = pos - line_start + 1
        if match is None:
            bad = _Token("punct", text[pos], line, col)
            raise _error(bad, f"unexpected character {text[pos]!r}")
        kind, value = match.lastgroup or "", match.group()
        if kind == "nl":
            line, line_start = line + 1, match.end()
        elif kind == "name":
            tokens.append(_Token("keyword" if value in _KEYWORDS else "name", value, line, col))
        elif kind in ("arrow", "punct"):
            tokens.append(_Token("punct", value, line, col))
        pos = match.end()
    tokens.append(_Token("eof", "", line, pos - line_start + 1))
    return tokens


class _Parser:
    """Recursive-descent parser over the token list (first phase: syntax only)."""

    def __init__(self, text: str, messages: Sequence[str]) -> None:
        self._tokens = _tokenise(text)
        self._pos = 0
        self._messages = tuple(messages)
        self._known = frozenset(messages)

    def _peek(self) -> _Token:
        return self._tokens[self._pos]

    def _next(self) -> _Token:
        token = self._tokens[self._pos]
        if token.kind != "eof":
            self._pos += 1
        return token

    def _at(self, symbol: str) -> bool:
        token = self._peek()
        return token.kind in ("punct", "keyword") and token.text == symbol

    def _expect(self, symbol: str, context: str) -> _Token:
        token = self._next()
        if token.kind not in ("punct", "keyword") or token.text != symbol:
            raise _error(token, f"expected '{symbol}' {context}, found {token.describe()}")
        return token

    def _expect_name(self, context: str) -> _Token:
        token = self._next()
        if token.kind != "name":
            raise _error(token, f"expected {context}, found {token.describe()}")
        return token

    def declarations(self) -> list[_Decl]:
        decls: list[_Decl] = []
        while self._peek().kind != "eof":
            decls.append(self._declaration())
        return decls

    def _declaration(self) -> _Decl:
        self._expect("state", "at the start of a declaration")
        decl = _Decl(self._expect_name("a state name after 'state'"))
        if self._at(":"):
            self._next()
            decl.paths.append(self._path())
            while self._at("|"):
                self._next()
                decl.paths.append(self._path())
        self._end_of_declaration(decl)
        return decl

    def _end_of_declaration(self, decl: _Decl) -> None:
        token = self._peek()
        if token.kind == "eof":
            return
        if self._at(";"):
            self._next()
            return
        after = f"target state '{decl.paths[-1].target.text}'" if decl.paths else "state name"
        expected = "'|' or ';'" if decl.paths else "':' or ';'"
        raise _error(token, f"expected {expected} after {after}, found {token.describe()}")

    def _path(self) -> _Path:
        steps: list[_Step] = []
        while True:
            if self._at("("):
                steps.append(self._group())
            else:
                name = self._expect_name("a message step (Msg? or Msg!) or a target state")
                if not (self._at("?") or self._at("!")):
                    return self._finish_path(steps, name)
                steps.append(_Step([self._message(name)]))
            self._expect("->", "after a message step")

    def _finish_path(self, steps: list[_Step], target: _Token) -> _Path:
        if self._at("->"):
            raise _error(
                self._peek(),
                f"expected '?' or '!' after message '{target.text}' (only the last name "
                "of a path is a target state)",
            )
        if not steps:
            raise _error(target, f"expected a message step (Msg? or Msg!) before '{target.text}'")
        return _Path(steps, target)

    def _group(self) -> _Step:
        self._expect("(", "to open an alternative")
        step = _Step([self._message(self._expect_name("a message name in '( ... )'"))])
        while self._at("or"):
            self._next()
            step.alternatives.append(self._message(self._expect_name("a message name after 'or'")))
        self._expect(")", "to close the alternative (or 'or' for another message)")
        return step

    def _message(self, name: _Token) -> tuple[str, DirectionMark, _Token]:
        if name.text not in self._known:
            known = ", ".join(self._messages) or "none"
            raise _error(name, f"unknown message '{name.text}' (known: {known})")
        mark = self._next()
        if mark.text == "?" and mark.kind == "punct":
            return name.text, "?", name
        if mark.text == "!" and mark.kind == "punct":
            return name.text, "!", name
        raise _error(
            mark, f"expected '?' or '!' after message '{name.text}', found {mark.describe()}"
        )


def _check_unique_states(decls: Sequence[_Decl]) -> None:
    first: dict[str, _Token] = {}
    for decl in decls:
        seen = first.get(decl.name.text)
        if seen is not None:
            raise _error(
                decl.name,
                f"duplicate state '{decl.name.text}' (first declared at line {seen.line}, "
                f"col {seen.col})",
            )
        first[decl.name.text] = decl.name


def _generated_names(decl: _Decl, declared: Mapping[str, _Token]) -> list[list[str]]:
    """Per path, the names of the states after each step but the last."""
    counter = 0
    result: list[list[str]] = []
    for path in decl.paths:
        names: list[str] = []
        for step in path.steps[:-1]:
            counter += 1
            name = f"{decl.name.text}#{counter}"
            if name in declared:
                raise _error(
                    step.alternatives[0][2],
                    f"generated state '{name}' collides with a declared state of that name",
                )
            names.append(name)
        result.append(names)
    return result


class _Builder:
    """Second phase: names intermediate states, resolves targets, checks determinism."""

    def __init__(self, decls: Sequence[_Decl]) -> None:
        self._decls = decls
        self._declared = {decl.name.text: decl.name for decl in decls}
        self._states: list[str] = []
        self._transitions: list[RawTransition] = []
        self._seen: dict[tuple[str, str, str], _Token] = {}

    def build(self) -> ParsedSpec:
        generated = [_generated_names(decl, self._declared) for decl in self._decls]
        known = set(self._declared)
        for names_per_path in generated:
            for names in names_per_path:
                known.update(names)
        for decl, names_per_path in zip(self._decls, generated, strict=True):
            self._states.append(decl.name.text)
            for path, names in zip(decl.paths, names_per_path, strict=True):
                self._states.extend(names)
                self._check_target(path.target, known)
                chain = [decl.name.text, *names, path.target.text]
                for index, step in enumerate(path.steps):
                    self._add_step(chain[index], step, chain[index + 1])
        return ParsedSpec(tuple(self._states), tuple(self._transitions))

    def _check_target(self, target: _Token, known: set[str]) -> None:
        if target.text not in known:
            names = ", ".join(self._declared)
            raise _error(target, f"unknown state '{target.text}' (known: {names})")

    def _add_step(self, source: str, step: _Step, target: str) -> None:
        for message, mark, token in step.alternatives:
            key = (source, message, mark)
            earlier = self._seen.get(key)
            if earlier is not None:
                raise _error(
                    token,
                    f"state '{source}' already has a transition on {message}{mark} "
                    f"(line {earlier.line}, col {earlier.col}); a contract must be "
                    "deterministic",
                )
            self._seen[key] = token
            self._transitions.append(RawTransition(source, message, mark, target))


def parse_spec(text: str, messages: Sequence[str]) -> ParsedSpec:
    """Parse declaration ``text`` whose message steps may name any of ``messages``.

    Raises :class:`ContractDefinitionError` with the line and column of the first
    problem: bad syntax, unknown message, unknown target state, duplicate state,
    two transitions of one state on the same message and direction, or no states.
    """
    decls = _Parser(text, messages).declarations()
    if not decls:
        raise ContractDefinitionError("line 1, col 1: expected at least one 'state' declaration")
    _check_unique_states(decls)
    return _Builder(decls).build()


def render_spec(
    states: Sequence[str], transitions: Mapping[str, Sequence[tuple[str, DirectionMark, str]]]
) -> str:
    """Canonical text: one ``state X: M? -> T | N! -> U;`` (or ``state X;``) line per state.

    ``transitions`` maps a state to its ``(message, mark, target)`` triples, in order.
    """
    lines: list[str] = []
    for state in states:
        paths = [f"{msg}{mark} -> {target}" for msg, mark, target in transitions.get(state, ())]
        lines.append(f"state {state}: {' | '.join(paths)};" if paths else f"state {state};")
    return "\n".join(lines) + "\n"
