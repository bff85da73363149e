"""Packages whose public names are imported on first use (PEP 562).

``import sipkernel`` and the command line stay light: a package lists where
each public name lives, and :func:`lazy_names` gives it the module
``__getattr__`` that imports the name's home on first use and keeps it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``homes`` maps a name to its module
    (relative, like ``"._policy"``)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
