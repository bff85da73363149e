"""Where each key of a TOML file is written: key path -> line number.

Python's ``tomllib`` (and the other maintained TOML parsers for Python)
return plain data without source positions, so a manifest error could not
name its line. This scanner reads the file a second time, after ``tomllib``
has accepted it, and records the line of every table header and key,
including keys inside inline tables and arrays of tables. It only needs to be
right about files that are already valid TOML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

KeyPath = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


class Lines:
    """The line of every key path in one TOML text."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._array_counts: dict[KeyPath, int] = {}
        self._scan(text)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of its longest written prefix; None if unknown."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return None

    def _record(self, path: KeyPath, line: int) -> None:
        for n in range(1, len(path) + 1):
            self._lines.setdefault(path[:n], line)

    def _scan(self, text: str) -> None:
        table: KeyPath = ()
        lines = text.splitlines()
        number = 0
        while number < len(lines):
            line = lines[number].strip()
            number += 1
            if not line or line.startswith("#"):
                continue
            if line.startswith("[["):
                table = self._array_table(_parse_key(line[2:])[0], number)
            elif line.startswith("["):
                table = _parse_key(line[1:])[0]
                self._record(table, number)
            else:
                number = self._key_value(table, lines, number)

    def _array_table(self, name: KeyPath, number: int) -> KeyPath:
        index = self._array_counts.get(name, 0)
        self._array_counts[name] = index + 1
        path = (*name, index)
        self._record(path, number)
        return path

    def _key_value(self, table: KeyPath, lines: list[str], number: int) -> int:
        """Record ``key = value`` at line ``number`` (1-based); return the next line."""
        key, rest = _parse_key(lines[number - 1].strip())
        path = (*table, *key)
        self._record(path, number)
        value = rest.lstrip()[1:] if rest.lstrip().startswith("=") else rest
        _Inline(self, number).value(value.strip(), path)
        return _skip_continuation(value, lines, number)


class _Inline:
    """Records the keys of inline tables and arrays written on one line."""

    def __init__(self, lines: Lines, number: int) -> None:
        self._lines = lines
        self._number = number

    def value(self, text: str, path: KeyPath) -> str:
        """Consume one value from the start of ``text``; return what follows it."""
        if text.startswith("{"):
            return self._table(text[1:].lstrip(), path)
        if text.startswith("["):
            return self._array(text[1:].lstrip(), path)
        return _skip_scalar(text)

    def _table(self, text: str, path: KeyPath) -> str:
        while text and not text.startswith("}"):
            key, text = _parse_key(text)
            self._lines._record((*path, *key), self._number)
            text = self.value(text.lstrip()[1:].lstrip(), (*path, *key)).lstrip()
            text = text[1:].lstrip() if text.startswith(",") else text
        return text[1:]

    def _array(self, text: str, path: KeyPath) -> str:
        index = 0
        while text and not text.startswith("]"):
            text = self.value(text, (*path, index)).lstrip()
            text = text[1:].lstrip() if text.startswith(",") else text
            index += 1
        return text[1:]


def _parse_key(text: str) -> tuple[KeyPath, str]:
    """A dotted key at the start of ``text`` (bare or quoted parts), and the rest."""
    parts: list[str] = []
    text = text.lstrip()
    while text:
        if text[0] in "\"'":
            end = text.index(text[0], 1)
            parts.append(text[1:end])
            text = text[end + 1 :].lstrip()
        else:
            match = _BARE.match(text)
            if match is None:
                break
            parts.append(match.group())
            text = text[match.end() :].lstrip()
        if not text.startswith("."):
            break
        text = text[1:].lstrip()
    return tuple(parts), text.lstrip("]").lstrip()


def _skip_scalar(text: str) -> str:
    """Drop one scalar (string, number, boolean, date) from the start of ``text``."""
    if text.startswith(("'", '"')):
        quote = text[0]
        i = 1
        while i < len(text) and text[i] != quote:
            i += 2 if (quote == '"' and text[i] == "\\") else 1
        return text[i + 1 :]
    match = re.match(r"[^,\]}]*", text)
    return text[match.end() if match else 0 :]


def _skip_continuation(value: str, lines: list[str], number: int) -> int:
    """The line after a value that may go on over several lines (arrays, long strings)."""
    for quote in ('"""', "'''"):
        if value.strip().startswith(quote) and value.count(quote) == 1:
            while number < len(lines) and quote not in lines[number]:
                number += 1
            return number + 1
    depth = _bracket_depth(value)
    while depth > 0 and number < len(lines):
        depth += _bracket_depth(lines[number])
        number += 1
    return number


def _bracket_depth(text: str) -> int:
    """Open minus closed brackets outside strings and comments."""
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return depth
