"""Rules about how an application is deployed: supervision, domains, configurations."""

from __future__ import annotations

import functools
import os

from .._core._domain import domain_kinds
from ._load import Problem
from ._resolve import Blueprint
from ._rules_common import suggest


def supervision(blueprint: Blueprint) -> list[Problem]:
    """Children exist, each has one supervisor, no cycles, every process is supervised."""
    manifest, src = blueprint.manifest, blueprint.source
    problems: list[Problem] = []
    parent: dict[str, str] = {}
    for name, sup in manifest.supervisors.items():
        if name in manifest.processes:
            problems.append(
                src.problem(
                    ("supervisors", name), f"{name!r} is also a process's name", "rename one"
                )
            )
        if sup.intensity < 0 or not sup.period > 0:
            problems.append(
                src.problem(("supervisors", name), "intensity must be >= 0 and period > 0")
            )
        for index, child in enumerate(sup.children):
            where = ("supervisors", name, "children", index)
            if child not in manifest.processes and child not in manifest.supervisors:
                known = [*manifest.processes, *manifest.supervisors]
                problems.append(
                    src.problem(
                        where,
                        f"unknown child {child!r}",
                        suggest(child, known, "processes and supervisors"),
                    )
                )
            elif child in parent:
                problems.append(
                    src.problem(
                        where,
                        f"{child!r} is already supervised by {parent[child]!r}",
                        "a child has one supervisor",
                    )
                )
            else:
                parent[child] = name
    problems += _cycles(blueprint, parent)
    for name in manifest.processes:
        if name not in parent:
            hint = f'add it to a supervisor: [supervisors.NAME] children = [..., "{name}"]'
            problems.append(
                src.problem(("processes", name), "not reachable from any supervisor", hint)
            )
    return problems


def _cycles(blueprint: Blueprint, parent: dict[str, str]) -> list[Problem]:
    problems = []
    reported: set[str] = set()
    for start in blueprint.manifest.supervisors:
        seen = [start]
        node = start
        while node in parent:
            node = parent[node]
            if node in seen:
                cycle = seen[seen.index(node) :]
                if not reported.intersection(cycle):
                    reported.update(cycle)
                    path = " -> ".join([*cycle, node])  # each is supervised by the next
                    where = ("supervisors", node, "children")
                    problems.append(
                        blueprint.source.problem(
                            where,
                            f"supervision cycle: {path}",
                            "a supervision tree has one root and no loops",
                        )
                    )
                break
            seen.append(node)
    return problems


def domains(blueprint: Blueprint) -> list[Problem]:
    """Every domain kind is known to sipkernel and can run on this machine."""
    problems = _domain_options(blueprint)
    for name, domain in blueprint.manifest.domains.items():
        where = ("domains", name, "kind")
        if domain.kind not in domain_kinds():
            hint = suggest(domain.kind, domain_kinds(), "domain kinds this sipkernel provides")
            problems.append(
                blueprint.source.problem(where, f"no domain kind {domain.kind!r} here", hint)
            )
        elif domain.kind == "sandbox":
            refusal = user_namespaces_refused()
            if refusal is not None:
                problems.append(
                    blueprint.source.problem(
                        where,
                        f"this machine cannot run sandbox domains: {refusal}",
                        'use kind = "process" here, or fix the cause',
                    )
                )
    return problems


@functools.cache
def user_namespaces_refused() -> str | None:
    """Why this machine refuses the sandbox's namespaces, or None if it allows them.

    Tried for real, in a short-lived child: the only reliable answer, since
    AppArmor, seccomp profiles and sysctls can each refuse them.
    """
    from ..sandbox import Policy
    from ..sandbox._contain import explain_unshare_failure, namespace_flags
    from ..sandbox._linux import unshare

    flags = namespace_flags(Policy().namespaces)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only reports
        os.close(read_end)
        try:
            unshare(flags)
            code = 0
        except OSError as exc:
            code = exc.errno or 1
        os.write(write_end, code.to_bytes(2, "little"))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        code = int.from_bytes(reader.read(2) or b"\1\0", "little")
    os.waitpid(pid, 0)
    if code == 0:
        return None
    return explain_unshare_failure(OSError(code, os.strerror(code)), flags)


def configurations(blueprint: Blueprint) -> list[Problem]:
    """Each configuration places every process in a declared domain."""
    manifest, src = blueprint.manifest, blueprint.source
    if not manifest.isolation:
        return [
            src.problem(
                (), "no isolation configurations", 'add [isolation.NAME] default = "DOMAIN"'
            )
        ]
    problems = []
    for name, config in manifest.isolation.items():
        if config.default not in manifest.domains:
            hint = suggest(config.default, manifest.domains, "domains in [domains]")
            problems.append(
                src.problem(
                    ("isolation", name, "default"), f"unknown domain {config.default!r}", hint
                )
            )
        for process, domain in config.place.items():
            where = ("isolation", name, "place", process)
            if process not in manifest.processes:
                problems.append(
                    src.problem(
                        where,
                        f"unknown process {process!r}",
                        suggest(process, manifest.processes, "processes"),
                    )
                )
            elif domain not in manifest.domains:
                problems.append(
                    src.problem(
                        where,
                        f"unknown domain {domain!r}",
                        suggest(domain, manifest.domains, "domains in [domains]"),
                    )
                )
    return problems


def app_references(blueprint: Blueprint) -> list[Problem]:
    """``[app] isolation`` and ``main``, and ``[bench] operations``, name what exists."""
    manifest, src = blueprint.manifest, blueprint.source
    problems = []
    if manifest.app.isolation is not None and manifest.app.isolation not in manifest.isolation:
        hint = suggest(manifest.app.isolation, manifest.isolation, "configurations")
        problems.append(
            src.problem(
                ("app", "isolation"), f"unknown configuration {manifest.app.isolation!r}", hint
            )
        )
    problems += _main_process(blueprint)
    if manifest.bench is not None:
        process, _, arg = manifest.bench.operations.partition(".")
        value = manifest.processes[process].args.get(arg) if process in manifest.processes else None
        if isinstance(value, bool) or not isinstance(value, int):
            hint = 'name an integer argument, e.g. operations = "client.reads"'
            problems.append(
                src.problem(
                    ("bench", "operations"),
                    f"{manifest.bench.operations!r} is no integer process argument",
                    hint,
                )
            )
        if manifest.app.main is None:
            problems.append(
                src.problem(
                    ("bench",), "benchmarking needs [app] main (the run ends when it exits)"
                )
            )
    return problems


def _main_process(blueprint: Blueprint) -> list[Problem]:
    """``[app] main`` names a process, and one whose exit can end the run."""
    main, processes = blueprint.manifest.app.main, blueprint.manifest.processes
    if main is None:
        return []
    if main not in processes:
        hint = suggest(main, processes, "processes")
        return [blueprint.source.problem(("app", "main"), f"unknown process {main!r}", hint)]
    if processes[main].restart != "permanent":
        return []
    message = (
        f"the main process {main!r} is permanent: restarted after any exit, it never ends the run"
    )
    hint = f'give [processes.{main}] restart = "temporary" (or "transient")'
    return [blueprint.source.problem(("processes", main, "restart"), message, hint)]


def _domain_options(blueprint: Blueprint) -> list[Problem]:
    """``memory_limit`` and ``fresh_exec`` only where the kind has them."""
    problems = []
    for name, domain in blueprint.manifest.domains.items():
        where = ("domains", name)
        if domain.memory_limit is not None:
            if domain.kind not in ("process", "sandbox"):
                message = f"a {domain.kind} domain has no memory limit of its own"
                hint = 'use kind = "process" or "sandbox" to limit memory'
                problems.append(blueprint.source.problem((*where, "memory_limit"), message, hint))
            elif domain.memory_limit < 1 << 20:
                message = f"memory_limit is in bytes: {domain.memory_limit} is under 1 MiB"
                hint = "e.g. memory_limit = 268_435_456 (256 MiB)"
                problems.append(blueprint.source.problem((*where, "memory_limit"), message, hint))
        if domain.fresh_exec and domain.kind != "process":
            message = f"fresh_exec is for process domains, not {domain.kind}"
            problems.append(blueprint.source.problem((*where, "fresh_exec"), message, "remove it"))
    return problems
