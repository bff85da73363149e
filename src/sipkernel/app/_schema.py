"""The manifest's schema: what an application's TOML file may say, field by field.

Every table is a ``msgspec.Struct`` that refuses unknown fields, so a typo is
an error naming the field rather than a setting silently ignored. This module
says only what is *well-typed*; whether the names refer to each other
correctly is checked in ``_check``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
Restart = Literal["permanent", "transient", "temporary"]
Grouping = Literal["process", "key", "app"]


class _Table(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class AppSection(_Table):
    """``[app]``: the application as a whole."""

    name: str
    path: list[str] = []
    """Import roots for the application's modules, relative to the manifest."""
    data: str = "."
    """The directory capability paths are relative to (``--data`` overrides it)."""
    prepare: str | None = None
    """``module:function`` called as ``function(data_dir)`` before anything starts."""
    isolation: str | None = None
    """The configuration ``sipkernel run`` uses without ``--isolation``."""
    main: str | None = None
    """The process whose exit ends the run; without one, the run lasts until Ctrl-C."""


class EndpointDecl(_Table):
    """One endpoint parameter of a process: it serves a contract, or uses one."""

    serve: str | None = None
    use: str | None = None


class ProcessSection(_Table):
    """``[processes.NAME]``: one process, whatever domain it ends up in."""

    entry: str
    """``module:function``; the function's parameters are filled by name."""
    args: dict[str, Any] = {}
    endpoints: dict[str, EndpointDecl] = {}
    grants: dict[str, str] = {}
    """Parameter name -> capability name: this process's entitlements."""
    restart: Restart = "permanent"
    shutdown: float = 5.0
    key: str | None = None
    """The isolation key (default: the process's name); see ``per = "key"``."""


class ChannelSection(_Table):
    """``[[channels]]``: ``from`` (a ``use`` endpoint) is put through to ``to`` (a ``serve``)."""

    source: str = msgspec.field(name="from")
    target: str = msgspec.field(name="to")


class CapabilitySection(_Table):
    """``[capabilities.NAME]``: one broker grant; exactly one of the kinds is given."""

    directory: str | None = None
    file: str | None = None
    writable: bool = False
    max_size: int | None = None
    tcp: str | None = None
    """``host:port``."""


class SupervisorSection(_Table):
    """``[supervisors.NAME]``: an OTP supervisor over processes and supervisors."""

    children: list[str]
    strategy: Strategy = "one_for_one"
    intensity: int = 1
    period: float = 5.0


class DomainSection(_Table):
    """``[domains.NAME]``: a kind of place to run processes, and how they are grouped.

    ``per = "process"``: a domain of its own for each process placed here;
    ``"key"``: one per isolation key; ``"app"``: one for all of them.
    """

    kind: str
    per: Grouping = "process"
    policy: str | dict[str, Any] | None = None
    """A sandbox policy: a TOML file (relative to the manifest) or an inline table."""
    memory_limit: int | None = None
    """Bytes of memory for each domain (``process`` and ``sandbox`` kinds)."""
    fresh_exec: bool = False
    """``process`` kind: a re-executed interpreter per domain (its own address-space layout)."""


class IsolationSection(_Table):
    """``[isolation.NAME]``: a configuration; moves processes, never changes them."""

    default: str
    place: dict[str, str] = {}
    """Process name -> domain name, for the processes not in ``default``."""


class BenchSection(_Table):
    """``[bench]``: what ``sipkernel bench isolation`` counts as the work done."""

    operations: str
    """``process.arg``: an integer argument that is the number of operations."""
    unit: str = "ops"
    rounds: int = 3


class Manifest(_Table):
    """A whole application: ``sipkernel.app.load_manifest`` returns one."""

    app: AppSection
    processes: dict[str, ProcessSection]
    supervisors: dict[str, SupervisorSection] = {}
    domains: dict[str, DomainSection] = {}
    isolation: dict[str, IsolationSection] = {}
    contracts: dict[str, str] = {}
    """Contract name -> ``module:ATTRIBUTE`` of a :class:`sipkernel.Contract`."""
    channels: list[ChannelSection] = []
    capabilities: dict[str, CapabilitySection] = {}
    bench: BenchSection | None = None
