"""A module that defines a contract at import time, for ``Contract.lookup`` tests.

Only ``test_contract.py::test_lookup_imports_the_module`` imports it (by name).
"""

from __future__ import annotations

import msgspec

from sipkernel._core._contract import Contract


class Hello(msgspec.Struct, tag=True):
    """Importer greets."""

    who: str


class Welcome(msgspec.Struct, tag=True):
    """Exporter answers."""


GREETING = Contract(
    "Greeting", "state Start: Hello? -> Welcome! -> Done; state Done;", [Hello, Welcome]
)
