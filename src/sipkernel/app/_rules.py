"""The manifest's structural rules: names that must exist, wiring that must fit.

Each rule is a function from a :class:`Blueprint` to the problems it finds;
``check_rules`` runs them all. A problem names the key at fault (hence its
line) and, where it can, what to write instead.
"""

from __future__ import annotations

from collections.abc import Callable

from . import _rules_deploy
from ._load import Problem
from ._resolve import Blueprint, required_parameters
from ._rules_common import suggest
from ._schema import CapabilitySection, EndpointDecl

Rule = Callable[[Blueprint], list[Problem]]


def check_rules(blueprint: Blueprint) -> list[Problem]:
    """Every problem any rule finds, in the order of the rules."""
    problems: list[Problem] = []
    for rule in RULES:
        problems += rule(blueprint)
    return problems


def _endpoints(blueprint: Blueprint) -> list[Problem]:
    problems = []
    for name, process in blueprint.manifest.processes.items():
        for param, decl in process.endpoints.items():
            problems += _endpoint(blueprint, ("processes", name, "endpoints", param), decl)
    return problems


def _endpoint(blueprint: Blueprint, where: tuple[str, ...], decl: EndpointDecl) -> list[Problem]:
    src = blueprint.source
    if (decl.serve is None) == (decl.use is None):
        return [src.problem(where, "give exactly one of serve or use", 'e.g. { use = "Files" }')]
    contract = decl.serve or decl.use or ""
    if contract not in blueprint.manifest.contracts:
        hint = suggest(contract, blueprint.manifest.contracts, "contracts in [contracts]")
        return [src.problem(where, f"unknown contract {contract!r}", hint)]
    return []


def _parameters(blueprint: Blueprint) -> list[Problem]:
    """Every parameter given exactly once, and every required one given."""
    problems = []
    for name, process in blueprint.manifest.processes.items():
        fn = blueprint.functions.get(name)
        if fn is None:
            continue  # its entry is already reported
        params = set(blueprint.parameters[name])
        given: dict[str, str] = {}
        for section, names in (
            ("args", process.args),
            ("endpoints", process.endpoints),
            ("grants", process.grants),
        ):
            for param in names:
                where = ("processes", name, section, param)
                if param not in params:
                    message = f"{process.entry} has no parameter {param!r}"
                    problems.append(
                        blueprint.source.problem(
                            where, message, suggest(param, params, "parameters")
                        )
                    )
                elif param in given:
                    message = f"{param!r} is given twice (in {given[param]} and {section})"
                    problems.append(blueprint.source.problem(where, message, "keep one"))
                given.setdefault(param, section)
        for param in sorted(required_parameters(fn) - set(given)):
            problems.append(_not_given(blueprint, name, param))
    return problems


def _not_given(blueprint: Blueprint, process: str, param: str) -> Problem:
    entry = blueprint.manifest.processes[process].entry
    return blueprint.source.problem(
        ("processes", process),
        f"{entry} uses {param!r}, but nothing gives it",
        f'if it is a capability, grant it: grants = {{ {param} = "CAPABILITY" }}; '
        f'an endpoint: endpoints = {{ {param} = {{ use = "CONTRACT" }} }}; '
        f"a value: args = {{ {param} = ... }}",
    )


def _grants(blueprint: Blueprint) -> list[Problem]:
    problems = []
    capabilities = blueprint.manifest.capabilities
    for name, process in blueprint.manifest.processes.items():
        for param, capability in process.grants.items():
            if capability not in capabilities:
                where = ("processes", name, "grants", param)
                hint = suggest(capability, capabilities, "capabilities in [capabilities]")
                problems.append(
                    blueprint.source.problem(where, f"unknown capability {capability!r}", hint)
                )
    for name, section in capabilities.items():
        problems += _capability(blueprint, ("capabilities", name), section)
    return problems


def _capability(
    blueprint: Blueprint, where: tuple[str, ...], cap: CapabilitySection
) -> list[Problem]:
    kinds = [k for k in ("directory", "file", "tcp") if getattr(cap, k) is not None]
    if len(kinds) != 1:
        return [blueprint.source.problem(where, "give exactly one of directory, file or tcp")]
    if kinds != ["file"] and (cap.writable or cap.max_size is not None):
        return [blueprint.source.problem(where, "writable and max_size are for file capabilities")]
    if cap.tcp is not None:
        host, colon, port = cap.tcp.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            return [
                blueprint.source.problem(
                    (*where, "tcp"), f"{cap.tcp!r} is not host:port", 'e.g. "127.0.0.1:8080"'
                )
            ]
    return []


def _channels(blueprint: Blueprint) -> list[Problem]:
    problems: list[Problem] = []
    connected: set[tuple[str, str]] = set()
    known = set(blueprint.manifest.contracts)
    for index, chan in enumerate(blueprint.manifest.channels):
        where = ("channels", index)
        use = _channel_end(blueprint, (*where, "from"), chan.source, "use", problems)
        serve = _channel_end(blueprint, (*where, "to"), chan.target, "serve", problems)
        if use is not None and use[1] in connected:
            message = f"{chan.source} is connected twice"
            problems.append(
                blueprint.source.problem(
                    (*where, "from"), message, "a use endpoint reaches one service"
                )
            )
        if use is not None:
            connected.add(use[1])
        if use is None or serve is None or not {use[0], serve[0]} <= known:
            continue  # reported already
        if use[0] != serve[0]:
            message = (
                f"the contracts do not match: {chan.source} uses {use[0]}, "
                f"{chan.target} serves {serve[0]}"
            )
            problems.append(
                blueprint.source.problem(where, message, "connect endpoints of one contract")
            )
    for name, process in blueprint.manifest.processes.items():
        for param, decl in process.endpoints.items():
            if decl.use is not None and (name, param) not in connected:
                place = ("processes", name, "endpoints", param)
                hint = f'add [[channels]] from = "{name}.{param}" to = "PROCESS.ENDPOINT"'
                problems.append(
                    blueprint.source.problem(place, "this endpoint is not connected", hint)
                )
    return problems


def _channel_end(
    blueprint: Blueprint,
    where: tuple[str | int, ...],
    text: str,
    side: str,
    problems: list[Problem],
) -> tuple[str, tuple[str, str]] | None:
    """``(contract, (process, endpoint))`` for ``process.endpoint`` on ``side``, or None."""
    process_name, dot, param = text.partition(".")
    process = blueprint.manifest.processes.get(process_name)
    if not dot or process is None:
        hint = suggest(process_name, blueprint.manifest.processes, "processes")
        problems.append(
            blueprint.source.problem(where, f"{text!r} names no process.endpoint", hint)
        )
        return None
    decl = process.endpoints.get(param)
    contract = None if decl is None else getattr(decl, side)
    if contract is None:
        hint = (
            f'declare it: [processes.{process_name}.endpoints] {param} = {{ {side} = "CONTRACT" }}'
        )
        problems.append(
            blueprint.source.problem(
                where, f"{process_name} has no {side} endpoint {param!r}", hint
            )
        )
        return None
    return contract, (process_name, param)


RULES: list[Rule] = [
    _endpoints,
    _parameters,
    _grants,
    _channels,
    _rules_deploy.supervision,
    _rules_deploy.domains,
    _rules_deploy.configurations,
    _rules_deploy.app_references,
]
