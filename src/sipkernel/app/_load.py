"""Reading a manifest: TOML syntax, then types, each error with its file and line."""

from __future__ import annotations

import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from .._core._errors import UsageError
from ._locate import KeyPath, Lines
from ._schema import (
    CapabilitySection,
    DomainSection,
    EndpointDecl,
    IsolationSection,
    Manifest,
    ProcessSection,
    SupervisorSection,
)

_S = TypeVar("_S")

_NAMED_TABLES: dict[str, type[Any]] = {
    "processes": ProcessSection,
    "supervisors": SupervisorSection,
    "domains": DomainSection,
    "isolation": IsolationSection,
    "capabilities": CapabilitySection,
}
"""The sections made of named tables; each entry is checked on its own (for its line)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: where, what, and what to write instead."""

    file: str
    line: int | None
    where: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = (
            f"{place}: {self.where}: {self.message}" if self.where else f"{place}: {self.message}"
        )
        return f"{text}\n    {self.hint}" if self.hint else text


class ManifestError(UsageError):
    """A manifest that cannot be run; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Source:
    """A parsed manifest file: its data, its path and the line of every key."""

    path: Path
    lines: Lines

    @property
    def directory(self) -> Path:
        return self.path.parent

    def problem(self, where: KeyPath, message: str, hint: str = "") -> Problem:
        """A problem at ``where`` (a key path), located in this file."""
        return Problem(str(self.path), self.lines.line_of(where), _dotted(where), message, hint)


def read_manifest(path: str | Path) -> tuple[Manifest, Source]:
    """Parse and type-check ``path``; raise :class:`ManifestError` naming each error's line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(
            [Problem(str(path), None, "", f"cannot read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ManifestError(
            [Problem(str(path), None, "", f"not UTF-8 text: {exc.reason}")]
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError([_syntax_problem(path, exc)]) from None
    source = Source(path, Lines(text))
    return _convert_manifest(data, source), source


def _syntax_problem(path: Path, exc: tomllib.TOMLDecodeError) -> Problem:
    message = str(exc)
    match = re.search(r"\(at line (\d+), column \d+\)", message)
    line = int(match.group(1)) if match else None
    text = message[: match.start()].strip() if match else message
    return Problem(str(path), line, "", f"TOML syntax error: {text}", "")


def _convert_manifest(data: dict[str, Any], source: Source) -> Manifest:
    problems: list[Problem] = []
    sections: dict[str, dict[str, Any]] = {}
    for section, kind in _NAMED_TABLES.items():
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            problems.append(source.problem((section,), "must be a table of named tables"))
            continue
        sections[section] = _convert_named(raw, kind, (section,), source, problems)
    rest = {k: v for k, v in data.items() if k not in _NAMED_TABLES}
    if "processes" not in data:
        problems.append(
            source.problem((), "no processes", "add at least one [processes.NAME] table")
        )
    manifest = _convert(rest | {"processes": {}}, Manifest, (), source, problems)
    if problems or manifest is None:
        raise ManifestError(problems)
    return msgspec.structs.replace(manifest, **sections)


def _convert_named(
    raw: dict[str, Any], kind: type[_S], where: KeyPath, source: Source, problems: list[Problem]
) -> dict[str, _S]:
    converted: dict[str, _S] = {}
    for name, value in raw.items():
        path = (*where, name)
        if kind is ProcessSection and isinstance(value, dict):
            value = _with_endpoints(value, path, source, problems)  # noqa: PLW2901
        entry = _convert(value, kind, path, source, problems)
        if entry is not None:
            converted[name] = entry
    return converted


def _with_endpoints(
    value: dict[str, Any], where: KeyPath, source: Source, problems: list[Problem]
) -> dict[str, Any]:
    """A process table whose endpoints are checked one by one (so errors name them)."""
    endpoints = value.get("endpoints")
    if not isinstance(endpoints, dict):
        return value
    path = (*where, "endpoints")
    checked = _convert_named(endpoints, EndpointDecl, path, source, problems)
    if len(checked) < len(endpoints):
        return {**value, "endpoints": {}}  # the bad ones are reported already
    return value


def _convert(
    value: Any, kind: type[_S], where: KeyPath, source: Source, problems: list[Problem]
) -> _S | None:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        message, inner = _split_validation(str(exc))
        hint = _type_hint(message, _allowed_values(kind, inner))
        problems.append(source.problem((*where, *inner), message, hint))
        return None


def _allowed_values(kind: type[Any], inner: KeyPath) -> tuple[str, ...]:
    """The values a ``Literal`` field allows, when ``inner`` names one directly."""
    if len(inner) != 1 or not isinstance(kind, type) or not issubclass(kind, msgspec.Struct):
        return ()
    for field in msgspec.structs.fields(kind):
        if field.encode_name == inner[0] and typing.get_origin(field.type) is typing.Literal:
            return tuple(str(value) for value in typing.get_args(field.type))
    return ()


def _split_validation(text: str) -> tuple[str, KeyPath]:
    """msgspec's ``Expected `int`, got `str` - at `$.a[0].b``` -> message and key path."""
    message, _, at = text.partition(" - at `$")
    path: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[`]+)|\[(\d+)\]", at):
        path.append(name if name else int(index))
    missing = re.match(r"Object missing required field `(.+)`", message)
    if missing:
        return f"missing required field {missing.group(1)!r}", tuple(path)
    unknown = re.match(r"Object contains unknown field `(.+)`", message)
    if unknown:
        return f"unknown field {unknown.group(1)!r}", (*path, unknown.group(1))
    return message.replace("`", "'"), tuple(path)


def _type_hint(message: str, allowed: tuple[str, ...]) -> str:
    if message.startswith("unknown field"):
        return "remove it, or check its spelling against the manifest reference in the README"
    if allowed:
        return "write one of: " + ", ".join(f'"{value}"' for value in allowed)
    return ""


def _dotted(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
