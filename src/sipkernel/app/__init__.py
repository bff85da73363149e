"""Applications declared in a manifest, deployed under any isolation configuration.

A manifest (TOML) declares an application's processes, the contracts between
them, the capabilities each is granted, its supervision tree, its domains
and named *isolation configurations* that only move processes between
domains (``monolithic``: all local; ``microkernel``: a process domain each;
``sandboxed``; ``mixed``; ...). The process code never changes between them.
The README's "Manifests" section is the reference; ``examples/webfiles`` is a
complete application.

* :func:`load_blueprint` reads, imports and checks a manifest (``sipkernel check``);
* :class:`Application` runs one in a kernel (``sipkernel run``);
* :func:`accept` / :func:`connect` (and their ``a``-prefixed awaitable forms)
  are what process code calls on the listener and dialer endpoints a manifest
  gives it: connections that survive a peer's restart.
"""

from ._load import ManifestError, Problem
from ._resolve import Blueprint, load_blueprint
from ._runner import Application
from ._schema import Manifest
from ._wiring import ServiceUnavailable, aaccept, accept, aconnect, connect

__all__ = [
    "Application",
    "Blueprint",
    "Manifest",
    "ManifestError",
    "Problem",
    "ServiceUnavailable",
    "aaccept",
    "accept",
    "aconnect",
    "connect",
    "load_blueprint",
]
