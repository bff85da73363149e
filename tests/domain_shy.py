"""A contract whose module refuses to be imported inside a domain (as a module
that reads a host file at import would, in a sandbox)."""

from __future__ import annotations

import os

import msgspec

import sipkernel as sk
from sipkernel._core._kernel import NESTED_ENV

if os.environ.get(NESTED_ENV):
    raise RuntimeError("this module cannot be imported inside a domain")


class Note(msgspec.Struct, tag=True):
    text: str


SHY = sk.Contract("Shy", "state Open: Note? -> Open;", [Note])
