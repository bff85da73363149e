"""From a typed manifest to a runnable blueprint: every name resolved, or a problem each.

``resolve`` imports the application's code (entry points, contracts, the
``prepare`` hook), builds sandbox policies, and checks that the names in the
manifest refer to each other correctly. It collects every problem it finds,
so ``sipkernel check`` reports them all at once; the structural checks of
channels, grants, supervision and placement live in ``_rules``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._core._contract import Contract
from .._core._errors import SipkernelError
from .._core._process import FunctionRef
from ._load import ManifestError, Problem, Source, read_manifest
from ._schema import Manifest


@dataclass
class Blueprint:
    """A manifest with its code imported and its references resolved."""

    manifest: Manifest
    source: Source
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    """Process name -> its entry function."""
    parameters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Process name -> its entry function's parameter names, in order."""
    contracts: dict[str, Contract] = field(default_factory=dict)
    policies: dict[str, Any] = field(default_factory=dict)
    """Domain name -> its sandbox ``Policy`` (sandbox domains only)."""
    prepare: Callable[[Path], Any] | None = None

    @property
    def name(self) -> str:
        return self.manifest.app.name

    def data_dir(self, override: str | Path | None = None) -> Path:
        """Where capability paths are resolved: ``override``, else ``[app] data``."""
        if override is not None:
            return Path(override).resolve()
        return (self.source.directory / self.manifest.app.data).resolve()

    def domain_of(self, configuration: str, process: str) -> str:
        """The declared domain ``process`` is placed in by ``configuration``."""
        config = self.manifest.isolation[configuration]
        return config.place.get(process, config.default)

    def configuration(self, name: str | None) -> str:
        """The configuration to run: ``name``, else ``[app] isolation``, else the first."""
        if name is not None:
            if name not in self.manifest.isolation:
                known = ", ".join(self.manifest.isolation)
                raise ManifestError(
                    [
                        self.source.problem(
                            ("isolation",), f"no configuration {name!r} (known: {known})"
                        )
                    ]
                )
            return name
        return self.manifest.app.isolation or next(iter(self.manifest.isolation))


def load_blueprint(path: str | Path) -> Blueprint:
    """Read, type-check, import and check the manifest at ``path``.

    Raises :class:`ManifestError` listing every problem, each with its line.
    """
    from ._rules import check_rules  # the structural rules need the resolved code

    manifest, source = read_manifest(path)
    problems: list[Problem] = []
    blueprint = Blueprint(manifest, source)
    _add_import_roots(blueprint)
    _resolve_contracts(blueprint, problems)
    _resolve_entries(blueprint, problems)
    _resolve_prepare(blueprint, problems)
    _resolve_policies(blueprint, problems)
    problems += check_rules(blueprint)
    if problems:
        raise ManifestError(sorted(problems, key=lambda p: p.line or 0))  # in reading order
    return blueprint


def _add_import_roots(blueprint: Blueprint) -> None:
    for root in reversed(blueprint.manifest.app.path):
        folder = str((blueprint.source.directory / root).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)


def import_reference(reference: str) -> Any:
    """The object named ``module:attribute``; ``LookupError`` saying what is missing."""
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise LookupError(f"{reference!r} is not of the form module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"cannot import {module_name}: {exc}") from None
    except Exception as exc:  # the module itself failed: say how
        raise LookupError(f"importing {module_name} raised {type(exc).__name__}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise LookupError(f"module {module_name} has no {attribute!r}") from None


def _resolve_contracts(blueprint: Blueprint, problems: list[Problem]) -> None:
    for name, reference in blueprint.manifest.contracts.items():
        where = ("contracts", name)
        try:
            contract = import_reference(reference)
        except LookupError as exc:
            problems.append(blueprint.source.problem(where, str(exc), _IMPORT_HINT))
            continue
        if not isinstance(contract, Contract):
            problems.append(
                blueprint.source.problem(
                    where, f"{reference} is a {type(contract).__name__}, not a sipkernel.Contract"
                )
            )
            continue
        blueprint.contracts[name] = contract


_IMPORT_HINT = "check the module:attribute spelling and [app] path (import roots)"


def _resolve_entries(blueprint: Blueprint, problems: list[Problem]) -> None:
    for name, process in blueprint.manifest.processes.items():
        where = ("processes", name, "entry")
        try:
            fn = import_reference(process.entry)
            FunctionRef.of(fn)  # the rules of spawn: a module-level def or async def
        except (LookupError, SipkernelError) as exc:
            problems.append(blueprint.source.problem(where, str(exc), _IMPORT_HINT))
            continue
        blueprint.functions[name] = fn
        blueprint.parameters[name] = _parameter_names(fn)


def _parameter_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in inspect.signature(fn).parameters.values() if p.kind in positional)


def required_parameters(fn: Callable[..., Any]) -> set[str]:
    """The parameters of ``fn`` that have no default."""
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def _resolve_prepare(blueprint: Blueprint, problems: list[Problem]) -> None:
    reference = blueprint.manifest.app.prepare
    if reference is None:
        return
    try:
        hook = import_reference(reference)
    except LookupError as exc:
        problems.append(blueprint.source.problem(("app", "prepare"), str(exc), _IMPORT_HINT))
        return
    if not callable(hook):
        problems.append(
            blueprint.source.problem(("app", "prepare"), f"{reference} is not callable")
        )
        return
    blueprint.prepare = hook


def _resolve_policies(blueprint: Blueprint, problems: list[Problem]) -> None:
    for name, domain in blueprint.manifest.domains.items():
        if domain.policy is None:
            continue
        where = ("domains", name, "policy")
        if domain.kind != "sandbox":
            problems.append(
                blueprint.source.problem(
                    where, f"a policy is for sandbox domains, not {domain.kind}", "remove it"
                )
            )
            continue
        try:
            blueprint.policies[name] = _policy(blueprint.source, domain.policy)
        except SipkernelError as exc:
            problems.append(blueprint.source.problem(where, str(exc)))


def _policy(source: Source, policy: str | dict[str, Any]) -> Any:
    from ..sandbox import Policy

    if isinstance(policy, str):
        return Policy.from_toml(str(source.directory / policy))
    return Policy.from_dict(policy, origin=f"{source.path} inline policy")
