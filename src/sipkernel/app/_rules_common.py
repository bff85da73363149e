"""What the rules share: the "did you mean" hint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(name: str, known: Iterable[str], what: str) -> str:
    """A hint for an unknown ``name``: the closest known one, or the whole list."""
    choices = sorted(known)
    close = difflib.get_close_matches(name, choices, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    if choices:
        return f"write one of the {what}: {', '.join(choices)}"
    return f"declare the {what} first"
